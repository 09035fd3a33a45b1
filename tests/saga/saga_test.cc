// The fulfillment saga: what react()/outstanding() send for each step, field for field
// against the contract (ARCHITECTURE.md, "Saga participants"), the outcome, the backoff, and
// whole walks where the order decider and the saga run against hand-written participants
// that answer by the simulators' conventions (tok_decline, tok_silent, country XX).
//
// Messages are rendered to one compact line each and compared as strings (LevelDB-style).

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "events/validate.h"
#include "sagas/fulfillment.h"

namespace ffe::saga {
namespace {

const order::Policy kPolicy;
constexpr std::int64_t kPlacedAt = 1'000;
constexpr const char* kOrderId = "o-1001";

// ---------------------------------------------------------------------------------------
// Rendering

std::string item_lines(const google::protobuf::RepeatedPtrField<v1::ItemLine>& lines) {
  std::string out;
  for (const v1::ItemLine& line : lines) {
    if (!out.empty()) out += ',';
    out += line.sku() + "x" + std::to_string(line.qty());
  }
  return out;
}

std::string render(const Outbound& message) {
  return std::visit(
      [](const auto& m) -> std::string {
        using T = std::decay_t<decltype(m)>;
        std::string out;
        if constexpr (std::is_same_v<T, v1::StockCommand>) {
          out = v1::StockCommand::Kind_Name(m.kind()) + " " + m.command_id() + " " + m.sku() +
                "x" + std::to_string(m.qty());
        } else if constexpr (std::is_same_v<T, v1::PaymentRequest>) {
          if (m.has_authorize()) {
            out = "authorize " + m.command_id() + " " +
                  std::to_string(m.authorize().amount_cents()) + " " + m.authorize().currency() +
                  " " + m.authorize().token();
          } else if (m.has_void_()) {
            out = "void " + m.command_id() + " payment=" + m.void_().payment_id() +
                  " of=" + m.void_().authorize_command_id();
          } else {
            out = "payment?";
          }
        } else if constexpr (std::is_same_v<T, v1::ShipmentRequest>) {
          if (m.has_create()) {
            out = "create " + m.command_id() + " " + item_lines(m.create().lines()) + " to " +
                  m.create().ship_to().country();
          } else if (m.has_cancel()) {
            out = "cancel " + m.command_id() + " shipment=" + m.cancel().shipment_id() +
                  " of=" + m.cancel().create_command_id();
          } else {
            out = "shipment?";
          }
        } else {
          out = "outcome " + v1::OrderState_Name(m.state()) + " reason=" + m.reason() +
                " lines=" + item_lines(m.lines()) + " payment=" + m.payment_id() +
                " shipment=" + m.shipment_id();
        }
        if (m.order_id() != kOrderId) out += " [order " + m.order_id() + "]";
        return out;
      },
      message);
}

std::string render(const std::vector<Outbound>& messages) {
  std::string out;
  for (const Outbound& message : messages) {
    if (!out.empty()) out += " | ";
    out += render(message);
  }
  return out;
}

// Canonical Protobuf JSON, every field printed: the contract's examples are in this form.
std::string json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &out, options).ok());
  return out;
}

// ---------------------------------------------------------------------------------------
// Orders and states

