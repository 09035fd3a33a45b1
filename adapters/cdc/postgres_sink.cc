// The PostgreSQL side of the sink (docs/cdc.md, "PostgreSQL"), on libpqxx 6.4. libpqxx
// reports every failure by throwing; this file is where those exceptions stop: each becomes
// a kIoError naming the reason, and the connection is dropped so the next call connects
// afresh (the server may have been restarted meanwhile).

#include <sys/socket.h>

#include <pqxx/pqxx>

#include <cctype>
#include <mutex>
#include <string_view>
#include <vector>
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

// A statement that waits longer than this (a lock held by someone else, a server too busy to
// answer) fails, so CDC reports the stall (ffe_cdc_stalled, the error log) and retries
// instead of waiting in silence. CDC's statements take milliseconds. A URL that sets its own
// statement_timeout (options=-c statement_timeout=...) keeps it.
constexpr int kStatementTimeoutMs = 30'000;

// Whether a failure to connect is the URL's or the server's refusal (it will not heal by
// itself: a malformed URL, a wrong password, a database or role that does not exist), as
// opposed to a server that is down, starting or unreachable. By libpq's messages.
bool refused_for_good(std::string_view what) {
  for (std::string_view mark : {"invalid ", "end of string reached", "missing \"=\"", "unexpected spaces",
                                "password authentication failed", "authentication failed for user", "does not exist",
                                "no pg_hba.conf entry", "no password supplied", "permission denied"}) {
    if (what.find(mark) != std::string_view::npos) return true;
  }
  return false;
}

// The password in a postgresql:// URL (user:PASSWORD@ or ?password=), raw and decoded, so an
// error message that quotes it (libpq's "invalid percent-encoded token: ...") can be masked
// where log::redact_url, which knows URLs, does not reach.
std::vector<std::string> secrets_of(const std::string& url) {
  std::vector<std::string> out;
  const std::size_t scheme = url.find("://");
  if (scheme != std::string::npos) {
    const std::size_t start = scheme + 3;
    const std::size_t end = url.find_first_of("/?", start);
    const std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::size_t at = authority.rfind('@');
    if (at != std::string::npos) {
      const std::string userinfo = authority.substr(0, at);
      if (const std::size_t colon = userinfo.find(':'); colon != std::string::npos) out.push_back(userinfo.substr(colon + 1));
    }
  }
  if (const std::size_t at = url.find("password="); at != std::string::npos) {
    const std::size_t start = at + 9;
    const std::size_t amp = url.find('&', start);
    out.push_back(url.substr(start, amp == std::string::npos ? std::string::npos : amp - start));
  }
  std::vector<std::string> all;
  for (const std::string& secret : out) {
    if (secret.size() < 3) continue;  // masking every "a" would garble the message, not hide it
    all.push_back(secret);
    std::string decoded;
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    for (std::size_t i = 0; i < secret.size(); ++i) {
      if (secret[i] == '%' && i + 2 < secret.size() && hex(secret[i + 1]) && hex(secret[i + 2])) {
        decoded += static_cast<char>(std::stoi(secret.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        decoded += secret[i];
      }
    }
    if (decoded != secret && !decoded.empty()) all.push_back(decoded);
  }
  return all;
}

// PostgresConnection — owner: the SqlSink. Not thread-safe. Lifecycle: connects lazily on
// the first call and again on the first call after any failure; `tx_` (when set) belongs to
// `conn_` and is always destroyed first.
class PostgresConnection final : public SqlConnection {
 public:
  explicit PostgresConnection(std::string url)
      : url_(with_connect_timeout(url)), shown_(log::redact_url(url)), secrets_(secrets_of(url)) {}
  ~PostgresConnection() override { drop(); }

  Status connect() {
    if (conn_) return Status::ok();
    {
      std::lock_guard lock(sock_mutex_);
      if (interrupted_) return {StatusCode::kIoError, shown_ + ": interrupted (CDC is stopping)"};
    }
    std::unique_ptr<pqxx::connection> conn;
    try {
      conn = std::make_unique<pqxx::connection>(url_);
      if (url_.find("statement_timeout") == std::string::npos) {
        pqxx::nontransaction(*conn).exec("SET statement_timeout = " + std::to_string(kStatementTimeoutMs));
      }
    } catch (const std::exception& e) {
      last_refused_for_good_ = refused_for_good(e.what());
      return failure("connecting", e);
    }
    std::lock_guard lock(sock_mutex_);
    if (interrupted_) return {StatusCode::kIoError, shown_ + ": interrupted (CDC is stopping)"};
    conn_ = std::move(conn);
    return Status::ok();
  }

  // Shuts the connection's socket down under the thread that waits on it: its read returns,
  // libpq reports the connection lost, the statement fails and drop() closes what is left.
  // A cancel request (PQcancel) would not reach a server that is stopped or wedged.
  void interrupt() override {
    std::lock_guard lock(sock_mutex_);
    interrupted_ = true;
    if (conn_ && conn_->sock() >= 0) ::shutdown(conn_->sock(), SHUT_RDWR);
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

  // Whether the last connect() failed for a reason that will not heal by itself
  // (refused_for_good: the URL or the credentials).
  bool last_refused_for_good() const { return last_refused_for_good_; }

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
    {
      std::lock_guard lock(sock_mutex_);  // interrupt() must not see the socket closed under it
      conn_.reset();
    }
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
    what = log::redact_url(what);
    for (const std::string& secret : secrets_) {
      for (std::size_t at = what.find(secret); at != std::string::npos; at = what.find(secret, at + 3)) {
        what.replace(at, secret.size(), "***");
      }
    }
    return {StatusCode::kIoError, shown_ + ": " + doing + ": " + what};
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
  const std::vector<std::string> secrets_;  // the password as it may appear in a message
  std::mutex sock_mutex_;    // conn_'s creation and destruction against interrupt()
  bool interrupted_ = false;  // guarded by sock_mutex_
  bool last_refused_for_good_ = false;  // see last_refused_for_good()
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::dbtransaction> tx_;
  static constexpr std::size_t kPreparedMax = 64;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> open_postgres(const std::string& url) {
  auto conn = std::make_unique<PostgresConnection>(url);
  // Connect now so a wrong URL or a stopped server is reported at open, not at the first batch.
  // A URL or credentials the server refuses are not an outage (kIoError, retried): the
  // caller stops (ffe serve's start, ffe drift) with the reason.
  if (auto s = conn->connect(); !s) {
    if (conn->last_refused_for_good()) {
      return Status(StatusCode::kInvalidArgument,
                    s.message() + " (the URL or the credentials are refused; a server that is down would be retried)");
    }
    return s;
  }
  return std::unique_ptr<SqlConnection>(std::move(conn));
}

}  // namespace ffe::cdc::internal
