// The actor runtime (runtime.h has the contract, docs/runtime.md the design).
//
// Shape, per shard: one router actor owns the shard's entity actors (spawn on first use,
// passivation, the live cap); every message for an entity goes through its shard's router,
// which keeps per-sender FIFO order. An entity actor holds its aggregate's state, decides one
// command at a time, evolves, and hands the events to the journal (storage::Journal::submit)
// without waiting: the journal's completion thread answers once the batch is durable.
// Answers that need no new events (duplicates, rejections) wait for the entity's latest
// in-flight commit ("tail"), because they were decided on state that may not be durable yet.
//
// Messages between entities (an order's StockCommands to SKUs, a SKU's StockReply to the
// order) are sent from commit callbacks, i.e. after durability, and are not journaled: after
// a crash, every open order (found through the journal's index) sends its outstanding
// requests again, and every receiver treats a repeated command id as the same request.
// Messages for the outside world (payment and shipment requests, outcomes) go through the
// journal's outbox, in the same batch as the events that caused them; one relay thread per
// shard hands durable outbox entries to the Egress.

#include "actors/runtime/runtime.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "actors/runtime/folder.h"
#include "events/assert.h"
#include "events/validate.h"
#include "ffe/v1/outcomes.pb.h"
#include "storage/journal.h"

// ---- CAF message types (before caf/all.hpp, as CAF 0.17 requires) ------------------------------

#include "caf/fwd.hpp"
#include "caf/type_id.hpp"

namespace ffe::runtime {
struct Item;
// The one message type between ffe's actors: a pointer to a unit of work. In-process only
// (never serialized), so its inspector names the type and nothing else.
struct Mail {
  std::shared_ptr<Item> item;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Mail&) {
  return f(caf::meta::type_name("ffe.mail"));
}
}  // namespace ffe::runtime

CAF_BEGIN_TYPE_ID_BLOCK(ffe_runtime, first_custom_type_id)
CAF_ADD_TYPE_ID(ffe_runtime, (ffe::runtime::Mail))
CAF_ADD_ATOM(ffe_runtime, ffe::runtime::atoms, tick_atom, "tick")
CAF_ADD_ATOM(ffe_runtime, ffe::runtime::atoms, stopped_atom, "stopped")
CAF_ADD_ATOM(ffe_runtime, ffe::runtime::atoms, busy_atom, "busy")
CAF_END_TYPE_ID_BLOCK(ffe_runtime)

#include "caf/all.hpp"

namespace ffe::runtime {

using storage::CommitRequest;
using storage::CommitResult;
using storage::InputPosition;

namespace {

constexpr std::string_view kSkuPrefix = "sku/";
constexpr std::string_view kOrderPrefix = "order/";
// The journal index entry of an open order: "open/<orderId>" -> its order deadline (ms).
constexpr std::string_view kOpenPrefix = "open/";
constexpr std::size_t kOpenVerifyTailRevisions = 10'000;
constexpr std::string_view kProtobufContentType = "application/x-protobuf";
// The retry attempt from which an order also resends its in-process StockCommands (see
// resend_outstanding): with the default backoff, about 1.4 s after the step began.
constexpr int kInternalResendAttempt = 4;
// How late an order's timer may fire (TimerService): its thread wakes at most this often.
constexpr std::chrono::milliseconds kTimerResolution{5};
constexpr std::uint32_t kDefaultShards = 8;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string serialize(const google::protobuf::MessageLite& message) {
  std::string out;
  message.SerializeToString(&out);
  return out;
}

}  // namespace

ShardId shard_of(std::string_view entity_id, std::uint32_t shards) {
  FFE_ASSERT(shards > 0, "shard_of needs at least one shard");
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : entity_id) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return ShardId{static_cast<std::uint32_t>(hash % shards)};
}

std::string sku_key(std::string_view sku) { return std::string(kSkuPrefix) + std::string(sku); }
std::string order_key(std::string_view order_id) { return std::string(kOrderPrefix) + std::string(order_id); }

// The dedupe key that marks an input message as applied, or as refused (docs/kafka.md,
// "Exactly-once effects").
std::string input_dedupe_key(const InputPosition& input, bool refused = false) {
  return (refused ? "input-refused/" : "input/") + input.source + "/" + std::to_string(input.offset);
}

// ---- units of work ---------------------------------------------------------------------------

struct InventoryWork {
  InventoryCommand command;
  AckFn done;                  // an outside sender (holds a credit), or empty
  std::string reply_to_order;  // an order's StockCommand: answer that order
  std::optional<InputPosition> input;
};
struct OrderWork {
  OrderCommand command;
  AckFn done;
  std::optional<InputPosition> input;
};
struct StockReplyWork {
  v1::StockReply reply;
};
// An open order found at open() (at_open), or an order whose actor the router restarted
// after a failure: resend, re-arm.
struct RecoverWork {
  bool at_open = true;
};
struct TimerWork {
  enum class What { kExpire, kRetry } what;
  std::uint64_t token;  // stale unless it is the order's pending timer of its kind
  std::int64_t at;      // kExpire: the step deadline it was armed for; kRetry: when it is due
};
struct PassivateWork {};
// Runtime::fail_order_actor_for_testing: the actor stops with an error, as a failure outside
// ffe's handlers would stop it (the router then restarts it from the journal).
struct FailWork {};

struct Item {
  std::string entity_id;  // the SKU or the order id (routing)
  bool is_sku = false;
  bool counted = false;   // part of Impl::busy_ (wait_quiet)
  std::variant<InventoryWork, OrderWork, StockReplyWork, RecoverWork, TimerWork, PassivateWork, FailWork> work;
};

// The latest in-flight commit of an entity: answers decided on state that this commit (and
// the entity's earlier ones) changed wait here until it is durable.
struct Tail {
  std::mutex mu;
  bool done = false;
  std::vector<std::function<void()>> waiters;

  void complete() {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard lock(mu);
      done = true;
      run.swap(waiters);
    }
    for (auto& fn : run) fn();
  }
};

// ---- timers -----------------------------------------------------------------------------------

// The orders' timers (step deadlines, retries) on one thread of their own, instead of CAF's
// clock. An open order keeps a deadline timer and a retry timer pending, so at a few thousand
// orders a second CAF's clock thread woke about twice per order, and every timer, stale or
// not, came back as a message that woke a worker and an actor to be dropped there. Here:
// - a timer whose token is no longer the order's (superseded, or the order ended) is dropped
//   on this thread, without a message; the order shares its live tokens with the service;
// - the thread wakes at most once per `resolution` (a timer fires up to that late), and
//   arming a timer later than the next wake-up wakes nobody;
// - it holds a weak reference to the order's actor: a timer does not keep a stopped actor
//   alive, and a timer for one is dropped.
class TimerService {
 public:
  using Clock = std::chrono::steady_clock;
  // An order's live timer tokens, one per kind; a pending timer fires only while its token
  // is still there (0: none pending).
  struct LiveTokens {
    std::atomic<std::uint64_t> expire{0};
    std::atomic<std::uint64_t> retry{0};
  };

  ~TimerService() { stop(); }

