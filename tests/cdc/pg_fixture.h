#pragma once
// A real PostgreSQL 15 for tests (docs/cdc.md, "Testing against PostgreSQL"): started by
// scripts/pg_temp.sh in a fresh temp dir (initdb as an unprivileged user, 127.0.0.1, a free
// port), stoppable and restartable on the same data dir and port (the "database restarted
// under the pipeline" tests), stopped and removed by the destructor.
//
// If the test process dies without running destructors (abort, kill -9), a watchdog shell
// started with the server stops it and removes its dir within about a second, so no
// postgres outlives its test.

#include <string>

#include "storage/status.h"

namespace ffe::cdc::test {

// PgServer — owner: a test, or the process (shared()). Not thread-safe. Lifecycle: the
// constructor starts the server (check status()); stop()/start() may repeat; the destructor
// stops it and deletes its dir.
class PgServer {
 public:
  PgServer();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // OK when the last start() (the constructor's included) succeeded.
  const storage::Status& status() const { return status_; }
  // "postgresql://ffe@127.0.0.1:PORT/ffe": the role and database pg_temp.sh made. The port
  // stays the same across stop()/start().
  const std::string& url() const { return url_; }
  const std::string& dir() const { return dir_; }

  storage::Status stop();   // fast shutdown; returns once stopped
  storage::Status start();  // the same data dir and port again

  // A new empty database `name` owned by role ffe (CREATE DATABASE); its URL. Lets tests
  // that share one server each have their own tables.
  storage::Result<std::string> create_database(const std::string& name);
  // Cheaper (no file copy, no checkpoint): a new schema `name` owned by ffe, and the URL of
  // the ffe database with `search_path` set to it, so unqualified tables land there.
  storage::Result<std::string> create_schema(const std::string& name);

  // One server per test process, started on first use (so a process that runs no
  // PostgreSQL test starts none) and stopped at exit.
  static PgServer& shared();

 private:
  std::string dir_;
  std::string url_;
  storage::Status status_;
  int watchdog_pid_ = 0;
};

}  // namespace ffe::cdc::test
