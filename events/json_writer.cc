#include "events/json_writer.h"

#include <cstdint>
#include <string_view>

#include "events/codec.h"
#include "events/json_text.h"

namespace ffe::events::json {

namespace {

// Appends JSON the way protobuf 3.21's printer does (strings by events/json_text.h, which
// escapes every code point as protobuf does).
class Writer {
 public:
  explicit Writer(std::size_t reserve) { out_.reserve(reserve); }

  Writer& raw(std::string_view text) {
    out_.append(text);
    return *this;
  }
  Writer& key(std::string_view name) {
    if (need_comma_) out_.push_back(',');
    out_.push_back('"');
    out_.append(name);
    out_.append("\":");
    need_comma_ = false;
    return *this;
  }
  Writer& str(std::string_view name, std::string_view value) {
    key(name);
    quoted(value);
    need_comma_ = true;
    return *this;
  }
  Writer& int64(std::string_view name, std::int64_t value) {
    key(name);
    out_.push_back('"');
    out_.append(std::to_string(value));
    out_.push_back('"');
    need_comma_ = true;
    return *this;
  }
  Writer& int32(std::string_view name, std::int32_t value) {  // a number, unquoted
    key(name);
    out_.append(std::to_string(value));
    need_comma_ = true;
    return *this;
  }
  Writer& bare(std::string_view name, std::string_view value) {  // enum names
    key(name);
    out_.append(value);
    need_comma_ = true;
    return *this;
  }
  Writer& open(std::string_view name) {
    key(name);
    out_.push_back('{');
    need_comma_ = false;
    return *this;
  }
  Writer& open() {
    if (need_comma_) out_.push_back(',');
    out_.push_back('{');
    need_comma_ = false;
    return *this;
  }
  Writer& close() {
    out_.push_back('}');
    need_comma_ = true;
    return *this;
  }
  Writer& open_array(std::string_view name) {
    key(name);
    out_.push_back('[');
    need_comma_ = false;
    return *this;
  }
  Writer& close_array() {
    out_.push_back(']');
    need_comma_ = true;
    return *this;
  }

  std::string take() { return std::move(out_); }

 private:
  void quoted(std::string_view text) {
    events::json::append_string(out_, text);
  }

