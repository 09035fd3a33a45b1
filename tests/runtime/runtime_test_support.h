#pragma once
// Shared by the runtime's tests (tests/runtime/*_test.cc): in-process saga participants
// that play the payment and shipping services through runtime::Egress, command builders,
// a blocking submit, FNV-1a, and the "rebuild every entity from the journal" check.
// No gtest here: helpers report what they found as values and the tests assert on them.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/runtime/runtime.h"
#include "ffe/v1/outcomes.pb.h"
#include "tests/storage/test_support.h"

namespace ffe::runtime::testing {

using storage::testing::TempDir;

// TestParticipants — the payment and shipping services of the contract, in process.
//
// Owner: the test. Lifecycle: construct it before the Runtime (its address goes into
// Options::egress), attach() the runtime once open() returned, and let it outlive the
// runtime (the runtime's destructor may still call publish()). Until attached, publish()
// answers false, so the relay offers the entries again later: nothing is lost.
//
// Conventions (ARCHITECTURE.md, "The simulators' conventions"):
//   authorize: token "tok_decline" -> DECLINED, "tok_silent" -> never answered,
//              anything else -> APPROVED with paymentId "p-<orderId>";
//   void / refund -> APPROVED (the void settles the payment; actors/order/order.cc);
//   create shipment: shipTo country "XX" -> FAILED, else CREATED with "s-<orderId>";
//   cancel shipment -> CANCELLED.
// Ids are derived from the order id (not a counter) so two runs of one workload give equal
// states whatever the interleaving. A repeated commandId is the same request: the memoized
// answer is sent again (never a new decision), a silent one stays silent.
//
// Replies go back through Runtime::submit(..., Admission::kWait) from the relay's thread.
// Every outcome on <prefix>orders.outcomes is recorded. Thread-safe.
class TestParticipants final : public Egress {
 public:
  explicit TestParticipants(std::string topic_prefix = "ff.");
  void attach(Runtime* runtime);
  // Stops answering (publish() returns false); call before destroying a runtime whose
  // relays must no longer submit. Optional: a closing runtime answers kClosed anyway.
  void detach();

  bool publish(ShardId shard, const std::vector<storage::OutboxEntry>& entries) override;

  // Outcomes seen, per order id, in arrival order (a repeat would appear twice).
  std::map<std::string, std::vector<v1::OrderOutcome>> outcomes() const;
  std::size_t outcome_messages() const;  // every outcome message, repeats included
  std::size_t orders_with_outcome() const;  // distinct order ids
  // Waits until `orders` distinct orders have an outcome; false on timeout.
  bool wait_for_outcomes(std::size_t orders, std::chrono::milliseconds timeout) const;

  struct Counts {
    std::uint64_t authorizes = 0;        // distinct authorize commandIds
    std::uint64_t voids = 0;             // distinct void commandIds
    std::uint64_t refunds = 0;
    std::uint64_t creates = 0;           // distinct create-shipment commandIds
    std::uint64_t cancels = 0;           // distinct cancel-shipment commandIds
    std::uint64_t repeated_requests = 0; // requests whose commandId was seen before
    std::uint64_t replies_submitted = 0;
    std::uint64_t reply_acks = 0;
    std::uint64_t reply_acks_not_ok = 0;
    std::uint64_t reply_rejections = 0;  // e.g. kUnexpected for a late repeat: normal
    std::uint64_t undecodable = 0;       // payloads that did not parse: a bug
    std::uint64_t unknown_topics = 0;    // a bug
    std::uint64_t wrong_content_type = 0;  // payload without content-type x-protobuf: a bug
    std::uint64_t publish_calls = 0;
    std::uint64_t publish_refused = 0;   // publish() returned false
    // Entries offered again after publish() returned true for them (in process, with no
    // crash, the relay must never do that) or out of position order within a shard.
    std::uint64_t reoffered_after_true = 0;
    std::uint64_t out_of_order = 0;
  };
  Counts counts() const;
  // Orders whose payment was voided / shipment cancelled (by the void's orderId).
  std::set<std::string> voided_orders() const;
  std::set<std::string> cancelled_shipments() const;

