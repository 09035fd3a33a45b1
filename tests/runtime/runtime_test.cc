// The runtime's contract (actors/runtime/runtime.h) one promise at a time: routing by a
// stable hash, backpressure, how rejections, duplicates and failed saga steps are answered,
// and what survives a reopen. Real CAF, real RocksDB in a temp dir, the in-process test
// participants as payment and shipping services.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <future>
#include <cstdio>
#include <mutex>
#include <condition_variable>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "storage/journal.h"
#include "tests/runtime/runtime_test_support.h"

namespace ffe::runtime {
namespace {

using testing::TempDir;
using testing::TestParticipants;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Routing: ffe's own stable hash, pinned.

TEST(RuntimeRouting, ShardOfIsFnv1a64OfTheIdModuloTheShardCount) {
  // The hash itself (published FNV-1a 64 test vectors), so the pins below mean something.
  EXPECT_EQ(testing::fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(testing::fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(testing::fnv1a64("foobar"), 0x85944171f73967e8ULL);

  // Pinned values: part of the on-disk format; a change moves entities between shards.
  EXPECT_EQ(shard_of("sku-1", 8).value, 4u);
  EXPECT_EQ(shard_of("o-1001", 8).value, 3u);
  EXPECT_EQ(shard_of("o-1001", 16).value, 11u);
  EXPECT_EQ(shard_of("hot-sku", 8).value, 4u);
  EXPECT_EQ(shard_of("foobar", 8).value, 0u);
  EXPECT_EQ(shard_of("a", 3).value, 1u);

  for (const char* id : {"sku-1", "o-1001", "hot-sku", "s-9999", "po-42", "mo-19999", "A.b_c-9", "x"}) {
    for (std::uint32_t shards : {1u, 2u, 3u, 7u, 8u, 16u, 64u, 1000u}) {
      EXPECT_EQ(shard_of(id, shards).value, testing::fnv1a64(id) % shards) << id << " over " << shards;
      EXPECT_EQ(shard_of(id, shards), shard_of(id, shards));  // stable
    }
  }
  EXPECT_EQ(sku_key("sku-1"), "sku/sku-1");
  EXPECT_EQ(order_key("o-1001"), "order/o-1001");
}

// ---------------------------------------------------------------------------------------------
// A runtime in a temp dir with the test participants attached.

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void TearDown() override { close(); }

  void open(std::function<void(Options&)> tweak = nullptr) {
    Options options;
    options.data_dir = dir_.sub("data");
    options.egress = &participants_;
    if (tweak) tweak(options);
    auto opened = Runtime::open(options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    runtime_ = std::move(*opened);
    participants_.attach(runtime_.get());
  }
  void close() {
    participants_.detach();
    runtime_.reset();
  }

  Ack ack_of(InventoryCommand command) {
    Status refusal;
    auto ack = testing::submit_and_wait(*runtime_, std::move(command), std::chrono::seconds(30), &refusal);
    EXPECT_TRUE(ack) << refusal.to_string();
    return ack ? *ack : Ack{Status(storage::StatusCode::kClosed, "no ack"), {}, 0, false, std::nullopt, std::nullopt};
  }
  Ack ack_of(OrderCommand command) {
    Status refusal;
    auto ack = testing::submit_and_wait(*runtime_, std::move(command), std::chrono::seconds(30), &refusal);
    EXPECT_TRUE(ack) << refusal.to_string();
    return ack ? *ack : Ack{Status(storage::StatusCode::kClosed, "no ack"), {}, 0, false, std::nullopt, std::nullopt};
  }

  void stock(const std::string& sku, std::int64_t qty) {
    Ack ack = ack_of(testing::receive_stock(sku, qty, "r-" + sku + "-" + std::to_string(qty)));
    ASSERT_TRUE(ack.status) << ack.status.to_string();
    ASSERT_FALSE(ack.rejection) << ack.rejection->reason;
  }

  sku::State sku_state(const std::string& sku) {
    auto state = runtime_->sku(sku);
    EXPECT_TRUE(state.is_ok()) << state.status().to_string();
    EXPECT_TRUE(state.is_ok() && state->has_value()) << sku << " not found";
    return state.is_ok() && state->has_value() ? **state : sku::State{};
  }
  order::State order_state(const std::string& order_id) {
    auto state = runtime_->order(order_id);
    EXPECT_TRUE(state.is_ok()) << state.status().to_string();
    EXPECT_TRUE(state.is_ok() && state->has_value()) << order_id << " not found";
    return state.is_ok() && state->has_value() ? **state : order::State{};
  }
  Revision revision_of(const std::string& entity_id) {
    auto revision = runtime_->journal().revision(runtime_->shard_of(entity_id));
    EXPECT_TRUE(revision.is_ok());
    return revision.is_ok() ? *revision : 0;
  }

  // Places the order and waits for its one outcome; returns it (state UNSPECIFIED if none).
  v1::OrderOutcome place_and_wait(const v1::PlaceOrder& place) {
    Ack ack = ack_of(OrderCommand{place});
    EXPECT_TRUE(ack.status) << ack.status.to_string();
    EXPECT_FALSE(ack.rejection) << ack.rejection->reason;
    EXPECT_EQ(ack.shard, runtime_->shard_of(place.order_id()));
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      auto outcomes = participants_.outcomes();
      auto found = outcomes.find(place.order_id());
      if (found != outcomes.end()) {
        runtime_->wait_quiet(std::chrono::seconds(10));
        outcomes = participants_.outcomes();
        EXPECT_EQ(outcomes[place.order_id()].size(), 1u) << "outcomes for " << place.order_id();
        const v1::OrderOutcome outcome = outcomes[place.order_id()].front();
        EXPECT_EQ(static_cast<std::uint32_t>(outcome.shard()), runtime_->shard_of(place.order_id()).value);
        // The outcome's revision is the order's terminal revision: its last change.
        auto entity = runtime_->journal().get(runtime_->shard_of(place.order_id()), order_key(place.order_id()),
                                              revision_of(place.order_id()));
        EXPECT_TRUE(entity.is_ok() && entity->has_value());
        if (entity.is_ok() && entity->has_value()) {
          EXPECT_EQ((*entity)->mod_revision, static_cast<Revision>(outcome.revision()));
        }
        return outcome;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << place.order_id() << ": no outcome within 60 s; state "
                  << testing::describe(order_state(place.order_id()));
    return {};
  }

  static bool holds_nothing(const order::State& order) {
    for (const order::Line& line : order.lines) {
      if (line.status == order::LineStatus::kReserved || line.status == order::LineStatus::kCommitted) return false;
    }
    return true;
  }

  TempDir dir_;
  TestParticipants participants_;  // declared before runtime_: outlives it
  std::unique_ptr<Runtime> runtime_;
};

TEST_F(RuntimeTest, ShardOfTheRuntimeIsTheFreeFunctionOverItsShardCount) {
  EXPECT_EQ(runtime_->shard_count(), 8u);
  for (const char* id : {"sku-1", "o-1001", "hot-sku", "x"}) {
    EXPECT_EQ(runtime_->shard_of(id), shard_of(id, runtime_->shard_count())) << id;
  }
}

TEST_F(RuntimeTest, EveryEntityLivesInItsShard) {
  std::vector<std::string> skus;
  for (int i = 0; i < 24; ++i) {
    skus.push_back("sku-" + std::to_string(i));
    Ack ack = ack_of(testing::receive_stock(skus.back(), 10, "r-" + std::to_string(i)));
    ASSERT_TRUE(ack.status);
    EXPECT_EQ(ack.shard, shard_of(skus.back(), 8)) << skus.back();
  }
  std::vector<std::string> orders;
  for (int i = 0; i < 8; ++i) {
    orders.push_back("o-" + std::to_string(i));
    const v1::OrderOutcome outcome =
        place_and_wait(testing::place_order(orders.back(), {{skus[i], 1}, {skus[i + 8], 2}}));
    EXPECT_EQ(outcome.state(), v1::FULFILLED) << orders.back();
  }
  ASSERT_TRUE(runtime_->wait_quiet(std::chrono::seconds(30)));
  storage::Journal& journal = runtime_->journal();
  auto check = [&](const std::string& id, const std::string& key) {
    const ShardId home = shard_of(id, 8);
    for (std::uint32_t s = 0; s < 8; ++s) {
      auto revision = journal.revision(ShardId{s});
      ASSERT_TRUE(revision.is_ok());
      auto found = journal.get(ShardId{s}, key, *revision);
      ASSERT_TRUE(found.is_ok()) << found.status().to_string();
      EXPECT_EQ(found->has_value(), s == home.value) << key << " in shard " << s << " (home " << home.value << ")";
    }
  };
  for (const auto& sku : skus) check(sku, sku_key(sku));
  for (const auto& order : orders) check(order, order_key(order));
}

// ---------------------------------------------------------------------------------------------
// Rejections and duplicates.

TEST_F(RuntimeTest, InvalidCommandIsRejectedInvalidAndChangesNothing) {
  const Revision before = revision_of("new-sku");
  Ack ack = ack_of(testing::receive_stock("new-sku", 0, "r-0"));
  ASSERT_TRUE(ack.status) << ack.status.to_string();
  ASSERT_TRUE(ack.rejection);
  EXPECT_EQ(ack.rejection->code, RejectionCode::kInvalid) << ack.rejection->reason;
  EXPECT_FALSE(ack.new_revision);
  EXPECT_EQ(revision_of("new-sku"), before);
  auto state = runtime_->sku("new-sku");
  ASSERT_TRUE(state.is_ok());
  EXPECT_FALSE(state->has_value()) << "a rejected receipt created the SKU";

  // On an existing SKU: a zero receipt, a zero adjustment, an adjustment below reserved.
  stock("sku-1", 10);
  const sku::State stocked = sku_state("sku-1");
  const Revision stocked_revision = revision_of("sku-1");
  for (InventoryCommand bad : {InventoryCommand{testing::receive_stock("sku-1", 0, "r-zero")},
                               InventoryCommand{testing::adjust_stock("sku-1", 0, "a-zero")},
                               InventoryCommand{testing::adjust_stock("sku-1", -11, "a-too-much")}}) {
    Ack refused = ack_of(bad);
    ASSERT_TRUE(refused.status);
    ASSERT_TRUE(refused.rejection);
    EXPECT_EQ(refused.rejection->code, RejectionCode::kInvalid) << refused.rejection->reason;
    EXPECT_FALSE(refused.new_revision);
  }
  EXPECT_EQ(sku_state("sku-1"), stocked);
  EXPECT_EQ(revision_of("sku-1"), stocked_revision);
  EXPECT_GE(runtime_->stats().rejected, 4u);
}

TEST_F(RuntimeTest, CancelForAnUnknownOrderIsRejectedUnknownEntity) {
  const Revision before = revision_of("o-ghost");
  Ack ack = ack_of(OrderCommand{testing::cancel_order("o-ghost")});
  ASSERT_TRUE(ack.status) << ack.status.to_string();
  ASSERT_TRUE(ack.rejection);
  EXPECT_EQ(ack.rejection->code, RejectionCode::kUnknownEntity) << ack.rejection->reason;
  EXPECT_FALSE(ack.new_revision);
  EXPECT_EQ(ack.shard, shard_of("o-ghost", 8));
  EXPECT_EQ(revision_of("o-ghost"), before);
  auto state = runtime_->order("o-ghost");
  ASSERT_TRUE(state.is_ok());
  EXPECT_FALSE(state->has_value());
}

TEST_F(RuntimeTest, DuplicateReceiptIsAcknowledgedWithoutANewRevisionAndCountedOnce) {
  Ack first = ack_of(testing::receive_stock("sku-1", 10, "r-77"));
  ASSERT_TRUE(first.status);
  EXPECT_FALSE(first.rejection);
  EXPECT_TRUE(first.new_revision);
  Ack again = ack_of(testing::receive_stock("sku-1", 10, "r-77"));
  ASSERT_TRUE(again.status);
  EXPECT_FALSE(again.rejection) << again.rejection->reason;
  EXPECT_FALSE(again.new_revision);
  EXPECT_EQ(again.revision, first.revision);
  EXPECT_EQ(revision_of("sku-1"), first.revision);
  const sku::State state = sku_state("sku-1");
  EXPECT_EQ(state.on_hand, 10);
  EXPECT_EQ(state.received_total, 10);
}

// A SKU actor holds its state: it attaches the snapshots the journal's rule asks for, so the
// journal never reads a SKU's events back to fold one; the state read back is the same.
TEST_F(RuntimeTest, ASkuAttachesItsOwnSnapshotsAndTheJournalFoldsNone) {
  for (int i = 0; i < 200; ++i) {
    Ack ack = ack_of(testing::receive_stock("sku-1", 1, "r-" + std::to_string(i)));
    ASSERT_TRUE(ack.status) << ack.status.to_string();
  }
  runtime_->journal().wait_for_snapshots();
  const storage::JournalStats stats = runtime_->journal().stats();
  EXPECT_EQ(stats.snapshots_given, 200u / 64);  // at events 64, 128 and 192
  EXPECT_EQ(stats.snapshots_made, 0u);
  EXPECT_EQ(sku_state("sku-1").on_hand, 200);
  EXPECT_EQ(sku_state("sku-1").received_total, 200);
}

// ... unless open reservations dominate its state (a flash sale's hot SKU): serializing that
// on the actor would stall every command behind it, so the journal's thread snapshots it.
TEST_F(RuntimeTest, ASkuHoldingManyReservationsLeavesItsSnapshotsToTheJournal) {
  ASSERT_TRUE(ack_of(testing::receive_stock("sku-1", 10'000, "r-1")).status);
  auto reserve_up_to = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      Ack ack = ack_of(InventoryCommand{testing::reserve("o-" + std::to_string(i), "sku-1", 1)});
      ASSERT_TRUE(ack.status) << ack.status.to_string();
      ASSERT_FALSE(ack.rejection) << ack.rejection->reason;
    }
  };
  reserve_up_to(0, 1024);  // the actor attaches them (the bytes rule spaces them as it grows)
  runtime_->journal().wait_for_snapshots();
  const storage::JournalStats small = runtime_->journal().stats();
  EXPECT_GE(small.snapshots_given, 1u);
  EXPECT_EQ(small.snapshots_made, 0u);
  reserve_up_to(1024, 4000);  // above the cutoff: the journal's thread makes them
  runtime_->journal().wait_for_snapshots();
  const storage::JournalStats big = runtime_->journal().stats();
  EXPECT_EQ(big.snapshots_given, small.snapshots_given);
  EXPECT_GE(big.snapshots_made, 1u);
  const sku::State state = sku_state("sku-1");
  EXPECT_EQ(state.reserved, 4000);
  EXPECT_EQ(state.reservations.size(), 4000u);
}

// ---------------------------------------------------------------------------------------------
// Orders through the saga.

TEST_F(RuntimeTest, HappyPathFulfillsAndTerminalIsAbsorbing) {
  stock("sku-1", 10);
  stock("sku-2", 10);
  const v1::OrderOutcome outcome = place_and_wait(testing::place_order("o-1", {{"sku-1", 2}, {"sku-2", 3}}));
  EXPECT_EQ(outcome.state(), v1::FULFILLED);
  EXPECT_EQ(outcome.payment_id(), "p-o-1");
  EXPECT_EQ(outcome.shipment_id(), "s-o-1");
  const order::State order = order_state("o-1");
  EXPECT_EQ(order.state, v1::FULFILLED);
  for (const order::Line& line : order.lines) EXPECT_EQ(line.status, order::LineStatus::kCommitted) << line.sku;
  const sku::State one = sku_state("sku-1");
  EXPECT_EQ(one.on_hand, 8);
  EXPECT_EQ(one.reserved, 0);
  EXPECT_EQ(one.shipped_total, 2);
  const sku::State two = sku_state("sku-2");
  EXPECT_EQ(two.on_hand, 7);
  EXPECT_EQ(two.reserved, 0);

  // After terminal: a cancel is refused, a repeated PlaceOrder is a no-op, and the order
  // reads the same at its terminal revision and at every later one.
  const ShardId shard = runtime_->shard_of("o-1");
  const Revision terminal = static_cast<Revision>(outcome.revision());
  Ack cancel = ack_of(OrderCommand{testing::cancel_order("o-1")});
  ASSERT_TRUE(cancel.status);
  ASSERT_TRUE(cancel.rejection);
  EXPECT_EQ(cancel.rejection->code, RejectionCode::kAlreadyTerminal);
  Ack repeat = ack_of(OrderCommand{testing::place_order("o-1", {{"sku-1", 5}})});
  ASSERT_TRUE(repeat.status);
  EXPECT_FALSE(repeat.new_revision);
  // Move the shard on with another entity of the same shard, if the test can find one fast.
  for (int i = 0; i < 200; ++i) {
    const std::string sku = "other-" + std::to_string(i);
    if (shard_of(sku, 8) == shard) {
      stock(sku, 1);
      break;
    }
  }
  EXPECT_TRUE(runtime_->wait_quiet(std::chrono::seconds(10)));
  EXPECT_EQ(order_state("o-1"), order);
  auto at_terminal = runtime_->journal().get(shard, order_key("o-1"), terminal);
  auto now = runtime_->journal().get(shard, order_key("o-1"), revision_of("o-1"));
  ASSERT_TRUE(at_terminal.is_ok() && now.is_ok());
  ASSERT_TRUE(at_terminal->has_value() && now->has_value());
  EXPECT_EQ(**at_terminal, **now);
  EXPECT_GT(revision_of("o-1"), terminal);
  EXPECT_EQ(participants_.outcome_messages(), 1u);
}

TEST_F(RuntimeTest, AnOrderArmsOneDeadlineTimerAndOneRetryTimerNotTwoPerEvent) {
  // Every event of an order moves its step deadline and its retry time; the timers pending
  // wait again for what is left instead of new ones being armed (CAF's clock thread wakes for
  // each). Participants that answer at once: each order ends FULFILLED within milliseconds,
  // after six or more events, with its first two timers still pending.
  stock("sku-t", 100);
  constexpr int kOrders = 20;
  const std::uint64_t before = runtime_->stats().timers_armed;
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = "ot-" + std::to_string(i);
    EXPECT_EQ(place_and_wait(testing::place_order(id, {{"sku-t", 1}})).state(), v1::FULFILLED) << id;
  }
  const std::uint64_t armed = runtime_->stats().timers_armed - before;
  EXPECT_GE(armed, 2u * kOrders) << "each order arms its deadline and its retry";
  EXPECT_LE(armed, 2u * kOrders) << "timers armed again for every event";
}

TEST_F(RuntimeTest, AFinishedOrdersTimersAreDroppedWithoutWakingIt) {
  // The retry timer of each order (due 200 ms after it began, the default policy) comes due
  // after the order ended: the timer service drops it, and the order's actor hears nothing.
  stock("sku-d", 100);
  constexpr int kOrders = 10;
  const Stats before = runtime_->stats();
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = "od-" + std::to_string(i);
    EXPECT_EQ(place_and_wait(testing::place_order(id, {{"sku-d", 1}})).state(), v1::FULFILLED) << id;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (runtime_->stats().timers_dropped - before.timers_dropped < kOrders && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const Stats after = runtime_->stats();
  EXPECT_GE(after.timers_dropped - before.timers_dropped, static_cast<std::uint64_t>(kOrders))
      << "each order's retry timer is dropped when due";
  EXPECT_EQ(after.timers_fired, before.timers_fired) << "a finished order was woken by a timer";
  EXPECT_EQ(after.retries, before.retries);
}

TEST_F(RuntimeTest, OrderAskingMoreThanAvailableEndsRejectedHoldingNothing) {
  stock("sku-a", 5);
  stock("sku-b", 2);
  const v1::OrderOutcome outcome = place_and_wait(testing::place_order("o-big", {{"sku-a", 3}, {"sku-b", 10}}));
  EXPECT_EQ(outcome.state(), v1::REJECTED);
  EXPECT_NE(outcome.reason().find("out of stock"), std::string::npos) << outcome.reason();
  const order::State order = order_state("o-big");
  EXPECT_EQ(order.state, v1::REJECTED);
  EXPECT_TRUE(holds_nothing(order)) << testing::describe(order);
  for (const auto& [sku, stocked] : {std::pair<std::string, std::int64_t>{"sku-a", 5}, {"sku-b", 2}}) {
    const sku::State state = sku_state(sku);
    EXPECT_EQ(state.on_hand, stocked) << sku;
    EXPECT_EQ(state.reserved, 0) << sku;
    EXPECT_EQ(state.available(), stocked) << sku;
    EXPECT_TRUE(state.reservations.empty()) << sku;
  }
  EXPECT_EQ(participants_.counts().authorizes, 0u) << "a rejected order asked for payment";
}

TEST_F(RuntimeTest, InvalidPlaceOrderEndsRejectedWithItsOutcome) {
  stock("sku-1", 5);
  v1::PlaceOrder place = testing::place_order("o-bad", {{"sku-1", 1}});
  place.mutable_lines(0)->set_qty(0);
  const v1::OrderOutcome outcome = place_and_wait(place);
  EXPECT_EQ(outcome.state(), v1::REJECTED);
  EXPECT_NE(outcome.reason().find("qty"), std::string::npos) << outcome.reason();
  EXPECT_EQ(order_state("o-bad").state, v1::REJECTED);
  EXPECT_EQ(sku_state("sku-1").reserved, 0);
  EXPECT_EQ(sku_state("sku-1").on_hand, 5);
}

TEST_F(RuntimeTest, DeclinedPaymentEndsCancelledWithStockReleased) {
  stock("sku-1", 5);
  stock("sku-2", 5);
  const v1::OrderOutcome outcome =
      place_and_wait(testing::place_order("o-decl", {{"sku-1", 2}, {"sku-2", 1}}, "tok_decline"));
  EXPECT_EQ(outcome.state(), v1::CANCELLED);
  const order::State order = order_state("o-decl");
  EXPECT_EQ(order.state, v1::CANCELLED);
  EXPECT_FALSE(order.payment_authorized);
  for (const order::Line& line : order.lines) EXPECT_EQ(line.status, order::LineStatus::kReleased) << line.sku;
  for (const char* sku : {"sku-1", "sku-2"}) {
    const sku::State state = sku_state(sku);
    EXPECT_EQ(state.on_hand, 5) << sku;
    EXPECT_EQ(state.reserved, 0) << sku;
    EXPECT_EQ(state.shipped_total, 0) << sku;
  }
  EXPECT_FALSE(participants_.voided_orders().contains("o-decl")) << "nothing was authorized, nothing to void";
  EXPECT_EQ(participants_.counts().creates, 0u);
}

// An actor stopped by a failure outside ffe's handlers loses its mailbox and its timers die
// with it; the router restarts it, and it recovers as at open(): without that, an order
// waiting on a silent participant would never time out (invariant 5).
TEST_F(RuntimeTest, AnOrderWhoseActorFailedOutsideItsHandlersStillTimesOut) {
  close();
  open([](Options& options) { options.order_policy.authorize_timeout_ms = 300; });
  stock("sku-1", 5);
  Ack ack = ack_of(OrderCommand{testing::place_order("o-silent", {{"sku-1", 2}}, "tok_silent")});
  ASSERT_TRUE(ack.status) << ack.status.to_string();
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (order_state("o-silent").state != v1::AUTHORIZING && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(order_state("o-silent").state, v1::AUTHORIZING);
  runtime_->fail_order_actor_for_testing("o-silent");

  ASSERT_TRUE(participants_.wait_for_outcomes(1, std::chrono::seconds(10)));
  EXPECT_EQ(participants_.outcomes()["o-silent"].front().state(), v1::CANCELLED);
  runtime_->wait_quiet(std::chrono::seconds(10));
  EXPECT_EQ(sku_state("sku-1").reserved, 0);
  EXPECT_EQ(runtime_->stats().actor_failures, 1u);
}

TEST_F(RuntimeTest, FailedShipmentEndsCancelledWithPaymentVoided) {
  stock("sku-1", 5);
  const v1::OrderOutcome outcome = place_and_wait(testing::place_order("o-xx", {{"sku-1", 2}}, "tok_visa", "XX"));
  EXPECT_EQ(outcome.state(), v1::CANCELLED);
  const order::State order = order_state("o-xx");
  EXPECT_EQ(order.state, v1::CANCELLED);
  EXPECT_TRUE(order.payment_authorized);
  EXPECT_TRUE(order.payment_voided);
  EXPECT_FALSE(order.shipment_created);
  EXPECT_TRUE(participants_.voided_orders().contains("o-xx"));
  EXPECT_FALSE(participants_.cancelled_shipments().contains("o-xx")) << "nothing was created, nothing to cancel";
  EXPECT_TRUE(holds_nothing(order)) << testing::describe(order);
  const sku::State state = sku_state("sku-1");
  EXPECT_EQ(state.on_hand, 5);
  EXPECT_EQ(state.reserved, 0);
}

// ---------------------------------------------------------------------------------------------
// Backpressure: a bounded number of unacknowledged commands; nothing dropped.

class RuntimeBackpressureTest : public RuntimeTest {
 protected:
  void SetUp() override {
    open([](Options& options) { options.max_in_flight = 4; });
  }
};

TEST_F(RuntimeBackpressureTest, ManySendersAllGetExactlyOneAckAndSubmitWaits) {
  constexpr std::size_t kSkus = 16;
  constexpr std::int64_t kStockPerSku = 1'000;
  constexpr std::size_t kCommands = 50'000;
  constexpr std::size_t kThreads = 4;
  for (std::size_t j = 0; j < kSkus; ++j) stock("bp-" + std::to_string(j), kStockPerSku);

  std::vector<std::atomic<std::uint8_t>> acks_per_command(kCommands);
  std::atomic<std::uint64_t> acks{0}, reserved{0}, insufficient{0}, other{0}, refused{0};
  std::atomic<std::uint64_t> in_flight_max{0};
  const auto start = Clock::now();
  std::vector<std::thread> senders;
  for (std::size_t t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (std::size_t i = t; i < kCommands; i += kThreads) {
        Status status = runtime_->submit(
            InventoryCommand{testing::reserve("bo-" + std::to_string(i), "bp-" + std::to_string(i % kSkus), 1)},
            [&, i](const Ack& ack) {
              acks_per_command[i].fetch_add(1);
              if (ack.status && ack.stock_reply && ack.stock_reply->status() == v1::StockReply::RESERVED) {
                reserved.fetch_add(1);
              } else if (ack.status && ack.stock_reply &&
                         ack.stock_reply->status() == v1::StockReply::INSUFFICIENT) {
                insufficient.fetch_add(1);
              } else {
                other.fetch_add(1);
              }
              acks.fetch_add(1);
            },
            Admission::kWait);
        if (!status) refused.fetch_add(1);
        if (i % 256 == t) {
          const std::uint64_t now = runtime_->stats().in_flight;
          std::uint64_t seen = in_flight_max.load();
          while (now > seen && !in_flight_max.compare_exchange_weak(seen, now)) {
          }
        }
      }
    });
  }
  for (auto& sender : senders) sender.join();
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (acks.load() < kCommands - refused.load() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("[   TIME   ] 50,000 commands with max_in_flight 4: %.2f s\n", seconds);
  RecordProperty("max_in_flight 4, 50k commands s", std::to_string(seconds));

  EXPECT_EQ(refused.load(), 0u);
  ASSERT_EQ(acks.load(), kCommands);
  std::size_t not_once = 0;
  for (std::size_t i = 0; i < kCommands; ++i) not_once += acks_per_command[i].load() != 1;
  EXPECT_EQ(not_once, 0u);
  EXPECT_EQ(reserved.load(), kSkus * kStockPerSku);
  EXPECT_EQ(insufficient.load(), kCommands - kSkus * kStockPerSku);
  EXPECT_EQ(other.load(), 0u);
  EXPECT_LE(in_flight_max.load(), 4u);
  const Stats stats = runtime_->stats();
  EXPECT_GT(stats.submit_waits, 0u);
  EXPECT_EQ(stats.in_flight, 0u);
  for (std::size_t j = 0; j < kSkus; ++j) {
    const sku::State state = sku_state("bp-" + std::to_string(j));
    EXPECT_EQ(state.reserved, kStockPerSku);
    EXPECT_EQ(state.available(), 0);
  }
}

TEST_F(RuntimeBackpressureTest, TryAnswersBusyWithoutCreditAndNeverAcksWhatItRefused) {
  stock("try-sku", 1'000'000);
  constexpr std::size_t kAttempts = 20'000;
  std::vector<std::atomic<std::uint8_t>> acks_per_attempt(kAttempts);
  std::vector<std::uint8_t> accepted(kAttempts, 0);
  std::atomic<std::uint64_t> acks{0};
  std::size_t busy = 0, accepted_count = 0, other_refusals = 0;
  std::uint64_t in_flight_max = 0;
  for (std::size_t i = 0; i < kAttempts; ++i) {
    Status status = runtime_->submit(
        InventoryCommand{testing::reserve("to-" + std::to_string(i), "try-sku", 1)},
        [&, i](const Ack&) {
          acks_per_attempt[i].fetch_add(1);
          acks.fetch_add(1);
        },
        Admission::kTry);
    if (status) {
      accepted[i] = 1;
      ++accepted_count;
    } else if (status.code() == storage::StatusCode::kBusy) {
      ++busy;
    } else {
      ++other_refusals;
    }
    if (i % 64 == 0) in_flight_max = std::max(in_flight_max, runtime_->stats().in_flight);
    // Bursts of 100, with a pause for acks to return credit: both answers occur.
    if (i % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (acks.load() < accepted_count && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("[   INFO   ] kTry: %zu accepted, %zu busy of %zu\n", accepted_count, busy, kAttempts);
  EXPECT_GT(busy, 0u) << "20,000 back-to-back kTry submits never found the 4 credits taken";
  EXPECT_GT(accepted_count, 4u) << "credit never came back between bursts";
  EXPECT_EQ(other_refusals, 0u);
  EXPECT_LE(in_flight_max, 4u);
  ASSERT_EQ(acks.load(), accepted_count);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kAttempts; ++i) wrong += acks_per_attempt[i].load() != accepted[i];
  EXPECT_EQ(wrong, 0u) << "an accepted command not acked once, or a refused one acked";
  EXPECT_TRUE(runtime_->wait_quiet(std::chrono::seconds(10)));
  EXPECT_EQ(sku_state("try-sku").reserved, static_cast<std::int64_t>(accepted_count));
}

// ---------------------------------------------------------------------------------------------
// Admission by open orders: kTry placements wait while max_open_orders are open; what closes
// orders (cancels, replies) is never held back.

class RuntimeOpenOrdersTest : public RuntimeTest {
 protected:
  static constexpr std::size_t kMax = 3;
  static void bounded(Options& options) {
    options.max_open_orders = kMax;
    // Silent payments must keep their orders open for the whole test, on a loaded machine.
    options.order_policy.default_deadline_ms = 600'000;
    options.order_policy.authorize_timeout_ms = 600'000;
  }
  void SetUp() override { open(bounded); }
  // Places with kTry; the status submit() answered (the ack, if any, is awaited).
  Status try_place(const std::string& order_id, std::string token = "tok_silent") {
    std::promise<Ack> acked;
    Status status = runtime_->submit(OrderCommand{testing::place_order(order_id, {{"oo-sku", 1}}, std::move(token))},
                                     [&](const Ack& ack) { acked.set_value(ack); }, Admission::kTry);
    if (status) {
      auto future = acked.get_future();
      EXPECT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready) << order_id;
      if (future.valid()) {
        EXPECT_FALSE(future.get().rejection) << order_id;
      }
    }
    return status;
  }
};

TEST_F(RuntimeOpenOrdersTest, PlacementsWaitAtTheBoundAndResumeWhenAnOrderEnds) {
  stock("oo-sku", 100);
  // tok_silent: the payment service never answers, so each order stays open (until its
  // step deadline, set far beyond this test's length).
  for (std::size_t i = 0; i < kMax; ++i) {
    ASSERT_TRUE(try_place("oo-" + std::to_string(i))) << i;
  }
  EXPECT_EQ(runtime_->stats().open_orders, kMax);
  EXPECT_FALSE(runtime_->placements_admissible());

  Status refused = try_place("oo-extra");
  EXPECT_EQ(refused.code(), storage::StatusCode::kBusy) << refused.to_string();
  EXPECT_EQ(runtime_->stats().placements_refused, 1u);
  // A redelivered PlaceOrder of an open order is a placement too: it waits as well.
  EXPECT_EQ(try_place("oo-0").code(), storage::StatusCode::kBusy);
  // Inventory and stock still flow.
  stock("oo-other", 5);

  // A cancel is what frees room, so it is admitted at the bound, and with kTry.
  std::promise<Ack> cancelled;
  ASSERT_TRUE(runtime_->submit(OrderCommand{testing::cancel_order("oo-1")},
                               [&](const Ack& ack) { cancelled.set_value(ack); }, Admission::kTry));
  auto cancel_ack = cancelled.get_future();
  ASSERT_EQ(cancel_ack.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_FALSE(cancel_ack.get().rejection);
  // The order runs its compensations (void the pending authorization, release the stock)
  // and ends CANCELLED; then it no longer counts.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!runtime_->placements_admissible() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(runtime_->placements_admissible()) << "open orders " << runtime_->stats().open_orders;
  EXPECT_EQ(order_state("oo-1").state, v1::CANCELLED);
  EXPECT_TRUE(try_place("oo-extra")) << "room came back but the placement was refused";
  EXPECT_EQ(runtime_->stats().open_orders, kMax);

  // kWait placements are not bounded by it (the option bounds what the Kafka ingress takes).
  Ack waited = ack_of(OrderCommand{testing::place_order("oo-wait", {{"oo-sku", 1}}, "tok_silent")});
  EXPECT_TRUE(waited.status);
  EXPECT_EQ(runtime_->stats().open_orders, kMax + 1);

  // An order the saga rejects (not enough stock) is open until its SKU answered, then it
  // takes no room.
  Ack rejected = ack_of(OrderCommand{testing::place_order("oo-big", {{"oo-other", 50}})});
  EXPECT_TRUE(rejected.status);
  ASSERT_TRUE(participants_.wait_for_outcomes(2, std::chrono::seconds(30)));  // oo-1 and oo-big
  EXPECT_EQ(order_state("oo-big").state, v1::REJECTED);
  EXPECT_EQ(runtime_->stats().open_orders, kMax + 1);

  // The count is the journal's open orders: it survives a restart.
  close();
  ASSERT_NO_FATAL_FAILURE(open(bounded));
  EXPECT_EQ(runtime_->stats().open_orders_recovered, kMax + 1);
  EXPECT_EQ(runtime_->stats().open_orders, kMax + 1);
  EXPECT_FALSE(runtime_->placements_admissible());
  for (const char* id : {"oo-0", "oo-2", "oo-extra", "oo-wait"}) {
    ASSERT_TRUE(ack_of(OrderCommand{testing::cancel_order(id)}).status) << id;
  }
  const auto drained = Clock::now() + std::chrono::seconds(30);
  while (runtime_->stats().open_orders > 0 && Clock::now() < drained) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(runtime_->stats().open_orders, 0u);
  EXPECT_TRUE(runtime_->placements_admissible(kMax));
}

// ---------------------------------------------------------------------------------------------
// The pipelined relay: hand-offs confirmed later, on another thread, some of them failing.

// Hands entries to the test participants from a thread of its own, after the relay's call
// returned; every third hand-off fails without delivering anything (a broker that lost it).
class AsyncFlakyEgress final : public Egress {
 public:
  explicit AsyncFlakyEgress(TestParticipants& inner) : inner_(inner), worker_([this] { run(); }) {}
  ~AsyncFlakyEgress() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  bool publish(ShardId shard, const std::vector<storage::OutboxEntry>& entries) override {
    return inner_.publish(shard, entries);
  }
  void publish_async(ShardId shard, const std::vector<storage::OutboxEntry>& entries,
                     std::function<void(bool)> done) override {
    std::lock_guard lock(mu_);
    jobs_.push_back(Job{shard, entries, std::move(done), calls_++ % 3 == 1});
    pending_max_ = std::max(pending_max_, jobs_.size());
    cv_.notify_all();
  }
  std::size_t pending_max() const {
    std::lock_guard lock(mu_);
    return pending_max_;
  }
  std::uint64_t failed() const { return failed_.load(); }

 private:
  struct Job {
    ShardId shard;
    std::vector<storage::OutboxEntry> entries;
    std::function<void(bool)> done;
    bool fail;
  };
  void run() {
    while (true) {
      Job job;
      {
        std::unique_lock lock(mu_);
        // Let hand-offs pile up a little, so the relay has several unconfirmed.
        cv_.wait_for(lock, std::chrono::milliseconds(3), [&] { return stop_; });
        if (jobs_.empty()) {
          if (stop_) return;
          continue;
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (job.fail) {
        failed_.fetch_add(1);
        job.done(false);
      } else {
        job.done(inner_.publish(job.shard, job.entries));
      }
    }
  }
  TestParticipants& inner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::uint64_t calls_ = 0;
  std::size_t pending_max_ = 0;
  bool stop_ = false;
  std::atomic<std::uint64_t> failed_{0};
  std::thread worker_;
};

TEST(RuntimeRelay, FailedHandOffsAreOfferedAgainAndEveryOrderCompletes) {
  TempDir dir;
  TestParticipants participants;
  AsyncFlakyEgress egress(participants);
  Options options;
  options.data_dir = dir.sub("data");
  options.shards = 2;
  options.egress = &egress;
  options.relay_window = 4;
  auto opened = Runtime::open(options);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<Runtime> runtime = std::move(*opened);
  participants.attach(runtime.get());

  ASSERT_TRUE(testing::submit_and_wait(*runtime, InventoryCommand{testing::receive_stock("rl-sku", 1000, "r-rl")}));
  constexpr int kOrders = 60;
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = "rl-" + std::to_string(i);
    // Every fourth payment is declined: those orders also send voids and releases.
    auto ack = testing::submit_and_wait(
        *runtime, OrderCommand{testing::place_order(id, {{"rl-sku", 1}}, i % 4 == 3 ? "tok_decline" : "tok_visa")});
    ASSERT_TRUE(ack && ack->status) << id;
  }
  ASSERT_TRUE(participants.wait_for_outcomes(kOrders, std::chrono::seconds(60)))
      << participants.orders_with_outcome() << " of " << kOrders;
  ASSERT_TRUE(runtime->wait_quiet(std::chrono::seconds(10)));

  const auto outcomes = participants.outcomes();
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = "rl-" + std::to_string(i);
    ASSERT_TRUE(outcomes.contains(id)) << id;
    EXPECT_EQ(outcomes.at(id).front().state(), i % 4 == 3 ? v1::CANCELLED : v1::FULFILLED) << id;
  }
  EXPECT_GT(egress.failed(), 0u) << "no hand-off failed: the test did not exercise the resend";
  EXPECT_GT(egress.pending_max(), 1u) << "the relay never had two hand-offs unconfirmed";
  EXPECT_LE(egress.pending_max(), 2u * options.relay_window) << "more unconfirmed than two relays' windows";
  const auto counts = participants.counts();
  EXPECT_EQ(counts.undecodable, 0u);
  // Declined orders' voids and every order's stock: nothing held at the end.
  const auto sku = runtime->sku("rl-sku");
  ASSERT_TRUE(sku.is_ok() && sku->has_value());
  EXPECT_EQ((*sku)->reserved, 0);
  EXPECT_EQ((*sku)->on_hand, 1000 - 3 * kOrders / 4);
  // Once everything is confirmed, every shard's outbox is marked sent to its end.
  const auto all_sent = [&] {
    for (storage::ShardId shard : runtime->journal().shards()) {
      auto cursor = runtime->journal().outbox_cursor(shard);
      auto unsent = runtime->journal().outbox_read(shard, cursor.is_ok() ? *cursor : storage::OutboxPosition{}, 1);
      if (!cursor.is_ok() || !unsent.is_ok() || !unsent->empty()) return false;
    }
    return true;
  };
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!all_sent() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(all_sent()) << "a confirmed hand-off was not marked sent";
  participants.detach();
  runtime.reset();
}

// ---------------------------------------------------------------------------------------------
// Reopen.

TEST_F(RuntimeTest, ReopenKeepsStateAndItsShardCount) {
  stock("sku-1", 10);
  const v1::OrderOutcome outcome = place_and_wait(testing::place_order("o-1", {{"sku-1", 4}}));
  EXPECT_EQ(outcome.state(), v1::FULFILLED);
  const sku::State sku_before = sku_state("sku-1");
  const order::State order_before = order_state("o-1");
  close();

  Options other;
  other.data_dir = dir_.sub("data");
  other.shards = 4;
  {
    // runtime.h: "an existing data dir keeps its own count (and refuses a different one)".
    // Either reading is accepted here, refusing to open or opening with the dir's own 8;
    // serving it as 4 shards would move entities.
    auto other_open = Runtime::open(other);
    if (other_open.is_ok()) {
      EXPECT_EQ((*other_open)->shard_count(), 8u) << "an 8-shard data dir served as 4 shards";
      std::printf("[   INFO   ] opening the 8-shard dir with shards = 4 kept its 8 shards (not refused)\n");
    }
  }

  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_EQ(runtime_->shard_count(), 8u);
  EXPECT_EQ(sku_state("sku-1"), sku_before);
  EXPECT_EQ(order_state("o-1"), order_before);
  EXPECT_TRUE(runtime_->wait_quiet(std::chrono::seconds(10)));
  EXPECT_EQ(participants_.outcome_messages(), 1u) << "the reopened runtime published the outcome again";
  // After a clean close nothing handed off is offered again (only a crash may forget a mark).
  EXPECT_EQ(participants_.counts().reoffered_after_true, 0u);
}

}  // namespace
}  // namespace ffe::runtime