  void start(std::chrono::milliseconds resolution) {
    resolution_ = resolution;
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ffe-timers");
      run();
    });
  }

  // Drops every pending timer (the runtime is closing: nothing is lost, open orders re-arm
  // at the next open).
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::vector<Entry> pending;
    {
      std::lock_guard lock(mu_);
      pending.swap(heap_);
    }
  }

  // Sends `mail` to `target` after `delay` (up to a resolution later), if the token `live`
  // points at is still `token` then. After stop(), drops it.
  void arm(std::chrono::milliseconds delay, caf::weak_actor_ptr target, Mail mail,
           std::shared_ptr<const std::atomic<std::uint64_t>> live, std::uint64_t token) {
    const Clock::time_point due = Clock::now() + delay;
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;  // closing: dropped like the ones pending
      heap_.push_back(Entry{due, next_seq_++, std::move(target), std::move(mail), std::move(live), token});
      std::push_heap(heap_.begin(), heap_.end(), Later{});
      wake = sleeping_ && due + resolution_ < wake_at_;
    }
    if (wake) cv_.notify_one();
  }

  std::uint64_t fired() const { return fired_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    Clock::time_point due;
    std::uint64_t seq;  // FIFO among equal due times
    caf::weak_actor_ptr target;
    Mail mail;
    std::shared_ptr<const std::atomic<std::uint64_t>> live;
    std::uint64_t token;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const { return a.due != b.due ? a.due > b.due : a.seq > b.seq; }
  };

  void run() {
    std::vector<Entry> due;
    Clock::time_point last_wake = Clock::now() - resolution_;
    std::unique_lock lock(mu_);
    while (!stopping_) {
      const Clock::time_point now = Clock::now();
      if (heap_.empty() || heap_.front().due > now) {
        wake_at_ = heap_.empty() ? Clock::time_point::max() : std::max(heap_.front().due, last_wake + resolution_);
        sleeping_ = true;
        if (wake_at_ == Clock::time_point::max()) {
          cv_.wait(lock);
        } else {
          cv_.wait_until(lock, wake_at_);
        }
        sleeping_ = false;
        continue;
      }
      while (!heap_.empty() && heap_.front().due <= now) {
        std::pop_heap(heap_.begin(), heap_.end(), Later{});
        due.push_back(std::move(heap_.back()));
        heap_.pop_back();
      }
      last_wake = now;
      lock.unlock();
      for (Entry& entry : due) {
        caf::actor target;
        if (entry.live->load(std::memory_order_acquire) == entry.token) target = caf::actor_cast<caf::actor>(entry.target);
        if (target) {
          caf::anon_send(target, std::move(entry.mail));
          fired_.fetch_add(1, std::memory_order_relaxed);
        } else {
          dropped_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      due.clear();
      lock.lock();
    }
  }

  std::chrono::milliseconds resolution_{5};
  std::atomic<std::uint64_t> fired_{0}, dropped_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> heap_;  // a min-heap by (due, seq)
  std::uint64_t next_seq_ = 0;
  bool stopping_ = false;
  bool sleeping_ = false;
  Clock::time_point wake_at_ = Clock::time_point::max();
  std::thread thread_;
};

// ---- the runtime ------------------------------------------------------------------------------

class Runtime::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)) {}
  ~Impl();

  Status start();

  // Routing: any thread.
  void route(std::shared_ptr<Item> item);
  void route_stock(v1::StockCommand command, const std::string& reply_to_order);
  void route_stock_reply(v1::StockReply reply);

  Status acquire_credit(Admission admission);
  void release_credit();
  AckFn with_credit(AckFn done);

  void work_started() { busy_.fetch_add(1, std::memory_order_relaxed); }
  void work_done() {
    if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(quiet_mu_);
      quiet_cv_.notify_all();
    }
  }

  std::int64_t now_ms() const { return options_.clock ? options_.clock() : system_now_ms(); }

  Options options_;
  DomainFolder folder_;
  std::unique_ptr<storage::Journal> journal_;
  // The journal's snapshot rule, which the SKU actors follow for the snapshots they attach.
  storage::JournalOptions snapshot_rule_;
  std::uint32_t shards_ = 0;
  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> system_;
  std::vector<caf::actor> routers_;
  std::atomic<bool> actors_running_{false};
  TimerService timers_;

  // credits
  std::mutex credit_mu_;
  std::condition_variable credit_cv_;
  std::size_t in_flight_ = 0;
  std::size_t credit_waiters_ = 0;
  bool closing_ = false;
  std::size_t credit_low_water() const { return options_.max_in_flight - (options_.max_in_flight + 7) / 8; }

  // Open orders: the number of "open/<id>" index entries as the actors decided them (plus
  // the ones found at open()), and PlaceOrders submitted but not yet answered.
  std::atomic<std::int64_t> open_orders_{0}, placing_{0};
  std::atomic<std::uint64_t> placements_refused_{0};
  bool placement_room(std::size_t n) const {
    if (options_.max_open_orders == 0) return true;
    const std::int64_t used = open_orders_.load(std::memory_order_relaxed) + placing_.load(std::memory_order_relaxed);
    return used + static_cast<std::int64_t>(n) <= static_cast<std::int64_t>(options_.max_open_orders);
  }

  // quiet
  std::atomic<std::int64_t> busy_{0};
  std::mutex quiet_mu_;
  std::condition_variable quiet_cv_;

  // relays
  std::atomic<bool> relays_stop_{false};
  std::vector<std::thread> relays_;
  void relay(ShardId shard);

  // stats
  std::atomic<std::uint64_t> commands_{0}, rejected_{0}, live_{0}, spawned_{0}, restored_{0},
      passivated_{0}, failures_{0}, late_replies_{0}, unexpected_releases_{0}, expired_{0},
      retries_{0}, recovered_{0}, submit_waits_{0}, timers_armed_{0}, redelivered_{0};
};

// ---- entity actors ----------------------------------------------------------------------------

namespace {

using Impl = Runtime::Impl;

// What every entity actor shares: identity, the tail of its in-flight commits, and how to
// answer after durability.
struct EntityBase {
  Impl* rt = nullptr;
  ShardId shard;
  std::string id;
  std::string key;
  caf::actor router;
  std::shared_ptr<Tail> tail;

  bool commits_pending() {
    if (!tail) return false;
    std::lock_guard lock(tail->mu);
    return !tail->done;
  }

  // Runs fn once everything this entity committed so far is durable (now, if it is).
  void after_durable(std::function<void()> fn) {
    if (tail) {
      std::unique_lock lock(tail->mu);
      if (!tail->done) {
        tail->waiters.push_back(std::move(fn));
        return;
      }
    }
    fn();
  }

