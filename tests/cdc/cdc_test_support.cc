#include "tests/cdc/cdc_test_support.h"

#include <sqlite3.h>

#include <chrono>
#include <future>
#include <map>

#include "adapters/cdc/drift.h"
#include "tests/runtime/crash_support.h"

namespace ffe::cdc::testing {

bool receive_stock(runtime::Runtime& runtime, int skus, std::int64_t units) {
  for (int k = 1; k <= skus; ++k) {
    const std::string sku = "sku-" + std::to_string(k);
    auto ack = runtime::testing::submit_and_wait(runtime, runtime::testing::receive(sku, units, "r-" + sku));
    if (!ack) return false;
  }
  return true;
}

v1::PlaceOrder order_number(const std::string& id, int n, int skus) {
  const std::string token = n % 7 == 3 ? "tok_decline" : "tok_visa";
  const std::string country = n % 11 == 5 ? "XX" : "US";
  v1::PlaceOrder order =
      runtime::testing::place_order(id, "sku-" + std::to_string(1 + n % skus), 1 + n % 3, token, 0, country);
  if (n % 2 == 0) {
    v1::OrderLine* line = order.add_lines();
    line->set_sku("sku-" + std::to_string(1 + (n / 2) % skus));
    line->set_qty(1);
    line->set_unit_price_cents(250 + n % 100);
    if (line->sku() == order.lines(0).sku()) order.mutable_lines()->RemoveLast();  // one line per SKU
  }
  return order;
}

std::string drift_of(const storage::Journal& journal, Sink& sink, std::uint64_t* orders) {
  std::string out;
  std::uint64_t compared = 0;
  for (storage::ShardId shard : journal.shards()) {
    auto drift = compare_shard(journal, sink, shard, 5);
    if (!drift) return "shard " + std::to_string(shard.value) + ": " + drift.status().to_string();
    compared += drift->orders;
    for (const std::string& line : drift->differences) out += "shard " + std::to_string(shard.value) + ": " + line + "\n";
    if (drift->drift() > 0 && drift->differences.empty()) out += "shard " + std::to_string(shard.value) + ": drift\n";
  }
  if (orders != nullptr) *orders = compared;
  return out;
}

namespace {

std::string exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    return message;
  }
  return "";
}

std::string strip_scheme(const std::string& path) { return path.starts_with("sqlite:") ? path.substr(7) : path; }

}  // namespace

std::string install_sqlite_audit(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(strip_scheme(path).c_str(), &db) != SQLITE_OK) {
    std::string message = sqlite3_errmsg(db);
    sqlite3_close(db);
    return message;
  }
  sqlite3_busy_timeout(db, 10'000);
  const std::string error = exec(db, R"sql(
    CREATE TABLE IF NOT EXISTS test_audit_orders (seq INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT, revision INTEGER);
    CREATE TABLE IF NOT EXISTS test_audit_checkpoints (seq INTEGER PRIMARY KEY AUTOINCREMENT, shard INTEGER,
                                                       old_revision INTEGER, new_revision INTEGER);
    CREATE TRIGGER IF NOT EXISTS test_audit_order_insert AFTER INSERT ON orders BEGIN
      INSERT INTO test_audit_orders (order_id, revision) VALUES (NEW.order_id, NEW.revision); END;
    CREATE TRIGGER IF NOT EXISTS test_audit_order_update AFTER UPDATE ON orders BEGIN
      INSERT INTO test_audit_orders (order_id, revision) VALUES (NEW.order_id, NEW.revision); END;
    CREATE TRIGGER IF NOT EXISTS test_audit_checkpoint AFTER UPDATE ON cdc_checkpoint
      WHEN OLD.revision != NEW.revision BEGIN
      INSERT INTO test_audit_checkpoints (shard, old_revision, new_revision)
        VALUES (NEW.shard, OLD.revision, NEW.revision); END;
  )sql");
  sqlite3_close(db);
  return error;
}

std::string sqlite_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(strip_scheme(path).c_str(), &db) != SQLITE_OK) {
    std::string message = sqlite3_errmsg(db);
    sqlite3_close(db);
    return message;
  }
  sqlite3_busy_timeout(db, 10'000);
  const std::string error = exec(db, sql);
  sqlite3_close(db);
  return error;
}

SqliteLock::SqliteLock(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(strip_scheme(path).c_str(), &db) != SQLITE_OK) {
    error = sqlite3_errmsg(db);
    sqlite3_close(db);
    return;
  }
  db_ = db;
  sqlite3_busy_timeout(db, 10'000);
  error = exec(db, "BEGIN EXCLUSIVE");
}

SqliteLock::~SqliteLock() {
  auto* db = static_cast<sqlite3*>(db_);
  if (db == nullptr) return;
  if (error.empty()) exec(db, "ROLLBACK");
  sqlite3_close(db);
}

Audit read_sqlite_audit(const std::string& path) {
  Audit audit;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(strip_scheme(path).c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    audit.error = sqlite3_errmsg(db);
    sqlite3_close(db);
    return audit;
  }
  sqlite3_busy_timeout(db, 10'000);
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT order_id, revision FROM test_audit_orders ORDER BY seq", -1, &statement,
                         nullptr) != SQLITE_OK) {
    audit.error = sqlite3_errmsg(db);
    sqlite3_close(db);
    return audit;
  }
  std::map<std::pair<std::string, std::int64_t>, int> seen;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    const std::string id = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    const std::int64_t revision = sqlite3_column_int64(statement, 1);
    ++audit.order_writes;
    if (++seen[{id, revision}] > 1) {
      ++audit.duplicate_writes;
      if (audit.first_problem.empty()) {
        audit.first_problem = "order " + id + " at revision " + std::to_string(revision) + " written twice";
      }
    }
  }
  sqlite3_finalize(statement);
  if (sqlite3_prepare_v2(db, "SELECT shard, old_revision, new_revision FROM test_audit_checkpoints ORDER BY seq", -1,
                         &statement, nullptr) != SQLITE_OK) {
    audit.error = sqlite3_errmsg(db);
    sqlite3_close(db);
    return audit;
  }
  std::map<std::int64_t, std::int64_t> last;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    const std::int64_t shard = sqlite3_column_int64(statement, 0);
    const std::int64_t from = sqlite3_column_int64(statement, 1);
    const std::int64_t to = sqlite3_column_int64(statement, 2);
    ++audit.checkpoint_moves;
    auto it = last.find(shard);
    if ((it != last.end() && it->second != from) || to <= from) {
      ++audit.chain_breaks;
      if (audit.first_problem.empty()) {
        audit.first_problem = "shard " + std::to_string(shard) + ": checkpoint moved " + std::to_string(from) +
                              " -> " + std::to_string(to) + " after " +
                              (it == last.end() ? std::string("nothing") : std::to_string(it->second));
      }
    }
    last[shard] = to;
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return audit;
}

}  // namespace ffe::cdc::testing
