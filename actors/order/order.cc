#include "actors/order/order.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <utility>

#include "events/assert.h"
#include "events/upcast.h"  // currency_default, the contract's "absent: USD"
#include "events/validate.h"
// Header-only use: the command-id format lives there (inline) so that this decider and the
// saga that sends the commands share one definition; ffe_order does not link ffe_saga.
#include "sagas/fulfillment.h"

namespace ffe::order {
namespace {

constexpr std::uint32_t kSnapshotSchemaVersion = 1;
constexpr std::string_view kCancelReasonDefault = "customer request";
// Compensating steps and COMMIT_STOCK retry until acknowledged: they have no deadline.
constexpr std::int64_t kNoDeadline = 0;

// ---------------------------------------------------------------------------------------
// Small helpers

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

Decision reject(RejectionCode code, std::string reason) {
  Decision decision;
  decision.rejection = Rejection{code, std::move(reason)};
  return decision;
}

Decision emit(std::vector<v1::OrderEvent> events) {
  Decision decision;
  decision.events = std::move(events);
  return decision;
}

std::string step_name(v1::SagaStep step) { return v1::SagaStep_Name(step); }

// "what" alone when there is no detail, so an empty participant reason does not leave a
// dangling ": ".
std::string with_detail(std::string_view what, std::string_view detail) {
  std::string out(what);
  if (!detail.empty()) {
    out += ": ";
    out += detail;
  }
  return out;
}

// A reply that answers nothing the order is waiting for: late (its step is over), duplicate
// (already applied) or aimed at a step the order never reached. Counted by the runtime.
Decision unexpected(const State& state, std::string_view what, std::string_view command_id) {
  std::string reason(what);
  reason += " (";
  reason += command_id;
  reason += ") answers no outstanding request of order ";
  reason += state.order_id;
  reason += " in step ";
  reason += step_name(state.step);
  return reject(RejectionCode::kUnexpected, std::move(reason));
}

const Line* find_line(const State& state, std::string_view sku) {
  for (const Line& line : state.lines) {
    if (line.sku == sku) return &line;
  }
  return nullptr;
}

Line& line_of(State& state, std::string_view sku) {
  for (Line& line : state.lines) {
    if (line.sku == sku) return line;
  }
  FFE_ASSERT(false, "order event names a SKU that is not a line of the order");
  __builtin_unreachable();
}

bool is_forward_step(v1::SagaStep step) {
  return step == v1::RESERVE_STOCK || step == v1::AUTHORIZE_PAYMENT ||
         step == v1::CREATE_SHIPMENT || step == v1::COMMIT_STOCK;
}

bool is_compensating_step(v1::SagaStep step) {
  return step == v1::CANCEL_SHIPMENT || step == v1::VOID_PAYMENT || step == v1::RELEASE_STOCK;
}

// The state a forward step puts the order in.
v1::OrderState state_of_forward_step(v1::SagaStep step) {
  switch (step) {
    case v1::RESERVE_STOCK: return v1::RESERVING;
    case v1::AUTHORIZE_PAYMENT: return v1::AUTHORIZING;
    case v1::CREATE_SHIPMENT: return v1::SHIPPING;
    case v1::COMMIT_STOCK: return v1::COMMITTING;
    default: break;
  }
  FFE_ASSERT(false, "not a forward saga step");
  __builtin_unreachable();
}

// The first undo when compensation starts: the reverse of the steps begun. A begun step is
// undone even if it was never answered (the participant may have acted: ghost deduction).
v1::SagaStep first_compensation(const State& state) {
  if (state.shipment_sent) return v1::CANCEL_SHIPMENT;
  if (state.authorize_sent) return v1::VOID_PAYMENT;
  return v1::RELEASE_STOCK;
}

// The undo after `done` was acknowledged.
v1::SagaStep next_compensation(const State& state, v1::SagaStep done) {
  if (done == v1::CANCEL_SHIPMENT && state.authorize_sent) return v1::VOID_PAYMENT;
  return v1::RELEASE_STOCK;
}

std::int64_t step_deadline(const State& state, std::int64_t now_ms, std::int64_t timeout_ms) {
  return std::min(state.deadline_at_ms, now_ms + timeout_ms);
}

// ---------------------------------------------------------------------------------------
// Event builders

v1::OrderEvent step_started(v1::SagaStep step, std::int64_t deadline_at_ms, std::int64_t now_ms) {
  v1::OrderEvent event;
  auto* started = event.mutable_step_started();
  started->set_step(step);
  started->set_deadline_at_ms(deadline_at_ms);
  started->set_started_at_ms(now_ms);
  return event;
}

v1::OrderEvent compensation_started(v1::OrderState target, std::string reason) {
  v1::OrderEvent event;
  auto* started = event.mutable_compensation_started();
  started->set_target_state(target);
  started->set_reason(std::move(reason));
  return event;
}

v1::OrderEvent completed(v1::OrderState terminal, std::string reason, std::int64_t now_ms) {
  v1::OrderEvent event;
  auto* done = event.mutable_completed();
  done->set_state(terminal);
  done->set_reason(std::move(reason));
  done->set_completed_at_ms(now_ms);
  return event;
}

// CompensationStarted + the first undo: how every failure, timeout and cancel begins.
void append_compensation(std::vector<v1::OrderEvent>& events, v1::OrderState target,
                         std::string reason, v1::SagaStep first, std::int64_t now_ms) {
  events.push_back(compensation_started(target, std::move(reason)));
  events.push_back(step_started(first, kNoDeadline, now_ms));
}

// ---------------------------------------------------------------------------------------
// decide, per command

Decision decide_place(const v1::PlaceOrder& place, std::int64_t now_ms, const Policy& policy) {
  // The ingress only routes a PlaceOrder with a usable id; without one there is no entity
  // to journal a REJECTED order under, so it is a plain rejection (ff.dlq), not an event.
  if (!events::is_valid_id(place.order_id())) {
    return reject(RejectionCode::kInvalid, "placeOrder.orderId: not a usable order id");
  }
  // validate() also guarantees what the saga relies on: 1..order_lines_max lines, no SKU
  // twice (one reservation and one command id per SKU), a total that fits in int64.
  if (events::Validation invalid = events::validate(place)) {
    v1::OrderEvent event;
    auto* rejected = event.mutable_rejected();
    *rejected->mutable_order() = place;
    rejected->set_reason(invalid->to_string());
    rejected->set_rejected_at_ms(now_ms);
    return emit({std::move(event)});
  }

  const std::int64_t deadline_ms =
      place.deadline_ms() != 0 ? place.deadline_ms() : policy.default_deadline_ms;
  const std::int64_t deadline_at_ms = now_ms + deadline_ms;
  v1::OrderEvent event;
  auto* placed = event.mutable_placed();
  *placed->mutable_order() = place;
  placed->set_accepted_at_ms(now_ms);
  placed->set_deadline_at_ms(deadline_at_ms);
  placed->set_amount_cents(events::order_amount_cents(place));
  placed->set_currency(place.currency().empty() ? std::string(events::currency_default) : place.currency());
  return emit({std::move(event),
               step_started(v1::RESERVE_STOCK,
                            std::min(deadline_at_ms, now_ms + policy.reserve_timeout_ms), now_ms)});
}

Decision decide_stock_reply(const State& state, const v1::StockReply& reply, std::int64_t now_ms,
                            const Policy& policy) {
  const std::string what = "stock reply " + v1::StockReply::Status_Name(reply.status());
  const Line* line = find_line(state, reply.sku());
  if (line == nullptr) return unexpected(state, what, reply.command_id());
  std::vector<v1::OrderEvent> events;

  switch (state.step) {
    case v1::RESERVE_STOCK: {
      if (reply.command_id() != saga::reserve_command_id(state.order_id, line->sku) ||
          line->status != LineStatus::kPending) {
        return unexpected(state, what, reply.command_id());
      }
      if (reply.status() == v1::StockReply::RESERVED) {
        v1::OrderEvent reserved;
        reserved.mutable_line_reserved()->set_sku(line->sku);
        reserved.mutable_line_reserved()->set_qty(line->qty);
        events.push_back(std::move(reserved));
        std::size_t pending = 0;
        for (const Line& other : state.lines) pending += other.status == LineStatus::kPending;
        if (pending == 1) {  // this was the last one
          events.push_back(step_started(v1::AUTHORIZE_PAYMENT,
                                        step_deadline(state, now_ms, policy.authorize_timeout_ms),
                                        now_ms));
        }
        return emit(std::move(events));
      }
      if (reply.status() == v1::StockReply::INSUFFICIENT ||
          reply.status() == v1::StockReply::REFUSED) {
        const bool insufficient = reply.status() == v1::StockReply::INSUFFICIENT;
        v1::OrderEvent failed;
        auto* failure = failed.mutable_line_reservation_failed();
        failure->set_sku(line->sku);
        // The SKU's own words go in the event; the order's reason (and so the outcome's)
        // stays one short line.
        failure->set_reason(!reply.reason().empty() ? reply.reason()
                            : insufficient          ? "insufficient"
                                                    : "refused");
        failure->set_available(reply.available());
        events.push_back(std::move(failed));
        // Lines already reserved (and the ones still in flight) are released: RELEASE_STOCK
        // releases every line, and the SKU tombstones the ones it never held.
        append_compensation(
            events, v1::REJECTED,
            "out of stock: " + line->sku +
                (insufficient ? " (asked " + std::to_string(line->qty) + ", available " +
                                    std::to_string(reply.available()) + ")"
                              : std::string(" (refused)")),
            v1::RELEASE_STOCK, now_ms);
        return emit(std::move(events));
      }
      return unexpected(state, what, reply.command_id());
    }

    case v1::COMMIT_STOCK: {
      // A REFUSED commit (the SKU closed this reservation the other way) cannot be mended
      // by the order: it stays outstanding, is retried, and the runtime counts the refusal.
      if (reply.command_id() != saga::commit_command_id(state.order_id, line->sku) ||
          line->status != LineStatus::kReserved || reply.status() != v1::StockReply::COMMITTED) {
        return unexpected(state, what, reply.command_id());
      }
      v1::OrderEvent committed;
      committed.mutable_line_committed()->set_sku(line->sku);
      events.push_back(std::move(committed));
      std::size_t uncommitted = 0;
      for (const Line& other : state.lines) uncommitted += other.status != LineStatus::kCommitted;
      if (uncommitted == 1) events.push_back(completed(v1::FULFILLED, "", now_ms));
      return emit(std::move(events));
    }

    case v1::RELEASE_STOCK: {
      // A late RESERVED lands here too and is ignored: the release already sent undoes it at
      // the SKU, or the SKU refuses the late reserve (its release tombstone).
      if (reply.command_id() != saga::release_command_id(state.order_id, line->sku) ||
          line->status == LineStatus::kReleased || reply.status() != v1::StockReply::RELEASED) {
        return unexpected(state, what, reply.command_id());
      }
      v1::OrderEvent released;
      released.mutable_line_released()->set_sku(line->sku);
      events.push_back(std::move(released));
      std::size_t unreleased = 0;
      for (const Line& other : state.lines) unreleased += other.status != LineStatus::kReleased;
      if (unreleased == 1) events.push_back(completed(state.target_state, state.reason, now_ms));
      return emit(std::move(events));
    }

    default: return unexpected(state, what, reply.command_id());
  }
}

Decision decide_payment_reply(const State& state, const v1::PaymentReply& reply,
                              std::int64_t now_ms, const Policy& policy) {
  if (events::Validation invalid = events::validate(reply)) {
    return reject(RejectionCode::kInvalid, invalid->to_string());
  }
  const std::string what = "payment reply " + v1::PaymentReply::Status_Name(reply.status());
  std::vector<v1::OrderEvent> events;

  if (state.step == v1::AUTHORIZE_PAYMENT &&
      reply.command_id() == saga::authorize_command_id(state.order_id)) {
    if (reply.status() == v1::PaymentReply::APPROVED) {
      v1::OrderEvent authorized;
      authorized.mutable_payment_authorized()->set_payment_id(reply.payment_id());
      events.push_back(std::move(authorized));
      events.push_back(step_started(v1::CREATE_SHIPMENT,
                                    step_deadline(state, now_ms, policy.ship_timeout_ms), now_ms));
      return emit(std::move(events));
    }
    if (reply.status() == v1::PaymentReply::DECLINED ||
        reply.status() == v1::PaymentReply::FAILED) {
      v1::OrderEvent refused;
      refused.mutable_payment_refused()->set_status(reply.status());
      refused.mutable_payment_refused()->set_reason(reply.reason());
      events.push_back(std::move(refused));
      // Nothing was authorized, so there is nothing to void: straight to releasing stock.
      append_compensation(
          events, v1::CANCELLED,
          with_detail(
              reply.status() == v1::PaymentReply::DECLINED ? "payment declined" : "payment failed",
              reply.reason()),
          v1::RELEASE_STOCK, now_ms);
      return emit(std::move(events));
    }
    return unexpected(state, what, reply.command_id());
  }

  if (state.step == v1::VOID_PAYMENT &&
      reply.command_id() == saga::void_command_id(state.order_id)) {
    // APPROVED (voided) and DECLINED (nothing to void: the authorize never took effect)
    // both settle the payment; FAILED means the participant could not act yet, so the void
    // stays outstanding and is retried.
    if (reply.status() == v1::PaymentReply::APPROVED ||
        reply.status() == v1::PaymentReply::DECLINED) {
      v1::OrderEvent voided;
      voided.mutable_payment_voided();
      events.push_back(std::move(voided));
      events.push_back(
          step_started(next_compensation(state, v1::VOID_PAYMENT), kNoDeadline, now_ms));
      return emit(std::move(events));
    }
    return unexpected(state, what, reply.command_id());
  }

  // Includes a late APPROVED after the authorize timed out: the void already sent names the
  // authorize command id, so the participant undoes it without the order knowing its id.
  return unexpected(state, what, reply.command_id());
}

Decision decide_shipment_reply(const State& state, const v1::ShipmentReply& reply,
                               std::int64_t now_ms) {
  if (events::Validation invalid = events::validate(reply)) {
    return reject(RejectionCode::kInvalid, invalid->to_string());
  }
  const std::string what = "shipment reply " + v1::ShipmentReply::Status_Name(reply.status());
  std::vector<v1::OrderEvent> events;

  if (state.step == v1::CREATE_SHIPMENT &&
      reply.command_id() == saga::ship_command_id(state.order_id)) {
    if (reply.status() == v1::ShipmentReply::CREATED) {
      v1::OrderEvent created;
      created.mutable_shipment_created()->set_shipment_id(reply.shipment_id());
      events.push_back(std::move(created));
      events.push_back(step_started(v1::COMMIT_STOCK, kNoDeadline, now_ms));
      return emit(std::move(events));
    }
    if (reply.status() == v1::ShipmentReply::FAILED) {
      v1::OrderEvent refused;
      refused.mutable_shipment_refused()->set_reason(reply.reason());
      events.push_back(std::move(refused));
      // Nothing was created, so nothing to cancel; the authorized payment is voided.
      append_compensation(events, v1::CANCELLED, with_detail("shipment failed", reply.reason()),
                          next_compensation(state, v1::CANCEL_SHIPMENT), now_ms);
      return emit(std::move(events));
    }
    return unexpected(state, what, reply.command_id());
  }

  if (state.step == v1::CANCEL_SHIPMENT &&
      reply.command_id() == saga::cancel_shipment_command_id(state.order_id) &&
      reply.status() == v1::ShipmentReply::CANCELLED) {
    v1::OrderEvent cancelled;
    cancelled.mutable_shipment_cancelled();
    events.push_back(std::move(cancelled));
    events.push_back(
        step_started(next_compensation(state, v1::CANCEL_SHIPMENT), kNoDeadline, now_ms));
    return emit(std::move(events));
  }
  return unexpected(state, what, reply.command_id());
}

Decision decide_expire(const State& state, std::int64_t now_ms) {
  // An early or stray timer is normal (timers are not cancelled when a step ends): no-op.
  if (state.step_deadline_at_ms == kNoDeadline || now_ms < state.step_deadline_at_ms) return {};
  std::vector<v1::OrderEvent> events;
  v1::OrderEvent timed_out;
  timed_out.mutable_step_timed_out()->set_step(state.step);
  timed_out.mutable_step_timed_out()->set_at_ms(now_ms);
  events.push_back(std::move(timed_out));
  append_compensation(events, v1::CANCELLED, step_name(state.step) + " timed out",
                      first_compensation(state), now_ms);
  return emit(std::move(events));
}

Decision decide_cancel(const State& state, const v1::CancelOrder& cancel, std::int64_t now_ms) {
  if (events::Validation invalid = events::validate(cancel)) {
    return reject(RejectionCode::kInvalid, invalid->to_string());
  }
  switch (state.state) {
    case v1::RESERVING:
    case v1::AUTHORIZING:
    case v1::SHIPPING: {
      std::vector<v1::OrderEvent> events;
      v1::OrderEvent requested;
      requested.mutable_cancel_requested()->set_reason(cancel.reason());
      requested.mutable_cancel_requested()->set_at_ms(now_ms);
      events.push_back(std::move(requested));
      const std::string_view why =
          cancel.reason().empty() ? kCancelReasonDefault : std::string_view(cancel.reason());
      append_compensation(events, v1::CANCELLED, "cancelled: " + std::string(why),
                          first_compensation(state), now_ms);
      return emit(std::move(events));
    }
    case v1::COMMITTING:
      return reject(RejectionCode::kTooLate,
                    "order " + state.order_id + " is committing its shipped stock");
    case v1::COMPENSATING: return {};  // already on its way to CANCELLED or REJECTED
    default: break;
  }
  FFE_ASSERT(false, "decide_cancel on an order that is neither open nor terminal");
  __builtin_unreachable();
}

// The router delivers a command to the actor its payload's id names; a mismatch is a
// routing bug, not bad input.
void assert_routed(const State& state, const std::string& order_id) {
  FFE_ASSERT(order_id == state.order_id, "command routed to the actor of another order");
}

// ---------------------------------------------------------------------------------------
// Snapshot status mapping

v1::OrderLineSnapshot::Status to_snapshot_status(LineStatus status) {
  switch (status) {
    case LineStatus::kPending: return v1::OrderLineSnapshot::PENDING;
    case LineStatus::kReserved: return v1::OrderLineSnapshot::RESERVED;
    case LineStatus::kFailed: return v1::OrderLineSnapshot::FAILED;
    case LineStatus::kCommitted: return v1::OrderLineSnapshot::COMMITTED;
    case LineStatus::kReleased: return v1::OrderLineSnapshot::RELEASED;
  }
  FFE_ASSERT(false, "unknown line status");
  __builtin_unreachable();
}

LineStatus from_snapshot_status(v1::OrderLineSnapshot::Status status) {
  switch (status) {
    case v1::OrderLineSnapshot::PENDING: return LineStatus::kPending;
    case v1::OrderLineSnapshot::RESERVED: return LineStatus::kReserved;
    case v1::OrderLineSnapshot::FAILED: return LineStatus::kFailed;
    case v1::OrderLineSnapshot::COMMITTED: return LineStatus::kCommitted;
    case v1::OrderLineSnapshot::RELEASED: return LineStatus::kReleased;
    default: break;
  }
  // Snapshots are written by to_snapshot and checked when read back (STYLE habit 4).
  FFE_ASSERT(false, "order snapshot holds a line without a status");
  __builtin_unreachable();
}

void copy_order(State& state, const v1::PlaceOrder& place) {
  state.order_id = place.order_id();
  state.customer_id = place.customer_id();
  state.lines.clear();
  state.lines.reserve(static_cast<std::size_t>(place.lines_size()));
  for (const v1::OrderLine& line : place.lines()) {
    state.lines.push_back(
        Line{line.sku(), line.qty(), line.unit_price_cents(), LineStatus::kPending});
  }
  state.payment_method = place.payment().method();
  state.payment_token = place.payment().token();
  state.ship_to = place.ship_to();
}

}  // namespace

// ---------------------------------------------------------------------------------------

bool State::operator==(const State& other) const {
  return order_id == other.order_id && state == other.state && customer_id == other.customer_id &&
         lines == other.lines && payment_method == other.payment_method &&
         payment_token == other.payment_token &&
         google::protobuf::util::MessageDifferencer::Equals(ship_to, other.ship_to) &&
         currency == other.currency && amount_cents == other.amount_cents &&
         accepted_at_ms == other.accepted_at_ms && deadline_at_ms == other.deadline_at_ms &&
         step == other.step && step_deadline_at_ms == other.step_deadline_at_ms &&
         authorize_sent == other.authorize_sent && payment_authorized == other.payment_authorized &&
         payment_voided == other.payment_voided && payment_id == other.payment_id &&
         shipment_sent == other.shipment_sent && shipment_created == other.shipment_created &&
         shipment_cancelled == other.shipment_cancelled && shipment_id == other.shipment_id &&
         target_state == other.target_state && reason == other.reason &&
         completed_at_ms == other.completed_at_ms;
}

Decision decide(const State& state, const Command& command, std::int64_t now_ms,
                const Policy& policy) {
  if (const auto* place = std::get_if<v1::PlaceOrder>(&command)) {
    if (!state.exists()) return decide_place(*place, now_ms, policy);
    assert_routed(state, place->order_id());
    return {};  // a repeated PlaceOrder, whatever its body: the first one counts
  }
  if (!state.exists()) return reject(RejectionCode::kUnknownEntity, "unknown order");
  if (state.terminal()) {
    return reject(RejectionCode::kAlreadyTerminal,
                  "order " + state.order_id + " is already " + v1::OrderState_Name(state.state));
  }
  return std::visit(Overloaded{
                        [&](const v1::PlaceOrder&) -> Decision {
                          FFE_ASSERT(false, "PlaceOrder is decided above");
                          return {};
                        },
                        [&](const v1::CancelOrder& cancel) {
                          assert_routed(state, cancel.order_id());
                          return decide_cancel(state, cancel, now_ms);
                        },
                        [&](const v1::StockReply& reply) {
                          assert_routed(state, reply.order_id());
                          return decide_stock_reply(state, reply, now_ms, policy);
                        },
                        [&](const v1::PaymentReply& reply) {
                          assert_routed(state, reply.order_id());
                          return decide_payment_reply(state, reply, now_ms, policy);
                        },
                        [&](const v1::ShipmentReply& reply) {
                          assert_routed(state, reply.order_id());
                          return decide_shipment_reply(state, reply, now_ms);
                        },
                        [&](const Expire&) { return decide_expire(state, now_ms); },
                    },
                    command);
}

bool is_creation(const v1::OrderEvent& event) {
  return event.event_case() == v1::OrderEvent::kPlaced || event.event_case() == v1::OrderEvent::kRejected;
}

void evolve(State& state, const v1::OrderEvent& event) {
  // Terminal is absorbing (architecture invariant 4): nothing is ever applied after it.
  FFE_ASSERT(!state.terminal(), "order event applied after the order was terminal");
  FFE_ASSERT(state.exists() != is_creation(event),
             "order event applied before OrderPlaced/OrderRejected, or a second one of them");

  switch (event.event_case()) {
    case v1::OrderEvent::kPlaced: {
      const v1::OrderPlaced& placed = event.placed();
      copy_order(state, placed.order());
      state.state = v1::RESERVING;  // its StepStarted{RESERVE_STOCK} follows in the same batch
      state.currency = placed.currency();
      state.amount_cents = placed.amount_cents();
      state.accepted_at_ms = placed.accepted_at_ms();
      state.deadline_at_ms = placed.deadline_at_ms();
      return;
    }
    case v1::OrderEvent::kRejected: {
      const v1::OrderRejected& rejected = event.rejected();
      // Kept as placed (lines PENDING: nothing was ever held), so the outcome can echo it.
      copy_order(state, rejected.order());
      state.currency = rejected.order().currency();
      state.state = v1::REJECTED;
      state.reason = rejected.reason();
      state.accepted_at_ms = rejected.rejected_at_ms();
      state.completed_at_ms = rejected.rejected_at_ms();
      return;
    }
    case v1::OrderEvent::kStepStarted: {
      const v1::StepStarted& started = event.step_started();
      const v1::SagaStep step = started.step();
      if (is_forward_step(step)) {
        FFE_ASSERT(state.state != v1::COMPENSATING, "forward saga step started while compensating");
        state.state = state_of_forward_step(step);
      } else {
        FFE_ASSERT(is_compensating_step(step), "StepStarted without a step");
        FFE_ASSERT(state.state == v1::COMPENSATING,
                   "compensating step started without CompensationStarted");
      }
      if (step == v1::AUTHORIZE_PAYMENT) state.authorize_sent = true;
      if (step == v1::CREATE_SHIPMENT) state.shipment_sent = true;
      state.step = step;
      state.step_deadline_at_ms = started.deadline_at_ms();
      return;
    }
    case v1::OrderEvent::kLineReserved: {
      FFE_ASSERT(state.step == v1::RESERVE_STOCK, "LineReserved outside RESERVE_STOCK");
      Line& line = line_of(state, event.line_reserved().sku());
      FFE_ASSERT(line.status == LineStatus::kPending, "LineReserved for a line not pending");
      FFE_ASSERT(line.qty == event.line_reserved().qty(), "LineReserved for another quantity");
      line.status = LineStatus::kReserved;
      return;
    }
    case v1::OrderEvent::kLineReservationFailed: {
      FFE_ASSERT(state.step == v1::RESERVE_STOCK, "LineReservationFailed outside RESERVE_STOCK");
      Line& line = line_of(state, event.line_reservation_failed().sku());
      FFE_ASSERT(line.status == LineStatus::kPending,
                 "LineReservationFailed for a line not pending");
      line.status = LineStatus::kFailed;
      return;
    }
    case v1::OrderEvent::kPaymentAuthorized:
      FFE_ASSERT(state.step == v1::AUTHORIZE_PAYMENT,
                 "PaymentAuthorized outside AUTHORIZE_PAYMENT");
      state.payment_authorized = true;
      state.payment_id = event.payment_authorized().payment_id();
      return;
    case v1::OrderEvent::kPaymentRefused:
      FFE_ASSERT(state.step == v1::AUTHORIZE_PAYMENT, "PaymentRefused outside AUTHORIZE_PAYMENT");
      return;  // the CompensationStarted that follows carries the reason
    case v1::OrderEvent::kShipmentCreated:
      FFE_ASSERT(state.step == v1::CREATE_SHIPMENT, "ShipmentCreated outside CREATE_SHIPMENT");
      state.shipment_created = true;
      state.shipment_id = event.shipment_created().shipment_id();
      return;
    case v1::OrderEvent::kShipmentRefused:
      FFE_ASSERT(state.step == v1::CREATE_SHIPMENT, "ShipmentRefused outside CREATE_SHIPMENT");
      return;
    case v1::OrderEvent::kStepTimedOut:
      FFE_ASSERT(
          state.step == event.step_timed_out().step() && state.step_deadline_at_ms != kNoDeadline,
          "StepTimedOut for a step not in progress or without a deadline");
      return;
    case v1::OrderEvent::kCancelRequested:
      FFE_ASSERT(state.state == v1::RESERVING || state.state == v1::AUTHORIZING ||
                     state.state == v1::SHIPPING,
                 "CancelRequested in a state that cannot be cancelled");
      return;
    case v1::OrderEvent::kCompensationStarted: {
      const v1::CompensationStarted& started = event.compensation_started();
      FFE_ASSERT(state.state != v1::COMPENSATING, "CompensationStarted twice");
      FFE_ASSERT(state.state != v1::COMMITTING, "CompensationStarted while committing");
      FFE_ASSERT(started.target_state() == v1::CANCELLED || started.target_state() == v1::REJECTED,
                 "CompensationStarted towards a state other than CANCELLED or REJECTED");
      state.state = v1::COMPENSATING;
      state.target_state = started.target_state();
      state.reason = started.reason();
      return;
    }
    case v1::OrderEvent::kLineCommitted: {
      FFE_ASSERT(state.step == v1::COMMIT_STOCK, "LineCommitted outside COMMIT_STOCK");
      Line& line = line_of(state, event.line_committed().sku());
      FFE_ASSERT(line.status == LineStatus::kReserved, "LineCommitted for a line not reserved");
      line.status = LineStatus::kCommitted;
      return;
    }
    case v1::OrderEvent::kLineReleased: {
      FFE_ASSERT(state.step == v1::RELEASE_STOCK, "LineReleased outside RELEASE_STOCK");
      Line& line = line_of(state, event.line_released().sku());
      FFE_ASSERT(line.status != LineStatus::kReleased && line.status != LineStatus::kCommitted,
                 "LineReleased for a line released or committed");
      line.status = LineStatus::kReleased;
      return;
    }
    case v1::OrderEvent::kPaymentVoided:
      FFE_ASSERT(state.step == v1::VOID_PAYMENT, "PaymentVoided outside VOID_PAYMENT");
      state.payment_voided = true;
      return;
    case v1::OrderEvent::kShipmentCancelled:
      FFE_ASSERT(state.step == v1::CANCEL_SHIPMENT, "ShipmentCancelled outside CANCEL_SHIPMENT");
      state.shipment_cancelled = true;
      return;
    case v1::OrderEvent::kCompleted: {
      const v1::OrderCompleted& done = event.completed();
      if (done.state() == v1::FULFILLED) {
        FFE_ASSERT(state.step == v1::COMMIT_STOCK, "FULFILLED outside COMMIT_STOCK");
        for (const Line& line : state.lines) {
          FFE_ASSERT(line.status == LineStatus::kCommitted, "FULFILLED with a line not committed");
        }
      } else {
        FFE_ASSERT(state.state == v1::COMPENSATING && done.state() == state.target_state,
                   "OrderCompleted other than FULFILLED without compensating towards it");
        for (const Line& line : state.lines) {
          FFE_ASSERT(line.status == LineStatus::kReleased,
                     "order CANCELLED/REJECTED with a line not released");
        }
      }
      state.state = done.state();
      state.reason = done.reason();
      state.completed_at_ms = done.completed_at_ms();
      state.step = v1::SAGA_STEP_UNSPECIFIED;
      state.step_deadline_at_ms = kNoDeadline;
      return;
    }
    case v1::OrderEvent::EVENT_NOT_SET: break;
  }
  FFE_ASSERT(false, "order event without an event");
}

std::optional<std::string> check_invariants(const State& state) {
  if (!state.exists()) {
    if (!(state == State{})) return "an order without an id holds state";
    return std::nullopt;
  }
  if (state.state == v1::ORDER_STATE_UNSPECIFIED) return "an existing order has no state";

  // 1. terminal is absorbing: nothing is in flight any more.
  if (state.terminal() &&
      (state.step != v1::SAGA_STEP_UNSPECIFIED || state.step_deadline_at_ms != kNoDeadline)) {
    return "1: terminal order " + state.order_id + " still has a step in progress";
  }

  // 2. terminal line states.
  for (const Line& line : state.lines) {
    if (state.state == v1::FULFILLED && line.status != LineStatus::kCommitted) {
      return "2: FULFILLED order " + state.order_id + " has line " + line.sku + " not committed";
    }
    if ((state.state == v1::CANCELLED || state.state == v1::REJECTED) &&
        (line.status == LineStatus::kReserved || line.status == LineStatus::kCommitted)) {
      return "2: " + v1::OrderState_Name(state.state) + " order " + state.order_id +
             " still holds line " + line.sku;
    }
  }

  // 3. compensation has a target.
  if (state.state == v1::COMPENSATING && state.target_state != v1::CANCELLED &&
      state.target_state != v1::REJECTED) {
    return "3: COMPENSATING order " + state.order_id + " has target " +
           v1::OrderState_Name(state.target_state);
  }

  // 4. forward steps are bounded by the order's deadline.
  if (state.step == v1::RESERVE_STOCK || state.step == v1::AUTHORIZE_PAYMENT ||
      state.step == v1::CREATE_SHIPMENT) {
    if (state.step_deadline_at_ms == kNoDeadline ||
        state.step_deadline_at_ms > state.deadline_at_ms) {
      return "4: step " + step_name(state.step) + " of order " + state.order_id + " has deadline " +
             std::to_string(state.step_deadline_at_ms) + ", the order's is " +
             std::to_string(state.deadline_at_ms);
    }
  }

  // The step and the state agree (evolve sets both from StepStarted).
  if (!state.terminal()) {
    const bool compensating = state.state == v1::COMPENSATING;
    if (compensating
            ? !is_compensating_step(state.step)
            : !is_forward_step(state.step) || state_of_forward_step(state.step) != state.state) {
      return "step " + step_name(state.step) + " does not match state " +
             v1::OrderState_Name(state.state) + " of order " + state.order_id;
    }
  }

  // Each saga fact implies the one before it.
  if (state.payment_authorized && !state.authorize_sent) return "payment authorized, never asked";
  if (state.payment_voided && !state.authorize_sent) return "payment voided, never asked";
  if (state.shipment_sent && !state.payment_authorized) return "shipment asked before payment";
  if (state.shipment_created && !state.shipment_sent) return "shipment created, never asked";
  if (state.shipment_cancelled && !state.shipment_sent) return "shipment cancelled, never asked";

  // Lines move in step with the saga.
  for (const Line& line : state.lines) {
    const bool ok = [&] {
      switch (state.state) {
        case v1::RESERVING:
          return line.status == LineStatus::kPending || line.status == LineStatus::kReserved;
        case v1::AUTHORIZING:
        case v1::SHIPPING: return line.status == LineStatus::kReserved;
        case v1::COMMITTING:
          return line.status == LineStatus::kReserved || line.status == LineStatus::kCommitted;
        case v1::COMPENSATING: return line.status != LineStatus::kCommitted;
        default: return true;  // terminal: checked by 2
      }
    }();
    if (!ok) {
      return "line " + line.sku + " of order " + state.order_id + " has a status its state " +
             v1::OrderState_Name(state.state) + " does not allow";
    }
  }
  return std::nullopt;
}

v1::OrderSnapshot to_snapshot(const State& state) {
  v1::OrderSnapshot snapshot;
  snapshot.set_schema_version(kSnapshotSchemaVersion);
  snapshot.set_order_id(state.order_id);
  snapshot.set_state(state.state);
  snapshot.set_customer_id(state.customer_id);
  for (const Line& line : state.lines) {
    v1::OrderLineSnapshot* out = snapshot.add_lines();
    out->set_sku(line.sku);
    out->set_qty(line.qty);
    out->set_unit_price_cents(line.unit_price_cents);
    out->set_status(to_snapshot_status(line.status));
  }
  snapshot.mutable_payment()->set_method(state.payment_method);
  snapshot.mutable_payment()->set_token(state.payment_token);
  *snapshot.mutable_ship_to() = state.ship_to;
  snapshot.set_currency(state.currency);
  snapshot.set_amount_cents(state.amount_cents);
  snapshot.set_accepted_at_ms(state.accepted_at_ms);
  snapshot.set_deadline_at_ms(state.deadline_at_ms);
  snapshot.set_step(state.step);
  snapshot.set_step_deadline_at_ms(state.step_deadline_at_ms);
  snapshot.set_payment_id(state.payment_id);
  snapshot.set_payment_authorized(state.payment_authorized);
  snapshot.set_payment_voided(state.payment_voided);
  snapshot.set_shipment_id(state.shipment_id);
  snapshot.set_shipment_created(state.shipment_created);
  snapshot.set_shipment_cancelled(state.shipment_cancelled);
  snapshot.set_target_state(state.target_state);
  snapshot.set_reason(state.reason);
  snapshot.set_completed_at_ms(state.completed_at_ms);
  snapshot.set_authorize_sent(state.authorize_sent);
  snapshot.set_shipment_sent(state.shipment_sent);
  return snapshot;
}

State from_snapshot(const v1::OrderSnapshot& snapshot) {
  FFE_ASSERT(snapshot.schema_version() == kSnapshotSchemaVersion,
             "order snapshot of an unknown schema version");
  State state;
  state.order_id = snapshot.order_id();
  state.state = snapshot.state();
  state.customer_id = snapshot.customer_id();
  state.lines.reserve(static_cast<std::size_t>(snapshot.lines_size()));
  for (const v1::OrderLineSnapshot& line : snapshot.lines()) {
    state.lines.push_back(
        Line{line.sku(), line.qty(), line.unit_price_cents(), from_snapshot_status(line.status())});
  }
  state.payment_method = snapshot.payment().method();
  state.payment_token = snapshot.payment().token();
  state.ship_to = snapshot.ship_to();
  state.currency = snapshot.currency();
  state.amount_cents = snapshot.amount_cents();
  state.accepted_at_ms = snapshot.accepted_at_ms();
  state.deadline_at_ms = snapshot.deadline_at_ms();
  state.step = snapshot.step();
  state.step_deadline_at_ms = snapshot.step_deadline_at_ms();
  state.authorize_sent = snapshot.authorize_sent();
  state.payment_authorized = snapshot.payment_authorized();
  state.payment_voided = snapshot.payment_voided();
  state.payment_id = snapshot.payment_id();
  state.shipment_sent = snapshot.shipment_sent();
  state.shipment_created = snapshot.shipment_created();
  state.shipment_cancelled = snapshot.shipment_cancelled();
  state.shipment_id = snapshot.shipment_id();
  state.target_state = snapshot.target_state();
  state.reason = snapshot.reason();
  state.completed_at_ms = snapshot.completed_at_ms();
  return state;
}

}  // namespace ffe::order
