// The CDC pipeline into a real PostgreSQL 15 that the test starts (pg_fixture.h), and that
// the test stops and starts under it:
//   - the same code path as SQLite: rows equal state, drift clean;
//   - the database down: the engine keeps committing, CDC stalls, the lag (revisions and
//     seconds) and the error count rise; the database back: CDC catches up, drift clean;
//   - CdcCrash.*: PostgreSQL stopped and started twice while orders flow and CDC applies;
//     afterwards drift is clean and a trigger audit shows no order row written twice at one
//     revision and every checkpoint move starting where the previous ended.
// One process shares one server (PgServer::shared()); each test has its own database.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "adapters/cdc/pipeline.h"
#include "tests/cdc/cdc_test_support.h"
#include "tests/cdc/pg_fixture.h"
#include "tests/runtime/crash_support.h"
#include "tests/storage/test_support.h"

namespace ffe::cdc {
namespace {

using storage::ShardId;
using storage::testing::TempDir;
using namespace std::chrono_literals;

constexpr int kSkus = 6;

std::string database(const std::string& name) {
  test::PgServer& server = test::PgServer::shared();
  if (!server.status()) {
    ADD_FAILURE() << "PostgreSQL did not start: " << server.status().to_string();
    return {};
  }
  auto url = server.create_database(name);
  if (!url) {
    ADD_FAILURE() << url.status().to_string();
    return {};
  }
  return *url;
}

// The audit (as in cdc_test_support.h, for PostgreSQL): every write of an order row and every
// checkpoint move, by triggers, in the same transaction as the write.
void install_pg_audit(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::work work(connection);
  work.exec(R"sql(
    CREATE TABLE test_audit_orders (seq BIGSERIAL PRIMARY KEY, order_id TEXT, revision BIGINT);
    CREATE TABLE test_audit_checkpoints (seq BIGSERIAL PRIMARY KEY, shard BIGINT, old_revision BIGINT,
                                         new_revision BIGINT);
    CREATE FUNCTION test_audit_order() RETURNS trigger AS $$ BEGIN
      INSERT INTO test_audit_orders (order_id, revision) VALUES (NEW.order_id, NEW.revision); RETURN NEW; END $$
      LANGUAGE plpgsql;
    CREATE FUNCTION test_audit_checkpoint() RETURNS trigger AS $$ BEGIN
      IF OLD.revision <> NEW.revision THEN
        INSERT INTO test_audit_checkpoints (shard, old_revision, new_revision)
          VALUES (NEW.shard, OLD.revision, NEW.revision);
      END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
    CREATE TRIGGER test_audit_order AFTER INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION test_audit_order();
    CREATE TRIGGER test_audit_checkpoint AFTER UPDATE ON cdc_checkpoint FOR EACH ROW
      EXECUTE FUNCTION test_audit_checkpoint();
  )sql");
  work.commit();
}

testing::Audit read_pg_audit(const std::string& url) {
  testing::Audit audit;
  pqxx::connection connection(url);
  pqxx::work work(connection);
  for (const auto& row : work.exec("SELECT order_id, revision, count(*) FROM test_audit_orders GROUP BY 1, 2")) {
    const auto writes = row[2].as<std::uint64_t>();
    audit.order_writes += writes;
    if (writes > 1) {
      audit.duplicate_writes += writes - 1;
      if (audit.first_problem.empty()) {
        audit.first_problem = "order " + row[0].as<std::string>() + " at revision " + row[1].as<std::string>() +
                              " written " + std::to_string(writes) + " times";
      }
    }
  }
  std::map<std::int64_t, std::int64_t> last;
  for (const auto& row : work.exec("SELECT shard, old_revision, new_revision FROM test_audit_checkpoints ORDER BY seq")) {
    const auto shard = row[0].as<std::int64_t>();
    const auto from = row[1].as<std::int64_t>();
    const auto to = row[2].as<std::int64_t>();
    ++audit.checkpoint_moves;
    auto it = last.find(shard);
    if ((it != last.end() && it->second != from) || to <= from) {
      ++audit.chain_breaks;
      if (audit.first_problem.empty()) {
        audit.first_problem = "shard " + std::to_string(shard) + ": checkpoint moved " + std::to_string(from) +
                              " -> " + std::to_string(to);
      }
    }
    last[shard] = to;
  }
  return audit;
}

struct Engine {
  Engine() {
    runtime::Options options;
    options.data_dir = dir.sub("data");
    options.shards = 2;
    options.scheduler_threads = 2;
    options.egress = &egress;
    auto opened = runtime::Runtime::open(std::move(options));
    if (!opened) ADD_FAILURE() << opened.status().to_string();
    rt = std::move(*opened);
    egress.attach(rt.get());
  }
  ~Engine() {
    egress.detach();
    rt.reset();
  }
  void submit(int n) {
    const std::string id = "o-" + std::to_string(n);
    ASSERT_TRUE(runtime::testing::submit_and_wait(*rt, runtime::OrderCommand(testing::order_number(id, n, kSkus))));
  }
  TempDir dir;
  runtime::testing::ParticipantEgress egress;
  std::unique_ptr<runtime::Runtime> rt;
};

PipelineOptions fast_retry() {
  PipelineOptions options;
  options.backoff_min = 50ms;
  options.backoff_max = 500ms;
  options.batch_revisions_max = 32;
  return options;
}

// A pipeline on `url` over the engine's journal (stock received first), started.
std::unique_ptr<CdcPipeline> started_pipeline(Engine& engine, const std::string& url,
                                              PipelineOptions options = fast_retry()) {
  if (!testing::receive_stock(*engine.rt, kSkus, 1000)) ADD_FAILURE() << "receiving stock";
  auto sink = open_sink(url);
  if (!sink) {
    ADD_FAILURE() << sink.status().to_string();
    return nullptr;
  }
  auto pipeline = std::make_unique<CdcPipeline>(engine.rt->journal(), std::move(*sink), Migration{}, std::move(options));
  if (!pipeline->start()) ADD_FAILURE() << "starting the pipeline";
  return pipeline;
}

// The tables at `url` equal the engine's journal, with `expected` orders in them.
void expect_no_drift(Engine& engine, const std::string& url, std::uint64_t expected) {
  auto reader = open_sink(url);
  ASSERT_TRUE(reader) << reader.status().to_string();
  std::uint64_t orders = 0;
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), **reader, &orders), "");
  EXPECT_EQ(orders, expected);
}

