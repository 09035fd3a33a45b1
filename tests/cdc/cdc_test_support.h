#pragma once
// Shared by the CDC tests (pipeline_test.cc, crash_test.cc) and their helper process
// (cdc_child.cc): an order workload over a Runtime, the drift of every shard, and a
// test-only audit of the SQLite tables (triggers that record every write of an order row
// and every move of a checkpoint), which is how "no change applied twice" is checked.
// No gtest here, so the helper binary can use it.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/runtime/runtime.h"
#include "adapters/cdc/sink.h"

namespace ffe::cdc::testing {

// Receipts of `units` for sku-1..sku-<skus> (idempotent receipt ids "r-sku-<k>").
bool receive_stock(runtime::Runtime& runtime, int skus, std::int64_t units);

// The PlaceOrder of order `id` number `n`: one or two lines over sku-1..sku-<skus>; every
// 7th declined (tok_decline), every 11th with shipTo country XX (shipment FAILED): so the
// tables see FULFILLED, CANCELLED and the compensations in between.
v1::PlaceOrder order_number(const std::string& id, int n, int skus);

// Drift of every shard of the journal against the sink; "" when clean, else the first
// differences (one per line). `orders` receives the order rows compared.
std::string drift_of(const storage::Journal& journal, Sink& sink, std::uint64_t* orders = nullptr);

// SQLite only. Adds the audit tables and triggers to a database whose tables exist.
std::string install_sqlite_audit(const std::string& path);
struct Audit {
  std::uint64_t order_writes = 0;       // writes of an order row
  std::uint64_t duplicate_writes = 0;   // writes of an (order_id, revision) written before
  std::uint64_t checkpoint_moves = 0;   // checkpoint updates that moved it
  std::uint64_t chain_breaks = 0;       // a move whose old revision was not the last new one
  std::string first_problem;
  std::string error;                    // reading failed
};
Audit read_sqlite_audit(const std::string& path);
// Runs SQL on a SQLite database ("sqlite:PATH" or PATH); "" or the error.
std::string sqlite_exec(const std::string& path, const std::string& sql);

// Holds a SQLite database locked (BEGIN EXCLUSIVE on a connection of its own) until
// destroyed: every other writer waits out its busy timeout and fails. `error` is "" once held.
class SqliteLock {
 public:
  explicit SqliteLock(const std::string& path);
  ~SqliteLock();
  SqliteLock(const SqliteLock&) = delete;
  SqliteLock& operator=(const SqliteLock&) = delete;
  std::string error;

 private:
  void* db_ = nullptr;  // sqlite3*
};

}  // namespace ffe::cdc::testing
