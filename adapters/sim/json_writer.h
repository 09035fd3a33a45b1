#pragma once
// A fast writer of canonical Protobuf JSON for the messages the simulators and the producer
// write: byte for byte what events::encode_json prints (every field, defaults included,
// lowerCamelCase, int64 as strings, enums by name, protobuf's escaping), about 30 times
// faster than protobuf's reflective printer (33 us per PlaceOrder here), which would
// otherwise bound `ffe produce orders` at about 13k messages/s. Strings are escaped by
// events/json_text.h exactly as protobuf escapes them, non-ASCII text included. The equality
// is tested (tests/sim_adapters/json_writer_test.cc).

#include <string>

#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::participants::json {

std::string encode(const v1::OrderCommand& command);
std::string encode(const v1::InventoryCommand& command);
std::string encode(const v1::PaymentReply& reply);
std::string encode(const v1::ShipmentReply& reply);

}  // namespace ffe::participants::json
