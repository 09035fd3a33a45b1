#pragma once
// The journal: per shard, an append-only log of commands in RocksDB, committed by group
// commit, read back by revision. docs/journal.md describes the layout, the commit path and
// the recovery path; this header is the contract.
//
// No RocksDB header here (rocksdb/db.h costs 3 s per translation unit): the implementation
// hides behind a pimpl, and the one RocksDB type the options take (a test Env) is only
// forward-declared.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/journal_types.h"
#include "storage/limits.h"
#include "storage/status.h"

namespace rocksdb {
class Env;
}

namespace ffe::storage {

// Turns an entity's snapshot and later events into its canonical state bytes. Supplied by
// the caller (the domain), so storage never learns what an order or a SKU is.
//
// Contract: deterministic and path-independent. For any split of an entity's events into
// a, b: fold(k, fold(k, s, a), b) == fold(k, s, a + b), and fold(k, nullopt, {}) is the
// initial state. The shard digest and revision reads rely on it: a state built from a
// snapshot must equal the state built from all events. Called concurrently from reader
// threads and the journal's snapshot thread: it must be thread-safe (stateless is best)
// and must not throw or call back into the journal.
class StateFolder {
 public:
  virtual ~StateFolder() = default;
  virtual std::string fold(std::string_view entity_key, std::optional<std::string_view> snapshot,
                           std::span<const std::string_view> events) = 0;
};

// How much of the log open() reads back to check that revisions follow without gaps.
enum class OpenVerification {
  // Every retained log record of every shard, and every SST block checksum
  // (DB::VerifyChecksum). Open time grows with the retained history.
  kFull,
  // The first retained record and the last open_verify_tail_revisions records per shard.
  // Open time stays bounded as history grows; every later read still verifies the block
  // checksums of what it reads, and replay checks contiguity as it goes.
  kTail,
};

struct JournalOptions {
  // Shards to serve; created (an empty column family) when missing. Shards already in the
  // data dir are served too. At least one in total.
  std::vector<ShardId> shards;
  // Required for get/range/digest/compact and for journal-made snapshots; not owned, must
  // outlive the Journal. Without it commits still work (callers may supply snapshots).
  StateFolder* folder = nullptr;

  // Group commit bounds (each also capped by limits::*). A synced write carries at most
  // commit_batch_commands commands and, unless a single command is larger, at most
  // commit_batch_bytes bytes. commit_wait lets the writer linger that long after the
  // first queued command for the batch to fill; 0 (the default) batches whatever queued
  // up during the previous write, as LevelDB does, for the lowest latency.
  std::size_t commit_batch_commands = 4096;
  std::size_t commit_batch_bytes = 16 * 1024 * 1024;
  std::chrono::microseconds commit_wait{0};
  // The queue in front of the writer. Full: submit() with Admission::kWait blocks, with
  // Admission::kTry returns kBusy. Never drops.
  std::size_t commit_queue_commands = 65536;
  std::size_t commit_queue_bytes = 256 * 1024 * 1024;

  // The journal writes a snapshot of an entity (asking the folder), in the background,
  // once it has at least snapshot_every_events events since its latest snapshot AND those
  // events hold at least snapshot_bytes_ratio times as many bytes (entity key + payload
  // each) as that snapshot (checked against the disk before folding, so a size forgotten
  // in a restart costs a read, not a snapshot). The count bounds the work of get() for
  // small states; the bytes keep a big, hot state (a SKU with 100,000 reservations) from
  // being rewritten every few events: snapshot bytes written stay within about
  // (1 + 1/ratio) x the event bytes, and a get() folds at most about (1 + ratio) x the
  // state's size. Caller-supplied snapshots reset both. 0 events disables journal-made
  // snapshots (and read repair); ratio 0 is the count alone.
  std::uint32_t snapshot_every_events = 64;
  double snapshot_bytes_ratio = 1.0;
  // The rule above, for `events` events of `bytes` bytes since a snapshot of
  // `snapshot_bytes` bytes (0: unknown); never due while snapshot_every_events is 0. Also
  // what a caller that supplies its own snapshots (the runtime's SKU actors) follows.
  bool snapshot_due(std::uint64_t events, std::uint64_t bytes, std::uint64_t snapshot_bytes) const {
    // Both: the count keeps the reads of a small state short; the bytes amortize rewriting
    // a big one (each snapshot is paid for by at least ratio x its own size of new events).
    return snapshot_every_events > 0 && events >= snapshot_every_events &&
           static_cast<double>(bytes) >= snapshot_bytes_ratio * static_cast<double>(snapshot_bytes);
  }
  // What one event counts for in the rule's bytes: its entity key and its payload.
  static std::uint64_t snapshot_event_bytes(std::string_view entity_key, std::string_view payload) {
    return entity_key.size() + payload.size();
  }
  // Entities whose counts the snapshot thread keeps in memory (an approximate LRU: two
  // generations of half this each). A forgotten entity starts counting again; read repair
  // bounds what a lost count costs a read.
  std::size_t snapshot_tracked_entities_max = 262'144;

