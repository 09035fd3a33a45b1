// The participant simulators' decisions (adapters/sim/participants.h), as tables: each
// scenario is a sequence of requests to one fresh participant and the answer each must get.
// Every reply is also checked against the contract's validation and against what the order
// decider accepts as an acknowledgement of a void / cancel (actors/order/order.cc).

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "adapters/sim/participants.h"
#include "events/validate.h"

namespace ffe::participants {
namespace {

// --- request builders -------------------------------------------------------------------------

v1::PaymentRequest authorize(const std::string& order, const std::string& token = "tok_visa",
                             const std::string& command_id = "") {
  v1::PaymentRequest request;
  request.set_command_id(command_id.empty() ? order + ":authorize:1" : command_id);
  request.set_order_id(order);
  request.mutable_authorize()->set_amount_cents(2598);
  request.mutable_authorize()->set_currency("USD");
  request.mutable_authorize()->set_token(token);
  return request;
}

v1::PaymentRequest void_of(const std::string& order, const std::string& payment_id = "",
                           const std::string& authorize_command_id = "",
                           const std::string& command_id = "") {
  v1::PaymentRequest request;
  request.set_command_id(command_id.empty() ? order + ":void:1" : command_id);
  request.set_order_id(order);
  request.mutable_void_()->set_payment_id(payment_id);
  request.mutable_void_()->set_authorize_command_id(
      authorize_command_id.empty() ? order + ":authorize:1" : authorize_command_id);
  return request;
}

v1::PaymentRequest refund(const std::string& order, const std::string& payment_id) {
  v1::PaymentRequest request;
  request.set_command_id(order + ":refund:1");
  request.set_order_id(order);
  request.mutable_refund()->set_payment_id(payment_id);
  request.mutable_refund()->set_amount_cents(2598);
  return request;
}

v1::ShipmentRequest create(const std::string& order, const std::string& country = "US",
                           const std::string& command_id = "") {
  v1::ShipmentRequest request;
  request.set_command_id(command_id.empty() ? order + ":ship:1" : command_id);
  request.set_order_id(order);
  v1::ItemLine& line = *request.mutable_create()->add_lines();
  line.set_sku("sku-1");
  line.set_qty(2);
  v1::Address& to = *request.mutable_create()->mutable_ship_to();
  to.set_name("A. Customer");
  to.set_line1("1 Main St");
  to.set_city("Springfield");
  to.set_country(country);
  return request;
}

v1::ShipmentRequest cancel(const std::string& order, const std::string& shipment_id = "",
                           const std::string& create_command_id = "",
                           const std::string& command_id = "") {
  v1::ShipmentRequest request;
  request.set_command_id(command_id.empty() ? order + ":cancel-shipment:1" : command_id);
  request.set_order_id(order);
  request.mutable_cancel()->set_shipment_id(shipment_id);
  request.mutable_cancel()->set_create_command_id(
      create_command_id.empty() ? order + ":ship:1" : create_command_id);
  return request;
}

// --- expectations -----------------------------------------------------------------------------

// "STATUS id|reason", or "silent".
template <class Reply>
std::string show(const std::optional<Reply>& reply) {
  if (!reply) return "silent";
  std::string id;
  if constexpr (std::is_same_v<Reply, v1::PaymentReply>) {
    id = reply->payment_id();
  } else {
    id = reply->shipment_id();
  }
  return Reply::Status_Name(reply->status()) + " " + id + "|" + reply->reason();
}

std::string expect(const std::string& status, const std::string& id, const std::string& reason) {
  return status + " " + id + "|" + reason;
}

template <class Request, class Reply>
void check_answers(const Request& request, const std::optional<Reply>& reply) {
  if (!reply) return;
  EXPECT_EQ(reply->command_id(), request.command_id());
  EXPECT_EQ(reply->order_id(), request.order_id());
  EXPECT_FALSE(events::validate(*reply)) << events::validate(*reply)->to_string();
  // What the order decider takes as acknowledging an undo (order.cc): a void is settled by
  // APPROVED or DECLINED, a cancel-shipment only by CANCELLED.
  if constexpr (std::is_same_v<Request, v1::PaymentRequest>) {
    if (request.has_void_()) {
      EXPECT_TRUE(reply->status() == v1::PaymentReply::APPROVED ||
                  reply->status() == v1::PaymentReply::DECLINED)
          << show(reply);
    }
  } else {
    if (request.has_cancel()) {
      EXPECT_EQ(reply->status(), v1::ShipmentReply::CANCELLED) << show(reply);
    }
  }
}

struct PaymentStep {
  v1::PaymentRequest request;
  std::string answer;
};
struct PaymentScenario {
  std::string name;
  std::vector<PaymentStep> steps;
};

TEST(PaymentParticipant, ConventionsDedupeGhostsAndUndoBeforeDo) {
  const std::string approved = expect("APPROVED", "p-o-1", "");
  const std::vector<PaymentScenario> table = {
      {"tok_visa is APPROVED, paymentId p-<orderId>", {{authorize("o-1"), approved}}},
      {"any other token is APPROVED too", {{authorize("o-1", "tok_mastercard"), approved}}},
      {"tok_decline is DECLINED without a paymentId",
       {{authorize("o-1", "tok_decline"), expect("DECLINED", "", "card declined")}}},
      {"tok_silent is never answered, not even on a repeat",
       {{authorize("o-1", "tok_silent"), "silent"}, {authorize("o-1", "tok_silent"), "silent"}}},
      {"a repeated commandId gets the first answer, whatever the body says",
       {{authorize("o-1"), approved},
        {authorize("o-1", "tok_decline"), approved},
        {authorize("o-1", "tok_silent"), approved}}},
      {"a repeated silent commandId stays silent even with a good token",
       {{authorize("o-1", "tok_silent"), "silent"}, {authorize("o-1", "tok_visa"), "silent"}}},
      {"a new commandId for the same order is a new request",
       {{authorize("o-1", "tok_decline"), expect("DECLINED", "", "card declined")},
        {authorize("o-1", "tok_visa", "o-1:authorize:2"), approved}}},
      {"void of an approved authorization: APPROVED, voided; a repeat gets the same",
       {{authorize("o-1"), approved},
        {void_of("o-1", "p-o-1"), expect("APPROVED", "p-o-1", "voided")},
        {void_of("o-1", "p-o-1"), expect("APPROVED", "p-o-1", "voided")},
        {void_of("o-1", "p-o-1", "", "o-1:void:2"), expect("APPROVED", "p-o-1", "already voided")}}},
      {"the ghost: a silent authorize is found by authorizeCommandId and voided",
       {{authorize("o-1", "tok_silent"), "silent"},
        {void_of("o-1"), expect("APPROVED", "p-o-1", "voided")},
        {authorize("o-1", "tok_silent"), "silent"}}},
      {"void of a declined authorization: DECLINED, nothing to void (acknowledged)",
       {{authorize("o-1", "tok_decline"), expect("DECLINED", "", "card declined")},
        {void_of("o-1"), expect("DECLINED", "", "nothing to void: the authorization was declined")}}},
      {"undo before do: the void is acknowledged, the late authorize refused",
       {{void_of("o-1"), expect("DECLINED", "", "nothing to void: never authorized")},
        {authorize("o-1"), expect("DECLINED", "", "voided before authorized")},
        {authorize("o-1"), expect("DECLINED", "", "voided before authorized")},
        // no live authorization was created: nothing to refund
        {refund("o-1", "p-o-1"), expect("DECLINED", "", "unknown payment")},
        {void_of("o-1", "", "", "o-1:void:2"),
         expect("DECLINED", "", "nothing to void: never authorized")}}},
      {"undo before do with tok_silent: still never answered, and nothing authorized",
       {{void_of("o-1"), expect("DECLINED", "", "nothing to void: never authorized")},
        {authorize("o-1", "tok_silent"), "silent"},
        {refund("o-1", "p-o-1"), expect("DECLINED", "", "unknown payment")}}},
      {"a void naming an unknown command id finds the authorization by paymentId",
       {{authorize("o-1"), approved},
        {void_of("o-1", "p-o-1", "o-1:authorize:9"), expect("APPROVED", "p-o-1", "voided")}}},
      {"refund of a live authorization: APPROVED; a void after it: already voided",
       {{authorize("o-1"), approved},
        {refund("o-1", "p-o-1"), expect("APPROVED", "p-o-1", "refunded")},
        {void_of("o-1"), expect("APPROVED", "p-o-1", "already voided")}}},
      {"refund of an unknown payment: DECLINED",
       {{refund("o-1", "p-o-1"), expect("DECLINED", "", "unknown payment")}}},
      {"orders do not interfere",
       {{authorize("o-1", "tok_silent"), "silent"},
        {authorize("o-2"), expect("APPROVED", "p-o-2", "")},
        {void_of("o-2"), expect("APPROVED", "p-o-2", "voided")},
        {void_of("o-1"), expect("APPROVED", "p-o-1", "voided")}}},
  };
  for (const PaymentScenario& scenario : table) {
    SCOPED_TRACE(scenario.name);
    PaymentState state(1000);
    for (std::size_t i = 0; i < scenario.steps.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(i) + ": " + scenario.steps[i].request.ShortDebugString());
      std::optional<v1::PaymentReply> reply = answer_payment(scenario.steps[i].request, state);
      EXPECT_EQ(show(reply), scenario.steps[i].answer);
      check_answers(scenario.steps[i].request, reply);
    }
  }
}

struct ShipmentStep {
  v1::ShipmentRequest request;
  std::string answer;
};
struct ShipmentScenario {
  std::string name;
  std::vector<ShipmentStep> steps;
};

TEST(ShippingParticipant, ConventionsDedupeAndUndoBeforeDo) {
  const std::string created = expect("CREATED", "s-o-1", "");
  const std::vector<ShipmentScenario> table = {
      {"CREATED, shipmentId s-<orderId>", {{create("o-1"), created}}},
      {"country XX is FAILED without a shipmentId",
       {{create("o-1", "XX"), expect("FAILED", "", "cannot ship to country XX")}}},
      {"a repeated commandId gets the first answer",
       {{create("o-1"), created}, {create("o-1", "XX"), created}}},
      {"cancel of a live shipment: CANCELLED; repeats the same; a new cancel: already",
       {{create("o-1"), created},
        {cancel("o-1", "s-o-1"), expect("CANCELLED", "s-o-1", "cancelled")},
        {cancel("o-1", "s-o-1"), expect("CANCELLED", "s-o-1", "cancelled")},
        {cancel("o-1", "s-o-1", "", "o-1:cancel-shipment:2"),
         expect("CANCELLED", "s-o-1", "already cancelled")}}},
      {"a cancel with an empty shipmentId finds the shipment by createCommandId",
       {{create("o-1"), created}, {cancel("o-1"), expect("CANCELLED", "s-o-1", "cancelled")}}},
      {"cancel of a failed shipment: CANCELLED, nothing to cancel (acknowledged)",
       {{create("o-1", "XX"), expect("FAILED", "", "cannot ship to country XX")},
        {cancel("o-1"), expect("CANCELLED", "", "nothing to cancel: the shipment failed")}}},
      {"undo before do: the cancel is acknowledged, the late create refused",
       {{cancel("o-1"), expect("CANCELLED", "", "nothing to cancel: never created")},
        {create("o-1"), expect("FAILED", "", "cancelled before created")},
        {create("o-1"), expect("FAILED", "", "cancelled before created")},
        {cancel("o-1", "", "", "o-1:cancel-shipment:2"),
         expect("CANCELLED", "", "nothing to cancel: never created")}}},
      {"a cancel naming an unknown command id finds the shipment by shipmentId",
       {{create("o-1"), created},
        {cancel("o-1", "s-o-1", "o-1:ship:9"), expect("CANCELLED", "s-o-1", "cancelled")}}},
  };
  for (const ShipmentScenario& scenario : table) {
    SCOPED_TRACE(scenario.name);
    ShipmentState state(1000);
    for (std::size_t i = 0; i < scenario.steps.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(i) + ": " + scenario.steps[i].request.ShortDebugString());
      std::optional<v1::ShipmentReply> reply = answer_shipment(scenario.steps[i].request, state);
      EXPECT_EQ(show(reply), scenario.steps[i].answer);
      check_answers(scenario.steps[i].request, reply);
    }
  }
}

