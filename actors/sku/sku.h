#pragma once
// The SKU aggregate: a pure decider (decide / evolve), no I/O, no clock, no CAF/RocksDB/Kafka.
//
// Owner: one SKU actor (actors/runtime, later) owns one State and is the only writer; tests
// and replay drive these functions directly.
//
// State invariants (check_invariants() verifies them; evolve() keeps them):
//   1. 0 <= reserved <= on_hand
//   2. reserved == sum of reservations[*].qty, every reservation qty >= 1
//   3. on_hand == received_total + adjusted_in_total - adjusted_out_total - shipped_total
//   4. shipped_total <= received_total + adjusted_in_total   (never ship what never came in)
//   5. closed, recent_receipt_ids, recent_adjustment_ids never exceed their limits::*_max
//      windows; an order id is never both in reservations and in closed.
//
// Idempotency (invariant 3 of the architecture, at the aggregate level):
//   - a receipt or adjustment whose id is in the recent window: no events;
//   - reserve by an order that holds a reservation here: no events, answered RESERVED;
//   - reserve by an order whose reservation is closed: rejected kClosed, answered REFUSED;
//   - release with nothing held and not closed: StockReleased{qty 0} (records the close so a
//     late reserve is refused); release of a closed-released order: no events, RELEASED;
//   - commit of a closed-committed order: no events, COMMITTED; release after commit or
//     commit after release: rejected kClosed, answered REFUSED.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "events/rejection.h"
#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/journal.pb.h"

namespace ffe::sku {

struct ClosedReservation {
  std::string order_id;
  bool committed = false;  // false: released
  bool operator==(const ClosedReservation&) const = default;
};

// Lookup tables over State's windows (closed, recent_receipt_ids, recent_adjustment_ids) so
// every membership test on the hot path is O(1) instead of a scan of a whole window. Derived
// data: evolve() keeps it in step with the windows and from_snapshot() rebuilds it. It holds
// nothing of its own, so it never takes part in equality (hence operator== is always true,
// which keeps State's defaulted operator== comparing content only) nor in the snapshot.
// Code that edits a window by hand must rebuild it (check_invariants() compares the sizes).
struct WindowIndex {
  std::unordered_map<std::string, bool> closed;  // order id -> committed (false: released)
  std::unordered_set<std::string> receipt_ids;
  std::unordered_set<std::string> adjustment_ids;
  bool operator==(const WindowIndex&) const { return true; }
};

struct State {
  std::string sku;  // empty until the first event
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  std::int64_t received_total = 0;
  std::int64_t adjusted_in_total = 0;
  std::int64_t adjusted_out_total = 0;
  std::int64_t shipped_total = 0;
  std::unordered_map<std::string, std::int64_t> reservations;  // order id -> units held
  std::deque<ClosedReservation> closed;                        // oldest first
  std::deque<std::string> recent_receipt_ids;                  // oldest first
  std::deque<std::string> recent_adjustment_ids;               // oldest first
  WindowIndex index;  // derived from the three windows above; see WindowIndex

  std::int64_t available() const { return on_hand - reserved; }
  bool exists() const { return !sku.empty(); }
  bool operator==(const State&) const = default;
};

using Command = std::variant<v1::ReceiveStock, v1::AdjustStock, v1::StockCommand>;

struct Decision {
  std::vector<v1::SkuEvent> events;     // empty and no rejection: a no-op (duplicate)
  std::optional<Rejection> rejection;   // set: no events
  bool rejected() const { return rejection.has_value(); }
};

// `sku` is the entity's key (the runtime routed the command by it); a command naming another
// SKU than the state's is rejected kInvalid (a routing bug, but bad data never aborts ffe).
// Commands are validated here too (events/validate.h): an invalid one is rejected kInvalid
// with the validation reason.
Decision decide(const State& state, const Command& command, std::int64_t now_ms);

// Applies one committed event. Never fails: events were decided against this state (or are
// read back from the journal, which checks them); an event that breaks an invariant is a
// programmer error and aborts with what broke.
void evolve(State& state, std::string_view sku, const v1::SkuEvent& event);

// The answer to an order's StockCommand, given the state after the decision was applied.
v1::StockReply answer(const State& state_after, const v1::StockCommand& command,
                      const Decision& decision);

// nullopt when every state invariant above holds, else which one broke and how.
std::optional<std::string> check_invariants(const State& state);

// Canonical form: reservations sorted by order id, windows oldest first. from_snapshot(
// to_snapshot(s)) == s, and equal states give byte-identical deterministic serializations.
v1::SkuSnapshot to_snapshot(const State& state);
State from_snapshot(const v1::SkuSnapshot& snapshot);

}  // namespace ffe::sku
