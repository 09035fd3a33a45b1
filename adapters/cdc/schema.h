#pragma once
// The analytics schema as data (docs/cdc.md, "Schema versions"): every table's columns, each
// with the schema version that introduced it, and the DDL both SQL dialects accept. Internal
// to ffe_cdc_sink: the pipeline sees only adapters/cdc/sink.h.
//
// Rules the tables below must keep (they are what makes migration safe):
//   1. A column, once released, is never removed, renamed or retyped: a new version only
//      appends columns, each NOT NULL with a DEFAULT (so ALTER TABLE ADD COLUMN fills old
//      rows) or nullable.
//   2. Every table exists since version 1 (a later table would need a CREATE on migration).
//   3. The same DDL text runs on SQLite and PostgreSQL: BIGINT, TEXT and BOOLEAN only
//      (SQLite gives them INTEGER, TEXT and NUMERIC affinity; a bool binds as 0/1).

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ffe::cdc::schema {

// The oldest version this build can create or migrate from.
inline constexpr int kOldestVersion = 1;

struct ColumnDef {
  std::string_view name;
  std::string_view ddl;  // type and constraints, e.g. "TEXT NOT NULL DEFAULT ''"
  int since_version;
};

struct TableDef {
  std::string_view name;
  std::span<const ColumnDef> columns;  // in table order; the first ones form the key
  std::string_view primary_key;        // "order_id" or "order_id, line_no"
};

// orders, order_lines, sku_stock, cdc_checkpoint, cdc_schema: every table the sink owns.
std::span<const TableDef> tables();
const TableDef& table(std::string_view name);  // FFE_ASSERTs the name is one of tables()

// The names of `t`'s columns at `version` (since_version <= version), in table order.
std::vector<std::string> column_names(const TableDef& t, int version);
bool declares(const TableDef& t, std::string_view column);  // in any version of this build

// "CREATE TABLE IF NOT EXISTS t (... columns at version ..., PRIMARY KEY (...))".
std::string create_table_sql(const TableDef& t, int version);
// "ALTER TABLE t ADD COLUMN c <ddl>".
std::string add_column_sql(const TableDef& t, const ColumnDef& c);

// What each version changed, for the cdc_schema table's description column.
std::string version_description(int version);

}  // namespace ffe::cdc::schema