  // Submits a commit whose callback runs `on_durable(result)`, then completes the tail.
  // Returns false (and runs nothing) when the journal refused it.
  bool commit(CommitRequest request, std::function<void(const CommitResult&)> on_durable) {
    auto next = std::make_shared<Tail>();
    Status status = rt->journal_->submit(
        std::move(request),
        [next, on_durable = std::move(on_durable)](const CommitResult& result) {
          on_durable(result);
          next->complete();
        },
        storage::Admission::kWait);
    if (!status) return false;
    tail = std::move(next);
    return true;
  }

};

// Restores an entity from the journal at the shard's durable revision.
template <class Snapshot>
std::optional<Snapshot> load_snapshot(Impl* rt, ShardId shard, const std::string& key, bool* ok) {
  *ok = true;
  auto revision = rt->journal_->revision(shard);
  if (!revision) {
    *ok = false;
    return std::nullopt;
  }
  auto state = rt->journal_->get(shard, key, *revision);
  if (!state) {
    spdlog::error("shard {}: restoring {} failed: {}", shard.value, key, state.status().to_string());
    *ok = false;
    return std::nullopt;
  }
  if (!state->has_value()) return std::nullopt;
  Snapshot snapshot;
  FFE_ASSERT(snapshot.ParseFromString((*state)->state), ("undecodable state of " + key).c_str());
  return snapshot;
}

// A barrier: returns once every commit queued so far (by anyone) is durable or failed.
void wait_for_queued_commits(Impl* rt, ShardId shard) {
  CommitRequest barrier;
  barrier.shard = shard;
  rt->journal_->commit(std::move(barrier)).wait();
}

Ack failed_ack(ShardId shard, Status status) {
  Ack ack;
  ack.shard = shard;
  ack.status = std::move(status);
  return ack;
}

void answer(const AckFn& done, const Ack& ack) {
  if (done) done(ack);
}

// The router's key for an entity: its kind and id ("s<sku>", "o<orderId>").
std::string router_key(bool is_sku, std::string_view id) {
  std::string key;
  key.reserve(id.size() + 1);
  key.push_back(is_sku ? 's' : 'o');
  key.append(id);
  return key;
}

// ---- SKU actor ----

struct SkuActorState : EntityBase {
  sku::State state;
  bool restore_failed = false;
  // Since the last snapshot this actor attached (or its restore): the journal's rule
  // (JournalOptions::snapshot_due) on these decides the next one. The actor holds the
  // state anyway, so attaching it costs one serialization; left to the journal, every
  // snapshot of a busy SKU read its latest events back and folded them.
  std::uint64_t events_since_snapshot = 0;
  std::uint64_t bytes_since_snapshot = 0;
  std::uint64_t snapshot_bytes = 0;  // the last one's size; 0: unknown
};

using SkuActor = caf::stateful_actor<SkuActorState>;

void sku_restore(SkuActor* self) {
  auto& s = self->state;
  bool ok = true;
  auto snapshot = load_snapshot<v1::SkuSnapshot>(s.rt, s.shard, s.key, &ok);
  s.restore_failed = !ok;
  s.state = snapshot ? sku::from_snapshot(*snapshot) : sku::State{};
  if (snapshot) s.rt->restored_.fetch_add(1, std::memory_order_relaxed);
  s.events_since_snapshot = 0;
  s.bytes_since_snapshot = 0;
  s.snapshot_bytes = 0;
}

// Open reservations above which a SKU leaves its snapshots to the journal's background
// thread. The other parts of its state are bounded windows (events/limits.h: at most 6,144
// entries in all, a few hundred KB), but open reservations are not: a flash sale's hot SKU
// holds 100,000 and more, megabytes whose serialization on the actor stalled every command
// queued behind it (`ffe bench reserve --skus 1` at 800 in flight: p99 27 ms against 10).
constexpr std::size_t kActorSnapshotOpenReservationsMax = 1024;

// Attaches the SKU's state (after the command's events) as a snapshot when the journal's
// rule says one is due and the state is not dominated by open reservations.
void sku_attach_snapshot(SkuActorState& s, CommitRequest& request) {
  for (const auto& event : request.events) {
    ++s.events_since_snapshot;
    s.bytes_since_snapshot += storage::JournalOptions::snapshot_event_bytes(event.entity_key, event.payload);
  }
  const storage::JournalOptions& rule = s.rt->snapshot_rule_;
  if (s.state.reservations.size() > kActorSnapshotOpenReservationsMax ||
      !rule.snapshot_due(s.events_since_snapshot, s.bytes_since_snapshot, s.snapshot_bytes)) {
    return;
  }
  std::string state = deterministic_bytes(sku::to_snapshot(s.state));
  if (state.size() > storage::limits::snapshot_bytes_max) return;  // the journal would refuse the command
  s.events_since_snapshot = 0;
  s.bytes_since_snapshot = 0;
  s.snapshot_bytes = state.size();
  request.snapshots.push_back({s.key, std::move(state)});
}

void sku_handle(SkuActor* self, InventoryWork& work) {
  auto& s = self->state;
  Impl* rt = s.rt;
  if (s.restore_failed) sku_restore(self);
  if (s.restore_failed) {
    answer(work.done, failed_ack(s.shard, Status(storage::StatusCode::kIoError, "could not restore " + s.key)));
    rt->work_done();
    return;
  }
  // A message delivered again after a restart whose first delivery was applied: the journal
  // holds its position's dedupe key, written in the same batch as its effects. The SKU's
  // id windows cannot tell (a burst of more than 1,024 receipts on one SKU outruns them).
  // One that was refused is refused again, whatever the SKU's state is now: the messages
  // after it may have been applied meanwhile, and it must not pass where it did not.
  std::optional<std::string> input_key;
  bool refused_before = false;
  if (work.input) {
    input_key = input_dedupe_key(*work.input);
    auto seen = rt->journal_->dedupe_revision(s.shard, *input_key);
    if (!seen) {
      answer(work.done, failed_ack(s.shard, seen.status()));
      rt->work_done();
      return;
    }
    if (seen->has_value()) {
      rt->redelivered_.fetch_add(1, std::memory_order_relaxed);
      s.after_durable([done = std::move(work.done), rt, shard = s.shard, revision = **seen]() mutable {
        Ack ack;
        ack.shard = shard;
        ack.revision = revision;
        answer(done, std::move(ack));
        rt->work_done();
      });
      return;
    }
    auto refused = rt->journal_->dedupe_revision(s.shard, input_dedupe_key(*work.input, true));
    if (!refused) {
      answer(work.done, failed_ack(s.shard, refused.status()));
      rt->work_done();
      return;
    }
    refused_before = refused->has_value();
  }
  rt->commands_.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t now = rt->now_ms();
  sku::Command command = std::visit([](auto& c) -> sku::Command { return std::move(c); }, work.command);
  sku::Decision decision = sku::decide(s.state, command, now);
  if (refused_before && !decision.rejected()) {
    decision.events.clear();
    decision.rejection = Rejection{RejectionCode::kInvalid,
                                   "refused when it was first delivered, before a restart, and refused again though "
                                   "the SKU's state now would take it (why it was refused: the first DLQ record for "
                                   "this offset, if it went out before the restart, or the engine's log)"};
  }
  for (const v1::SkuEvent& event : decision.events) sku::evolve(s.state, s.id, event);

  std::optional<v1::StockReply> reply;
  if (auto* stock = std::get_if<v1::StockCommand>(&command)) reply = sku::answer(s.state, *stock, decision);
  if (decision.rejected()) rt->rejected_.fetch_add(1, std::memory_order_relaxed);

  // Where the answer goes once durable: the outside sender, or the order that asked.
  auto deliver = [rt, done = std::move(work.done), reply_to = std::move(work.reply_to_order), reply,
                  rejection = decision.rejection](Ack ack) mutable {
    ack.rejection = std::move(rejection);
    ack.stock_reply = reply;
    if (done) {
      done(ack);
    } else if (!reply_to.empty() && reply && ack.status.is_ok()) {
      rt->route_stock_reply(std::move(*reply));
    }
    rt->work_done();
  };

  if (decision.events.empty() && !work.input) {
    s.after_durable([deliver = std::move(deliver), rt, shard = s.shard]() mutable {
      Ack ack;
      ack.shard = shard;
      auto revision = rt->journal_->revision(shard);
      if (revision) ack.revision = *revision;
      deliver(std::move(ack));
    });
    return;
  }
  CommitRequest request;
  request.shard = s.shard;
  request.input = std::move(work.input);
  // Applied, or a repeat the windows caught: either way its redelivery changes nothing. A
  // refusal is marked as such: delivered again, it is refused again and goes to the DLQ again
  // (at-least-once).
  if (input_key) {
    request.dedupe_keys.push_back(decision.rejected() ? input_dedupe_key(*request.input, true) : std::move(*input_key));
  }
  request.events.reserve(decision.events.size());
  for (const v1::SkuEvent& event : decision.events) request.events.push_back({s.key, serialize(event)});
  sku_attach_snapshot(s, request);
  const ShardId shard = s.shard;
  auto shared_deliver = std::make_shared<decltype(deliver)>(std::move(deliver));
  if (!s.commit(std::move(request), [shared_deliver, shard](const CommitResult& result) {
        Ack ack;
        ack.shard = shard;
        ack.status = result.status;
        ack.revision = result.revision;
        ack.new_revision = result.new_revision;
        (*shared_deliver)(std::move(ack));
      })) {
    // The journal refused the commit: it stopped or is closing. The in-memory state is ahead
    // of the journal now; reload it from what is durable before anything else.
    (*shared_deliver)(failed_ack(shard, rt->journal_->status().is_ok()
                                            ? Status(storage::StatusCode::kClosed, "the journal is closing")
                                            : rt->journal_->status()));
    s.restore_failed = true;
  }
}

caf::behavior sku_actor(SkuActor* self, Impl* rt, ShardId shard, std::string id, caf::actor router,
                        bool after_failure) {
  auto& s = self->state;
  s.rt = rt;
  s.shard = shard;
  s.id = std::move(id);
  s.key = sku_key(s.id);
  s.router = std::move(router);
  rt->spawned_.fetch_add(1, std::memory_order_relaxed);
  rt->live_.fetch_add(1, std::memory_order_relaxed);
  self->attach_functor([rt] { rt->live_.fetch_sub(1, std::memory_order_relaxed); });
  if (after_failure) wait_for_queued_commits(rt, shard);
  sku_restore(self);
  return {
      [self](Mail& mail) {
        auto& s = self->state;
        Item& item = *mail.item;
        if (std::holds_alternative<PassivateWork>(item.work)) {
          if (s.commits_pending()) {
            self->send(s.router, atoms::busy_atom_v, router_key(true, s.id), false);
          } else {
            self->send(s.router, atoms::stopped_atom_v, router_key(true, s.id));
            self->quit();
          }
          return;
        }
        auto* work = std::get_if<InventoryWork>(&item.work);
        FFE_ASSERT(work != nullptr, "a SKU actor got a message for an order");
        try {
          sku_handle(self, *work);
        } catch (const std::exception& e) {
          // Errors as values: the command is answered with the error, the failure counted and
          // logged, and the actor restarts in place from its journal (its mailbox is kept).
          s.rt->failures_.fetch_add(1, std::memory_order_relaxed);
          spdlog::error("shard {}: {} failed on a command and restarts from the journal: {}",
                        s.shard.value, s.key, e.what());
          answer(work->done, failed_ack(s.shard, Status(storage::StatusCode::kIoError,
                                                        s.key + " failed: " + e.what())));
          s.rt->work_done();
          wait_for_queued_commits(s.rt, s.shard);
          sku_restore(self);
        }
      },
  };
}

// ---- order actor ----

struct OrderActorState : EntityBase {
  order::State state;
  bool restore_failed = false;
  bool open_indexed = false;  // "open/<id>" is in the journal's index
  // Timers: at most one deadline timer and one retry timer pending. An event that moves a due
  // time later arms nothing; the pending timer, when it fires, waits again for what is left
  // (update_timers). The pending timers' tokens live in `timers`, shared with the timer
  // service, which drops a timer whose token is no longer there; 0: none pending.
  std::uint64_t timer_tokens = 0;     // tokens handed out
  std::shared_ptr<TimerService::LiveTokens> timers = std::make_shared<TimerService::LiveTokens>();
  std::int64_t expire_armed_for = 0;  // the step deadline the pending deadline timer was armed for
  std::int64_t retry_armed_for = 0;   // when the pending retry timer fires
  std::int64_t retry_due_at = 0;      // when the outstanding requests are due again; 0: none
  int retry_attempt = 1;
  // The saga step in progress and when it started, for Observer::saga_step_finished (in
  // memory only: a step that began before a restart or a passivation is not timed).
  v1::SagaStep timed_step = v1::SAGA_STEP_UNSPECIFIED;
  std::int64_t timed_step_started_ms = 0;
};

using OrderActor = caf::stateful_actor<OrderActorState>;

void order_restore(OrderActor* self) {
  auto& s = self->state;
  bool ok = true;
  auto snapshot = load_snapshot<v1::OrderSnapshot>(s.rt, s.shard, s.key, &ok);
  s.restore_failed = !ok;
  s.state = snapshot ? order::from_snapshot(*snapshot) : order::State{};
  s.open_indexed = s.state.exists() && !s.state.terminal();
  if (snapshot) s.rt->restored_.fetch_add(1, std::memory_order_relaxed);
}

storage::OutboxMessage to_outbox(const Impl* rt, ShardId shard, const saga::Outbound& outbound) {
  storage::OutboxMessage message;
  message.headers.push_back({"content-type", std::string(kProtobufContentType)});
  const std::string& prefix = rt->options_.topic_prefix;
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, v1::PaymentRequest>) {
          message.topic = prefix + "payments.requests";
          message.key = m.order_id();
          message.payload = serialize(m);
        } else if constexpr (std::is_same_v<T, v1::ShipmentRequest>) {
          message.topic = prefix + "shipments.requests";
          message.key = m.order_id();
          message.payload = serialize(m);
        } else if constexpr (std::is_same_v<T, v1::OrderOutcome>) {
          // The revision is the terminal commit's: the relay sets it from the outbox position.
          v1::OrderOutcome outcome = m;
          outcome.set_shard(static_cast<std::int32_t>(shard.value));
          message.topic = prefix + "orders.outcomes";
          message.key = m.order_id();
          message.payload = serialize(outcome);
        } else {
          FFE_ASSERT(false, "a StockCommand is not an outbox message");
        }
      },
      outbound);
  return message;
}

