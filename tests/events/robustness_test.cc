// Invariant 6 at the codec: whatever the bytes, every decode_* returns (never throws, never
// aborts) either a message or a reason that fits an ff-error header: one printable line of
// at most 512 bytes. Seeded, so a failure replays; the fuzz targets (events/fuzz/) search
// the same space without a time bound.

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "events/codec.h"
#include "events/limits.h"
#include "events/validate.h"
#include "tests/events/contract_examples.h"

namespace ffe::events {
namespace {

constexpr std::size_t kReasonBytesMax = 512;  // codec.h: what fits the ff-error header
constexpr int kRandomInputs = 20'000;
constexpr int kMutants = 20'000;
constexpr std::uint64_t kSeed = 0x5eed'ffe0'0001;

bool is_one_printable_line(const std::string& text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

struct Tally {
  int decoded = 0;
  int refused = 0;
};

template <class T>
void check(const Decoded<T>& result, std::string_view input, Tally& tally) {
  if (const auto* error = std::get_if<DecodeError>(&result)) {
    ++tally.refused;
    ASSERT_FALSE(error->reason.empty()) << testing::PrintToString(std::string(input));
    ASSERT_LE(error->reason.size(), kReasonBytesMax) << error->reason;
    ASSERT_TRUE(is_one_printable_line(error->reason)) << error->reason;
    return;
  }
  ++tally.decoded;
  const T& message = std::get<T>(result);
  // Whatever decoded can be validated, and its reason is a header too.
  if (const Validation invalid = validate(message)) {
    const std::string reason = invalid->to_string();
    ASSERT_LE(reason.size(), kReasonBytesMax) << reason;
    ASSERT_TRUE(is_one_printable_line(reason)) << reason;
  }
  // ... and printed again, in both formats, the binary form reading back the same.
  (void)encode_json(message);
  const std::string binary = encode_binary(message);
  if (!binary.empty() && binary.size() <= limits::message_bytes_max) {
    T again;
    ASSERT_FALSE(decode(binary, ContentType::kProtobuf, again).has_value());
    ASSERT_EQ(encode_binary(again), binary);
  }
}

// Runs `input` through every decode_* entry point with `header`.
void decode_everywhere(std::string_view input, std::optional<std::string_view> header,
                       Tally& tally) {
  try {
    check(decode_order_command(input, header), input, tally);
    check(decode_inventory_command(input, header), input, tally);
    check(decode_payment_reply(input, header), input, tally);
    check(decode_shipment_reply(input, header), input, tally);
    check(decode_payment_request(input, header), input, tally);
    check(decode_shipment_request(input, header), input, tally);
  } catch (const std::exception& e) {
    FAIL() << "a decode threw " << e.what() << " on " << testing::PrintToString(std::string(input));
  } catch (...) {
    FAIL() << "a decode threw on " << testing::PrintToString(std::string(input));
  }
}

const std::vector<std::optional<std::string_view>> kHeaders = {std::nullopt, "application/json",
                                                               "application/x-protobuf"};

TEST(CodecRobustness, RandomBytesNeverBreakADecode) {
  std::mt19937_64 random(kSeed);
  // Uniform bytes mostly exercise the first checks; bytes drawn from JSON's alphabet and
  // the contracts' names get further into both parsers.
  const std::string json_alphabet = R"({}[]":,.-+0123456789eE \\/ntrufalsbu"'qQ)";
  const std::vector<std::string> words = {"placeOrder", "cancelOrder", "orderId", "lines",
                                          "qty",        "sku",         "status",  "APPROVED",
                                          "null",       "\\u00e9",     "\\ud800"};
  Tally tally;
  for (int i = 0; i < kRandomInputs && !testing::Test::HasFatalFailure(); ++i) {
    const std::size_t size = random() % (i % 100 == 0 ? 4000 : 200);
    std::string input;
    const int style = static_cast<int>(random() % 3);
    while (input.size() < size) {
      if (style == 0) {
        input += static_cast<char>(random());
      } else if (style == 1) {
        input += json_alphabet[random() % json_alphabet.size()];
      } else {
        input += random() % 3 == 0 ? words[random() % words.size()]
                                   : std::string(1, json_alphabet[random() % json_alphabet.size()]);
      }
    }
    decode_everywhere(input, kHeaders[random() % kHeaders.size()], tally);
  }
  EXPECT_EQ(tally.decoded + tally.refused, kRandomInputs * 6);
}

// One random edit of `input`.
void mutate(std::string& input, std::mt19937_64& random, const std::vector<std::string>& seeds) {
  static const std::vector<std::string> tokens = {"{",
                                                  "}",
                                                  "[",
                                                  "]",
                                                  "\"",
                                                  ",",
                                                  ":",
                                                  "\\",
                                                  "\\u",
                                                  "\\ud83d\\ude00",
                                                  "null",
                                                  "true",
                                                  "-1",
                                                  "0",
                                                  "9223372036854775807",
                                                  "9223372036854775808",
                                                  "1e999",
                                                  "\xff",
                                                  "\xc3\xa9",
                                                  "\x00",
                                                  "\x80\x80\x80\x80\x01",
                                                  "\"placeOrder\":",
                                                  "\"lines\":[",
                                                  "\"status\":\"",
                                                  "\"qty\":\"",
                                                  "\x0a",
                                                  "\x12",
                                                  "\x1a",
                                                  "\x22"};
  const std::size_t at = input.empty() ? 0 : random() % (input.size() + 1);
  switch (random() % 7) {
    case 0:  // flip a bit
      if (!input.empty()) input[random() % input.size()] ^= static_cast<char>(1 << (random() % 8));
      break;
    case 1:  // set a byte
      if (!input.empty()) input[random() % input.size()] = static_cast<char>(random());
      break;
    case 2:  // insert a token
      input.insert(at, tokens[random() % tokens.size()]);
      break;
    case 3:  // delete a run
      input.erase(at, random() % 8);
      break;
    case 4:  // cut
      input.resize(at);
      break;
    case 5: {  // copy a chunk of itself elsewhere
      if (input.empty()) break;
      const std::size_t from = random() % input.size();
      input.insert(at, input.substr(from, random() % 32));
      break;
    }
    default: {  // splice another seed's tail
      const std::string& other = seeds[random() % seeds.size()];
      input = input.substr(0, at) + other.substr(other.empty() ? 0 : random() % other.size());
    }
  }
}

TEST(CodecRobustness, MutatedValidMessagesNeverBreakADecode) {
  std::vector<std::string> json_seeds;
  for (const auto& list : {examples::kOrderCommands, examples::kInventoryCommands,
                           examples::kPaymentRequests, examples::kShipmentRequests}) {
    json_seeds.insert(json_seeds.end(), list.begin(), list.end());
  }
  json_seeds.emplace_back(examples::kPaymentReply);
  json_seeds.emplace_back(examples::kShipmentReply);
  // The binary seeds: each JSON seed decoded as the message it is, then encoded.
  std::vector<std::string> binary_seeds;
  const auto add_binary = [&](auto message, std::string_view json) {
    ASSERT_FALSE(decode(json, ContentType::kJson, message).has_value()) << json;
    binary_seeds.push_back(encode_binary(message));
  };
  for (auto json : examples::kOrderCommands) add_binary(v1::OrderCommand{}, json);
  for (auto json : examples::kInventoryCommands) add_binary(v1::InventoryCommand{}, json);
  for (auto json : examples::kPaymentRequests) add_binary(v1::PaymentRequest{}, json);
  for (auto json : examples::kShipmentRequests) add_binary(v1::ShipmentRequest{}, json);
  add_binary(v1::PaymentReply{}, examples::kPaymentReply);
  add_binary(v1::ShipmentReply{}, examples::kShipmentReply);

  std::mt19937_64 random(kSeed + 1);
  Tally tally;
  int mutants_decoded = 0;  // by at least one decode_*
  for (int i = 0; i < kMutants && !testing::Test::HasFatalFailure(); ++i) {
    const bool binary = i % 2 == 1;
    const auto& seeds = binary ? binary_seeds : json_seeds;
    std::string input = seeds[random() % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int edit = 0; edit < edits; ++edit) mutate(input, random, seeds);
    const int decoded_before = tally.decoded;
    decode_everywhere(input, binary ? kHeaders[2] : kHeaders[random() % 2], tally);
    if (tally.decoded > decoded_before) ++mutants_decoded;
  }
  // Enough mutants must get through (about 7% with this seed), or this would only test the
  // early refusals; enough must not, or it would not be testing bad input.
  EXPECT_GT(mutants_decoded, kMutants / 20);
  EXPECT_GT(kMutants - mutants_decoded, kMutants / 2);
}

}  // namespace
}  // namespace ffe::events
