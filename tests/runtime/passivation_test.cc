// Passivation changes nothing a user can see: the same deterministic workload, run once with
// every actor kept alive and once with actors stopped after 1 ms idle and at most 50 live per
// shard (so most commands restore their entity from snapshot + events), ends in equal SKU
// and order states.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "tests/runtime/runtime_test_support.h"

namespace ffe::runtime {
namespace {

using testing::TempDir;
using testing::TestParticipants;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kSkus = 2'000;
constexpr std::size_t kOrders = 3'000;
constexpr std::uint64_t kSeed = 77;

std::string sku_name(std::size_t j) { return "ps-" + std::to_string(j); }
std::string order_name(std::size_t i) { return "po-" + std::to_string(i); }

// The outcome each order must reach, whatever the timing: stock is ample, so only the
// token and the country decide.
v1::OrderState expected_state(std::size_t i) {
  if (i % 10 == 0) return v1::CANCELLED;  // tok_decline
  if (i % 10 == 1) return v1::CANCELLED;  // country XX
  return v1::FULFILLED;
}

std::vector<v1::PlaceOrder> make_orders() {
  std::mt19937_64 rng(kSeed);
  std::vector<v1::PlaceOrder> orders;
  for (std::size_t i = 0; i < kOrders; ++i) {
    const std::size_t lines = 1 + rng() % 3;
    std::set<std::size_t> picked;
    while (picked.size() < lines) picked.insert(rng() % kSkus);
    std::vector<testing::LineSpec> specs;
    for (std::size_t j : picked) specs.push_back({sku_name(j), static_cast<std::int64_t>(1 + rng() % 3)});
    const std::string token = i % 10 == 0 ? "tok_decline" : "tok_visa";
    const std::string country = i % 10 == 1 ? "XX" : "US";
    orders.push_back(testing::place_order(order_name(i), specs, token, country));
  }
  return orders;
}

// What the comparison looks at: the canonical state with wall-clock fields zeroed (the two
// runs accept orders at different times) and the SKU's windows sorted (their order is the
// order concurrent orders happened to close in, which no user relies on).
struct Snapshot {
  std::map<std::string, sku::State> skus;
  std::map<std::string, order::State> orders;
  std::map<std::string, v1::OrderState> outcomes;
  std::map<std::string, std::size_t> outcome_counts;
  Stats stats;
  std::vector<std::string> problems;
};

sku::State normalized(sku::State state) {
  std::sort(state.closed.begin(), state.closed.end(),
            [](const sku::ClosedReservation& a, const sku::ClosedReservation& b) { return a.order_id < b.order_id; });
  std::sort(state.recent_receipt_ids.begin(), state.recent_receipt_ids.end());
  std::sort(state.recent_adjustment_ids.begin(), state.recent_adjustment_ids.end());
  return state;
}

order::State normalized(order::State state) {
  state.accepted_at_ms = 0;
  state.deadline_at_ms = 0;
  state.step_deadline_at_ms = 0;
  state.completed_at_ms = 0;
  return state;
}

// Submits every command of a phase from `threads` threads and waits for every ack.
template <class Command>
void run_phase(Runtime& runtime, const std::vector<Command>& commands, std::size_t threads, const std::string& name,
               std::vector<std::string>& problems) {
  std::atomic<std::uint64_t> acks{0}, not_ok{0}, refused{0};
  std::vector<std::thread> senders;
  for (std::size_t t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      for (std::size_t i = t; i < commands.size(); i += threads) {
        Status status = runtime.submit(commands[i], [&](const Ack& ack) {
          if (!ack.status) not_ok.fetch_add(1);
          acks.fetch_add(1);
        });
        if (!status) refused.fetch_add(1);
      }
    });
  }
  for (auto& sender : senders) sender.join();
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (acks.load() + refused.load() < commands.size() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (acks.load() != commands.size()) {
    problems.push_back(name + ": " + std::to_string(acks.load()) + " of " + std::to_string(commands.size()) + " acked");
  }
  if (not_ok.load() != 0 || refused.load() != 0) {
    problems.push_back(name + ": " + std::to_string(not_ok.load()) + " acks not OK, " +
                       std::to_string(refused.load()) + " submits refused");
  }
}

Snapshot run_workload(std::chrono::milliseconds passivate_after, std::size_t max_live_entities,
                      bool check_rebuild) {
  Snapshot out;
  TempDir dir;
  TestParticipants participants;
  Options options;
  options.data_dir = dir.sub("data");
  options.egress = &participants;
  options.passivate_after = passivate_after;
  options.max_live_entities = max_live_entities;
  // No step may time out, however slow the machine: timing must not decide any outcome.
  options.order_policy.default_deadline_ms = 3'600'000;
  options.order_policy.reserve_timeout_ms = 3'600'000;
  options.order_policy.authorize_timeout_ms = 3'600'000;
  options.order_policy.ship_timeout_ms = 3'600'000;
  auto opened = Runtime::open(options);
  if (!opened) {
    out.problems.push_back("open: " + opened.status().to_string());
    return out;
  }
  std::unique_ptr<Runtime> runtime = std::move(*opened);
  participants.attach(runtime.get());
  const std::uint32_t shards = runtime->shard_count();

  // Phase 1: two receipts per SKU. Phase 2: adjustments while nothing is reserved (so none
  // can be refused for what an open order holds).
  std::vector<InventoryCommand> receipts, adjustments;
  for (std::size_t j = 0; j < kSkus; ++j) {
    receipts.push_back(testing::receive_stock(sku_name(j), 60, "ra-" + std::to_string(j)));
    receipts.push_back(testing::receive_stock(sku_name(j), 40, "rb-" + std::to_string(j)));
    adjustments.push_back(testing::adjust_stock(sku_name(j), j % 3 == 0 ? -5 : 7, "a1-" + std::to_string(j)));
  }
  run_phase(*runtime, receipts, 2, "receipts", out.problems);
  run_phase(*runtime, adjustments, 2, "adjustments", out.problems);

  // Phase 3: the orders, through the saga, until every one is terminal.
  std::vector<OrderCommand> orders;
  for (auto& place : make_orders()) orders.push_back(std::move(place));
  run_phase(*runtime, orders, 4, "orders", out.problems);
  if (!participants.wait_for_outcomes(kOrders, std::chrono::seconds(300))) {
    out.problems.push_back("only " + std::to_string(participants.orders_with_outcome()) + " of " +
                           std::to_string(kOrders) + " orders terminal within 300 s");
  }
  runtime->wait_quiet(std::chrono::seconds(60));
  // Let idle actors passivate before phase 4, so it restores them.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  // Phase 4: more receipts, repeated receipts (no-ops), adjustments, and cancels of orders
  // that are already terminal (they change nothing).
  std::vector<InventoryCommand> later;
  for (std::size_t j = 0; j < kSkus; ++j) {
    if (j % 2 == 0) later.push_back(testing::receive_stock(sku_name(j), 5, "rc-" + std::to_string(j)));
    if (j % 5 == 0) later.push_back(testing::receive_stock(sku_name(j), 60, "ra-" + std::to_string(j)));
    if (j % 4 == 0) later.push_back(testing::adjust_stock(sku_name(j), -1, "a2-" + std::to_string(j)));
  }
  run_phase(*runtime, later, 2, "later inventory", out.problems);
  std::vector<OrderCommand> cancels;
  for (std::size_t i = 0; i < kOrders; i += 7) cancels.push_back(testing::cancel_order(order_name(i)));
  run_phase(*runtime, cancels, 2, "cancels after terminal", out.problems);
  if (!runtime->wait_quiet(std::chrono::seconds(60))) out.problems.push_back("not quiet within 60 s");

  for (std::size_t j = 0; j < kSkus; ++j) {
    auto state = runtime->sku(sku_name(j));
    if (!state || !state->has_value()) {
      out.problems.push_back(sku_name(j) + ": not found");
      continue;
    }
    out.skus[sku_name(j)] = normalized(**state);
  }
  for (std::size_t i = 0; i < kOrders; ++i) {
    auto state = runtime->order(order_name(i));
    if (!state || !state->has_value()) {
      out.problems.push_back(order_name(i) + ": not found");
      continue;
    }
    out.orders[order_name(i)] = normalized(**state);
  }
  for (const auto& [id, outcomes] : participants.outcomes()) {
    out.outcomes[id] = outcomes.front().state();
    out.outcome_counts[id] = outcomes.size();
  }
  out.stats = runtime->stats();
  participants.detach();
  runtime.reset();

  if (check_rebuild) {
    testing::RebuildReport report = testing::rebuild_from_journal(options.data_dir, shards);
    for (std::size_t i = 0; i < std::min<std::size_t>(report.failures.size(), 20); ++i) {
      out.problems.push_back("rebuild: " + report.failures[i]);
    }
    if (report.failures.size() > 20) out.problems.push_back("rebuild: ... and more");
  }
  return out;
}

void print_stats(const char* name, const Stats& stats) {
  std::printf("[   INFO   ] %s: commands %llu spawned %llu restored %llu passivated %llu live %llu "
              "retries %llu late replies %llu actor failures %llu\n",
              name, (unsigned long long)stats.commands, (unsigned long long)stats.spawned,
              (unsigned long long)stats.restored, (unsigned long long)stats.passivated,
              (unsigned long long)stats.live_entities, (unsigned long long)stats.retries,
              (unsigned long long)stats.late_replies, (unsigned long long)stats.actor_failures);
}

TEST(Passivation, SameResultsWithAndWithoutPassivation) {
  auto start = Clock::now();
  const Snapshot kept = run_workload(std::chrono::milliseconds(60'000), 100'000, true);
  const double kept_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();
  const Snapshot passivated = run_workload(std::chrono::milliseconds(1), 50, true);
  const double passivated_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("[   TIME   ] without passivation %.2f s, with passivation %.2f s\n", kept_seconds, passivated_seconds);
  RecordProperty("without passivation s", std::to_string(kept_seconds));
  RecordProperty("with passivation s", std::to_string(passivated_seconds));
  print_stats("without passivation", kept.stats);
  print_stats("with passivation", passivated.stats);

  for (const auto& problem : kept.problems) ADD_FAILURE() << "without passivation: " << problem;
  for (const auto& problem : passivated.problems) ADD_FAILURE() << "with passivation: " << problem;

  EXPECT_GT(passivated.stats.passivated, 0u);
  EXPECT_GT(passivated.stats.restored, 0u);
  EXPECT_EQ(passivated.stats.actor_failures, 0u);
  EXPECT_EQ(kept.stats.actor_failures, 0u);

  // Each run reaches the outcomes the tokens and countries decide, one outcome per order.
  for (const Snapshot* run : {&kept, &passivated}) {
    const char* name = run == &kept ? "without passivation" : "with passivation";
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < kOrders; ++i) {
      auto outcome = run->outcomes.find(order_name(i));
      auto order = run->orders.find(order_name(i));
      const bool ok = outcome != run->outcomes.end() && outcome->second == expected_state(i) &&
                      run->outcome_counts.at(order_name(i)) == 1 && order != run->orders.end() &&
                      order->second.state == expected_state(i);
      if (!ok && ++wrong <= 10) {
        ADD_FAILURE() << name << ": " << order_name(i) << " expected " << v1::OrderState_Name(expected_state(i))
                      << ", got "
                      << (order != run->orders.end() ? testing::describe(order->second) : std::string("no order"));
      }
    }
    EXPECT_EQ(wrong, 0u) << name;

    // Stock by arithmetic: every receipt once (the repeated "ra-" receipts of phase 4 are
    // no-ops, even on an entity restored from the journal), every adjustment, minus what
    // the fulfilled orders shipped; nothing left reserved.
    std::map<std::string, std::int64_t> shipped;
    for (const auto& [id, order] : run->orders) {
      if (order.state != v1::FULFILLED) continue;
      for (const order::Line& line : order.lines) shipped[line.sku] += line.qty;
    }
    wrong = 0;
    for (std::size_t j = 0; j < kSkus; ++j) {
      auto found = run->skus.find(sku_name(j));
      if (found == run->skus.end()) continue;  // reported as a problem already
      const sku::State& state = found->second;
      const std::int64_t expected_on_hand = 100 + (j % 3 == 0 ? -5 : 7) + (j % 2 == 0 ? 5 : 0) +
                                            (j % 4 == 0 ? -1 : 0) - shipped[sku_name(j)];
      if (state.on_hand != expected_on_hand || state.reserved != 0 ||
          state.shipped_total != shipped[sku_name(j)]) {
        if (++wrong <= 10) {
          ADD_FAILURE() << name << ": " << testing::describe(state) << "; expected on_hand " << expected_on_hand
                        << ", shipped " << shipped[sku_name(j)] << ", reserved 0";
        }
      }
    }
    EXPECT_EQ(wrong, 0u) << name;
  }

  // Equal states, entity by entity.
  ASSERT_EQ(kept.skus.size(), passivated.skus.size());
  std::size_t differing = 0;
  for (const auto& [id, state] : kept.skus) {
    auto other = passivated.skus.find(id);
    if (other == passivated.skus.end() || !(other->second == state)) {
      if (++differing <= 10) {
        ADD_FAILURE() << id << ": without passivation " << testing::describe(state) << "; with passivation "
                      << (other != passivated.skus.end() ? testing::describe(other->second) : std::string("missing"));
      }
    }
  }
  ASSERT_EQ(kept.orders.size(), passivated.orders.size());
  for (const auto& [id, state] : kept.orders) {
    auto other = passivated.orders.find(id);
    if (other == passivated.orders.end() || !(other->second == state)) {
      if (++differing <= 20) {
        ADD_FAILURE() << id << ": without passivation " << testing::describe(state) << "; with passivation "
                      << (other != passivated.orders.end() ? testing::describe(other->second) : std::string("missing"));
      }
    }
  }
  EXPECT_EQ(differing, 0u);
}

}  // namespace
}  // namespace ffe::runtime