void update_timers(OrderActor* self, bool fresh);

// Sends what the order waits on again: StockCommands straight to the SKUs, requests to the
// participants through the outbox (a no-op commit), so they leave only in order and durably.
//
// In-process messages (StockCommands, StockReplies) are not lost while the process lives:
// CAF mailboxes do not drop, and a failing actor restarts in place with its mailbox. So the
// retry timer resends them only late (include_internal from the fourth attempt), as a guard
// against an actor lost outside ffe's handlers; resending them early under load only adds
// load. Recovery after a restart resends everything.
void resend_outstanding(OrderActor* self, bool include_internal) {
  auto& s = self->state;
  std::vector<saga::Outbound> outbound = saga::outstanding(s.state);
  if (outbound.empty()) return;
  CommitRequest request;
  request.shard = s.shard;
  std::vector<v1::StockCommand> stock;
  for (saga::Outbound& message : outbound) {
    if (auto* command = std::get_if<v1::StockCommand>(&message)) {
      if (include_internal) stock.push_back(std::move(*command));
    } else {
      request.outbox.push_back(to_outbox(s.rt, s.shard, message));
    }
  }
  if (stock.empty() && request.outbox.empty()) return;
  s.rt->retries_.fetch_add(stock.size() + request.outbox.size(), std::memory_order_relaxed);
  Impl* rt = s.rt;
  std::string order_id = s.id;
  if (request.outbox.empty()) {
    s.after_durable([rt, stock = std::move(stock), order_id]() mutable {
      for (auto& command : stock) rt->route_stock(std::move(command), order_id);
    });
    return;
  }
  rt->work_started();
  if (!s.commit(std::move(request), [rt, stock = std::move(stock), order_id](const CommitResult& result) mutable {
        if (result.status.is_ok()) {
          for (auto& command : stock) rt->route_stock(std::move(command), order_id);
        }
        rt->work_done();
      })) {
    rt->work_done();
  }
}

