#include "actors/sku/sku.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>

#include "events/assert.h"
#include "events/limits.h"
#include "events/validate.h"

namespace ffe::sku {
namespace {

constexpr std::uint32_t snapshot_schema_version = 1;
constexpr std::int64_t units_max = std::numeric_limits<std::int64_t>::max();

// ---------------------------------------------------------------------------------------
// Reasons (built only on the rejection path: the accepted path allocates nothing for them).
// Offending values are quoted with events::quote, as every reason in ffe is.

std::string id_rule() {
  return "must match [A-Za-z0-9][A-Za-z0-9._-]{0," + std::to_string(limits::id_length_max - 1) +
         "}";
}

// ---------------------------------------------------------------------------------------
// Decisions and events

Decision rejected(RejectionCode code, std::string reason) {
  Decision decision;
  decision.rejection = Rejection{code, std::move(reason)};
  return decision;
}

Decision with_event(v1::SkuEvent event) {
  Decision decision;
  decision.events.push_back(std::move(event));
  return decision;
}

v1::SkuEvent stock_received(const v1::ReceiveStock& command) {
  v1::SkuEvent event;
  auto* received = event.mutable_received();
  received->set_qty(command.qty());
  received->set_receipt_id(command.receipt_id());
  return event;
}

v1::SkuEvent stock_adjusted(const v1::AdjustStock& command) {
  v1::SkuEvent event;
  auto* adjusted = event.mutable_adjusted();
  adjusted->set_delta(command.delta());
  adjusted->set_adjustment_id(command.adjustment_id());
  adjusted->set_reason(command.reason());
  return event;
}

v1::SkuEvent stock_reserved(const std::string& order_id, std::int64_t qty) {
  v1::SkuEvent event;
  event.mutable_reserved()->set_order_id(order_id);
  event.mutable_reserved()->set_qty(qty);
  return event;
}

v1::SkuEvent stock_released(const std::string& order_id, std::int64_t qty) {
  v1::SkuEvent event;
  event.mutable_released()->set_order_id(order_id);
  event.mutable_released()->set_qty(qty);
  return event;
}

v1::SkuEvent stock_committed(const std::string& order_id, std::int64_t qty) {
  v1::SkuEvent event;
  event.mutable_committed()->set_order_id(order_id);
  event.mutable_committed()->set_qty(qty);
  return event;
}

// Units that ever came in. on_hand, adjusted_out_total and shipped_total are all bounded by
// it (invariants 1, 3), so keeping it within int64 keeps every counter within int64.
std::int64_t inflow_total(const State& state) {
  return state.received_total + state.adjusted_in_total;
}

// ---------------------------------------------------------------------------------------
// decide

// The runtime routes by the payload's sku, so a mismatch is a routing bug; it is still
// rejected rather than asserted because it arrives as data. A state with no events yet has
// no key to compare: its first event gives it the command's.
std::optional<std::string> wrong_sku(const State& state, std::string_view path,
                                     const std::string& sku) {
  if (!state.exists() || state.sku == sku) return std::nullopt;
  return std::string(path) + ".sku: must be this entity's key " + events::quote(state.sku) + " (got " +
         events::quote(sku) + ")";
}

// StockCommand is internal (order -> SKU), so events/validate.h has no rule set for it; its
// rules live here, with reasons in the same "<field path>: <rule>" form.
std::optional<std::string> invalid_stock_command(const v1::StockCommand& command) {
  switch (command.kind()) {
    case v1::StockCommand::RESERVE:
    case v1::StockCommand::RELEASE:
    case v1::StockCommand::COMMIT:
      break;
    default:
      return "stockCommand.kind: must be RESERVE, RELEASE or COMMIT (got " +
             std::to_string(command.kind()) + ")";
  }
  if (!events::is_valid_id(command.order_id())) {
    return "stockCommand.orderId: " + id_rule() + " (got " + events::quote(command.order_id()) + ")";
  }
  if (!events::is_valid_id(command.sku())) {
    return "stockCommand.sku: " + id_rule() + " (got " + events::quote(command.sku()) + ")";
  }
  if (command.qty() < 1 || command.qty() > limits::line_qty_max) {
    return "stockCommand.qty: must be between 1 and " + std::to_string(limits::line_qty_max) +
           " (got " + std::to_string(command.qty()) + ")";
  }
  return std::nullopt;
}

Decision decide_receive(const State& state, const v1::ReceiveStock& command) {
  if (auto error = events::validate(command)) {
    return rejected(RejectionCode::kInvalid, error->to_string());
  }
  if (auto reason = wrong_sku(state, "receiveStock", command.sku())) {
    return rejected(RejectionCode::kInvalid, std::move(*reason));
  }
  if (state.index.receipt_ids.contains(command.receipt_id())) return {};  // a repeat
  if (command.qty() > units_max - inflow_total(state)) {
    return rejected(RejectionCode::kInvalid,
                    "receiveStock.qty: would take the units taken in past " +
                        std::to_string(units_max) + " (got " + std::to_string(command.qty()) +
                        ")");
  }
  return with_event(stock_received(command));
}

Decision decide_adjust(const State& state, const v1::AdjustStock& command) {
  if (auto error = events::validate(command)) {
    return rejected(RejectionCode::kInvalid, error->to_string());
  }
  if (auto reason = wrong_sku(state, "adjustStock", command.sku())) {
    return rejected(RejectionCode::kInvalid, std::move(*reason));
  }
  if (state.index.adjustment_ids.contains(command.adjustment_id())) return {};  // a repeat
  const std::int64_t delta = command.delta();
  if (delta < 0 && state.on_hand + delta < state.reserved) {  // on_hand >= 0: no overflow
    return rejected(RejectionCode::kInvalid,
                    "adjustStock.delta: would leave onHand " +
                        std::to_string(state.on_hand + delta) + " below reserved " +
                        std::to_string(state.reserved));
  }
  if (delta > 0 && delta > units_max - inflow_total(state)) {
    return rejected(RejectionCode::kInvalid,
                    "adjustStock.delta: would take the units taken in past " +
                        std::to_string(units_max) + " (got " + std::to_string(delta) + ")");
  }
  return with_event(stock_adjusted(command));
}

Decision decide_stock(const State& state, const v1::StockCommand& command) {
  if (auto reason = invalid_stock_command(command)) {
    return rejected(RejectionCode::kInvalid, std::move(*reason));
  }
  if (auto reason = wrong_sku(state, "stockCommand", command.sku())) {
    return rejected(RejectionCode::kInvalid, std::move(*reason));
  }
  const std::string& order_id = command.order_id();
  // Invariant 5: an order is in at most one of the two, so at most one lookup hits.
  const auto held = state.reservations.find(order_id);
  const bool holds = held != state.reservations.end();
  const auto closed = holds ? state.index.closed.end() : state.index.closed.find(order_id);
  const bool is_closed = closed != state.index.closed.end();
  const bool closed_committed = is_closed && closed->second;

  switch (command.kind()) {
    case v1::StockCommand::RESERVE:
      // The first reserve wins: a repeat (even with another qty) holds nothing more.
      if (holds) return {};
      if (is_closed) {
        return rejected(RejectionCode::kClosed,
                        "order " + order_id + " already " +
                            (closed_committed ? "committed" : "released") +
                            " its reservation on sku " + command.sku() +
                            ": a late reserve is refused");
      }
      if (command.qty() > state.available()) {
        return rejected(RejectionCode::kOutOfStock,
                        "out of stock: sku " + command.sku() + " has " +
                            std::to_string(state.available()) + " available, order " + order_id +
                            " asked " + std::to_string(command.qty()));
      }
      return with_event(stock_reserved(order_id, command.qty()));

    case v1::StockCommand::RELEASE:
      // Releases what is held, whatever qty the command names: the reservation is the truth.
      if (holds) return with_event(stock_released(order_id, held->second));
      if (closed_committed) {
        return rejected(RejectionCode::kClosed, "order " + order_id +
                                                    " committed its reservation on sku " +
                                                    command.sku() + ": it cannot be released");
      }
      if (is_closed) return {};  // a repeat
      // Nothing held (the reserve was refused, or is still on its way): record the close so
      // that reserve, if it arrives late, is refused instead of holding stock forever.
      return with_event(stock_released(order_id, 0));

    case v1::StockCommand::COMMIT:
      if (holds) return with_event(stock_committed(order_id, held->second));
      if (closed_committed) return {};  // a repeat
      if (is_closed) {
        return rejected(RejectionCode::kClosed, "order " + order_id +
                                                    " released its reservation on sku " +
                                                    command.sku() + ": it cannot be committed");
      }
      return rejected(RejectionCode::kInvalid, "nothing reserved for order " + order_id);

    default:
      break;
  }
  FFE_ASSERT(false, "decide: StockCommand kind passed validation but has no rule");
  return {};
}

// ---------------------------------------------------------------------------------------
// evolve

// Appends to a bounded window of ids, oldest out. Ids in a window are unique (a repeat is a
// no-op, so it never reaches evolve), so the index holds exactly the window's ids.
void remember(std::deque<std::string>& window, std::unordered_set<std::string>& index,
              const std::string& id, std::size_t window_max) {
  index.insert(id);
  window.push_back(id);
  if (window.size() > window_max) {
    index.erase(window.front());
    window.pop_front();
  }
}

void close_reservation(State& state, std::string order_id, bool committed) {
  state.index.closed.emplace(order_id, committed);
  state.closed.push_back(ClosedReservation{std::move(order_id), committed});
  if (state.closed.size() > limits::sku_closed_reservations_max) {
    state.index.closed.erase(state.closed.front().order_id);
    state.closed.pop_front();
  }
}

// Removes the order's reservation and returns its id, reusing the map node's string.
std::string take_reservation(State& state,
                             std::unordered_map<std::string, std::int64_t>::iterator held) {
  state.reserved -= held->second;
  auto node = state.reservations.extract(held);
  return std::move(node.key());
}

void apply(State& state, const v1::StockReceived& received) {
  FFE_ASSERT(received.qty() >= 1, "StockReceived: qty must be >= 1");
  FFE_ASSERT(received.qty() <= units_max - inflow_total(state),
             "StockReceived: units taken in would overflow");
  FFE_ASSERT(!received.receipt_id().empty(), "StockReceived: empty receipt id");
  FFE_ASSERT(!state.index.receipt_ids.contains(received.receipt_id()),
             "StockReceived: receipt id already in the window (a repeat is a no-op)");
  state.on_hand += received.qty();
  state.received_total += received.qty();
  remember(state.recent_receipt_ids, state.index.receipt_ids, received.receipt_id(),
           limits::sku_recent_receipts_max);
}

void apply(State& state, const v1::StockAdjusted& adjusted) {
  const std::int64_t delta = adjusted.delta();
  FFE_ASSERT(delta != 0, "StockAdjusted: delta must be != 0");
  FFE_ASSERT(!adjusted.adjustment_id().empty(), "StockAdjusted: empty adjustment id");
  FFE_ASSERT(!state.index.adjustment_ids.contains(adjusted.adjustment_id()),
             "StockAdjusted: adjustment id already in the window (a repeat is a no-op)");
  if (delta < 0) {
    // on_hand >= 0, so on_hand + delta cannot overflow, and the check below bounds -delta.
    FFE_ASSERT(state.on_hand + delta >= state.reserved,
               "StockAdjusted: would leave on_hand below reserved");
    state.adjusted_out_total -= delta;
  } else {
    FFE_ASSERT(delta <= units_max - inflow_total(state),
               "StockAdjusted: units taken in would overflow");
    state.adjusted_in_total += delta;
  }
  state.on_hand += delta;
  remember(state.recent_adjustment_ids, state.index.adjustment_ids, adjusted.adjustment_id(),
           limits::sku_recent_adjustments_max);
}

void apply(State& state, const v1::StockReserved& reserved) {
  FFE_ASSERT(reserved.qty() >= 1, "StockReserved: qty must be >= 1");
  FFE_ASSERT(reserved.qty() <= state.available(), "StockReserved: more than available (oversell)");
  FFE_ASSERT(!state.index.closed.contains(reserved.order_id()),
             "StockReserved: the order's reservation here is closed");
  const bool inserted = state.reservations.emplace(reserved.order_id(), reserved.qty()).second;
  FFE_ASSERT(inserted, "StockReserved: the order already holds a reservation here");
  state.reserved += reserved.qty();
}

void apply(State& state, const v1::StockReleased& released) {
  const auto held = state.reservations.find(released.order_id());
  if (held == state.reservations.end()) {
    FFE_ASSERT(released.qty() == 0, "StockReleased: qty > 0 but the order holds nothing");
    FFE_ASSERT(!state.index.closed.contains(released.order_id()),
               "StockReleased: the order's reservation here is already closed");
    close_reservation(state, released.order_id(), /*committed=*/false);
    return;
  }
  FFE_ASSERT(released.qty() == held->second, "StockReleased: qty differs from the units held");
  close_reservation(state, take_reservation(state, held), /*committed=*/false);
}

void apply(State& state, const v1::StockCommitted& committed) {
  const auto held = state.reservations.find(committed.order_id());
  FFE_ASSERT(held != state.reservations.end(), "StockCommitted: the order holds nothing");
  FFE_ASSERT(committed.qty() == held->second, "StockCommitted: qty differs from the units held");
  state.on_hand -= committed.qty();
  state.shipped_total += committed.qty();
  close_reservation(state, take_reservation(state, held), /*committed=*/true);
}

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  ((out += parts), ...);
  return out;
}

std::string str(std::int64_t value) { return std::to_string(value); }

}  // namespace

