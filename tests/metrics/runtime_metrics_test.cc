// The runtime's collector (adapters/metrics/runtime_metrics.h) on a real runtime: every
// family is there, values follow Runtime::stats() and the journal, and the text passes
// promtool when it is installed.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "adapters/metrics/runtime_metrics.h"
#include "storage/journal.h"
#include "tests/metrics/promtool.h"
#include "tests/runtime/runtime_test_support.h"

namespace ffe::metrics {
namespace {

using runtime::testing::TempDir;

// "name{labels}" -> value, for every sample line of a /metrics text.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(RuntimeMetrics, ExportsRuntimeAndJournalStatsAtScrapeTime) {
  TempDir dir;
  runtime::Options options;
  options.data_dir = dir.sub("data");
  options.shards = 4;
  auto opened = runtime::Runtime::open(options);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<runtime::Runtime> rt = std::move(*opened);

  Registry registry;
  Registration registration = register_runtime_metrics(registry, *rt);

  auto before = samples(registry.render());
  EXPECT_EQ(before["ffe_commands_total"], 0);
  EXPECT_EQ(before["ffe_shards"], 4);
  EXPECT_EQ(before["ffe_journal_up"], 1);

  for (int i = 0; i < 3; ++i) {
    auto ack = runtime::testing::submit_and_wait(
        *rt, runtime::testing::receive_stock("sku-1", 10, "r-" + std::to_string(i)));
    ASSERT_TRUE(ack && ack->status.is_ok());
  }
  // A duplicate receipt: decided (a command), no new revision.
  ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::testing::receive_stock("sku-1", 10, "r-0")));
  ASSERT_TRUE(rt->wait_quiet(std::chrono::seconds(10)));

  const std::string text = registry.render();
  auto after = samples(text);
  const runtime::Stats stats = rt->stats();
  const storage::JournalStats js = rt->journal().stats();
  EXPECT_EQ(after["ffe_commands_total"], static_cast<double>(stats.commands));
  EXPECT_GE(after["ffe_commands_total"], 4);
  EXPECT_EQ(after["ffe_actors_live"], static_cast<double>(stats.live_entities));
  EXPECT_EQ(after["ffe_actors_spawned_total"], static_cast<double>(stats.spawned));
  EXPECT_EQ(after["ffe_journal_commands_total"], static_cast<double>(js.commands));
  EXPECT_EQ(after["ffe_journal_noop_commands_total"], static_cast<double>(js.noop_commands));
  EXPECT_EQ(after["ffe_journal_batches_total"], static_cast<double>(js.batches));
  EXPECT_GT(after["ffe_journal_written_bytes_total"], 0);
  EXPECT_EQ(after["ffe_commands_in_flight"], 0);

  const storage::ShardId shard = rt->shard_of("sku-1");
  const std::string revision_key = "ffe_shard_revision{shard=\"" + std::to_string(shard.value) + "\"}";
  ASSERT_TRUE(after.count(revision_key)) << text;
  EXPECT_EQ(after[revision_key], 3);  // three receipts, the duplicate added none
  for (std::uint32_t s = 0; s < 4; ++s) {
    EXPECT_TRUE(after.count("ffe_shard_revision{shard=\"" + std::to_string(s) + "\"}")) << text;
    EXPECT_EQ(after["ffe_shard_compacted_revision{shard=\"" + std::to_string(s) + "\"}"], 0) << text;
  }

  // Every counter family ends in _total, every family has HELP and TYPE.
  for (const char* family :
       {"ffe_actors_live", "ffe_actors_spawned_total", "ffe_actors_restored_total", "ffe_actors_passivated_total",
        "ffe_actor_failures_total", "ffe_commands_total", "ffe_commands_rejected_total", "ffe_commands_in_flight",
        "ffe_submit_waits_total", "ffe_late_replies_total", "ffe_redelivered_commands_total", "ffe_unexpected_releases_total",
        "ffe_deadlines_expired_total", "ffe_saga_retries_total", "ffe_timers_armed_total", "ffe_timers_fired_total",
        "ffe_timers_dropped_total", "ffe_open_orders_recovered", "ffe_open_orders",
        "ffe_placements_deferred_total", "ffe_journal_up",
        "ffe_journal_commands_total", "ffe_journal_noop_commands_total", "ffe_journal_batches_total",
        "ffe_journal_written_bytes_total", "ffe_journal_snapshots_made_total",
        "ffe_journal_snapshot_written_bytes_total", "ffe_journal_snapshots_given_total",
        "ffe_journal_snapshot_tracked_entities", "ffe_shards", "ffe_shard_revision",
        "ffe_shard_compacted_revision"}) {
    EXPECT_NE(text.find(std::string("# HELP ") + family + " "), std::string::npos) << family;
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }

  if (testing::promtool_available()) {
    const testing::PromtoolResult lint = testing::promtool_check(text);
    EXPECT_EQ(lint.exit_code, 0) << lint.output << "\n" << text;
  }

  // Unregistered before the runtime goes: the registry no longer reads it.
  registration.reset();
  rt.reset();
  EXPECT_EQ(registry.render(), "");
}