void order_apply(OrderActor* self, order::Command command, AckFn done, std::optional<InputPosition> input,
                 bool counted) {
  auto& s = self->state;
  Impl* rt = s.rt;
  auto finish = [rt, counted] {
    if (counted) rt->work_done();
  };
  if (s.restore_failed) order_restore(self);
  if (s.restore_failed) {
    answer(done, failed_ack(s.shard, Status(storage::StatusCode::kIoError, "could not restore " + s.key)));
    finish();
    return;
  }
  rt->commands_.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t now = rt->now_ms();
  const bool was_open = s.state.exists() && !s.state.terminal();
  const bool was_terminal = s.state.exists() && s.state.terminal();
  order::Decision decision = order::decide(s.state, command, now, rt->options_.order_policy);

  if (decision.rejected()) {
    rt->rejected_.fetch_add(1, std::memory_order_relaxed);
    if (auto* reply = std::get_if<v1::StockReply>(&command)) {
      rt->late_replies_.fetch_add(1, std::memory_order_relaxed);
      // A RESERVED reply the order no longer holds took units at the SKU: give them back.
      for (saga::Outbound& outbound : saga::answer_unexpected(s.state, *reply)) {
        if (auto* release = std::get_if<v1::StockCommand>(&outbound)) {
          rt->unexpected_releases_.fetch_add(1, std::memory_order_relaxed);
          rt->route_stock(std::move(*release), s.id);
        }
      }
    } else if (std::holds_alternative<v1::PaymentReply>(command) ||
               std::holds_alternative<v1::ShipmentReply>(command)) {
      rt->late_replies_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  if (decision.events.empty() && !input) {
    Ack ack;
    ack.shard = s.shard;
    ack.rejection = decision.rejection;
    s.after_durable([rt, ack, done = std::move(done), finish, shard = s.shard]() mutable {
      auto revision = rt->journal_->revision(shard);
      if (revision) ack.revision = *revision;
      answer(done, ack);
      finish();
    });
    return;
  }

  CommitRequest request;
  request.shard = s.shard;
  request.input = std::move(input);
  std::vector<v1::StockCommand> stock;
  Observer* observer = rt->options_.observer;
  for (const v1::OrderEvent& event : decision.events) {
    if (event.has_step_timed_out()) rt->expired_.fetch_add(1, std::memory_order_relaxed);
    if (observer && (event.has_step_started() || event.has_completed()) && s.timed_step != v1::SAGA_STEP_UNSPECIFIED) {
      observer->saga_step_finished(s.timed_step, static_cast<double>(now - s.timed_step_started_ms) / 1000.0);
      s.timed_step = v1::SAGA_STEP_UNSPECIFIED;
    }
    if (event.has_step_started()) {
      s.timed_step = event.step_started().step();
      s.timed_step_started_ms = event.step_started().started_at_ms();
    }
    order::evolve(s.state, event);
    request.events.push_back({s.key, serialize(event)});
    for (saga::Outbound& outbound : saga::react(s.state, event)) {
      if (auto* command = std::get_if<v1::StockCommand>(&outbound)) {
        stock.push_back(std::move(*command));
      } else {
        request.outbox.push_back(to_outbox(rt, s.shard, outbound));
      }
    }
  }
  const bool open = s.state.exists() && !s.state.terminal();
  if (observer && !was_terminal && s.state.exists() && s.state.terminal()) observer->order_terminal(s.state.state);
  if (open && !s.open_indexed) {
    request.index_put.push_back({std::string(kOpenPrefix) + s.id, std::to_string(s.state.deadline_at_ms)});
    s.open_indexed = true;
    rt->open_orders_.fetch_add(1, std::memory_order_relaxed);
  } else if (!open && (s.open_indexed || was_open)) {
    request.index_delete.push_back(std::string(kOpenPrefix) + s.id);
    if (s.open_indexed) rt->open_orders_.fetch_sub(1, std::memory_order_relaxed);
    s.open_indexed = false;
  }
  Ack ack;
  ack.shard = s.shard;
  ack.rejection = decision.rejection;
  const bool committed = s.commit(
      std::move(request),
      [rt, ack, done, finish, stock = std::move(stock), order_id = s.id](const CommitResult& result) mutable {
        ack.status = result.status;
        ack.revision = result.revision;
        ack.new_revision = result.new_revision;
        answer(done, ack);
        if (result.status.is_ok()) {
          for (auto& command : stock) rt->route_stock(std::move(command), order_id);
        }
        finish();
      });
  if (!committed) {
    answer(done, failed_ack(s.shard, rt->journal_->status().is_ok()
                                         ? Status(storage::StatusCode::kClosed, "the journal is closing")
                                         : rt->journal_->status()));
    finish();
    s.restore_failed = true;
    return;
  }
  if (!decision.events.empty()) update_timers(self, /*fresh=*/false);
}

// The pending timers' tokens of an order (the actor is their only writer).
std::uint64_t expire_token(const OrderActorState& s) { return s.timers->expire.load(std::memory_order_relaxed); }
std::uint64_t retry_token(const OrderActorState& s) { return s.timers->retry.load(std::memory_order_relaxed); }
void set_expire_token(OrderActorState& s, std::uint64_t token) {
  s.timers->expire.store(token, std::memory_order_release);
}
void set_retry_token(OrderActorState& s, std::uint64_t token) {
  s.timers->retry.store(token, std::memory_order_release);
}

void arm_timer(OrderActor* self, TimerWork::What what, std::int64_t at, std::int64_t delay_ms) {
  auto& s = self->state;
  const std::uint64_t token = ++s.timer_tokens;
  s.rt->timers_armed_.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<const std::atomic<std::uint64_t>> live;
  if (what == TimerWork::What::kExpire) {
    set_expire_token(s, token);
    s.expire_armed_for = at;
    live = std::shared_ptr<const std::atomic<std::uint64_t>>(s.timers, &s.timers->expire);
  } else {
    set_retry_token(s, token);
    s.retry_armed_for = at;
    live = std::shared_ptr<const std::atomic<std::uint64_t>>(s.timers, &s.timers->retry);
  }
  auto item = std::make_shared<Item>();
  item->entity_id = s.id;
  item->work = TimerWork{what, token, at};
  s.rt->timers_.arm(std::chrono::milliseconds(std::max<std::int64_t>(0, delay_ms)),
                    caf::actor_cast<caf::weak_actor_ptr>(self), Mail{std::move(item)}, std::move(live), token);
}

// After an event (or a restore: `fresh` makes every pending timer stale): the step's deadline
// fires at step_deadline_at_ms, the outstanding requests are resent a retry delay after the
// latest event. A timer is armed only when none of its kind is pending or the new due time is
// earlier than the pending one's: an order's events move both due times later several times
// a second, and each timer armed is work for the timer service.
void update_timers(OrderActor* self, bool fresh) {
  auto& s = self->state;
  const bool ended = !s.state.exists() || s.state.terminal();
  if (fresh || ended) {  // the timer service drops the pending ones, without a message
    set_expire_token(s, 0);
    set_retry_token(s, 0);
  }
  if (ended) {
    s.retry_due_at = 0;
    return;
  }
  const std::int64_t now = s.rt->now_ms();
  const std::int64_t deadline = s.state.step_deadline_at_ms;
  if (deadline > 0 && (expire_token(s) == 0 || s.expire_armed_for > deadline)) {
    arm_timer(self, TimerWork::What::kExpire, deadline, deadline - now + 1);
  }
  if (!saga::has_outstanding(s.state)) {
    set_retry_token(s, 0);  // nothing to resend: a pending retry timer is dropped when due
    s.retry_due_at = 0;
    return;
  }
  s.retry_attempt = 1;
  const std::int64_t delay = saga::retry_delay_ms(s.rt->options_.retry, s.retry_attempt);
  s.retry_due_at = now + delay;
  if (retry_token(s) == 0 || s.retry_armed_for > s.retry_due_at) {
    arm_timer(self, TimerWork::What::kRetry, s.retry_due_at, delay);
  }
}

void order_handle(OrderActor* self, Item& item) {
  auto& s = self->state;
  std::visit(
      [&](auto& work) {
        using T = std::decay_t<decltype(work)>;
        if constexpr (std::is_same_v<T, OrderWork>) {
          order::Command command =
              std::visit([](auto& c) -> order::Command { return std::move(c); }, work.command);
          order_apply(self, std::move(command), std::move(work.done), std::move(work.input), item.counted);
        } else if constexpr (std::is_same_v<T, StockReplyWork>) {
          order_apply(self, std::move(work.reply), nullptr, std::nullopt, item.counted);
        } else if constexpr (std::is_same_v<T, RecoverWork>) {
          if (s.state.exists() && !s.state.terminal()) {
            resend_outstanding(self, /*include_internal=*/true);
            update_timers(self, /*fresh=*/true);
            // An overdue deadline fires now (decide() compares it with the clock).
            order_apply(self, order::Expire{}, nullptr, std::nullopt, false);
          } else if (work.at_open) {
            if (s.open_indexed || s.state.terminal()) {
              // A stale index entry (terminal order): remove it.
              CommitRequest request;
              request.shard = s.shard;
              request.index_delete.push_back(std::string(kOpenPrefix) + s.id);
              s.commit(std::move(request), [](const CommitResult&) {});
            }
            // open() counted its entry; the order is not open.
            s.rt->open_orders_.fetch_sub(1, std::memory_order_relaxed);
            s.open_indexed = false;
          }
          if (item.counted) s.rt->work_done();
        } else if constexpr (std::is_same_v<T, TimerWork>) {
          // A pending timer waits again by differences of the order's own times, not by the
          // clock now, so a frozen test clock cannot make it re-arm itself at once, forever.
          // Only an Expire the runtime's clock finds early is armed from the clock (below).
          if (work.what == TimerWork::What::kExpire) {
            if (work.token != expire_token(s)) return;
            set_expire_token(s, 0);
            if (!s.state.exists() || s.state.terminal()) return;
            const std::int64_t deadline = s.state.step_deadline_at_ms;
            if (deadline > work.at) {  // a later step: wait for what is left
              arm_timer(self, TimerWork::What::kExpire, deadline, deadline - work.at);
            } else if (deadline > 0) {
              order_apply(self, order::Expire{}, nullptr, std::nullopt, false);
              // Not due yet by the runtime's clock (the timer service runs on the steady clock,
              // and a test may set the runtime's): again then.
              const std::int64_t still = s.state.step_deadline_at_ms;
              if (expire_token(s) == 0 && s.state.exists() && !s.state.terminal() && still > 0) {
                arm_timer(self, TimerWork::What::kExpire, still, still - s.rt->now_ms() + 1);
              }
            }
          } else {
            if (work.token != retry_token(s)) return;
            set_retry_token(s, 0);
            if (!s.state.exists() || s.state.terminal() || s.retry_due_at == 0) return;
            if (s.retry_due_at > work.at) {  // events since: wait for what is left
              arm_timer(self, TimerWork::What::kRetry, s.retry_due_at, s.retry_due_at - work.at);
              return;
            }
            resend_outstanding(self, /*include_internal=*/s.retry_attempt >= kInternalResendAttempt);
            ++s.retry_attempt;
            const std::int64_t delay = saga::retry_delay_ms(s.rt->options_.retry, s.retry_attempt);
            s.retry_due_at = work.at + delay;
            arm_timer(self, TimerWork::What::kRetry, s.retry_due_at, delay);
          }
        } else if constexpr (std::is_same_v<T, InventoryWork>) {
          FFE_ASSERT(false, "an order actor got a message for a SKU");
        }
      },
      item.work);
}

caf::behavior order_actor(OrderActor* self, Impl* rt, ShardId shard, std::string id, caf::actor router,
                          bool after_failure) {
  auto& s = self->state;
  s.rt = rt;
  s.shard = shard;
  s.id = std::move(id);
  s.key = order_key(s.id);
  s.router = std::move(router);
  rt->spawned_.fetch_add(1, std::memory_order_relaxed);
  rt->live_.fetch_add(1, std::memory_order_relaxed);
  self->attach_functor([rt] { rt->live_.fetch_sub(1, std::memory_order_relaxed); });
  if (after_failure) wait_for_queued_commits(rt, shard);
  order_restore(self);
  return {
      [self](Mail& mail) {
        auto& s = self->state;
        Item& item = *mail.item;
        if (std::holds_alternative<PassivateWork>(item.work)) {
          const bool open = s.state.exists() && !s.state.terminal();
          if (open || s.commits_pending()) {
            // An open order owns timers: it stays until it is terminal ("pinned").
            self->send(s.router, atoms::busy_atom_v, router_key(false, s.id), open);
          } else {
            self->send(s.router, atoms::stopped_atom_v, router_key(false, s.id));
            self->quit();
          }
          return;
        }
        if (std::holds_alternative<FailWork>(item.work)) {
          self->quit(caf::sec::runtime_error);
          return;
        }
        try {
          order_handle(self, item);
        } catch (const std::exception& e) {
          s.rt->failures_.fetch_add(1, std::memory_order_relaxed);
          spdlog::error("shard {}: {} failed on a command and restarts from the journal: {}",
                        s.shard.value, s.key, e.what());
          if (auto* work = std::get_if<OrderWork>(&item.work)) {
            answer(work->done, failed_ack(s.shard, Status(storage::StatusCode::kIoError,
                                                          s.key + " failed: " + e.what())));
          }
          if (item.counted) s.rt->work_done();
          wait_for_queued_commits(s.rt, s.shard);
          order_restore(self);
          update_timers(self, /*fresh=*/true);
        }
      },
  };
}

// ---- router ----

struct RouterEntry {
  caf::actor actor;
  std::list<std::string>::iterator lru;  // valid when in_lru
  bool in_lru = false;
  bool stopping = false;
  bool is_sku = false;
  std::int64_t last_used_ms = 0;
  std::vector<Mail> buffered;  // arrived while stopping
};

struct RouterState {
  Impl* rt = nullptr;
  ShardId shard;
  std::unordered_map<std::string, RouterEntry> entries;  // key: "s<sku>" or "o<orderId>"
  std::list<std::string> lru;                            // least recently used first
};

using RouterActor = caf::stateful_actor<RouterState>;

void router_spawn(RouterActor* self, RouterEntry& entry, const std::string& id, bool after_failure) {
  auto& s = self->state;
  caf::actor me = caf::actor_cast<caf::actor>(self);
  if (entry.is_sku) {
    entry.actor = self->spawn<caf::lazy_init>(sku_actor, s.rt, s.shard, id, me, after_failure);
  } else {
    entry.actor = self->spawn<caf::lazy_init>(order_actor, s.rt, s.shard, id, me, after_failure);
  }
  self->monitor(entry.actor);
}

void router_touch(RouterActor* self, const std::string& key, RouterEntry& entry, std::int64_t now) {
  auto& s = self->state;
  entry.last_used_ms = now;
  if (entry.in_lru) {
    s.lru.splice(s.lru.end(), s.lru, entry.lru);
  } else {
    entry.lru = s.lru.insert(s.lru.end(), key);
    entry.in_lru = true;
  }
}

void router_passivate(RouterActor* self, RouterEntry& entry) {
  auto& s = self->state;
  if (entry.in_lru) {
    s.lru.erase(entry.lru);
    entry.in_lru = false;
  }
  entry.stopping = true;
  auto item = std::make_shared<Item>();
  item->work = PassivateWork{};
  self->send(entry.actor, Mail{std::move(item)});
}

void router_enforce_cap(RouterActor* self) {
  auto& s = self->state;
  const std::size_t cap = std::max<std::size_t>(1, s.rt->options_.max_live_entities);
  while (s.lru.size() > cap) {
    auto it = s.entries.find(s.lru.front());
    FFE_ASSERT(it != s.entries.end(), "router LRU names an unknown entity");
    router_passivate(self, it->second);
  }
}

caf::behavior router_actor(RouterActor* self, Impl* rt, ShardId shard) {
  auto& s = self->state;
  s.rt = rt;
  s.shard = shard;
  const auto tick_every = std::chrono::milliseconds(
      std::clamp<std::int64_t>(rt->options_.passivate_after.count() / 4, 1, 1000));
  self->delayed_send(self, tick_every, atoms::tick_atom_v);
  self->set_down_handler([self](caf::down_msg& down) {
    auto& s = self->state;
    // A passivated entity stops normally (and is forgotten in the stopped handler): only a
    // failure needs the search below, which is linear in the live entities.
    if (!down.reason || down.reason == caf::exit_reason::user_shutdown ||
        down.reason == caf::exit_reason::normal) {
      return;
    }
    for (auto it = s.entries.begin(); it != s.entries.end(); ++it) {
      if (it->second.actor.address() != down.source) continue;
      {
        s.rt->failures_.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("shard {}: entity {} stopped unexpectedly: {}", s.shard.value, it->first.substr(1),
                      caf::to_string(down.reason));
        RouterEntry& entry = it->second;
        if (entry.in_lru) s.lru.erase(entry.lru);
        entry.in_lru = false;
        if (!entry.buffered.empty() || !entry.stopping) {
          // Restart it from the journal; messages it held in its mailbox are lost with it, so
          // this path only exists for failures outside ffe's handlers (they catch their own).
          std::vector<Mail> buffered = std::move(entry.buffered);
          entry.stopping = false;
          router_spawn(self, entry, it->first.substr(1), /*after_failure=*/true);
          router_touch(self, it->first, entry, s.rt->now_ms());
          if (!entry.is_sku) {
            // As at open(): an open order re-arms its timers and resends what it waits on
            // (what the lost mailbox held is gone), and an overdue deadline fires.
            auto recover = std::make_shared<Item>();
            recover->entity_id = it->first.substr(1);
            recover->work = RecoverWork{.at_open = false};
            self->send(entry.actor, Mail{std::move(recover)});
          }
          for (auto& mail : buffered) self->send(entry.actor, std::move(mail));
        } else {
          s.entries.erase(it);
        }
      }
      return;
    }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& [key, entry] : self->state.entries) self->send_exit(entry.actor, msg.reason);
    self->quit(msg.reason);
  });
  return {
      [self](Mail& mail) {
        auto& s = self->state;
        const Item& item = *mail.item;
        std::string key = router_key(item.is_sku, item.entity_id);
        auto [it, inserted] = s.entries.try_emplace(key);
        RouterEntry& entry = it->second;
        if (inserted) {
          entry.is_sku = item.is_sku;
          router_spawn(self, entry, item.entity_id, false);
        }
        if (entry.stopping) {
          entry.buffered.push_back(std::move(mail));
          return;
        }
        router_touch(self, key, entry, s.rt->now_ms());
        self->send(entry.actor, std::move(mail));
        if (inserted) router_enforce_cap(self);
      },
      [self](atoms::stopped_atom, const std::string& id_with_kind) {
        // An entity stopped: forget it, or start it again for what arrived meanwhile.
        auto& s = self->state;
        auto it = s.entries.find(id_with_kind);
        if (it == s.entries.end()) return;
        s.rt->passivated_.fetch_add(1, std::memory_order_relaxed);
        RouterEntry& entry = it->second;
        self->demonitor(entry.actor);
        if (entry.buffered.empty()) {
          s.entries.erase(it);
          return;
        }
        std::vector<Mail> buffered = std::move(entry.buffered);
        entry.stopping = false;
        router_spawn(self, entry, id_with_kind.substr(1), false);
        router_touch(self, id_with_kind, entry, s.rt->now_ms());
        for (auto& mail : buffered) self->send(entry.actor, std::move(mail));
        router_enforce_cap(self);
      },
      [self](atoms::busy_atom, const std::string& id_with_kind, bool pinned) {
        // The entity could not stop (commits in flight, or an open order): keep it.
        auto& s = self->state;
        auto it = s.entries.find(id_with_kind);
        if (it == s.entries.end()) return;
        RouterEntry& entry = it->second;
        entry.stopping = false;
        if (!pinned) router_touch(self, id_with_kind, entry, s.rt->now_ms());
        for (auto& mail : entry.buffered) {
          if (pinned) router_touch(self, id_with_kind, entry, s.rt->now_ms());
          self->send(entry.actor, std::move(mail));
        }
        entry.buffered.clear();
      },
      [self, tick_every](atoms::tick_atom) {
        auto& s = self->state;
        const std::int64_t idle_before = s.rt->now_ms() - s.rt->options_.passivate_after.count();
        while (!s.lru.empty()) {
          auto it = s.entries.find(s.lru.front());
          FFE_ASSERT(it != s.entries.end(), "router LRU names an unknown entity");
          if (it->second.last_used_ms > idle_before) break;
          router_passivate(self, it->second);
        }
        // The cap again: an entity asked to stop while it had a commit in flight stayed (and
        // went back into the LRU), so after a burst the shard can sit above the cap until the
        // next new entity; here it comes down within a tick.
        router_enforce_cap(self);
        self->delayed_send(self, tick_every, atoms::tick_atom_v);
      },
  };
}

}  // namespace

