// The fast JSON writer (events/json_writer.h) prints exactly what events::encode_json prints,
// byte for byte, for every message it writes: fixed edge cases (defaults, absent
// sub-messages, empty lines, escaping, non-ASCII, unknown enum values) and many random
// messages of each type, directly and through encode_message.

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>

#include "events/codec.h"
#include "events/json_writer.h"

namespace ffe::events {
namespace {

std::string random_text(std::mt19937_64& rng, bool ascii_only) {
  static const std::string kAlphabet =
      "abcXYZ019 -_.:<>&'\"\\/\t\n\r\b\f\x01\x1f\x7f";
  std::string text;
  const std::size_t length = rng() % 12;
  for (std::size_t i = 0; i < length; ++i) {
    if (!ascii_only && rng() % 16 == 0) {
      text += "\xc3\xa9";  // é
    } else {
      text += kAlphabet[rng() % kAlphabet.size()];
    }
  }
  return text;
}

// The required fields always; the optional ones always or at random (left at their default).
void fill_address(v1::Address& a, std::mt19937_64& rng, bool ascii, bool every_field) {
  a.set_name(random_text(rng, ascii));
  a.set_line1(random_text(rng, ascii));
  a.set_city(random_text(rng, ascii));
  a.set_country(random_text(rng, ascii));
  if (every_field || rng() % 2) a.set_line2(random_text(rng, ascii));
  if (every_field || rng() % 2) a.set_postal_code(random_text(rng, ascii));
  if (every_field || rng() % 2) a.set_region(random_text(rng, ascii));
}

template <class Message>
void expect_same(const Message& message) {
  const std::string expected = encode_json(message);
  EXPECT_EQ(json::encode(message), expected) << message.ShortDebugString();
  EXPECT_EQ(json::encode_message(message), expected) << message.ShortDebugString();
}

TEST(JsonWriter, EdgeCasesPrintLikeProtobuf) {
  expect_same(v1::OrderCommand());
  expect_same(v1::InventoryCommand());
  v1::OrderCommand empty_place;
  empty_place.mutable_place_order();
  expect_same(empty_place);
  v1::OrderCommand cancel;
  cancel.mutable_cancel_order()->set_order_id("o-1");
  expect_same(cancel);
  v1::InventoryCommand adjust;
  adjust.mutable_adjust_stock()->set_delta(-3);
  expect_same(adjust);
  v1::PaymentReply unknown_status;
  unknown_status.set_status(static_cast<v1::PaymentReply::Status>(42));
  expect_same(unknown_status);
  v1::ShipmentReply unset;
  expect_same(unset);
  v1::PaymentReply escaped;
  escaped.set_command_id("<a> \"b\" \\c\x01\x7f\t");
  escaped.set_reason("caf\xc3\xa9 \xe2\x80\xa8");  // non-ASCII, and U+2028, which protobuf escapes
  expect_same(escaped);
  v1::OrderCommand place;
  v1::PlaceOrder& p = *place.mutable_place_order();
  p.set_order_id("o-1");
  p.add_lines()->set_qty(std::numeric_limits<std::int64_t>::min());
  p.mutable_ship_to();
  p.set_deadline_ms(std::numeric_limits<std::int64_t>::max());
  expect_same(place);

  expect_same(v1::PaymentRequest());
  expect_same(v1::ShipmentRequest());
  expect_same(v1::OrderOutcome());
  v1::PaymentRequest void_request;
  void_request.mutable_void_();
  expect_same(void_request);
  v1::ShipmentRequest create;
  create.mutable_create();
  expect_same(create);
  create.mutable_create()->mutable_ship_to();
  create.mutable_create()->add_lines();
  expect_same(create);
  v1::OrderOutcome outcome;
  outcome.set_state(static_cast<v1::OrderState>(99));
  outcome.set_shard(std::numeric_limits<std::int32_t>::min());
  outcome.set_revision(std::numeric_limits<std::int64_t>::max());
  outcome.add_lines()->set_sku("\xe2\x80\xa9");
  expect_same(outcome);
}

TEST(JsonWriter, RandomMessagesPrintLikeProtobuf) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 3000; ++i) {
    const bool ascii = i % 4 != 0;
    v1::OrderCommand order;
    if (rng() % 5 == 0) {
      order.mutable_cancel_order()->set_order_id(random_text(rng, ascii));
      order.mutable_cancel_order()->set_reason(random_text(rng, ascii));
    } else {
      v1::PlaceOrder& p = *order.mutable_place_order();
      p.set_order_id(random_text(rng, ascii));
      p.set_customer_id(random_text(rng, ascii));
      for (std::uint64_t l = rng() % 4; l > 0; --l) {
        v1::OrderLine& line = *p.add_lines();
        line.set_sku(random_text(rng, ascii));
        line.set_qty(static_cast<std::int64_t>(rng()));
        line.set_unit_price_cents(static_cast<std::int64_t>(rng() % 100000));
      }
      if (rng() % 4) {
        p.mutable_payment()->set_method(random_text(rng, ascii));
        p.mutable_payment()->set_token(random_text(rng, ascii));
      }
      if (rng() % 4) {
        fill_address(*p.mutable_ship_to(), rng, ascii, /*every_field=*/true);
      }
      p.set_deadline_ms(static_cast<std::int64_t>(rng() % 100000));
      p.set_currency(random_text(rng, ascii));
    }
    expect_same(order);

    v1::InventoryCommand stock;
    if (rng() % 2) {
      stock.mutable_receive_stock()->set_sku(random_text(rng, ascii));
      stock.mutable_receive_stock()->set_qty(static_cast<std::int64_t>(rng() % 1000));
      stock.mutable_receive_stock()->set_receipt_id(random_text(rng, ascii));
    } else {
      stock.mutable_adjust_stock()->set_sku(random_text(rng, ascii));
      stock.mutable_adjust_stock()->set_delta(-static_cast<std::int64_t>(rng() % 1000));
      stock.mutable_adjust_stock()->set_reason(random_text(rng, ascii));
      stock.mutable_adjust_stock()->set_adjustment_id(random_text(rng, ascii));
    }
    expect_same(stock);

    v1::PaymentReply payment;
    payment.set_command_id(random_text(rng, ascii));
    payment.set_order_id(random_text(rng, ascii));
    payment.set_status(static_cast<v1::PaymentReply::Status>(rng() % 4));
    payment.set_payment_id(random_text(rng, ascii));
    payment.set_reason(random_text(rng, ascii));
    expect_same(payment);

    v1::ShipmentReply shipment;
    shipment.set_command_id(random_text(rng, ascii));
    shipment.set_order_id(random_text(rng, ascii));
    shipment.set_status(static_cast<v1::ShipmentReply::Status>(rng() % 4));
    shipment.set_shipment_id(random_text(rng, ascii));
    shipment.set_reason(random_text(rng, ascii));
    expect_same(shipment);

    v1::PaymentRequest pay;
    pay.set_command_id(random_text(rng, ascii));
    pay.set_order_id(random_text(rng, ascii));
    switch (rng() % 4) {
      case 0:
        pay.mutable_authorize()->set_amount_cents(static_cast<std::int64_t>(rng()));
        pay.mutable_authorize()->set_currency(random_text(rng, ascii));
        pay.mutable_authorize()->set_token(random_text(rng, ascii));
        break;
      case 1:
        pay.mutable_void_()->set_payment_id(random_text(rng, ascii));
        pay.mutable_void_()->set_authorize_command_id(random_text(rng, ascii));
        break;
      case 2:
        pay.mutable_refund()->set_payment_id(random_text(rng, ascii));
        pay.mutable_refund()->set_amount_cents(-static_cast<std::int64_t>(rng() % 1000));
        break;
      default: break;
    }
    expect_same(pay);

    v1::ShipmentRequest ship;
    ship.set_command_id(random_text(rng, ascii));
    ship.set_order_id(random_text(rng, ascii));
    switch (rng() % 3) {
      case 0: {
        v1::CreateShipment& c = *ship.mutable_create();
        for (std::uint64_t l = rng() % 4; l > 0; --l) {
          c.add_lines()->set_sku(random_text(rng, ascii));
          c.mutable_lines()->rbegin()->set_qty(static_cast<std::int64_t>(rng() % 100));
        }
        if (rng() % 4) {
          fill_address(*c.mutable_ship_to(), rng, ascii, /*every_field=*/false);
        }
        break;
      }
      case 1:
        ship.mutable_cancel()->set_shipment_id(random_text(rng, ascii));
        ship.mutable_cancel()->set_create_command_id(random_text(rng, ascii));
        break;
      default: break;
    }
    expect_same(ship);

    v1::OrderOutcome outcome;
    outcome.set_order_id(random_text(rng, ascii));
    outcome.set_state(static_cast<v1::OrderState>(rng() % 10));
    outcome.set_reason(random_text(rng, ascii));
    outcome.set_shard(static_cast<std::int32_t>(rng() % 4096) - 1);
    outcome.set_revision(static_cast<std::int64_t>(rng() >> 1));
    for (std::uint64_t l = rng() % 4; l > 0; --l) {
      v1::ItemLine& line = *outcome.add_lines();
      line.set_sku(random_text(rng, ascii));
      line.set_qty(static_cast<std::int64_t>(rng() % 1000));
    }
    outcome.set_payment_id(random_text(rng, ascii));
    outcome.set_shipment_id(random_text(rng, ascii));
    expect_same(outcome);
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace ffe::events