TEST(PaymentParticipant, CountsRequestsAnswersDuplicatesAndSilence) {
  PaymentState state(1000);
  answer_payment(authorize("o-1"), state);
  answer_payment(authorize("o-1"), state);
  answer_payment(authorize("o-2", "tok_decline"), state);
  answer_payment(authorize("o-3", "tok_silent"), state);
  answer_payment(authorize("o-3", "tok_silent"), state);
  answer_payment(void_of("o-4"), state);
  answer_payment(authorize("o-4"), state);
  EXPECT_EQ(state.stats.requests, 7u);
  EXPECT_EQ(state.stats.duplicates, 2u);
  EXPECT_EQ(state.stats.silent, 2u);
  EXPECT_EQ(state.stats.undo_before_do, 1u);
  EXPECT_EQ(state.stats.answers[v1::PaymentReply::APPROVED], 2u);
  EXPECT_EQ(state.stats.answers[v1::PaymentReply::DECLINED], 3u);
  EXPECT_EQ(state.stats.answers[v1::PaymentReply::FAILED], 0u);
}

TEST(PaymentParticipant, MemoryIsBoundedByTheLruAndTheOldestIsForgottenFirst) {
  PaymentState state(100);
  for (int i = 0; i < 10'000; ++i) {
    const std::string order = "o-" + std::to_string(i);
    answer_payment(authorize(order, i % 3 == 0 ? "tok_silent" : "tok_visa"), state);
    answer_payment(void_of(order), state);
    ASSERT_LE(state.ledger.size(), 100u);
  }
  EXPECT_EQ(state.ledger.forgotten(), 20'000u - 100u);
  // The most recent are remembered: a repeat is a duplicate with the same answer...
  const std::uint64_t duplicates = state.stats.duplicates;
  EXPECT_EQ(show(answer_payment(void_of("o-9999"), state)), expect("APPROVED", "p-o-9999", "voided"));
  EXPECT_EQ(state.stats.duplicates, duplicates + 1);
  // ...and a forgotten command id is a new request again (documented limit of the window).
  EXPECT_EQ(show(answer_payment(authorize("o-1"), state)), expect("APPROVED", "p-o-1", ""));
  EXPECT_EQ(state.stats.duplicates, duplicates + 1);
}

TEST(PaymentParticipant, AnUndoKeepsTheAuthorizationItFoundFromBeingEvicted) {
  // With the smallest window, a void still finds the authorization it names when that is the
  // least recently used entry (find marks it used before the void's own entry is inserted).
  PaymentState state(4);
  answer_payment(authorize("o-1", "tok_silent"), state);
  for (int i = 2; i <= 4; ++i) answer_payment(authorize("o-" + std::to_string(i)), state);
  EXPECT_EQ(show(answer_payment(void_of("o-1"), state)), expect("APPROVED", "p-o-1", "voided"));
  EXPECT_LE(state.ledger.size(), 4u);
}

TEST(ShippingParticipant, MemoryIsBoundedByTheLru) {
  ShipmentState state(64);
  for (int i = 0; i < 5'000; ++i) {
    const std::string order = "o-" + std::to_string(i);
    answer_shipment(i % 2 ? create(order) : cancel(order), state);
    ASSERT_LE(state.ledger.size(), 64u);
  }
  EXPECT_EQ(show(answer_shipment(create("o-4999"), state)), expect("CREATED", "s-o-4999", ""));
}

TEST(Participants, IdsAreMintedFromTheOrderId) {
  EXPECT_EQ(payment_id_for("o-1001"), "p-o-1001");
  EXPECT_EQ(shipment_id_for("o-1001"), "s-o-1001");
}

}  // namespace
}  // namespace ffe::participants