// The runtime's Observer as metrics: terminal orders by state, saga step durations, commit
// latency and group-commit size, on a real runtime with the in-process participants.
TEST(RuntimeMetrics, ObserverCountsOutcomesStepsAndCommits) {
  TempDir dir;
  Registry registry;
  RuntimeObserver observer(registry);
  // Registered at zero before anything happens (dashboards find them at once).
  auto empty = samples(registry.render());
  EXPECT_EQ(empty.at("ffe_orders_terminal_total{state=\"FULFILLED\"}"), 0);
  EXPECT_EQ(empty.at("ffe_saga_step_duration_seconds_count{step=\"RESERVE_STOCK\"}"), 0);
  EXPECT_EQ(empty.at("ffe_journal_commit_duration_seconds_count"), 0);

  runtime::testing::TestParticipants participants;
  runtime::Options options;
  options.data_dir = dir.sub("data");
  options.shards = 2;
  options.egress = &participants;
  options.observer = &observer;
  auto opened = runtime::Runtime::open(options);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<runtime::Runtime> rt = std::move(*opened);
  participants.attach(rt.get());

  ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::testing::receive_stock("sku-1", 10, "r-1")));
  ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::OrderCommand{runtime::testing::place_order("o-1", {{"sku-1", 1}})}));
  ASSERT_TRUE(runtime::testing::submit_and_wait(
      *rt, runtime::OrderCommand{runtime::testing::place_order("o-2", {{"sku-1", 1}}, "tok_decline")}));
  ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::OrderCommand{runtime::testing::place_order("o-3", {{"sku-1", 99}})}));
  ASSERT_TRUE(participants.wait_for_outcomes(3, std::chrono::seconds(30)));
  ASSERT_TRUE(rt->wait_quiet(std::chrono::seconds(10)));
  // A late reply to a terminal order changes nothing, so it counts nothing.
  v1::PaymentReply late;
  late.set_command_id(saga::authorize_command_id("o-1"));
  late.set_order_id("o-1");
  late.set_status(v1::PaymentReply::APPROVED);
  ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::OrderCommand{late}));
  ASSERT_TRUE(rt->wait_quiet(std::chrono::seconds(10)));

  std::map<std::string, int> by_state;
  for (const auto& [id, outcomes] : participants.outcomes()) ++by_state[v1::OrderState_Name(outcomes.front().state())];
  const std::string text = registry.render();
  auto after = samples(text);
  for (const char* state : {"FULFILLED", "CANCELLED", "REJECTED"}) {
    EXPECT_EQ(after.at("ffe_orders_terminal_total{state=\"" + std::string(state) + "\"}"), by_state[state]) << state;
  }
  EXPECT_EQ(by_state["FULFILLED"], 1);
  // o-1 reserved, authorized, shipped and committed; o-2 reserved then was refused payment.
  EXPECT_EQ(after.at("ffe_saga_step_duration_seconds_count{step=\"RESERVE_STOCK\"}"), 3);
  EXPECT_EQ(after.at("ffe_saga_step_duration_seconds_count{step=\"AUTHORIZE_PAYMENT\"}"), 2);
  EXPECT_EQ(after.at("ffe_saga_step_duration_seconds_count{step=\"CREATE_SHIPMENT\"}"), 1);
  EXPECT_EQ(after.at("ffe_saga_step_duration_seconds_count{step=\"COMMIT_STOCK\"}"), 1);
  const storage::JournalStats js = rt->journal().stats();
  EXPECT_EQ(after.at("ffe_journal_commit_duration_seconds_count"), static_cast<double>(js.batches));
  EXPECT_EQ(after.at("ffe_journal_batch_commands_count"), static_cast<double>(js.batches));
  EXPECT_EQ(after.at("ffe_journal_batch_commands_sum"), static_cast<double>(js.commands));
  EXPECT_GT(after.at("ffe_journal_commit_duration_seconds_sum"), 0);
  if (testing::promtool_available()) {
    const testing::PromtoolResult lint = testing::promtool_check(text);
    EXPECT_EQ(lint.exit_code, 0) << lint.output << "\n" << text;
  }
  participants.detach();
  rt.reset();
}

}  // namespace
}  // namespace ffe::metrics
