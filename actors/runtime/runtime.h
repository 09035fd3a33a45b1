#pragma once
// The actor runtime: one CAF actor per SKU and per order, owned by its shard, around the
// pure deciders (actors/sku, actors/order), the saga (sagas/) and the journal (storage/).
// docs/runtime.md describes the design; this header is the contract for adapters (Kafka
// ingress, HTTP, benchmarks, tests).
//
// No CAF header here (caf/all.hpp costs seconds per translation unit): the implementation
// hides behind a pimpl.
//
// Guarantees:
//  - One command at a time per entity: every SKU and every order has exactly one actor at a
//    time, and the actor decides, evolves and hands the events to its shard's journal before
//    it takes the next command. That alone is what keeps a SKU from being oversold.
//  - Pipelined durability: an actor may decide its next command before the previous batch
//    is durable; nothing that depends on an undurable batch leaves: acks, stock replies,
//    saga messages, outcomes and even rejections (which depend on state) wait for it.
//  - Backpressure: at most Options::max_in_flight submitted commands are unacknowledged;
//    submit() then waits (Admission::kWait) or answers kBusy (kTry). Nothing is dropped.
//  - Passivation: an idle entity's actor stops after passivate_after, and at most
//    max_live_entities actors live per shard; the next command restores the entity from
//    its latest snapshot plus later events. Open orders are never passivated (they own
//    timers).
//  - Durable deadlines: the journal's index holds every open order with its deadline; on
//    open, every open order is restored, overdue deadlines fire and outstanding saga
//    requests are sent again (with their same command ids).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/order/order.h"
#include "actors/sku/sku.h"
#include "events/rejection.h"
#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/journal.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"
#include "sagas/fulfillment.h"
#include "storage/journal_types.h"

namespace rocksdb {
class Env;
}
#include "storage/status.h"

namespace ffe::storage {
class Journal;
}

