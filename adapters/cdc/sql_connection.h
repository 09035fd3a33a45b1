#pragma once
// The one seam between the sink's logic (sink.cc: schema checks, migration, the checkpoint
// guard, upserts, reads) and a database: SQLite (sqlite_sink.cc) or PostgreSQL
// (postgres_sink.cc). Everything above this seam is one code path for both databases.
// Internal to ffe_cdc_sink; no sqlite3.h or pqxx header here.
//
// SQL text uses PostgreSQL's `$1, $2, ...` placeholders (the SQLite side binds them as
// `?1, ?2, ...`). Values travel as text on the way out of a query (NULL as nullopt), as a
// SqlValue on the way in.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "storage/status.h"

namespace ffe::cdc::internal {

using SqlValue = std::variant<std::int64_t, std::string, bool>;
using SqlRow = std::vector<std::optional<std::string>>;

// SqlConnection — owner: the SqlSink that opened it. Not thread-safe. Every failure of the
// database (unreachable, refused statement, constraint) is a kIoError naming the reason;
// nothing throws. At most one transaction is open at a time.
class SqlConnection {
 public:
  virtual ~SqlConnection() = default;

  // A write transaction (SQLite: BEGIN IMMEDIATE, so the write lock is taken up front and a
  // busy database waits its busy timeout at the start, not halfway through), or a read-only
  // one that sees one snapshot (PostgreSQL: REPEATABLE READ; SQLite: a deferred BEGIN).
  virtual storage::Status begin(bool write) = 0;
  virtual storage::Status commit() = 0;
  virtual void rollback() = 0;  // best effort; after a failed statement or commit

  // Runs a statement; returns the number of rows it changed.
  virtual storage::Result<std::int64_t> exec(const std::string& sql,
                                             const std::vector<SqlValue>& params = {}) = 0;
  virtual storage::Result<std::vector<SqlRow>> query(const std::string& sql,
                                                     const std::vector<SqlValue>& params = {}) = 0;
  // The table's column names (empty: no such table).
  virtual storage::Result<std::vector<std::string>> columns(const std::string& table) = 0;

  virtual std::string describe() const = 0;  // the URL, password masked

  // The one method another thread may call: makes a statement in progress fail at once, and
  // every later call fail, so a pipeline that is stopping is never held by a database that
  // does not answer (PostgreSQL: a lock wait, a stopped server). SQLite's statements are
  // bounded by its busy timeout: nothing to do.
  virtual void interrupt() {}
};

// "sqlite:PATH": WAL mode, synchronous=FULL, a busy timeout (sqlite_sink.cc). With
// `create` false the file must exist and hold ffe's cdc_schema table, checked before
// anything is written to it (ffe drift must not turn another database into ffe's).
storage::Result<std::unique_ptr<SqlConnection>> open_sqlite(const std::string& url, bool create = true);
// "postgresql://..." or "postgres://...": reconnects on the call after a lost connection.
storage::Result<std::unique_ptr<SqlConnection>> open_postgres(const std::string& url);

}  // namespace ffe::cdc::internal
