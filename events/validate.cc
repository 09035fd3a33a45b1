#include "events/validate.h"

#include <cstdint>
#include <limits>
#include <string>

#include "events/assert.h"
#include "events/limits.h"
#include "events/utf8.h"

namespace ffe::events {
namespace {

// A reason quotes at most this much of an offending value, so that a 64 KiB field still
// yields a short, one-line reason (validate.h). Not an input limit, so not in limits.h.
constexpr std::size_t quoted_value_bytes_max = 64;

// The largest total an order within the limits can have. It is what an Authorize may ask
// for, and the reason order_amount_cents() cannot overflow.
constexpr std::int64_t order_amount_cents_max = static_cast<std::int64_t>(limits::order_lines_max) *
                                                limits::line_qty_max * limits::unit_price_cents_max;
static_assert(limits::line_qty_max <= std::numeric_limits<std::int64_t>::max() /
                                          limits::unit_price_cents_max /
                                          static_cast<std::int64_t>(limits::order_lines_max),
              "the order limits must keep every order total within int64");

// The id pattern as users read it in reasons; keep in step with is_valid_id.
constexpr std::string_view id_pattern = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
static_assert(limits::id_length_max == 64, "id_pattern spells out id_length_max");

bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_ascii_upper(char c) { return c >= 'A' && c <= 'Z'; }

bool is_upper_code(std::string_view value, std::size_t length) {
  if (value.size() != length) return false;
  for (char c : value) {
    if (!is_ascii_upper(c)) return false;
  }
  return true;
}

// Decodes the code point at text[i] (text must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view text, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) {
    i += 1;
    return lead;
  }
  const std::size_t length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  char32_t code_point = lead & (0x3f >> (length - 1));
  for (std::size_t k = 1; k < length; ++k) code_point = (code_point << 6) | (byte(i + k) & 0x3f);
  i += length;
  return code_point;
}

// C0, DEL and C1: the characters that would break a log line, a header or a terminal.
bool is_control(char32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7f && code_point <= 0x9f);
}

std::string join(std::string_view prefix, std::string_view name) {
  if (prefix.empty()) return std::string(name);
  std::string path(prefix);
  path += '.';
  path += name;
  return path;
}

ValidationError error(std::string path, std::string rule) {
  return ValidationError{std::move(path), std::move(rule)};
}

Validation check_range(std::int64_t value, std::int64_t min, std::int64_t max,
                       std::string_view path) {
  if (value >= min && value <= max) return std::nullopt;
  return error(std::string(path), "must be between " + std::to_string(min) + " and " +
                                      std::to_string(max) + " (got " + std::to_string(value) + ")");
}

Validation check_external_id(std::string_view id, std::string_view path) {
  if (id.empty()) return error(std::string(path), "is required");
  if (id.size() > limits::external_id_length_max) {
    return error(std::string(path), "must be at most " +
                                        std::to_string(limits::external_id_length_max) +
                                        " characters (got " + std::to_string(id.size()) + ")");
  }
  if (!is_valid_external_id(id)) {
    return error(std::string(path),
                 "must be printable ASCII without spaces (got " + quote(id) + ")");
  }
  return std::nullopt;
}

Validation check_optional_external_id(std::string_view id, std::string_view path) {
  if (id.empty()) return std::nullopt;
  return check_external_id(id, path);
}

enum class Presence { kRequired, kOptional };

// Free text: names, address lines, reasons, payment method and token. Any UTF-8 but no
// control characters (it ends up in log lines, headers and tables), at most
// text_length_max bytes. Required text must hold more than spaces.
Validation check_text(std::string_view text, std::string_view path, Presence presence) {
  if (presence == Presence::kRequired && text.find_first_not_of(' ') == std::string_view::npos) {
    return error(std::string(path), "is required");
  }
  if (text.size() > limits::text_length_max) {
    return error(std::string(path), "must be at most " + std::to_string(limits::text_length_max) +
                                        " bytes (got " + std::to_string(text.size()) + ")");
  }
  if (!is_valid_utf8(text)) return error(std::string(path), "must be valid UTF-8");
  for (std::size_t i = 0; i < text.size();) {
    if (is_control(next_code_point(text, i))) {
      return error(std::string(path),
                   "must not contain control characters (got " + quote(text) + ")");
    }
  }
  return std::nullopt;
}

