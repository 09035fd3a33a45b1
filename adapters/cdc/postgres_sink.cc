// The PostgreSQL side of the sink (docs/cdc.md, "PostgreSQL"), on libpqxx 6.4. libpqxx
// reports every failure by throwing; this file is where those exceptions stop: each becomes
// a kIoError naming the reason, and the connection is dropped so the next call connects
// afresh (the server may have been restarted meanwhile).

#include <pqxx/pqxx>

#include <unordered_map>

#include "adapters/cdc/sql_connection.h"
#include "adapters/log/redact.h"

namespace ffe::cdc::internal {
namespace {

using storage::Result;
using storage::Status;
using storage::StatusCode;

// A connection attempt to an address that does not answer gives up after this long (libpq's
// connect_timeout; without it a black-holed host blocks the pipeline for minutes).
constexpr int kConnectTimeoutS = 5;

// PostgresConnection — owner: the SqlSink. Not thread-safe. Lifecycle: connects lazily on
// the first call and again on the first call after any failure; `tx_` (when set) belongs to
// `conn_` and is always destroyed first.
class PostgresConnection final : public SqlConnection {
 public:
  explicit PostgresConnection(std::string url)
      : url_(with_connect_timeout(url)), shown_(log::redact_url(url)) {}
  ~PostgresConnection() override { drop(); }

  Status connect() {
    if (conn_) return Status::ok();
    try {
      conn_ = std::make_unique<pqxx::connection>(url_);
      return Status::ok();
    } catch (const std::exception& e) {
      conn_.reset();
      return failure("connecting", e);
    }
  }

  Status begin(bool write) override {
    if (tx_) rollback();
    // A connection kept from an earlier call may have died with a server restart; nothing
    // has run yet, so one more try on a fresh connection is safe, and then the error is the
    // server's real state ("connection refused"), not libpq's "not connected".
    for (int attempt = 0;; ++attempt) {
      const bool fresh = !conn_;
      if (auto s = connect(); !s) return s;
      try {
        if (write) {
          tx_ = std::make_unique<pqxx::work>(*conn_);
        } else {
          // One snapshot for every statement of a read (READ COMMITTED takes one per
          // statement).
          tx_ = std::make_unique<pqxx::transaction<pqxx::isolation_level::repeatable_read,
                                                   pqxx::read_only>>(*conn_);
        }
        return Status::ok();
      } catch (const std::exception& e) {
        drop();
        if (fresh || attempt > 0) return failure("starting a transaction", e);
      }
    }
  }

  Status commit() override {
    if (!tx_) return {StatusCode::kIoError, shown_ + ": commit without a transaction"};
    try {
      tx_->commit();
      tx_.reset();
      return Status::ok();
    } catch (const std::exception& e) {
      // Includes pqxx::in_doubt_error: the commit may have happened. The checkpoint guard
      // makes that safe: a retry of the same batch is refused if it did.
      drop();
      return failure("committing", e);
    }
  }

  void rollback() override {
    try {
      if (tx_) tx_->abort();
    } catch (const std::exception&) {
      drop();  // the connection is in doubt: start over on the next call
    }
    tx_.reset();
  }

  Result<std::int64_t> exec(const std::string& sql, const std::vector<SqlValue>& params) override {
    auto r = run(sql, params);
    if (!r) return r.status();
    return static_cast<std::int64_t>(r->affected_rows());
  }

  Result<std::vector<SqlRow>> query(const std::string& sql,
                                    const std::vector<SqlValue>& params) override {
    // A read outside a transaction may run twice: once more on a fresh connection when a
    // kept one turns out dead (as in begin()).
    const bool retry = !tx_ && conn_;
    auto r = run(sql, params);
    if (!r && retry) r = run(sql, params);
    if (!r) return r.status();
    std::vector<SqlRow> rows;
    rows.reserve(r->size());
    for (const auto& row : *r) {
      SqlRow out(row.size());
      for (std::size_t c = 0; c < row.size(); ++c) {
        if (!row[static_cast<pqxx::row::size_type>(c)].is_null()) {
          out[c] = row[static_cast<pqxx::row::size_type>(c)].c_str();
        }
      }
      rows.push_back(std::move(out));
    }
    return rows;
  }