TEST(CdcPipelinePostgres, DatabaseDownStallsCdcButNotTheEngine) {
  const std::string url = database("cdc_down");
  ASSERT_FALSE(url.empty());
  Engine engine;
  auto started = started_pipeline(engine, url);
  ASSERT_TRUE(started);
  CdcPipeline& pipeline = *started;
  for (int n = 0; n < 10; ++n) engine.submit(n);
  ASSERT_TRUE(engine.rt->wait_quiet(10s));
  ASSERT_TRUE(pipeline.wait_caught_up(20s));
  const std::uint64_t errors_before = pipeline.stats().errors;

  ASSERT_TRUE(test::PgServer::shared().stop());
  // The engine goes on: these commit (the journal is the engine's; CDC is only a reader).
  for (int n = 10; n < 30; ++n) engine.submit(n);
  ASSERT_TRUE(engine.rt->wait_quiet(10s));
  std::this_thread::sleep_for(1200ms);  // a few failed attempts, and measurable lag seconds
  PipelineStats stalled = pipeline.stats();
  std::uint64_t lag = 0;
  double lag_seconds = 0;
  bool any_stalled = false;
  for (const ShardStats& shard : stalled.shards) {
    lag += shard.lag_revisions;
    lag_seconds = std::max(lag_seconds, shard.lag_seconds);
    any_stalled |= shard.stalled;
  }
  EXPECT_GT(lag, 0u);
  EXPECT_GE(lag_seconds, 1.0);
  EXPECT_TRUE(any_stalled);
  EXPECT_GT(stalled.errors, errors_before);
  for (int n = 10; n < 30; ++n) {
    auto state = engine.rt->order("o-" + std::to_string(n));
    ASSERT_TRUE(state && *state) << "o-" << n << " not committed while PostgreSQL was down";
  }

  ASSERT_TRUE(test::PgServer::shared().start());
  ASSERT_TRUE(pipeline.wait_caught_up(30s));
  for (const ShardStats& shard : pipeline.stats().shards) {
    EXPECT_EQ(shard.lag_revisions, 0u);
    EXPECT_FALSE(shard.stalled);
  }
  pipeline.stop();
  expect_no_drift(engine, url, 30);
}

// A database that holds CDC's statement (here: another session's lock on the checkpoint
// table) must not hold the engine's stop: stop() breaks the connection off after its
// patience, and the round is applied at the next start.
TEST(CdcPipelinePostgres, StopIsNotHeldByADatabaseThatDoesNotAnswer) {
  const std::string url = database("cdc_locked");
  ASSERT_FALSE(url.empty());
  Engine engine;
  auto started = started_pipeline(engine, url);
  ASSERT_TRUE(started);
  CdcPipeline& pipeline = *started;
  ASSERT_TRUE(pipeline.wait_caught_up(20s));

  pqxx::connection locker(url);
  pqxx::work hold(locker);
  hold.exec("LOCK TABLE cdc_checkpoint IN ACCESS EXCLUSIVE MODE");
  for (int n = 0; n < 5; ++n) engine.submit(n);
  ASSERT_TRUE(engine.rt->wait_quiet(10s));
  std::this_thread::sleep_for(500ms);  // CDC's round is now waiting for the lock
  EXPECT_FALSE(pipeline.wait_caught_up(100ms));

  const auto before = std::chrono::steady_clock::now();
  pipeline.stop();
  const auto took = std::chrono::steady_clock::now() - before;
  EXPECT_LT(took, 10s) << "stop() waited for the lock";
  hold.abort();

  // Nothing was applied by the broken-off round; a new pipeline applies it.
  auto again = open_sink(url);
  ASSERT_TRUE(again) << again.status().to_string();
  CdcPipeline next(engine.rt->journal(), std::move(*again), Migration{}, fast_retry());
  ASSERT_TRUE(next.start());
  ASSERT_TRUE(next.wait_caught_up(20s));
  next.stop();
  expect_no_drift(engine, url, 5);
}

