#pragma once
// The order aggregate: a pure decider (decide / evolve), no I/O, no clock, no CAF/RocksDB/Kafka.
// Time is an input (`now_ms`); an expired deadline arrives as the Expire command.
//
// Owner: one order actor (actors/runtime, later) owns one State and is the only writer.
//
// Life of an order (docs/order-saga.md has the full table):
//   PlaceOrder valid      -> RESERVING (reserve every line)      invalid -> REJECTED at once
//   all lines RESERVED    -> AUTHORIZING                          a line INSUFFICIENT -> compensate, REJECTED
//   payment APPROVED      -> SHIPPING                             DECLINED/FAILED -> compensate, CANCELLED
//   shipment CREATED      -> COMMITTING                           FAILED -> compensate, CANCELLED
//   every line COMMITTED  -> FULFILLED
//   a step's deadline passes, or CancelOrder (before COMMITTING) -> compensate, CANCELLED
// Compensating runs, in reverse, the undo of each step begun: CANCEL_SHIPMENT (if the
// create was sent), VOID_PAYMENT (if the authorize was sent), RELEASE_STOCK (always, every
// line), one after another, each retried until acknowledged; then the target terminal state.
// A step that timed out is undone as if it had succeeded (the participant may have acted).
//
// State invariants (check_invariants()):
//   1. terminal states are absorbing: decide() on a terminal state returns no events.
//   2. FULFILLED => every line COMMITTED; CANCELLED/REJECTED => no line RESERVED or COMMITTED.
//   3. COMPENSATING => target_state is CANCELLED or REJECTED.
//   4. a forward step (RESERVE/AUTHORIZE/SHIP) has step_deadline_at_ms <= deadline_at_ms.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "events/rejection.h"
#include "ffe/v1/journal.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::order {

// Step timeouts and the default deadline. A step's deadline is the earlier of the order's
// deadline and now + the step's timeout.
struct Policy {
  std::int64_t default_deadline_ms = 30'000;
  std::int64_t reserve_timeout_ms = 5'000;
  std::int64_t authorize_timeout_ms = 10'000;
  std::int64_t ship_timeout_ms = 10'000;
};

enum class LineStatus { kPending, kReserved, kFailed, kCommitted, kReleased };

struct Line {
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  LineStatus status = LineStatus::kPending;
  bool operator==(const Line&) const = default;
};

struct State {
  std::string order_id;  // empty: no such order yet
  v1::OrderState state = v1::ORDER_STATE_UNSPECIFIED;
  std::string customer_id;
  std::vector<Line> lines;  // in the order placed
  std::string payment_method;
  std::string payment_token;
  v1::Address ship_to;
  std::string currency;
  std::int64_t amount_cents = 0;
  std::int64_t accepted_at_ms = 0;
  std::int64_t deadline_at_ms = 0;
  v1::SagaStep step = v1::SAGA_STEP_UNSPECIFIED;  // the step in progress
  std::int64_t step_deadline_at_ms = 0;            // 0: none (compensating steps)
  bool authorize_sent = false;  // AUTHORIZE_PAYMENT began: a void is owed if compensating
  bool payment_authorized = false;
  bool payment_voided = false;
  std::string payment_id;
  bool shipment_sent = false;   // CREATE_SHIPMENT began: a cancel is owed if compensating
  bool shipment_created = false;
  bool shipment_cancelled = false;
  std::string shipment_id;
  v1::OrderState target_state = v1::ORDER_STATE_UNSPECIFIED;  // while COMPENSATING
  std::string reason;           // why it was rejected/cancelled (empty when fulfilled)
  std::int64_t completed_at_ms = 0;

  bool exists() const { return !order_id.empty(); }
  bool terminal() const {
    return state == v1::FULFILLED || state == v1::CANCELLED || state == v1::REJECTED;
  }
  bool operator==(const State& other) const;  // field by field (v1::Address compared by value)
};

// The clock says a deadline may have passed: decide() compares now_ms with the step's.
struct Expire {};

using Command = std::variant<v1::PlaceOrder, v1::CancelOrder, v1::StockReply, v1::PaymentReply,
                             v1::ShipmentReply, Expire>;

struct Decision {
  std::vector<v1::OrderEvent> events;  // empty and no rejection: a no-op (duplicate, redelivery)
  std::optional<Rejection> rejection;  // set: no events
  bool rejected() const { return rejection.has_value(); }
};

// `order_id` is the entity's key. Rejections: kUnknownEntity (cancel/reply/expire for an
// order that does not exist), kAlreadyTerminal (anything after terminal), kUnexpected (a
// reply that answers no outstanding request), kTooLate (cancel while COMMITTING).
// A PlaceOrder that fails validation is not a rejection: it yields OrderRejected, a
// journaled terminal REJECTED order with its outcome. A repeated PlaceOrder for an order id
// that exists is a no-op (no events), whatever its body.
Decision decide(const State& state, const Command& command, std::int64_t now_ms,
                const Policy& policy);

void evolve(State& state, const v1::OrderEvent& event);

// OrderPlaced or OrderRejected: an order's first event, and only its first (evolve() asserts
// both), so a reader that meets one knows the order did not exist before it.
bool is_creation(const v1::OrderEvent& event);

std::optional<std::string> check_invariants(const State& state);

v1::OrderSnapshot to_snapshot(const State& state);
State from_snapshot(const v1::OrderSnapshot& snapshot);

}  // namespace ffe::order
