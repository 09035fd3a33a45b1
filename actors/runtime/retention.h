#pragma once
// Compaction of the journal's history: by command (`ffe compact`, POST
// /v1/shards/{s}/compact) and by a retention policy (keep the last N revisions, or the
// revisions of the last T), docs/revisions.md.
//
// Readers of the log that must not lose history they have not processed yet — the ff.events
// publisher, the CDC pipeline — record their progress in the shard's journal index under
// "cursor/<name>" (the decimal revision they have processed). Compaction never passes the
// lowest such cursor: the policy stops there, and a compaction by command that would pass
// one is refused unless forced. A terminal order stays confirmable after its terminal
// revision is compacted: its state (and its mod_revision, the terminal revision) survives in
// the snapshot compaction writes.
//
// No CAF here: the policy runs on its own thread against storage::Journal.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "storage/journal.h"

namespace ffe::runtime {

// The index prefix under which log readers record how far they got.
inline constexpr std::string_view kCursorPrefix = "cursor/";

// The lowest "cursor/<name>" of a shard and its name; nullopt when no reader recorded one.
struct CursorFloor {
  std::string name;  // e.g. "cursor/events"
  storage::Revision revision = 0;
};
storage::Result<std::optional<CursorFloor>> cursor_floor(const storage::Journal& journal,
                                                         storage::ShardId shard);

struct CompactOutcome {
  storage::Status status;
  storage::Revision compacted_revision = 0;  // the shard's compacted revision afterwards
  // Set when a cursor refused (or, forced, would have refused) the revision.
  std::optional<CursorFloor> blocked_by;
};

// Compacts `shard` below `revision` (Journal::compact), unless a reader's cursor is below
// `revision` and `force` is false: then kInvalidArgument naming the cursor, nothing done.
// Asking for the compacted revision again is OK (idempotent); below it kCompacted, above the
// current revision kFutureRevision.
CompactOutcome compact_shard(storage::Journal& journal, storage::ShardId shard,
                             storage::Revision revision, bool force);

struct RetentionPolicy {
  // Keep at least the last `keep_revisions` revisions readable (0: no count limit).
  std::uint64_t keep_revisions = 0;
  // Keep every revision committed within the last `keep_for` (0: no time limit).
  std::chrono::milliseconds keep_for{0};
  // Whatever the limits above say, keep every revision committed within the last
  // `keep_recent` (it enables nothing by itself). `ffe serve` keeps the last minute: the
  // journal's marks of applied input messages (docs/kafka.md, "Exactly-once effects") must
  // outlive the range a restart delivers again.
  std::chrono::milliseconds keep_recent{0};
  // How often the policy looks at each shard.
  std::chrono::milliseconds interval{10'000};
  bool enabled() const { return keep_revisions > 0 || keep_for.count() > 0; }
};

// The revision the policy would compact `shard` to now (never past a reader's cursor and
// never below what is already compacted); nullopt when nothing is to be done. `held_by`, when
// given, is set to the cursor that keeps the target below what the policy alone would give
// (else reset).
storage::Result<std::optional<storage::Revision>> retention_target(const storage::Journal& journal,
                                                                    storage::ShardId shard,
                                                                    const RetentionPolicy& policy,
                                                                    std::int64_t now_ms,
                                                                    std::optional<CursorFloor>* held_by = nullptr);

// Retention — owner: `ffe serve` (adapters/serve). Lifecycle: the constructor starts one
// thread that applies the policy to every shard each interval; the destructor (or stop())
// wakes and joins it. The journal must outlive it. Thread safety: stats() from any thread.
class Retention {
 public:
  Retention(storage::Journal& journal, RetentionPolicy policy, std::function<std::int64_t()> clock);
  ~Retention();
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  void stop();
  // Applies the policy to every shard once, now (tests, and the thread's loop).
  void run_once();
  std::uint64_t compactions() const;

 private:
  void loop();

  storage::Journal& journal_;
  const RetentionPolicy policy_;
  const std::function<std::int64_t()> clock_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::uint64_t compactions_ = 0;
  // Per shard, the cursor that held the last pass back (logged when it starts and ends).
  std::map<std::uint32_t, std::string> held_by_;
  std::thread thread_;
};

}  // namespace ffe::runtime
