#include "adapters/sim/json_writer.h"

#include <cstdint>
#include <string_view>

#include "events/codec.h"

namespace ffe::participants::json {

namespace {

// Appends JSON the way protobuf 3.21's printer does, for ASCII text; `ascii` turns false at
// the first byte >= 0x80 (then the caller prints with protobuf instead).
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

  bool ascii() const { return ascii_; }
  std::string take() { return std::move(out_); }

 private:
  void quoted(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_.push_back('"');
    for (char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      switch (c) {
        case '"': out_.append("\\\""); continue;
        case '\\': out_.append("\\\\"); continue;
        case '\b': out_.append("\\b"); continue;
        case '\f': out_.append("\\f"); continue;
        case '\n': out_.append("\\n"); continue;
        case '\r': out_.append("\\r"); continue;
        case '\t': out_.append("\\t"); continue;
        default: break;
      }
      if (byte >= 0x80) {
        ascii_ = false;
        out_.push_back(c);
      } else if (byte < 0x20 || byte == 0x7f || c == '<' || c == '>') {
        out_.append("\\u00");
        out_.push_back(kHex[byte >> 4]);
        out_.push_back(kHex[byte & 0xf]);
      } else {
        out_.push_back(c);
      }
    }
    out_.push_back('"');
  }

  std::string out_;
  bool need_comma_ = false;
  bool ascii_ = true;
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

template <class Message>
std::string finish(Writer& w, const Message& message) {
  return w.ascii() ? w.take() : events::encode_json(message);
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
  return finish(w, command);
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
  return finish(w, command);
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
  return finish(w, reply);
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
  return finish(w, reply);
}

}  // namespace ffe::participants::json
