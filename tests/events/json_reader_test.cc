// The JSON fast path (events/json_reader.h) against the full path (UTF-8 check,
// JsonShapeCheck, protobuf's parser) on the same bytes: for every input, decode() must give
// the same answer with the fast path on as with it off — the same message, or the same
// error. The inputs are the contracts' examples, random messages printed by protobuf (both
// key spellings), and many edits of both aimed at the edges of the fast path's subset.
// Seeded, so a failure replays.

#include <gtest/gtest.h>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "events/codec.h"
#include "events/codec_internal.h"
#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"
#include "tests/events/contract_examples.h"

namespace ffe::events {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr std::uint64_t kSeed = 0x5eed'ffe0'0a11;
constexpr int kRandomMessages = 3'000;
constexpr int kMutants = 60'000;

// The six inbound roots, as empty prototypes.
std::vector<std::unique_ptr<Message>> roots() {
  std::vector<std::unique_ptr<Message>> all;
  all.push_back(std::make_unique<v1::OrderCommand>());
  all.push_back(std::make_unique<v1::InventoryCommand>());
  all.push_back(std::make_unique<v1::PaymentRequest>());
  all.push_back(std::make_unique<v1::PaymentReply>());
  all.push_back(std::make_unique<v1::ShipmentRequest>());
  all.push_back(std::make_unique<v1::ShipmentReply>());
  return all;
}

struct Answer {
  bool fast = false;  // the fast path answered
  std::optional<DecodeError> error;
  std::unique_ptr<Message> message;
};

Answer decode_with(bool fast_path, std::string_view bytes, const Message& prototype) {
  internal::set_json_fast_path(fast_path);
  Answer answer;
  answer.message.reset(prototype.New());
  const std::uint64_t before = internal::json_fast_path_decodes();
  answer.error = decode(bytes, ContentType::kJson, *answer.message);
  answer.fast = internal::json_fast_path_decodes() != before;
  internal::set_json_fast_path(true);
  return answer;
}

// Decodes `bytes` as `prototype`'s type both ways and checks the answers agree. Returns
// whether the fast path answered.
bool agrees(std::string_view bytes, const Message& prototype) {
  const Answer fast = decode_with(true, bytes, prototype);
  const Answer full = decode_with(false, bytes, prototype);
  EXPECT_FALSE(full.fast);
  const auto shown = [&] {
    return prototype.GetTypeName() + " from " + testing::PrintToString(std::string(bytes));
  };
  EXPECT_EQ(fast.error.has_value(), full.error.has_value()) << shown();
  if (fast.error && full.error) {
    EXPECT_FALSE(fast.fast) << shown();  // the fast path never refuses; it steps aside
    EXPECT_EQ(fast.error->reason, full.error->reason) << shown();
  }
  if (!fast.error && !full.error) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*fast.message, *full.message))
        << shown() << "\nfast: " << fast.message->ShortDebugString()
        << "\nfull: " << full.message->ShortDebugString();
  }
  return fast.fast;
}

// Strings drawn from what the edges of JSON strings are made of.
std::string random_text(std::mt19937_64& random) {
  static const std::vector<std::string> pieces = {
      "a", "Z", "0", "-", "_", ".", ":", " ", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f",
      "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbf", "o-1001",
      "tok_decline", "XX"};
  std::string text;
  const std::size_t length = random() % 12;
  for (std::size_t i = 0; i < length; ++i) text += pieces[random() % pieces.size()];
  return text;
}

std::int64_t random_int64(std::mt19937_64& random) {
  switch (random() % 5) {
    case 0: return 0;
    case 1: return static_cast<std::int64_t>(random() % 100) - 50;
    case 2: return static_cast<std::int64_t>(random());  // any, up to 19 digits
    case 3: return INT64_MIN + static_cast<std::int64_t>(random() % 3);
    default: return static_cast<std::int64_t>(random() % 1'000'000'000'000'000'000ULL);
  }
}

