// The upcaster (events/upcast.h): a version-1 OrderPlaced (no amount_cents, no currency) comes
// out as a version-2 one would have been written; a current event is left alone; lines that
// no valid order could have are refused without overflow.

#include "events/upcast.h"

#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <limits>

#include "actors/order/order.h"
#include "events/limits.h"

namespace ffe::events {
namespace {

using google::protobuf::util::MessageDifferencer;

v1::PlaceOrder place(std::string currency = "") {
  v1::PlaceOrder order;
  order.set_order_id("o-1");
  order.set_customer_id("c-1");
  auto* line = order.add_lines();
  line->set_sku("sku-1");
  line->set_qty(2);
  line->set_unit_price_cents(1299);
  line = order.add_lines();
  line->set_sku("sku-2");
  line->set_qty(3);
  line->set_unit_price_cents(500);
  order.mutable_payment()->set_method("card");
  order.mutable_payment()->set_token("tok_visa");
  order.mutable_ship_to()->set_name("A. Customer");
  order.mutable_ship_to()->set_line1("1 Main St");
  order.mutable_ship_to()->set_city("Springfield");
  order.mutable_ship_to()->set_country("US");
  order.set_currency(std::move(currency));
  return order;
}

// An OrderPlaced as schema version 1 wrote it: the order, accepted and deadline only.
v1::OrderEvent placed_v1(const v1::PlaceOrder& order) {
  v1::OrderEvent event;
  *event.mutable_placed()->mutable_order() = order;
  event.mutable_placed()->set_accepted_at_ms(1'000);
  event.mutable_placed()->set_deadline_at_ms(31'000);
  return event;
}

TEST(Upcast, VersionOnePlacedGetsTheLinesTotalAndTheDefaultCurrency) {
  v1::OrderEvent event = placed_v1(place());
  const UpcastResult result = upcast(event);
  EXPECT_EQ(result.outcome, UpcastOutcome::kUpcast);
  EXPECT_EQ(event.placed().amount_cents(), 2 * 1299 + 3 * 500);
  EXPECT_EQ(event.placed().currency(), "USD");
  EXPECT_EQ(event.placed().accepted_at_ms(), 1'000);  // the rest as written
  EXPECT_EQ(event.placed().deadline_at_ms(), 31'000);
}

TEST(Upcast, VersionOnePlacedKeepsTheCurrencyTheOrderNamed) {
  v1::OrderEvent event = placed_v1(place("EUR"));
  EXPECT_EQ(upcast(event).outcome, UpcastOutcome::kUpcast);
  EXPECT_EQ(event.placed().currency(), "EUR");
  EXPECT_EQ(event.placed().amount_cents(), 4098);
}

// The upcaster must produce exactly what the current decider writes for the same order: then
// a version-1 journal folds to the same states (and digests) as a version-2 one.
TEST(Upcast, AVersionOnePlacedBecomesWhatTheCurrentDeciderWrites) {
  for (const std::string currency : {"", "EUR"}) {
    const order::Decision decision = order::decide(order::State{}, place(currency), 1'000, order::Policy{});
    ASSERT_FALSE(decision.rejected());
    ASSERT_TRUE(decision.events.at(0).has_placed());
    const v1::OrderEvent& current = decision.events[0];
    v1::OrderEvent old = current;
    old.mutable_placed()->clear_amount_cents();
    old.mutable_placed()->clear_currency();
    EXPECT_EQ(upcast(old).outcome, UpcastOutcome::kUpcast);
    EXPECT_TRUE(MessageDifferencer::Equals(old, current)) << old.DebugString() << "\nvs\n" << current.DebugString();
  }
  EXPECT_EQ(currency_default, "USD");
}

TEST(Upcast, CurrentEventsAreLeftAlone) {
  const order::Decision decision = order::decide(order::State{}, place(), 1'000, order::Policy{});
  ASSERT_FALSE(decision.rejected());
  for (const v1::OrderEvent& written : decision.events) {
    v1::OrderEvent event = written;
    EXPECT_EQ(upcast(event).outcome, UpcastOutcome::kCurrent);
    EXPECT_TRUE(MessageDifferencer::Equals(event, written));
  }
  // A zero-priced order of version 2: amount 0 is a value, the currency says it is current.
  v1::OrderEvent free_order = placed_v1(place());
  free_order.mutable_placed()->set_currency("USD");
  const v1::OrderEvent before = free_order;
  EXPECT_EQ(upcast(free_order).outcome, UpcastOutcome::kCurrent);
  EXPECT_TRUE(MessageDifferencer::Equals(free_order, before));
  // Other events never change.
  v1::OrderEvent completed;
  completed.mutable_completed()->set_state(v1::FULFILLED);
  EXPECT_EQ(upcast(completed).outcome, UpcastOutcome::kCurrent);
  v1::OrderEvent rejected;
  *rejected.mutable_rejected()->mutable_order() = place();
  EXPECT_EQ(upcast(rejected).outcome, UpcastOutcome::kCurrent);
  EXPECT_EQ(rejected.rejected().order().currency(), "");
}

TEST(Upcast, LinesThatOverflowAreRefusedWithoutUndefinedBehaviour) {
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  {  // one line's product overflows
    v1::PlaceOrder order = place();
    order.mutable_lines(1)->set_qty(max / 2);
    order.mutable_lines(1)->set_unit_price_cents(3);
    v1::OrderEvent event = placed_v1(order);
    const UpcastResult result = upcast(event);
    EXPECT_EQ(result.outcome, UpcastOutcome::kInvalid);
    EXPECT_FALSE(result.ok());
    EXPECT_NE(result.reason.find("overflows int64 at line 1"), std::string::npos) << result.reason;
    EXPECT_EQ(event.placed().currency(), "");  // unchanged
    EXPECT_EQ(event.placed().amount_cents(), 0);
  }
  {  // each product fits, the sum does not
    v1::PlaceOrder order = place();
    order.mutable_lines(0)->set_qty(max);
    order.mutable_lines(0)->set_unit_price_cents(1);
    v1::OrderEvent event = placed_v1(order);
    const UpcastResult result = upcast(event);
    EXPECT_EQ(result.outcome, UpcastOutcome::kInvalid);
    EXPECT_NE(result.reason.find("at line 1"), std::string::npos) << result.reason;
  }
  {  // negative values cannot come from a validated order
    v1::PlaceOrder order = place();
    order.mutable_lines(0)->set_unit_price_cents(-1);
    v1::OrderEvent event = placed_v1(order);
    EXPECT_EQ(upcast(event).outcome, UpcastOutcome::kInvalid);
  }
  {  // the largest valid order is fine
    v1::PlaceOrder order = place();
    order.clear_lines();
    for (std::size_t i = 0; i < limits::order_lines_max; ++i) {
      auto* line = order.add_lines();
      line->set_sku("sku-" + std::to_string(i));
      line->set_qty(limits::line_qty_max);
      line->set_unit_price_cents(limits::unit_price_cents_max);
    }
    v1::OrderEvent event = placed_v1(order);
    EXPECT_EQ(upcast(event).outcome, UpcastOutcome::kUpcast);
    EXPECT_EQ(event.placed().amount_cents(), static_cast<std::int64_t>(limits::order_lines_max) *
                                                 limits::line_qty_max * limits::unit_price_cents_max);
  }
}

TEST(Upcast, TheEnvelopeIsRaisedToTheCurrentVersion) {
  v1::JournalEvent envelope;
  envelope.set_schema_version(1);
  *envelope.mutable_order() = placed_v1(place());
  EXPECT_EQ(upcast(envelope).outcome, UpcastOutcome::kUpcast);
  EXPECT_EQ(envelope.schema_version(), journal_schema_version);
  EXPECT_EQ(envelope.order().placed().amount_cents(), 4098);

  v1::JournalEvent sku;
  sku.set_schema_version(1);
  sku.mutable_sku()->mutable_received()->set_qty(5);
  EXPECT_EQ(upcast(sku).outcome, UpcastOutcome::kCurrent);
  EXPECT_EQ(sku.schema_version(), journal_schema_version);

  v1::JournalEvent bad;
  v1::PlaceOrder order = place();
  order.mutable_lines(0)->set_qty(-3);
  *bad.mutable_order() = placed_v1(order);
  bad.set_schema_version(1);
  EXPECT_EQ(upcast(bad).outcome, UpcastOutcome::kInvalid);
  EXPECT_EQ(bad.schema_version(), 1u);  // not raised: it was not brought up
}

}  // namespace
}  // namespace ffe::events
