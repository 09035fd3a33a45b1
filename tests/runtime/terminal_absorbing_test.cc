// Invariant 4, "terminal is absorbing", as a property of the real runtime (CAF actors, the
// RocksDB journal, the in-process participants): for several seeds, a random mix of orders
// (fulfilled, declined, unshippable, cancelled) runs while a random stream of hostile input
// hits the same orders — late and repeated participant replies with the RIGHT command ids,
// replies that contradict the real ones, cancels, redelivered and altered PlaceOrders. Once
// everything is terminal the hostile stream goes on. Then, for every order with terminal
// revision R: no log record after R holds an event of that order, and its state as of every
// revision from R to the shard's current one is the same (with mod_revision R).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "actors/runtime/runtime.h"
#include "sagas/fulfillment.h"
#include "storage/journal.h"
#include "tests/runtime/runtime_test_support.h"

namespace ffe::runtime::testing {
namespace {

constexpr int kSeeds = 4;
constexpr int kOrders = 40;
constexpr int kHostilePerPhase = 300;
constexpr std::uint32_t kShards = 3;

std::string order_id(int i) { return "o-" + std::to_string(i); }

// One hostile command aimed at order `id`, chosen by `rng`.
OrderCommand hostile(std::mt19937_64& rng, const std::string& id) {
  switch (rng() % 9) {
    case 0: {  // the authorize answered APPROVED, late or again
      v1::PaymentReply reply;
      reply.set_command_id(saga::authorize_command_id(id));
      reply.set_order_id(id);
      reply.set_status(v1::PaymentReply::APPROVED);
      reply.set_payment_id("p-" + id);
      return reply;
    }
    case 1: {  // the authorize answered DECLINED (contradicting an approval)
      v1::PaymentReply reply;
      reply.set_command_id(saga::authorize_command_id(id));
      reply.set_order_id(id);
      reply.set_status(v1::PaymentReply::DECLINED);
      reply.set_reason("late decline");
      return reply;
    }
    case 2: {  // a void's answer
      v1::PaymentReply reply;
      reply.set_command_id(saga::void_command_id(id));
      reply.set_order_id(id);
      reply.set_status(v1::PaymentReply::APPROVED);
      return reply;
    }
    case 3: {  // the shipment created, late or again
      v1::ShipmentReply reply;
      reply.set_command_id(saga::ship_command_id(id));
      reply.set_order_id(id);
      reply.set_status(v1::ShipmentReply::CREATED);
      reply.set_shipment_id("s-" + id);
      return reply;
    }
    case 4: {  // the shipment failed (contradicting a creation)
      v1::ShipmentReply reply;
      reply.set_command_id(saga::ship_command_id(id));
      reply.set_order_id(id);
      reply.set_status(v1::ShipmentReply::FAILED);
      reply.set_reason("late failure");
      return reply;
    }
    case 5: {  // a cancel-shipment's answer
      v1::ShipmentReply reply;
      reply.set_command_id(saga::cancel_shipment_command_id(id));
      reply.set_order_id(id);
      reply.set_status(v1::ShipmentReply::CANCELLED);
      return reply;
    }
    case 6:
      return cancel_order(id, "hostile cancel");
    case 7:  // the same PlaceOrder redelivered
      return place_order(id, {{"sku-1", 1}});
    default:  // a PlaceOrder with the same id and different content
      return place_order(id, {{"sku-2", 3}, {"sku-3", 1}}, "tok_decline", "XX");
  }
}

class TerminalAbsorbing : public ::testing::TestWithParam<int> {};

TEST_P(TerminalAbsorbing, NoEventAfterTheTerminalRevisionWhateverArrives) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
  TempDir dir;
  TestParticipants participants;
  Options options;
  options.data_dir = dir.sub("data");
  options.shards = kShards;
  options.egress = &participants;
  auto opened = Runtime::open(options);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<Runtime> runtime = std::move(*opened);
  participants.attach(runtime.get());

  for (const char* sku : {"sku-1", "sku-2", "sku-3"}) {
    auto ack = submit_and_wait(*runtime, InventoryCommand{receive_stock(sku, 25, std::string("r-") + sku)});
    ASSERT_TRUE(ack && ack->status.is_ok());
  }