 private:
  struct PaymentMemo {
    std::optional<v1::PaymentReply> reply;  // nullopt: silent
  };
  struct ShipmentMemo {
    std::optional<v1::ShipmentReply> reply;
  };
  std::optional<v1::PaymentReply> answer_payment(const v1::PaymentRequest& request);
  std::optional<v1::ShipmentReply> answer_shipment(const v1::ShipmentRequest& request);
  bool submit_reply(OrderCommand reply);

  const std::string payments_topic_;
  const std::string shipments_topic_;
  const std::string outcomes_topic_;

  std::atomic<Runtime*> runtime_{nullptr};
  // Counts a publish() that is inside submit() so detach() can wait for it.
  std::atomic<int> publishing_{0};

  mutable std::mutex mutex_;
  mutable std::condition_variable outcome_cv_;
  std::unordered_map<std::string, PaymentMemo> payment_memo_;
  std::unordered_map<std::string, ShipmentMemo> shipment_memo_;
  std::map<std::string, std::vector<v1::OrderOutcome>> outcomes_;
  // Outcome entries recorded (shard, position): an entry offered again after a false
  // return is not recorded twice.
  std::set<std::pair<std::uint32_t, storage::OutboxPosition>> outcome_positions_;
  // Per shard, the last position publish() returned true for.
  std::map<std::uint32_t, storage::OutboxPosition> handed_off_;
  std::size_t outcome_messages_ = 0;
  std::set<std::string> voided_orders_;
  std::set<std::string> cancelled_shipments_;
  Counts counts_;
  std::atomic<std::uint64_t> reply_acks_{0};
  std::atomic<std::uint64_t> reply_acks_not_ok_{0};
  std::atomic<std::uint64_t> reply_rejections_{0};
};

// --- command builders ------------------------------------------------------------------------
v1::ReceiveStock receive_stock(std::string sku, std::int64_t qty, std::string receipt_id);
v1::AdjustStock adjust_stock(std::string sku, std::int64_t delta, std::string adjustment_id);
v1::StockCommand reserve(std::string order_id, std::string sku, std::int64_t qty);
struct LineSpec {
  std::string sku;
  std::int64_t qty = 1;
};
// A valid PlaceOrder: customer "c-1", card payment with `token`, address in `country`,
// each line priced 100 cents.
v1::PlaceOrder place_order(std::string order_id, const std::vector<LineSpec>& lines,
                           std::string token = "tok_visa", std::string country = "US");
v1::CancelOrder cancel_order(std::string order_id, std::string reason = "customer request");

// Submits and waits for the ack. nullopt when submit() refused (then *refusal holds why) or
// the ack did not come within `timeout`.
std::optional<Ack> submit_and_wait(Runtime& runtime, InventoryCommand command,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                   Status* refusal = nullptr);
std::optional<Ack> submit_and_wait(Runtime& runtime, OrderCommand command,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                   Status* refusal = nullptr);

// FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3), written out here so the
// test pins runtime::shard_of independently of its implementation.
std::uint64_t fnv1a64(std::string_view bytes);

// --- rebuild from the journal ------------------------------------------------------------------
// Opens the journal in data_dir directly (the runtime must be closed) with a DomainFolder and
// no journal-made snapshots, reads every log record of every shard from revision 1 with
// watch(), folds each entity's events from scratch (fold(key, nullopt, all events)), and
// compares, per entity, with journal.get(shard, key, revision) (state and mod_revision) and,
// per shard, the SHA-256 over the rebuilt states (the digest's framing) with
// journal.digest(shard, revision). Along the way each SKU is evolved event by event and
// checked for 0 <= reserved <= on_hand and shipped <= taken in (invariant 1 at every
// revision), each order is checked never to get an event after its terminal one
// (invariant 4), and each entity must live in the shard runtime::shard_of gives its id.
struct RebuildReport {
  std::size_t shards = 0;
  std::size_t records = 0;
  std::size_t events = 0;
  std::size_t entities = 0;
  std::map<std::string, std::string> states;         // entity key -> rebuilt state bytes
  std::map<std::string, ShardId> shard_of_entity;    // entity key -> shard whose log holds it
  std::map<std::uint32_t, Revision> revisions;       // shard -> revision
  std::vector<std::string> failures;                 // empty: everything matched
};
RebuildReport rebuild_from_journal(const std::string& data_dir, std::uint32_t shards);

// Canonical forms for comparisons in messages.
std::string describe(const sku::State& state);
std::string describe(const order::State& state);

}  // namespace ffe::runtime::testing
