// The CDC pipeline (adapters/cdc/pipeline.h) over a real Runtime and Journal into a real
// SQLite database: the tables equal the engine's state at their checkpoint (drift clean),
// the checkpoint follows the journal, a restart that lost the journal cursor applies nothing
// twice (the sink's checkpoint guard; a trigger audit counts every write), the lag is on
// /metrics (promtool-clean), CDC's cursor holds compaction back, and a database written at
// schema version 1 is migrated and backfilled from state.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/folder.h"
#include "actors/runtime/retention.h"
#include "actors/runtime/runtime.h"
#include "adapters/cdc/drift.h"
#include "adapters/cdc/pipeline.h"
#include "adapters/metrics/metrics.h"
#include "tests/cdc/cdc_test_support.h"
#include "tests/metrics/promtool.h"
#include "tests/runtime/crash_support.h"
#include "tests/storage/test_support.h"

namespace ffe::cdc {
namespace {

using storage::ShardId;
using storage::testing::TempDir;
using namespace std::chrono_literals;

constexpr int kSkus = 6;

// A Runtime with in-process participants on a temp data dir; the analytics database lives
// beside the data dir.
struct Engine {
  explicit Engine(std::uint32_t shards = 2, std::string dir_path = {}) {
    data_dir = dir_path.empty() ? dir.sub("data") : std::move(dir_path);
    open(shards);
  }
  ~Engine() { close(); }
  void open(std::uint32_t shards) {
    runtime::Options options;
    options.data_dir = data_dir;
    options.shards = shards;
    options.scheduler_threads = 2;
    options.egress = &egress;
    auto opened = runtime::Runtime::open(std::move(options));
    if (!opened) ADD_FAILURE() << opened.status().to_string();
    rt = std::move(*opened);
    egress.attach(rt.get());
  }
  void close() {
    egress.detach();
    rt.reset();
  }
  // Places orders first..first+count-1 and waits until each is terminal.
  void place(int first, int count) {
    for (int n = first; n < first + count; ++n) {
      const std::string id = "o-" + std::to_string(n);
      ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::OrderCommand(testing::order_number(id, n, kSkus))));
    }
    for (int n = first; n < first + count; ++n) {
      auto state = runtime::testing::wait_order(
          *rt, "o-" + std::to_string(n), [](const order::State& s) { return s.terminal(); }, 20s);
      ASSERT_TRUE(state && state->terminal()) << "o-" << n;
    }
  }
  std::string analytics() const { return "sqlite:" + dir.sub("analytics.db"); }

  TempDir dir;
  std::string data_dir;
  runtime::testing::ParticipantEgress egress;
  std::unique_ptr<runtime::Runtime> rt;
};

std::unique_ptr<Sink> sink_at(const std::string& url, Migration* migration = nullptr, int version = kSchemaVersion) {
  auto sink = open_sink(url, migration, version);
  if (!sink) ADD_FAILURE() << url << ": " << sink.status().to_string();
  return sink ? std::move(*sink) : nullptr;
}

