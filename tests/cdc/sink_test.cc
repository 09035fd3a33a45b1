// The analytics sinks (docs/cdc.md, "The sink"), each test against BOTH a real SQLite file
// and a real PostgreSQL 15 (tests/cdc/pg_fixture.h: one server per test process, one fresh
// database per test): tables, batches, the exactly-once checkpoint guard, lines replaced as
// a whole, migration from version 1, refusals, and the database going away and coming back.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "adapters/cdc/sink.h"
#include "adapters/cdc/sql_connection.h"
#include "tests/cdc/pg_fixture.h"

namespace ffe::cdc {
namespace {

using storage::StatusCode;

enum class Backend { kSqlite, kPostgres };

void PrintTo(Backend b, std::ostream* os) { *os << (b == Backend::kSqlite ? "sqlite" : "postgresql"); }

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

OrderRow order(std::string id, std::uint32_t shard, std::uint64_t revision, std::string state,
               std::vector<OrderLineRow> lines) {
  OrderRow o;
  o.order_id = std::move(id);
  o.customer_id = "cust-" + o.order_id;
  o.state = std::move(state);
  o.terminal = o.state == "FULFILLED" || o.state == "CANCELLED" || o.state == "REJECTED";
  for (const auto& l : lines) o.total_cents += l.qty * l.unit_price_cents;
  o.shard = shard;
  o.revision = revision;
  o.updated_at_ms = 1'700'000'000'000 + static_cast<std::int64_t>(revision);
  o.currency = "EUR";
  o.reason = o.state == "REJECTED" ? "insufficient stock" : "";
  o.lines = std::move(lines);
  return o;
}

Batch batch(std::uint32_t shard, std::uint64_t after_revision, std::uint64_t to_revision) {
  Batch b;
  b.shard = shard;
  b.after_revision = after_revision;
  b.to_revision = to_revision;
  return b;
}

SkuRow sku(std::string id, std::uint32_t shard, std::uint64_t revision, std::int64_t on_hand,
           std::int64_t reserved) {
  return SkuRow{std::move(id), on_hand, reserved, shard, revision};
}

class SinkTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kSqlite) {
      std::string pattern = (std::filesystem::temp_directory_path() / "ffe-sink-XXXXXX").string();
      ASSERT_NE(mkdtemp(pattern.data()), nullptr);
      dir_ = pattern;
      url_ = "sqlite:" + dir_ + "/analytics.db";
    } else {
      auto& pg = test::PgServer::shared();
      ASSERT_TRUE(pg.status()) << pg.status().to_string();
      static std::atomic<int> next{0};
      auto url = pg.create_schema("sink_test_" + std::to_string(++next));
      ASSERT_TRUE(url) << url.status().to_string();
      // These tests check what is written, not that it survives a power cut: not waiting
      // for each commit's WAL flush saves most of their time on a busy disk.
      url_ = *url + "%20-csynchronous_commit%3Doff";
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Sink> open(int version = kSchemaVersion, Migration* m = nullptr) {
    auto sink = open_sink(url_, m, version);
    EXPECT_TRUE(sink) << sink.status().to_string();
    return sink ? std::move(*sink) : nullptr;
  }

  // A raw connection to the same database, to look at or tamper with it as a user might.
  std::unique_ptr<internal::SqlConnection> raw() {
    auto c = GetParam() == Backend::kSqlite ? internal::open_sqlite(url_) : internal::open_postgres(url_);
    EXPECT_TRUE(c) << c.status().to_string();
    return c ? std::move(*c) : nullptr;
  }
  void exec_sql(const std::string& sql) {
    auto r = raw()->exec(sql);
    ASSERT_TRUE(r) << r.status().to_string();
  }
  std::vector<std::string> column_values(const std::string& sql) {
    auto rows = raw()->query(sql);
    EXPECT_TRUE(rows) << rows.status().to_string();
    std::vector<std::string> out;
    if (rows) {
      for (const auto& r : *rows) out.push_back(r[0].value_or("NULL"));
    }
    return out;
  }

  std::string dir_;
  std::string url_;
};

const OrderLineRow kA{"sku-a", 2, 150};
const OrderLineRow kB{"sku-b", 1, 999};
const OrderLineRow kC{"sku-c", 5, 10};

TEST_P(SinkTest, CreatesEveryTableAtTheNewestVersion) {
  Migration m;
  auto sink = open(kSchemaVersion, &m);
  ASSERT_TRUE(sink);
  EXPECT_EQ(m.from_version, 0);
  EXPECT_EQ(m.to_version, 2);
  EXPECT_TRUE(m.added_columns.empty());
  EXPECT_EQ(column_values("SELECT version FROM cdc_schema"), std::vector<std::string>{"2"});
  auto cols = raw()->columns("orders");
  ASSERT_TRUE(cols);
  EXPECT_EQ(*cols, (std::vector<std::string>{"order_id", "customer_id", "state", "terminal",
                                              "total_cents", "shard", "revision", "updated_at_ms",
                                              "currency", "reason"}));
  for (const char* t : {"order_lines", "sku_stock", "cdc_checkpoint"}) {
    auto c = raw()->columns(t);
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->empty()) << t;
  }
  auto cps = sink->checkpoints();
  ASSERT_TRUE(cps);
  EXPECT_TRUE(cps->empty());
  EXPECT_EQ(sink->describe(), url_);
  // An empty batch (0, 0] gives a shard its checkpoint row at revision 0 (ARCHITECTURE.md:
  // every shard has one from the moment CDC starts), and is harmless once it exists.
  ASSERT_TRUE(sink->apply(batch(4, 0, 0)));
  ASSERT_TRUE(sink->apply(batch(4, 0, 0)));
  EXPECT_EQ(*sink->checkpoints(), (std::map<std::uint32_t, std::uint64_t>{{4, 0}}));
}