  Result<std::vector<std::string>> columns(const std::string& table) override {
    auto rows = query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = $1 ORDER BY ordinal_position",
        {table});
    if (!rows) return rows.status();
    std::vector<std::string> out;
    for (const auto& r : *rows) out.push_back(r[0].value_or(""));
    return out;
  }

  std::string describe() const override { return shown_; }

 private:
  static std::string with_connect_timeout(const std::string& url) {
    if (url.find("connect_timeout=") != std::string::npos) return url;
    return url + (url.find('?') == std::string::npos ? "?" : "&") +
           "connect_timeout=" + std::to_string(kConnectTimeoutS);
  }

  // Drops the transaction and the connection: after a failure libpq's connection may be
  // broken (server restarted) or mid-protocol; a fresh one is cheap and certain.
  void drop() {
    tx_.reset();  // its destructor aborts, swallowing errors
    conn_.reset();
    prepared_.clear();  // prepared statements belong to the connection
  }

  // The name of `sql` as a prepared statement of this connection, preparing it on first use
  // (the server then parses and plans it once, not for every batch: a 200-row INSERT has
  // 2,000 parameters); nullptr past kPreparedMax distinct statements (then it runs unnamed).
  // The sink sends a few statement shapes per table (sink.cc), so the cap is never reached
  // in practice.
  const std::string* prepared_name(const std::string& sql) {
    if (auto found = prepared_.find(sql); found != prepared_.end()) return &found->second;
    // Only data statements can be prepared (not the migrations' DDL).
    const bool dml = sql.starts_with("INSERT ") || sql.starts_with("UPDATE ") || sql.starts_with("DELETE ") ||
                     sql.starts_with("SELECT ");
    if (!dml || prepared_.size() >= kPreparedMax) return nullptr;
    std::string name = "ffe_cdc_" + std::to_string(prepared_.size());
    conn_->prepare(name, sql);
    return &prepared_.emplace(sql, std::move(name)).first->second;
  }

  Status failure(const std::string& doing, const std::exception& e) const {
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    return {StatusCode::kIoError, shown_ + ": " + doing + ": " + log::redact_url(what)};
  }

  // Runs one statement in the open transaction, or on its own (autocommit) without one.
  Result<pqxx::result> run(const std::string& sql, const std::vector<SqlValue>& params) {
    std::vector<std::string> texts;
    texts.reserve(params.size());
    for (const auto& p : params) {
      if (const auto* v = std::get_if<std::int64_t>(&p)) {
        texts.push_back(std::to_string(*v));
      } else if (const auto* b = std::get_if<bool>(&p)) {
        texts.emplace_back(*b ? "true" : "false");
      } else {
        texts.push_back(std::get<std::string>(p));
      }
    }
    if (!tx_) {
      if (auto s = connect(); !s) return s;
    }
    try {
      if (tx_) {
        if (const std::string* name = prepared_name(sql)) {
          return tx_->exec_prepared(*name, pqxx::prepare::make_dynamic_params(texts));
        }
        return tx_->exec_params(sql, pqxx::prepare::make_dynamic_params(texts));
      }
      pqxx::nontransaction once(*conn_);
      return once.exec_params(sql, pqxx::prepare::make_dynamic_params(texts));
    } catch (const std::exception& e) {
      drop();
      return failure("running " + (sql.size() <= 60 ? sql : sql.substr(0, 60) + "..."), e);
    }
  }

  const std::string url_;    // as given, plus connect_timeout
  const std::string shown_;  // the URL with its password masked
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::dbtransaction> tx_;
  static constexpr std::size_t kPreparedMax = 64;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> open_postgres(const std::string& url) {
  auto conn = std::make_unique<PostgresConnection>(url);
  // Connect now so a wrong URL or a stopped server is reported at open, not at the first batch.
  if (auto s = conn->connect(); !s) return s;
  return std::unique_ptr<SqlConnection>(std::move(conn));
}

}  // namespace ffe::cdc::internal
