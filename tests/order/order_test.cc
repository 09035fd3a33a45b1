// The order decider, table-driven (STYLE habit 10): given the events of an order's past,
// when a command arrives at a time, then these events (rendered to a compact string and
// compared, LevelDB-style) or this rejection. Every row also checks that the state before
// and after the decided events keeps check_invariants().
//
// Time line of the histories below (default Policy: deadline 30000, reserve 5000,
// authorize 10000, ship 10000): placed at 1000 (order deadline 31000, reserve step 6000),
// all reserved at 2000 (authorize step 12000), authorized at 3000 (ship step 13000),
// shipment created at 4000 (commit, no deadline).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "actors/order/order.h"
#include "sagas/fulfillment.h"

namespace ffe::order {
namespace {

const Policy kPolicy;
constexpr std::int64_t kPlacedAt = 1'000;
constexpr std::int64_t kReservedAt = 2'000;
constexpr std::int64_t kAuthorizedAt = 3'000;
constexpr std::int64_t kCreatedAt = 4'000;
constexpr std::int64_t kLater = 5'000;  // any time before every step's deadline
constexpr std::int64_t kOrderDeadline = kPlacedAt + 30'000;
constexpr std::int64_t kReserveDeadline = kPlacedAt + 5'000;
constexpr std::int64_t kAuthorizeDeadline = kReservedAt + 10'000;
constexpr std::int64_t kShipDeadline = kAuthorizedAt + 10'000;
constexpr const char* kOrderId = "o-1001";

// ---------------------------------------------------------------------------------------
// Rendering

std::string render(const v1::OrderEvent& event) {
  switch (event.event_case()) {
    case v1::OrderEvent::kPlaced:
      return "placed(" + std::to_string(event.placed().amount_cents()) + " " +
             event.placed().currency() + ",deadline " +
             std::to_string(event.placed().deadline_at_ms()) + ")";
    case v1::OrderEvent::kRejected: return "rejected(" + event.rejected().reason() + ")";
    case v1::OrderEvent::kStepStarted:
      return "step(" + v1::SagaStep_Name(event.step_started().step()) + "," +
             std::to_string(event.step_started().deadline_at_ms()) + ")";
    case v1::OrderEvent::kLineReserved:
      return "reserved(" + event.line_reserved().sku() + "," +
             std::to_string(event.line_reserved().qty()) + ")";
    case v1::OrderEvent::kLineReservationFailed:
      return "reserve_failed(" + event.line_reservation_failed().sku() + "," +
             event.line_reservation_failed().reason() + ",available " +
             std::to_string(event.line_reservation_failed().available()) + ")";
    case v1::OrderEvent::kPaymentAuthorized:
      return "authorized(" + event.payment_authorized().payment_id() + ")";
    case v1::OrderEvent::kPaymentRefused:
      return "payment_refused(" + v1::PaymentReply::Status_Name(event.payment_refused().status()) +
             "," + event.payment_refused().reason() + ")";
    case v1::OrderEvent::kShipmentCreated:
      return "shipment_created(" + event.shipment_created().shipment_id() + ")";
    case v1::OrderEvent::kShipmentRefused:
      return "shipment_refused(" + event.shipment_refused().reason() + ")";
    case v1::OrderEvent::kStepTimedOut:
      return "timed_out(" + v1::SagaStep_Name(event.step_timed_out().step()) + ")";
    case v1::OrderEvent::kCancelRequested:
      return "cancel_requested(" + event.cancel_requested().reason() + ")";
    case v1::OrderEvent::kCompensationStarted:
      return "compensate(" + v1::OrderState_Name(event.compensation_started().target_state()) +
             "," + event.compensation_started().reason() + ")";
    case v1::OrderEvent::kLineCommitted: return "committed(" + event.line_committed().sku() + ")";
    case v1::OrderEvent::kLineReleased: return "released(" + event.line_released().sku() + ")";
    case v1::OrderEvent::kPaymentVoided: return "voided";
    case v1::OrderEvent::kShipmentCancelled: return "shipment_cancelled";
    case v1::OrderEvent::kCompleted:
      return "completed(" + v1::OrderState_Name(event.completed().state()) +
             (event.completed().reason().empty() ? "" : "," + event.completed().reason()) + ")";
    case v1::OrderEvent::EVENT_NOT_SET: break;
  }
  return "?";
}

std::string render(const std::vector<v1::OrderEvent>& events) {
  std::string out;
  for (const v1::OrderEvent& event : events) {
    if (!out.empty()) out += ' ';
    out += render(event);
  }
  return out;
}

// Events as above; a rejection as "!<code>"; a no-op as "".
std::string render(const Decision& decision) {
  if (decision.rejected()) return std::string("!") + to_string(decision.rejection->code);
  return render(decision.events);
}

// ---------------------------------------------------------------------------------------
// Commands

v1::PlaceOrder place_order() {
  v1::PlaceOrder place;
  place.set_order_id(kOrderId);
  place.set_customer_id("c-7");
  auto* first = place.add_lines();
  first->set_sku("sku-1");
  first->set_qty(2);
  first->set_unit_price_cents(1299);
  auto* second = place.add_lines();
  second->set_sku("sku-2");
  second->set_qty(1);
  second->set_unit_price_cents(500);
  place.mutable_payment()->set_method("card");
  place.mutable_payment()->set_token("tok_visa");
  auto* ship_to = place.mutable_ship_to();
  ship_to->set_name("A. Customer");
  ship_to->set_line1("1 Main St");
  ship_to->set_city("Springfield");
  ship_to->set_country("US");
  return place;
}
constexpr std::int64_t kAmount = 2 * 1299 + 1 * 500;

v1::PlaceOrder place_with_deadline(std::int64_t deadline_ms) {
  v1::PlaceOrder place = place_order();
  place.set_deadline_ms(deadline_ms);
  return place;
}

v1::StockReply stock(const std::string& command_id, const std::string& sku,
                     v1::StockReply::Status status, std::int64_t available = 10) {
  v1::StockReply reply;
  reply.set_command_id(command_id);
  reply.set_order_id(kOrderId);
  reply.set_sku(sku);
  reply.set_status(status);
  reply.set_qty(sku == "sku-1" ? 2 : 1);
  reply.set_available(available);
  return reply;
}
v1::StockReply reserve_reply(const std::string& sku, v1::StockReply::Status status,
                             std::int64_t available = 10) {
  return stock(saga::reserve_command_id(kOrderId, sku), sku, status, available);
}
v1::StockReply commit_reply(const std::string& sku, v1::StockReply::Status status) {
  return stock(saga::commit_command_id(kOrderId, sku), sku, status);
}
v1::StockReply release_reply(const std::string& sku, v1::StockReply::Status status) {
  return stock(saga::release_command_id(kOrderId, sku), sku, status);
}

v1::PaymentReply payment(const std::string& command_id, v1::PaymentReply::Status status,
                         const std::string& payment_id = "", const std::string& reason = "") {
  v1::PaymentReply reply;
  reply.set_command_id(command_id);
  reply.set_order_id(kOrderId);
  reply.set_status(status);
  reply.set_payment_id(payment_id);
  reply.set_reason(reason);
  return reply;
}
v1::PaymentReply authorize_reply(v1::PaymentReply::Status status, const std::string& reason = "") {
  return payment(saga::authorize_command_id(kOrderId), status,
                 status == v1::PaymentReply::APPROVED ? "p-1" : "", reason);
}
v1::PaymentReply void_reply(v1::PaymentReply::Status status) {
  return payment(saga::void_command_id(kOrderId), status);
}

v1::ShipmentReply shipment(const std::string& command_id, v1::ShipmentReply::Status status,
                           const std::string& shipment_id = "", const std::string& reason = "") {
  v1::ShipmentReply reply;
  reply.set_command_id(command_id);
  reply.set_order_id(kOrderId);
  reply.set_status(status);
  reply.set_shipment_id(shipment_id);
  reply.set_reason(reason);
  return reply;
}
v1::ShipmentReply create_reply(v1::ShipmentReply::Status status, const std::string& reason = "") {
  return shipment(saga::ship_command_id(kOrderId), status,
                  status == v1::ShipmentReply::CREATED ? "s-1" : "", reason);
}
v1::ShipmentReply cancel_shipment_reply(v1::ShipmentReply::Status status) {
  return shipment(saga::cancel_shipment_command_id(kOrderId), status);
}

v1::CancelOrder cancel_order(const std::string& reason = "changed my mind") {
  v1::CancelOrder cancel;
  cancel.set_order_id(kOrderId);
  cancel.set_reason(reason);
  return cancel;
}

// ---------------------------------------------------------------------------------------
// Events, for the "given" column

using History = std::vector<v1::OrderEvent>;

History operator+(History history, const History& more) {
  history.insert(history.end(), more.begin(), more.end());
  return history;
}

v1::OrderEvent placed(const v1::PlaceOrder& place = place_order()) {
  v1::OrderEvent event;
  auto* out = event.mutable_placed();
  *out->mutable_order() = place;
  out->set_accepted_at_ms(kPlacedAt);
  out->set_deadline_at_ms(kPlacedAt + (place.deadline_ms() ? place.deadline_ms() : 30'000));
  out->set_amount_cents(kAmount);
  out->set_currency("USD");
  return event;
}
v1::OrderEvent step(v1::SagaStep saga_step, std::int64_t deadline_at_ms, std::int64_t at_ms) {
  v1::OrderEvent event;
  event.mutable_step_started()->set_step(saga_step);
  event.mutable_step_started()->set_deadline_at_ms(deadline_at_ms);
  event.mutable_step_started()->set_started_at_ms(at_ms);
  return event;
}
v1::OrderEvent reserved(const std::string& sku, std::int64_t qty) {
  v1::OrderEvent event;
  event.mutable_line_reserved()->set_sku(sku);
  event.mutable_line_reserved()->set_qty(qty);
  return event;
}
v1::OrderEvent reserve_failed(const std::string& sku) {
  v1::OrderEvent event;
  event.mutable_line_reservation_failed()->set_sku(sku);
  event.mutable_line_reservation_failed()->set_reason("insufficient");
  return event;
}
v1::OrderEvent authorized() {
  v1::OrderEvent event;
  event.mutable_payment_authorized()->set_payment_id("p-1");
  return event;
}
v1::OrderEvent payment_refused() {
  v1::OrderEvent event;
  event.mutable_payment_refused()->set_status(v1::PaymentReply::DECLINED);
  return event;
}
v1::OrderEvent shipment_created() {
  v1::OrderEvent event;
  event.mutable_shipment_created()->set_shipment_id("s-1");
  return event;
}
v1::OrderEvent shipment_refused() {
  v1::OrderEvent event;
  event.mutable_shipment_refused()->set_reason("no route");
  return event;
}
v1::OrderEvent timed_out(v1::SagaStep saga_step, std::int64_t at_ms) {
  v1::OrderEvent event;
  event.mutable_step_timed_out()->set_step(saga_step);
  event.mutable_step_timed_out()->set_at_ms(at_ms);
  return event;
}
v1::OrderEvent cancel_requested() {
  v1::OrderEvent event;
  event.mutable_cancel_requested()->set_reason("changed my mind");
  event.mutable_cancel_requested()->set_at_ms(kLater);
  return event;
}
v1::OrderEvent compensate(v1::OrderState target, const std::string& reason) {
  v1::OrderEvent event;
  event.mutable_compensation_started()->set_target_state(target);
  event.mutable_compensation_started()->set_reason(reason);
  return event;
}
v1::OrderEvent committed(const std::string& sku) {
  v1::OrderEvent event;
  event.mutable_line_committed()->set_sku(sku);
  return event;
}
v1::OrderEvent released(const std::string& sku) {
  v1::OrderEvent event;
  event.mutable_line_released()->set_sku(sku);
  return event;
}
v1::OrderEvent voided() {
  v1::OrderEvent event;
  event.mutable_payment_voided();
  return event;
}
v1::OrderEvent shipment_cancelled() {
  v1::OrderEvent event;
  event.mutable_shipment_cancelled();
  return event;
}
v1::OrderEvent completed(v1::OrderState terminal, const std::string& reason = "") {
  v1::OrderEvent event;
  event.mutable_completed()->set_state(terminal);
  event.mutable_completed()->set_reason(reason);
  event.mutable_completed()->set_completed_at_ms(kLater);
  return event;
}
v1::OrderEvent rejected_invalid() {
  v1::PlaceOrder place = place_order();
  place.mutable_lines(0)->set_qty(0);
  v1::OrderEvent event;
  *event.mutable_rejected()->mutable_order() = place;
  event.mutable_rejected()->set_reason(
      "placeOrder.lines[0].qty: must be between 1 and 1000000 (got 0)");
  event.mutable_rejected()->set_rejected_at_ms(kPlacedAt);
  return event;
}

// Forward.
const History kReserving = {placed(), step(v1::RESERVE_STOCK, kReserveDeadline, kPlacedAt)};
const History kReservingOne = kReserving + History{reserved("sku-1", 2)};
const History kAuthorizing =
    kReservingOne +
    History{reserved("sku-2", 1), step(v1::AUTHORIZE_PAYMENT, kAuthorizeDeadline, kReservedAt)};
const History kShipping =
    kAuthorizing + History{authorized(), step(v1::CREATE_SHIPMENT, kShipDeadline, kAuthorizedAt)};
const History kCommitting =
    kShipping + History{shipment_created(), step(v1::COMMIT_STOCK, 0, kCreatedAt)};
const History kCommittingOne = kCommitting + History{committed("sku-1")};
const History kFulfilled = kCommittingOne + History{committed("sku-2"), completed(v1::FULFILLED)};

// Compensating.
const History kReleasingOutOfStock =
    kReservingOne + History{reserve_failed("sku-2"),
                            compensate(v1::REJECTED, "out of stock: sku-2"),
                            step(v1::RELEASE_STOCK, 0, kReservedAt)};
const History kReleasingOutOfStockOne = kReleasingOutOfStock + History{released("sku-1")};
const History kReleasingDeclined =
    kAuthorizing + History{payment_refused(), compensate(v1::CANCELLED, "payment declined"),
                           step(v1::RELEASE_STOCK, 0, kAuthorizedAt)};
const History kVoidingShipmentFailed =
    kShipping + History{shipment_refused(), compensate(v1::CANCELLED, "shipment failed: no route"),
                        step(v1::VOID_PAYMENT, 0, kCreatedAt)};
const History kCancellingShipment =
    kShipping +
    History{timed_out(v1::CREATE_SHIPMENT, kShipDeadline),
            compensate(v1::CANCELLED, "CREATE_SHIPMENT timed out"),
            step(v1::CANCEL_SHIPMENT, 0, kShipDeadline)};
const History kVoidingAfterCancelShipment =
    kCancellingShipment + History{shipment_cancelled(), step(v1::VOID_PAYMENT, 0, kLater)};
const History kVoidingGhost =
    kAuthorizing + History{timed_out(v1::AUTHORIZE_PAYMENT, kAuthorizeDeadline),
                           compensate(v1::CANCELLED, "AUTHORIZE_PAYMENT timed out"),
                           step(v1::VOID_PAYMENT, 0, kAuthorizeDeadline)};
const History kReleasingAfterVoid =
    kVoidingGhost + History{voided(), step(v1::RELEASE_STOCK, 0, kLater)};
const History kReleasingAfterVoidOne = kReleasingAfterVoid + History{released("sku-1")};
const History kCancelled =
    kReleasingAfterVoidOne +
    History{released("sku-2"), completed(v1::CANCELLED, "AUTHORIZE_PAYMENT timed out")};
const History kCancelledWhileReserving =
    kReservingOne + History{cancel_requested(),
                            compensate(v1::CANCELLED, "cancelled: changed my mind"),
                            step(v1::RELEASE_STOCK, 0, kLater)};
const History kRejectedInvalid = {rejected_invalid()};

State state_of(const History& history) {
  State state;
  for (const v1::OrderEvent& event : history) evolve(state, event);
  return state;
}

// ---------------------------------------------------------------------------------------
// The table

struct Case {
  std::string name;
  History given;
  Command when;
  std::int64_t now_ms;
  std::string then;
};

std::ostream& operator<<(std::ostream& out, const Case& c) { return out << c.name; }

const std::string kOutOfStockSku2 =
    "reserve_failed(sku-2,insufficient,available 0) "
    "compensate(REJECTED,out of stock: sku-2 (asked 1, available 0)) step(RELEASE_STOCK,0)";

const std::vector<Case> kCases = {
    // --- PlaceOrder -----------------------------------------------------------------------
    {"place_valid", {}, place_order(), kPlacedAt,
     "placed(3098 USD,deadline 31000) step(RESERVE_STOCK,6000)"},
    {"place_step_deadline_is_order_deadline_when_earlier", {}, place_with_deadline(3'000),
     kPlacedAt,
     "placed(3098 USD,deadline 4000) step(RESERVE_STOCK,4000)"},
    {"place_keeps_its_currency", {},
     [] { auto p = place_order(); p.set_currency("EUR"); return p; }(),
     kPlacedAt, "placed(3098 EUR,deadline 31000) step(RESERVE_STOCK,6000)"},
    {"place_invalid_is_a_rejected_order", {},
     [] { auto p = place_order(); p.mutable_lines(0)->set_qty(0); return p; }(), kPlacedAt,
     "rejected(placeOrder.lines[0].qty: must be between 1 and 1000000 (got 0))"},
    {"place_repeating_a_sku_is_a_rejected_order", {},
     [] { auto p = place_order(); p.mutable_lines(1)->set_sku("sku-1"); return p; }(), kPlacedAt,
     "rejected(placeOrder.lines[1].sku: duplicate of lines[0])"},
    {"place_without_usable_order_id", {},
     [] { auto p = place_order(); p.set_order_id("o 1001"); return p; }(), kPlacedAt, "!invalid"},
    {"place_again_is_a_noop", kReserving,
     [] { auto p = place_order(); p.set_customer_id("someone-else"); return p; }(), kLater, ""},
    {"place_again_after_terminal_is_a_noop", kFulfilled, place_order(), kLater, ""},
    {"place_again_after_rejected_is_a_noop", kRejectedInvalid, place_order(), kLater, ""},

    // --- unknown order ----------------------------------------------------------------------
    {"cancel_unknown_order", {}, cancel_order(), kLater, "!unknown entity"},
    {"stock_reply_unknown_order", {}, reserve_reply("sku-1", v1::StockReply::RESERVED), kLater,
     "!unknown entity"},
    {"payment_reply_unknown_order", {}, authorize_reply(v1::PaymentReply::APPROVED), kLater,
     "!unknown entity"},
    {"shipment_reply_unknown_order", {}, create_reply(v1::ShipmentReply::CREATED), kLater,
     "!unknown entity"},
    {"expire_unknown_order", {}, Expire{}, kLater, "!unknown entity"},

    // --- terminal is absorbing --------------------------------------------------------------
    {"cancel_after_fulfilled", kFulfilled, cancel_order(), kLater, "!already terminal"},
    {"duplicate_commit_after_fulfilled", kFulfilled,
     commit_reply("sku-2", v1::StockReply::COMMITTED), kLater, "!already terminal"},
    {"expire_after_fulfilled", kFulfilled, Expire{}, kOrderDeadline, "!already terminal"},
    {"cancel_after_cancelled", kCancelled, cancel_order(), kLater, "!already terminal"},
    {"late_approve_after_cancelled", kCancelled, authorize_reply(v1::PaymentReply::APPROVED),
     kLater, "!already terminal"},
    {"duplicate_release_after_cancelled", kCancelled,
     release_reply("sku-2", v1::StockReply::RELEASED), kLater, "!already terminal"},
    {"cancel_after_rejected", kRejectedInvalid, cancel_order(), kLater, "!already terminal"},
    {"expire_after_rejected", kRejectedInvalid, Expire{}, kOrderDeadline, "!already terminal"},

    // --- RESERVE_STOCK ----------------------------------------------------------------------
    {"reserve_first_line", kReserving, reserve_reply("sku-1", v1::StockReply::RESERVED),
     kReservedAt, "reserved(sku-1,2)"},
    {"reserve_last_line_starts_authorize", kReservingOne,
     reserve_reply("sku-2", v1::StockReply::RESERVED), kReservedAt,
     "reserved(sku-2,1) step(AUTHORIZE_PAYMENT,12000)"},
    {"authorize_deadline_is_order_deadline_when_earlier",
     History{placed(place_with_deadline(3'000)), step(v1::RESERVE_STOCK, 4'000, kPlacedAt),
             reserved("sku-1", 2)},
     reserve_reply("sku-2", v1::StockReply::RESERVED), kReservedAt,
     "reserved(sku-2,1) step(AUTHORIZE_PAYMENT,4000)"},
    {"reserve_insufficient_compensates_to_rejected", kReservingOne,
     reserve_reply("sku-2", v1::StockReply::INSUFFICIENT, 0), kReservedAt, kOutOfStockSku2},
    {"reserve_insufficient_on_first_line", kReserving,
     reserve_reply("sku-2", v1::StockReply::INSUFFICIENT, 0), kReservedAt, kOutOfStockSku2},
    {"reserve_refused_compensates_to_rejected", kReservingOne,
     reserve_reply("sku-2", v1::StockReply::REFUSED, 0), kReservedAt,
     "reserve_failed(sku-2,refused,available 0) "
     "compensate(REJECTED,out of stock: sku-2 (refused)) step(RELEASE_STOCK,0)"},
    {"reserve_failure_keeps_the_skus_reason", kReservingOne,
     [] {
       auto r = reserve_reply("sku-2", v1::StockReply::INSUFFICIENT, 0);
       r.set_reason("sku-2 has 0 available");
       return r;
     }(),
     kReservedAt,
     "reserve_failed(sku-2,sku-2 has 0 available,available 0) "
     "compensate(REJECTED,out of stock: sku-2 (asked 1, available 0)) step(RELEASE_STOCK,0)"},
    {"reserve_duplicate_reply", kReservingOne, reserve_reply("sku-1", v1::StockReply::RESERVED),
     kReservedAt, "!unexpected"},
    {"reserve_reply_for_unknown_sku", kReserving, reserve_reply("sku-9", v1::StockReply::RESERVED),
     kReservedAt, "!unexpected"},
    {"reserve_reply_with_another_command_id", kReserving,
     commit_reply("sku-1", v1::StockReply::RESERVED), kReservedAt, "!unexpected"},
    {"reserve_answered_released", kReserving, reserve_reply("sku-1", v1::StockReply::RELEASED),
     kReservedAt, "!unexpected"},
    {"stock_reply_while_authorizing", kAuthorizing,
     reserve_reply("sku-1", v1::StockReply::RESERVED), kLater, "!unexpected"},

    // --- COMMIT_STOCK -----------------------------------------------------------------------
    {"commit_first_line", kCommitting, commit_reply("sku-1", v1::StockReply::COMMITTED), kLater,
     "committed(sku-1)"},
    {"commit_last_line_fulfills", kCommittingOne, commit_reply("sku-2", v1::StockReply::COMMITTED),
     kLater, "committed(sku-2) completed(FULFILLED)"},
    {"commit_duplicate_reply", kCommittingOne, commit_reply("sku-1", v1::StockReply::COMMITTED),
     kLater, "!unexpected"},
    {"commit_refused_keeps_retrying", kCommitting, commit_reply("sku-1", v1::StockReply::REFUSED),
     kLater, "!unexpected"},
    {"commit_late_reserve_reply", kCommitting, reserve_reply("sku-1", v1::StockReply::RESERVED),
     kLater, "!unexpected"},

    // --- RELEASE_STOCK ----------------------------------------------------------------------
    {"release_first_line", kReleasingAfterVoid, release_reply("sku-1", v1::StockReply::RELEASED),
     kLater, "released(sku-1)"},
    {"release_last_line_cancels", kReleasingAfterVoidOne,
     release_reply("sku-2", v1::StockReply::RELEASED), kLater,
     "released(sku-2) completed(CANCELLED,AUTHORIZE_PAYMENT timed out)"},
    {"release_failed_line_too", kReleasingOutOfStockOne,
     release_reply("sku-2", v1::StockReply::RELEASED), kLater,
     "released(sku-2) completed(REJECTED,out of stock: sku-2)"},
    {"release_pending_line_too", kCancelledWhileReserving,
     release_reply("sku-2", v1::StockReply::RELEASED), kLater, "released(sku-2)"},
    {"release_duplicate_reply", kReleasingAfterVoidOne,
     release_reply("sku-1", v1::StockReply::RELEASED), kLater, "!unexpected"},
    {"release_refused_keeps_retrying", kReleasingAfterVoid,
     release_reply("sku-1", v1::StockReply::REFUSED), kLater, "!unexpected"},
    {"late_reserved_while_releasing_is_ignored", kReleasingOutOfStock,
     reserve_reply("sku-2", v1::StockReply::RESERVED), kLater, "!unexpected"},
    {"late_reserved_of_pending_line_while_releasing", kCancelledWhileReserving,
     reserve_reply("sku-2", v1::StockReply::RESERVED), kLater, "!unexpected"},

    // --- AUTHORIZE_PAYMENT ------------------------------------------------------------------
    {"authorize_approved_starts_shipment", kAuthorizing,
     authorize_reply(v1::PaymentReply::APPROVED), kAuthorizedAt,
     "authorized(p-1) step(CREATE_SHIPMENT,13000)"},
    {"ship_deadline_is_order_deadline_when_earlier", kAuthorizing,
     authorize_reply(v1::PaymentReply::APPROVED), kOrderDeadline - 1'000,
     "authorized(p-1) step(CREATE_SHIPMENT,31000)"},
    {"authorize_declined_releases_without_void", kAuthorizing,
     authorize_reply(v1::PaymentReply::DECLINED, "insufficient funds"), kAuthorizedAt,
     "payment_refused(DECLINED,insufficient funds) "
     "compensate(CANCELLED,payment declined: insufficient funds) step(RELEASE_STOCK,0)"},
    {"authorize_declined_without_reason", kAuthorizing, authorize_reply(v1::PaymentReply::DECLINED),
     kAuthorizedAt,
     "payment_refused(DECLINED,) compensate(CANCELLED,payment declined) step(RELEASE_STOCK,0)"},
    {"authorize_failed_releases_without_void", kAuthorizing,
     authorize_reply(v1::PaymentReply::FAILED, "gateway down"), kAuthorizedAt,
     "payment_refused(FAILED,gateway down) "
     "compensate(CANCELLED,payment failed: gateway down) step(RELEASE_STOCK,0)"},
    {"authorize_duplicate_approve", kShipping, authorize_reply(v1::PaymentReply::APPROVED), kLater,
     "!unexpected"},
    {"authorize_reply_with_void_id", kAuthorizing, void_reply(v1::PaymentReply::APPROVED), kLater,
     "!unexpected"},
    {"payment_reply_while_reserving", kReserving, authorize_reply(v1::PaymentReply::APPROVED),
     kLater, "!unexpected"},
    {"payment_reply_invalid", kAuthorizing, payment("", v1::PaymentReply::APPROVED, "p-1"), kLater,
     "!invalid"},

    // --- VOID_PAYMENT -----------------------------------------------------------------------
    {"void_approved_releases", kVoidingGhost, void_reply(v1::PaymentReply::APPROVED), kLater,
     "voided step(RELEASE_STOCK,0)"},
    {"void_declined_acknowledges_too", kVoidingGhost, void_reply(v1::PaymentReply::DECLINED),
     kLater, "voided step(RELEASE_STOCK,0)"},
    {"void_failed_keeps_retrying", kVoidingGhost, void_reply(v1::PaymentReply::FAILED), kLater,
     "!unexpected"},
    {"late_approve_while_voiding_is_ignored", kVoidingGhost,
     authorize_reply(v1::PaymentReply::APPROVED), kLater, "!unexpected"},
    {"void_after_shipment_failed", kVoidingShipmentFailed, void_reply(v1::PaymentReply::APPROVED),
     kLater, "voided step(RELEASE_STOCK,0)"},
    {"void_after_cancel_shipment", kVoidingAfterCancelShipment,
     void_reply(v1::PaymentReply::APPROVED), kLater, "voided step(RELEASE_STOCK,0)"},
    {"duplicate_void_while_releasing", kReleasingAfterVoid, void_reply(v1::PaymentReply::APPROVED),
     kLater, "!unexpected"},

    // --- CREATE_SHIPMENT --------------------------------------------------------------------
    {"shipment_created_starts_commit", kShipping, create_reply(v1::ShipmentReply::CREATED),
     kCreatedAt, "shipment_created(s-1) step(COMMIT_STOCK,0)"},
    {"shipment_failed_voids_payment", kShipping,
     create_reply(v1::ShipmentReply::FAILED, "no route"), kCreatedAt,
     "shipment_refused(no route) compensate(CANCELLED,shipment failed: no route) "
     "step(VOID_PAYMENT,0)"},
    {"shipment_create_answered_cancelled", kShipping, create_reply(v1::ShipmentReply::CANCELLED),
     kCreatedAt, "!unexpected"},
    {"shipment_duplicate_created", kCommitting, create_reply(v1::ShipmentReply::CREATED), kLater,
     "!unexpected"},
    {"shipment_reply_invalid", kShipping,
     shipment(saga::ship_command_id(kOrderId), v1::ShipmentReply::STATUS_UNSPECIFIED), kLater,
     "!invalid"},

    // --- CANCEL_SHIPMENT --------------------------------------------------------------------
    {"cancel_shipment_acknowledged_voids", kCancellingShipment,
     cancel_shipment_reply(v1::ShipmentReply::CANCELLED), kLater,
     "shipment_cancelled step(VOID_PAYMENT,0)"},
    {"cancel_shipment_failed_keeps_retrying", kCancellingShipment,
     cancel_shipment_reply(v1::ShipmentReply::FAILED), kLater, "!unexpected"},
    {"late_created_while_cancelling_shipment", kCancellingShipment,
     create_reply(v1::ShipmentReply::CREATED), kLater, "!unexpected"},

    // --- Expire -----------------------------------------------------------------------------
    {"reserve_times_out", kReservingOne, Expire{}, kReserveDeadline,
     "timed_out(RESERVE_STOCK) compensate(CANCELLED,RESERVE_STOCK timed out) "
     "step(RELEASE_STOCK,0)"},
    {"reserve_timer_early_is_a_noop", kReservingOne, Expire{}, kReserveDeadline - 1, ""},
    {"reserve_times_out_at_order_deadline",
     History{placed(place_with_deadline(3'000)), step(v1::RESERVE_STOCK, 4'000, kPlacedAt)},
     Expire{}, 4'000,
     "timed_out(RESERVE_STOCK) compensate(CANCELLED,RESERVE_STOCK timed out) "
     "step(RELEASE_STOCK,0)"},
    {"authorize_times_out_ghost_void", kAuthorizing, Expire{}, kAuthorizeDeadline,
     "timed_out(AUTHORIZE_PAYMENT) compensate(CANCELLED,AUTHORIZE_PAYMENT timed out) "
     "step(VOID_PAYMENT,0)"},
    {"authorize_timer_early_is_a_noop", kAuthorizing, Expire{}, kAuthorizeDeadline - 1, ""},
    {"shipment_times_out_ghost_cancel", kShipping, Expire{}, kShipDeadline,
     "timed_out(CREATE_SHIPMENT) compensate(CANCELLED,CREATE_SHIPMENT timed out) "
     "step(CANCEL_SHIPMENT,0)"},
    {"commit_has_no_deadline", kCommitting, Expire{}, kOrderDeadline * 10, ""},
    {"compensation_has_no_deadline", kVoidingGhost, Expire{}, kOrderDeadline * 10, ""},

    // --- CancelOrder ------------------------------------------------------------------------
    {"cancel_while_reserving", kReservingOne, cancel_order(), kLater,
     "cancel_requested(changed my mind) compensate(CANCELLED,cancelled: changed my mind) "
     "step(RELEASE_STOCK,0)"},
    {"cancel_without_reason", kReserving, cancel_order(""), kLater,
     "cancel_requested() compensate(CANCELLED,cancelled: customer request) step(RELEASE_STOCK,0)"},
    {"cancel_while_authorizing", kAuthorizing, cancel_order(), kLater,
     "cancel_requested(changed my mind) compensate(CANCELLED,cancelled: changed my mind) "
     "step(VOID_PAYMENT,0)"},
    {"cancel_while_shipping", kShipping, cancel_order(), kLater,
     "cancel_requested(changed my mind) compensate(CANCELLED,cancelled: changed my mind) "
     "step(CANCEL_SHIPMENT,0)"},
    {"cancel_while_committing_is_too_late", kCommittingOne, cancel_order(), kLater, "!too late"},
    {"cancel_while_compensating_is_a_noop", kVoidingGhost, cancel_order(), kLater, ""},
    {"cancel_invalid_reason", kReserving, cancel_order("bad\nreason"), kLater, "!invalid"},
};

class DecideTest : public ::testing::TestWithParam<Case> {};

TEST_P(DecideTest, GivenWhenThen) {
  const Case& c = GetParam();
  State state = state_of(c.given);
  ASSERT_EQ(std::nullopt, check_invariants(state)) << "given";
  const State before = state;

  const Decision decision = decide(state, c.when, c.now_ms, kPolicy);
  EXPECT_EQ(c.then, render(decision));
  if (decision.rejected()) {
    EXPECT_TRUE(decision.events.empty());
    EXPECT_FALSE(decision.rejection->reason.empty());
  }
  EXPECT_EQ(before, state) << "decide must not change its input";

  // Invariants hold between commands: after the whole batch a decision commits, not
  // between its events (OrderPlaced alone has no step yet).
  for (const v1::OrderEvent& event : decision.events) evolve(state, event);
  EXPECT_EQ(std::nullopt, check_invariants(state)) << "after " << render(decision.events);
}

INSTANTIATE_TEST_SUITE_P(Order, DecideTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------------------
// Fields the compact rendering leaves out

TEST(OrderDecide, PlacedCarriesTheOrderAndItsTimes) {
  const Decision decision = decide(State{}, place_order(), kPlacedAt, kPolicy);
  ASSERT_EQ(2u, decision.events.size());
  const v1::OrderPlaced& placed_event = decision.events[0].placed();
  EXPECT_EQ(kOrderId, placed_event.order().order_id());
  EXPECT_EQ(kPlacedAt, placed_event.accepted_at_ms());
  EXPECT_EQ(kOrderDeadline, placed_event.deadline_at_ms());
  EXPECT_EQ(kAmount, placed_event.amount_cents());
  EXPECT_EQ(kPlacedAt, decision.events[1].step_started().started_at_ms());

  State state = state_of(decision.events);
  EXPECT_EQ(v1::RESERVING, state.state);
  EXPECT_EQ("c-7", state.customer_id);
  EXPECT_EQ("tok_visa", state.payment_token);
  EXPECT_EQ("US", state.ship_to.country());
  ASSERT_EQ(2u, state.lines.size());
  EXPECT_EQ((Line{"sku-1", 2, 1299, LineStatus::kPending}), state.lines[0]);
}

TEST(OrderDecide, PolicyDefaultsApply) {
  Policy policy;
  policy.default_deadline_ms = 60'000;
  policy.reserve_timeout_ms = 1'000;
  const Decision decision = decide(State{}, place_order(), kPlacedAt, policy);
  EXPECT_EQ("placed(3098 USD,deadline 61000) step(RESERVE_STOCK,2000)", render(decision));
}

TEST(OrderDecide, RejectedCarriesTheOrderAndTime) {
  v1::PlaceOrder place = place_order();
  place.mutable_ship_to()->set_country("usa");
  const Decision decision = decide(State{}, place, kPlacedAt, kPolicy);
  ASSERT_EQ(1u, decision.events.size());
  EXPECT_EQ(kPlacedAt, decision.events[0].rejected().rejected_at_ms());
  EXPECT_EQ(kOrderId, decision.events[0].rejected().order().order_id());

  const State state = state_of(decision.events);
  EXPECT_EQ(v1::REJECTED, state.state);
  EXPECT_TRUE(state.terminal());
  EXPECT_EQ(decision.events[0].rejected().reason(), state.reason);
  EXPECT_EQ(kPlacedAt, state.completed_at_ms);
  EXPECT_EQ(std::nullopt, check_invariants(state));
}

TEST(OrderDecide, TimesOfTimeoutCancelAndCompletion) {
  Decision decision = decide(state_of(kAuthorizing), Expire{}, kAuthorizeDeadline + 7, kPolicy);
  ASSERT_EQ(3u, decision.events.size());
  EXPECT_EQ(kAuthorizeDeadline + 7, decision.events[0].step_timed_out().at_ms());
  EXPECT_EQ(kAuthorizeDeadline + 7, decision.events[2].step_started().started_at_ms());

  decision = decide(state_of(kShipping), cancel_order(), kLater, kPolicy);
  ASSERT_EQ(3u, decision.events.size());
  EXPECT_EQ(kLater, decision.events[0].cancel_requested().at_ms());

  decision = decide(state_of(kCommittingOne), commit_reply("sku-2", v1::StockReply::COMMITTED),
                    kLater + 3, kPolicy);
  ASSERT_EQ(2u, decision.events.size());
  EXPECT_EQ(kLater + 3, decision.events[1].completed().completed_at_ms());
}

TEST(OrderDecide, RejectionReasons) {
  EXPECT_EQ("unknown order", decide(State{}, cancel_order(), kLater, kPolicy).rejection->reason);
  EXPECT_EQ("order o-1001 is already FULFILLED",
            decide(state_of(kFulfilled), cancel_order(), kLater, kPolicy).rejection->reason);
  const Decision late = decide(state_of(kVoidingGhost), authorize_reply(v1::PaymentReply::APPROVED),
                               kLater, kPolicy);
  EXPECT_EQ(
      "payment reply APPROVED (o-1001:authorize:1) answers no outstanding request of order "
      "o-1001 in step VOID_PAYMENT",
      late.rejection->reason);
  EXPECT_EQ("cancelOrder.reason: must not contain control characters (got \"bad\\nreason\")",
            decide(state_of(kReserving), cancel_order("bad\nreason"), kLater, kPolicy)
                .rejection->reason);
}

// ---------------------------------------------------------------------------------------
// State after whole histories

TEST(OrderEvolve, HappyPathState) {
  const State state = state_of(kFulfilled);
  EXPECT_EQ(v1::FULFILLED, state.state);
  EXPECT_EQ("p-1", state.payment_id);
  EXPECT_EQ("s-1", state.shipment_id);
  EXPECT_TRUE(state.authorize_sent && state.payment_authorized && state.shipment_sent &&
              state.shipment_created);
  EXPECT_FALSE(state.payment_voided || state.shipment_cancelled);
  EXPECT_EQ(v1::SAGA_STEP_UNSPECIFIED, state.step);
  EXPECT_EQ(0, state.step_deadline_at_ms);
  EXPECT_EQ(kLater, state.completed_at_ms);
  for (const Line& line : state.lines) EXPECT_EQ(LineStatus::kCommitted, line.status);
}

TEST(OrderEvolve, GhostCompensationState) {
  State state = state_of(kVoidingGhost);
  EXPECT_EQ(v1::COMPENSATING, state.state);
  EXPECT_EQ(v1::CANCELLED, state.target_state);
  EXPECT_EQ(v1::VOID_PAYMENT, state.step);
  EXPECT_TRUE(state.authorize_sent);
  EXPECT_FALSE(state.payment_authorized);
  EXPECT_EQ("", state.payment_id);

  state = state_of(kCancelled);
  EXPECT_EQ(v1::CANCELLED, state.state);
  EXPECT_EQ("AUTHORIZE_PAYMENT timed out", state.reason);
  EXPECT_TRUE(state.payment_voided);
  for (const Line& line : state.lines) EXPECT_EQ(LineStatus::kReleased, line.status);
}

// Every history above ends at a command boundary, where the invariants must hold.
TEST(OrderEvolve, InvariantsHoldAtTheEndOfEveryHistory) {
  for (const History* history :
       {&kReserving, &kReservingOne, &kAuthorizing, &kShipping, &kCommitting, &kCommittingOne,
        &kFulfilled, &kReleasingOutOfStock, &kReleasingOutOfStockOne, &kReleasingDeclined,
        &kVoidingShipmentFailed, &kCancellingShipment, &kVoidingAfterCancelShipment,
        &kVoidingGhost, &kReleasingAfterVoid, &kReleasingAfterVoidOne, &kCancelled,
        &kCancelledWhileReserving, &kRejectedInvalid}) {
    EXPECT_EQ(std::nullopt, check_invariants(state_of(*history))) << render(*history);
  }
}

// CDC skips reading an order whose batch begins with a creation event (docs/cdc.md): that
// must be every history's first event and none of its later ones.
TEST(OrderEvolve, OnlyAnOrdersFirstEventIsACreation) {
  for (const History* history : {&kFulfilled, &kCancelled, &kCancelledWhileReserving, &kRejectedInvalid,
                                 &kVoidingGhost, &kReleasingAfterVoid}) {
    ASSERT_FALSE(history->empty());
    EXPECT_TRUE(is_creation(history->front())) << render(*history);
    for (std::size_t i = 1; i < history->size(); ++i) {
      EXPECT_FALSE(is_creation((*history)[i])) << i << " of " << render(*history);
    }
  }
}

using OrderEvolveDeathTest = ::testing::Test;

TEST(OrderEvolveDeathTest, EventAfterTerminalAborts) {
  State state = state_of(kFulfilled);
  EXPECT_DEATH(evolve(state, committed("sku-1")), "after the order was terminal");
}

TEST(OrderEvolveDeathTest, EventForAnUnknownLineAborts) {
  State state = state_of(kReserving);
  EXPECT_DEATH(evolve(state, reserved("sku-9", 1)), "not a line of the order");
}

TEST(OrderEvolveDeathTest, EventBeforePlacedAborts) {
  State state;
  EXPECT_DEATH(evolve(state, reserved("sku-1", 2)), "before OrderPlaced");
}

TEST(OrderEvolveDeathTest, ForwardStepWhileCompensatingAborts) {
  State state = state_of(kVoidingGhost);
  EXPECT_DEATH(evolve(state, step(v1::CREATE_SHIPMENT, kShipDeadline, kLater)),
               "while compensating");
}

// ---------------------------------------------------------------------------------------
// Snapshots and equality

TEST(OrderSnapshot, RoundTripsEveryState) {
  for (const History* history :
       {&kReserving, &kReservingOne, &kAuthorizing, &kShipping, &kCommittingOne, &kFulfilled,
        &kReleasingOutOfStockOne, &kVoidingGhost, &kVoidingAfterCancelShipment, &kCancelled,
        &kRejectedInvalid}) {
    const State state = state_of(*history);
    const v1::OrderSnapshot snapshot = to_snapshot(state);
    EXPECT_EQ(1u, snapshot.schema_version());
    const State restored = from_snapshot(snapshot);
    EXPECT_EQ(state, restored) << render(*history);
    // Equal states give byte-identical canonical forms (the digest relies on it).
    std::string a;
    std::string b;
    ASSERT_TRUE(snapshot.SerializeToString(&a));
    ASSERT_TRUE(to_snapshot(restored).SerializeToString(&b));
    EXPECT_EQ(a, b);
  }
}

TEST(OrderSnapshot, EmptyStateRoundTrips) {
  EXPECT_EQ(State{}, from_snapshot(to_snapshot(State{})));
}

TEST(OrderState, EqualityComparesEveryField) {
  const State state = state_of(kShipping);
  State other = state;
  EXPECT_EQ(state, other);
  other.ship_to.set_postal_code("12345");
  EXPECT_NE(state, other);
  other = state;
  other.lines[1].status = LineStatus::kCommitted;
  EXPECT_NE(state, other);
  other = state;
  other.shipment_sent = false;
  EXPECT_NE(state, other);
}

// ---------------------------------------------------------------------------------------
// check_invariants on hand-broken states

TEST(OrderInvariants, CatchBrokenStates) {
  State state = state_of(kFulfilled);
  state.lines[0].status = LineStatus::kReserved;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "FULFILLED with a line not committed";

  state = state_of(kCancelled);
  state.lines[1].status = LineStatus::kReserved;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "CANCELLED still holding stock";

  state = state_of(kVoidingGhost);
  state.target_state = v1::FULFILLED;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "compensating towards FULFILLED";

  state = state_of(kShipping);
  state.step_deadline_at_ms = state.deadline_at_ms + 1;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "step deadline after the order's";

  state = state_of(kReserving);
  state.step_deadline_at_ms = 0;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "forward step without a deadline";

  state = state_of(kFulfilled);
  state.step = v1::COMMIT_STOCK;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "terminal with a step in progress";

  state = state_of(kAuthorizing);
  state.step = v1::CREATE_SHIPMENT;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "step and state disagree";

  state = state_of(kAuthorizing);
  state.step = v1::SAGA_STEP_UNSPECIFIED;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "open order without a step";

  state = state_of(kShipping);
  state.lines[0].status = LineStatus::kPending;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "shipping a line never reserved";

  state = state_of(kReserving);
  state.shipment_sent = true;
  EXPECT_NE(std::nullopt, check_invariants(state)) << "shipment asked before payment";

  state = State{};
  state.reason = "ghost";
  EXPECT_NE(std::nullopt, check_invariants(state)) << "state without an order";
}

}  // namespace
}  // namespace ffe::order