TEST_P(SinkTest, AppliesBatchesAndReadsBackWhatWasApplied) {
  auto sink = open();
  ASSERT_TRUE(sink);
  Batch b1 = batch(1, 0, 3);
  b1.orders = {order("o-2", 1, 3, "RESERVING", {kB, kA}), order("o-1", 1, 2, "RESERVING", {kA})};
  b1.skus = {sku("sku-b", 1, 3, 10, 1), sku("sku-a", 1, 1, 50, 2)};
  ASSERT_TRUE(sink->apply(b1)) << sink->apply(b1).to_string();
  Batch other = batch(2, 0, 1);
  other.orders = {order("o-9", 2, 1, "REJECTED", {kC})};
  other.skus = {sku("sku-z", 2, 1, 7, 0)};
  ASSERT_TRUE(sink->apply(other));
  Batch b2 = batch(1, 3, 5);
  b2.orders = {order("o-1", 1, 5, "FULFILLED", {kA})};
  b2.skus = {sku("sku-a", 1, 5, 48, 0)};
  ASSERT_TRUE(sink->apply(b2));

  auto cps = sink->checkpoints();
  ASSERT_TRUE(cps);
  EXPECT_EQ(*cps, (std::map<std::uint32_t, std::uint64_t>{{1, 5}, {2, 1}}));
  auto orders = sink->read_orders(1);
  ASSERT_TRUE(orders) << orders.status().to_string();
  EXPECT_EQ(*orders, (std::vector<OrderRow>{b2.orders[0], b1.orders[0]}));  // sorted by id
  EXPECT_TRUE((*orders)[0].terminal);
  auto skus = sink->read_skus(1);
  ASSERT_TRUE(skus);
  EXPECT_EQ(*skus, (std::vector<SkuRow>{b2.skus[0], b1.skus[0]}));
  auto shard2 = sink->read_orders(2);
  ASSERT_TRUE(shard2);
  EXPECT_EQ(*shard2, other.orders);
  EXPECT_EQ(column_values("SELECT terminal FROM orders WHERE order_id = 'o-1'"),
            std::vector<std::string>{GetParam() == Backend::kSqlite ? "1" : "t"});

  // What survives a reopen is the same (the pipeline resumes from it).
  sink.reset();
  Migration m;
  auto again = open(kSchemaVersion, &m);
  ASSERT_TRUE(again);
  EXPECT_EQ(m.from_version, 2);
  EXPECT_TRUE(m.added_columns.empty());
  EXPECT_EQ(*again->checkpoints(), *cps);
  EXPECT_EQ(*again->read_orders(1), *orders);
}