TEST(CdcPipeline, SqliteTablesFollowTheEngineAndDriftIsClean) {
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  Migration migration;
  auto sink = sink_at(engine.analytics(), &migration);
  ASSERT_TRUE(sink);
  EXPECT_EQ(migration.from_version, 0);  // created now
  PipelineOptions options;
  options.batch_revisions_max = 16;  // several batches per shard
  CdcPipeline pipeline(engine.rt->journal(), std::move(sink), migration, options);
  ASSERT_TRUE(pipeline.start());
  engine.place(0, 60);
  ASSERT_TRUE(engine.rt->wait_quiet(10s));
  ASSERT_TRUE(pipeline.wait_caught_up(20s));

  const PipelineStats stats = pipeline.stats();
  ASSERT_EQ(stats.shards.size(), 2u);
  std::uint64_t batches = 0;
  for (const ShardStats& shard : stats.shards) {
    auto head = engine.rt->journal().revision(ShardId{shard.shard});
    ASSERT_TRUE(head);
    EXPECT_EQ(shard.checkpoint, *head) << "shard " << shard.shard;
    EXPECT_EQ(shard.lag_revisions, 0u);
    EXPECT_EQ(shard.lag_seconds, 0.0);
    batches += shard.batches;
  }
  EXPECT_GT(batches, 2u);
  EXPECT_EQ(stats.errors, 0u) << stats.last_error;
  pipeline.stop();

  auto reader = sink_at(engine.analytics());
  ASSERT_TRUE(reader);
  std::uint64_t orders = 0;
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), *reader, &orders), "");
  EXPECT_EQ(orders, 60u);
  // The rows say what the engine says, read through the public API.
  auto checkpoints = reader->checkpoints();
  ASSERT_TRUE(checkpoints);
  for (std::uint32_t shard = 0; shard < 2; ++shard) {
    auto rows = reader->read_orders(shard);
    ASSERT_TRUE(rows);
    for (const OrderRow& row : *rows) {
      auto state = engine.rt->order(row.order_id);
      ASSERT_TRUE(state && *state) << row.order_id;
      EXPECT_EQ(row.state, v1::OrderState_Name((*state)->state)) << row.order_id;
      EXPECT_EQ(row.total_cents, (*state)->amount_cents);
      EXPECT_EQ(row.lines.size(), (*state)->lines.size());
      EXPECT_EQ(row.currency, "USD");
      EXPECT_LE(row.revision, checkpoints->at(shard));
      EXPECT_GT(row.updated_at_ms, 0);
    }
  }
}

// The guard itself: a batch applied twice (a crash after the sink's commit, before anything
// else) is refused the second time and changes nothing.
TEST(CdcPipeline, SinkRefusesABatchItAlreadyApplied) {
  TempDir dir;
  auto sink = sink_at("sqlite:" + dir.sub("analytics.db"));
  ASSERT_TRUE(sink);
  Batch batch;
  batch.shard = 0;
  batch.after_revision = 0;
  batch.to_revision = 3;
  batch.skus.push_back(SkuRow{"sku-1", 10, 2, 0, 3});
  ASSERT_TRUE(sink->apply(batch));
  batch.skus[0].on_hand = 99;  // a re-read would not even be the same rows
  const storage::Status again = sink->apply(batch);
  EXPECT_EQ(again.code(), storage::StatusCode::kInvalidArgument) << again.to_string();
  auto skus = sink->read_skus(0);
  ASSERT_TRUE(skus);
  ASSERT_EQ(skus->size(), 1u);
  EXPECT_EQ(skus->front().on_hand, 10);
  EXPECT_EQ(sink->checkpoints()->at(0), 3u);
}

// A crash may lose the journal's cursor/cdc (stored without waiting) while the sink's
// checkpoint is durable: the next start resumes from the sink's checkpoint, not the cursor.
TEST(CdcPipeline, ARestartWithALostCursorAppliesNothingTwice) {
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  {
    auto sink = sink_at(engine.analytics());
    ASSERT_TRUE(sink);
  }
  ASSERT_EQ(testing::install_sqlite_audit(engine.analytics()), "");
  {
    CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{});
    ASSERT_TRUE(pipeline.start());
    engine.place(0, 30);
    ASSERT_TRUE(engine.rt->wait_quiet(10s));
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
  }
  for (ShardId shard : engine.rt->journal().shards()) {
    auto cursor = CdcPipeline::stored_cursor(engine.rt->journal(), shard);
    ASSERT_TRUE(cursor && *cursor);
    EXPECT_EQ(**cursor, *engine.rt->journal().revision(shard));  // stored at stop
    storage::CommitRequest rewind;  // as if the last cursor writes were lost
    rewind.shard = shard;
    rewind.index_put.push_back({std::string(kCdcCursorKey), "1"});
    ASSERT_TRUE(engine.rt->journal().commit(std::move(rewind)).get().status);
  }
  engine.place(30, 20);
  {
    CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{});
    ASSERT_TRUE(pipeline.start());
    ASSERT_TRUE(engine.rt->wait_quiet(10s));
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
    EXPECT_EQ(pipeline.stats().guard_refusals, 0u);
  }
  const testing::Audit audit = testing::read_sqlite_audit(engine.analytics());
  ASSERT_EQ(audit.error, "");
  EXPECT_GT(audit.order_writes, 50u);
  EXPECT_EQ(audit.duplicate_writes, 0u) << audit.first_problem;
  EXPECT_EQ(audit.chain_breaks, 0u) << audit.first_problem;
  auto reader = sink_at(engine.analytics());
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), *reader), "");
}