// ---- Impl -------------------------------------------------------------------------------------

void Runtime::Impl::route(std::shared_ptr<Item> item) {
  if (!actors_running_.load(std::memory_order_acquire)) return;
  const ShardId shard = runtime::shard_of(item->entity_id, shards_);
  caf::anon_send(routers_[shard.value], Mail{std::move(item)});
}

void Runtime::Impl::route_stock(v1::StockCommand command, const std::string& reply_to_order) {
  auto item = std::make_shared<Item>();
  item->entity_id = command.sku();
  item->is_sku = true;
  item->counted = true;
  item->work = InventoryWork{std::move(command), nullptr, reply_to_order, std::nullopt};
  work_started();
  route(std::move(item));
}

void Runtime::Impl::route_stock_reply(v1::StockReply reply) {
  auto item = std::make_shared<Item>();
  item->entity_id = reply.order_id();
  item->is_sku = false;
  item->counted = true;
  item->work = StockReplyWork{std::move(reply)};
  work_started();
  route(std::move(item));
}

Status Runtime::Impl::acquire_credit(Admission admission) {
  std::unique_lock lock(credit_mu_);
  bool waited = false;
  while (true) {
    if (closing_) return Status(storage::StatusCode::kClosed, "the runtime is closing");
    if (in_flight_ < options_.max_in_flight) break;
    if (admission == Admission::kTry) {
      return Status(storage::StatusCode::kBusy,
                    std::to_string(in_flight_) + " commands in flight (max_in_flight); retry later");
    }
    if (!waited) submit_waits_.fetch_add(1, std::memory_order_relaxed);
    waited = true;
    ++credit_waiters_;
    credit_cv_.wait(lock, [this] { return closing_ || in_flight_ <= credit_low_water(); });
    --credit_waiters_;
  }
  ++in_flight_;
  return Status::ok();
}

