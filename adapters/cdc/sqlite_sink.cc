// The SQLite side of the sink (docs/cdc.md, "SQLite"): the embedded default,
// `sqlite:<data-dir>/analytics.db`. WAL mode so readers (`ffe drift`, a user's sqlite3 shell)
// never block the pipeline; synchronous=FULL so a checkpoint is on disk when apply()
// returns; a busy timeout so a reader holding a lock delays a batch instead of failing it.

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <system_error>
#include <unordered_map>

#include "adapters/cdc/sql_connection.h"

namespace ffe::cdc::internal {
namespace {

using storage::Result;
using storage::Status;
using storage::StatusCode;

// How long a statement waits for another connection's lock before failing with kIoError.
constexpr int kSqliteBusyTimeoutMs = 5000;
// Prepared statements kept per connection; multi-row statements vary in row count, so the
// cache is bounded and simply emptied when full.
constexpr std::size_t kStatementCacheMax = 256;

// SqliteConnection — owner: the SqlSink. Not thread-safe (the connection is opened with
// SQLITE_OPEN_NOMUTEX). Invariant: `db_` is open and in WAL mode from construction on.
class SqliteConnection final : public SqlConnection {
 public:
  SqliteConnection(sqlite3* db, std::string url) : db_(db), url_(std::move(url)) {}
  ~SqliteConnection() override {
    clear_cache();
    sqlite3_close_v2(db_);
  }

  Status begin(bool write) override {
    return exec(write ? "BEGIN IMMEDIATE" : "BEGIN", {}).status();
  }
  Status commit() override { return exec("COMMIT", {}).status(); }
  void rollback() override {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  Result<std::int64_t> exec(const std::string& sql, const std::vector<SqlValue>& params) override {
    auto stmt = prepare(sql, params);
    if (!stmt) return stmt.status();
    int rc;
    while ((rc = sqlite3_step(*stmt)) == SQLITE_ROW) {
    }
    sqlite3_reset(*stmt);
    if (rc != SQLITE_DONE) return error("executing " + head(sql));
    return static_cast<std::int64_t>(sqlite3_changes(db_));
  }

  Result<std::vector<SqlRow>> query(const std::string& sql,
                                    const std::vector<SqlValue>& params) override {
    auto stmt = prepare(sql, params);
    if (!stmt) return stmt.status();
    std::vector<SqlRow> rows;
    const int width = sqlite3_column_count(*stmt);
    int rc;
    while ((rc = sqlite3_step(*stmt)) == SQLITE_ROW) {
      SqlRow row(static_cast<std::size_t>(width));
      for (int c = 0; c < width; ++c) {
        if (sqlite3_column_type(*stmt, c) == SQLITE_NULL) continue;
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(*stmt, c));
        row[static_cast<std::size_t>(c)] =
            std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(*stmt, c)));
      }
      rows.push_back(std::move(row));
    }
    sqlite3_reset(*stmt);
    if (rc != SQLITE_DONE) return error("querying " + head(sql));
    return rows;
  }

  Result<std::vector<std::string>> columns(const std::string& table) override {
    auto rows = query("SELECT name FROM pragma_table_info($1)", {table});
    if (!rows) return rows.status();
    std::vector<std::string> out;
    for (const auto& r : *rows) out.push_back(r[0].value_or(""));
    return out;
  }

  std::string describe() const override { return url_; }

 private:
  // The first words of a statement, for an error message.
  static std::string head(const std::string& sql) {
    return sql.size() <= 60 ? sql : sql.substr(0, 60) + "...";
  }

  Status error(const std::string& doing) const {
    return {StatusCode::kIoError, url_ + ": " + doing + ": " + sqlite3_errmsg(db_)};
  }

  void clear_cache() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    cache_.clear();
  }

  // The statement for `sql` (cached), with `params` bound: the shared SQL's "$N" becomes
  // SQLite's "?N", so parameter N binds at index N.
  Result<sqlite3_stmt*> prepare(const std::string& sql, const std::vector<SqlValue>& params) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      if (cache_.size() >= kStatementCacheMax) clear_cache();
      std::string text = sql;
      for (auto& ch : text) {
        if (ch == '$') ch = '?';
      }
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db_, text.c_str(), static_cast<int>(text.size()), &stmt, nullptr) !=
          SQLITE_OK) {
        return error("preparing " + head(sql));
      }
      it = cache_.emplace(sql, stmt).first;
    }
    sqlite3_stmt* stmt = it->second;
    sqlite3_clear_bindings(stmt);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      int rc = SQLITE_OK;
      if (const auto* v = std::get_if<std::int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, index, *v);
      } else if (const auto* b = std::get_if<bool>(&params[i])) {
        rc = sqlite3_bind_int(stmt, index, *b ? 1 : 0);
      } else {
        const auto& s = std::get<std::string>(params[i]);
        rc = sqlite3_bind_text(stmt, index, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return error("binding parameter " + std::to_string(index) + " of " + head(sql));
    }
    return stmt;
  }

  sqlite3* db_;
  std::string url_;
  // By the statement's text: hashed once per call, where an ordered map compared long SQL
  // strings with long common prefixes at every level (a tenth of CDC's time at load).
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> open_sqlite(const std::string& url, bool create) {
  const std::string path = url.substr(std::string_view("sqlite:").size());
  if (path.empty()) {
    return Status{StatusCode::kInvalidArgument, "--analytics " + url + ": no path after sqlite:"};
  }
  // SQLite would create the file but not its directory; say so plainly instead of its
  // "unable to open database file".
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    // A configuration error, not an outage: the start fails with it instead of retrying.
    return Status{StatusCode::kInvalidArgument,
                  url + ": directory " + parent.string() + " does not exist (create it first)"};
  }
  // Nor are a directory or a file this process may not write: no retry makes them work.
  if (std::filesystem::is_directory(path, ec)) {
    return Status{StatusCode::kInvalidArgument, url + ": " + path + " is a directory, not a database file"};
  }
  if (std::filesystem::exists(path, ec) && ::access(path.c_str(), R_OK | W_OK) != 0) {
    return Status{StatusCode::kInvalidArgument,
                  url + ": " + path + " cannot be read and written by this process: " + std::strerror(errno)};
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    Status s{StatusCode::kIoError,
             url + ": cannot open: " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc))};
    sqlite3_close_v2(db);
    return s;
  }
  auto conn = std::make_unique<SqliteConnection>(db, url);
  sqlite3_busy_timeout(db, kSqliteBusyTimeoutMs);
  if (!create) {
    auto tables = conn->columns("cdc_schema");
    if (!tables) return tables.status();
    if (tables->empty()) {
      return Status{StatusCode::kFormat,
                    url + ": no ffe analytics tables here (no cdc_schema table); has `ffe serve` run CDC into it?"};
    }
  }
  auto mode = conn->query("PRAGMA journal_mode=WAL", {});
  if (!mode) return mode.status();
  if (mode->empty() || (*mode)[0][0] != "wal") {
    return Status{StatusCode::kIoError,
                  url + ": cannot switch to WAL mode (journal_mode is " +
                      (mode->empty() ? std::string("unknown") : (*mode)[0][0].value_or("NULL")) +
                      ")"};
  }
  // FULL, not WAL's usual NORMAL: with NORMAL a commit may be lost on power failure, and the
  // checkpoint must be durable before apply() returns (the journal may compact below it).
  if (auto s = conn->exec("PRAGMA synchronous=FULL", {}); !s) return s.status();
  return std::unique_ptr<SqlConnection>(std::move(conn));
}

}  // namespace ffe::cdc::internal
