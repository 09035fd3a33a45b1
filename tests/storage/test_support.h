#pragma once
// Shared by the journal's tests and their helper binary: temp dirs, a toy StateFolder (a
// counter), and small command builders. No gtest here, so the helper binary can use it.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/journal.h"

namespace ffe::storage::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
// Owner: the test. Not thread-safe (create and destroy on one thread).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // A not-yet-existing path inside it.
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The toy domain: an event is a decimal delta ("5", "-2"); the state is
// "n=<events>;s=<sum>". Path-independent by construction. Counts its calls and the largest
// number of events one call folded, so tests can prove the work of a read is bounded.
// Thread-safe (atomics).
class CounterFolder : public StateFolder {
 public:
  std::string fold(std::string_view entity_key, std::optional<std::string_view> snapshot,
                   std::span<const std::string_view> events) override;
  static std::string state(std::int64_t count, std::int64_t sum);

  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> events_folded{0};
  std::atomic<std::uint64_t> max_events_per_call{0};
  std::atomic<std::uint64_t> calls_with_snapshot{0};
  void reset_counts();
};

// A command of one event (entity, delta) with an optional input position.
CommitRequest one_event(ShardId shard, std::string entity, std::int64_t delta,
                        std::optional<InputPosition> input = std::nullopt);

// Commits and waits; asserts (FFE_ASSERT) that it succeeded; returns the revision.
Revision commit_ok(Journal& journal, CommitRequest request);

// All files under dir (recursively) whose name ends with `suffix`.
std::vector<std::string> files_with_suffix(const std::string& dir, const std::string& suffix);
// Flips bytes in the middle of a file (XOR 0xff over `count` bytes at `offset`, or the middle).
void flip_bytes(const std::string& path, std::optional<std::size_t> offset = std::nullopt, std::size_t count = 16);

// A child process (fork + exec) with pipes to its stdin and from its stdout. Owner: the
// test; kill/wait it before the Child goes away. Not thread-safe.
struct Child {
  int pid = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  std::string buffered;  // stdout read but not yet returned as lines
};
Child spawn_child(const std::string& program, const std::vector<std::string>& args);
// The next whole line of the child's stdout (without '\n'); nullopt at EOF or timeout.
std::optional<std::string> read_line(Child& child, int timeout_ms);
// Everything the child writes until it closes stdout (or dies), split into lines.
std::vector<std::string> read_remaining_lines(Child& child);
// Waits for the child; its exit code, or 128 + signal.
int wait_child(Child& child);

}  // namespace ffe::storage::testing