// The contract's example order: one line, 2 x 1299 = 2598 cents.
v1::PlaceOrder contract_order() {
  v1::PlaceOrder place;
  place.set_order_id(kOrderId);
  place.set_customer_id("c-7");
  auto* line = place.add_lines();
  line->set_sku("sku-1");
  line->set_qty(2);
  line->set_unit_price_cents(1299);
  place.mutable_payment()->set_method("card");
  place.mutable_payment()->set_token("tok_visa");
  auto* ship_to = place.mutable_ship_to();
  ship_to->set_name("A. Customer");
  ship_to->set_line1("1 Main St");
  ship_to->set_city("Springfield");
  ship_to->set_country("US");
  place.set_deadline_ms(30'000);
  return place;
}

v1::PlaceOrder two_line_order() {
  v1::PlaceOrder place = contract_order();
  auto* line = place.add_lines();
  line->set_sku("sku-2");
  line->set_qty(1);
  line->set_unit_price_cents(500);
  return place;
}

// An order state in `step`, built by hand (outstanding() reads state, not history).
order::State state_in(v1::SagaStep step, v1::OrderState state) {
  order::State s;
  s.order_id = kOrderId;
  s.state = state;
  s.customer_id = "c-7";
  s.lines = {{"sku-1", 2, 1299, order::LineStatus::kReserved},
             {"sku-2", 1, 500, order::LineStatus::kReserved}};
  s.payment_method = "card";
  s.payment_token = "tok_visa";
  s.ship_to = contract_order().ship_to();
  s.currency = "USD";
  s.amount_cents = 3098;
  s.accepted_at_ms = kPlacedAt;
  s.deadline_at_ms = kPlacedAt + 30'000;
  s.step = step;
  return s;
}

// ---------------------------------------------------------------------------------------
// Command ids

TEST(SagaCommandIds, FollowTheContract) {
  EXPECT_EQ("o-1001:reserve:sku-1", reserve_command_id(kOrderId, "sku-1"));
  EXPECT_EQ("o-1001:commit:sku-1", commit_command_id(kOrderId, "sku-1"));
  EXPECT_EQ("o-1001:release:sku-1", release_command_id(kOrderId, "sku-1"));
  EXPECT_EQ("o-1001:authorize:1", authorize_command_id(kOrderId));
  EXPECT_EQ("o-1001:void:1", void_command_id(kOrderId));
  EXPECT_EQ("o-1001:ship:1", ship_command_id(kOrderId));
  EXPECT_EQ("o-1001:cancel-shipment:1", cancel_shipment_command_id(kOrderId));
}

// ---------------------------------------------------------------------------------------
// outstanding(), step by step

TEST(SagaOutstanding, ReserveSendsEveryPendingLine) {
  order::State s = state_in(v1::RESERVE_STOCK, v1::RESERVING);
  s.lines[0].status = order::LineStatus::kPending;
  s.lines[1].status = order::LineStatus::kPending;
  EXPECT_EQ("RESERVE o-1001:reserve:sku-1 sku-1x2 | RESERVE o-1001:reserve:sku-2 sku-2x1",
            render(outstanding(s)));
  s.lines[0].status = order::LineStatus::kReserved;
  EXPECT_EQ("RESERVE o-1001:reserve:sku-2 sku-2x1", render(outstanding(s)));
}

TEST(SagaOutstanding, AuthorizeAsksForTheAmount) {
  const std::vector<Outbound> out = outstanding(state_in(v1::AUTHORIZE_PAYMENT, v1::AUTHORIZING));
  EXPECT_EQ("authorize o-1001:authorize:1 3098 USD tok_visa", render(out));
}

TEST(SagaOutstanding, CreateShipmentSendsEveryLineAndTheAddress) {
  const std::vector<Outbound> out = outstanding(state_in(v1::CREATE_SHIPMENT, v1::SHIPPING));
  EXPECT_EQ("create o-1001:ship:1 sku-1x2,sku-2x1 to US", render(out));
  ASSERT_EQ(1u, out.size());
  const auto& request = std::get<v1::ShipmentRequest>(out[0]);
  EXPECT_EQ("1 Main St", request.create().ship_to().line1());
  EXPECT_EQ(std::nullopt, events::validate(request));
}

TEST(SagaOutstanding, CommitSendsEveryReservedLine) {
  order::State s = state_in(v1::COMMIT_STOCK, v1::COMMITTING);
  EXPECT_EQ("COMMIT o-1001:commit:sku-1 sku-1x2 | COMMIT o-1001:commit:sku-2 sku-2x1",
            render(outstanding(s)));
  s.lines[0].status = order::LineStatus::kCommitted;
  EXPECT_EQ("COMMIT o-1001:commit:sku-2 sku-2x1", render(outstanding(s)));
}

TEST(SagaOutstanding, CancelShipmentNamesTheCreate) {
  order::State s = state_in(v1::CANCEL_SHIPMENT, v1::COMPENSATING);
  s.shipment_sent = true;
  EXPECT_EQ("cancel o-1001:cancel-shipment:1 shipment= of=o-1001:ship:1", render(outstanding(s)));
  s.shipment_created = true;
  s.shipment_id = "s-1";
  EXPECT_EQ("cancel o-1001:cancel-shipment:1 shipment=s-1 of=o-1001:ship:1",
            render(outstanding(s)));
}

TEST(SagaOutstanding, VoidNamesTheAuthorize) {
  order::State s = state_in(v1::VOID_PAYMENT, v1::COMPENSATING);
  s.authorize_sent = true;
  EXPECT_EQ("void o-1001:void:1 payment= of=o-1001:authorize:1", render(outstanding(s)));
  s.payment_authorized = true;
  s.payment_id = "p-1";
  EXPECT_EQ("void o-1001:void:1 payment=p-1 of=o-1001:authorize:1", render(outstanding(s)));
}

TEST(SagaOutstanding, ReleaseSendsEveryLineNotReleasedHeldOrNot) {
  order::State s = state_in(v1::RELEASE_STOCK, v1::COMPENSATING);
  s.lines.push_back({"sku-3", 4, 100, order::LineStatus::kPending});
  s.lines.push_back({"sku-4", 5, 100, order::LineStatus::kFailed});
  s.lines[1].status = order::LineStatus::kReleased;
  EXPECT_EQ(
      "RELEASE o-1001:release:sku-1 sku-1x2 | RELEASE o-1001:release:sku-3 sku-3x4 | "
      "RELEASE o-1001:release:sku-4 sku-4x5",
      render(outstanding(s)));
}

TEST(SagaOutstanding, NothingForTerminalOrUnknownOrders) {
  order::State s = state_in(v1::SAGA_STEP_UNSPECIFIED, v1::FULFILLED);
  EXPECT_TRUE(outstanding(s).empty());
  s.state = v1::CANCELLED;
  EXPECT_TRUE(outstanding(s).empty());
  EXPECT_TRUE(outstanding(order::State{}).empty());
}

// has_outstanding() is outstanding() without building the requests: the two agree in every
// step, for every pair of line statuses, and for terminal and unknown orders.
TEST(SagaOutstanding, HasOutstandingAgreesWithOutstanding) {
  const order::LineStatus statuses[] = {order::LineStatus::kPending, order::LineStatus::kReserved,
                                        order::LineStatus::kFailed, order::LineStatus::kCommitted,
                                        order::LineStatus::kReleased};
  const std::pair<v1::SagaStep, v1::OrderState> steps[] = {
      {v1::RESERVE_STOCK, v1::RESERVING},        {v1::AUTHORIZE_PAYMENT, v1::AUTHORIZING},
      {v1::CREATE_SHIPMENT, v1::SHIPPING},       {v1::COMMIT_STOCK, v1::COMMITTING},
      {v1::CANCEL_SHIPMENT, v1::COMPENSATING},   {v1::VOID_PAYMENT, v1::COMPENSATING},
      {v1::RELEASE_STOCK, v1::COMPENSATING}};
  int with = 0, without = 0;
  for (const auto& [step, state] : steps) {
    for (order::LineStatus first : statuses) {
      for (order::LineStatus second : statuses) {
        order::State s = state_in(step, state);
        s.lines[0].status = first;
        s.lines[1].status = second;
        const bool expected = !outstanding(s).empty();
        EXPECT_EQ(expected, has_outstanding(s)) << "step " << v1::SagaStep_Name(step) << ", lines "
                                                << static_cast<int>(first) << "," << static_cast<int>(second);
        (expected ? with : without) += 1;
      }
    }
  }
  EXPECT_GT(with, 0);
  EXPECT_GT(without, 0);  // both answers occur: the stock steps with every line done
  EXPECT_FALSE(has_outstanding(state_in(v1::SAGA_STEP_UNSPECIFIED, v1::FULFILLED)));
  EXPECT_FALSE(has_outstanding(state_in(v1::SAGA_STEP_UNSPECIFIED, v1::CANCELLED)));
  EXPECT_FALSE(has_outstanding(order::State{}));
}

// A RESERVED reply the order no longer expects: units are held for nobody unless released.
v1::StockReply reserved_reply(const std::string& sku) {
  v1::StockReply reply;
  reply.set_command_id(reserve_command_id(kOrderId, sku));
  reply.set_order_id(kOrderId);
  reply.set_sku(sku);
  reply.set_status(v1::StockReply::RESERVED);
  reply.set_qty(2);
  return reply;
}

TEST(SagaAnswerUnexpected, LateReserveAfterTerminalIsReleased) {
  for (v1::OrderState terminal : {v1::CANCELLED, v1::REJECTED, v1::FULFILLED}) {
    order::State s = state_in(v1::SAGA_STEP_UNSPECIFIED, terminal);
    s.lines[0].status = terminal == v1::FULFILLED ? order::LineStatus::kCommitted
                                                  : order::LineStatus::kReleased;
    EXPECT_EQ("RELEASE o-1001:release:sku-1 sku-1x2",
              render(answer_unexpected(s, reserved_reply("sku-1"))))
        << v1::OrderState_Name(terminal);
  }
}

TEST(SagaAnswerUnexpected, LateReserveOfAReleasedLineWhileCompensatingIsReleased) {
  order::State s = state_in(v1::RELEASE_STOCK, v1::COMPENSATING);
  s.lines[0].status = order::LineStatus::kReleased;
  EXPECT_EQ("RELEASE o-1001:release:sku-1 sku-1x2",
            render(answer_unexpected(s, reserved_reply("sku-1"))));
  // sku-2's release is still outstanding (and retried): nothing extra.
  EXPECT_TRUE(answer_unexpected(s, reserved_reply("sku-2")).empty());
}

TEST(SagaAnswerUnexpected, DuplicateReplyOfAHeldLineNeedsNothing) {
  const order::State s = state_in(v1::AUTHORIZE_PAYMENT, v1::AUTHORIZING);
  EXPECT_TRUE(answer_unexpected(s, reserved_reply("sku-1")).empty());
}

TEST(SagaAnswerUnexpected, OtherRepliesAndUnknownSkusNeedNothing) {
  const order::State s = state_in(v1::SAGA_STEP_UNSPECIFIED, v1::CANCELLED);
  v1::StockReply released = reserved_reply("sku-1");
  released.set_status(v1::StockReply::RELEASED);
  EXPECT_TRUE(answer_unexpected(s, released).empty());
  EXPECT_TRUE(answer_unexpected(s, reserved_reply("sku-9")).empty());
  EXPECT_TRUE(answer_unexpected(order::State{}, reserved_reply("sku-1")).empty());
}

// The contract's JSON examples, field for field.
TEST(SagaOutstanding, MessagesMatchTheContractJson) {
  order::State s = state_in(v1::AUTHORIZE_PAYMENT, v1::AUTHORIZING);
  s.lines.pop_back();
  s.amount_cents = 2598;
  EXPECT_EQ(
      R"({"commandId":"o-1001:authorize:1","orderId":"o-1001",)"
      R"("authorize":{"amountCents":"2598","currency":"USD","token":"tok_visa"}})",
      json(std::get<v1::PaymentRequest>(outstanding(s).at(0))));

  s.step = v1::VOID_PAYMENT;
  s.state = v1::COMPENSATING;
  s.authorize_sent = s.payment_authorized = true;
  s.payment_id = "p-1";
  EXPECT_EQ(
      R"({"commandId":"o-1001:void:1","orderId":"o-1001",)"
      R"("void":{"paymentId":"p-1","authorizeCommandId":"o-1001:authorize:1"}})",
      json(std::get<v1::PaymentRequest>(outstanding(s).at(0))));

  s.step = v1::CANCEL_SHIPMENT;
  s.shipment_sent = s.shipment_created = true;
  s.shipment_id = "s-1";
  EXPECT_EQ(
      R"({"commandId":"o-1001:cancel-shipment:1","orderId":"o-1001",)"
      R"("cancel":{"shipmentId":"s-1","createCommandId":"o-1001:ship:1"}})",
      json(std::get<v1::ShipmentRequest>(outstanding(s).at(0))));

  s.step = v1::CREATE_SHIPMENT;
  s.state = v1::SHIPPING;
  EXPECT_EQ(
      R"({"commandId":"o-1001:ship:1","orderId":"o-1001",)"
      R"("create":{"lines":[{"sku":"sku-1","qty":"2"}],)"
      R"("shipTo":{"name":"A. Customer","line1":"1 Main St","city":"Springfield",)"
      R"("country":"US","line2":"","postalCode":"","region":""}}})",
      json(std::get<v1::ShipmentRequest>(outstanding(s).at(0))));
}

// ---------------------------------------------------------------------------------------
// react()

TEST(SagaReact, OnlyStepStartsAndEndsSendAnything) {
  const order::State s = state_in(v1::RESERVE_STOCK, v1::RESERVING);
  v1::OrderEvent event;
  event.mutable_line_reserved()->set_sku("sku-1");
  EXPECT_TRUE(react(s, event).empty());
  event.mutable_payment_authorized()->set_payment_id("p-1");
  EXPECT_TRUE(react(s, event).empty());
  event.mutable_compensation_started()->set_target_state(v1::CANCELLED);
  EXPECT_TRUE(react(s, event).empty());
  event.mutable_step_timed_out()->set_step(v1::RESERVE_STOCK);
  EXPECT_TRUE(react(s, event).empty());
}

TEST(SagaReact, PlacedOrderReservesEveryLine) {
  const order::Decision decision =
      order::decide(order::State{}, two_line_order(), kPlacedAt, kPolicy);
  ASSERT_EQ(2u, decision.events.size());
  order::State s;
  std::vector<Outbound> sent;
  for (const v1::OrderEvent& event : decision.events) {
    order::evolve(s, event);
    for (Outbound& message : react(s, event)) sent.push_back(std::move(message));
  }
  EXPECT_EQ("RESERVE o-1001:reserve:sku-1 sku-1x2 | RESERVE o-1001:reserve:sku-2 sku-2x1",
            render(sent));
  const auto& reserve = std::get<v1::StockCommand>(sent[0]);
  EXPECT_EQ(kOrderId, reserve.order_id());
  EXPECT_EQ(v1::StockCommand::RESERVE, reserve.kind());
}

TEST(SagaReact, RejectedOrderPublishesItsOutcome) {
  v1::PlaceOrder place = contract_order();
  place.mutable_payment()->set_token("");
  const order::Decision decision = order::decide(order::State{}, place, kPlacedAt, kPolicy);
  ASSERT_EQ(1u, decision.events.size());
  order::State s;
  order::evolve(s, decision.events[0]);
  EXPECT_EQ("outcome REJECTED reason=placeOrder.payment.token: is required lines=sku-1x2 payment= "
            "shipment=",
            render(react(s, decision.events[0])));
}

TEST(SagaOutcome, CarriesTheTerminalFactsWithoutShardOrRevision) {
  order::State s = state_in(v1::SAGA_STEP_UNSPECIFIED, v1::FULFILLED);
  s.lines.pop_back();
  s.lines[0].status = order::LineStatus::kCommitted;
  s.payment_id = "p-1";
  s.shipment_id = "s-1";
  const v1::OrderOutcome result = outcome(s);
  // The contract's example, except shard and revision, which the runtime fills in.
  EXPECT_EQ(
      R"({"orderId":"o-1001","state":"FULFILLED","reason":"","shard":0,"revision":"0",)"
      R"("lines":[{"sku":"sku-1","qty":"2"}],"paymentId":"p-1","shipmentId":"s-1"})",
      json(result));
}

using SagaDeathTest = ::testing::Test;

TEST(SagaDeathTest, OutcomeOfAnOpenOrderAborts) {
  EXPECT_DEATH(outcome(state_in(v1::RESERVE_STOCK, v1::RESERVING)), "not terminal");
}

TEST(SagaDeathTest, RetryAttemptZeroAborts) {
  EXPECT_DEATH(retry_delay_ms(RetryPolicy{}, 0), "count from 1");
}

// ---------------------------------------------------------------------------------------
// Backoff

TEST(SagaRetry, DoublesUpToTheCap) {
  const RetryPolicy policy;  // 200 ms, capped at 5000 ms
  std::string delays;
  for (int attempt = 1; attempt <= 8; ++attempt) {
    delays += std::to_string(retry_delay_ms(policy, attempt)) + " ";
  }
  EXPECT_EQ("200 400 800 1600 3200 5000 5000 5000 ", delays);
}

TEST(SagaRetry, HugeAttemptsNeverOverflow) {
  EXPECT_EQ(5'000, retry_delay_ms(RetryPolicy{}, std::numeric_limits<int>::max()));
  const RetryPolicy uncapped{1, std::numeric_limits<std::int64_t>::max()};
  EXPECT_EQ(std::int64_t{1} << 62, retry_delay_ms(uncapped, 63));
  EXPECT_EQ(std::numeric_limits<std::int64_t>::max(), retry_delay_ms(uncapped, 64));
  EXPECT_EQ(std::numeric_limits<std::int64_t>::max(),
            retry_delay_ms(uncapped, std::numeric_limits<int>::max()));
  EXPECT_EQ(0, retry_delay_ms(RetryPolicy{0, 5'000}, 1'000));
  EXPECT_EQ(7, retry_delay_ms(RetryPolicy{7, 7}, 3));
}

// ---------------------------------------------------------------------------------------
// Walks: the order decider and the saga against hand-written participants

// One order, its outbox, and participants that answer by the simulators' conventions.
// Every message react() sends is logged; a rejection is logged as "!<code>".
class Walk {
 public:
  explicit Walk(const v1::PlaceOrder& place) { send(place); }

  std::int64_t now_ms = kPlacedAt;
  std::map<std::string, std::int64_t> available = {{"sku-1", 10}, {"sku-2", 10}};
  // Messages for which this returns true are held (not answered) until release_held().
  std::function<bool(const Outbound&)> hold = [](const Outbound&) { return false; };
  // Every request is answered twice, as a participant may (the outcome is published once).
  bool answer_twice = false;

  // Feeds a command to the order at now_ms, applies its events and queues what they trigger.
  void send(const order::Command& command) {
    const order::Decision decision = order::decide(state_, command, now_ms, kPolicy);
    if (decision.rejected()) {
      log(std::string("!") + to_string(decision.rejection->code));
      return;
    }
    for (const v1::OrderEvent& event : decision.events) {
      order::evolve(state_, event);
      for (Outbound& message : react(state_, event)) {
        log(render(message));
        check_contract(message);
        outbox_.push_back(std::move(message));
      }
    }
    EXPECT_EQ(std::nullopt, order::check_invariants(state_));
  }

  // Delivers every queued message and its answers until nothing is left to answer.
  void run() {
    while (!outbox_.empty()) {
      Outbound message = std::move(outbox_.front());
      outbox_.pop_front();
      now_ms += 10;
      if (hold(message)) {
        held_.push_back(std::move(message));
        continue;
      }
      deliver(message);
    }
  }

  void release_held() {
    std::deque<Outbound> held = std::move(held_);
    held_.clear();
    for (const Outbound& message : held) deliver(message);
  }

  const order::State& state() const { return state_; }
  const std::vector<v1::OrderOutcome>& outcomes() const { return outcomes_; }
  std::string transcript() const { return transcript_; }

 private:
  void log(const std::string& line) {
    if (!transcript_.empty()) transcript_ += " | ";
    transcript_ += line;
  }

  static void check_contract(const Outbound& message) {
    if (const auto* payment = std::get_if<v1::PaymentRequest>(&message)) {
      EXPECT_EQ(std::nullopt, events::validate(*payment));
    }
    if (const auto* shipment = std::get_if<v1::ShipmentRequest>(&message)) {
      EXPECT_EQ(std::nullopt, events::validate(*shipment));
    }
  }

  void deliver(const Outbound& message) {
    std::visit([this](const auto& m) { answer(m); }, message);
    if (answer_twice && !std::holds_alternative<v1::OrderOutcome>(message)) {
      std::visit([this](const auto& m) { answer(m); }, message);
    }
  }

  // The SKU: holds, gives back, ships; a repeated command id gets the same answer.
  void answer(const v1::StockCommand& command) {
    if (auto seen = stock_replies_.find(command.command_id()); seen != stock_replies_.end()) {
      send(seen->second);
      return;
    }
    v1::StockReply reply;
    reply.set_command_id(command.command_id());
    reply.set_order_id(command.order_id());
    reply.set_sku(command.sku());
    reply.set_qty(command.qty());
    std::int64_t& units = available[command.sku()];
    switch (command.kind()) {
      case v1::StockCommand::RESERVE:
        if (units >= command.qty()) {
          units -= command.qty();
          held_units_[command.sku()] = command.qty();
          reply.set_status(v1::StockReply::RESERVED);
        } else {
          reply.set_status(v1::StockReply::INSUFFICIENT);
        }
        break;
      case v1::StockCommand::RELEASE:
        units += held_units_[command.sku()];
        held_units_[command.sku()] = 0;
        reply.set_status(v1::StockReply::RELEASED);
        break;
      case v1::StockCommand::COMMIT:
        held_units_[command.sku()] = 0;
        reply.set_status(v1::StockReply::COMMITTED);
        break;
      default:
        FAIL() << "stock command without a kind";
    }
    reply.set_available(units);
    stock_replies_[command.command_id()] = reply;
    send(reply);
  }

  // The payment service: tok_decline is DECLINED, tok_silent never answered.
  void answer(const v1::PaymentRequest& request) {
    v1::PaymentReply reply;
    reply.set_command_id(request.command_id());
    reply.set_order_id(request.order_id());
    if (request.has_authorize()) {
      if (request.authorize().token() == "tok_silent") return;
      if (request.authorize().token() == "tok_decline") {
        reply.set_status(v1::PaymentReply::DECLINED);
        reply.set_reason("card declined");
      } else {
        reply.set_status(v1::PaymentReply::APPROVED);
        reply.set_payment_id("p-1");
      }
    } else {
      reply.set_status(v1::PaymentReply::APPROVED);  // voided (or nothing to void)
      reply.set_payment_id(request.void_().payment_id());
    }
    send(reply);
  }

  // The shipping service: country XX fails.
  void answer(const v1::ShipmentRequest& request) {
    v1::ShipmentReply reply;
    reply.set_command_id(request.command_id());
    reply.set_order_id(request.order_id());
    if (request.has_create()) {
      if (request.create().ship_to().country() == "XX") {
        reply.set_status(v1::ShipmentReply::FAILED);
        reply.set_reason("cannot ship to XX");
      } else {
        reply.set_status(v1::ShipmentReply::CREATED);
        reply.set_shipment_id("s-1");
      }
    } else {
      reply.set_status(v1::ShipmentReply::CANCELLED);
      reply.set_shipment_id(request.cancel().shipment_id());
    }
    send(reply);
  }

  void answer(const v1::OrderOutcome& outcome) { outcomes_.push_back(outcome); }

  order::State state_;
  std::deque<Outbound> outbox_;
  std::deque<Outbound> held_;
  std::map<std::string, std::int64_t> held_units_;
  std::map<std::string, v1::StockReply> stock_replies_;
  std::vector<v1::OrderOutcome> outcomes_;
  std::string transcript_;
};

TEST(SagaWalk, HappyPathIsFulfilled) {
  Walk walk(contract_order());
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2"
      " | authorize o-1001:authorize:1 2598 USD tok_visa"
      " | create o-1001:ship:1 sku-1x2 to US"
      " | COMMIT o-1001:commit:sku-1 sku-1x2"
      " | outcome FULFILLED reason= lines=sku-1x2 payment=p-1 shipment=s-1",
      walk.transcript());
  ASSERT_EQ(1u, walk.outcomes().size());
  EXPECT_EQ(0, walk.outcomes()[0].shard());
  EXPECT_EQ(0, walk.outcomes()[0].revision());
  EXPECT_EQ(v1::FULFILLED, walk.state().state);
  EXPECT_EQ(8, walk.available["sku-1"]);  // 2 of 10 shipped
}

TEST(SagaWalk, EveryRequestAnsweredTwiceIsFulfilledOnce) {
  Walk walk(two_line_order());
  walk.answer_twice = true;
  walk.run();
  // Each repeat is refused ("!unexpected", or "!already terminal" for the last commit's) and
  // changes nothing: without those, the transcript is the single-answer one.
  std::string transcript = walk.transcript();
  int repeats = 0;
  for (const std::string refusal : {" | !unexpected", " | !already terminal"}) {
    for (std::size_t at; (at = transcript.find(refusal)) != std::string::npos; ++repeats) {
      transcript.erase(at, refusal.size());
    }
  }
  EXPECT_EQ(6, repeats);  // 2 reserves, authorize, create, 2 commits
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2 | RESERVE o-1001:reserve:sku-2 sku-2x1"
      " | authorize o-1001:authorize:1 3098 USD tok_visa"
      " | create o-1001:ship:1 sku-1x2,sku-2x1 to US"
      " | COMMIT o-1001:commit:sku-1 sku-1x2 | COMMIT o-1001:commit:sku-2 sku-2x1"
      " | outcome FULFILLED reason= lines=sku-1x2,sku-2x1 payment=p-1 shipment=s-1",
      transcript);
  EXPECT_EQ(1u, walk.outcomes().size());
  EXPECT_EQ(8, walk.available["sku-1"]);
  EXPECT_EQ(9, walk.available["sku-2"]);
}

TEST(SagaWalk, DeclinedPaymentReleasesAndCancels) {
  v1::PlaceOrder place = contract_order();
  place.mutable_payment()->set_token("tok_decline");
  Walk walk(place);
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2"
      " | authorize o-1001:authorize:1 2598 USD tok_decline"
      " | RELEASE o-1001:release:sku-1 sku-1x2"
      " | outcome CANCELLED reason=payment declined: card declined lines=sku-1x2 payment= "
      "shipment=",
      walk.transcript());
  EXPECT_EQ(10, walk.available["sku-1"]);
}