Decision decide(const State& state, const Command& command, std::int64_t now_ms) {
  // The SKU has no deadlines: now_ms is part of the decider's shape, unused here.
  struct Visitor {
    const State& state;
    Decision operator()(const v1::ReceiveStock& c) const { return decide_receive(state, c); }
    Decision operator()(const v1::AdjustStock& c) const { return decide_adjust(state, c); }
    Decision operator()(const v1::StockCommand& c) const { return decide_stock(state, c); }
  };
  return std::visit(Visitor{state}, command);
}

void evolve(State& state, std::string_view sku, const v1::SkuEvent& event) {
  FFE_ASSERT(!sku.empty(), "evolve: empty sku key");
  if (state.exists()) {
    FFE_ASSERT(state.sku == sku, "evolve: event for another sku");
  } else {
    state.sku = sku;
  }
  switch (event.event_case()) {
    case v1::SkuEvent::kReceived: apply(state, event.received()); return;
    case v1::SkuEvent::kAdjusted: apply(state, event.adjusted()); return;
    case v1::SkuEvent::kReserved: apply(state, event.reserved()); return;
    case v1::SkuEvent::kReleased: apply(state, event.released()); return;
    case v1::SkuEvent::kCommitted: apply(state, event.committed()); return;
    case v1::SkuEvent::EVENT_NOT_SET: break;
  }
  FFE_ASSERT(false, "evolve: SkuEvent with no event set");
}

