// ffe_journal_child: the second process some journal tests need. Modes:
//
//   hold DIR             open the journal, print "ready <pid>", hold it until stdin closes
//   load DIR THREADS     commit crash-test commands from THREADS threads until killed; after
//                        each commit is durable, print "ok <revision> <thread> <seq>"
//   readonly DIR         in a private mount namespace, bind-mount DIR read-only over itself,
//                        open the journal there, print "<code> <message>"
//   fulldisk DIR KIB     in a private mount namespace, mount a KIB-sized tmpfs on DIR, open a
//                        journal there and commit until the disk is full; print what happened
//
// Exit 0 when the mode ran, 77 when the environment cannot do it (no mount namespace), else 1.
// Single-threaded at start, so unshare(CLONE_NEWNS) works.

#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "storage/journal.h"
#include "tests/storage/crash_workload.h"
#include "tests/storage/test_support.h"

using namespace ffe::storage;

namespace {

void say(const std::string& line) {
  std::string out = line + "\n";
  const char* data = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(STDOUT_FILENO, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

int hold(const std::string& dir) {
  JournalOptions options;
  options.shards = {ShardId{0}};
  auto journal = Journal::open(dir, options);
  if (!journal) {
    say("error " + journal.status().to_string());
    return 1;
  }
  say("ready " + std::to_string(::getpid()));
  char buffer[64];
  while (::read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
  }
  return 0;
}

int load(const std::string& dir, int threads) {
  testing::CounterFolder folder;
  JournalOptions options = testing::crash_journal_options(&folder);
  auto opened = Journal::open(dir, options);
  if (!opened) {
    say("error " + opened.status().to_string());
    return 1;
  }
  Journal& journal = **opened;
  // Where each thread resumes: one past the last sequence number its input source recorded.
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&journal, t] {
      auto recorded = journal.input_offset(testing::crash_shard(t), testing::crash_source(t));
      std::int64_t seq = recorded.is_ok() && recorded->has_value() ? **recorded + 1 : 0;
      // Keep a few commands in flight per thread, so batches hold many commands.
      constexpr int kInFlight = 8;
      std::vector<std::pair<std::int64_t, std::future<CommitResult>>> window;
      while (true) {
        while (window.size() < kInFlight) {
          window.emplace_back(seq, journal.commit(testing::crash_command(t, seq)));
          ++seq;
        }
        auto [sent_seq, future] = std::move(window.front());
        window.erase(window.begin());
        CommitResult result = future.get();
        if (!result.status) {
          say("error " + result.status.to_string());
          std::_Exit(1);
        }
        // Reported only now: the command is durable.
        say("ok " + std::to_string(result.revision) + " " + std::to_string(t) + " " + std::to_string(sent_seq));
      }
    });
  }
  // A relay of sorts: marks outbox entries sent as the workers go, so mark_sent is under
  // crash too.
  std::vector<OutboxPosition> from;
  for (ShardId shard : testing::kCrashShards) from.push_back(*journal.outbox_cursor(shard));
  while (true) {
    for (std::size_t i = 0; i < from.size(); ++i) {
      const ShardId shard = testing::kCrashShards[i];
      journal.wait_for_outbox(shard, from[i], std::chrono::milliseconds(20));
      auto entries = journal.outbox_read(shard, from[i], 64);
      if (entries.is_ok() && !entries->empty()) {
        Status marked = journal.mark_sent(shard, entries->back().position);
        if (!marked) {
          say("error mark_sent: " + marked.to_string());
          std::_Exit(1);
        }
        from[i] = entries->back().position.next();
      }
    }
  }
}

bool private_mounts() {
  if (::unshare(CLONE_NEWNS) != 0) {
    std::fprintf(stderr, "unshare(CLONE_NEWNS): %s\n", std::strerror(errno));
    return false;
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::fprintf(stderr, "mount --make-rprivate /: %s\n", std::strerror(errno));
    return false;
  }
  return true;
}

int readonly(const std::string& dir) {
  if (!private_mounts()) return 77;
  if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    std::fprintf(stderr, "read-only bind mount: %s\n", std::strerror(errno));
    return 77;
  }
  JournalOptions options;
  options.shards = {ShardId{0}};
  auto journal = Journal::open(dir, options);
  say(journal ? std::string("kOk opened") : journal.status().to_string());
  return 0;
}

int fulldisk(const std::string& dir, int kib) {
  if (!private_mounts()) return 77;
  std::string size = "size=" + std::to_string(kib) + "k";
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0) {
    std::fprintf(stderr, "mount tmpfs: %s\n", std::strerror(errno));
    return 77;
  }
  JournalOptions options;
  options.shards = {ShardId{0}};
  options.write_buffer_bytes = 64 * 1024;
  auto opened = Journal::open(dir + "/journal", options);
  if (!opened) {
    say("open_error " + opened.status().to_string());
    return 0;
  }
  Journal& journal = **opened;
  std::string payload(4096, 'x');
  long committed = 0, acknowledged_after_failure = 0;
  std::optional<Status> first_error;
  for (int i = 0; i < 100000; ++i) {
    CommitRequest request;
    request.shard = ShardId{0};
    request.events.push_back(Event{"e/" + std::to_string(i % 16), payload});
    CommitResult result = journal.commit(request).get();
    if (result.status) {
      if (first_error) ++acknowledged_after_failure;
      ++committed;
    } else if (!first_error) {
      first_error = result.status;
    } else if (i > committed + 20) {
      break;  // twenty commits after the failure, all refused
    }
  }
  say("committed " + std::to_string(committed));
  say("acknowledged_after_failure " + std::to_string(acknowledged_after_failure));
  say("first_error " + (first_error ? first_error->to_string() : std::string("none")));
  say("status " + journal.status().to_string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s hold|load|readonly|fulldisk DIR [...]\n", argv[0]);
    return 1;
  }
  std::string mode = argv[1], dir = argv[2];
  if (mode == "hold") return hold(dir);
  if (mode == "load" && argc >= 4) return load(dir, std::stoi(argv[3]));
  if (mode == "readonly") return readonly(dir);
  if (mode == "fulldisk" && argc >= 4) return fulldisk(dir, std::stoi(argv[3]));
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 1;
}