// Tables written from another data dir are refused while their checkpoint is above this
// journal's revision, and still refused once this journal has passed it: the newest order
// row was written at a revision this journal committed at another time. Before, a restart
// after the journal passed the checkpoint applied on top of the foreign rows, silently
// (outside audit: drift of 73-424 rows per shard afterwards).
TEST(CdcPipeline, TablesOfAnotherDataDirAreRefusedAlsoOnceThisJournalPassedTheirCheckpoint) {
  TempDir shared;
  const std::string analytics = "sqlite:" + shared.sub("analytics.db");
  std::map<std::uint32_t, std::uint64_t> foreign;
  {
    Engine first;
    ASSERT_TRUE(testing::receive_stock(*first.rt, kSkus, 1000));
    CdcPipeline pipeline(first.rt->journal(), sink_at(analytics), Migration{});
    ASSERT_TRUE(pipeline.start());
    first.place(0, 10);
    ASSERT_TRUE(first.rt->wait_quiet(10s));
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
    pipeline.stop();
    foreign = *sink_at(analytics)->checkpoints();
  }
  std::this_thread::sleep_for(5ms);  // no commit of the second engine shares a millisecond with the first's
  Engine second;
  ASSERT_TRUE(testing::receive_stock(*second.rt, kSkus, 1000));
  second.place(100, 40);
  ASSERT_TRUE(second.rt->wait_quiet(10s));
  for (ShardId shard : second.rt->journal().shards()) {
    ASSERT_GT(*second.rt->journal().revision(shard), foreign.at(shard.value)) << "the second journal must pass the first's checkpoint";
  }
  CdcPipeline pipeline(second.rt->journal(), sink_at(analytics), Migration{});
  ASSERT_TRUE(pipeline.start());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  PipelineStats stats;
  do {
    std::this_thread::sleep_for(50ms);
    stats = pipeline.stats();
  } while (std::chrono::steady_clock::now() < deadline &&
           !std::all_of(stats.shards.begin(), stats.shards.end(), [](const ShardStats& s) { return s.compacted_past; }));
  for (const ShardStats& shard : stats.shards) EXPECT_TRUE(shard.compacted_past) << "shard " << shard.shard;
  EXPECT_NE(stats.last_error.find("belong to another data dir"), std::string::npos) << stats.last_error;
  pipeline.stop();
  EXPECT_EQ(*sink_at(analytics)->checkpoints(), foreign) << "nothing applied on top of the other history";
}