  std::string out_;
  bool need_comma_ = false;
};

template <class Enum>
std::string enum_text(Enum value, const std::string& name) {
  // An unknown value is printed as its number, as protobuf does.
  return name.empty() ? std::to_string(static_cast<int>(value)) : "\"" + name + "\"";
}

void address(Writer& w, std::string_view name, const v1::Address& a) {
  w.open(name)
      .str("name", a.name())
      .str("line1", a.line1())
      .str("city", a.city())
      .str("country", a.country())
      .str("line2", a.line2())
      .str("postalCode", a.postal_code())
      .str("region", a.region())
      .close();
}

void item_lines(Writer& w, const google::protobuf::RepeatedPtrField<v1::ItemLine>& lines) {
  w.open_array("lines");
  for (const v1::ItemLine& line : lines) w.open().str("sku", line.sku()).int64("qty", line.qty()).close();
  w.close_array();
}

}  // namespace

std::string encode(const v1::OrderCommand& command) {
  Writer w(512);
  w.open();
  if (command.has_place_order()) {
    const v1::PlaceOrder& p = command.place_order();
    w.open("placeOrder").str("orderId", p.order_id()).str("customerId", p.customer_id());
    w.open_array("lines");
    for (const v1::OrderLine& line : p.lines()) {
      w.open()
          .str("sku", line.sku())
          .int64("qty", line.qty())
          .int64("unitPriceCents", line.unit_price_cents())
          .close();
    }
    w.close_array();
    if (p.has_payment()) {
      w.open("payment").str("method", p.payment().method()).str("token", p.payment().token()).close();
    }
    if (p.has_ship_to()) address(w, "shipTo", p.ship_to());
    w.int64("deadlineMs", p.deadline_ms()).str("currency", p.currency()).close();
  } else if (command.has_cancel_order()) {
    w.open("cancelOrder")
        .str("orderId", command.cancel_order().order_id())
        .str("reason", command.cancel_order().reason())
        .close();
  }
  w.close();
  return w.take();
}

std::string encode(const v1::InventoryCommand& command) {
  Writer w(128);
  w.open();
  if (command.has_receive_stock()) {
    const v1::ReceiveStock& r = command.receive_stock();
    w.open("receiveStock").str("sku", r.sku()).int64("qty", r.qty()).str("receiptId", r.receipt_id()).close();
  } else if (command.has_adjust_stock()) {
    const v1::AdjustStock& a = command.adjust_stock();
    w.open("adjustStock")
        .str("sku", a.sku())
        .int64("delta", a.delta())
        .str("reason", a.reason())
        .str("adjustmentId", a.adjustment_id())
        .close();
  }
  w.close();
  return w.take();
}

std::string encode(const v1::PaymentReply& reply) {
  Writer w(160);
  w.open()
      .str("commandId", reply.command_id())
      .str("orderId", reply.order_id())
      .bare("status", enum_text(reply.status(), v1::PaymentReply::Status_Name(reply.status())))
      .str("paymentId", reply.payment_id())
      .str("reason", reply.reason())
      .close();
  return w.take();
}

std::string encode(const v1::ShipmentReply& reply) {
  Writer w(160);
  w.open()
      .str("commandId", reply.command_id())
      .str("orderId", reply.order_id())
      .bare("status", enum_text(reply.status(), v1::ShipmentReply::Status_Name(reply.status())))
      .str("shipmentId", reply.shipment_id())
      .str("reason", reply.reason())
      .close();
  return w.take();
}

std::string encode(const v1::PaymentRequest& request) {
  Writer w(192);
  w.open().str("commandId", request.command_id()).str("orderId", request.order_id());
  switch (request.request_case()) {
    case v1::PaymentRequest::kAuthorize: {
      const v1::Authorize& a = request.authorize();
      w.open("authorize")
          .int64("amountCents", a.amount_cents())
          .str("currency", a.currency())
          .str("token", a.token())
          .close();
      break;
    }
    case v1::PaymentRequest::kVoid:
      w.open("void")
          .str("paymentId", request.void_().payment_id())
          .str("authorizeCommandId", request.void_().authorize_command_id())
          .close();
      break;
    case v1::PaymentRequest::kRefund:
      w.open("refund")
          .str("paymentId", request.refund().payment_id())
          .int64("amountCents", request.refund().amount_cents())
          .close();
      break;
    case v1::PaymentRequest::REQUEST_NOT_SET: break;
  }
  w.close();
  return w.take();
}

std::string encode(const v1::ShipmentRequest& request) {
  Writer w(384);
  w.open().str("commandId", request.command_id()).str("orderId", request.order_id());
  switch (request.request_case()) {
    case v1::ShipmentRequest::kCreate:
      w.open("create");
      item_lines(w, request.create().lines());
      if (request.create().has_ship_to()) address(w, "shipTo", request.create().ship_to());
      w.close();
      break;
    case v1::ShipmentRequest::kCancel:
      w.open("cancel")
          .str("shipmentId", request.cancel().shipment_id())
          .str("createCommandId", request.cancel().create_command_id())
          .close();
      break;
    case v1::ShipmentRequest::REQUEST_NOT_SET: break;
  }
  w.close();
  return w.take();
}

std::string encode(const v1::OrderOutcome& outcome) {
  Writer w(256);
  w.open()
      .str("orderId", outcome.order_id())
      .bare("state", enum_text(outcome.state(), v1::OrderState_Name(outcome.state())))
      .str("reason", outcome.reason())
      .int32("shard", outcome.shard())
      .int64("revision", outcome.revision());
  item_lines(w, outcome.lines());
  w.str("paymentId", outcome.payment_id()).str("shipmentId", outcome.shipment_id()).close();
  return w.take();
}

std::string encode_message(const google::protobuf::Message& message) {
  if (const auto* m = dynamic_cast<const v1::PaymentRequest*>(&message)) return encode(*m);
  if (const auto* m = dynamic_cast<const v1::ShipmentRequest*>(&message)) return encode(*m);
  if (const auto* m = dynamic_cast<const v1::OrderOutcome*>(&message)) return encode(*m);
  if (const auto* m = dynamic_cast<const v1::PaymentReply*>(&message)) return encode(*m);
  if (const auto* m = dynamic_cast<const v1::ShipmentReply*>(&message)) return encode(*m);
  if (const auto* m = dynamic_cast<const v1::OrderCommand*>(&message)) return encode(*m);
  if (const auto* m = dynamic_cast<const v1::InventoryCommand*>(&message)) return encode(*m);
  return encode_json(message);
}

}  // namespace ffe::events::json