Validation check_address(const v1::Address& address, std::string_view path) {
  if (auto e = check_text(address.name(), join(path, "name"), Presence::kRequired)) return e;
  if (auto e = check_text(address.line1(), join(path, "line1"), Presence::kRequired)) return e;
  if (auto e = check_text(address.line2(), join(path, "line2"), Presence::kOptional)) return e;
  if (auto e = check_text(address.city(), join(path, "city"), Presence::kRequired)) return e;
  if (auto e = check_text(address.region(), join(path, "region"), Presence::kOptional)) return e;
  if (auto e = check_text(address.postal_code(), join(path, "postalCode"), Presence::kOptional)) {
    return e;
  }
  if (!is_upper_code(address.country(), 2)) {
    return error(join(path, "country"), "must be 2 uppercase letters, ISO 3166-1 alpha-2 (got " +
                                            quote(address.country()) + ")");
  }
  return std::nullopt;
}

Validation check_currency(std::string_view currency, std::string_view path, Presence presence) {
  if (presence == Presence::kOptional && currency.empty()) return std::nullopt;
  if (is_upper_code(currency, 3)) return std::nullopt;
  return error(std::string(path),
               std::string("must be 3 uppercase letters, ISO 4217") +
                   (presence == Presence::kOptional ? ", or empty for USD" : "") + " (got " +
                   quote(currency) + ")");
}

// Lines of an order or a shipment: 1..order_lines_max, each with a usable sku and a qty in
// range, no sku twice (an order holds one reservation per SKU). `check_line` adds what a
// kind of line has beyond sku and qty (an order line's price), so that the first broken
// rule is reported in line order.
template <class Lines, class CheckLine>
Validation check_lines(const Lines& lines, std::string_view path, CheckLine check_line) {
  const auto count = static_cast<std::size_t>(lines.size());
  if (count < 1 || count > limits::order_lines_max) {
    return error(std::string(path), "must have between 1 and " +
                                        std::to_string(limits::order_lines_max) + " lines (got " +
                                        std::to_string(count) + ")");
  }
  for (int i = 0; i < lines.size(); ++i) {
    const std::string line_path = std::string(path) + "[" + std::to_string(i) + "]";
    if (auto e = validate_id(lines[i].sku(), join(line_path, "sku"))) return e;
    if (auto e = check_range(lines[i].qty(), 1, limits::line_qty_max, join(line_path, "qty"))) {
      return e;
    }
    if (auto e = check_line(lines[i], line_path)) return e;
    // Quadratic, but over at most order_lines_max lines.
    for (int j = 0; j < i; ++j) {
      if (lines[j].sku() == lines[i].sku()) {
        return error(join(line_path, "sku"), "duplicate of lines[" + std::to_string(j) + "]");
      }
    }
  }
  return std::nullopt;
}

Validation no_more_to_check(const v1::ItemLine&, std::string_view) { return std::nullopt; }

Validation check_price(const v1::OrderLine& line, std::string_view line_path) {
  return check_range(line.unit_price_cents(), 0, limits::unit_price_cents_max,
                     join(line_path, "unitPriceCents"));
}

}  // namespace