TEST(CdcPipeline, LagIsOnMetricsAndPassesPromtool) {
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{});
  metrics::Registry registry;
  metrics::Registration registration = register_cdc_metrics(registry, pipeline);
  // Before start: behind by the stock receipts.
  std::string text = registry.render();
  EXPECT_NE(text.find("ffe_cdc_lag_revisions{shard=\"0\"}"), std::string::npos) << text;
  ASSERT_TRUE(pipeline.start());
  engine.place(0, 10);
  ASSERT_TRUE(pipeline.wait_caught_up(20s));
  text = registry.render();
  for (const char* expected :
       {"# TYPE ffe_cdc_lag_revisions gauge", "ffe_cdc_lag_revisions{shard=\"1\"} 0", "# TYPE ffe_cdc_lag_seconds gauge",
        "ffe_cdc_lag_seconds{shard=\"0\"} 0", "# TYPE ffe_cdc_rows_applied_total counter",
        "ffe_cdc_rows_applied_total{table=\"orders\"} ", "ffe_cdc_rows_applied_total{table=\"sku_stock\"} ",
        "# TYPE ffe_cdc_errors_total counter", "ffe_cdc_errors_total 0"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_EQ(text.find("ffe_cdc_rows_applied_total{table=\"orders\"} 0\n"), std::string::npos) << text;
  if (metrics::testing::promtool_available()) {
    const auto result = metrics::testing::promtool_check(text);
    EXPECT_EQ(result.exit_code, 0) << result.output << "\n" << text;
  }
  registration.reset();
}

// Debezium-style envelopes: every changed row once per batch, "c" first (no before), then
// "u" with the previous row as before; handed over before the apply, and a refused hand-over
// holds the batch back (the tables never get ahead of the envelopes).
TEST(CdcPipeline, EnvelopesSayCreateThenUpdateWithBeforeAndAfter) {
  Engine engine(1);
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  std::mutex mutex;
  std::vector<nlohmann::json> envelopes;
  int calls = 0;
  PipelineOptions options;
  options.batch_revisions_max = 2;  // an order's changes spread over several batches
  options.backoff_min = 10ms;
  options.publish = [&](std::uint32_t shard, std::vector<ChangeEnvelope> batch) {
    std::lock_guard lock(mutex);
    if (++calls == 2) return storage::Status(storage::StatusCode::kIoError, "broker away");
    for (const ChangeEnvelope& envelope : batch) {
      nlohmann::json value = nlohmann::json::parse(envelope.value);
      EXPECT_EQ(value["source"]["shard"], shard);
      EXPECT_EQ(envelope.key, value["source"]["table"] == "orders" ? "order/" + value["after"]["order_id"].get<std::string>()
                                                                   : "sku/" + value["after"]["sku"].get<std::string>());
      envelopes.push_back(std::move(value));
    }
    return storage::Status::ok();
  };
  CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{}, options);
  ASSERT_TRUE(pipeline.start());
  engine.place(0, 3);
  ASSERT_TRUE(engine.rt->wait_quiet(10s));
  ASSERT_TRUE(pipeline.wait_caught_up(20s));
  pipeline.stop();
  std::lock_guard lock(mutex);
  std::map<std::string, std::vector<nlohmann::json>> orders;
  for (const nlohmann::json& e : envelopes) {
    if (e["source"]["table"] == "orders") orders[e["after"]["order_id"]].push_back(e);
  }
  ASSERT_EQ(orders.size(), 3u);
  for (const auto& [id, changes] : orders) {
    ASSERT_GE(changes.size(), 2u) << id;
    EXPECT_EQ(changes.front()["op"], "c") << id;
    EXPECT_TRUE(changes.front()["before"].is_null()) << id;
    for (std::size_t i = 1; i < changes.size(); ++i) {
      EXPECT_EQ(changes[i]["op"], "u") << id;
      // At-least-once: the refused hand-over is offered again, so a change may repeat.
      EXPECT_LE(changes[i]["before"]["revision"], changes[i]["after"]["revision"]) << id;
      EXPECT_GE(changes[i]["after"]["revision"], changes[i - 1]["after"]["revision"]) << id;
      EXPECT_EQ(changes[i]["source"]["revision"], changes[i]["after"]["revision"]) << id;
    }
    auto state = engine.rt->order(id);
    ASSERT_TRUE(state && *state);
    EXPECT_EQ(changes.back()["after"]["state"], v1::OrderState_Name((*state)->state)) << id;
    EXPECT_GT(changes.back()["ts_ms"].get<std::int64_t>(), 0);
  }
  auto reader = sink_at(engine.analytics());
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), *reader), "");
}

std::string read_all(std::FILE* file) {
  std::string out;
  std::rewind(file);
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, file)) out.append(buffer, n);
  return out;
}

