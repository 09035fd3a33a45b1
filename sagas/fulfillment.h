#pragma once
// The fulfillment saga as a pure reaction: given an order's state after an event, the
// messages to send. No I/O, no clock; the runtime sends them (through the journal's outbox,
// so only once the batch holding the event is durable) and resends outstanding() on a retry
// timer and after a restart. Every message carries a deterministic commandId, so resending
// is always safe: participants and SKUs treat a repeated commandId as the same request.
//
// Command ids ("<orderId>" is validated to contain no ':'):
//   <orderId>:reserve:<sku>   <orderId>:commit:<sku>   <orderId>:release:<sku>   (SKU actors)
//   <orderId>:authorize:1     <orderId>:void:1                                  (payments)
//   <orderId>:ship:1          <orderId>:cancel-shipment:1                       (shipments)
// The trailing 1 numbers the attempt of the step within the order; ffe runs each step once
// per order, so it is always 1 in v1 (the contract reserves it for re-runs).

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/order/order.h"
#include "ffe/v1/journal.pb.h"
#include "ffe/v1/outcomes.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::saga {

// StockCommand goes to the SKU's actor (in its own shard); the requests go to the
// participants' topics; the outcome to ff.orders.outcomes.
using Outbound =
    std::variant<v1::StockCommand, v1::PaymentRequest, v1::ShipmentRequest, v1::OrderOutcome>;

// The messages `event` triggers, given the state after it was applied:
//   StepStarted{step}           -> that step's requests (outstanding() of the new state)
//   OrderCompleted, OrderRejected -> the outcome
//   anything else               -> nothing
std::vector<Outbound> react(const order::State& after, const v1::OrderEvent& event);

// Requests the order is waiting on in its current step (what a retry resends): pending
// reserves, the authorize, the create, unconfirmed commits, the cancel, the void, the
// unconfirmed releases. Empty for a terminal order.
std::vector<Outbound> outstanding(const order::State& state);
// !outstanding(state).empty(), without building the requests (the runtime asks after every
// event of an order, to know whether a retry timer is due).
bool has_outstanding(const order::State& state);

// What a StockReply the order decider refused as unexpected still needs: a RESERVED reply
// from a SKU where the order no longer holds a line (the order is terminal, or that line
// was already released) means a late or repeated reserve took units there, and only a
// release gives them back. This is what keeps a reserve that outlived the SKU's closed-
// reservation window (limits::sku_closed_reservations_max) from holding stock forever.
// Sending it when nothing is held is harmless: the SKU answers a release of a closed or
// unknown reservation without changing stock. Every other unexpected reply needs nothing.
std::vector<Outbound> answer_unexpected(const order::State& state, const v1::StockReply& reply);

// The terminal confirmation of a terminal order. shard and revision are 0: the runtime sets
// them when the batch holding the terminal event is committed.
v1::OrderOutcome outcome(const order::State& terminal);

// Inline, not in fulfillment.cc: the order decider (ffe_order, which ffe_saga links, not the
// other way round) matches each reply to the command id of its current step with these, so
// the one definition of the format must be usable without linking ffe_saga.
inline std::string reserve_command_id(std::string_view order_id, std::string_view sku) {
  return std::string(order_id) + ":reserve:" + std::string(sku);
}
inline std::string commit_command_id(std::string_view order_id, std::string_view sku) {
  return std::string(order_id) + ":commit:" + std::string(sku);
}
inline std::string release_command_id(std::string_view order_id, std::string_view sku) {
  return std::string(order_id) + ":release:" + std::string(sku);
}
inline std::string authorize_command_id(std::string_view order_id) {
  return std::string(order_id) + ":authorize:1";
}
inline std::string void_command_id(std::string_view order_id) {
  return std::string(order_id) + ":void:1";
}
inline std::string ship_command_id(std::string_view order_id) {
  return std::string(order_id) + ":ship:1";
}
inline std::string cancel_shipment_command_id(std::string_view order_id) {
  return std::string(order_id) + ":cancel-shipment:1";
}

// Capped exponential backoff between resends of the same request: attempt 1 waits
// initial_ms, each next one twice as long, never more than max_ms.
struct RetryPolicy {
  std::int64_t initial_ms = 200;
  std::int64_t max_ms = 5'000;
};
std::int64_t retry_delay_ms(const RetryPolicy& policy, int attempt);

}  // namespace ffe::saga