v1::StockReply answer(const State& state_after, const v1::StockCommand& command,
                      const Decision& decision) {
  v1::StockReply reply;
  reply.set_command_id(command.command_id());
  reply.set_order_id(command.order_id());
  reply.set_sku(command.sku());
  reply.set_available(state_after.available());
  if (decision.rejected()) {
    reply.set_status(decision.rejection->code == RejectionCode::kOutOfStock
                         ? v1::StockReply::INSUFFICIENT
                         : v1::StockReply::REFUSED);
    reply.set_reason(decision.rejection->reason);
    return reply;  // qty 0: nothing held
  }
  // qty is what this command moved; a repeat of a closed release/commit moved nothing (0),
  // so summing replies never counts a unit twice. A reserve answers the units held.
  switch (command.kind()) {
    case v1::StockCommand::RESERVE: {
      const auto held = state_after.reservations.find(command.order_id());
      FFE_ASSERT(held != state_after.reservations.end(),
                 "answer: an accepted reserve but the order holds nothing in state_after");
      reply.set_status(v1::StockReply::RESERVED);
      reply.set_qty(held->second);
      return reply;
    }
    case v1::StockCommand::RELEASE:
      reply.set_status(v1::StockReply::RELEASED);
      if (!decision.events.empty()) reply.set_qty(decision.events.front().released().qty());
      return reply;
    case v1::StockCommand::COMMIT:
      reply.set_status(v1::StockReply::COMMITTED);
      if (!decision.events.empty()) reply.set_qty(decision.events.front().committed().qty());
      return reply;
    default:
      break;
  }
  FFE_ASSERT(false, "answer: an accepted StockCommand with no valid kind");
  return reply;
}