  OpenVerification open_verification = OpenVerification::kFull;
  std::size_t open_verify_tail_revisions = 100'000;

  // Flush memtables at close so the next open replays no WAL.
  bool flush_at_close = true;
  // Read-only: opens the data dir without claiming it, so it works beside a running engine
  // (RocksDB secondary instance; docs/journal.md "Read-only opens"), for replay, drift and
  // other tools. Every commit, compact or mark_sent returns kReadOnly; no thread that writes
  // is started; reads see the journal as of open() (and as of refresh()).
  bool read_only = false;
  // A restore fills a new data dir (adapters/replay/restore.cc): the dir is marked
  // FFE_RESTORING before anything else is written, and every other open refuses it until
  // Journal::finish_restore(dir) removes the mark.
  bool restoring = false;
  // RocksDB memtable size per shard (column family).
  std::size_t write_buffer_bytes = 64 * 1024 * 1024;

  // Called once when the journal fail-stops (a failed synced write, a full disk), with the
  // reason; must be quick and must not call into the journal. Empty: the reason goes to
  // stderr as "ffe journal: fail-stop: ...". The runtime logs it through the process's log
  // (so `--log-format json` makes it a JSON line).
  std::function<void(const Status&)> on_fail_stop;
  // Called on the writer thread after each successful synced write; must be quick and must
  // not call into the journal. Empty: nothing is called.
  std::function<void(const BatchObservation&)> on_batch;

