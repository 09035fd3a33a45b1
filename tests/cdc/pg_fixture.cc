#include "tests/cdc/pg_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <pqxx/pqxx>

namespace ffe::cdc::test {
namespace {

using storage::Status;
using storage::StatusCode;

// Immediate shutdown takes milliseconds; wait at most 50 ms * this for the postmaster to go.
constexpr int kStopWaitStepsMax = 200;

// Single-quotes `s` for bash.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// Runs a bash command; returns its stdout (stderr goes to the test's output) or an error.
storage::Result<std::string> run(const std::string& command) {
  FILE* pipe = popen(("bash -c " + shell_quote(command)).c_str(), "r");
  if (!pipe) return Status{StatusCode::kIoError, "popen failed for: " + command};
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  const int rc = pclose(pipe);
  if (rc != 0) {
    return Status{StatusCode::kIoError, "`" + command + "` failed (status " + std::to_string(rc) +
                                            "); its stderr is above"};
  }
  return out;
}

std::string script() { return shell_quote(FFE_PG_TEMP_SCRIPT); }

}  // namespace

PgServer::PgServer() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ffe-pg-XXXXXX").string();
  if (!mkdtemp(pattern.data())) {
    status_ = Status{StatusCode::kIoError, "mkdtemp " + pattern + " failed"};
    return;
  }
  dir_ = pattern;
  // The watchdog: stops the server and removes its dir once this process is gone, however
  // it ended. setsid keeps it out of the test's process group.
  auto pid = run("setsid bash -c " +
                 shell_quote("while kill -0 " + std::to_string(getpid()) +
                        " 2>/dev/null; do sleep 1; done; bash " + script() + " stop " +
                        shell_quote(dir_) + " >/dev/null 2>&1; rm -rf " + shell_quote(dir_)) +
                 " </dev/null >/dev/null 2>&1 & echo $!");
  if (pid) watchdog_pid_ = std::atoi(pid->c_str());
  status_ = start();
}

PgServer::~PgServer() {
  if (dir_.empty()) return;
  // Immediate shutdown by the server's own pid file (SIGQUIT): a fast shutdown's checkpoint
  // would fsync data that is deleted a moment later (seconds on a busy disk).
  std::ifstream pid_file(dir_ + "/pgdata/postmaster.pid");
  pid_t pid = 0;
  if (pid_file >> pid && pid > 0 && kill(pid, SIGQUIT) == 0) {
    for (int i = 0; i < kStopWaitStepsMax && kill(pid, 0) == 0; ++i) usleep(50'000);
  }
  if (watchdog_pid_ > 0) kill(watchdog_pid_, SIGTERM);
  // A retry or two: a backend that was still exiting may add a file while the tree goes.
  for (int attempt = 0; attempt < 3 && std::filesystem::exists(dir_); ++attempt) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    if (ec) usleep(100'000);
  }
}

Status PgServer::start() {
  auto out = run("bash " + script() + " start " + shell_quote(dir_));
  if (!out) return status_ = out.status();
  std::string line = *out;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (!line.starts_with("postgresql://") || line.find('\n') != std::string::npos) {
    return status_ = Status{StatusCode::kIoError, "pg_temp.sh start printed '" + line +
                                                      "', not one postgresql:// URL"};
  }
  url_ = line;
  return status_ = Status::ok();
}

Status PgServer::stop() {
  auto out = run("bash " + script() + " stop " + shell_quote(dir_));
  return out.status();
}

storage::Result<std::string> PgServer::create_database(const std::string& name) {
  try {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);  // CREATE DATABASE cannot run inside a transaction
    tx.exec("CREATE DATABASE " + tx.quote_name(name));
  } catch (const std::exception& e) {
    return Status{StatusCode::kIoError, "CREATE DATABASE " + name + ": " + e.what()};
  }
  const auto slash = url_.rfind('/');
  return url_.substr(0, slash + 1) + name;
}

storage::Result<std::string> PgServer::create_schema(const std::string& name) {
  try {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE SCHEMA " + tx.quote_name(name));
  } catch (const std::exception& e) {
    return Status{StatusCode::kIoError, "CREATE SCHEMA " + name + ": " + e.what()};
  }
  return url_ + "?options=-csearch_path%3D" + name;
}

PgServer& PgServer::shared() {
  static PgServer server;
  return server;
}

}  // namespace ffe::cdc::test