// A backend that stops answering (SIGSTOP: no error, no statement_timeout) shows every shard
// stalled once a call has waited `call_stalled_after`, and the stop is not held by it.
TEST(CdcPipelinePostgres, ABackendThatStopsAnsweringShowsEveryShardStalled) {
  const std::string url = database("cdc_wedged");
  ASSERT_FALSE(url.empty());
  Engine engine;
  PipelineOptions options = fast_retry();
  options.call_stalled_after = 1s;
  auto started = started_pipeline(engine, url, options);
  ASSERT_TRUE(started);
  CdcPipeline& pipeline = *started;
  ASSERT_TRUE(pipeline.wait_caught_up(20s));

  pqxx::connection observer(url);
  pqxx::work ask(observer);
  const pqxx::result backends = ask.exec(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
  ask.commit();
  ASSERT_EQ(backends.size(), 1u) << "the pipeline's one connection";
  const pid_t backend = backends[0][0].as<pid_t>();
  ASSERT_EQ(::kill(backend, SIGSTOP), 0);
  struct Resume {  // whatever fails below, the shared server's backend runs again
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{backend};
  for (int n = 0; n < 5; ++n) engine.submit(n);
  ASSERT_TRUE(engine.rt->wait_quiet(10s));
  bool stalled = false;
  for (int i = 0; i < 100 && !stalled; ++i) {
    std::this_thread::sleep_for(100ms);
    const PipelineStats stats = pipeline.stats();
    stalled = std::all_of(stats.shards.begin(), stats.shards.end(), [](const ShardStats& s) { return s.stalled; });
  }
  EXPECT_TRUE(stalled) << "a call waiting on a stopped backend did not show as stalled";
  const auto before = std::chrono::steady_clock::now();
  pipeline.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);
}

TEST(CdcCrash, PostgresStopStartDuringCdcThenDriftIsCleanAndNothingAppliedTwice) {
  const std::string url = database("cdc_crash");
  ASSERT_FALSE(url.empty());
  {
    auto sink = open_sink(url);
    ASSERT_TRUE(sink) << sink.status().to_string();
  }
  install_pg_audit(url);
  Engine engine;
  ASSERT_TRUE(testing::receive_stock(*engine.rt, kSkus, 100'000));
  auto sink = open_sink(url);
  ASSERT_TRUE(sink);
  CdcPipeline pipeline(engine.rt->journal(), std::move(*sink), Migration{}, fast_retry());
  ASSERT_TRUE(pipeline.start());

  std::atomic<bool> stop{false};
  std::atomic<int> placed{0};
  std::thread placer([&] {
    for (int n = 0; !stop.load() && n < 5000; ++n) {
      const storage::Status status = engine.rt->submit(
          runtime::OrderCommand(testing::order_number("o-" + std::to_string(placed.load()), placed.load(), kSkus)),
          [](const runtime::Ack&) {});
      if (status) placed.fetch_add(1);
      std::this_thread::sleep_for(2ms);
    }
  });
  for (int round = 0; round < 2; ++round) {
    std::this_thread::sleep_for(700ms);
    ASSERT_TRUE(test::PgServer::shared().stop());  // fast shutdown: open transactions abort
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(test::PgServer::shared().start());
  }
  std::this_thread::sleep_for(500ms);
  stop.store(true);
  placer.join();
  ASSERT_TRUE(engine.rt->wait_quiet(20s));
  ASSERT_TRUE(pipeline.wait_caught_up(30s));
  EXPECT_GT(pipeline.stats().errors, 0u);  // the restarts were seen
  pipeline.stop();

  auto reader = open_sink(url);
  ASSERT_TRUE(reader) << reader.status().to_string();
  std::uint64_t orders = 0;
  EXPECT_EQ(testing::drift_of(engine.rt->journal(), **reader, &orders), "");
  EXPECT_EQ(orders, static_cast<std::uint64_t>(placed.load()));
  const testing::Audit audit = read_pg_audit(url);
  EXPECT_EQ(audit.duplicate_writes, 0u) << audit.first_problem;
  EXPECT_EQ(audit.chain_breaks, 0u) << audit.first_problem;
  EXPECT_GT(audit.checkpoint_moves, 4u);
}

}  // namespace
}  // namespace ffe::cdc