  // Phase 1: the orders, with hostile input for them interleaved while they run.
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = order_id(i);
    const int kind = static_cast<int>(rng() % 5);
    const std::string token = kind == 1 ? "tok_decline" : "tok_visa";
    const std::string country = kind == 2 ? "XX" : "US";
    // Enough demand that some orders find too little stock and are rejected.
    v1::PlaceOrder place = place_order(id, {{"sku-1", 1 + static_cast<std::int64_t>(rng() % 3)},
                                            {"sku-" + std::to_string(2 + rng() % 2), 1}},
                                       token, country);
    ASSERT_TRUE(runtime->submit(OrderCommand{place}, [](const Ack&) {}).is_ok());
    if (kind == 3) {
      ASSERT_TRUE(runtime->submit(OrderCommand{cancel_order(id)}, [](const Ack&) {}).is_ok());
    }
    for (int h = 0; h < kHostilePerPhase / kOrders; ++h) {
      const std::string target = order_id(static_cast<int>(rng() % (i + 1)));
      ASSERT_TRUE(runtime->submit(hostile(rng, target), [](const Ack&) {}).is_ok());
    }
  }
  ASSERT_TRUE(participants.wait_for_outcomes(kOrders, std::chrono::seconds(90)))
      << "seed " << seed << ": only " << participants.orders_with_outcome() << " orders reached an outcome";
  ASSERT_TRUE(runtime->wait_quiet(std::chrono::seconds(30)));

  // Every order is terminal now: note each one's terminal revision R.
  storage::Journal& journal = runtime->journal();
  std::map<std::string, storage::Revision> terminal;
  std::map<std::string, std::string> terminal_state;
  std::map<v1::OrderState, int> by_state;
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = order_id(i);
    auto state = runtime->order(id);
    ASSERT_TRUE(state.is_ok() && state->has_value()) << id;
    ASSERT_TRUE((*state)->terminal()) << "seed " << seed << ": " << id << " is " << describe(**state);
    ++by_state[(*state)->state];
    const ShardId shard = runtime->shard_of(id);
    auto current = journal.revision(shard);
    ASSERT_TRUE(current.is_ok());
    auto entity = journal.get(shard, order_key(id), *current);
    ASSERT_TRUE(entity.is_ok() && entity->has_value());
    terminal[id] = (*entity)->mod_revision;
    terminal_state[id] = (*entity)->state;
  }

  // The mix reached more than one terminal state (else the property is tested on too little).
  EXPECT_GT(by_state[v1::FULFILLED], 0) << "seed " << seed;
  EXPECT_GT(by_state[v1::CANCELLED] + by_state[v1::REJECTED], 0) << "seed " << seed;

  // Phase 2: hostile input only, after every order is terminal.
  for (int h = 0; h < kHostilePerPhase; ++h) {
    ASSERT_TRUE(runtime->submit(hostile(rng, order_id(static_cast<int>(rng() % kOrders))), [](const Ack&) {}).is_ok());
  }
  ASSERT_TRUE(runtime->wait_quiet(std::chrono::seconds(30)));

  for (const auto& [id, revision] : terminal) {
    const ShardId shard = runtime->shard_of(id);
    const std::string key = order_key(id);
    // (a) No log record after R holds an event of this order (the prefix also matches
    // "o-1" in "o-12": compare keys exactly).
    auto watch = journal.watch(shard, key, revision + 1);
    ASSERT_TRUE(watch.is_ok()) << watch.status().to_string();
    for (;;) {
      auto records = watch->next(1024);
      ASSERT_TRUE(records.is_ok()) << records.status().to_string();
      if (records->empty()) break;
      for (const storage::LogRecord& record : *records) {
        for (const storage::Event& event : record.events) {
          EXPECT_NE(event.entity_key, key) << "seed " << seed << ": " << id << " is terminal at revision "
                                           << revision << " but revision " << record.revision
                                           << " holds an event of it";
        }
      }
    }
    // (b) Its state is the same as of every revision from R to now, with mod_revision R.
    auto current = journal.revision(shard);
    ASSERT_TRUE(current.is_ok());
    for (storage::Revision at = revision; at <= *current; ++at) {
      auto entity = journal.get(shard, key, at);
      ASSERT_TRUE(entity.is_ok() && entity->has_value()) << id << " at " << at;
      EXPECT_EQ((*entity)->mod_revision, revision) << "seed " << seed << ": " << id << " at revision " << at;
      EXPECT_EQ((*entity)->state, terminal_state[id]) << "seed " << seed << ": " << id << " at revision " << at;
    }
  }
  // Exactly one outcome per order, whatever the hostile input did.
  for (const auto& [id, outcomes] : participants.outcomes()) {
    EXPECT_EQ(outcomes.size(), 1u) << "seed " << seed << ": " << id;
  }

  participants.detach();
  runtime.reset();
  // And the whole log, folded from scratch, agrees (the rebuild also checks invariant 4
  // event by event).
  const RebuildReport report = rebuild_from_journal(options.data_dir, kShards);
  EXPECT_TRUE(report.failures.empty()) << "seed " << seed << ": " << report.failures.front();
}

INSTANTIATE_TEST_SUITE_P(Seeds, TerminalAbsorbing, ::testing::Range(1, 1 + kSeeds));

}  // namespace
}  // namespace ffe::runtime::testing