TEST_P(SinkTest, ARepeatedOrSkippedBatchWritesNothingAndNamesBothRevisions) {
  auto sink = open();
  ASSERT_TRUE(sink);
  Batch b = batch(0, 0, 3);
  b.orders = {order("o-1", 0, 3, "RESERVING", {kA, kB})};
  b.skus = {sku("sku-a", 0, 2, 10, 2)};
  ASSERT_TRUE(sink->apply(b));

  Batch repeated = b;  // the same batch again, say after a crash before the pipeline noted it
  repeated.orders[0].state = "CANCELLED";
  repeated.orders[0].lines = {kC};
  repeated.skus[0].reserved = 0;
  auto s = sink->apply(repeated);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("checkpoint is revision 3"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("after revision 0"), std::string::npos) << s.message();

  Batch skipped = repeated;  // a gap: revisions 4..5 never applied
  skipped.after_revision = 5;
  skipped.to_revision = 7;
  s = sink->apply(skipped);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("checkpoint is revision 3"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("after revision 5"), std::string::npos) << s.message();

  // Another sink on the same database sees the same guard: it lives in the database.
  auto second = open();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->apply(repeated).code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(*sink->checkpoints(), (std::map<std::uint32_t, std::uint64_t>{{0, 3}}));
  EXPECT_EQ(*sink->read_orders(0), b.orders);
  EXPECT_EQ(*sink->read_skus(0), b.skus);
  EXPECT_EQ(sink->apply(batch(0, 4, 3)).code(),
            StatusCode::kInvalidArgument);
}

TEST_P(SinkTest, AnOrdersLinesAreReplacedAsAWholeInTheOrderPlaced) {
  auto sink = open();
  ASSERT_TRUE(sink);
  Batch b1 = batch(0, 0, 1);
  b1.orders = {order("o-1", 0, 1, "RESERVING", {kC, kA, kB}), order("o-2", 0, 1, "RESERVING", {kB})};
  ASSERT_TRUE(sink->apply(b1));
  EXPECT_EQ((*sink->read_orders(0))[0].lines, (std::vector<OrderLineRow>{kC, kA, kB}));

  Batch b2 = batch(0, 1, 2);
  b2.orders = {order("o-1", 0, 2, "RESERVING", {kB}), order("o-2", 0, 2, "RESERVING", {})};
  ASSERT_TRUE(sink->apply(b2));
  auto orders = sink->read_orders(0);
  ASSERT_TRUE(orders);
  EXPECT_EQ(*orders, b2.orders);
  EXPECT_EQ(column_values("SELECT COUNT(*) FROM order_lines"), std::vector<std::string>{"1"});

  // A batch naming the same order twice stores the later state (the rows are states).
  Batch b3 = batch(0, 2, 4);
  b3.orders = {order("o-1", 0, 3, "RESERVING", {kA}), order("o-1", 0, 4, "AUTHORIZING", {kA, kC})};
  ASSERT_TRUE(sink->apply(b3)) << sink->apply(b3).to_string();
  EXPECT_EQ((*sink->read_orders(0))[0], b3.orders[1]);
}