std::optional<std::string> check_invariants(const State& state) {
  if (!state.exists()) {
    if (!(state == State{})) return "no sku but the state is not empty";
    if (!state.index.closed.empty() || !state.index.receipt_ids.empty() ||
        !state.index.adjustment_ids.empty()) {
      return "no sku but the window index is not empty";
    }
    return std::nullopt;
  }
  // 1
  if (state.reserved < 0 || state.reserved > state.on_hand) {
    return concat("1: 0 <= reserved <= on_hand broken: reserved ", str(state.reserved),
                  ", on_hand ", str(state.on_hand));
  }
  // 2. The sums are checked for overflow: this function must diagnose corrupt states too.
  std::int64_t held_total = 0;
  for (const auto& [order_id, qty] : state.reservations) {
    if (qty < 1) return concat("2: reservation of order ", order_id, " holds ", str(qty));
    if (__builtin_add_overflow(held_total, qty, &held_total)) {
      return "2: the sum of reservations overflows";
    }
  }
  if (held_total != state.reserved) {
    return concat("2: reserved ", str(state.reserved), " != sum of reservations ",
                  str(held_total));
  }
  // 3
  if (state.received_total < 0 || state.adjusted_in_total < 0 || state.adjusted_out_total < 0 ||
      state.shipped_total < 0) {
    return "3: a total is negative";
  }
  std::int64_t expected_on_hand = 0;
  if (__builtin_add_overflow(state.received_total, state.adjusted_in_total, &expected_on_hand)) {
    return "3: received + adjusted in overflows";
  }
  // Both subtrahends are >= 0 and expected_on_hand >= 0 here: no overflow below.
  expected_on_hand -= state.adjusted_out_total;
  expected_on_hand -= state.shipped_total;
  if (state.on_hand != expected_on_hand) {
    return concat("3: on_hand ", str(state.on_hand), " != received + adjusted in - adjusted out",
                  " - shipped = ", str(expected_on_hand));
  }
  // 4. Implied by 1 and 3 (on_hand >= 0 bounds what left); checked anyway, as the
  // architecture's "never ship what never came in" deserves its own line.
  if (state.shipped_total > inflow_total(state)) {
    return concat("4: shipped ", str(state.shipped_total), " > received + adjusted in ",
                  str(inflow_total(state)));
  }
  // 5
  if (state.closed.size() > limits::sku_closed_reservations_max) {
    return concat("5: closed window holds ", str(state.closed.size()), " > ",
                  str(limits::sku_closed_reservations_max));
  }
  if (state.recent_receipt_ids.size() > limits::sku_recent_receipts_max) {
    return concat("5: receipt window holds ", str(state.recent_receipt_ids.size()), " > ",
                  str(limits::sku_recent_receipts_max));
  }
  if (state.recent_adjustment_ids.size() > limits::sku_recent_adjustments_max) {
    return concat("5: adjustment window holds ", str(state.recent_adjustment_ids.size()), " > ",
                  str(limits::sku_recent_adjustments_max));
  }
  // The derived index (WindowIndex): one entry per window entry. Sizes only, so this stays
  // O(1) and check_invariants() costs O(open reservations), cheap enough to run after every
  // command of a long test or simulation. A missed insert or erase, a window edited by hand,
  // or a snapshot with a repeated id shows here; the index's content is checked against an
  // independent rebuild (from_snapshot) by tests/sku.
  if (state.index.closed.size() != state.closed.size()) {
    return concat("index: ", str(state.index.closed.size()),
                  " closed orders indexed, window holds ", str(state.closed.size()));
  }
  if (state.index.receipt_ids.size() != state.recent_receipt_ids.size()) {
    return concat("index: ", str(state.index.receipt_ids.size()),
                  " receipt ids indexed, window holds ", str(state.recent_receipt_ids.size()));
  }
  if (state.index.adjustment_ids.size() != state.recent_adjustment_ids.size()) {
    return concat("index: ", str(state.index.adjustment_ids.size()),
                  " adjustment ids indexed, window holds ",
                  str(state.recent_adjustment_ids.size()));
  }
  // 5 (disjoint), through the index: O(open reservations), not O(window).
  for (const auto& [order_id, qty] : state.reservations) {
    if (state.index.closed.contains(order_id)) {
      return concat("5: order ", order_id, " both holds a reservation and is closed");
    }
  }
  return std::nullopt;
}