// `ffe drift` (run_drift) on `data_dir` against `analytics`: its exit code, stdout and stderr.
int drift_exit(const std::string& data_dir, const std::string& analytics, std::string* out, std::string* err) {
  DriftOptions options;
  options.data_dir = data_dir;
  options.analytics = analytics;
  options.out = std::tmpfile();
  options.err = std::tmpfile();
  const int code = run_drift(options);
  *out = read_all(options.out);
  *err = read_all(options.err);
  std::fclose(options.out);
  std::fclose(options.err);
  return code;
}

// `ffe drift` (run_drift) on a stopped engine's dir: 0 and one JSON line per shard when the
// tables are in step; 1 with the differences, field by field, once a row is changed and
// another removed behind CDC's back.
TEST(CdcDrift, ExitsZeroInStepAndOneWithTheDifferencesWhenTampered) {
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  {
    CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{});
    ASSERT_TRUE(pipeline.start());
    engine.place(0, 12);
    ASSERT_TRUE(engine.rt->wait_quiet(10s));
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
  }
  engine.close();
  auto run = [&](std::string* out, std::string* err) { return drift_exit(engine.data_dir, engine.analytics(), out, err); };
  std::string out, err;
  EXPECT_EQ(run(&out, &err), 0) << out << err;
  EXPECT_NE(out.find("{\"shard\":0,\"checkpoint\":"), std::string::npos) << out;
  EXPECT_NE(out.find("{\"shard\":1,\"checkpoint\":"), std::string::npos) << out;
  EXPECT_EQ(out.find("\"drift\":1"), std::string::npos) << out;

  ASSERT_EQ(testing::sqlite_exec(engine.analytics(), "UPDATE orders SET state = 'RESERVING' WHERE order_id = 'o-1';"
                                                     "DELETE FROM sku_stock WHERE sku = 'sku-2';"),
            "");
  EXPECT_EQ(run(&out, &err), 1) << out << err;
  EXPECT_NE(err.find("orders o-1: state: \"RESERVING\" (tables) != "), std::string::npos) << err;
  EXPECT_NE(err.find("sku_stock sku-2: missing from the tables"), std::string::npos) << err;
  EXPECT_NE(out.find("\"different\":1"), std::string::npos) << out;
  EXPECT_NE(out.find("\"missing\":1"), std::string::npos) << out;
}

// `ffe drift` only reads: pointed at a SQLite database that is not ffe's, it refuses (exit 2)
// without giving it ffe's tables; and a PostgreSQL password in --analytics never reaches
// its messages.
TEST(CdcDrift, RefusesAnotherDatabaseWithoutWritingToItAndMasksThePassword) {
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 10));
  engine.close();
  std::string out;
  auto run = [&](const std::string& analytics, std::string* err) { return drift_exit(engine.data_dir, analytics, &out, err); };
  const std::string other = engine.dir.sub("other.db");
  ASSERT_EQ(testing::sqlite_exec(other, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);"), "");
  std::string err;
  EXPECT_EQ(run("sqlite:" + other, &err), 2) << err;
  EXPECT_NE(err.find("no ffe analytics tables"), std::string::npos) << err;
  EXPECT_NE(testing::sqlite_exec(other, "SELECT version FROM cdc_schema"), "") << "drift created ffe's tables";
  EXPECT_EQ(testing::sqlite_exec(other, "SELECT x FROM t"), "");

  EXPECT_EQ(run("postgresql://u:S3cretPW@127.0.0.1:1/db", &err), 2) << err;
  EXPECT_EQ(err.find("S3cretPW"), std::string::npos) << err;
  EXPECT_NE(err.find("u:***@127.0.0.1:1"), std::string::npos) << err;
}