TEST(SagaWalk, SilentPaymentTimesOutAndVoidsTheGhost) {
  v1::PlaceOrder place = contract_order();
  place.mutable_payment()->set_token("tok_silent");
  Walk walk(place);
  walk.run();
  EXPECT_EQ(v1::AUTHORIZING, walk.state().state);
  walk.send(order::Expire{});  // early: nothing happens
  walk.now_ms = walk.state().step_deadline_at_ms;
  walk.send(order::Expire{});
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2"
      " | authorize o-1001:authorize:1 2598 USD tok_silent"
      " | void o-1001:void:1 payment= of=o-1001:authorize:1"
      " | RELEASE o-1001:release:sku-1 sku-1x2"
      " | outcome CANCELLED reason=AUTHORIZE_PAYMENT timed out lines=sku-1x2 payment= shipment=",
      walk.transcript());
  EXPECT_EQ(10, walk.available["sku-1"]);
}

TEST(SagaWalk, FailedShipmentVoidsThePaymentAndReleases) {
  v1::PlaceOrder place = contract_order();
  place.mutable_ship_to()->set_country("XX");
  Walk walk(place);
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2"
      " | authorize o-1001:authorize:1 2598 USD tok_visa"
      " | create o-1001:ship:1 sku-1x2 to XX"
      " | void o-1001:void:1 payment=p-1 of=o-1001:authorize:1"
      " | RELEASE o-1001:release:sku-1 sku-1x2"
      " | outcome CANCELLED reason=shipment failed: cannot ship to XX lines=sku-1x2 payment=p-1 "
      "shipment=",
      walk.transcript());
}