// Sets a random subset of `message`'s fields to random values, recursively.
void fill(Message& message, std::mt19937_64& random, int depth) {
  const Descriptor& type = *message.GetDescriptor();
  const auto* reflection = message.GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (random() % 3 == 0) continue;
    if (field.is_map()) continue;
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (depth >= 4) continue;
      if (field.is_repeated()) {
        const std::size_t count = random() % 4;
        for (std::size_t n = 0; n < count; ++n) {
          fill(*reflection->AddMessage(&message, &field), random, depth + 1);
        }
      } else {
        fill(*reflection->MutableMessage(&message, &field), random, depth + 1);
      }
      continue;
    }
    if (field.is_repeated()) continue;
    switch (field.cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(&message, &field, random_text(random));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(&message, &field, random_int64(random));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(&message, &field, static_cast<std::int32_t>(random()));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(&message, &field, random() % 2 == 0);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* values = field.enum_type();
        reflection->SetEnumValue(&message, &field,
                                 values->value(static_cast<int>(random() % values->value_count()))
                                     ->number());
        break;
      }
      default: break;
    }
  }
}

std::string print(const Message& message, bool proto_names, bool all_fields) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = proto_names;
  options.always_print_primitive_fields = all_fields;
  options.always_print_enums_as_ints = all_fields && proto_names;
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &json, options).ok());
  return json;
}

// One random edit of `input`, with tokens from the edges of the fast path's subset.
void edit(std::string& input, std::mt19937_64& random) {
  static const std::vector<std::string> tokens = {
      "{", "}", "[", "]", "\"", ",", ":", " ", "\\", "\\u", "\\u0000", "\\/", "\\ud83d\\ude00",
      "\\ud83d", "\\ude00", "\\U00e9", "\\x41", "null", "true", "-0", "00", "07", "1.0", "1e2",
      "-", "\"-5\"", "\" 5\"", "999999999999999999", "-999999999999999999",
      "9999999999999999999", "9223372036854775808", "2147483648", "\"APPROVED\"",
      "\"approved\"", "99", "\"order_id\"", "\"orderId\"", "\"commandId\":\"x\",",
      "\"unknown\":1,", "\xff", "\xc3", "\xc3\xa9", "\xed\xa0\x80", "\xf4\x90\x80\x80",
      "\xc0\xaf", std::string(1, '\0'), "\x1f", "\t", "\r\n"};
  const std::size_t at = input.empty() ? 0 : random() % (input.size() + 1);
  switch (random() % 4) {
    case 0:
      input.insert(at, tokens[random() % tokens.size()]);
      break;
    case 1:
      input.erase(at, 1 + random() % 6);
      break;
    case 2:
      if (!input.empty()) input[random() % input.size()] = static_cast<char>(random());
      break;
    default:
      input.replace(at, random() % 4, tokens[random() % tokens.size()]);
      break;
  }
}

TEST(JsonFastPath, ContractExamplesTakeItAndDecodeAsTheFullPathDoes) {
  const auto types = roots();
  const std::vector<std::pair<std::vector<std::string_view>, const Message*>> cases = {
      {examples::kOrderCommands, types[0].get()},
      {examples::kInventoryCommands, types[1].get()},
      {examples::kPaymentRequests, types[2].get()},
      {{examples::kPaymentReply}, types[3].get()},
      {examples::kShipmentRequests, types[4].get()},
      {{examples::kShipmentReply}, types[5].get()}};
  for (const auto& [jsons, prototype] : cases) {
    for (std::string_view json : jsons) {
      EXPECT_TRUE(agrees(json, *prototype)) << json;
    }
  }
}