  // Tests only: a RocksDB Env (e.g. a fault-injecting FileSystem); not owned, must outlive
  // the Journal. nullptr: the default Env.
  rocksdb::Env* env = nullptr;
};

struct CommitResult {
  Status status;
  // OK: the revision the command committed at (new_revision), or for a no-op the shard's
  // revision its input position was recorded at.
  Revision revision = 0;
  bool new_revision = false;
};

using CommitCallback = std::function<void(const CommitResult&)>;

enum class Admission {
  kWait,  // block while the queue is full (push-back)
  kTry,   // return kBusy at once when the queue is full
};

struct JournalStats {
  std::uint64_t commands = 0;         // durable commands (with or without events)
  std::uint64_t noop_commands = 0;    // durable commands without events
  std::uint64_t batches = 0;          // synced writes
  std::uint64_t batch_bytes = 0;      // bytes handed to RocksDB in synced writes
  std::uint64_t snapshots_made = 0;             // snapshots the journal folded (incl. read repair)
  std::uint64_t snapshot_bytes_made = 0;        // the state bytes of those
  std::uint64_t snapshots_given = 0;            // snapshots supplied by callers
  std::uint64_t snapshot_tracked_entities = 0;  // entities the snapshot thread counts for now
  std::uint64_t compactions = 0;                // compact() calls that dropped history
  std::uint64_t compactions_full = 0;           // of those, the ones that visited every entity
  std::uint64_t compaction_entities = 0;        // entities those compactions visited
};

class Watch;

// Journal — owner: the process that opened the data dir (one per dir; an flock and
// RocksDB's LOCK keep a second one out). Lifecycle: open() recovers and verifies every
// shard, then starts three threads: the writer (group commit), the completion thread
// (callbacks, in commit order) and the snapshot thread; the destructor commits whatever is
// still queued, runs every callback, stops the threads, flushes and closes.
//
// Thread safety: every method may be called from any thread concurrently. Commits are
// serialized by the single writer thread in queue order; reads run on the caller's thread
// against a consistent RocksDB snapshot and never block commits.
//
// Invariants:
//  1. Per shard, revisions rise by exactly one per committed command with events; never
//     skip, repeat or go back. No-op commands do not advance the revision.
//  2. A command's events, log record, input position, outbox messages, dedupe keys,
//     snapshots and index changes are written in one WriteBatch: all or none.
//  3. A commit is reported (callback/future) only after the synced write holding it
//     returned OK; reads never see a revision before it is durable.
//  4. Fail-stop: after any failed write the journal accepts no commit again; the failed
//     batch, everything queued and everything later fail; status() keeps the reason.
//  5. Reads at revision R see exactly the commands with revision <= R.
class Journal {
 public:
  // Opens (or creates) the journal in data_dir. Errors: kNotJournal (a non-empty dir
  // without ffe's marker: nothing is written), kFormat, kInUse (another journal holds it;
  // the message names its pid), kReadOnly, kNoSpace, kIoError, kCorruption (names the
  // shard or file), kInvalidArgument (options).
  static Result<std::unique_ptr<Journal>> open(const std::string& data_dir, JournalOptions options);
  // Whether `data_dir` holds journal data (RocksDB's CURRENT): its shards are then its own,
  // and JournalOptions::shards is needed only when it does not (a new dir, or a first open
  // that stopped early).
  static bool holds_data(const std::string& data_dir);
  // Marks a restore into `data_dir` whole (JournalOptions::restoring): call it once every
  // commit of the restore is durable.
  static Status finish_restore(const std::string& data_dir);
  // Whether `data_dir` holds a restore that did not finish (every open refuses it).
  static bool restore_unfinished(const std::string& data_dir);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // --- commit path -------------------------------------------------------------------------
  // Queues a command. OK: `done` will be called exactly once, on the journal's completion
  // thread, in commit order, after the batch holding the command is durable (or failed);
  // keep it short, never block in it and never call submit(..., kWait) from it (kTry is
  // fine). Not OK (kInvalidArgument, kBusy, kStopped,
  // kClosed): `done` is never called. Revisions are assigned in queue order per shard, so a
  // caller may pipeline commands and learns each revision when it is durable.
  Status submit(CommitRequest request, CommitCallback done, Admission admission = Admission::kWait);
  // The same with a future (waits for queue space: Admission::kWait).
  std::future<CommitResult> commit(CommitRequest request);
  // OK while healthy; the fail-stop reason after a failed write.
  Status status() const;
  JournalStats stats() const;

  // --- shard state ---------------------------------------------------------------------------
  std::vector<ShardId> shards() const;
  // The last durable revision.
  Result<Revision> revision(ShardId shard) const;
  // The oldest revision still readable (0 until the first compaction).
  Result<Revision> compacted_revision(ShardId shard) const;
  // Waits until the shard's revision is >= revision; false on timeout.
  bool wait_for_revision(ShardId shard, Revision revision, std::chrono::milliseconds timeout) const;
  // The offset last recorded for an input source, nullopt if never.
  Result<std::optional<std::int64_t>> input_offset(ShardId shard, std::string_view source) const;
  Result<std::vector<InputPosition>> input_positions(ShardId shard) const;

  // --- revision reads (etcd-style) -----------------------------------------------------------
  // Errors for every read at a revision: kCompacted (below compacted_revision), kFutureRevision
  // (above revision()). Cost: one seek for the entity's latest snapshot at or before the
  // revision plus its events after that snapshot (about snapshot_every_events at most).
  Result<std::optional<EntityState>> get(ShardId shard, std::string_view entity_key,
                                         Revision revision) const;
  // Entities whose key starts with key_prefix, in key order, after start_after, at most
  // `limit` (capped at limits::range_page_entities_max) per page.
  Result<RangePage> range(ShardId shard, std::string_view key_prefix, Revision revision,
                          std::string_view start_after = {},
                          std::size_t limit = limits::range_page_entities_max) const;
  // A cursor over the log from from_revision on (from_revision <= revision() + 1).
  Result<Watch> watch(ShardId shard, std::string key_prefix, Revision from_revision) const;
  // Makes revisions below `revision` unreadable and frees their space: snapshots each
  // entity as of `revision`, deletes older log records, version entries and snapshots, sent
  // outbox entries and dedupe keys written before `revision`. The index (current state
  // only) is left alone. Idempotent at the current compacted revision; kCompacted below
  // it, kFutureRevision above revision().
  Status compact(ShardId shard, Revision revision);
  // Hex SHA-256 over the shard's entities as of `revision`, sorted by key, each as
  // (le64 key length, key, le64 state length, state). Independent of history and snapshots.
  Result<std::string> digest(ShardId shard, Revision revision) const;

