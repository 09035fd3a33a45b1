#include "sagas/fulfillment.h"

#include <algorithm>

#include "events/assert.h"

namespace ffe::saga {
namespace {

v1::StockCommand stock_command(const order::State& state, const order::Line& line,
                               v1::StockCommand::Kind kind, std::string command_id) {
  v1::StockCommand command;
  command.set_command_id(std::move(command_id));
  command.set_order_id(state.order_id);
  command.set_sku(line.sku);
  // For a release this is what the order asked for; the SKU gives back what it holds
  // (which is this or nothing), so the number is informative there.
  command.set_qty(line.qty);
  command.set_kind(kind);
  return command;
}

void add_item_lines(const order::State& state,
                    google::protobuf::RepeatedPtrField<v1::ItemLine>& out) {
  for (const order::Line& line : state.lines) {
    v1::ItemLine* item = out.Add();
    item->set_sku(line.sku);
    item->set_qty(line.qty);
  }
}

// Whether a stock step still waits on this line: a reserve on a pending line, a commit on a
// reserved one, and a release on every line not released yet (held or not: a SKU that never
// held it records the close, so a reserve still in flight is refused when it lands).
bool line_outstanding(v1::SagaStep step, const order::Line& line) {
  switch (step) {
    case v1::RESERVE_STOCK: return line.status == order::LineStatus::kPending;
    case v1::COMMIT_STOCK: return line.status == order::LineStatus::kReserved;
    case v1::RELEASE_STOCK: return line.status != order::LineStatus::kReleased;
    default: return false;
  }
}

}  // namespace

std::vector<Outbound> react(const order::State& after, const v1::OrderEvent& event) {
  switch (event.event_case()) {
    case v1::OrderEvent::kStepStarted: return outstanding(after);
    case v1::OrderEvent::kCompleted:
    case v1::OrderEvent::kRejected: return {outcome(after)};
    default: return {};
  }
}

std::vector<Outbound> answer_unexpected(const order::State& state, const v1::StockReply& reply) {
  if (!state.exists() || reply.status() != v1::StockReply::RESERVED) return {};
  for (const order::Line& line : state.lines) {
    if (line.sku != reply.sku()) continue;
    // While the order is open, a line not yet released is either held on purpose or has
    // its release outstanding (and retried): no extra message is needed.
    if (!state.terminal() && line.status != order::LineStatus::kReleased) return {};
    return {stock_command(state, line, v1::StockCommand::RELEASE,
                          release_command_id(state.order_id, line.sku))};
  }
  return {};  // a SKU the order never named: nothing of ours is held there
}

std::vector<Outbound> outstanding(const order::State& state) {
  std::vector<Outbound> out;
  if (!state.exists() || state.terminal()) return out;

  switch (state.step) {
    case v1::RESERVE_STOCK:
      for (const order::Line& line : state.lines) {
        if (!line_outstanding(state.step, line)) continue;
        out.emplace_back(stock_command(state, line, v1::StockCommand::RESERVE,
                                       reserve_command_id(state.order_id, line.sku)));
      }
      break;

    case v1::AUTHORIZE_PAYMENT: {
      v1::PaymentRequest request;
      request.set_command_id(authorize_command_id(state.order_id));
      request.set_order_id(state.order_id);
      v1::Authorize* authorize = request.mutable_authorize();
      authorize->set_amount_cents(state.amount_cents);
      authorize->set_currency(state.currency);
      authorize->set_token(state.payment_token);
      out.emplace_back(std::move(request));
      break;
    }

    case v1::CREATE_SHIPMENT: {
      v1::ShipmentRequest request;
      request.set_command_id(ship_command_id(state.order_id));
      request.set_order_id(state.order_id);
      v1::CreateShipment* create = request.mutable_create();
      add_item_lines(state, *create->mutable_lines());
      *create->mutable_ship_to() = state.ship_to;
      out.emplace_back(std::move(request));
      break;
    }

    case v1::COMMIT_STOCK:
      for (const order::Line& line : state.lines) {
        if (!line_outstanding(state.step, line)) continue;
        out.emplace_back(stock_command(state, line, v1::StockCommand::COMMIT,
                                       commit_command_id(state.order_id, line.sku)));
      }
      break;

    case v1::CANCEL_SHIPMENT: {
      // shipment_id is empty when the create was never answered: the shipping service finds
      // the shipment (or learns there is none) by the create's command id.
      v1::ShipmentRequest request;
      request.set_command_id(cancel_shipment_command_id(state.order_id));
      request.set_order_id(state.order_id);
      v1::CancelShipment* cancel = request.mutable_cancel();
      cancel->set_shipment_id(state.shipment_id);
      cancel->set_create_command_id(ship_command_id(state.order_id));
      out.emplace_back(std::move(request));
      break;
    }

    case v1::VOID_PAYMENT: {
      // payment_id is empty when the authorize was never answered (ghost deduction).
      v1::PaymentRequest request;
      request.set_command_id(void_command_id(state.order_id));
      request.set_order_id(state.order_id);
      v1::Void* undo = request.mutable_void_();
      undo->set_payment_id(state.payment_id);
      undo->set_authorize_command_id(authorize_command_id(state.order_id));
      out.emplace_back(std::move(request));
      break;
    }

    case v1::RELEASE_STOCK:
      for (const order::Line& line : state.lines) {
        if (!line_outstanding(state.step, line)) continue;
        out.emplace_back(stock_command(state, line, v1::StockCommand::RELEASE,
                                       release_command_id(state.order_id, line.sku)));
      }
      break;

    default: FFE_ASSERT(false, "open order without a saga step");
  }
  return out;
}

bool has_outstanding(const order::State& state) {
  if (!state.exists() || state.terminal()) return false;
  switch (state.step) {
    case v1::RESERVE_STOCK:
    case v1::COMMIT_STOCK:
    case v1::RELEASE_STOCK:
      return std::any_of(state.lines.begin(), state.lines.end(),
                         [&](const order::Line& line) { return line_outstanding(state.step, line); });
    case v1::AUTHORIZE_PAYMENT:
    case v1::CREATE_SHIPMENT:
    case v1::CANCEL_SHIPMENT:
    case v1::VOID_PAYMENT:
      return true;  // the step's one request
    default: FFE_ASSERT(false, "open order without a saga step");
  }
  return false;
}

v1::OrderOutcome outcome(const order::State& terminal) {
  FFE_ASSERT(terminal.terminal(), "outcome of an order that is not terminal");
  v1::OrderOutcome result;
  result.set_order_id(terminal.order_id);
  result.set_state(terminal.state);
  result.set_reason(terminal.reason);
  result.set_shard(0);
  result.set_revision(0);
  add_item_lines(terminal, *result.mutable_lines());
  result.set_payment_id(terminal.payment_id);
  result.set_shipment_id(terminal.shipment_id);
  return result;
}

std::int64_t retry_delay_ms(const RetryPolicy& policy, int attempt) {
  FFE_ASSERT(attempt >= 1, "retry attempts count from 1");
  FFE_ASSERT(policy.initial_ms >= 0 && policy.max_ms >= policy.initial_ms,
             "retry policy needs 0 <= initial_ms <= max_ms");
  // initial_ms * 2^(attempt - 1), capped, computed without ever overflowing: stop doubling
  // as soon as the next double would pass the cap.
  std::int64_t delay_ms = policy.initial_ms;
  for (int doubling = 1; doubling < attempt; ++doubling) {
    if (delay_ms == 0) return 0;
    if (delay_ms > policy.max_ms / 2) return policy.max_ms;
    delay_ms *= 2;
  }
  return std::min(delay_ms, policy.max_ms);
}

}  // namespace ffe::saga
