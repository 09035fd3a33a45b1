#pragma once
// Reading and writing the v1 contracts as canonical Protobuf JSON or binary Protobuf.
//
// Which one a Kafka message holds is said by its `content-type` header:
// "application/json" (also when the header is absent or empty) or "application/x-protobuf"
// (also accepted: "application/protobuf", "application/vnd.google.protobuf"). Parameters
// after ';' (charset=utf-8) are ignored; any other type is a decode error.
//
// Decoding never throws and never aborts, whatever the bytes: every failure is a
// DecodeError whose reason fits in the ff-error DLQ header (one line, at most 512 bytes).
// Input larger than limits::message_bytes_max or JSON nested deeper than
// limits::json_depth_max is refused before the parser sees it. Unknown JSON fields are
// ignored (a newer producer may add optional fields); a command whose oneof is not set
// (for example {"shipOrder": {...}}) decodes fine and is then refused as "unknown command"
// by decode_order_command / decode_inventory_command.
//
// Encoding JSON prints every field, defaults included ("reason": ""), lowerCamelCase,
// int64 as strings and enums by name: the contract's examples, field for field.

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::events {

enum class ContentType { kJson, kProtobuf };

inline constexpr std::string_view kJsonContentType = "application/json";
inline constexpr std::string_view kProtobufContentType = "application/x-protobuf";

struct DecodeError {
  std::string reason;
};

// nullopt header (absent) means JSON.
std::variant<ContentType, DecodeError> parse_content_type(std::optional<std::string_view> header);

// ASCII case-insensitive equality: content types, and the content-type header's own name.
bool equals_ignoring_case(std::string_view a, std::string_view b);
std::string_view content_type_name(ContentType type);

// Decodes bytes into `out` (cleared first). Returns an error, or nullopt on success.
std::optional<DecodeError> decode(std::string_view bytes, ContentType type,
                                  google::protobuf::Message& out);

// The same, with the content type taken from the header.
std::optional<DecodeError> decode(std::string_view bytes, std::optional<std::string_view> content_type,
                                  google::protobuf::Message& out);

std::string encode(const google::protobuf::Message& message, ContentType type);
std::string encode_json(const google::protobuf::Message& message);
std::string encode_binary(const google::protobuf::Message& message);

// Input topics: decode + "a command is set" + "its id is usable" (the checks that decide
// between ff.dlq and the owning shard). Full validation is the decider's, so that a
// PlaceOrder with a usable orderId that breaks a rule becomes a journaled REJECTED order;
// a CancelOrder, which has no outcome to carry a refusal, is validated whole here.
template <class T>
using Decoded = std::variant<T, DecodeError>;

Decoded<v1::OrderCommand> decode_order_command(std::string_view bytes,
                                               std::optional<std::string_view> content_type);
Decoded<v1::InventoryCommand> decode_inventory_command(std::string_view bytes,
                                                       std::optional<std::string_view> content_type);
Decoded<v1::PaymentReply> decode_payment_reply(std::string_view bytes,
                                               std::optional<std::string_view> content_type);
Decoded<v1::ShipmentReply> decode_shipment_reply(std::string_view bytes,
                                                 std::optional<std::string_view> content_type);
// Participants (the simulators, and any service written against the contract) read these.
Decoded<v1::PaymentRequest> decode_payment_request(std::string_view bytes,
                                                   std::optional<std::string_view> content_type);
Decoded<v1::ShipmentRequest> decode_shipment_request(std::string_view bytes,
                                                     std::optional<std::string_view> content_type);

}  // namespace ffe::events