  // --- outbox --------------------------------------------------------------------------------
  // Durable outbox entries at or after `from`, in order, at most `limit`.
  Result<std::vector<OutboxEntry>> outbox_read(ShardId shard, OutboxPosition from,
                                               std::size_t limit) const;
  // The first position not yet marked sent (where a relay starts after a restart).
  Result<OutboxPosition> outbox_cursor(ShardId shard) const;
  // Marks every entry up to and including `up_to` sent (a separate cursor key; entries
  // are never rewritten). Moves the cursor in memory and writes nothing itself: the next
  // commit batch stores it (so do compaction and a clean close). A crash may forget the
  // marks since the last batch, and the relay then sends those messages again
  // (at-least-once; consumers dedupe by command id). kInvalidArgument if `up_to` is not a
  // durable entry.
  Status mark_sent(ShardId shard, OutboxPosition up_to);
  // Waits until an outbox entry at or after `from` is durable; false on timeout.
  bool wait_for_outbox(ShardId shard, OutboxPosition from, std::chrono::milliseconds timeout) const;

  // --- index ---------------------------------------------------------------------------------
  // Index entries whose key starts with prefix, in key order, after start_after, at most
  // limit (capped at limits::index_scan_entries_max). Reads the latest durable state: one
  // consistent view per call, and only durable writes are ever visible (RocksDB applies a
  // synced batch only after its WAL sync returned OK). Page on with start_after = the last
  // key returned; a call that returns fewer than the (capped) limit reached the end.
  Result<std::vector<IndexEntry>> index_scan(ShardId shard, std::string_view prefix,
                                             std::string_view start_after = {},
                                             std::size_t limit = limits::index_scan_entries_max) const;

  // --- dedupe --------------------------------------------------------------------------------
  // The revision that recorded dedupe_key (kept until compaction passes that revision).
  Result<std::optional<Revision>> dedupe_revision(ShardId shard, std::string_view dedupe_key) const;

  // Blocks until the snapshot thread has handled every durable change so far (tests, tools).
  void wait_for_snapshots() const;

  // Read-only journals: catches up with what the engine that owns the data dir has made
  // durable since open() (or the last refresh()). kInvalidArgument on a writable journal.
  Status refresh();

  class Impl;

 private:
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Watch — a resumable cursor over one shard's log, in revision order, with no gaps.
// Owner: the caller; it must not outlive its Journal. Not thread-safe (one reader).
// Resume after a restart with journal.watch(shard, prefix, last_seen_revision + 1).
class Watch {
 public:
  // The next records (with only their events under the prefix; records with none are
  // skipped) up to the shard's current revision, at most max_records, examining at most
  // limits::watch_scan_records_max records. Empty when caught up, or, under a prefix, when
  // none of the records examined matched: caught up only once position() is past the
  // shard's revision. kCompacted when compaction passed the cursor.
  Result<std::vector<LogRecord>> next(std::size_t max_records = 1024);
  // The next revision the cursor will examine.
  Revision position() const { return next_; }
  // Waits until a revision >= position() is durable; false on timeout.
  bool wait(std::chrono::milliseconds timeout) const;

 private:
  friend class Journal;
  Watch(const Journal::Impl* impl, ShardId shard, std::string prefix, Revision next)
      : impl_(impl), shard_(shard), prefix_(std::move(prefix)), next_(next) {}
  const Journal::Impl* impl_;
  ShardId shard_;
  std::string prefix_;
  Revision next_;
};

// "shard-0003": the column family of a shard.
std::string shard_name(ShardId shard);

}  // namespace ffe::storage