// A database that is down or locked shows every shard's CDC stalled at once: when the round's
// shared transaction fails, every shard in it is marked stalled before each retries alone
// (waiting out the lock, SQLite's 5 s busy timeout, one shard after another).
TEST(CdcPipeline, ALockedDatabaseStallsEveryShardAtOnceAndCatchesUpAfter) {
  Engine engine(4);
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{});
  ASSERT_TRUE(pipeline.start());
  ASSERT_TRUE(pipeline.wait_caught_up(20s));
  {
    testing::SqliteLock lock(engine.analytics());
    ASSERT_EQ(lock.error, "");
    engine.place(0, 24);  // orders and SKUs in every shard
    std::set<std::uint32_t> behind;
    for (storage::ShardId shard : engine.rt->journal().shards()) behind.insert(shard.value);
    // One busy timeout (5 s) and some slack; shard by shard it took 5 s more per shard.
    const auto deadline = std::chrono::steady_clock::now() + 9s;
    bool all_stalled = false;
    while (!all_stalled && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      const PipelineStats stats = pipeline.stats();
      all_stalled = true;
      for (const ShardStats& shard : stats.shards) {
        if (behind.contains(shard.shard) && shard.lag_revisions > 0) all_stalled &= shard.stalled;
      }
    }
    for (const ShardStats& shard : pipeline.stats().shards) {
      EXPECT_GT(shard.lag_revisions, 0u) << "shard " << shard.shard << " had no work: the test proves less";
      EXPECT_TRUE(shard.stalled) << "shard " << shard.shard << " did not show stalled within 9 s";
    }
  }
  ASSERT_TRUE(pipeline.wait_caught_up(30s));
  for (const ShardStats& shard : pipeline.stats().shards) EXPECT_FALSE(shard.stalled) << shard.shard;
  pipeline.stop();
  auto reader = sink_at(engine.analytics());
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), *reader), "");
}

// The retention compactor never passes what CDC has not applied.
TEST(CdcPipeline, CursorHoldsCompactionBack) {
  Engine engine(1);
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  auto stopped_sink = sink_at(engine.analytics());
  ASSERT_TRUE(stopped_sink);
  {
    CdcPipeline pipeline(engine.rt->journal(), std::move(stopped_sink), Migration{});
    ASSERT_TRUE(pipeline.start());
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
  }
  const storage::Revision applied = *engine.rt->journal().revision(ShardId{0});
  engine.place(0, 10);  // committed while CDC is stopped
  const storage::Revision head = *engine.rt->journal().revision(ShardId{0});
  ASSERT_GT(head, applied + 1);
  auto floor = runtime::cursor_floor(engine.rt->journal(), ShardId{0});
  ASSERT_TRUE(floor && *floor);
  const runtime::CompactOutcome refused = runtime::compact_shard(engine.rt->journal(), ShardId{0}, head, false);
  EXPECT_FALSE(refused.status) << "compacted past CDC's cursor " << applied;
  // Up to the cursor is fine, and CDC resumes exactly from there.
  ASSERT_TRUE(runtime::compact_shard(engine.rt->journal(), ShardId{0}, applied, false).status);
  CdcPipeline pipeline(engine.rt->journal(), sink_at(engine.analytics()), Migration{});
  ASSERT_TRUE(pipeline.start());
  ASSERT_TRUE(pipeline.wait_caught_up(20s));
  EXPECT_FALSE(pipeline.stats().shards[0].compacted_past);
  pipeline.stop();
  auto reader = sink_at(engine.analytics());
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), *reader), "");
}

