#pragma once
// A seeded, deterministic simulation of ffe's pure core (TigerBeetle's VOPR, in small): many
// orders race for few SKUs through the real deciders and the real saga, over a simulated
// network that delivers messages late, out of order and more than once, with simulated
// participants that approve, decline, fail, stay silent or answer twice, customers that
// cancel, a virtual clock that makes deadlines fire, and "crashes" that rebuild every
// aggregate from its events and check the rebuilt state equals the live one.
//
// After every step it checks the architecture's invariants 1 (no oversell), 3 (no duplicate
// effects), 4 (terminal is absorbing) and, once the run drains, 5 (every order terminal,
// every reservation committed or released, every compensation acknowledged). The same seed
// gives the same run, step for step; a failure names the seed and the step.
//
// Used by tests/sim (CI runs >= 100,000 steps over several seeds) and by `ffe simulate`.

#include <cstdint>
#include <optional>
#include <string>

namespace ffe::sim {

// Test-only faults that break the world on purpose, so tests can prove the checks fail when
// they must (a checker that never fails proves nothing).
enum class Fault {
  kNone,
  kReserveWithoutDecide,    // at inject_fault_at_step, a StockReserved nobody decided
  kParticipantIgnoresVoid,  // from the start, the payment participant acknowledges voids but
                            // keeps the authorization live
};

struct Options {
  std::uint64_t seed = 1;
  std::int64_t steps = 10'000;        // steps of load; then the run drains (no new orders)
  int skus = 5;                       // few SKUs: orders race for them
  std::int64_t initial_stock = 20;    // units per SKU at the start
  double p_place = 0.10;              // per step: a new order
  double p_receive = 0.01;            // per step: a stock receipt
  double p_cancel = 0.02;             // per step: a customer cancels a random open order
  double p_duplicate = 0.05;          // a delivered message is delivered again later
  double p_delay = 0.03;              // a sent message is held back (consumer lag): a long tail
  std::int64_t delay_steps_max = 150;  // ... for 1..this steps, longer than any step timeout
  double p_expire = 0.05;             // per step: the clock fires due deadlines
  double p_retry = 0.05;              // per step: resend an order's outstanding requests
  double p_crash = 0.002;             // per step: rebuild every aggregate from its events
  std::int64_t max_clock_step_ms = 400;  // the virtual clock advances 0..this per step
  std::int64_t deliveries_per_step_max = 4;  // messages delivered per step: 0..this (drain: 1..)
  std::int64_t drain_steps_max = 200'000;    // an order still open after this many is a failure
  Fault inject_fault = Fault::kNone;
  std::int64_t inject_fault_at_step = 1'000;  // kReserveWithoutDecide: first step it can apply
};

struct Report {
  std::uint64_t seed = 0;
  std::int64_t steps = 0;             // load + drain steps run
  std::int64_t orders = 0;
  std::int64_t fulfilled = 0;
  std::int64_t cancelled = 0;
  std::int64_t rejected = 0;
  std::int64_t events = 0;            // events committed, all aggregates
  std::int64_t messages = 0;          // messages delivered, duplicates included
  std::int64_t duplicates = 0;        // deliveries of a message already delivered
  std::int64_t late_replies = 0;      // replies the order refused: unexpected, or after terminal
  std::int64_t crashes = 0;
  std::int64_t timeouts = 0;          // StepTimedOut events: a forward step's deadline fired
  std::int64_t ghosts = 0;            // requests a participant acted on without answering
  std::int64_t refused_reserves = 0;  // late reserves a SKU refused: the order had closed there
  std::int64_t unexpected_releases = 0;  // releases sent by saga::answer_unexpected
  std::int64_t units_shipped = 0;
  std::int64_t drain_steps = 0;       // of `steps`, those run after the load stopped
  std::int64_t in_flight_max = 0;     // most messages on the network at the end of a step
  std::optional<std::string> failure;  // set: an invariant broke; says which, at what step, and the seed
};

Report run(const Options& options);

// One line of JSON, for `ffe simulate` and for test logs.
std::string to_json(const Report& report);

}  // namespace ffe::sim