v1::SkuSnapshot to_snapshot(const State& state) {
  v1::SkuSnapshot snapshot;
  snapshot.set_schema_version(snapshot_schema_version);
  snapshot.set_sku(state.sku);
  snapshot.set_on_hand(state.on_hand);
  snapshot.set_reserved(state.reserved);
  snapshot.set_received_total(state.received_total);
  snapshot.set_adjusted_in_total(state.adjusted_in_total);
  snapshot.set_adjusted_out_total(state.adjusted_out_total);
  snapshot.set_shipped_total(state.shipped_total);

  // The map's iteration order depends on its history (buckets, rehashes): sort for a
  // canonical form.
  using Entry = std::unordered_map<std::string, std::int64_t>::value_type;
  std::vector<const Entry*> sorted;
  sorted.reserve(state.reservations.size());
  for (const Entry& entry : state.reservations) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const Entry* a, const Entry* b) { return a->first < b->first; });
  snapshot.mutable_reservations()->Reserve(static_cast<int>(sorted.size()));
  for (const Entry* entry : sorted) {
    auto* reservation = snapshot.add_reservations();
    reservation->set_order_id(entry->first);
    reservation->set_qty(entry->second);
  }

  snapshot.mutable_closed()->Reserve(static_cast<int>(state.closed.size()));
  for (const ClosedReservation& closed : state.closed) {
    auto* out = snapshot.add_closed();
    out->set_order_id(closed.order_id);
    out->set_committed(closed.committed);
  }
  snapshot.mutable_recent_receipt_ids()->Reserve(static_cast<int>(state.recent_receipt_ids.size()));
  for (const std::string& id : state.recent_receipt_ids) snapshot.add_recent_receipt_ids(id);
  snapshot.mutable_recent_adjustment_ids()->Reserve(
      static_cast<int>(state.recent_adjustment_ids.size()));
  for (const std::string& id : state.recent_adjustment_ids) snapshot.add_recent_adjustment_ids(id);
  return snapshot;
}

