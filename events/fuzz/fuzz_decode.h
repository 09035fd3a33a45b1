#pragma once
// The body every decode fuzz target shares: decode the input the way ffe's ingress would,
// then check what the codec promises, aborting (FFE_ASSERT) when a promise breaks:
//   - a refusal is a reason fit for the ff-error header: non-empty, one printable line,
//     at most 512 bytes;
//   - a decoded message can be validated, and a validation reason is such a line too;
//   - a decoded message prints in both formats, and reads back as the same message
//     (unknown fields aside: JSON has no place for them).
// Crashes, leaks and undefined behaviour are libFuzzer's and the sanitizers' to catch.
//
// Input layout: the first byte picks the content type (so one corpus holds both formats and
// a mutation may move a message from one to the other); the rest is the message.
//   bit 0 set:  "application/x-protobuf"
//   otherwise:  JSON, with the header absent (bit 1 clear) or "application/json" (bit 1 set)
// The seeds in corpus/<target>/ start with '0' (0x30: JSON) or '1' (0x31: binary).

#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/assert.h"
#include "events/codec.h"
#include "events/limits.h"
#include "events/validate.h"

namespace ffe::events::fuzz {

inline constexpr std::size_t reason_bytes_max = 512;  // codec.h's promise

inline void check_reason(const std::string& reason) {
  FFE_ASSERT(!reason.empty(), "a refusal without a reason");
  FFE_ASSERT(reason.size() <= reason_bytes_max, "a reason longer than the ff-error header takes");
  for (char c : reason) {
    FFE_ASSERT(c >= 0x20 && c <= 0x7e, "a reason that is not one printable line");
  }
}

template <class T>
int decode_one(const std::uint8_t* data, std::size_t size,
               Decoded<T> (*decode_input)(std::string_view, std::optional<std::string_view>)) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  std::optional<std::string_view> header;
  if (selector & 1) {
    header = kProtobufContentType;
  } else if (selector & 2) {
    header = kJsonContentType;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  const Decoded<T> result = decode_input(bytes, header);
  if (const auto* refused = std::get_if<DecodeError>(&result)) {
    check_reason(refused->reason);
    return 0;
  }
  const T& message = std::get<T>(result);
  if (const Validation invalid = validate(message)) check_reason(invalid->to_string());

  const std::string binary = encode_binary(message);
  if (!binary.empty() && binary.size() <= limits::message_bytes_max) {
    T again;
    const auto failure = decode(binary, ContentType::kProtobuf, again);
    FFE_ASSERT(!failure, "ffe cannot read back its own binary encoding");
    FFE_ASSERT(google::protobuf::util::MessageDifferencer::Equals(message, again),
               "the binary round trip changed the message");
  }

  const std::string json = encode_json(message);
  if (json.size() <= limits::message_bytes_max) {
    T again;
    const auto failure = decode(json, ContentType::kJson, again);
    FFE_ASSERT(!failure, "ffe cannot read back its own JSON encoding");
    T known = message;
    known.DiscardUnknownFields();
    FFE_ASSERT(google::protobuf::util::MessageDifferencer::Equals(known, again),
               "the JSON round trip changed the message");
  }
  return 0;
}

}  // namespace ffe::events::fuzz