TEST_P(SinkTest, AnOrderWhoseLinesAreStoredKeepsThemAndOnlyItsRowMoves) {
  auto sink = open();
  ASSERT_TRUE(sink);
  Batch b1 = batch(0, 0, 1);
  b1.orders = {order("o-1", 0, 1, "RESERVING", {kC, kA}), order("o-2", 0, 1, "RESERVING", {kB})};
  ASSERT_TRUE(sink->apply(b1));

  // o-1 existed before this batch (the pipeline says so): its lines are not sent again; o-3
  // is new in the same batch and gets its lines.
  Batch b2 = batch(0, 1, 2);
  OrderRow moved = order("o-1", 0, 2, "AUTHORIZING", {});
  moved.total_cents = b1.orders[0].total_cents;
  moved.lines_stored = true;
  b2.orders = {moved, order("o-3", 0, 2, "RESERVING", {kA, kB})};
  ASSERT_TRUE(sink->apply(b2));
  auto orders = sink->read_orders(0);
  ASSERT_TRUE(orders);
  ASSERT_EQ(orders->size(), 3u);
  EXPECT_EQ((*orders)[0].state, "AUTHORIZING");
  EXPECT_EQ((*orders)[0].revision, 2u);
  EXPECT_EQ((*orders)[0].lines, (std::vector<OrderLineRow>{kC, kA}));
  EXPECT_EQ((*orders)[1], b1.orders[1]);
  EXPECT_EQ((*orders)[2], b2.orders[1]);
  EXPECT_EQ(column_values("SELECT COUNT(*) FROM order_lines"), std::vector<std::string>{"5"});
}

TEST_P(SinkTest, SeveralShardsBatchesApplyTogetherOrNotAtAll) {
  auto sink = open();
  ASSERT_TRUE(sink);
  Batch a = batch(0, 0, 3);
  a.orders = {order("o-a", 0, 3, "RESERVING", {kA})};
  a.skus = {sku("sku-a", 0, 2, 10, 1)};
  Batch b = batch(1, 0, 5);
  b.orders = {order("o-b", 1, 5, "FULFILLED", {kB, kC})};
  ASSERT_TRUE(sink->apply_all({&a, &b}));
  EXPECT_EQ(*sink->read_orders(0), a.orders);
  EXPECT_EQ(*sink->read_skus(0), a.skus);
  EXPECT_EQ(*sink->read_orders(1), b.orders);
  EXPECT_EQ(*sink->checkpoints(), (std::map<std::uint32_t, std::uint64_t>{{0, 3}, {1, 5}}));

  // Shard 1's guard refuses (its batch was applied already): shard 0's next batch is not
  // written either, and the refusal names shard 1.
  Batch a2 = batch(0, 3, 4);
  a2.orders = {order("o-a", 0, 4, "AUTHORIZING", {kA})};
  storage::Status refused = sink->apply_all({&a2, &b});
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.to_string().find("shard 1"), std::string::npos) << refused.to_string();
  EXPECT_EQ(*sink->read_orders(0), a.orders);
  EXPECT_EQ(*sink->checkpoints(), (std::map<std::uint32_t, std::uint64_t>{{0, 3}, {1, 5}}));

  // Two batches of one shard in one call are refused before anything is written.
  Batch a3 = batch(0, 4, 5);
  EXPECT_EQ(sink->apply_all({&a2, &a3}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*sink->checkpoints(), (std::map<std::uint32_t, std::uint64_t>{{0, 3}, {1, 5}}));
}

TEST_P(SinkTest, ALargeBatchSpansManyStatementsInOneTransaction) {
  auto sink = open();
  ASSERT_TRUE(sink);
  Batch b = batch(3, 0, 1000);
  for (int i = 0; i < 1000; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "o-%04d", i);
    b.orders.push_back(order(id, 3, static_cast<std::uint64_t>(i + 1), "RESERVING", {kA, kB}));
    b.skus.push_back(sku(std::string("s-") + id, 3, static_cast<std::uint64_t>(i + 1), i, 0));
  }
  ASSERT_TRUE(sink->apply(b));
  EXPECT_EQ(*sink->read_orders(3), b.orders);
  EXPECT_EQ(*sink->read_skus(3), b.skus);
}