namespace ffe::runtime {

using storage::Result;
using storage::Revision;
using storage::ShardId;
using storage::Status;

// ffe's own stable hash from an entity id (an order id or a SKU) to its shard: FNV-1a 64
// over the id's UTF-8 bytes, modulo the shard count. Part of the on-disk format: changing it
// moves entities between shards. Independent of the Kafka key and partitioner.
ShardId shard_of(std::string_view entity_id, std::uint32_t shards);

// Journal entity keys: "sku/<sku>", "order/<orderId>".
std::string sku_key(std::string_view sku);
std::string order_key(std::string_view order_id);

// What a command's sender learns once every effect of the command is durable.
struct Ack {
  // Not OK: the command was not applied (the journal stopped, the runtime is closing).
  Status status;
  ShardId shard;
  // new_revision: the revision the command's events committed at. Otherwise (a duplicate,
  // a no-op or a rejection) the shard revision its answer was based on.
  Revision revision = 0;
  bool new_revision = false;
  // Set: the decider refused the command (no events). For a StockCommand the reason is also
  // in stock_reply.
  std::optional<Rejection> rejection;
  // For a StockCommand: the SKU's answer (RESERVED, INSUFFICIENT, RELEASED, ...).
  std::optional<v1::StockReply> stock_reply;
};

// Called exactly once per accepted submit, on a runtime thread, after durability. Keep it
// short; never block in it and never call submit(..., kWait) from it.
using AckFn = std::function<void(const Ack&)>;

using InventoryCommand = std::variant<v1::ReceiveStock, v1::AdjustStock, v1::StockCommand>;
using OrderCommand = std::variant<v1::PlaceOrder, v1::CancelOrder, v1::PaymentReply, v1::ShipmentReply>;

enum class Admission {
  kWait,  // block while max_in_flight commands are unacknowledged
  kTry,   // return kBusy at once instead; a PlaceOrder also while max_open_orders are open
};

// Where messages for the outside world go (payment and shipment requests, outcomes): the
// outbox relay of each shard calls it with the shard's durable outbox entries, in order.
// Message topics are `<topic_prefix>payments.requests`, `...shipments.requests`,
// `...orders.outcomes`; the payload is the binary Protobuf message with a
// `content-type: application/x-protobuf` header, and an outcome already carries its shard
// and terminal revision. Return true once the entries are handed off (they are then marked
// sent and never offered again unless a crash forgets the mark: at-least-once); false to
// have them offered again later. Called from the relay's own thread, one shard at a time.
//
// Pipelined: the relay hands a shard's entries over with publish_async() as soon as they are
// durable, without waiting for the previous hand-off's confirmation (at most
// Options::relay_window hand-offs per shard unconfirmed), and marks them sent as the
// confirmations arrive, in order. A failed hand-off makes the relay offer it again, with
// everything after it (at-least-once).
class Egress {
 public:
  virtual ~Egress() = default;
  virtual bool publish(ShardId shard, const std::vector<storage::OutboxEntry>& entries) = 0;
  // Starts handing the entries off and returns at once; `done(true)` once all of them are
  // handed off, `done(false)` otherwise. `done` runs exactly once, on any thread (possibly
  // inside this call); it must not block. The default calls publish() and then `done`.
  virtual void publish_async(ShardId shard, const std::vector<storage::OutboxEntry>& entries,
                             std::function<void(bool handed_off)> done) {
    done(publish(shard, entries));
  }
};

// What the runtime reports as it goes, for metrics (adapters/metrics turns these into
// Prometheus families; the runtime never depends on the metrics library). Every method may
// be called from any runtime thread (actor threads, the journal's writer), concurrently:
// keep it quick, lock-free where possible, and never call back into the runtime.
class Observer {
 public:
  virtual ~Observer() = default;
  // An order's terminal command was decided (FULFILLED, CANCELLED or REJECTED), once per
  // order while the process lives.
  virtual void order_terminal(v1::OrderState /*state*/) {}
  // A saga step ended (the next one began or the order became terminal) `seconds` after it
  // started. Steps that began before a restart are not reported.
  virtual void saga_step_finished(v1::SagaStep /*step*/, double /*seconds*/) {}
  // A synced write of the journal (group commit).
  virtual void journal_batch(const storage::BatchObservation& /*batch*/) {}
};

struct Options {
  std::string data_dir;
  // Shards of a new data dir (0: 8). An existing data dir keeps the count it was created
  // with: 0 takes it, any other number must equal it (kInvalidArgument otherwise).
  std::uint32_t shards = 0;
  // CAF scheduler threads; 0: one per core.
  std::size_t scheduler_threads = 0;
  // How an idle CAF worker waits for work: it polls its queue `worker_spins` times (stealing
  // from the other workers now and then), then `worker_naps` times 50 us apart, then sleeps
  // on a condition variable until work is enqueued. CAF's own defaults are 100 and 500 (25 ms
  // of naps, each two context switches). Without naps the saturated engine completes fewer
  // orders (the enqueuers must wake sleeping workers); 20 naps (1 ms) kept its throughput and
  // cost less CPU and latency at 1,000 orders/s (docs/runtime-bench.md, "Idle workers").
  std::size_t worker_spins = 100;
  std::size_t worker_naps = 20;
  order::Policy order_policy;
  // Resend of a step's outstanding requests to participants. Kafka round trips under a
  // burst take hundreds of milliseconds, so the first resend waits a second (the saga's pure
  // default, 200 ms, suits the simulation, not a broker).
  saga::RetryPolicy retry{1'000, 8'000};
  std::chrono::milliseconds passivate_after{60'000};
  // Per shard. A live SKU actor costs about 4-5 KB (docs/runtime-bench.md), so the default
  // bounds 8 shards to about 400 MB of actors whatever the number of entities.
  std::size_t max_live_entities = 10'000;
  std::size_t max_in_flight = 16'384;       // unacknowledged submitted commands
  // Outbox hand-offs (Egress::publish_async calls) a shard's relay keeps unconfirmed; 1
  // waits for each confirmation before the next hand-off.
  std::size_t relay_window = 4;
  // Open (placed, not yet terminal) orders plus PlaceOrders submitted and not yet decided,
  // all shards together. At the bound a PlaceOrder submitted with Admission::kTry answers
  // kBusy, so the backlog above what the engine completes waits upstream (in Kafka), where
  // no saga clock runs, instead of inside the engine as accepted orders whose resends and
  // step timeouts fire. Every other command (replies, cancels, stock) is admitted: they are
  // what closes orders. kWait placements are not bounded by it. 0: unbounded.
  std::size_t max_open_orders = 0;
  // Journal tuning (storage::JournalOptions has the details).
  std::size_t commit_batch_commands = 4096;
  // How long the writer lingers for a fuller batch; 0 (measured best: docs/runtime-bench.md).
  std::chrono::microseconds commit_wait{0};
  std::uint32_t snapshot_every_events = 64;
  std::string topic_prefix = "ff.";
  // Not owned; must outlive the runtime. nullptr: outbox messages stay in the journal,
  // unsent, until a runtime with an egress opens the data dir.
  Egress* egress = nullptr;
  // Wall clock in ms since the epoch (deadlines); tests may substitute their own.
  std::function<std::int64_t()> clock;
  // Not owned; must outlive the runtime. nullptr: nothing is reported.
  Observer* observer = nullptr;
  // Tests only: the journal's RocksDB Env (storage::JournalOptions::env, e.g. a FileSystem
  // that holds synced writes); not owned, must outlive the runtime. nullptr: the default.
  rocksdb::Env* journal_env = nullptr;
};

struct Stats {
  std::uint64_t commands = 0;          // commands decided (submitted and internal)
  std::uint64_t rejected = 0;          // decided and refused
  std::uint64_t live_entities = 0;     // actors alive now, all shards
  std::uint64_t spawned = 0;           // actors started (first use or restore)
  std::uint64_t restored = 0;          // of those, entities that existed in the journal
  std::uint64_t passivated = 0;        // actors stopped for idleness or the cap
  std::uint64_t actor_failures = 0;    // actors that failed and were restarted from the journal
  std::uint64_t late_replies = 0;      // replies an order refused (unexpected or after terminal)
  std::uint64_t redelivered = 0;       // inventory commands whose input position was applied
                                       // before (a redelivery after a restart): answered, not decided
  std::uint64_t unexpected_releases = 0;  // releases sent by saga::answer_unexpected
  std::uint64_t expired = 0;           // step deadlines that fired (StepTimedOut events)
  std::uint64_t retries = 0;           // outstanding requests sent again
  std::uint64_t timers_armed = 0;      // saga deadline and retry timers armed
  std::uint64_t timers_fired = 0;      // of those, delivered to their order when due
  std::uint64_t timers_dropped = 0;    // dropped when due without waking the order: superseded,
                                       // the order ended, or its actor stopped
  std::uint64_t open_orders_recovered = 0;  // open orders found in the index at open()
  std::uint64_t in_flight = 0;         // submitted, not yet acknowledged
  std::uint64_t open_orders = 0;       // placed and not yet terminal (what max_open_orders bounds,
                                       // with the placements not yet answered)
  std::uint64_t placements_refused = 0;  // kTry PlaceOrders answered kBusy for max_open_orders
  std::uint64_t submit_waits = 0;      // submit() calls that waited for credit
};

class Runtime {
 public:
  // Opens the journal in options.data_dir, starts the actor system and the outbox relays,
  // restores every open order (firing overdue deadlines, resending outstanding requests).
  static Result<std::unique_ptr<Runtime>> open(Options options);
  // Waits for every accepted command to be acknowledged, stops the actors and relays and
  // closes the journal.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Queues a command for the entity that owns it (the SKU, the order). Not OK (`done` is
  // never called): kBusy (kTry and no credit), kClosed, kStopped (the journal fail-stopped).
  // `input` is recorded in the same batch as the command's effects.
  Status submit(InventoryCommand command, AckFn done, Admission admission = Admission::kWait,
                std::optional<storage::InputPosition> input = std::nullopt);
  Status submit(OrderCommand command, AckFn done, Admission admission = Admission::kWait,
                std::optional<storage::InputPosition> input = std::nullopt);

  // Durable state (the journal at the shard's current revision); nullopt: no such entity.
  Result<std::optional<sku::State>> sku(std::string_view sku) const;
  Result<std::optional<order::State>> order(std::string_view order_id) const;

  // Waits until nothing submitted is unacknowledged and every actor's mailbox and pending
  // commits are empty (a quiet point); false on timeout. Saga steps waiting on a
  // participant are not "work": an order waiting for a payment reply is quiet.
  bool wait_quiet(std::chrono::milliseconds timeout);

  // Tests only: stops the order's actor with an error, as a failure outside ffe's handlers
  // would (a failure inside them restarts the actor in place). The router restarts it from
  // the journal and it recovers as at open(): timers re-armed, outstanding requests resent.
  void fail_order_actor_for_testing(std::string_view order_id);

  // Room for `n` more kTry placements under Options::max_open_orders (always true when
  // unbounded): a cheap check, so a caller that was refused can wait without resubmitting.
  bool placements_admissible(std::size_t n = 1) const;

  std::uint32_t shard_count() const;
  ShardId shard_of(std::string_view entity_id) const;
  storage::Journal& journal() const;
  Stats stats() const;

  class Impl;

 private:
  explicit Runtime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ffe::runtime
