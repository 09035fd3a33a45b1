#pragma once
// The analytics sink: one small interface in front of SQLite (the embedded default) and
// PostgreSQL, so the CDC pipeline (adapters/cdc/pipeline.h) has one code path for both
// (ARCHITECTURE.md, "Analytics tables"; docs/cdc.md).
//
// The pipeline reads a shard's journal in revision order and hands the sink batches of
// rows: each row is an entity's state as of the batch's last revision. The sink writes the
// rows AND the shard's new checkpoint revision in ONE transaction, and only if the stored
// checkpoint is still the batch's `after_revision`: that check is what makes a batch
// applied exactly once, whatever crashes and retries happen around it.
//
// No sqlite3.h or pqxx header here: the implementations hide behind this interface.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace ffe::cdc {

struct OrderLineRow {
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  friend bool operator==(const OrderLineRow&, const OrderLineRow&) = default;
};

// A row of `orders` (and its `order_lines`): the order as of the batch revision.
struct OrderRow {
  std::string order_id;
  std::string customer_id;
  std::string state;  // the contract's state name: "RESERVING", ..., "FULFILLED"
  bool terminal = false;
  std::int64_t total_cents = 0;
  std::uint32_t shard = 0;
  std::uint64_t revision = 0;  // the order's mod_revision
  std::int64_t updated_at_ms = 0;  // commit time of that revision
  // Columns of schema version 2 and later (docs/cdc.md, "Schema versions").
  std::string currency;
  std::string reason;
  std::vector<OrderLineRow> lines;  // in the order placed
  // Set by the CDC pipeline when the order existed at the batch's after_revision: the sink
  // already holds its lines from that earlier batch, and an order's lines never change after
  // it is placed, so apply() upserts only its `orders` row. Rows read back leave it false.
  bool lines_stored = false;
  friend bool operator==(const OrderRow&, const OrderRow&) = default;
};

// A row of `sku_stock`.
struct SkuRow {
  std::string sku;
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  std::uint32_t shard = 0;
  std::uint64_t revision = 0;  // the SKU's mod_revision
  friend bool operator==(const SkuRow&, const SkuRow&) = default;
};

// One transaction's worth of changes of one shard: revisions (after_revision, to_revision].
struct Batch {
  std::uint32_t shard = 0;
  std::uint64_t after_revision = 0;  // the checkpoint the sink must hold now
  std::uint64_t to_revision = 0;     // the checkpoint the transaction stores
  std::vector<OrderRow> orders;      // upserted; an order's lines are replaced as a whole
  std::vector<SkuRow> skus;          // upserted
};

// What open() did to the schema, for the log and for the backfill: the columns it added
// (as "table.column") need their values from state for rows written before.
struct Migration {
  int from_version = 0;  // 0: the tables were created now
  int to_version = 0;
  std::vector<std::string> added_columns;
};

// Sink — owner: one CDC pipeline (or `ffe drift`). Not thread-safe: one caller at a time.
class Sink {
 public:
  virtual ~Sink() = default;

  // The stored checkpoint of every shard that has one (absent: nothing applied yet, 0).
  virtual storage::Result<std::map<std::uint32_t, std::uint64_t>> checkpoints() = 0;

  // The shard's order row of the highest revision, as {revision, updated_at_ms} (nullopt: the
  // shard has no order row). updated_at_ms is the commit time of that revision in the journal
  // the rows came from, so the pipeline can tell tables of another history whose checkpoint
  // the journal has already passed (docs/cdc.md, "Tables of another data dir").
  virtual storage::Result<std::optional<std::pair<std::uint64_t, std::int64_t>>> last_order_change(
      std::uint32_t /*shard*/) {
    return std::optional<std::pair<std::uint64_t, std::int64_t>>();
  }

  // Writes the rows and the checkpoint in one transaction. kConflict-like refusal: if the
  // stored checkpoint is not batch.after_revision nothing is written and the status is
  // kInvalidArgument naming both revisions (the pipeline re-reads its checkpoint).
  // kIoError when the database is unreachable or refuses the write (nothing applied; the
  // caller retries the same batch later).
  virtual storage::Status apply(const Batch& batch) = 0;

  // apply() for batches of distinct shards, all in ONE transaction: every batch's guard holds
  // and all are written, or nothing is (the first refusal or error is returned).
  virtual storage::Status apply_all(const std::vector<const Batch*>& batches) = 0;

  // Backfill after a migration: upserts rows WITHOUT touching the checkpoint; only rows of
  // entities whose stored revision is <= the shard's checkpoint are meant to be passed.
  virtual storage::Status backfill(std::uint32_t shard, const std::vector<OrderRow>& orders,
                                   const std::vector<SkuRow>& skus) = 0;

  // Reads for `ffe drift` and tests: every row of a shard, sorted by key.
  virtual storage::Result<std::vector<OrderRow>> read_orders(std::uint32_t shard) = 0;
  virtual storage::Result<std::vector<SkuRow>> read_skus(std::uint32_t shard) = 0;

  // "sqlite:/path/analytics.db" or "postgresql://user@127.0.0.1:5432/db" with any password
  // replaced by "***" (ffe::log::redact_url, adapters/log/redact.h), for logs.
  virtual std::string describe() const = 0;

  // Thread-safe, unlike the rest: a call in progress on another thread fails at once, and so
  // does every later one (SqlConnection::interrupt). For a pipeline that is stopping.
  virtual void interrupt() {}
};

// The newest schema version this build writes (docs/cdc.md lists each version's columns).
inline constexpr int kSchemaVersion = 2;

// Whether `url` names a database open_sink speaks: "sqlite:PATH", "postgresql://..." or
// "postgres://..." (checked by its scheme only).
bool is_sink_url(std::string_view url);

// Opens the sink named by `url` ("sqlite:PATH" or "postgresql://..."), creating its tables
// or migrating them to `schema_version` (tests may ask for an older one to build a fixture).
// Refuses, with a message naming the table and column, a database whose tables have a
// column this build does not know (a removed or renamed column) or whose schema version is
// newer than this build's. `migration`, when given, receives what was done.
// kMustExist (ffe drift): a database without ffe's tables is refused before anything is
// written to it, instead of getting them.
enum class SinkTables { kCreateMissing, kMustExist };
storage::Result<std::unique_ptr<Sink>> open_sink(const std::string& url, Migration* migration = nullptr,
                                                 int schema_version = kSchemaVersion,
                                                 SinkTables tables = SinkTables::kCreateMissing);

}  // namespace ffe::cdc