TEST_P(SinkTest, MigratesAVersion1DatabaseAndBackfillsWithoutTouchingTheCheckpoint) {
  Migration m;
  auto v1 = open(1, &m);
  ASSERT_TRUE(v1);
  EXPECT_EQ(m.from_version, 0);
  EXPECT_EQ(m.to_version, 1);
  auto cols = raw()->columns("orders");
  ASSERT_TRUE(cols);
  EXPECT_EQ(cols->size(), 8u) << "version 1 is exactly the contract's columns";
  Batch b = batch(0, 0, 2);
  b.orders = {order("o-1", 0, 2, "REJECTED", {kA})};
  b.skus = {sku("sku-a", 0, 1, 5, 0)};
  ASSERT_TRUE(v1->apply(b));
  auto read_v1 = v1->read_orders(0);
  ASSERT_TRUE(read_v1);
  EXPECT_EQ((*read_v1)[0].currency, "");  // a version-1 sink neither writes nor reads it
  v1.reset();

  auto v2 = open(2, &m);
  ASSERT_TRUE(v2);
  EXPECT_EQ(m.from_version, 1);
  EXPECT_EQ(m.to_version, 2);
  EXPECT_EQ(m.added_columns, (std::vector<std::string>{"orders.currency", "orders.reason"}));
  EXPECT_EQ(column_values("SELECT version FROM cdc_schema ORDER BY version"),
            (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(column_values("SELECT description FROM cdc_schema WHERE version = 2"),
            std::vector<std::string>{"migrated from 1: added orders.currency, orders.reason"});

  auto old_rows = v2->read_orders(0);
  ASSERT_TRUE(old_rows);
  ASSERT_EQ(old_rows->size(), 1u);
  EXPECT_EQ((*old_rows)[0].currency, "");
  EXPECT_EQ((*old_rows)[0].reason, "");
  EXPECT_EQ((*old_rows)[0].lines, b.orders[0].lines);

  ASSERT_TRUE(v2->backfill(0, b.orders, b.skus));  // the rows from state, with every field
  EXPECT_EQ(*v2->read_orders(0), b.orders);
  EXPECT_EQ((*v2->read_orders(0))[0].reason, "insufficient stock");
  EXPECT_EQ(*v2->checkpoints(), (std::map<std::uint32_t, std::uint64_t>{{0, 2}}));
  EXPECT_EQ(v2->backfill(1, b.orders, {}).code(), StatusCode::kInvalidArgument);  // wrong shard

  // A third open changes nothing more.
  auto again = open(2, &m);
  ASSERT_TRUE(again);
  EXPECT_EQ(m.from_version, 2);
  EXPECT_TRUE(m.added_columns.empty());
  EXPECT_EQ(column_values("SELECT COUNT(*) FROM cdc_schema"), std::vector<std::string>{"2"});
}

TEST_P(SinkTest, RefusesATableWithAColumnThisBuildDoesNotDeclare) {
  ASSERT_TRUE(open());
  exec_sql("ALTER TABLE orders ADD COLUMN bogus TEXT");
  auto sink = open_sink(url_);
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kFormat);
  EXPECT_NE(sink.status().message().find("table orders has column bogus"), std::string::npos)
      << sink.status().message();
}

TEST_P(SinkTest, RefusesARenamedColumn) {
  ASSERT_TRUE(open());
  exec_sql("ALTER TABLE sku_stock RENAME COLUMN reserved TO held");
  auto sink = open_sink(url_);
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kFormat);
  EXPECT_NE(sink.status().message().find("table sku_stock has column held"), std::string::npos)
      << sink.status().message();
}

TEST_P(SinkTest, RefusesANewerSchemaVersion) {
  ASSERT_TRUE(open());
  exec_sql("INSERT INTO cdc_schema (version, applied_at_ms, description) VALUES (3, 0, 'future')");
  auto sink = open_sink(url_);
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kFormat);
  EXPECT_NE(sink.status().message().find("schema version 3 is newer than this build's version 2"),
            std::string::npos)
      << sink.status().message();
  // Nor does a version-2 database go back to version 1.
  exec_sql("DELETE FROM cdc_schema WHERE version = 3");
  auto old = open_sink(url_, nullptr, 1);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.status().code(), StatusCode::kFormat);
}

TEST_P(SinkTest, RefusesTablesThatAreNotAnFfeAnalyticsDatabase) {
  exec_sql("CREATE TABLE orders (id TEXT PRIMARY KEY)");
  auto sink = open_sink(url_);
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kFormat);
  EXPECT_NE(sink.status().message().find("no cdc_schema table"), std::string::npos)
      << sink.status().message();
}

