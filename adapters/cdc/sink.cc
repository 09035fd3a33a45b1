// The sink's logic, one code path for SQLite and PostgreSQL (docs/cdc.md, "The sink"): the
// schema check and migration at open, the checkpoint guard, the upserts and the reads. The
// databases differ only behind internal::SqlConnection (sql_connection.h).

#include "adapters/cdc/sink.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>
#include <set>
#include <unordered_map>
#include <utility>

#include "adapters/cdc/schema.h"
#include "adapters/cdc/sql_connection.h"
#include "adapters/log/redact.h"
#include "events/assert.h"

namespace ffe::cdc {
namespace {

using internal::SqlConnection;
using internal::SqlRow;
using internal::SqlValue;
using storage::Result;
using storage::Status;
using storage::StatusCode;

// Rows per multi-row INSERT: one round trip for many rows, far below SQLite's 32766 and
// PostgreSQL's 65535 bound parameters (orders have 10 columns).
constexpr std::size_t kRowsPerStatementMax = 200;
// Multi-row statements come in these sizes only, so the connection's prepared-statement
// cache holds a few shapes per table instead of one per row count (a prepare of a
// 2,000-parameter statement costs more than the rows it writes).
constexpr std::size_t kRowsPerStatementSizes[] = {kRowsPerStatementMax, 64, 8, 1};

// The number of rows the next statement takes out of `remaining` (> 0).
std::size_t statement_rows(std::size_t remaining) {
  for (std::size_t size : kRowsPerStatementSizes) {
    if (size <= remaining) return size;
  }
  return 1;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t as_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }

// ---- values in and out -------------------------------------------------------------------

SqlValue order_value(const OrderRow& o, const std::string& column) {
  if (column == "order_id") return o.order_id;
  if (column == "customer_id") return o.customer_id;
  if (column == "state") return o.state;
  if (column == "terminal") return o.terminal;
  if (column == "total_cents") return o.total_cents;
  if (column == "shard") return static_cast<std::int64_t>(o.shard);
  if (column == "revision") return as_int(o.revision);
  if (column == "updated_at_ms") return o.updated_at_ms;
  if (column == "currency") return o.currency;
  if (column == "reason") return o.reason;
  FFE_ASSERT(false, "orders column without a value in order_value()");
  return std::int64_t{0};
}

SqlValue sku_value(const SkuRow& s, const std::string& column) {
  if (column == "sku") return s.sku;
  if (column == "on_hand") return s.on_hand;
  if (column == "reserved") return s.reserved;
  if (column == "shard") return static_cast<std::int64_t>(s.shard);
  if (column == "revision") return as_int(s.revision);
  FFE_ASSERT(false, "sku_stock column without a value in sku_value()");
  return std::int64_t{0};
}

Status bad_value(const std::string& where, const std::optional<std::string>& text) {
  return {StatusCode::kFormat, "analytics column " + where + " holds " +
                                   (text ? "'" + *text + "'" : std::string("NULL")) +
                                   ", not a value this build writes"};
}

Result<std::int64_t> parse_int(const std::optional<std::string>& text, const std::string& where) {
  std::int64_t v = 0;
  if (!text) return bad_value(where, text);
  const auto* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, v);
  if (ec != std::errc() || ptr != end) return bad_value(where, text);
  return v;
}

// SQLite returns a BOOLEAN column as "0"/"1", PostgreSQL as "f"/"t".
Result<bool> parse_bool(const std::optional<std::string>& text, const std::string& where) {
  if (text == "1" || text == "t" || text == "true") return true;
  if (text == "0" || text == "f" || text == "false") return false;
  return bad_value(where, text);
}

Status set_order_field(OrderRow& o, const std::string& column, const std::optional<std::string>& v) {
  const std::string where = "orders." + column;
  auto text = [&](std::string& out) -> Status {
    if (!v) return bad_value(where, v);
    out = *v;
    return Status::ok();
  };
  auto integer = [&](auto& out) -> Status {
    auto r = parse_int(v, where);
    if (!r) return r.status();
    out = static_cast<std::remove_reference_t<decltype(out)>>(*r);
    return Status::ok();
  };
  if (column == "order_id") return text(o.order_id);
  if (column == "customer_id") return text(o.customer_id);
  if (column == "state") return text(o.state);
  if (column == "terminal") {
    auto r = parse_bool(v, where);
    if (!r) return r.status();
    o.terminal = *r;
    return Status::ok();
  }
  if (column == "total_cents") return integer(o.total_cents);
  if (column == "shard") return integer(o.shard);
  if (column == "revision") return integer(o.revision);
  if (column == "updated_at_ms") return integer(o.updated_at_ms);
  if (column == "currency") return text(o.currency);
  if (column == "reason") return text(o.reason);
  FFE_ASSERT(false, "orders column without a field in set_order_field()");
  return Status::ok();
}

// "($1, $2, $3), ($4, $5, $6)" for `rows` rows of `width` values.
std::string placeholders(std::size_t rows, std::size_t width) {
  std::string out;
  std::size_t n = 1;
  for (std::size_t r = 0; r < rows; ++r) {
    out += r == 0 ? "(" : ", (";
    for (std::size_t c = 0; c < width; ++c) {
      if (c > 0) out += ", ";
      out += "$" + std::to_string(n++);
    }
    out += ")";
  }
  return out;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// INSERT ... ON CONFLICT (key) DO UPDATE SET every non-key column: the same text on both
// databases (SQLite 3.24+, PostgreSQL 9.5+).
std::string upsert_sql(std::string_view table, const std::vector<std::string>& columns,
                       std::string_view key, std::size_t rows) {
  std::string sql = "INSERT INTO " + std::string(table) + " (" + join(columns) + ") VALUES " +
                    placeholders(rows, columns.size()) + " ON CONFLICT (" + std::string(key) +
                    ") DO UPDATE SET ";
  bool first = true;
  for (const auto& c : columns) {
    if (c == key) continue;
    sql += (first ? "" : ", ") + c + " = excluded." + c;
    first = false;
  }
  return sql;
}

// Last occurrence wins: a batch's rows are states, and one statement may not touch a key
// twice (PostgreSQL refuses "ON CONFLICT DO UPDATE command cannot affect row a second time").
// `parts`: the rows of one batch, or of several shards' batches applied together.
template <typename Row, typename Key>
std::vector<const Row*> last_per_key(const std::vector<const std::vector<Row>*>& parts, Key key) {
  std::unordered_map<std::string_view, std::size_t> index;
  std::vector<const Row*> out;
  for (const auto* rows : parts) {
    for (const auto& r : *rows) {
      auto [it, inserted] = index.try_emplace(key(r), out.size());
      if (inserted) {
        out.push_back(&r);
      } else {
        out[it->second] = &r;
      }
    }
  }
  return out;
}

// ---- the sink ------------------------------------------------------------------------------

// SqlSink — owner: whoever open_sink() returned it to. Not thread-safe. Invariant: the
// database's tables are at schema version `version_` (checked or made so by open_sink()),
// and the columns it writes and reads are exactly those of that version.
class SqlSink final : public Sink {
 public:
  SqlSink(std::unique_ptr<SqlConnection> db, int version)
      : db_(std::move(db)),
        version_(version),
        order_columns_(schema::column_names(schema::table("orders"), version)),
        sku_columns_(schema::column_names(schema::table("sku_stock"), version)) {}

  void interrupt() override { db_->interrupt(); }

  Result<std::map<std::uint32_t, std::uint64_t>> checkpoints() override {
    auto rows = db_->query("SELECT shard, revision FROM cdc_checkpoint");
    if (!rows) return rows.status();
    std::map<std::uint32_t, std::uint64_t> out;
    for (const auto& row : *rows) {
      auto shard = parse_int(row[0], "cdc_checkpoint.shard");
      if (!shard) return shard.status();
      auto revision = parse_int(row[1], "cdc_checkpoint.revision");
      if (!revision) return revision.status();
      out[static_cast<std::uint32_t>(*shard)] = static_cast<std::uint64_t>(*revision);
    }
    return out;
  }

  Result<std::optional<std::pair<std::uint64_t, std::int64_t>>> last_order_change(std::uint32_t shard) override {
    auto rows = db_->query("SELECT revision, updated_at_ms FROM orders WHERE shard = $1 ORDER BY revision DESC LIMIT 1",
                           {static_cast<std::int64_t>(shard)});
    if (!rows) return rows.status();
    if (rows->empty()) return std::optional<std::pair<std::uint64_t, std::int64_t>>();
    auto revision = parse_int((*rows)[0][0], "orders.revision");
    if (!revision) return revision.status();
    auto updated = parse_int((*rows)[0][1], "orders.updated_at_ms");
    if (!updated) return updated.status();
    return std::optional<std::pair<std::uint64_t, std::int64_t>>(
        std::pair<std::uint64_t, std::int64_t>{static_cast<std::uint64_t>(*revision), *updated});
  }

  Status apply(const Batch& batch) override { return apply_all({&batch}); }

  Status apply_all(const std::vector<const Batch*>& batches) override {
    std::set<std::uint32_t> shards;
    for (const Batch* batch : batches) {
      if (batch->to_revision < batch->after_revision) {
        return {StatusCode::kInvalidArgument,
                "shard " + std::to_string(batch->shard) + ": batch to_revision " +
                    std::to_string(batch->to_revision) + " is below its after_revision " +
                    std::to_string(batch->after_revision)};
      }
      if (!shards.insert(batch->shard).second) {
        return {StatusCode::kInvalidArgument, "shard " + std::to_string(batch->shard) + ": two batches in one apply"};
      }
      if (auto s = check_shard(batch->shard, batch->orders, batch->skus); !s) return s;
    }
    return in_transaction([&]() -> Status {
      for (const Batch* batch : batches) {
        if (auto s = move_checkpoint(*batch); !s) return s;
      }
      // The shards' rows together: fuller multi-row statements are fewer statements.
      std::vector<const std::vector<OrderRow>*> orders;
      std::vector<const std::vector<SkuRow>*> skus;
      for (const Batch* batch : batches) {
        orders.push_back(&batch->orders);
        skus.push_back(&batch->skus);
      }
      return write_rows(orders, skus);
    });
  }

  Status backfill(std::uint32_t shard, const std::vector<OrderRow>& orders,
                  const std::vector<SkuRow>& skus) override {
    if (auto s = check_shard(shard, orders, skus); !s) return s;
    return in_transaction([&] { return write_rows({&orders}, {&skus}); });
  }

  Result<std::vector<OrderRow>> read_orders(std::uint32_t shard) override {
    std::vector<OrderRow> out;
    // One snapshot for orders and their lines (PostgreSQL: REPEATABLE READ; SQLite: one
    // read transaction), so a concurrent apply never shows an order with another's lines.
    auto status = in_transaction(
        [&]() -> Status {
          const std::vector<SqlValue> key{static_cast<std::int64_t>(shard)};
          auto rows = db_->query("SELECT " + join(order_columns_) + " FROM orders WHERE shard = $1", key);
          if (!rows) return rows.status();
          out.reserve(rows->size());
          for (const auto& row : *rows) {
            OrderRow o;
            for (std::size_t c = 0; c < order_columns_.size(); ++c) {
              if (auto s = set_order_field(o, order_columns_[c], row[c]); !s) return s;
            }
            out.push_back(std::move(o));
          }
          // Keys sort bytewise here, whatever the database's collation.
          std::sort(out.begin(), out.end(),
                    [](const OrderRow& a, const OrderRow& b) { return a.order_id < b.order_id; });
          std::unordered_map<std::string, OrderRow*> by_id;
          for (auto& o : out) by_id[o.order_id] = &o;
          auto lines = db_->query(
              "SELECT l.order_id, l.sku, l.qty, l.unit_price_cents FROM order_lines l JOIN orders o "
              "ON o.order_id = l.order_id WHERE o.shard = $1 ORDER BY l.order_id, l.line_no",
              key);
          if (!lines) return lines.status();
          for (const auto& row : *lines) {
            auto it = by_id.find(row[0].value_or(""));
            if (it == by_id.end() || !row[1]) return bad_value("order_lines.order_id", row[0]);
            OrderLineRow l;
            l.sku = *row[1];
            auto qty = parse_int(row[2], "order_lines.qty");
            if (!qty) return qty.status();
            auto price = parse_int(row[3], "order_lines.unit_price_cents");
            if (!price) return price.status();
            l.qty = *qty;
            l.unit_price_cents = *price;
            it->second->lines.push_back(std::move(l));
          }
          return Status::ok();
        },
        /*write=*/false);
    if (!status) return status;
    return out;
  }

  Result<std::vector<SkuRow>> read_skus(std::uint32_t shard) override {
    auto rows = db_->query("SELECT " + join(sku_columns_) + " FROM sku_stock WHERE shard = $1",
                           {static_cast<std::int64_t>(shard)});
    if (!rows) return rows.status();
    std::vector<SkuRow> out;
    out.reserve(rows->size());
    for (const auto& row : *rows) {
      SkuRow s;
      for (std::size_t c = 0; c < sku_columns_.size(); ++c) {
        const auto& column = sku_columns_[c];
        if (column == "sku") {
          if (!row[c]) return bad_value("sku_stock.sku", row[c]);
          s.sku = *row[c];
          continue;
        }
        auto v = parse_int(row[c], "sku_stock." + column);
        if (!v) return v.status();
        if (column == "on_hand") s.on_hand = *v;
        else if (column == "reserved") s.reserved = *v;
        else if (column == "shard") s.shard = static_cast<std::uint32_t>(*v);
        else if (column == "revision") s.revision = static_cast<std::uint64_t>(*v);
      }
      out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end(), [](const SkuRow& a, const SkuRow& b) { return a.sku < b.sku; });
    return out;
  }

  std::string describe() const override { return db_->describe(); }

 private:
  static Status check_shard(std::uint32_t shard, const std::vector<OrderRow>& orders,
                            const std::vector<SkuRow>& skus) {
    auto wrong = [&](const std::string& what, std::uint32_t row_shard) {
      return Status{StatusCode::kInvalidArgument,
                    what + " belongs to shard " + std::to_string(row_shard) +
                        ", not to the batch's shard " + std::to_string(shard)};
    };
    for (const auto& o : orders) {
      if (o.shard != shard) return wrong("order " + o.order_id, o.shard);
    }
    for (const auto& s : skus) {
      if (s.shard != shard) return wrong("sku " + s.sku, s.shard);
    }
    return Status::ok();
  }

  // Inside the caller's transaction: the guard and the shard's new checkpoint.
  Status move_checkpoint(const Batch& batch) {
    const std::vector<SqlValue> shard{static_cast<std::int64_t>(batch.shard)};
    // The row exists from the shard's first batch on (revision 0 until a change).
    auto created = db_->exec(
        "INSERT INTO cdc_checkpoint (shard, revision) VALUES ($1, 0) ON CONFLICT (shard) DO NOTHING", shard);
    if (!created) return created.status();
    // The guard and the new checkpoint in one statement: a concurrent writer of the same
    // shard waits on the row lock and then finds the revision moved.
    auto moved = db_->exec("UPDATE cdc_checkpoint SET revision = $1 WHERE shard = $2 AND revision = $3",
                           {as_int(batch.to_revision), static_cast<std::int64_t>(batch.shard),
                            as_int(batch.after_revision)});
    if (!moved) return moved.status();
    if (*moved == 1) return Status::ok();
    auto stored = db_->query("SELECT revision FROM cdc_checkpoint WHERE shard = $1", shard);
    if (!stored) return stored.status();
    const std::string now = stored->empty() || !(*stored)[0][0] ? "?" : *(*stored)[0][0];
    return {StatusCode::kInvalidArgument,
            "shard " + std::to_string(batch.shard) + ": the sink's checkpoint is revision " + now +
                " but the batch applies after revision " + std::to_string(batch.after_revision) + " (up to " +
                std::to_string(batch.to_revision) + "): already applied or a gap; nothing written"};
  }

  // Runs `body` in a transaction: commits when it returns OK, rolls back otherwise.
  Status in_transaction(const std::function<Status()>& body, bool write = true) {
    if (auto s = db_->begin(write); !s) return s;
    Status s = body();
    if (s) s = db_->commit();
    // Also after a failed COMMIT: SQLite leaves the transaction open then, and the next
    // BEGIN would fail.
    if (!s) db_->rollback();
    return s;
  }

  // Runs the statement `sql(rows)` over `values`, `width` per row, in chunks of the fixed
  // statement sizes (statement_rows), so SQLite's statement cache keeps them prepared.
  Status exec_in_chunks(const std::vector<SqlValue>& values, std::size_t width,
                        const std::function<std::string(std::size_t)>& sql) {
    const std::size_t total = values.size() / width;
    for (std::size_t done = 0, rows = 0; done < total; done += rows) {
      rows = statement_rows(total - done);
      std::vector<SqlValue> chunk(values.begin() + static_cast<std::ptrdiff_t>(done * width),
                                  values.begin() + static_cast<std::ptrdiff_t>((done + rows) * width));
      auto executed = db_->exec(sql(rows), chunk);
      if (!executed) return executed.status();
    }
    return Status::ok();
  }

  // Upserts orders (lines replaced as a whole) and SKUs, inside the caller's transaction.
  Status write_rows(const std::vector<const std::vector<OrderRow>*>& orders,
                    const std::vector<const std::vector<SkuRow>*>& skus) {
    const auto order_rows = last_per_key(orders, [](const OrderRow& o) { return std::string_view(o.order_id); });
    const auto sku_rows = last_per_key(skus, [](const SkuRow& s) { return std::string_view(s.sku); });
    const auto& key = order_columns_.front();  // order_id

    for (std::size_t begin = 0, end = 0; begin < order_rows.size(); begin = end) {
      end = begin + statement_rows(order_rows.size() - begin);
      std::vector<SqlValue> values;
      std::vector<SqlValue> ids;  // orders whose lines are (re)written
      for (auto i = begin; i < end; ++i) {
        for (const auto& c : order_columns_) values.push_back(order_value(*order_rows[i], c));
        if (!order_rows[i]->lines_stored) ids.emplace_back(order_rows[i]->order_id);
      }
      auto up = db_->exec(upsert_sql("orders", order_columns_, key, end - begin), values);
      if (!up) return up.status();
      auto del = exec_in_chunks(ids, 1, [](std::size_t rows) {
        return "DELETE FROM order_lines WHERE order_id IN " + placeholders(1, rows);
      });
      if (!del) return del;
    }

    std::vector<SqlValue> line_values;
    std::size_t line_rows = 0;
    static constexpr std::size_t kLineColumns = 5;
    auto flush_lines = [&]() -> Status {
      Status inserted = exec_in_chunks(line_values, kLineColumns, [](std::size_t rows) {
        return "INSERT INTO order_lines (order_id, line_no, sku, qty, unit_price_cents) VALUES " +
               placeholders(rows, kLineColumns);
      });
      line_values.clear();
      line_rows = 0;
      return inserted;
    };
    for (const auto* o : order_rows) {
      if (o->lines_stored) continue;
      for (std::size_t n = 0; n < o->lines.size(); ++n) {
        const auto& l = o->lines[n];
        line_values.insert(line_values.end(), {o->order_id, static_cast<std::int64_t>(n), l.sku,
                                               l.qty, l.unit_price_cents});
        if (++line_rows == kRowsPerStatementMax) {
          if (auto s = flush_lines(); !s) return s;
        }
      }
    }
    if (auto s = flush_lines(); !s) return s;

    for (std::size_t begin = 0, end = 0; begin < sku_rows.size(); begin = end) {
      end = begin + statement_rows(sku_rows.size() - begin);
      std::vector<SqlValue> values;
      for (auto i = begin; i < end; ++i) {
        for (const auto& c : sku_columns_) values.push_back(sku_value(*sku_rows[i], c));
      }
      auto up = db_->exec(upsert_sql("sku_stock", sku_columns_, "sku", end - begin), values);
      if (!up) return up.status();
    }
    return Status::ok();
  }

  std::unique_ptr<SqlConnection> db_;
  int version_;
  std::vector<std::string> order_columns_;
  std::vector<std::string> sku_columns_;
};

// ---- open: create, check, migrate ------------------------------------------------------------

Status refuse(const SqlConnection& db, const std::string& why) {
  return {StatusCode::kFormat, db.describe() + ": " + why};
}

Status record_version(SqlConnection& db, int version, const std::string& description) {
  return db
      .exec("INSERT INTO cdc_schema (version, applied_at_ms, description) VALUES ($1, $2, $3)",
            {std::int64_t{version}, now_ms(), description})
      .status();
}

// Brings the database to `target` or says why not; fills `m`.
Status prepare_schema(SqlConnection& db, int target, SinkTables tables, Migration& m) {
  std::map<std::string, std::vector<std::string>, std::less<>> existing;
  std::vector<std::string> present;
  for (const auto& t : schema::tables()) {
    auto cols = db.columns(std::string(t.name));
    if (!cols) return cols.status();
    if (!cols->empty()) present.emplace_back(t.name);
    existing[std::string(t.name)] = std::move(*cols);
  }

  if (present.empty() && tables == SinkTables::kMustExist) {
    return refuse(db, "no ffe analytics tables here; has `ffe serve` run CDC into it?");
  }
  if (present.empty()) {  // a new database: every table at `target`, in one transaction
    if (auto s = db.begin(true); !s) return s;
    Status s;
    for (const auto& t : schema::tables()) {
      if (s = db.exec(schema::create_table_sql(t, target)).status(); !s) break;
    }
    if (s) s = record_version(db, target, "created at version " + std::to_string(target));
    if (!s) {
      db.rollback();
      return s;
    }
    if (s = db.commit(); !s) {
      db.rollback();
      return s;
    }
    m = Migration{0, target, {}};
    return Status::ok();
  }

  if (existing["cdc_schema"].empty()) {
    return refuse(db, "has table " + present.front() +
                          " but no cdc_schema table: not an ffe analytics database (or one "
                          "made by hand); use another database or drop those tables");
  }
  auto version_rows = db.query("SELECT MAX(version) FROM cdc_schema");
  if (!version_rows) return version_rows.status();
  if (version_rows->empty() || !(*version_rows)[0][0]) {
    return refuse(db, "table cdc_schema is empty: the schema version is unknown");
  }
  auto recorded = parse_int((*version_rows)[0][0], "cdc_schema.version");
  if (!recorded) return recorded.status();
  const int from = static_cast<int>(*recorded);
  if (from > kSchemaVersion) {
    return refuse(db, "its analytics schema version " + std::to_string(from) +
                          " is newer than this build's version " + std::to_string(kSchemaVersion) +
                          ": run a newer ffe, or point --analytics at another database");
  }
  if (from > target) {
    return refuse(db, "its analytics schema version " + std::to_string(from) +
                          " is newer than the version asked for, " + std::to_string(target));
  }
  if (from < schema::kOldestVersion) {
    return refuse(db, "its analytics schema version " + std::to_string(from) + " is unknown");
  }

  for (const auto& t : schema::tables()) {
    const auto& cols = existing[std::string(t.name)];
    if (cols.empty()) {
      return refuse(db, "table " + std::string(t.name) + " of schema version " +
                            std::to_string(from) + " is missing");
    }
    for (const auto& c : cols) {
      if (!schema::declares(t, c)) {
        return refuse(db, "table " + std::string(t.name) + " has column " + c +
                              ", which this build (analytics schema version " +
                              std::to_string(kSchemaVersion) +
                              ") does not declare: columns are only ever added, and a removed "
                              "or renamed column is refused (docs/cdc.md, \"Migration rules\")");
      }
    }
    for (const auto& c : schema::column_names(t, from)) {
      if (std::find(cols.begin(), cols.end(), c) == cols.end()) {
        return refuse(db, "table " + std::string(t.name) + " lacks column " + c +
                              " of analytics schema version " + std::to_string(from) +
                              ": a removed or renamed column is refused (docs/cdc.md, "
                              "\"Migration rules\")");
      }
    }
  }

  m = Migration{from, target, {}};
  if (from == target) return Status::ok();

  // Every step in one transaction (both databases have transactional DDL): a crash leaves
  // the database at `from` or at `target`, never in between.
  if (auto s = db.begin(true); !s) return s;
  Status s;
  for (int v = from + 1; v <= target && s; ++v) {
    for (const auto& t : schema::tables()) {
      const auto& cols = existing[std::string(t.name)];
      for (const auto& c : t.columns) {
        if (c.since_version != v) continue;
        if (std::find(cols.begin(), cols.end(), c.name) != cols.end()) continue;
        if (s = db.exec(schema::add_column_sql(t, c)).status(); !s) break;
        m.added_columns.push_back(std::string(t.name) + "." + std::string(c.name));
      }
      if (!s) break;
    }
    if (s) s = record_version(db, v, "migrated from " + std::to_string(v - 1) + ": added " +
                                          schema::version_description(v));
  }
  if (s) s = db.commit();
  if (!s) {
    db.rollback();
    m.added_columns.clear();
  }
  return s;
}

}  // namespace

bool is_sink_url(std::string_view url) {
  return url.starts_with("sqlite:") || url.starts_with("postgresql://") || url.starts_with("postgres://");
}

storage::Result<std::unique_ptr<Sink>> open_sink(const std::string& url, Migration* migration,
                                                 int schema_version, SinkTables tables) {
  if (schema_version < schema::kOldestVersion || schema_version > kSchemaVersion) {
    return Status{StatusCode::kInvalidArgument,
                  "analytics schema version " + std::to_string(schema_version) +
                      " is not one this build knows (" + std::to_string(schema::kOldestVersion) +
                      ".." + std::to_string(kSchemaVersion) + ")"};
  }
  if (!is_sink_url(url)) {
    return Status{StatusCode::kInvalidArgument,
                  "--analytics: '" + log::redact_url(url) + "' is neither sqlite:PATH nor a postgresql:// URL"};
  }
  Result<std::unique_ptr<SqlConnection>> db =
      url.starts_with("sqlite:") ? internal::open_sqlite(url, /*create=*/tables == SinkTables::kCreateMissing)
                                 : internal::open_postgres(url);
  if (!db) return db.status();
  Migration m;
  if (auto s = prepare_schema(**db, schema_version, tables, m); !s) return s;
  if (migration) *migration = m;
  return std::unique_ptr<Sink>(std::make_unique<SqlSink>(std::move(*db), schema_version));
}

}  // namespace ffe::cdc