State from_snapshot(const v1::SkuSnapshot& snapshot) {
  // Storage checks a snapshot (version included) when it reads it back (STYLE habit 4);
  // handing this binary a newer schema it cannot interpret is a programmer error.
  FFE_ASSERT(snapshot.schema_version() <= snapshot_schema_version,
             "from_snapshot: snapshot from a newer schema version");
  State state;
  state.sku = snapshot.sku();
  state.on_hand = snapshot.on_hand();
  state.reserved = snapshot.reserved();
  state.received_total = snapshot.received_total();
  state.adjusted_in_total = snapshot.adjusted_in_total();
  state.adjusted_out_total = snapshot.adjusted_out_total();
  state.shipped_total = snapshot.shipped_total();
  state.reservations.reserve(static_cast<std::size_t>(snapshot.reservations_size()));
  for (const auto& reservation : snapshot.reservations()) {
    state.reservations.emplace(reservation.order_id(), reservation.qty());
  }
  // Windows are taken as they are, never trimmed here: a snapshot that breaks a bound is
  // reported by check_invariants(), not silently repaired.
  state.index.closed.reserve(static_cast<std::size_t>(snapshot.closed_size()));
  for (const auto& closed : snapshot.closed()) {
    state.closed.push_back(ClosedReservation{closed.order_id(), closed.committed()});
    state.index.closed.emplace(closed.order_id(), closed.committed());
  }
  state.index.receipt_ids.reserve(static_cast<std::size_t>(snapshot.recent_receipt_ids_size()));
  for (const std::string& id : snapshot.recent_receipt_ids()) {
    state.recent_receipt_ids.push_back(id);
    state.index.receipt_ids.insert(id);
  }
  state.index.adjustment_ids.reserve(
      static_cast<std::size_t>(snapshot.recent_adjustment_ids_size()));
  for (const std::string& id : snapshot.recent_adjustment_ids()) {
    state.recent_adjustment_ids.push_back(id);
    state.index.adjustment_ids.insert(id);
  }
  return state;
}

}  // namespace ffe::sku