INSTANTIATE_TEST_SUITE_P(Both, SinkTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         backend_name);

// ---- SQLite only -------------------------------------------------------------------------------

class SqliteSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "ffe-sink-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(SqliteSinkTest, RunsInWalMode) {
  const std::string url = "sqlite:" + dir_ + "/analytics.db";
  auto sink = open_sink(url);
  ASSERT_TRUE(sink) << sink.status().to_string();
  auto raw = internal::open_sqlite(url);
  ASSERT_TRUE(raw);
  auto mode = (*raw)->query("PRAGMA journal_mode");
  ASSERT_TRUE(mode);
  EXPECT_EQ((*mode)[0][0], "wal");  // persistent: any connection sees it
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/analytics.db-wal"));
}

TEST_F(SqliteSinkTest, NamesAMissingDirectory) {
  auto sink = open_sink("sqlite:" + dir_ + "/nope/analytics.db");
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kInvalidArgument);  // a configuration error: not retried
  EXPECT_NE(sink.status().message().find("directory " + dir_ + "/nope does not exist"),
            std::string::npos)
      << sink.status().message();
}

// A directory, or a file this process cannot write, will not heal by itself: refused
// (kInvalidArgument: ffe serve's start fails), not retried as an outage.
TEST_F(SqliteSinkTest, RefusesADirectoryOrAFileItCannotWrite) {
  auto directory = open_sink("sqlite:" + dir_);
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.status().code(), StatusCode::kInvalidArgument) << directory.status().to_string();
  EXPECT_NE(directory.status().message().find("is a directory"), std::string::npos) << directory.status().message();
  if (::geteuid() != 0) {  // root writes whatever the mode says
    const std::string file = dir_ + "/read-only.db";
    std::ofstream(file) << "";
    std::filesystem::permissions(file, std::filesystem::perms::owner_read);
    auto read_only = open_sink("sqlite:" + file);
    ASSERT_FALSE(read_only);
    EXPECT_EQ(read_only.status().code(), StatusCode::kInvalidArgument) << read_only.status().to_string();
  }
}

TEST_F(SqliteSinkTest, RefusesAnUnknownUrlOrSchemaVersion) {
  auto sink = open_sink("mysql://root:hunter2@127.0.0.1/x");
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sink.status().message().find("hunter2"), std::string::npos) << sink.status().message();
  // Nor a schema version this build does not know.
  auto future = open_sink("sqlite:" + dir_ + "/analytics.db", nullptr, kSchemaVersion + 1);
  ASSERT_FALSE(future);
  EXPECT_EQ(future.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/analytics.db")) << "refused before creating anything";
}

// ---- PostgreSQL only ---------------------------------------------------------------------------

TEST(PostgresSinkTest, DatabaseDownMeansIoErrorAndTheSameBatchAppliesOnceAfterItIsBack) {
  auto& pg = test::PgServer::shared();  // stopped and started again: the others share it
  ASSERT_TRUE(pg.status()) << pg.status().to_string();
  auto url = pg.create_schema("restart_test");
  ASSERT_TRUE(url) << url.status().to_string();
  auto opened = open_sink(*url);
  ASSERT_TRUE(opened) << opened.status().to_string();
  auto& sink = *opened;
  Batch b1 = batch(0, 0, 1);
  b1.orders = {order("o-1", 0, 1, "RESERVING", {kA})};
  ASSERT_TRUE(sink->apply(b1));

  ASSERT_TRUE(pg.stop());
  Batch b2 = batch(0, 1, 2);
  b2.orders = {order("o-1", 0, 2, "AUTHORIZING", {kA, kB})};
  auto down = sink->apply(b2);
  EXPECT_EQ(down.code(), StatusCode::kIoError) << down.to_string();
  // The reason, from a fresh connection attempt: not a stale connection's noise.
  EXPECT_NE(down.message().find("connecting"), std::string::npos) << down.message();
  EXPECT_EQ(sink->apply(b2).code(), StatusCode::kIoError);  // still down: still a clean error
  EXPECT_EQ(sink->checkpoints().status().code(), StatusCode::kIoError);
  EXPECT_EQ(open_sink(*url).status().code(), StatusCode::kIoError);

  ASSERT_TRUE(pg.start()) << pg.status().to_string();
  auto cps = sink->checkpoints();  // the same sink reconnects by itself
  ASSERT_TRUE(cps) << cps.status().to_string();
  EXPECT_EQ(*cps, (std::map<std::uint32_t, std::uint64_t>{{0, 1}})) << "nothing of b2 applied";
  ASSERT_TRUE(sink->apply(b2)) << sink->apply(b2).to_string();
  EXPECT_EQ(sink->apply(b2).code(), StatusCode::kInvalidArgument) << "applied exactly once";
  EXPECT_EQ(*sink->read_orders(0), b2.orders);
}