TEST(SagaWalk, SilentShipmentTimesOutAndCancelsTheGhostThenVoids) {
  Walk walk(contract_order());
  walk.hold = [](const Outbound& m) {
    const auto* request = std::get_if<v1::ShipmentRequest>(&m);
    return request != nullptr && request->has_create();
  };
  walk.run();
  walk.now_ms = walk.state().step_deadline_at_ms;
  walk.send(order::Expire{});
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2"
      " | authorize o-1001:authorize:1 2598 USD tok_visa"
      " | create o-1001:ship:1 sku-1x2 to US"
      " | cancel o-1001:cancel-shipment:1 shipment= of=o-1001:ship:1"
      " | void o-1001:void:1 payment=p-1 of=o-1001:authorize:1"
      " | RELEASE o-1001:release:sku-1 sku-1x2"
      " | outcome CANCELLED reason=CREATE_SHIPMENT timed out lines=sku-1x2 payment=p-1 shipment=",
      walk.transcript());
  walk.release_held();  // the create is answered after all: terminal absorbs it
  EXPECT_EQ(v1::CANCELLED, walk.state().state);
  EXPECT_NE(std::string::npos, walk.transcript().rfind("!already terminal"));
}

TEST(SagaWalk, CancelWhileShippingCompensatesEverything) {
  Walk walk(two_line_order());
  walk.hold = [](const Outbound& m) {
    const auto* request = std::get_if<v1::ShipmentRequest>(&m);
    return request != nullptr && request->has_create();
  };
  walk.run();
  EXPECT_EQ(v1::SHIPPING, walk.state().state);
  v1::CancelOrder cancel;
  cancel.set_order_id(kOrderId);
  cancel.set_reason("changed my mind");
  // The cancel-shipment is held too, so the late create answer lands while compensating.
  walk.hold = [](const Outbound& m) { return std::holds_alternative<v1::ShipmentRequest>(m); };
  walk.send(cancel);
  walk.run();
  walk.hold = [](const Outbound&) { return false; };
  walk.release_held();  // the create's CREATED (late: ignored), then the cancel's CANCELLED
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2 | RESERVE o-1001:reserve:sku-2 sku-2x1"
      " | authorize o-1001:authorize:1 3098 USD tok_visa"
      " | create o-1001:ship:1 sku-1x2,sku-2x1 to US"
      " | cancel o-1001:cancel-shipment:1 shipment= of=o-1001:ship:1"
      " | !unexpected"
      " | void o-1001:void:1 payment=p-1 of=o-1001:authorize:1"
      " | RELEASE o-1001:release:sku-1 sku-1x2 | RELEASE o-1001:release:sku-2 sku-2x1"
      " | outcome CANCELLED reason=cancelled: changed my mind lines=sku-1x2,sku-2x1 payment=p-1 "
      "shipment=",
      walk.transcript());
  EXPECT_EQ(10, walk.available["sku-1"]);
  EXPECT_EQ(10, walk.available["sku-2"]);
}

TEST(SagaWalk, OutOfStockReleasesEveryLineAndRejects) {
  Walk walk(two_line_order());
  walk.available["sku-2"] = 0;
  walk.run();
  EXPECT_EQ(
      "RESERVE o-1001:reserve:sku-1 sku-1x2 | RESERVE o-1001:reserve:sku-2 sku-2x1"
      " | RELEASE o-1001:release:sku-1 sku-1x2 | RELEASE o-1001:release:sku-2 sku-2x1"
      " | outcome REJECTED reason=out of stock: sku-2 (asked 1, available 0)"
      " lines=sku-1x2,sku-2x1 payment= shipment=",
      walk.transcript());
  EXPECT_EQ(10, walk.available["sku-1"]);
}

TEST(SagaWalk, RetryResendsExactlyWhatTheStepWaitsFor) {
  v1::PlaceOrder place = contract_order();
  place.mutable_payment()->set_token("tok_silent");
  Walk walk(place);
  walk.run();
  EXPECT_EQ("authorize o-1001:authorize:1 2598 USD tok_silent", render(outstanding(walk.state())));
}

}  // namespace
}  // namespace ffe::saga