// Schema evolution: tables made at schema version 1 (no orders.currency, orders.reason) and
// fed by the pipeline; the next start migrates them to version 2 and backfills the new
// columns of the existing rows from the journal's state, so drift is clean.
TEST(CdcSchema, Version1TablesAreMigratedAndBackfilledFromState) {
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 1000));
  {
    Migration created;
    auto old = sink_at(engine.analytics(), &created, 1);
    ASSERT_TRUE(old);
    EXPECT_EQ(created.to_version, 1);
    CdcPipeline pipeline(engine.rt->journal(), std::move(old), created);
    ASSERT_TRUE(pipeline.start());
    engine.place(0, 25);
    ASSERT_TRUE(engine.rt->wait_quiet(10s));
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
  }
  Migration migration;
  auto sink = sink_at(engine.analytics(), &migration);
  ASSERT_TRUE(sink);
  EXPECT_EQ(migration.from_version, 1);
  EXPECT_EQ(migration.to_version, 2);
  EXPECT_FALSE(migration.added_columns.empty());
  {
    CdcPipeline pipeline(engine.rt->journal(), std::move(sink), migration);
    ASSERT_TRUE(pipeline.start());
    engine.place(25, 5);
    ASSERT_TRUE(engine.rt->wait_quiet(10s));
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
    EXPECT_GE(pipeline.stats().backfilled_rows, 25u);
  }
  for (ShardId shard : engine.rt->journal().shards()) {
    auto marker = engine.rt->journal().index_scan(shard, kCdcBackfillKey, {}, 1);
    ASSERT_TRUE(marker);
    EXPECT_TRUE(marker->empty() || marker->front().key != kCdcBackfillKey) << "backfill left unfinished";
  }
  auto reader = sink_at(engine.analytics());
  std::uint64_t orders = 0;
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), *reader, &orders), "");
  EXPECT_EQ(orders, 30u);
  std::size_t with_reason = 0;
  for (std::uint32_t shard = 0; shard < 2; ++shard) {
    auto rows = reader->read_orders(shard);
    ASSERT_TRUE(rows);
    for (const OrderRow& row : *rows) {
      EXPECT_EQ(row.currency, "USD") << row.order_id;
      if (!row.reason.empty()) ++with_reason;
    }
  }
  EXPECT_GT(with_reason, 0u);  // the declined and failed-shipment orders say why
}

// Schema evolution from both ends, on the fixture journal an older ffe wrote
// (tests/fixtures/journal-v1: OrderPlaced events of event schema version 1, without
// amount_cents and currency, which today's upcaster fills in). Tables made at analytics schema
// version 1 are fed from it, then migrated to version 2: the added columns are backfilled
// from the (upcast) state, and drift is clean.
TEST(CdcSchema, FixtureJournalOfEventVersion1FeedsTablesMigratedFromVersion1) {
  TempDir dir;
  const std::string data = dir.sub("data");
  std::filesystem::copy(FFE_JOURNAL_V1_FIXTURE, data, std::filesystem::copy_options::recursive);
  runtime::DomainFolder folder;
  storage::JournalOptions options;
  options.folder = &folder;
  auto journal = storage::Journal::open(data, options);
  ASSERT_TRUE(journal) << journal.status().to_string();
  const std::string url = "sqlite:" + dir.sub("analytics.db");
  {
    Migration created;
    auto old = sink_at(url, &created, 1);
    ASSERT_TRUE(old);
    CdcPipeline pipeline(**journal, std::move(old), created);
    ASSERT_TRUE(pipeline.start());
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
    EXPECT_EQ(pipeline.stats().errors, 0u) << pipeline.stats().last_error;
  }
  Migration migration;
  auto sink = sink_at(url, &migration);
  ASSERT_TRUE(sink);
  ASSERT_EQ(migration.from_version, 1);
  ASSERT_FALSE(migration.added_columns.empty());
  {
    CdcPipeline pipeline(**journal, std::move(sink), migration);
    ASSERT_TRUE(pipeline.start());
    ASSERT_TRUE(pipeline.wait_caught_up(20s));
    // Nothing new was committed: the backfill alone fills the new columns (caught up
    // includes it).
    EXPECT_GE(pipeline.stats().backfilled_rows, 20u);
  }
  auto reader = sink_at(url);
  std::uint64_t orders = 0;
  EXPECT_EQ(testing::drift_of(**journal, *reader, &orders), "");
  EXPECT_EQ(orders, 20u);
  for (ShardId shard : (*journal)->shards()) {
    auto rows = reader->read_orders(shard.value);
    ASSERT_TRUE(rows);
    for (const OrderRow& row : *rows) {
      if (row.state == "REJECTED") continue;  // rejected at validation: no amount, no currency
      EXPECT_FALSE(row.currency.empty()) << row.order_id << ": not filled from the upcast state";
      EXPECT_GT(row.total_cents, 0) << row.order_id;
    }
  }
}

}  // namespace
}  // namespace ffe::cdc