std::string quote(std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : value) {
    std::string piece;
    switch (c) {
      case '"': piece = "\\\""; break;
      case '\\': piece = "\\\\"; break;
      case '\n': piece = "\\n"; break;
      case '\r': piece = "\\r"; break;
      case '\t': piece = "\\t"; break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          piece = static_cast<char>(c);
        } else {
          piece = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
        }
    }
    if (out.size() - 1 + piece.size() > quoted_value_bytes_max) {
      out += "...";
      break;
    }
    out += piece;
  }
  out += '"';
  return out;
}

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > limits::id_length_max || !is_ascii_alnum(id.front())) return false;
  for (char c : id) {
    if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

bool is_valid_external_id(std::string_view id) {
  if (id.empty() || id.size() > limits::external_id_length_max) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool is_valid_utf8(std::string_view text) { return utf8::first_invalid(text) == text.size(); }

Validation validate_id(std::string_view id, std::string_view path) {
  if (id.empty()) return error(std::string(path), "is required");
  if (id.size() > limits::id_length_max) {
    return error(std::string(path), "must be at most " + std::to_string(limits::id_length_max) +
                                        " characters (got " + std::to_string(id.size()) + ")");
  }
  if (!is_valid_id(id)) {
    return error(std::string(path),
                 "must match " + std::string(id_pattern) + " (got " + quote(id) + ")");
  }
  return std::nullopt;
}

Validation validate(const v1::PlaceOrder& order, std::string_view path) {
  if (auto e = validate_id(order.order_id(), join(path, "orderId"))) return e;
  if (auto e = validate_id(order.customer_id(), join(path, "customerId"))) return e;
  if (auto e = check_lines(order.lines(), join(path, "lines"), check_price)) return e;
  const std::string payment_path = join(path, "payment");
  if (!order.has_payment()) return error(payment_path, "is required");
  if (auto e =
          check_text(order.payment().method(), join(payment_path, "method"), Presence::kRequired)) {
    return e;
  }
  if (auto e =
          check_text(order.payment().token(), join(payment_path, "token"), Presence::kRequired)) {
    return e;
  }
  const std::string ship_to_path = join(path, "shipTo");
  if (!order.has_ship_to()) return error(ship_to_path, "is required");
  if (auto e = check_address(order.ship_to(), ship_to_path)) return e;
  const std::int64_t deadline_ms = order.deadline_ms();
  if (deadline_ms != 0 &&
      (deadline_ms < limits::deadline_ms_min || deadline_ms > limits::deadline_ms_max)) {
    return error(join(path, "deadlineMs"),
                 "must be 0 (the default, " + std::to_string(limits::deadline_ms_default) +
                     ") or between " + std::to_string(limits::deadline_ms_min) + " and " +
                     std::to_string(limits::deadline_ms_max) + " (got " +
                     std::to_string(deadline_ms) + ")");
  }
  return check_currency(order.currency(), join(path, "currency"), Presence::kOptional);
}

Validation validate(const v1::CancelOrder& cancel, std::string_view path) {
  if (auto e = validate_id(cancel.order_id(), join(path, "orderId"))) return e;
  return check_text(cancel.reason(), join(path, "reason"), Presence::kOptional);
}

Validation validate(const v1::ReceiveStock& receipt, std::string_view path) {
  if (auto e = validate_id(receipt.sku(), join(path, "sku"))) return e;
  if (auto e = check_range(receipt.qty(), 1, limits::receipt_qty_max, join(path, "qty"))) return e;
  return validate_id(receipt.receipt_id(), join(path, "receiptId"));
}

Validation validate(const v1::AdjustStock& adjustment, std::string_view path) {
  if (auto e = validate_id(adjustment.sku(), join(path, "sku"))) return e;
  const std::int64_t delta = adjustment.delta();
  if (delta == 0 || delta < -limits::adjustment_delta_max || delta > limits::adjustment_delta_max) {
    return error(join(path, "delta"), "must be non-zero and between " +
                                          std::to_string(-limits::adjustment_delta_max) + " and " +
                                          std::to_string(limits::adjustment_delta_max) + " (got " +
                                          std::to_string(delta) + ")");
  }
  if (auto e = validate_id(adjustment.adjustment_id(), join(path, "adjustmentId"))) return e;
  return check_text(adjustment.reason(), join(path, "reason"), Presence::kOptional);
}

Validation validate(const v1::PaymentReply& reply, std::string_view path) {
  if (auto e = check_external_id(reply.command_id(), join(path, "commandId"))) return e;
  if (auto e = validate_id(reply.order_id(), join(path, "orderId"))) return e;
  if (reply.status() == v1::PaymentReply::STATUS_UNSPECIFIED ||
      !v1::PaymentReply::Status_IsValid(reply.status())) {
    return error(join(path, "status"), "must be one of APPROVED, DECLINED, FAILED (got " +
                                           (v1::PaymentReply::Status_IsValid(reply.status())
                                                ? v1::PaymentReply::Status_Name(reply.status())
                                                : std::to_string(reply.status())) +
                                           ")");
  }
  if (auto e = check_optional_external_id(reply.payment_id(), join(path, "paymentId"))) return e;
  return check_text(reply.reason(), join(path, "reason"), Presence::kOptional);
}

Validation validate(const v1::ShipmentReply& reply, std::string_view path) {
  if (auto e = check_external_id(reply.command_id(), join(path, "commandId"))) return e;
  if (auto e = validate_id(reply.order_id(), join(path, "orderId"))) return e;
  if (reply.status() == v1::ShipmentReply::STATUS_UNSPECIFIED ||
      !v1::ShipmentReply::Status_IsValid(reply.status())) {
    return error(join(path, "status"), "must be one of CREATED, FAILED, CANCELLED (got " +
                                           (v1::ShipmentReply::Status_IsValid(reply.status())
                                                ? v1::ShipmentReply::Status_Name(reply.status())
                                                : std::to_string(reply.status())) +
                                           ")");
  }
  if (auto e = check_optional_external_id(reply.shipment_id(), join(path, "shipmentId"))) return e;
  return check_text(reply.reason(), join(path, "reason"), Presence::kOptional);
}

Validation validate(const v1::PaymentRequest& request, std::string_view path) {
  if (auto e = check_external_id(request.command_id(), join(path, "commandId"))) return e;
  if (auto e = validate_id(request.order_id(), join(path, "orderId"))) return e;
  switch (request.request_case()) {
    case v1::PaymentRequest::kAuthorize: {
      const std::string at = join(path, "authorize");
      const v1::Authorize& authorize = request.authorize();
      if (auto e = check_range(authorize.amount_cents(), 0, order_amount_cents_max,
                               join(at, "amountCents"))) {
        return e;
      }
      if (auto e =
              check_currency(authorize.currency(), join(at, "currency"), Presence::kRequired)) {
        return e;
      }
      return check_text(authorize.token(), join(at, "token"), Presence::kRequired);
    }
    case v1::PaymentRequest::kVoid: {
      const std::string at = join(path, "void");
      if (auto e =
              check_optional_external_id(request.void_().payment_id(), join(at, "paymentId"))) {
        return e;
      }
      return check_external_id(request.void_().authorize_command_id(),
                               join(at, "authorizeCommandId"));
    }
    case v1::PaymentRequest::kRefund: {
      const std::string at = join(path, "refund");
      if (auto e = check_external_id(request.refund().payment_id(), join(at, "paymentId"))) {
        return e;
      }
      return check_range(request.refund().amount_cents(), 1, order_amount_cents_max,
                         join(at, "amountCents"));
    }
    case v1::PaymentRequest::REQUEST_NOT_SET: break;
  }
  return error(std::string(path), "unknown request: expected one of authorize, void, refund");
}

Validation validate(const v1::ShipmentRequest& request, std::string_view path) {
  if (auto e = check_external_id(request.command_id(), join(path, "commandId"))) return e;
  if (auto e = validate_id(request.order_id(), join(path, "orderId"))) return e;
  switch (request.request_case()) {
    case v1::ShipmentRequest::kCreate: {
      const std::string at = join(path, "create");
      if (auto e = check_lines(request.create().lines(), join(at, "lines"), no_more_to_check)) {
        return e;
      }
      const std::string ship_to_path = join(at, "shipTo");
      if (!request.create().has_ship_to()) return error(ship_to_path, "is required");
      return check_address(request.create().ship_to(), ship_to_path);
    }
    case v1::ShipmentRequest::kCancel: {
      const std::string at = join(path, "cancel");
      if (auto e =
              check_optional_external_id(request.cancel().shipment_id(), join(at, "shipmentId"))) {
        return e;
      }
      return check_external_id(request.cancel().create_command_id(), join(at, "createCommandId"));
    }
    case v1::ShipmentRequest::REQUEST_NOT_SET: break;
  }
  return error(std::string(path), "unknown request: expected one of create, cancel");
}

Validation validate(const v1::OrderCommand& command) {
  switch (command.command_case()) {
    case v1::OrderCommand::kPlaceOrder: return validate(command.place_order(), "placeOrder");
    case v1::OrderCommand::kCancelOrder: return validate(command.cancel_order(), "cancelOrder");
    case v1::OrderCommand::COMMAND_NOT_SET: break;
  }
  return error("", "unknown command: expected one of placeOrder, cancelOrder");
}

Validation validate(const v1::InventoryCommand& command) {
  switch (command.command_case()) {
    case v1::InventoryCommand::kReceiveStock:
      return validate(command.receive_stock(), "receiveStock");
    case v1::InventoryCommand::kAdjustStock: return validate(command.adjust_stock(), "adjustStock");
    case v1::InventoryCommand::COMMAND_NOT_SET: break;
  }
  return error("", "unknown command: expected one of receiveStock, adjustStock");
}

std::int64_t order_amount_cents(const v1::PlaceOrder& order) {
  // The static_assert on order_amount_cents_max proves the sum fits, given these bounds.
  FFE_ASSERT(order.lines_size() <= static_cast<int>(limits::order_lines_max),
             "order_amount_cents needs a PlaceOrder that passed validate()");
  std::int64_t total = 0;
  for (const v1::OrderLine& line : order.lines()) {
    FFE_ASSERT(line.qty() >= 1 && line.qty() <= limits::line_qty_max,
               "order_amount_cents needs a PlaceOrder that passed validate()");
    FFE_ASSERT(
        line.unit_price_cents() >= 0 && line.unit_price_cents() <= limits::unit_price_cents_max,
        "order_amount_cents needs a PlaceOrder that passed validate()");
    total += line.qty() * line.unit_price_cents();
  }
  return total;
}

}  // namespace ffe::events