void Runtime::Impl::release_credit() {
  bool wake = false;
  {
    std::lock_guard lock(credit_mu_);
    --in_flight_;
    // Waiters are woken in a group once in-flight falls to the low-water mark (or to zero,
    // for the destructor), not one thread per ack: a wake-up per command would cost a
    // context switch per command.
    wake = credit_waiters_ > 0 && (in_flight_ <= credit_low_water() || in_flight_ == 0);
    if (in_flight_ == 0 && closing_) wake = true;
  }
  if (wake) credit_cv_.notify_all();
}

AckFn Runtime::Impl::with_credit(AckFn done) {
  return [this, done = std::move(done)](const Ack& ack) {
    if (done) done(ack);
    release_credit();
  };
}

namespace {

// One hand-off of a relay that is not confirmed yet. `state` is shared with the egress's
// callback, which may run after the relay (and the runtime) are gone.
struct RelayHandoff {
  storage::OutboxPosition first, last;
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int outcome = 0;  // 0: pending, 1: handed off, 2: failed
  };
  std::shared_ptr<State> state;
  int outcome() const {
    std::lock_guard lock(state->mu);
    return state->outcome;
  }
};

}  // namespace

void Runtime::Impl::relay(ShardId shard) {
  auto cursor = journal_->outbox_cursor(shard);
  if (!cursor) {
    spdlog::error("shard {}: the outbox relay cannot start: {}", shard.value, cursor.status().to_string());
    return;
  }
  storage::OutboxPosition from = *cursor;
  const std::size_t window_max = std::max<std::size_t>(1, options_.relay_window);
  std::deque<RelayHandoff> window;  // hand-offs not yet confirmed, oldest first
  // Marks the confirmed hand-offs at the front of the window sent. Returns false when the
  // oldest unconfirmed one failed.
  auto retire = [&]() {
    while (!window.empty()) {
      const int outcome = window.front().outcome();
      if (outcome == 0) return true;
      if (outcome == 2) return false;
      if (Status status = journal_->mark_sent(shard, window.front().last); !status) {
        spdlog::warn("shard {}: marking the outbox sent failed (it will be sent again): {}", shard.value,
                     status.to_string());
      }
      window.pop_front();
    }
    return true;
  };
  while (!relays_stop_.load()) {
    if (!retire()) {
      // Offer the failed hand-off again, and everything after it (at-least-once): first let
      // the later ones finish, so nothing of this relay is in flight twice at once.
      for (RelayHandoff& handoff : window) {
        std::unique_lock lock(handoff.state->mu);
        while (handoff.state->outcome == 0 && !relays_stop_.load()) {
          handoff.state->cv.wait_for(lock, std::chrono::milliseconds(50));
        }
      }
      if (relays_stop_.load()) break;
      from = window.front().first;
      window.clear();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (window.size() >= window_max) {
      // Full: wait for the oldest confirmation (bounded, so a stop is seen).
      std::unique_lock lock(window.front().state->mu);
      window.front().state->cv.wait_for(lock, std::chrono::milliseconds(50),
                                        [&] { return window.front().state->outcome != 0; });
      continue;
    }
    if (!journal_->wait_for_outbox(shard, from, std::chrono::milliseconds(50))) continue;
    auto entries = journal_->outbox_read(shard, from, 1024);
    if (!entries) {
      spdlog::error("shard {}: reading the outbox failed: {}", shard.value, entries.status().to_string());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (entries->empty()) continue;
    for (storage::OutboxEntry& entry : *entries) {
      if (!entry.message.topic.ends_with("orders.outcomes")) continue;
      v1::OrderOutcome outcome;
      if (!outcome.ParseFromString(entry.message.payload)) continue;
      outcome.set_revision(static_cast<std::int64_t>(entry.position.revision));
      entry.message.payload = serialize(outcome);
    }
    RelayHandoff handoff{entries->front().position, entries->back().position,
                         std::make_shared<RelayHandoff::State>()};
    from = handoff.last.next();
    window.push_back(handoff);
    options_.egress->publish_async(shard, *entries, [state = handoff.state](bool handed_off) {
      {
        std::lock_guard lock(state->mu);
        state->outcome = handed_off ? 1 : 2;
      }
      state->cv.notify_all();
    });
  }
  // Stopping: what is confirmed is marked; the rest stays unsent and goes out after the
  // next start.
  retire();
}

Status Runtime::Impl::start() {
  if (options_.data_dir.empty()) return Status(storage::StatusCode::kInvalidArgument, "data_dir is empty");
  if (options_.shards > storage::limits::shards_max) {
    return Status(storage::StatusCode::kInvalidArgument,
                  "shards must be at most " + std::to_string(storage::limits::shards_max));
  }
  if (options_.max_in_flight == 0) return Status(storage::StatusCode::kInvalidArgument, "max_in_flight must be at least 1");

  storage::JournalOptions journal_options;
  // A journal's shard count is its own once it holds data; a data dir without (new, or a
  // first open that stopped early) takes the configured count. (One whose data went missing
  // is refused by the journal: its heads file says what was durable.)
  if (!storage::Journal::holds_data(options_.data_dir)) {
    const std::uint32_t shards = options_.shards > 0 ? options_.shards : kDefaultShards;
    for (std::uint32_t i = 0; i < shards; ++i) journal_options.shards.push_back(ShardId{i});
  }
  journal_options.folder = &folder_;
  journal_options.on_fail_stop = [](const Status& reason) {
    spdlog::error("journal: fail-stop: {}", reason.to_string());
  };
  journal_options.commit_batch_commands = options_.commit_batch_commands;
  journal_options.commit_wait = options_.commit_wait;
  journal_options.snapshot_every_events = options_.snapshot_every_events;
  snapshot_rule_.snapshot_every_events = journal_options.snapshot_every_events;
  snapshot_rule_.snapshot_bytes_ratio = journal_options.snapshot_bytes_ratio;
  journal_options.open_verification = storage::OpenVerification::kTail;
  // The tail check reads these records of every shard at open; 10,000 per shard keeps a
  // restart with 10M events journaled near 0.3 s on 2 cores (docs/replay.md, "Restart"),
  // while every read still verifies block checksums and replay checks the whole log.
  journal_options.open_verify_tail_revisions = kOpenVerifyTailRevisions;
  journal_options.env = options_.journal_env;
  if (Observer* observer = options_.observer) {
    journal_options.on_batch = [observer](const storage::BatchObservation& batch) { observer->journal_batch(batch); };
  }
  auto journal = storage::Journal::open(options_.data_dir, std::move(journal_options));
  if (!journal) return journal.status();
  journal_ = std::move(*journal);
  const auto shard_ids = journal_->shards();
  shards_ = static_cast<std::uint32_t>(shard_ids.size());
  for (std::uint32_t i = 0; i < shards_; ++i) {
    if (shard_ids[i].value != i) {
      return Status(storage::StatusCode::kFormat,
                    "data dir " + options_.data_dir + " does not hold shards 0.." + std::to_string(shards_ - 1));
    }
  }
  if (options_.shards > 0 && options_.shards != shards_) {
    return Status(storage::StatusCode::kInvalidArgument,
                  "data dir " + options_.data_dir + " has " + std::to_string(shards_) + " shards, not " +
                      std::to_string(options_.shards) +
                      " (the shard count is fixed when a data dir is created; ask for 0 to use its own)");
  }

  config_ = std::make_unique<caf::actor_system_config>();
  config_->add_message_types<caf::id_block::ffe_runtime>();
  const std::size_t threads = options_.scheduler_threads > 0
                                  ? options_.scheduler_threads
                                  : std::max(1u, std::thread::hardware_concurrency());
  config_->set("scheduler.max-threads", threads);
  config_->set("work-stealing.aggressive-poll-attempts", options_.worker_spins);
  config_->set("work-stealing.moderate-poll-attempts", options_.worker_naps);
  system_ = std::make_unique<caf::actor_system>(*config_);
  timers_.start(kTimerResolution);
  for (std::uint32_t i = 0; i < shards_; ++i) routers_.push_back(system_->spawn(router_actor, this, ShardId{i}));
  actors_running_.store(true, std::memory_order_release);

  if (options_.egress != nullptr) {
    for (std::uint32_t i = 0; i < shards_; ++i) {
      relays_.emplace_back([this, i] {
        const std::string name = "ffe-relay-" + std::to_string(i);  // for top -H and perf
        pthread_setname_np(pthread_self(), name.c_str());
        relay(ShardId{i});
      });
    }
  }

  // Every open order comes back: its deadline fires if overdue, its requests go out again.
  for (std::uint32_t i = 0; i < shards_; ++i) {
    std::string after;
    while (true) {
      auto page = journal_->index_scan(ShardId{i}, kOpenPrefix, after);
      if (!page) return page.status();
      for (const storage::IndexEntry& entry : *page) {
        auto item = std::make_shared<Item>();
        item->entity_id = entry.key.substr(kOpenPrefix.size());
        item->is_sku = false;
        item->counted = true;
        item->work = RecoverWork{};
        recovered_.fetch_add(1, std::memory_order_relaxed);
        open_orders_.fetch_add(1, std::memory_order_relaxed);
        work_started();
        route(std::move(item));
      }
      if (page->size() < storage::limits::index_scan_entries_max) break;
      after = page->back().key;
    }
  }
  return Status::ok();
}

Runtime::Impl::~Impl() {
  {
    std::lock_guard lock(credit_mu_);
    closing_ = true;
  }
  credit_cv_.notify_all();
  // Let what was accepted finish: its acks are owed.
  {
    std::unique_lock lock(credit_mu_);
    credit_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return in_flight_ == 0; });
  }
  {
    std::unique_lock lock(quiet_mu_);
    quiet_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return busy_.load() <= 0; });
  }
  relays_stop_.store(true);
  for (auto& thread : relays_) thread.join();
  // The actors stop before the journal closes: their timers may still commit (a retry, a
  // deadline), which needs the journal. Then the journal commits what is queued and runs
  // every callback; messages those callbacks route between entities are dropped
  // (actors_running_ is false), which loses nothing: they are recomputed from durable state,
  // and the open-order index brings every open order back on the next open.
  actors_running_.store(false, std::memory_order_release);
  timers_.stop();
  for (auto& router : routers_) caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  routers_.clear();
  if (system_) system_->await_all_actors_done();
  system_.reset();
  config_.reset();
  journal_.reset();
}