TEST(PostgresSinkTest, DescribeMasksThePassword) {
  auto& pg = test::PgServer::shared();
  ASSERT_TRUE(pg.status()) << pg.status().to_string();
  // Trust auth ignores the password; the point is that it never reaches a log line.
  std::string url = pg.url();
  url.replace(url.find("ffe@"), 4, "ffe:s3cret@");
  auto sink = open_sink(url);
  ASSERT_TRUE(sink) << sink.status().to_string();
  EXPECT_EQ((*sink)->describe().find("s3cret"), std::string::npos);
  EXPECT_NE((*sink)->describe().find("ffe:***@127.0.0.1"), std::string::npos);
}

TEST(PostgresSinkTest, AnUnreachableServerIsAnIoErrorNamingTheUrlWithoutItsPassword) {
  // Port 1: nothing listens there (tcpmux is long gone), so the connection is refused.
  auto sink = open_sink("postgresql://ffe:s3cret@127.0.0.1:1/ffe");
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().code(), StatusCode::kIoError);
  EXPECT_EQ(sink.status().message().find("s3cret"), std::string::npos) << sink.status().message();
  EXPECT_NE(sink.status().message().find("127.0.0.1:1"), std::string::npos) << sink.status().message();
}

// A URL or a database the server refuses will not heal by itself: kInvalidArgument (the start
// fails with it), not the kIoError of a server that is down (retried).
TEST(PostgresSinkTest, AMalformedUrlOrAMissingDatabaseIsRefusedNotRetried) {
  auto& pg = test::PgServer::shared();
  ASSERT_TRUE(pg.status()) << pg.status().to_string();
  std::string missing = pg.url();
  missing.replace(missing.rfind('/'), std::string::npos, "/no_such_db");
  auto no_db = open_sink(missing);
  ASSERT_FALSE(no_db);
  EXPECT_EQ(no_db.status().code(), StatusCode::kInvalidArgument) << no_db.status().to_string();
  EXPECT_NE(no_db.status().message().find("does not exist"), std::string::npos) << no_db.status().message();
  for (const char* bad : {"postgresql://ffe@127.0.0.1:notaport/ffe", "postgresql://ffe@127.0.0.1:1/ffe?sslmode=bogus",
                          "postgresql://ffe@127.0.0.1:1/ffe?nosuchoption=1"}) {
    auto sink = open_sink(bad);
    ASSERT_FALSE(sink) << bad;
    EXPECT_EQ(sink.status().code(), StatusCode::kInvalidArgument) << bad << ": " << sink.status().to_string();
  }
}

// libpq quotes a malformed password back ("invalid percent-encoded token: ..."), where the
// URL masking does not reach: it is masked all the same.
TEST(PostgresSinkTest, APasswordQuotedInLibpqsMessageIsMasked) {
  auto sink = open_sink("postgresql://ffe:SECRET%PW@127.0.0.1:1/ffe");
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.status().message().find("SECRET"), std::string::npos) << sink.status().message();
  auto encoded = open_sink("postgresql://ffe:p%41ssw0rd-x@127.0.0.1:1/ffe?connect_timeout=bad");
  ASSERT_FALSE(encoded);
  EXPECT_EQ(encoded.status().message().find("ssw0rd"), std::string::npos) << encoded.status().message();
}

}  // namespace
}  // namespace ffe::cdc
