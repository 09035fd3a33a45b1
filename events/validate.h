#pragma once
// Validation of every v1 input against events/limits.h. Pure, no I/O, never throws.
//
// A failure names the first broken rule as "<field path>: <rule>", with the path in the
// contract's JSON spelling, e.g. "placeOrder.lines[2].qty: must be between 1 and 1000000
// (got 0)" or "receiveStock.sku: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got
// \"sku 1\\n\")". Offending values are quoted with control characters escaped and cut to
// 64 bytes, so the reason is always one printable line that fits in a DLQ header.

#include <optional>
#include <string>
#include <string_view>

#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::events {

struct ValidationError {
  std::string path;  // "placeOrder.lines[2].qty"
  std::string rule;  // "must be between 1 and 1000000 (got 0)"
  // A rule about the whole message (an unset oneof) has an empty path: the rule alone.
  std::string to_string() const { return path.empty() ? rule : path + ": " + rule; }
};

using Validation = std::optional<ValidationError>;  // nullopt: valid

// Ids a user chooses: orderId, customerId, sku, receiptId, adjustmentId.
bool is_valid_id(std::string_view id);
// Ids a participant mints, and commandIds: printable ASCII, 1..external_id_length_max.
bool is_valid_external_id(std::string_view id);
// Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text);
// `value` in double quotes for a reason: quotes, backslashes and every byte outside printable
// ASCII escaped, cut to 64 bytes of output. Always one printable line. Every rejection reason
// in ffe quotes offending values with this, so they all read alike.
std::string quote(std::string_view value);
// The rule behind is_valid_id as a reason at `path`: what the codec says about an unusable id.
Validation validate_id(std::string_view id, std::string_view path);

// Each takes the JSON path prefix of the message ("placeOrder", "receiveStock", ...).
Validation validate(const v1::PlaceOrder& order, std::string_view path = "placeOrder");
Validation validate(const v1::CancelOrder& cancel, std::string_view path = "cancelOrder");
Validation validate(const v1::ReceiveStock& receipt, std::string_view path = "receiveStock");
Validation validate(const v1::AdjustStock& adjustment, std::string_view path = "adjustStock");
Validation validate(const v1::PaymentReply& reply, std::string_view path = "");
Validation validate(const v1::ShipmentReply& reply, std::string_view path = "");
Validation validate(const v1::PaymentRequest& request, std::string_view path = "");
Validation validate(const v1::ShipmentRequest& request, std::string_view path = "");

// Whole input commands: one of the oneof must be set ("unknown command" otherwise).
Validation validate(const v1::OrderCommand& command);
Validation validate(const v1::InventoryCommand& command);

// The order total, sum of qty * unit_price_cents, for a PlaceOrder that passed validate().
std::int64_t order_amount_cents(const v1::PlaceOrder& order);

}  // namespace ffe::events
