#pragma once
// Shared by the runtime's crash and deadline tests (crash_test.cc, deadline_test.cc) and their
// helper process (runtime_child.cc): a small in-process payment/shipping participant behind
// runtime::Egress, order and stock builders, a journal reader for one entity's events, and
// the digest rebuild. No gtest here, so the helper binary can use it.
//
// ParticipantEgress — owner: the test (or the child); it must outlive the Runtime it serves.
// Thread-safe: publish() runs on the runtime's relay threads, the accessors on any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "ffe/v1/outcomes.pb.h"

namespace ffe::runtime::testing {

// How the simulated participants answer (the simulators' conventions, ARCHITECTURE.md):
// payment token "tok_silent" is never answered, "tok_decline" is DECLINED, anything else
// APPROVED; shipTo country "XX" makes CreateShipment FAILED. A void is acknowledged with
// APPROVED, a cancel-shipment with CANCELLED (what actors/order/order.cc accepts).
struct ParticipantConfig {
  bool answer_authorize = true;       // false: every authorize is ignored (lost)
  int ignore_first_authorizes = 0;    // per order: ignore this many authorize requests first
  bool answer_voids = true;
  bool answer_refunds = true;
  bool answer_creates = true;
  bool answer_cancels = true;
  std::string topic_prefix = "ff.";
};

// One message the runtime handed to the egress, decoded.
struct Seen {
  enum Kind { kAuthorize, kVoid, kRefund, kCreate, kCancel, kOutcome, kUnknown };
  Kind kind = kUnknown;
  ShardId shard;
  storage::OutboxPosition position;
  std::string topic;
  std::string order_id;
  std::string command_id;   // empty for outcomes
  std::string detail;       // authorize: the token; void: authorize_command_id; cancel: create_command_id;
                            // outcome: the state's name
  v1::OrderOutcome outcome; // kOutcome only
};

const char* kind_name(Seen::Kind kind);

class ParticipantEgress final : public Egress {
 public:
  explicit ParticipantEgress(ParticipantConfig config = {});
  ~ParticipantEgress() override;
  ParticipantEgress(const ParticipantEgress&) = delete;
  ParticipantEgress& operator=(const ParticipantEgress&) = delete;

  // Replies are queued from publish() and submitted by a worker thread once a runtime is
  // attached (the relay may publish during Runtime::open, before the test holds the runtime).
  void attach(Runtime* runtime);
  // Stops submitting (pending replies are dropped). Call before destroying the runtime.
  void detach();

  bool publish(ShardId shard, const std::vector<storage::OutboxEntry>& entries) override;

  // Optional hook, called (under no lock) for every message seen; the child prints with it.
  void set_on_seen(std::function<void(const Seen&)> hook);

  std::vector<Seen> seen() const;
  std::size_t count(Seen::Kind kind, std::string_view order_id) const;
  std::vector<v1::OrderOutcome> outcomes_of(std::string_view order_id) const;
  // Waits until count(kind, order_id) >= n; false on timeout.
  bool wait_count(Seen::Kind kind, std::string_view order_id, std::size_t n,
                  std::chrono::milliseconds timeout) const;
  std::uint64_t replies_submitted() const { return replies_submitted_.load(); }

 private:
  void worker();
  std::optional<OrderCommand> answer(const Seen& seen);

  ParticipantConfig config_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Seen> seen_;
  std::map<std::string, int> authorizes_ignored_;  // order id -> how many ignored so far
  std::deque<OrderCommand> pending_;
  Runtime* runtime_ = nullptr;
  bool stopping_ = false;
  bool submitting_ = false;  // the worker is inside runtime_->submit()
  std::function<void(const Seen&)> on_seen_;
  std::atomic<std::uint64_t> replies_submitted_{0};
  std::thread worker_;
};

// --- builders ------------------------------------------------------------------------------
v1::ReceiveStock receive(std::string sku, std::int64_t qty, std::string receipt_id);
v1::StockCommand reserve(std::string order_id, std::string sku, std::int64_t qty);
// A valid PlaceOrder of one line; deadline_ms 0 takes the policy's default.
v1::PlaceOrder place_order(std::string order_id, std::string sku, std::int64_t qty,
                           std::string token, std::int64_t deadline_ms = 0,
                           std::string country = "US");

// Submits and waits for the Ack (kWait). nullopt when submit() refused or the wait timed out.
std::optional<Ack> submit_and_wait(Runtime& runtime, InventoryCommand command,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));
std::optional<Ack> submit_and_wait(Runtime& runtime, OrderCommand command,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Polls runtime.order(id) until `pred(state)` holds; the last state read (nullopt: none).
std::optional<order::State> wait_order(const Runtime& runtime, std::string_view order_id,
                                       const std::function<bool(const order::State&)>& pred,
                                       std::chrono::milliseconds timeout);

// --- the journal, read back ------------------------------------------------------------------
struct EntityEvents {
  std::string key;
  std::vector<storage::Revision> revisions;  // one per event
  std::vector<std::string> payloads;
};

// Every event of every entity of a shard from revision 1 to `head`, by entity key. An error
// (a gap, a compacted revision, a read failure) is returned as the string.
struct ShardLog {
  std::map<std::string, EntityEvents> entities;
  std::uint64_t records = 0;
  std::string error;  // empty: read OK and contiguous
};
ShardLog read_shard_log(const storage::Journal& journal, ShardId shard, storage::Revision head);

// The decoded OrderEvents of order/<id>, in commit order.
std::vector<v1::OrderEvent> order_events(const Runtime& runtime, std::string_view order_id);

// Rebuilds a shard from scratch (every entity's events folded from nothing with
// DomainFolder) and compares it with the journal at `head`: each entity's state with
// journal.get, the hashed whole with journal.digest. Returns the problems (empty: equal).
std::vector<std::string> check_shard_rebuild(const storage::Journal& journal, ShardId shard,
                                             storage::Revision head, std::size_t* entities = nullptr);

// One line to stdout with a single write(2) (atomic on a pipe below PIPE_BUF).
void say(const std::string& line);

std::int64_t wall_ms();

}  // namespace ffe::runtime::testing