TEST(JsonFastPath, InputOutsideItsSubsetTakesTheFullPath) {
  const v1::OrderCommand order;
  // Each decodes (or fails) on the full path only: an unknown key, a null, a float, a
  // duplicated key, a key with an escape, an enum number not declared.
  for (std::string_view json :
       {R"({"cancelOrder": {"orderId": "o-1", "note": 1}})",
        R"({"cancelOrder": {"orderId": "o-1", "reason": null}})",
        R"({"cancelOrder": {"orderId": "o-1", "orderId": "o-2"}})",
        R"({"cancelOrder": {"orderId": "o-1", "order_id": "o-2"}})",
        R"({"cancelOrder": {"order\u0049d": "o-1"}})",
        R"({"placeOrder": {"orderId": "o-1", "deadlineMs": 1.0}})",
        R"({"placeOrder": {"orderId": "o-1", "deadlineMs": 1e3}})"}) {
    EXPECT_FALSE(agrees(json, order)) << json;
  }
  EXPECT_FALSE(agrees(R"({"commandId": "c", "orderId": "o", "status": 7})", v1::PaymentReply()));
  // ... and these, just inside it, on the fast one.
  for (std::string_view json :
       {R"({"cancelOrder": {"order_id": "o-1", "reason": "\u00e9\ud83d\ude00\/\t"}})",
        R"( {"placeOrder":{"orderId":"o-1","deadlineMs":"-999999999999999999"}} )",
        R"({"placeOrder": {"orderId": "o-1", "lines": [], "payment": {}}})"}) {
    EXPECT_TRUE(agrees(json, order)) << json;
  }
  EXPECT_TRUE(agrees(R"({"commandId": "c", "orderId": "o", "status": 1})", v1::PaymentReply()));
}

TEST(JsonFastPath, RandomMessagesPrintedByProtobufDecodeTheSameEitherWay) {
  std::mt19937_64 random(kSeed);
  const auto types = roots();
  int fast = 0;
  for (int i = 0; i < kRandomMessages && !testing::Test::HasFailure(); ++i) {
    const Message& prototype = *types[i % types.size()];
    std::unique_ptr<Message> message(prototype.New());
    fill(*message, random, 0);
    const std::string json = print(*message, i % 2 == 1, i % 3 == 0);
    if (agrees(json, prototype)) ++fast;
  }
  // Protobuf prints within the subset, except where it prints what the reader leaves out
  // (a bool or int32 field set, an enum as a number): most take the fast path.
  EXPECT_GT(fast, kRandomMessages / 2);
}

TEST(JsonFastPath, EditedMessagesDecodeOrFailTheSameEitherWay) {
  std::mt19937_64 random(kSeed + 1);
  const auto types = roots();
  // Each seed with the index (in roots()) of its type.
  std::vector<std::pair<std::string, std::size_t>> seeds;
  const std::vector<std::vector<std::string_view>> examples_by_type = {
      examples::kOrderCommands,   examples::kInventoryCommands, examples::kPaymentRequests,
      {examples::kPaymentReply},  examples::kShipmentRequests,  {examples::kShipmentReply}};
  for (std::size_t type = 0; type < examples_by_type.size(); ++type) {
    for (std::string_view json : examples_by_type[type]) seeds.emplace_back(json, type);
  }
  for (std::size_t i = 0; i < 60; ++i) {
    std::unique_ptr<Message> message(types[i % types.size()]->New());
    fill(*message, random, 0);
    seeds.emplace_back(print(*message, i % 2 == 1, false), i % types.size());
  }
  int fast = 0;
  for (int i = 0; i < kMutants && !testing::Test::HasFailure(); ++i) {
    const auto& [seed, seed_type] = seeds[random() % seeds.size()];
    std::string input = seed;
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int e = 0; e < edits; ++e) edit(input, random);
    // Mostly as the seed's own type (where edits can stay inside the subset), sometimes as
    // another one.
    const std::size_t type = random() % 8 == 0 ? random() % types.size() : seed_type;
    if (agrees(input, *types[type])) ++fast;
  }
  // Enough edits stay inside the subset (and decode) that the comparison means something.
  EXPECT_GT(fast, kMutants / 20);
}

}  // namespace
}  // namespace ffe::events