// ---- Runtime ----------------------------------------------------------------------------------

Runtime::Runtime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Runtime::~Runtime() = default;

Result<std::unique_ptr<Runtime>> Runtime::open(Options options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status status = impl->start(); !status) return status;
  return std::unique_ptr<Runtime>(new Runtime(std::move(impl)));
}

namespace {

std::string_view inventory_id(const InventoryCommand& command) {
  return std::visit([](const auto& c) -> std::string_view { return c.sku(); }, command);
}
std::string_view order_id_of(const OrderCommand& command) {
  return std::visit(
      [](const auto& c) -> std::string_view { return c.order_id(); },
      command);
}

Ack invalid_id_ack(std::string reason) {
  Ack ack;
  ack.rejection = Rejection{RejectionCode::kInvalid, std::move(reason)};
  return ack;
}

}  // namespace

Status Runtime::submit(InventoryCommand command, AckFn done, Admission admission,
                       std::optional<storage::InputPosition> input) {
  const std::string_view id = inventory_id(command);
  if (!events::is_valid_id(id)) {
    // Nothing to route by: no entity, no state, answered at once.
    Ack ack = invalid_id_ack(events::validate_id(id, "sku") ? events::validate_id(id, "sku")->to_string() : "sku: invalid");
    if (done) done(ack);
    return Status::ok();
  }
  if (Status status = impl_->acquire_credit(admission); !status) return status;
  auto item = std::make_shared<Item>();
  item->entity_id = std::string(id);
  item->is_sku = true;
  item->counted = true;
  item->work = InventoryWork{std::move(command), impl_->with_credit(std::move(done)), {}, std::move(input)};
  impl_->work_started();
  impl_->route(std::move(item));
  return Status::ok();
}

Status Runtime::submit(OrderCommand command, AckFn done, Admission admission,
                       std::optional<storage::InputPosition> input) {
  const std::string_view id = order_id_of(command);
  if (!events::is_valid_id(id)) {
    Ack ack = invalid_id_ack(events::validate_id(id, "orderId") ? events::validate_id(id, "orderId")->to_string() : "orderId: invalid");
    if (done) done(ack);
    return Status::ok();
  }
  const bool placement = std::holds_alternative<v1::PlaceOrder>(command);
  if (placement && admission == Admission::kTry && !impl_->placement_room(1)) {
    impl_->placements_refused_.fetch_add(1, std::memory_order_relaxed);
    return Status(storage::StatusCode::kBusy, "max_open_orders (" + std::to_string(impl_->options_.max_open_orders) +
                                                  ") orders are open; retry later");
  }
  if (Status status = impl_->acquire_credit(admission); !status) return status;
  if (placement) {
    // Counted until its answer: by then the order's actor has counted it as open (or not:
    // a duplicate, a rejection).
    impl_->placing_.fetch_add(1, std::memory_order_relaxed);
    done = [impl = impl_.get(), done = std::move(done)](const Ack& ack) {
      impl->placing_.fetch_sub(1, std::memory_order_relaxed);
      if (done) done(ack);
    };
  }
  auto item = std::make_shared<Item>();
  item->entity_id = std::string(id);
  item->is_sku = false;
  item->counted = true;
  item->work = OrderWork{std::move(command), impl_->with_credit(std::move(done)), std::move(input)};
  impl_->work_started();
  impl_->route(std::move(item));
  return Status::ok();
}

Result<std::optional<sku::State>> Runtime::sku(std::string_view sku) const {
  const ShardId shard = runtime::shard_of(sku, impl_->shards_);
  auto revision = impl_->journal_->revision(shard);
  if (!revision) return revision.status();
  auto state = impl_->journal_->get(shard, sku_key(sku), *revision);
  if (!state) return state.status();
  if (!state->has_value()) return std::optional<sku::State>();
  v1::SkuSnapshot snapshot;
  if (!snapshot.ParseFromString((*state)->state)) {
    return Status(storage::StatusCode::kCorruption, "undecodable state of " + sku_key(sku));
  }
  return std::optional<sku::State>(sku::from_snapshot(snapshot));
}

Result<std::optional<order::State>> Runtime::order(std::string_view order_id) const {
  const ShardId shard = runtime::shard_of(order_id, impl_->shards_);
  auto revision = impl_->journal_->revision(shard);
  if (!revision) return revision.status();
  auto state = impl_->journal_->get(shard, order_key(order_id), *revision);
  if (!state) return state.status();
  if (!state->has_value()) return std::optional<order::State>();
  v1::OrderSnapshot snapshot;
  if (!snapshot.ParseFromString((*state)->state)) {
    return Status(storage::StatusCode::kCorruption, "undecodable state of " + order_key(order_id));
  }
  return std::optional<order::State>(order::from_snapshot(snapshot));
}

bool Runtime::placements_admissible(std::size_t n) const { return impl_->placement_room(n); }

void Runtime::fail_order_actor_for_testing(std::string_view order_id) {
  auto item = std::make_shared<Item>();
  item->entity_id = std::string(order_id);
  item->work = FailWork{};
  impl_->route(std::move(item));
}

bool Runtime::wait_quiet(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->quiet_mu_);
  return impl_->quiet_cv_.wait_for(lock, timeout, [this] { return impl_->busy_.load() <= 0; });
}

std::uint32_t Runtime::shard_count() const { return impl_->shards_; }
ShardId Runtime::shard_of(std::string_view entity_id) const { return runtime::shard_of(entity_id, impl_->shards_); }
storage::Journal& Runtime::journal() const { return *impl_->journal_; }

Stats Runtime::stats() const {
  Stats stats;
  const Impl& i = *impl_;
  stats.commands = i.commands_.load();
  stats.rejected = i.rejected_.load();
  stats.live_entities = i.live_.load();
  stats.spawned = i.spawned_.load();
  stats.restored = i.restored_.load();
  stats.passivated = i.passivated_.load();
  stats.actor_failures = i.failures_.load();
  stats.late_replies = i.late_replies_.load();
  stats.redelivered = i.redelivered_.load();
  stats.unexpected_releases = i.unexpected_releases_.load();
  stats.expired = i.expired_.load();
  stats.retries = i.retries_.load();
  stats.timers_armed = i.timers_armed_.load();
  stats.timers_fired = i.timers_.fired();
  stats.timers_dropped = i.timers_.dropped();
  stats.open_orders_recovered = i.recovered_.load();
  {
    std::lock_guard lock(impl_->credit_mu_);
    stats.in_flight = i.in_flight_;
  }
  stats.submit_waits = i.submit_waits_.load();
  stats.open_orders = static_cast<std::uint64_t>(std::max<std::int64_t>(0, i.open_orders_.load()));
  stats.placements_refused = i.placements_refused_.load();
  return stats;
}

}  // namespace ffe::runtime
