#include "adapters/cdc/schema.h"

#include <array>

#include "adapters/cdc/sink.h"
#include "events/assert.h"

namespace ffe::cdc::schema {
namespace {

// Version 1: the ARCHITECTURE.md contract columns, plus order_lines.line_no (a line's
// position in the order, 0-based: PostgreSQL has no insertion order, so read-back keeps the
// order placed by sorting on it). Version 2: orders.currency and orders.reason.
constexpr std::array kOrders{
    ColumnDef{"order_id", "TEXT NOT NULL", 1},
    ColumnDef{"customer_id", "TEXT NOT NULL", 1},
    ColumnDef{"state", "TEXT NOT NULL", 1},
    ColumnDef{"terminal", "BOOLEAN NOT NULL", 1},
    ColumnDef{"total_cents", "BIGINT NOT NULL", 1},
    ColumnDef{"shard", "BIGINT NOT NULL", 1},
    ColumnDef{"revision", "BIGINT NOT NULL", 1},
    ColumnDef{"updated_at_ms", "BIGINT NOT NULL", 1},
    ColumnDef{"currency", "TEXT NOT NULL DEFAULT ''", 2},
    ColumnDef{"reason", "TEXT NOT NULL DEFAULT ''", 2},
};
constexpr std::array kOrderLines{
    ColumnDef{"order_id", "TEXT NOT NULL", 1},
    ColumnDef{"line_no", "BIGINT NOT NULL", 1},
    ColumnDef{"sku", "TEXT NOT NULL", 1},
    ColumnDef{"qty", "BIGINT NOT NULL", 1},
    ColumnDef{"unit_price_cents", "BIGINT NOT NULL", 1},
};
constexpr std::array kSkuStock{
    ColumnDef{"sku", "TEXT NOT NULL", 1},
    ColumnDef{"on_hand", "BIGINT NOT NULL", 1},
    ColumnDef{"reserved", "BIGINT NOT NULL", 1},
    ColumnDef{"shard", "BIGINT NOT NULL", 1},
    ColumnDef{"revision", "BIGINT NOT NULL", 1},
};
constexpr std::array kCheckpoint{
    ColumnDef{"shard", "BIGINT NOT NULL", 1},
    ColumnDef{"revision", "BIGINT NOT NULL", 1},
};
// One row per version applied to this database (created at, or migrated to).
constexpr std::array kSchemaTable{
    ColumnDef{"version", "BIGINT NOT NULL", 1},
    ColumnDef{"applied_at_ms", "BIGINT NOT NULL", 1},
    ColumnDef{"description", "TEXT NOT NULL", 1},
};

const std::array kTables{
    TableDef{"orders", kOrders, "order_id"},
    TableDef{"order_lines", kOrderLines, "order_id, line_no"},
    TableDef{"sku_stock", kSkuStock, "sku"},
    TableDef{"cdc_checkpoint", kCheckpoint, "shard"},
    TableDef{"cdc_schema", kSchemaTable, "version"},
};

}  // namespace

std::span<const TableDef> tables() { return kTables; }

const TableDef& table(std::string_view name) {
  for (const auto& t : kTables) {
    if (t.name == name) return t;
  }
  FFE_ASSERT(false, "unknown analytics table");
  return kTables[0];
}

std::vector<std::string> column_names(const TableDef& t, int version) {
  std::vector<std::string> out;
  for (const auto& c : t.columns) {
    if (c.since_version <= version) out.emplace_back(c.name);
  }
  return out;
}

bool declares(const TableDef& t, std::string_view column) {
  for (const auto& c : t.columns) {
    if (c.name == column) return true;
  }
  return false;
}

std::string create_table_sql(const TableDef& t, int version) {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + std::string(t.name) + " (";
  for (const auto& c : t.columns) {
    if (c.since_version > version) continue;
    sql += std::string(c.name) + " " + std::string(c.ddl) + ", ";
  }
  sql += "PRIMARY KEY (" + std::string(t.primary_key) + "))";
  return sql;
}

std::string add_column_sql(const TableDef& t, const ColumnDef& c) {
  return "ALTER TABLE " + std::string(t.name) + " ADD COLUMN " + std::string(c.name) + " " +
         std::string(c.ddl);
}

std::string version_description(int version) {
  switch (version) {
    case 1: return "orders, order_lines, sku_stock, cdc_checkpoint (the v1 contract)";
    case 2: return "orders.currency, orders.reason";
    default: return "version " + std::to_string(version);
  }
}

static_assert(kSchemaVersion == 2, "a new schema version needs its columns and description here");

}  // namespace ffe::cdc::schema
