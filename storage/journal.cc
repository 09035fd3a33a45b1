#include "storage/journal.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "events/assert.h"
#include "storage/data_dir.h"
#include "storage/encoding.h"
#include "storage/sha256.h"

namespace ffe::storage {

namespace enc = encoding;

std::string shard_name(ShardId shard) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%04u", shard.value);
  return name;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

std::optional<ShardId> parse_shard_name(const std::string& name) {
  unsigned value = 0;
  int consumed = 0;
  if (std::sscanf(name.c_str(), "shard-%u%n", &value, &consumed) != 1) return std::nullopt;
  if (static_cast<std::size_t>(consumed) != name.size()) return std::nullopt;
  ShardId shard{value};
  if (shard_name(shard) != name) return std::nullopt;
  return shard;
}

bool contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

// RocksDB's status as ours, with what we were doing and where.
Status from_rocks(const rocksdb::Status& status, const std::string& what) {
  if (status.ok()) return Status::ok();
  const std::string detail = status.ToString();
  if (status.IsCorruption()) return {StatusCode::kCorruption, what + ": " + detail};
  if (status.IsNoSpace() || contains(detail, "No space left")) {
    return {StatusCode::kNoSpace, what + ": no space left on the device (" + detail + ")"};
  }
  if (contains(detail, "Read-only file system")) return {StatusCode::kReadOnly, what + ": " + detail};
  return {StatusCode::kIoError, what + ": " + detail};
}

// RocksDB's open error for a damaged WAL says only "checksum mismatch"; its LOG names the
// file. The first such LOG line, to name the file in our message.
std::string corruption_detail_from_log(const std::string& rocksdb_path) {
  std::FILE* file = std::fopen((rocksdb_path + "/LOG").c_str(), "r");
  if (file == nullptr) return {};
  std::fseek(file, 0, SEEK_END);
  long size = std::ftell(file);
  long start = std::max(0L, size - 256 * 1024);
  std::fseek(file, start, SEEK_SET);
  std::string text(static_cast<std::size_t>(size - start), '\0');
  text.resize(std::fread(text.data(), 1, text.size(), file));
  std::fclose(file);
  std::string found;
  std::size_t line_start = 0;
  while (line_start < text.size()) {
    std::size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    std::string_view line(text.data() + line_start, line_end - line_start);
    std::size_t marker = line.find("] ");
    if (line.find("Corruption") != std::string_view::npos && line.find(rocksdb_path) != std::string_view::npos &&
        marker != std::string_view::npos) {
      found = std::string(line.substr(marker + 2));
      break;  // the first: each open starts a new LOG, and the first complaint is the cause
    }
    line_start = line_end + 1;
  }
  return found;
}

// RocksDB's info log, written by us rather than by RocksDB's own logger: on a full disk the
// latter trips an assertion in Debian's assert-enabled librocksdb (a failed append to LOG,
// then another), aborting the process. This one drops lines it cannot write. One
// generation is kept (LOG.old); past info_log_bytes_max it stops writing until the next
// open. Thread-safe: RocksDB logs from its background threads.
class InfoLog : public rocksdb::Logger {
 public:
  static constexpr long info_log_bytes_max = 16 * 1024 * 1024;

  explicit InfoLog(const std::string& path) : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {
    std::rename(path.c_str(), (path + ".old").c_str());
    file_ = std::fopen(path.c_str(), "w");
  }
  ~InfoLog() override {
    if (file_ != nullptr) std::fclose(file_);
  }
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (file_ == nullptr) return;
    char line[4096];
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    std::size_t used = std::strftime(line, sizeof line, "%Y/%m/%d-%H:%M:%S ", &utc);
    int n = std::vsnprintf(line + used, sizeof line - used - 1, format, ap);
    if (n < 0) return;
    used = std::min(sizeof line - 2, used + static_cast<std::size_t>(n));
    line[used++] = '\n';
    std::lock_guard lock(mu_);
    if (written_ > info_log_bytes_max) return;
    written_ += static_cast<long>(used);
    if (std::fwrite(line, 1, used, file_) == used) std::fflush(file_);
  }

 private:
  std::mutex mu_;
  std::FILE* file_ = nullptr;
  long written_ = 0;
};

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A read-only journal (a RocksDB secondary) races the engine that owns the dir: the engine
// may delete a table file (after a compaction) between the secondary reading the MANIFEST
// and opening the file. Such an error is retried after a catch-up, a few times.
constexpr int kReadOnlyAttempts = 10;
constexpr auto kReadOnlyRetryWait = std::chrono::milliseconds(20);
// A read-only open whose log is below the heads file catches up with the engine this many
// times, this far apart (about 2 s in all), before it calls the data dir damaged.
constexpr int kReadOnlyHeadsAttempts = 20;
constexpr auto kReadOnlyHeadsRetryWait = std::chrono::milliseconds(100);
// An entity's history is read by a scan of the log, not point lookups, when it has at least
// kDenseReadMin records and fewer than kDenseReadSpanPerRecord log records per record of its own
// lie between its first and last (read_entity).
constexpr std::size_t kDenseReadMin = 16;
constexpr Revision kDenseReadSpanPerRecord = 4;

bool file_vanished(const rocksdb::Status& status) {
  return (status.IsIOError() || status.IsPathNotFound()) && contains(status.ToString(), "No such file");
}

bool starts_with(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::memcmp(key.data(), prefix.data(), prefix.size()) == 0;
}

std::string_view view_key(const rocksdb::Slice& slice) { return {slice.data(), slice.size()}; }

Status validate_key(std::string_view key, std::size_t max, const char* what) {
  if (key.empty()) return {StatusCode::kInvalidArgument, std::string(what) + " is empty"};
  if (key.size() > max) {
    return {StatusCode::kInvalidArgument,
            std::string(what) + " is " + std::to_string(key.size()) + " bytes, over the limit of " +
                std::to_string(max)};
  }
  return Status::ok();
}

}  // namespace

// ShardState — owner: Journal::Impl (one per column family). Created at open, destroyed at
// close. The writer_* fields belong to the writer thread; durable/compacted revisions are
// atomics any thread reads; the outbox fields are guarded by Impl::progress_mu_.
// Invariant: compacted_revision <= durable_revision == writer_revision between batches.
struct ShardState {
  ShardId id;
  std::string name;
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  std::uint32_t index = 0;  // position in Impl::shards_

  Revision writer_revision = 0;
  OutboxPosition writer_outbox_next;

  std::atomic<Revision> durable_revision{0};
  std::atomic<Revision> compacted_revision{0};

  OutboxPosition outbox_end;     // one past the last durable outbox entry
  OutboxPosition outbox_cursor;  // the first entry not marked sent
  // mark_sent moved outbox_cursor past what is stored: the writer's next batch (or the
  // close) stores it.
  bool outbox_cursor_dirty = false;

  // Waiters for this shard's durable revision or outbox (a relay, a watch, CDC), with
  // Impl::progress_mu_. One per shard, so a batch wakes only the waiters of the shards it
  // touched: with one for all, every batch woke every shard's relay thread, most of them
  // for nothing.
  std::condition_variable progress_cv;
};

namespace {

// One queued command. Owner: the queue, then the writer, the completion thread and the
// snapshot thread in turn (one at a time, handed over by unique_ptr). Heap-allocated and
// never moved, so views into it stay valid.
struct Pending {
  ShardState* shard = nullptr;
  CommitRequest request;
  std::string body;                          // encoded log record body
  std::vector<std::string> outbox_values;    // encoded outbox messages
  std::vector<std::uint32_t> entity_events;  // index of the first event of each distinct entity
  // Per entry of entity_events: that entity's events in this command and their bytes (entity
  // key + payload), what the snapshot thread counts (the payloads are gone by then).
  struct EntityTotals {
    std::uint32_t events = 0;
    std::uint64_t bytes = 0;
  };
  std::vector<EntityTotals> entity_totals;
  std::size_t bytes = 0;
  CommitCallback done;
  SteadyClock::time_point enqueued;
  CommitResult result;
};

// A consistent view of the DB for one read operation: a RocksDB snapshot, released when
// the view goes. Owner: the reading call, on its own thread; never shared.
//
// Read-only journals (a RocksDB secondary instance) cannot take snapshots: a secondary's
// view moves only when refresh() catches up with the primary, so the view holds
// `refresh_mu` shared instead, and refresh() takes it exclusively.
class ReadView {
 public:
  ReadView(rocksdb::DB* db, std::shared_mutex* refresh_mu) : db_(db) {
    if (refresh_mu != nullptr) {
      refresh_lock_ = std::shared_lock<std::shared_mutex>(*refresh_mu);
    } else {
      snapshot_ = db->GetSnapshot();
    }
    options.snapshot = snapshot_;
    options.verify_checksums = true;
  }
  ~ReadView() {
    if (snapshot_ != nullptr) db_->ReleaseSnapshot(snapshot_);
  }
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  rocksdb::ReadOptions options;

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_ = nullptr;
  std::shared_lock<std::shared_mutex> refresh_lock_;
};

// What the journal holds for one entity as of a revision (a value).
struct EntityHistory {
  bool exists = false;
  std::optional<std::string> snapshot;
  Revision snapshot_revision = 0;
  std::vector<std::pair<Revision, std::string>> events;  // after the snapshot, oldest first
  Revision mod_revision = 0;
};

// What the snapshot thread knows of one entity: its events and their bytes since its last
// snapshot, and that snapshot's size (0: unknown, e.g. after a restart). 16 bytes.
struct SnapshotCount {
  std::uint64_t bytes = 0;
  std::uint32_t events = 0;
  std::uint32_t snapshot_bytes = 0;  // snapshots are at most snapshot_bytes_max (64 MiB)
};

// SnapshotCount per entity, as the snapshot thread has seen them; no disk read on the
// commit path. Keyed by a 64-bit hash of (shard, entity): a collision only merges two
// entities' counts, which moves when one of them is snapshotted, never what a read
// returns. Bounded: two generations of at most tracked_max / 2 entities approximate an
// LRU. When the current map is full it becomes the previous one and a new one starts, so
// an entity touched at least once per generation keeps its count and a cold one is
// forgotten (it counts from zero, with its snapshot size unknown, when it comes back; read
// repair bounds what a lost count costs a read). Owner: the snapshot thread only.
class SnapshotCounts {
 public:
  explicit SnapshotCounts(std::size_t tracked_max) : generation_max_(std::max<std::size_t>(1, tracked_max / 2)) {}
  static std::uint64_t id(std::uint32_t shard_index, std::string_view entity) {
    std::uint64_t h = std::hash<std::string_view>{}(entity) ^ (0x9e3779b97f4a7c15ull * (shard_index + 1));
    h ^= h >> 33;
    return h * 0xff51afd7ed558ccdull;
  }
  // The entity's count, created empty when unknown. Valid until the next call.
  SnapshotCount& at(std::uint64_t id) {
    auto it = current_.find(id);
    if (it != current_.end()) return it->second;
    SnapshotCount count;
    auto old = previous_.find(id);
    if (old != previous_.end()) {
      count = old->second;
      previous_.erase(old);
    }
    if (current_.size() >= generation_max_) {
      previous_ = std::move(current_);
      current_ = {};
    }
    return current_.emplace(id, count).first->second;
  }
  std::size_t size() const { return current_.size() + previous_.size(); }

 private:
  std::size_t generation_max_;
  std::unordered_map<std::uint64_t, SnapshotCount> current_, previous_;
};

}  // namespace

class Journal::Impl {
 public:
  Impl(std::string dir, JournalOptions options) : dir_(std::move(dir)), options_(std::move(options)) {}
  ~Impl();

  Status open();
  void start_threads();

  // commit path
  Status submit(CommitRequest request, CommitCallback done, Admission admission);
  Status status() const;
  JournalStats stats() const;

  // reads
  ShardState* find(ShardId shard) const;
  Result<ShardState*> shard_or_error(ShardId shard) const;
  Status check_revision(const ShardState& shard, Revision revision, Revision durable) const;
  Result<EntityHistory> read_entity(const ShardState& shard, std::string_view entity, Revision revision,
                                    const ReadView& view) const;
  std::string fold(std::string_view entity, const EntityHistory& history) const;
  Status for_each_entity(const ShardState& shard, const ReadView& view, std::string_view prefix,
                         std::string_view start_after,
                         const std::function<Status(const std::string&, bool&)>& visit) const;

  Result<std::optional<EntityState>> get(ShardId shard, std::string_view entity, Revision revision) const;
  Result<RangePage> range(ShardId shard, std::string_view prefix, Revision revision, std::string_view start_after,
                          std::size_t limit) const;
  Result<std::string> digest(ShardId shard, Revision revision) const;
  Status compact(ShardId shard, Revision revision);
  Result<std::vector<LogRecord>> watch_next(ShardId shard, std::string_view prefix, Revision& next,
                                            std::size_t max_records) const;
  bool wait_for_revision(ShardId shard, Revision revision, std::chrono::milliseconds timeout) const;
  bool wait_for_outbox(ShardId shard, OutboxPosition from, std::chrono::milliseconds timeout) const;

  Result<std::vector<OutboxEntry>> outbox_read(ShardId shard, OutboxPosition from, std::size_t limit) const;
  Result<OutboxPosition> outbox_cursor(ShardId shard) const;
  Status mark_sent(ShardId shard, OutboxPosition up_to);
  Result<std::optional<Revision>> dedupe_revision(ShardId shard, std::string_view key) const;
  Result<std::vector<IndexEntry>> index_scan(ShardId shard, std::string_view prefix, std::string_view start_after,
                                             std::size_t limit) const;
  Result<std::optional<std::int64_t>> input_offset(ShardId shard, std::string_view source) const;
  Result<std::vector<InputPosition>> input_positions(ShardId shard) const;
  void wait_for_snapshots() const;

  // Read-only journals: catch up with the primary (Journal::refresh).
  Status refresh();
  bool read_only() const { return options_.read_only; }

  std::vector<ShardId> shard_ids() const {
    std::vector<ShardId> ids;
    for (const auto& shard : shards_) ids.push_back(shard->id);
    return ids;
  }

 private:
  Status validate_options() const;
  // Read-only opens: checks that dir_ holds an ffe journal without writing anything, and
  // returns its RocksDB path. kNotJournal / kFormat otherwise.
  Result<std::string> check_read_only_dir() const;
  // Reads back the shard's head, compacted revision and outbox positions and checks them
  // (docs/journal.md, "The recovery path"). `refreshing`: a read-only journal after a
  // catch-up (refresh_mu_ held exclusively): only the log records past the known head are
  // checked, and the head must not go back.
  Status recover_shard(ShardState& shard, bool refreshing = false);
  Status read_only_refused(const char* what) const {
    return Status(StatusCode::kReadOnly, "data dir " + dir_ + " is open read-only: " + what + " is refused");
  }
  // The lock a ReadView takes instead of a snapshot on a read-only journal; nullptr else.
  std::shared_mutex* view_mu() const { return options_.read_only ? &refresh_mu_ : nullptr; }
  Status validate_request(const CommitRequest& request, Pending& pending) const;

  void writer_loop();
  void write_group(std::vector<std::unique_ptr<Pending>>& group, rocksdb::WriteBatch& batch);
  // Stops the journal for good: `failing` (the batch whose write failed, if any) completes
  // with `reason`, everything queued with kStopped.
  void fail_stop(const Status& reason, std::vector<std::unique_ptr<Pending>>* failing = nullptr);
  Status stopped_status() const;
  // Hands a group to the completion thread: its callbacks run there, in order, with the
  // group's own results (status OK) or with `status` for every command.
  void complete(std::vector<std::unique_ptr<Pending>>& group, const Status& status);
  void completion_loop();

  void snapshot_loop();
  void handle_touched(const Pending& pending, SnapshotCounts& counts);
  // Called when the in-memory count says a snapshot is due (JournalOptions::snapshot_due):
  // checks the rule against what the disk holds (the latest snapshot at or before
  // `revision` and the events after it, read anyway to fold), and if it holds writes the
  // entity's state as of `revision` as a snapshot. Returns the entity's count afterwards:
  // zero events and the state's size when written (or when the state is over
  // snapshot_bytes_max and therefore not written, so it is not folded again at the very
  // next event), the disk's count when not due.
  Result<SnapshotCount> make_snapshot(const ShardState& shard, std::string_view entity, Revision revision);
  // Read repair: a read that folded more than twice what the snapshot rule allows (twice
  // the events AND twice the bytes) writes the state it folded as a snapshot, so the next
  // read of the entity is bounded again.
  void repair(const ShardState& shard, std::string_view entity, const EntityHistory& history,
              const std::string& state) const;
  // A write outside the commit path (snapshots, cursors, compaction); fails stop on error.
  Status write_side(rocksdb::WriteBatch& batch, bool sync, const std::string& what);
  // Puts the outbox cursors mark_sent moved into `batch` and forgets them (progress_mu_).
  void put_outbox_cursors(rocksdb::WriteBatch& batch);

  std::string dir_;
  JournalOptions options_;
  bool started_ = false;  // open() completed and the threads run
  // Read-only journals: the secondary instance's private dir (its LOG and MANIFEST copy),
  // a fresh temp dir removed at close; and the lock that keeps refresh() from moving the
  // view under a read (see ReadView).
  std::string secondary_path_;
  mutable std::shared_mutex refresh_mu_;
  std::unique_ptr<DataDirLock> lock_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::vector<std::unique_ptr<ShardState>> shards_;
  std::unordered_map<std::uint32_t, ShardState*> shard_by_id_;

  // --- the commit queue (guarded by queue_mu_) ---
  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;  // the writer waits for work
  std::condition_variable space_cv_;  // submitters wait for room
  std::deque<std::unique_ptr<Pending>> queue_;
  std::size_t queue_bytes_ = 0;
  bool stopping_ = false;
  bool writer_waiting_ = false;
  Status error_;  // the fail-stop reason
  std::atomic<bool> failed_{false};
  std::thread writer_;

  // --- durable progress, for waiters (guarded by progress_mu_; each shard's progress_cv) ---
  mutable std::mutex progress_mu_;
  bool closing_ = false;
  // Wakes every shard's waiters: at close, at a fail-stop, after a refresh.
  void notify_progress() {
    for (auto& shard : shards_) shard->progress_cv.notify_all();
  }

  // --- the snapshot thread (guarded by snapshot_mu_) ---
  mutable std::mutex snapshot_mu_;
  mutable std::condition_variable snapshot_cv_;        // work for the snapshot thread
  mutable std::condition_variable snapshot_space_cv_;  // room in the inbox, for the writer
  mutable std::condition_variable snapshot_done_cv_;   // progress, for wait_for_snapshots
  // Durable commands with events, handed over by the writer (which also saves itself the
  // cost of freeing them); snapshot_inbox_entities_ counts their distinct entities.
  std::vector<std::unique_ptr<Pending>> snapshot_inbox_;
  std::size_t snapshot_inbox_entities_ = 0;
  std::uint64_t snapshot_enqueued_ = 0;
  mutable bool snapshot_wanted_ = false;  // wait_for_snapshots() asks for work now
  static constexpr std::size_t kSnapshotWakeEntities = 1024;
  static constexpr int kSnapshotPollMs = 20;
  std::uint64_t snapshot_done_ = 0;
  bool snapshot_stopping_ = false;
  std::thread snapshotter_;

  // --- the completion thread (guarded by completion_mu_) ---
  // Groups whose callbacks are due, in commit order. The writer hands them over and starts
  // the next synced write at once; callbacks never sit on the commit path.
  struct Completion {
    std::vector<std::unique_ptr<Pending>> group;
    Status status;  // OK: each command's own result
  };
  std::mutex completion_mu_;
  std::condition_variable completion_cv_;
  std::condition_variable completion_space_cv_;
  std::deque<Completion> completion_inbox_;
  std::size_t completion_commands_ = 0;
  bool completion_stopping_ = false;
  std::thread completer_;

  std::mutex compact_mu_;  // one compaction at a time
  std::mutex outbox_mu_;   // one mark_sent at a time
  std::vector<ShardState*> dirty_outbox_cursors_;  // outbox_cursor_dirty ones, with progress_mu_
  // Held by the writer while a batch with dedupe keys is built and written, and by
  // compaction while it deletes expired dedupe keys, so compaction never deletes a key the
  // writer just rewrote at a newer revision.
  std::mutex dedupe_mu_;

  // --- the heads file (data_dir.h): each shard's durable revision, for the open's check ---
  // Refuses the open when a shard's log ends below its recorded head.
  Status check_heads(const Heads& recorded) const;
  // A journal that looks new (no RocksDB files, no format record) where the heads file says
  // commits were durable lost its data: kCorruption naming `what` is missing.
  Status heads_say_data_was_lost(const Heads& recorded, const std::string& what) const;
  Heads durable_heads() const;
  void heads_loop();
  std::mutex heads_mu_;
  std::condition_variable heads_cv_;
  bool heads_stopping_ = false;
  Heads heads_written_;  // what the file holds (the heads writer's thread, then the destructor)
  std::thread heads_writer_;
  static constexpr std::chrono::seconds kHeadsInterval{1};

  std::atomic<std::uint64_t> stat_commands_{0}, stat_noop_{0}, stat_batches_{0}, stat_batch_bytes_{0},
      stat_snapshots_made_{0}, stat_snapshot_bytes_made_{0}, stat_snapshots_given_{0}, stat_snapshot_tracked_{0},
      stat_compactions_{0}, stat_compactions_full_{0}, stat_compaction_entities_{0};
};

// ---------------------------------------------------------------------------------------------
// open and recovery

Status Journal::Impl::validate_options() const {
  auto bad = [](const std::string& message) { return Status(StatusCode::kInvalidArgument, message); };
  if (options_.commit_batch_commands < 1 || options_.commit_batch_commands > limits::commit_batch_commands_max)
    return bad("commit_batch_commands must be 1.." + std::to_string(limits::commit_batch_commands_max));
  if (options_.commit_batch_bytes < 1 || options_.commit_batch_bytes > limits::commit_batch_bytes_max)
    return bad("commit_batch_bytes must be 1.." + std::to_string(limits::commit_batch_bytes_max));
  if (options_.commit_queue_commands < 1 || options_.commit_queue_commands > limits::commit_queue_commands_max)
    return bad("commit_queue_commands must be 1.." + std::to_string(limits::commit_queue_commands_max));
  if (options_.commit_queue_bytes < 1 || options_.commit_queue_bytes > limits::commit_queue_bytes_max)
    return bad("commit_queue_bytes must be 1.." + std::to_string(limits::commit_queue_bytes_max));
  if (options_.commit_wait.count() < 0 || options_.commit_wait.count() > limits::commit_wait_us_max)
    return bad("commit_wait must be 0.." + std::to_string(limits::commit_wait_us_max) + " us");
  if (options_.snapshot_every_events > limits::snapshot_every_events_max)
    return bad("snapshot_every_events must be at most " + std::to_string(limits::snapshot_every_events_max));
  // Written so that NaN fails too.
  if (!(options_.snapshot_bytes_ratio >= 0 && options_.snapshot_bytes_ratio <= limits::snapshot_bytes_ratio_max))
    return bad("snapshot_bytes_ratio must be 0.." + std::to_string(limits::snapshot_bytes_ratio_max));
  if (options_.snapshot_tracked_entities_max < 2 ||
      options_.snapshot_tracked_entities_max > limits::snapshot_tracked_entities_max)
    return bad("snapshot_tracked_entities_max must be 2.." + std::to_string(limits::snapshot_tracked_entities_max));
  for (ShardId shard : options_.shards) {
    if (shard.value >= limits::shards_max)
      return bad("shard " + std::to_string(shard.value) + " is over shards_max " + std::to_string(limits::shards_max));
  }
  return Status::ok();
}

Result<std::string> Journal::Impl::check_read_only_dir() const {
  struct stat info {};
  if (::stat(dir_.c_str(), &info) != 0) {
    if (errno == ENOENT) return Status(StatusCode::kNotJournal, "data dir " + dir_ + " does not exist");
    return errno_status(errno, "data dir " + dir_);
  }
  if (!S_ISDIR(info.st_mode)) return Status(StatusCode::kNotJournal, "data dir " + dir_ + " is not a directory");
  if (Status status = unfinished_restore(dir_); !status) return status;
  const std::string marker = dir_ + "/" + kMarkerFile;
  std::FILE* file = std::fopen(marker.c_str(), "r");
  if (file == nullptr) {
    return Status(StatusCode::kNotJournal, "data dir " + dir_ + " is not an ffe journal (no " + kMarkerFile + " marker)");
  }
  char buffer[256];
  const std::size_t read = std::fread(buffer, 1, sizeof buffer, file);
  std::fclose(file);
  if (std::string_view(buffer, read) != kMarkerContent) {
    return Status(StatusCode::kFormat, "data dir " + dir_ + ": " + kMarkerFile +
                                           " names a journal format this build cannot read (expected \"format 1\")");
  }
  const std::string path = dir_ + "/" + kRocksDbDir;
  if (!Journal::holds_data(dir_)) {
    auto heads = read_heads(dir_);
    if (!heads) return heads.status();
    if (Status lost = heads_say_data_was_lost(*heads, "the journal's data (" + path + ")"); !lost) return lost;
    return Status(StatusCode::kNotJournal,
                  "data dir " + dir_ + " holds no journal data yet (no " + path + "/CURRENT): nothing to read");
  }
  return path;
}

Status Journal::Impl::open() {
  if (Status status = validate_options(); !status) return status;
  std::string path;
  bool create_database = false;
  if (options_.read_only) {
    // Nothing in the dir is written or locked: no marker, no ffe.lock, no RocksDB LOCK.
    auto checked = check_read_only_dir();
    if (!checked) return checked.status();
    path = *checked;
  } else {
    auto claimed = claim_data_dir(dir_, options_.restoring);
    if (!claimed) return claimed.status();
    lock_ = std::move(claimed->lock);
    path = claimed->rocksdb_path;
    create_database = claimed->create_database;
  }

  // Read before RocksDB opens: a read-only open beside a running engine then sees at least
  // every revision the file names (they were durable before it was written).
  auto recorded_heads = read_heads(dir_);
  if (!recorded_heads) return recorded_heads.status();
  auto lost_data = [&](const std::string& what) { return heads_say_data_was_lost(*recorded_heads, what); };
  if (create_database) {
    if (Status status = lost_data("the journal's data (" + path + ")"); !status) return status;
  }

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = create_database;
  db_options.create_missing_column_families = true;
  // Checks written data as it is read back, and refuses to open over inconsistencies.
  db_options.paranoid_checks = true;
  // An incomplete record at the very end of the WAL is a write that never returned (the
  // process died inside it) and is dropped; any other damage refuses the open. The default
  // (point in time) would silently stop at a damaged record and lose acknowledged commits
  // after it.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.max_background_jobs = 2;
  if (options_.read_only) {
    // A secondary instance keeps its own LOG and its copy of the MANIFEST's state in a dir
    // of its own (a private temp dir, removed at close), never in the data dir. It must
    // keep every table file open (max_open_files -1): the primary may delete a file the
    // secondary's view still reads, and an open descriptor keeps it readable.
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ffe-journal-ro-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return errno_status(errno, "creating a temp dir for a read-only open");
    secondary_path_ = pattern;
    db_options.max_open_files = -1;
    db_options.info_log = std::make_shared<InfoLog>(secondary_path_ + "/LOG");
  } else {
    std::error_code error;
    std::filesystem::create_directories(path, error);
    if (error) return errno_status(error.value(), "data dir " + dir_ + ": creating " + path);
    db_options.info_log = std::make_shared<InfoLog>(path + "/LOG");
  }
  if (options_.env != nullptr) db_options.env = options_.env;

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = options_.write_buffer_bytes;
  // No memtable_insert_with_hint_prefix_extractor, though log keys arrive in order: in
  // RocksDB 7.8 its hints corrupt the skiplist splice when a batch also holds a DeleteRange
  // (compaction's), which Debian's assert-enabled build catches.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.checksum = rocksdb::kXXH3;
  // Every SST spans all key tags (log, versions, inputs...), so without a filter a point
  // read of a log record probes every L0 file; a whole-key Bloom filter skips them.
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));

  std::vector<std::string> existing;
  if (!create_database) {
    rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(db_options, path, &existing);
    if (!listed.ok()) return from_rocks(listed, "data dir " + dir_ + ": listing shards, refusing to start");
  }
  std::vector<ShardId> wanted;
  for (const auto& name : existing) {
    if (name == rocksdb::kDefaultColumnFamilyName) continue;
    auto shard = parse_shard_name(name);
    if (!shard) {
      return Status(StatusCode::kCorruption,
                    "data dir " + dir_ + ": unknown column family '" + name + "', refusing to start");
    }
    wanted.push_back(*shard);
  }
  for (ShardId shard : options_.shards) {
    if (std::find(wanted.begin(), wanted.end(), shard) != wanted.end()) continue;
    if (options_.read_only) {
      return Status(StatusCode::kInvalidArgument, "data dir " + dir_ + " has no shard " + std::to_string(shard.value) +
                                                      " (a read-only open cannot create one)");
    }
    wanted.push_back(shard);
  }
  std::sort(wanted.begin(), wanted.end());
  if (wanted.empty()) {
    return Status(StatusCode::kInvalidArgument, "data dir " + dir_ +
                                                    " holds no journal data yet and no shard count was given "
                                                    "(JournalOptions::shards)");
  }
  if (wanted.size() > limits::shards_max) return Status(StatusCode::kInvalidArgument, "more than shards_max shards");

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (ShardId shard : wanted) descriptors.emplace_back(shard_name(shard), cf_options);

  rocksdb::DB* db = nullptr;
  rocksdb::Status opened;
  if (options_.read_only) {
    for (int attempt = 1; attempt <= kReadOnlyAttempts; ++attempt) {
      handles_.clear();
      opened = rocksdb::DB::OpenAsSecondary(db_options, path, secondary_path_, descriptors, &handles_, &db);
      if (opened.ok() || !file_vanished(opened)) break;
      std::this_thread::sleep_for(kReadOnlyRetryWait);
    }
  } else {
    opened = rocksdb::DB::Open(db_options, path, descriptors, &handles_, &db);
  }
  if (!opened.ok()) {
    Status status = from_rocks(opened, "data dir " + dir_ + ": opening the journal, refusing to start");
    if (status.code() == StatusCode::kCorruption) {
      std::string detail = corruption_detail_from_log(path);
      if (!detail.empty()) status = Status(StatusCode::kCorruption, status.message() + " (" + detail + ")");
    }
    if (!options_.read_only && contains(opened.ToString(), "lock")) {
      return Status(StatusCode::kInUse, "data dir " + dir_ + " is in use by another ffe journal (" + opened.ToString() + ")");
    }
    return status;
  }
  db_ = db;

  // The DB's own format record, beside the marker file.
  std::string format;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), handles_[0], enc::kFormatKey, &format);
  if (got.IsNotFound()) {
    if (Status status = lost_data("the journal's format record"); !status) return status;
  }
  if (got.IsNotFound() && options_.read_only) {
    return Status(StatusCode::kNotJournal, "data dir " + dir_ + " has no journal format record yet (its first open "
                                                                "has not finished): nothing to read");
  } else if (got.IsNotFound()) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    rocksdb::Status put = db_->Put(write_options, handles_[0], enc::kFormatKey, enc::kFormatValue);
    if (!put.ok()) return from_rocks(put, "data dir " + dir_ + ": writing the format record");
    // Flushed at once: a memtable holding it would pin every WAL file of this first session
    // (RocksDB deletes a WAL only once every column family with data in it has flushed, and
    // the default column family gets no other write), so a later open, or a read-only one,
    // would read the whole session's WAL again. Measured: 148 MB of WAL replayed for 2M
    // events (docs/replay.md).
    rocksdb::FlushOptions flush_options;
    flush_options.wait = true;
    rocksdb::Status flushed = db_->Flush(flush_options, handles_[0]);
    if (!flushed.ok()) return from_rocks(flushed, "data dir " + dir_ + ": flushing the format record");
  } else if (!got.ok()) {
    return from_rocks(got, "data dir " + dir_ + ": reading the format record, refusing to start");
  } else if (format != enc::kFormatValue) {
    return Status(StatusCode::kFormat, "data dir " + dir_ + ": journal format '" + format +
                                           "' is not one this build reads ('" + std::string(enc::kFormatValue) + "')");
  }

  if (options_.open_verification == OpenVerification::kFull) {
    rocksdb::Status verified = db_->VerifyChecksum();
    for (int attempt = 1; options_.read_only && file_vanished(verified) && attempt < kReadOnlyAttempts; ++attempt) {
      std::this_thread::sleep_for(kReadOnlyRetryWait);
      verified = db_->TryCatchUpWithPrimary();
      if (verified.ok()) verified = db_->VerifyChecksum();
    }
    if (!verified.ok()) return from_rocks(verified, "data dir " + dir_ + ": checksum verification at open, refusing to start");
  }

  for (std::size_t i = 0; i < wanted.size(); ++i) {
    auto shard = std::make_unique<ShardState>();
    shard->id = wanted[i];
    shard->name = shard_name(wanted[i]);
    shard->cf = handles_[i + 1];
    shard->index = static_cast<std::uint32_t>(i);
    if (Status status = recover_shard(*shard); !status) return status;
    shard_by_id_[shard->id.value] = shard.get();
    shards_.push_back(std::move(shard));
  }
  Status heads_checked = check_heads(*recorded_heads);
  // A read-only open beside a running engine can land in the middle of the engine's own
  // recovery (its WAL replayed into a table file, then deleted): the view then misses data
  // the engine has. Catching up with the engine closes that window; only a log still below
  // the heads after that has lost commits.
  for (int attempt = 1; options_.read_only && !heads_checked && attempt <= kReadOnlyHeadsAttempts; ++attempt) {
    std::this_thread::sleep_for(kReadOnlyHeadsRetryWait);
    if (refresh()) heads_checked = check_heads(*recorded_heads);
  }
  if (!heads_checked) return heads_checked;
  heads_written_ = std::move(*recorded_heads);
  return Status::ok();
}

Status Journal::Impl::heads_say_data_was_lost(const Heads& recorded, const std::string& what) const {
  for (const auto& [shard, revision] : recorded) {
    if (revision == 0) continue;
    return Status(StatusCode::kCorruption, "data dir " + dir_ + ": " + what + " is missing, but " + kHeadsFile +
                                               " says shard " + std::to_string(shard) + " was durable at revision " +
                                               std::to_string(revision) + "; refusing to start");
  }
  return Status::ok();
}

Status Journal::Impl::check_heads(const Heads& recorded) const {
  for (const auto& [id, revision] : recorded) {
    auto found = shard_by_id_.find(id);
    if (found == shard_by_id_.end()) {
      if (revision == 0) continue;
      return Status(StatusCode::kCorruption, "data dir " + dir_ + ": " + kHeadsFile + " says shard " +
                                                 std::to_string(id) + " was durable at revision " +
                                                 std::to_string(revision) +
                                                 ", but the journal has no such shard; refusing to start");
    }
    const Revision head = found->second->durable_revision.load();
    if (head < revision) {
      return Status(StatusCode::kCorruption,
                    "data dir " + dir_ + " " + found->second->name + ": the log ends at revision " +
                        std::to_string(head) + ", but revision " + std::to_string(revision) +
                        " was durable before (" + kHeadsFile +
                        "): a WAL or table file is missing or cut, and acknowledged commits with it; "
                        "refusing to start");
    }
  }
  return Status::ok();
}

Heads Journal::Impl::durable_heads() const {
  Heads heads;
  for (const auto& shard : shards_) heads[shard->id.value] = shard->durable_revision.load();
  return heads;
}

void Journal::Impl::heads_loop() {
  std::unique_lock lock(heads_mu_);
  while (!heads_cv_.wait_for(lock, kHeadsInterval, [&] { return heads_stopping_; })) {
    Heads heads = durable_heads();
    if (heads == heads_written_) continue;
    lock.unlock();
    // A failure (a full disk) leaves the older file, which only checks less: the journal
    // itself reports what stops it.
    const bool written = write_heads(dir_, heads).is_ok();
    lock.lock();
    if (written) heads_written_ = std::move(heads);
  }
}

Status Journal::Impl::recover_shard(ShardState& shard, bool refreshing) {
  const std::string where = "data dir " + dir_ + " " + shard.name;
  auto corrupt = [&](const std::string& message) {
    return Status(StatusCode::kCorruption, where + ": " + message + (refreshing ? "" : "; refusing to start"));
  };
  rocksdb::ReadOptions read_options;
  read_options.verify_checksums = true;

  Revision compacted = 0;
  std::string value;
  rocksdb::Status got = db_->Get(read_options, shard.cf, enc::kMetaCompacted, &value);
  if (got.ok()) {
    auto decoded = enc::decode_revision(value);
    if (!decoded) return corrupt("malformed compacted revision");
    compacted = *decoded;
  } else if (!got.IsNotFound()) {
    return from_rocks(got, where + ": reading the compacted revision");
  }

  OutboxPosition cursor;
  got = db_->Get(read_options, shard.cf, enc::kMetaOutboxCursor, &value);
  if (got.ok()) {
    auto decoded = enc::decode_outbox_position(value);
    if (!decoded) return corrupt("malformed outbox cursor");
    cursor = *decoded;
  } else if (!got.IsNotFound()) {
    return from_rocks(got, where + ": reading the outbox cursor");
  }

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, shard.cf));
  // The head: the last log record.
  Revision head = 0;
  it->SeekForPrev(enc::log_key(UINT64_MAX));
  if (it->Valid() && !it->key().empty() && it->key()[0] == enc::kLogTag) {
    auto revision = enc::parse_log_key(view_key(it->key()));
    if (!revision) return corrupt("malformed log key");
    head = *revision;
  }
  if (!it->status().ok()) return from_rocks(it->status(), where + ": reading the log head, refusing to start");
  if (head == 0 && compacted > 0) {
    return corrupt("the log is empty but the compacted revision is " + std::to_string(compacted) +
                   " (compaction keeps that record)");
  }
  if (compacted > head) {
    return corrupt("the compacted revision " + std::to_string(compacted) + " is above the last log revision " +
                   std::to_string(head));
  }

  // Revisions follow without gaps from the compacted revision up (STYLE habit 4).
  const Revision first = std::max<Revision>(compacted, 1);
  auto check_run = [&](Revision from, Revision to) -> Status {  // [from, to]
    Revision expected = from;
    for (it->Seek(enc::log_key(from)); it->Valid() && expected <= to; it->Next()) {
      auto revision = enc::parse_log_key(view_key(it->key()));
      if (!revision) return corrupt("malformed log key after revision " + std::to_string(expected - 1));
      if (*revision != expected) {
        return corrupt("the log jumps from revision " + std::to_string(expected - 1) + " to " +
                       std::to_string(*revision) + " (a gap)");
      }
      auto record = enc::decode_log_record(view_key(it->value()));
      if (!record) return corrupt("log record " + std::to_string(expected) + " is malformed");
      if (record->revision != expected) {
        return corrupt("log record under key " + std::to_string(expected) + " says revision " +
                       std::to_string(record->revision));
      }
      ++expected;
    }
    if (!it->status().ok()) return from_rocks(it->status(), where + ": reading the log, refusing to start");
    if (expected != to + 1) {
      return corrupt("the log ends at revision " + std::to_string(expected - 1) + ", expected " + std::to_string(to));
    }
    return Status::ok();
  };
  const Revision known_head = shard.durable_revision.load();
  if (refreshing && head < known_head) {
    return corrupt("the log's head went back from revision " + std::to_string(known_head) + " to " +
                   std::to_string(head));
  }
  if (refreshing) {
    // Only what the catch-up added (or, after a compaction past the known head, what is left).
    const Revision from = std::max<Revision>(first, known_head + 1);
    if (head >= from) {
      if (Status status = check_run(from, head); !status) return status;
    }
  } else if (head >= first) {
    if (options_.open_verification == OpenVerification::kFull || head - first < options_.open_verify_tail_revisions) {
      if (Status status = check_run(first, head); !status) return status;
    } else {
      if (Status status = check_run(first, first); !status) return status;
      Revision tail_from = head - options_.open_verify_tail_revisions + 1;
      if (Status status = check_run(tail_from, head); !status) return status;
    }
  }
  // Nothing below the compacted revision may remain in the log (compaction deletes it in
  // the same batch that records the revision).
  if (compacted > 1) {
    it->Seek(enc::log_key(0));
    if (it->Valid() && !it->key().empty() && it->key()[0] == enc::kLogTag) {
      auto revision = enc::parse_log_key(view_key(it->key()));
      if (!revision || *revision < compacted) return corrupt("log records remain below the compacted revision");
    }
  }

  // The outbox head: where the next entry goes.
  OutboxPosition next = cursor;
  it->SeekForPrev(enc::outbox_key(UINT64_MAX, UINT32_MAX));
  if (it->Valid() && !it->key().empty() && it->key()[0] == enc::kOutboxTag) {
    auto position = enc::parse_outbox_key(view_key(it->key()));
    if (!position) return corrupt("malformed outbox key");
    if (position->revision > head) {
      return corrupt("outbox entry at revision " + std::to_string(position->revision) + " is past the log head " +
                     std::to_string(head));
    }
    next = std::max(next, position->next());
  }
  if (!it->status().ok()) return from_rocks(it->status(), where + ": reading the outbox, refusing to start");

  // Input positions: read back and checked against the head.
  for (it->Seek(std::string(1, enc::kInputTag)); it->Valid() && starts_with(it->key(), "i"); it->Next()) {
    auto input = enc::decode_input_value(view_key(it->value()));
    if (!input) return corrupt("malformed input position");
    if (input->revision > head) {
      return corrupt("input position '" + std::string(view_key(it->key()).substr(1)) + "' names revision " +
                     std::to_string(input->revision) + ", past the log head " + std::to_string(head));
    }
  }
  if (!it->status().ok()) return from_rocks(it->status(), where + ": reading input positions, refusing to start");

  std::lock_guard lock(progress_mu_);
  shard.writer_revision = head;
  shard.writer_outbox_next = next;
  shard.durable_revision.store(head);
  shard.compacted_revision.store(compacted);
  shard.outbox_end = next;
  shard.outbox_cursor = cursor;
  return Status::ok();
}

Status Journal::Impl::refresh() {
  if (!options_.read_only) {
    return Status(StatusCode::kInvalidArgument, "refresh() is for read-only journals; data dir " + dir_ + " is open for writing");
  }
  {
    std::unique_lock lock(refresh_mu_);  // no read is between two steps of its view
    rocksdb::Status caught_up = db_->TryCatchUpWithPrimary();
    for (int attempt = 1; file_vanished(caught_up) && attempt < kReadOnlyAttempts; ++attempt) {
      std::this_thread::sleep_for(kReadOnlyRetryWait);
      caught_up = db_->TryCatchUpWithPrimary();
    }
    if (!caught_up.ok()) return from_rocks(caught_up, "data dir " + dir_ + ": catching up with the engine's journal");
    for (auto& shard : shards_) {
      if (Status status = recover_shard(*shard, /*refreshing=*/true); !status) return status;
    }
  }
  notify_progress();
  return Status::ok();
}

void Journal::Impl::start_threads() {
  started_ = true;
  // Named, so top/perf show where the journal's time goes.
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ffe-journal-w");
    writer_loop();
  });
  completer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ffe-journal-c");
    completion_loop();
  });
  snapshotter_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ffe-journal-s");
    snapshot_loop();
  });
  if (!options_.read_only) {
    heads_writer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ffe-journal-h");
      heads_loop();
    });
  }
}

Journal::Impl::~Impl() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  space_cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // commits (or fails) everything still queued
  {
    std::lock_guard lock(completion_mu_);
    completion_stopping_ = true;
  }
  completion_cv_.notify_all();
  if (completer_.joinable()) completer_.join();  // every callback has run
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_stopping_ = true;
  }
  snapshot_cv_.notify_all();
  snapshot_space_cv_.notify_all();
  if (snapshotter_.joinable()) snapshotter_.join();
  {
    std::lock_guard lock(heads_mu_);
    heads_stopping_ = true;
  }
  heads_cv_.notify_all();
  if (heads_writer_.joinable()) heads_writer_.join();
  // Every commit is settled: the last heads, so the next open checks everything.
  if (started_ && !options_.read_only && !failed_.load()) {
    if (Heads heads = durable_heads(); heads != heads_written_) write_heads(dir_, heads);
  }
  {
    std::lock_guard lock(progress_mu_);
    closing_ = true;
  }
  notify_progress();
  if (db_ != nullptr) {
    if (started_ && !failed_.load() && !options_.read_only) {
      // The outbox cursors mark_sent moved since the last batch (no relay runs any more).
      rocksdb::WriteBatch batch;
      put_outbox_cursors(batch);
      if (batch.Count() > 0) write_side(batch, /*sync=*/true, "storing the outbox cursors at close");
    }
    // Only a journal that opened completely flushes: a refused open writes nothing more.
    if (options_.flush_at_close && started_ && !failed_.load()) {
      rocksdb::FlushOptions flush_options;
      flush_options.wait = true;
      std::vector<rocksdb::ColumnFamilyHandle*> shards(handles_.begin() + 1, handles_.end());
      db_->Flush(flush_options, shards);  // a failure only costs WAL replay at the next open
    }
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
    db_->Close();
    delete db_;
  }
  if (!secondary_path_.empty()) {
    std::error_code error;
    std::filesystem::remove_all(secondary_path_, error);  // our own temp dir; a failure leaves litter only
  }
}

// ---------------------------------------------------------------------------------------------
// commit path

Status Journal::Impl::validate_request(const CommitRequest& request, Pending& pending) const {
  auto bad = [&](const std::string& message) {
    return Status(StatusCode::kInvalidArgument, shard_name(request.shard) + ": " + message);
  };
  std::size_t bytes = 0;
  if (request.events.size() > limits::command_events_max)
    return bad(std::to_string(request.events.size()) + " events, over command_events_max");
  for (std::uint32_t i = 0; i < request.events.size(); ++i) {
    const Event& event = request.events[i];
    if (Status status = validate_key(event.entity_key, limits::entity_key_bytes_max, "an entity key"); !status)
      return bad(status.message());
    if (event.entity_key.find('\0') != std::string::npos) return bad("an entity key contains a NUL byte");
    if (event.payload.size() > limits::event_bytes_max) return bad("an event is over event_bytes_max");
    const std::size_t event_bytes = JournalOptions::snapshot_event_bytes(event.entity_key, event.payload);
    bytes += event_bytes;
    std::size_t seen = 0;
    while (seen < pending.entity_events.size() && request.events[pending.entity_events[seen]].entity_key != event.entity_key) {
      ++seen;
    }
    if (seen == pending.entity_events.size()) {
      pending.entity_events.push_back(i);
      pending.entity_totals.emplace_back();
    }
    pending.entity_totals[seen].events += 1;
    pending.entity_totals[seen].bytes += event_bytes;
  }
  for (std::size_t i = 0; i < request.snapshots.size(); ++i) {
    const EntitySnapshot& snapshot = request.snapshots[i];
    if (snapshot.state.size() > limits::snapshot_bytes_max) return bad("a snapshot is over snapshot_bytes_max");
    bool has_events = false;
    for (std::uint32_t first : pending.entity_events) has_events |= request.events[first].entity_key == snapshot.entity_key;
    if (!has_events) return bad("a snapshot of '" + snapshot.entity_key + "' which has no event in the command");
    for (std::size_t j = 0; j < i; ++j) {
      if (request.snapshots[j].entity_key == snapshot.entity_key) return bad("two snapshots of '" + snapshot.entity_key + "'");
    }
    bytes += snapshot.entity_key.size() + snapshot.state.size();
  }
  if (request.outbox.size() > limits::command_outbox_max) return bad("over command_outbox_max outbox messages");
  for (const auto& message : request.outbox) {
    if (message.headers.size() > limits::outbox_headers_max) return bad("an outbox message is over outbox_headers_max");
    std::size_t size = message.topic.size() + message.key.size() + message.payload.size();
    for (const auto& header : message.headers) size += header.name.size() + header.value.size();
    if (size > limits::outbox_message_bytes_max) return bad("an outbox message is over outbox_message_bytes_max");
    if (message.topic.empty()) return bad("an outbox message has no topic");
    bytes += size;
  }
  if (request.dedupe_keys.size() > limits::command_dedupe_keys_max) return bad("over command_dedupe_keys_max dedupe keys");
  for (const auto& key : request.dedupe_keys) {
    if (Status status = validate_key(key, limits::dedupe_key_bytes_max, "a dedupe key"); !status) return bad(status.message());
    bytes += key.size();
  }
  if (request.input) {
    if (Status status = validate_key(request.input->source, limits::input_source_bytes_max, "the input source"); !status)
      return bad(status.message());
    bytes += request.input->source.size();
  }
  const std::size_t index_changes = request.index_put.size() + request.index_delete.size();
  if (index_changes > limits::index_entries_per_command_max)
    return bad(std::to_string(index_changes) + " index puts and deletes, over index_entries_per_command_max");
  auto check_index_key = [&](const std::string& key) -> Status {
    if (key.empty()) return bad("an index key is empty");
    if (key.size() > limits::index_key_bytes_max)
      return bad("an index key is " + std::to_string(key.size()) + " bytes, over index_key_bytes_max");
    return Status::ok();
  };
  for (const auto& key : request.index_delete) {
    if (Status status = check_index_key(key); !status) return status;
    bytes += key.size();
  }
  for (const auto& entry : request.index_put) {
    if (Status status = check_index_key(entry.key); !status) return status;
    if (entry.value.size() > limits::index_value_bytes_max) {
      return bad("the value of index key '" + entry.key + "' is " + std::to_string(entry.value.size()) +
                 " bytes, over index_value_bytes_max");
    }
    bytes += entry.key.size() + entry.value.size();
  }
  if (bytes > limits::command_bytes_max) return bad("the command is over command_bytes_max");
  pending.bytes = bytes + 64;
  return Status::ok();
}

Status Journal::Impl::submit(CommitRequest request, CommitCallback done, Admission admission) {
  FFE_ASSERT(done != nullptr, "submit() needs a completion callback");
  if (options_.read_only) return read_only_refused("a commit");
  auto pending = std::make_unique<Pending>();
  pending->shard = find(request.shard);
  if (pending->shard == nullptr) {
    return Status(StatusCode::kInvalidArgument, "unknown shard " + std::to_string(request.shard.value));
  }
  if (Status status = validate_request(request, *pending); !status) return status;
  // Encoding happens here, on the caller's thread, so the single writer only copies bytes.
  pending->body = enc::encode_log_body(request);
  pending->outbox_values.reserve(request.outbox.size());
  for (const auto& message : request.outbox) pending->outbox_values.push_back(enc::encode_outbox_message(message));
  pending->request = std::move(request);
  pending->done = std::move(done);
  // The body holds the payloads now; the queue and the threads behind it need only the keys.
  for (auto& event : pending->request.events) std::string().swap(event.payload);

  std::unique_lock lock(queue_mu_);
  auto full = [&] {
    return queue_.size() >= options_.commit_queue_commands ||
           (!queue_.empty() && queue_bytes_ + pending->bytes > options_.commit_queue_bytes);
  };
  while (true) {
    if (failed_.load()) return stopped_status();
    if (stopping_) return Status(StatusCode::kClosed, "data dir " + dir_ + ": the journal is closing");
    if (!full()) break;
    if (admission == Admission::kTry) {
      return Status(StatusCode::kBusy, "data dir " + dir_ + ": the commit queue is full (" +
                                           std::to_string(queue_.size()) + " commands); retry later");
    }
    space_cv_.wait(lock);
  }
  pending->enqueued = SteadyClock::now();
  queue_bytes_ += pending->bytes;
  queue_.push_back(std::move(pending));
  const bool wake = writer_waiting_;
  lock.unlock();
  if (wake) queue_cv_.notify_one();
  return Status::ok();
}

Status Journal::Impl::stopped_status() const {
  // error_ is only written once, under queue_mu_, before failed_ becomes true.
  return Status(StatusCode::kStopped, "the journal stopped after a failed write and accepts no commit: " +
                                          error_.to_string());
}

Status Journal::Impl::status() const {
  std::lock_guard lock(queue_mu_);
  return failed_.load() ? error_ : Status::ok();
}

JournalStats Journal::Impl::stats() const {
  JournalStats stats;
  stats.commands = stat_commands_.load();
  stats.noop_commands = stat_noop_.load();
  stats.batches = stat_batches_.load();
  stats.batch_bytes = stat_batch_bytes_.load();
  stats.snapshots_made = stat_snapshots_made_.load();
  stats.snapshot_bytes_made = stat_snapshot_bytes_made_.load();
  stats.snapshots_given = stat_snapshots_given_.load();
  stats.snapshot_tracked_entities = stat_snapshot_tracked_.load();
  stats.compactions = stat_compactions_.load();
  stats.compactions_full = stat_compactions_full_.load();
  stats.compaction_entities = stat_compaction_entities_.load();
  return stats;
}

void Journal::Impl::complete(std::vector<std::unique_ptr<Pending>>& group, const Status& status) {
  if (group.empty()) return;
  std::unique_lock lock(completion_mu_);
  // Bounded like the commit queue: a completion thread that falls behind pushes back on
  // the writer instead of growing without limit.
  // After a failure nothing waits here: fail_stop may run on the snapshot thread, which the
  // completion thread itself may be waiting for.
  completion_space_cv_.wait(lock, [&] {
    return completion_commands_ < options_.commit_queue_commands || completion_inbox_.empty() || failed_.load();
  });
  completion_commands_ += group.size();
  completion_inbox_.push_back(Completion{std::move(group), status});
  group.clear();
  lock.unlock();
  completion_cv_.notify_one();
}

void Journal::Impl::completion_loop() {
  std::deque<Completion> work;
  while (true) {
    {
      std::unique_lock lock(completion_mu_);
      completion_cv_.wait(lock, [&] { return !completion_inbox_.empty() || completion_stopping_; });
      if (completion_inbox_.empty()) break;  // stopping, and every callback ran
      work.swap(completion_inbox_);
      completion_commands_ = 0;
    }
    completion_space_cv_.notify_all();
    for (auto& completion : work) {
      const bool snapshots = completion.status.is_ok() && options_.folder != nullptr &&
                             options_.snapshot_every_events > 0 && !failed_.load();
      // Counted as promised to the snapshot thread before the callbacks run, so a caller
      // that heard of its commit and then calls wait_for_snapshots() waits for it too.
      std::uint64_t promised = 0;
      if (snapshots) {
        for (const auto& pending : completion.group) promised += pending->entity_events.size();
        std::lock_guard lock(snapshot_mu_);
        snapshot_enqueued_ += promised;
      }
      for (auto& pending : completion.group) {
        if (completion.status.is_ok()) {
          pending->done(pending->result);
        } else {
          CommitResult result;
          result.status = completion.status;
          pending->done(result);
        }
      }
      if (!snapshots) continue;
      // The snapshot thread hears of every durable entity change, after the callers did.
      std::unique_lock lock(snapshot_mu_);
      for (auto& pending : completion.group) {
        if (pending->entity_events.empty()) continue;
        snapshot_space_cv_.wait(lock, [&] {
          return snapshot_inbox_entities_ < limits::snapshot_inbox_entries_max || snapshot_stopping_ ||
                 failed_.load();
        });
        if (snapshot_stopping_ || failed_.load()) break;
        promised -= pending->entity_events.size();
        snapshot_inbox_entities_ += pending->entity_events.size();
        snapshot_inbox_.push_back(std::move(pending));
      }
      snapshot_done_ += promised;  // whatever was not handed over (stopping or stopped)
      // The snapshot thread works in bulk: woken when a good amount is waiting, otherwise
      // it looks every kSnapshotPollMs on its own. One wake-up less per batch matters when
      // batches are small and the cores are shared.
      const bool wake = snapshot_inbox_entities_ >= kSnapshotWakeEntities;
      lock.unlock();
      if (wake) snapshot_cv_.notify_one();
      if (promised > 0) snapshot_done_cv_.notify_all();
    }
    work.clear();  // frees what the snapshot thread did not take
  }
}

void Journal::Impl::fail_stop(const Status& reason, std::vector<std::unique_ptr<Pending>>* failing) {
  std::deque<std::unique_ptr<Pending>> queued;
  {
    std::lock_guard lock(queue_mu_);
    if (!failed_.load()) {
      error_ = reason;
      failed_.store(true);
      if (options_.on_fail_stop) {
        options_.on_fail_stop(reason);
      } else {
        std::fprintf(stderr, "ffe journal: fail-stop: %s\n", reason.to_string().c_str());
      }
    }
    queued.swap(queue_);
    queue_bytes_ = 0;
  }
  space_cv_.notify_all();
  notify_progress();
  {
    std::lock_guard lock(snapshot_mu_);  // wake waiters so they see failed_
  }
  snapshot_space_cv_.notify_all();
  {
    std::lock_guard lock(completion_mu_);
  }
  completion_space_cv_.notify_all();
  if (failing != nullptr) complete(*failing, reason);
  std::vector<std::unique_ptr<Pending>> rest;
  for (auto& pending : queued) rest.push_back(std::move(pending));
  complete(rest, stopped_status());
}

void Journal::Impl::writer_loop() {
  std::vector<std::unique_ptr<Pending>> group;
  rocksdb::WriteBatch batch;
  const std::size_t batch_commands = options_.commit_batch_commands;
  const std::size_t batch_bytes = options_.commit_batch_bytes;
  while (true) {
    group.clear();
    {
      std::unique_lock lock(queue_mu_);
      writer_waiting_ = true;
      queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) {
        writer_waiting_ = false;
        break;  // stopping, and everything queued is done
      }
      if (options_.commit_wait.count() > 0 && !stopping_ && queue_.size() < batch_commands) {
        // Linger for the batch to fill, bounded by commit_wait after the oldest command.
        auto deadline = queue_.front()->enqueued + options_.commit_wait;
        queue_cv_.wait_until(lock, deadline, [&] { return queue_.size() >= batch_commands || stopping_; });
      }
      writer_waiting_ = false;
      std::size_t bytes = 0;
      while (!queue_.empty() && group.size() < batch_commands) {
        auto& next = queue_.front();
        if (!group.empty() && bytes + next->bytes > batch_bytes) break;
        bytes += next->bytes;
        queue_bytes_ -= next->bytes;
        group.push_back(std::move(next));
        queue_.pop_front();
      }
    }
    space_cv_.notify_all();
    if (failed_.load()) {
      complete(group, stopped_status());
      continue;
    }
    write_group(group, batch);
  }
}

void Journal::Impl::write_group(std::vector<std::unique_ptr<Pending>>& group, rocksdb::WriteBatch& batch) {
  batch.Clear();
  const std::int64_t now_ms = wall_clock_ms();
  bool has_dedupe = false;
  // The last position per (shard, source) wins; few distinct sources per batch (one per
  // input partition a shard consumes), so a linear search with a last-hit shortcut.
  struct InputUpdate {
    ShardState* shard;
    std::string_view source;
    std::int64_t offset;
    Revision revision;
  };
  std::vector<InputUpdate> inputs;
  std::size_t last_input = 0;
  std::vector<ShardState*> touched;
  // The batch's entries go into each shard's memtable (a skiplist) in batch order, and an
  // insert next to the previous one is far cheaper than a jump: the skiplist keeps the last
  // insert's position and recomputes only the levels the new key falls outside of. So the
  // keys that scatter (versions, snapshots, dedupe keys, index entries) are encoded into one
  // buffer and put in key order, and the ones that grow with the revision (log records,
  // outbox messages, dedupe expiries) each in one run in revision order. The group is one
  // atomic batch, so order inside it is free, except between entries of one key: the sort is
  // stable, so they keep their order (a later command's change wins, and a command's put
  // follows its own delete).
  struct SortedEntry {
    rocksdb::ColumnFamilyHandle* cf;
    std::uint32_t key_offset;
    std::uint32_t key_size;
    std::uint32_t value_offset;  // into key_bytes, when value == nullptr
    std::uint32_t value_size;
    const std::string* value;
    bool is_delete;
  };
  std::string key_bytes;
  std::vector<SortedEntry> sorted;
  sorted.reserve(group.size() * 2);
  // Appends one entry whose key `append` encodes into key_bytes (encoding.h's append_*).
  auto add = [&](rocksdb::ColumnFamilyHandle* cf, auto&& append) -> SortedEntry& {
    SortedEntry& entry =
        sorted.emplace_back(SortedEntry{cf, static_cast<std::uint32_t>(key_bytes.size()), 0, 0, 0, nullptr, false});
    append(key_bytes);
    entry.key_size = static_cast<std::uint32_t>(key_bytes.size() - entry.key_offset);
    return entry;
  };

  char log_key[9];
  char header[enc::kLogHeaderBytes];
  for (auto& pending : group) {
    ShardState& shard = *pending->shard;
    const CommitRequest& request = pending->request;
    const bool has_events = !request.events.empty();
    const Revision revision = has_events ? ++shard.writer_revision : shard.writer_revision;
    pending->result.revision = revision;
    pending->result.new_revision = has_events;
    if (std::find(touched.begin(), touched.end(), &shard) == touched.end()) touched.push_back(&shard);

    if (has_events) {
      log_key[0] = enc::kLogTag;
      enc::store_be64(log_key + 1, revision);
      const std::size_t header_size =
          enc::encode_log_header(header, revision, request.committed_at_ms.value_or(now_ms));
      rocksdb::Slice key_slice(log_key, sizeof log_key);
      rocksdb::Slice value_parts[2] = {rocksdb::Slice(header, header_size), rocksdb::Slice(pending->body)};
      batch.Put(shard.cf, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(value_parts, 2));
      for (std::uint32_t first : pending->entity_events) {
        const std::string& entity = request.events[first].entity_key;
        add(shard.cf, [&](std::string& out) { enc::append_entity_key(out, enc::kVersionTag, entity, revision); });
      }
    }
    for (const auto& snapshot : request.snapshots) {
      add(shard.cf, [&](std::string& out) {
        enc::append_entity_key(out, enc::kSnapshotTag, snapshot.entity_key, revision);
      }).value = &snapshot.state;
    }
    for (const auto& dedupe : request.dedupe_keys) {
      has_dedupe = true;
      SortedEntry& entry = add(shard.cf, [&](std::string& out) { enc::append_dedupe_key(out, dedupe); });
      entry.value_offset = static_cast<std::uint32_t>(key_bytes.size());
      enc::append_revision(key_bytes, revision);
      entry.value_size = static_cast<std::uint32_t>(key_bytes.size() - entry.value_offset);
    }
    // Deletes before puts: a command's put of a key it also deletes wins.
    for (const auto& key : request.index_delete) {
      add(shard.cf, [&](std::string& out) { enc::append_index_key(out, key); }).is_delete = true;
    }
    for (const auto& entry : request.index_put) {
      add(shard.cf, [&](std::string& out) { enc::append_index_key(out, entry.key); }).value = &entry.value;
    }
    if (request.input) {
      const std::string_view source = request.input->source;
      auto same = [&](const InputUpdate& update) { return update.shard == &shard && update.source == source; };
      if (last_input >= inputs.size() || !same(inputs[last_input])) {
        last_input = std::find_if(inputs.begin(), inputs.end(), same) - inputs.begin();
        if (last_input == inputs.size()) inputs.push_back(InputUpdate{&shard, source, 0, 0});
      }
      inputs[last_input].offset = request.input->offset;
      inputs[last_input].revision = revision;
    }
  }
  const std::string_view all_keys(key_bytes);
  std::stable_sort(sorted.begin(), sorted.end(), [&](const SortedEntry& a, const SortedEntry& b) {
    if (a.cf != b.cf) return a.cf->GetID() < b.cf->GetID();
    return all_keys.substr(a.key_offset, a.key_size) < all_keys.substr(b.key_offset, b.key_size);
  });
  for (const SortedEntry& entry : sorted) {
    const rocksdb::Slice key(key_bytes.data() + entry.key_offset, entry.key_size);
    if (entry.is_delete) {
      batch.Delete(entry.cf, key);
    } else if (entry.value != nullptr) {
      batch.Put(entry.cf, key, *entry.value);
    } else {
      batch.Put(entry.cf, key, rocksdb::Slice(key_bytes.data() + entry.value_offset, entry.value_size));
    }
  }
  // The runs in revision order: outbox messages, then dedupe expiries.
  for (auto& pending : group) {
    if (pending->outbox_values.empty()) continue;
    ShardState& shard = *pending->shard;
    const Revision revision = pending->result.revision;
    std::uint32_t seq = shard.writer_outbox_next.revision == revision ? shard.writer_outbox_next.seq : 0;
    for (const auto& value : pending->outbox_values) batch.Put(shard.cf, enc::outbox_key(revision, seq++), value);
    shard.writer_outbox_next = OutboxPosition{revision, seq};
  }
  for (auto& pending : group) {
    for (const auto& dedupe : pending->request.dedupe_keys) {
      batch.Put(pending->shard->cf, enc::dedupe_expiry_key(pending->result.revision, dedupe), rocksdb::Slice());
    }
  }
  for (const auto& input : inputs) {
    batch.Put(input.shard->cf, enc::input_key(input.source), enc::encode_input_value(input.offset, input.revision));
  }
  put_outbox_cursors(batch);

  rocksdb::Status written;
  const auto write_started = std::chrono::steady_clock::now();
  {
    std::unique_lock<std::mutex> dedupe_lock(dedupe_mu_, std::defer_lock);
    if (has_dedupe) dedupe_lock.lock();
    rocksdb::WriteOptions write_options;
    write_options.sync = true;         // durable before anyone hears of it (invariant 3)
    write_options.disableWAL = false;  // the WAL is what makes it durable
    written = db_->Write(write_options, &batch);
  }
  if (!written.ok()) {
    Status reason = from_rocks(written, "data dir " + dir_ + ": the synced write of " + std::to_string(group.size()) +
                                            " commands failed");
    fail_stop(reason, &group);
    return;
  }

  stat_batches_.fetch_add(1, std::memory_order_relaxed);
  stat_batch_bytes_.fetch_add(batch.GetDataSize(), std::memory_order_relaxed);
  stat_commands_.fetch_add(group.size(), std::memory_order_relaxed);
  if (options_.on_batch) {
    options_.on_batch(BatchObservation{group.size(), batch.GetDataSize(),
                                       std::chrono::steady_clock::now() - write_started});
  }
  {
    std::lock_guard lock(progress_mu_);
    for (ShardState* shard : touched) {
      shard->durable_revision.store(shard->writer_revision);
      shard->outbox_end = shard->writer_outbox_next;
    }
  }
  for (ShardState* shard : touched) shard->progress_cv.notify_all();

  std::uint64_t noop = 0, given = 0;
  for (auto& pending : group) {
    noop += pending->request.events.empty() ? 1 : 0;
    given += pending->request.snapshots.size();
  }
  stat_noop_.fetch_add(noop, std::memory_order_relaxed);
  stat_snapshots_given_.fetch_add(given, std::memory_order_relaxed);
  complete(group, Status::ok());
}

void Journal::Impl::put_outbox_cursors(rocksdb::WriteBatch& batch) {
  std::lock_guard lock(progress_mu_);
  for (ShardState* shard : dirty_outbox_cursors_) {
    batch.Put(shard->cf, enc::kMetaOutboxCursor, enc::encode_outbox_position(shard->outbox_cursor));
    shard->outbox_cursor_dirty = false;
  }
  dirty_outbox_cursors_.clear();
}

Status Journal::Impl::write_side(rocksdb::WriteBatch& batch, bool sync, const std::string& what) {
  if (options_.read_only) return read_only_refused("a write");
  if (failed_.load()) return stopped_status();
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  rocksdb::Status written = db_->Write(write_options, &batch);
  if (!written.ok()) {
    Status reason = from_rocks(written, "data dir " + dir_ + ": " + what);
    fail_stop(reason);
    return reason;
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// snapshots

void Journal::Impl::snapshot_loop() {
  SnapshotCounts counts(options_.snapshot_tracked_entities_max);
  std::vector<std::unique_ptr<Pending>> work;
  while (true) {
    std::size_t entities = 0;
    {
      std::unique_lock lock(snapshot_mu_);
      snapshot_cv_.wait_for(lock, std::chrono::milliseconds(kSnapshotPollMs), [&] {
        return snapshot_inbox_entities_ >= kSnapshotWakeEntities || snapshot_wanted_ || snapshot_stopping_;
      });
      if (snapshot_inbox_.empty() && !snapshot_stopping_) {
        snapshot_wanted_ = false;
        snapshot_done_cv_.notify_all();
        continue;
      }
      if (snapshot_stopping_) break;  // journal-made snapshots are derived data: nothing is lost
      work.swap(snapshot_inbox_);
      entities = snapshot_inbox_entities_;
      snapshot_inbox_entities_ = 0;
    }
    snapshot_space_cv_.notify_all();
    for (const auto& pending : work) {
      if (!failed_.load()) handle_touched(*pending, counts);
    }
    work.clear();
    stat_snapshot_tracked_.store(counts.size(), std::memory_order_relaxed);
    {
      std::lock_guard lock(snapshot_mu_);
      snapshot_done_ += entities;
    }
    snapshot_done_cv_.notify_all();
  }
  std::lock_guard lock(snapshot_mu_);
  snapshot_done_ = snapshot_enqueued_;
  snapshot_done_cv_.notify_all();
}

void Journal::Impl::handle_touched(const Pending& pending, SnapshotCounts& counts) {
  const CommitRequest& request = pending.request;
  for (std::size_t i = 0; i < pending.entity_events.size(); ++i) {
    const std::string& entity = request.events[pending.entity_events[i]].entity_key;
    SnapshotCount& count = counts.at(SnapshotCounts::id(pending.shard->index, entity));
    const EntitySnapshot* given = nullptr;
    for (const auto& snapshot : request.snapshots) {
      if (snapshot.entity_key == entity) given = &snapshot;
    }
    if (given != nullptr) {
      count = SnapshotCount{0, 0, static_cast<std::uint32_t>(given->state.size())};
      continue;
    }
    const Pending::EntityTotals& totals = pending.entity_totals[i];
    count.events = static_cast<std::uint32_t>(std::min<std::uint64_t>(UINT32_MAX, count.events + std::uint64_t{totals.events}));
    count.bytes += totals.bytes;
    if (!options_.snapshot_due(count.events, count.bytes, count.snapshot_bytes)) continue;
    // On failure the count stays, and the entity's next event tries again.
    auto made = make_snapshot(*pending.shard, entity, pending.result.revision);
    if (made) count = *made;
  }
}

Result<SnapshotCount> Journal::Impl::make_snapshot(const ShardState& shard, std::string_view entity,
                                                   Revision revision) {
  auto count_of = [](std::uint64_t events, std::uint64_t bytes, std::size_t snapshot_bytes) {
    return SnapshotCount{bytes, static_cast<std::uint32_t>(std::min<std::uint64_t>(events, UINT32_MAX)),
                         static_cast<std::uint32_t>(std::min<std::size_t>(snapshot_bytes, UINT32_MAX))};
  };
  std::string state;
  {
    ReadView view(db_, view_mu());
    if (revision < shard.compacted_revision.load()) return Status(StatusCode::kCompacted, "compacted");
    auto history = read_entity(shard, entity, revision, view);
    if (!history) return history.status();
    const std::size_t snapshot_bytes = history->snapshot ? history->snapshot->size() : 0;
    std::uint64_t bytes = 0;
    for (const auto& [at, payload] : history->events) bytes += JournalOptions::snapshot_event_bytes(entity, payload);
    // Not due by the disk's count: the in-memory one had forgotten the snapshot's size (a
    // restart, an eviction). Learning it costs this read, not a snapshot of a big state.
    // (Also the case of a snapshot at this very revision, from read repair or compaction.)
    if (!history->exists || !options_.snapshot_due(history->events.size(), bytes, snapshot_bytes)) {
      return count_of(history->events.size(), bytes, snapshot_bytes);
    }
    state = fold(entity, *history);
  }
  // Over the limit (a domain bug): not written, but counted as made, so the entity is not
  // folded again at its very next event; the bytes rule spaces the next try.
  if (state.size() > limits::snapshot_bytes_max) return count_of(0, 0, state.size());
  rocksdb::WriteBatch batch;
  batch.Put(shard.cf, enc::entity_key(enc::kSnapshotTag, entity, revision), state);
  // Derived data: without its own fsync (the next synced commit carries it; a crash loses
  // at most some snapshots, which the next events rebuild).
  Status status = write_side(batch, /*sync=*/false, shard.name + ": writing a snapshot");
  if (!status) return status;
  stat_snapshots_made_.fetch_add(1, std::memory_order_relaxed);
  stat_snapshot_bytes_made_.fetch_add(state.size(), std::memory_order_relaxed);
  return count_of(0, 0, state.size());
}

void Journal::Impl::repair(const ShardState& shard, std::string_view entity, const EntityHistory& history,
                           const std::string& state) const {
  const std::uint32_t every = options_.snapshot_every_events;
  if (options_.read_only) return;  // a read-only journal writes nothing, not even derived data
  if (every == 0 || history.events.size() <= 2ull * every || state.size() > limits::snapshot_bytes_max) return;
  // The snapshot thread's rule with twice the slack, so a read does not race it to write
  // the snapshot it is about to write anyway: only an entity whose count was forgotten (a
  // restart, an eviction from SnapshotCounts) gets this far.
  std::uint64_t bytes = 0;
  for (const auto& [revision, payload] : history.events) bytes += JournalOptions::snapshot_event_bytes(entity, payload);
  const std::uint64_t snapshot_bytes = history.snapshot ? history.snapshot->size() : 0;
  if (!options_.snapshot_due(history.events.size() / 2, bytes / 2, snapshot_bytes)) return;
  rocksdb::WriteBatch batch;
  batch.Put(shard.cf, enc::entity_key(enc::kSnapshotTag, entity, history.mod_revision), state);
  // A read may write: the snapshot is derived data, deterministic, and keyed by the
  // revision it is the state of. write_side is the one place writes fail stop.
  auto* self = const_cast<Impl*>(this);
  if (self->write_side(batch, /*sync=*/false, shard.name + ": writing a read-repair snapshot").is_ok()) {
    self->stat_snapshots_made_.fetch_add(1, std::memory_order_relaxed);
    self->stat_snapshot_bytes_made_.fetch_add(state.size(), std::memory_order_relaxed);
  }
}

void Journal::Impl::wait_for_snapshots() const {
  std::unique_lock lock(snapshot_mu_);
  const std::uint64_t target = snapshot_enqueued_;
  snapshot_wanted_ = true;
  snapshot_cv_.notify_one();
  snapshot_done_cv_.wait(lock, [&] { return snapshot_done_ >= target; });
}

// ---------------------------------------------------------------------------------------------
// reads

ShardState* Journal::Impl::find(ShardId shard) const {
  auto it = shard_by_id_.find(shard.value);
  return it == shard_by_id_.end() ? nullptr : it->second;
}

Result<ShardState*> Journal::Impl::shard_or_error(ShardId shard) const {
  ShardState* state = find(shard);
  if (state == nullptr) {
    return Status(StatusCode::kInvalidArgument, "unknown shard " + std::to_string(shard.value) + " in data dir " + dir_);
  }
  return state;
}

// Call with `durable` read before the ReadView was taken, and after taking it, so the view
// holds every revision up to `durable` and compaction had not removed `revision` yet.
Status Journal::Impl::check_revision(const ShardState& shard, Revision revision, Revision durable) const {
  if (revision > durable) {
    return Status(StatusCode::kFutureRevision, shard.name + ": revision " + std::to_string(revision) +
                                                   " is above the current revision " + std::to_string(durable));
  }
  const Revision compacted = shard.compacted_revision.load();
  if (revision < compacted) {
    return Status(StatusCode::kCompacted, shard.name + ": revision " + std::to_string(revision) +
                                              " is below the compacted revision " + std::to_string(compacted));
  }
  return Status::ok();
}

Result<EntityHistory> Journal::Impl::read_entity(const ShardState& shard, std::string_view entity, Revision revision,
                                                 const ReadView& view) const {
  EntityHistory history;
  // The bound stops SeekForPrev at the entity's own snapshots: without it, an entity with
  // none walks RocksDB's iterator back over unrelated keys.
  const std::string snapshot_prefix = enc::entity_prefix(enc::kSnapshotTag, entity);
  rocksdb::Slice lower_bound(snapshot_prefix);
  rocksdb::ReadOptions snapshot_options = view.options;
  snapshot_options.iterate_lower_bound = &lower_bound;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snapshot_options, shard.cf));
  it->SeekForPrev(enc::entity_key(enc::kSnapshotTag, entity, revision));
  if (it->Valid() && starts_with(it->key(), snapshot_prefix)) {
    auto parts = enc::parse_entity_key(view_key(it->key()));
    if (!parts) return Status(StatusCode::kCorruption, shard.name + ": malformed snapshot key of '" + std::string(entity) + "'");
    history.exists = true;
    history.snapshot = std::string(view_key(it->value()));
    history.snapshot_revision = parts->revision;
    history.mod_revision = parts->revision;
  }
  if (!it->status().ok()) return from_rocks(it->status(), shard.name + ": reading the snapshot of '" + std::string(entity) + "'");

  std::vector<Revision> revisions;
  const std::string version_prefix = enc::entity_prefix(enc::kVersionTag, entity);
  const std::string version_end = enc::entity_key(enc::kVersionTag, entity, revision + 1);
  rocksdb::Slice upper_bound(version_end);
  rocksdb::ReadOptions version_options = view.options;
  version_options.iterate_upper_bound = &upper_bound;
  it.reset(db_->NewIterator(version_options, shard.cf));
  for (it->Seek(enc::entity_key(enc::kVersionTag, entity, history.snapshot_revision + 1));
       it->Valid() && starts_with(it->key(), version_prefix); it->Next()) {
    auto parts = enc::parse_entity_key(view_key(it->key()));
    if (!parts) return Status(StatusCode::kCorruption, shard.name + ": malformed version key of '" + std::string(entity) + "'");
    if (parts->revision > revision) break;
    revisions.push_back(parts->revision);
  }
  if (!it->status().ok()) return from_rocks(it->status(), shard.name + ": reading versions of '" + std::string(entity) + "'");

  auto take = [&](Revision at, const rocksdb::Status& got, std::string_view value) -> Status {
    if (got.IsNotFound()) {
      return Status(StatusCode::kCorruption, shard.name + ": the version index names revision " + std::to_string(at) +
                                                 " of '" + std::string(entity) + "' but the log has no such record");
    }
    if (!got.ok()) return from_rocks(got, shard.name + ": reading log record " + std::to_string(at));
    auto record = enc::decode_log_record(value);
    if (!record || record->revision != at) {
      return Status(StatusCode::kCorruption, shard.name + ": log record " + std::to_string(at) + " is malformed");
    }
    bool found = false;
    for (auto& event : record->events) {
      if (event.entity_key == entity) {
        history.events.emplace_back(at, std::move(event.payload));
        found = true;
      }
    }
    if (!found) {
      return Status(StatusCode::kCorruption, shard.name + ": log record " + std::to_string(at) + " has no event of '" +
                                                 std::string(entity) + "' though the version index says so");
    }
    history.exists = true;
    history.mod_revision = at;
    return Status::ok();
  };
  if (revisions.empty()) return history;
  // A dense history (at least a quarter of the log records in its span are this entity's: a
  // hot entity's) is read by one forward scan of the log, a Next() per record, where a point
  // lookup per record searches the memtable's skiplist from its top each time (the snapshot
  // thread spent most of its time so on a flash sale's hot SKU). A sparse one takes one
  // MultiGet (RocksDB batches the lookups per file).
  const Revision first = revisions.front();
  const Revision last = revisions.back();
  if (revisions.size() >= kDenseReadMin && (last - first + 1) / revisions.size() < kDenseReadSpanPerRecord) {
    const std::string scan_end = enc::log_key(last + 1);
    rocksdb::Slice scan_bound(scan_end);
    rocksdb::ReadOptions scan_options = view.options;
    scan_options.iterate_upper_bound = &scan_bound;
    it.reset(db_->NewIterator(scan_options, shard.cf));
    it->Seek(enc::log_key(first));
    for (Revision at : revisions) {
      const std::string want = enc::log_key(at);
      while (it->Valid() && view_key(it->key()) < want) it->Next();
      if (!it->status().ok()) return from_rocks(it->status(), shard.name + ": reading log record " + std::to_string(at));
      const bool here = it->Valid() && view_key(it->key()) == want;
      if (Status status = take(at, here ? rocksdb::Status::OK() : rocksdb::Status::NotFound(),
                               here ? view_key(it->value()) : std::string_view());
          !status) {
        return status;
      }
    }
    return history;
  }
  std::vector<std::string> keys;
  keys.reserve(revisions.size());
  for (Revision at : revisions) keys.push_back(enc::log_key(at));
  std::vector<rocksdb::Slice> key_slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->MultiGet(view.options, shard.cf, keys.size(), key_slices.data(), values.data(), statuses.data());
  for (std::size_t i = 0; i < revisions.size(); ++i) {
    if (Status status = take(revisions[i], statuses[i], std::string_view(values[i].data(), values[i].size())); !status) {
      return status;
    }
  }
  return history;
}

std::string Journal::Impl::fold(std::string_view entity, const EntityHistory& history) const {
  FFE_ASSERT(options_.folder != nullptr, "fold() without a StateFolder");
  std::vector<std::string_view> events;
  events.reserve(history.events.size());
  for (const auto& [revision, payload] : history.events) events.emplace_back(payload);
  std::optional<std::string_view> snapshot;
  if (history.snapshot) snapshot = *history.snapshot;
  return options_.folder->fold(entity, snapshot, events);
}

Status Journal::Impl::for_each_entity(const ShardState& shard, const ReadView& view, std::string_view prefix,
                                      std::string_view start_after,
                                      const std::function<Status(const std::string&, bool&)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> versions(db_->NewIterator(view.options, shard.cf));
  std::unique_ptr<rocksdb::Iterator> snapshots(db_->NewIterator(view.options, shard.cf));
  auto seek_past = [](rocksdb::Iterator* it, char tag, std::string_view entity) {
    std::string target(1, tag);
    target += entity;
    target.push_back('\x01');  // after every "tag entity \0 rev" of this entity
    it->Seek(target);
  };
  auto seek_first = [&](rocksdb::Iterator* it, char tag) {
    if (!start_after.empty() && start_after >= prefix) {
      seek_past(it, tag, start_after);
    } else {
      it->Seek(std::string(1, tag) + std::string(prefix));
    }
  };
  auto current = [&](rocksdb::Iterator* it, char tag) -> std::optional<std::string> {
    if (!it->Valid()) return std::nullopt;
    std::string_view key = view_key(it->key());
    if (key.empty() || key[0] != tag || key.substr(1, prefix.size()) != prefix) return std::nullopt;
    auto parts = enc::parse_entity_key(key);
    if (!parts || parts->entity.size() < prefix.size()) return std::nullopt;
    return std::string(parts->entity);
  };
  seek_first(versions.get(), enc::kVersionTag);
  seek_first(snapshots.get(), enc::kSnapshotTag);
  while (true) {
    auto version_entity = current(versions.get(), enc::kVersionTag);
    auto snapshot_entity = current(snapshots.get(), enc::kSnapshotTag);
    if (!version_entity && !snapshot_entity) break;
    std::string entity;
    if (version_entity && snapshot_entity) {
      entity = std::min(*version_entity, *snapshot_entity);
    } else {
      entity = version_entity ? *version_entity : *snapshot_entity;
    }
    bool keep_going = true;
    if (Status status = visit(entity, keep_going); !status) return status;
    if (!keep_going) break;
    if (version_entity && *version_entity == entity) seek_past(versions.get(), enc::kVersionTag, entity);
    if (snapshot_entity && *snapshot_entity == entity) seek_past(snapshots.get(), enc::kSnapshotTag, entity);
  }
  if (!versions->status().ok()) return from_rocks(versions->status(), shard.name + ": scanning entities");
  if (!snapshots->status().ok()) return from_rocks(snapshots->status(), shard.name + ": scanning entities");
  return Status::ok();
}

Result<std::optional<EntityState>> Journal::Impl::get(ShardId shard_id, std::string_view entity,
                                                      Revision revision) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  if (options_.folder == nullptr) return Status(StatusCode::kInvalidArgument, "get() needs JournalOptions::folder");
  if (Status status = validate_key(entity, limits::entity_key_bytes_max, "the entity key"); !status) return status;
  const Revision durable = (*shard)->durable_revision.load();
  ReadView view(db_, view_mu());
  if (Status status = check_revision(**shard, revision, durable); !status) return status;
  auto history = read_entity(**shard, entity, revision, view);
  if (!history) return history.status();
  if (!history->exists) return std::optional<EntityState>();
  std::string state = fold(entity, *history);
  repair(**shard, entity, *history, state);
  return std::optional<EntityState>(EntityState{std::move(state), history->mod_revision});
}

Result<RangePage> Journal::Impl::range(ShardId shard_id, std::string_view prefix, Revision revision,
                                       std::string_view start_after, std::size_t limit) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  if (options_.folder == nullptr) return Status(StatusCode::kInvalidArgument, "range() needs JournalOptions::folder");
  limit = std::clamp<std::size_t>(limit, 1, limits::range_page_entities_max);
  const Revision durable = (*shard)->durable_revision.load();
  ReadView view(db_, view_mu());
  if (Status status = check_revision(**shard, revision, durable); !status) return status;
  RangePage page;
  Status status = for_each_entity(**shard, view, prefix, start_after, [&](const std::string& entity, bool& keep_going) {
    if (page.entries.size() >= limit) {
      page.more = true;
      keep_going = false;
      return Status::ok();
    }
    auto history = read_entity(**shard, entity, revision, view);
    if (!history) return history.status();
    if (history->exists) {
      std::string state = fold(entity, *history);
      repair(**shard, entity, *history, state);
      page.entries.push_back(RangeEntry{entity, EntityState{std::move(state), history->mod_revision}});
    }
    return Status::ok();
  });
  if (!status) return status;
  return page;
}

Result<std::string> Journal::Impl::digest(ShardId shard_id, Revision revision) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  if (options_.folder == nullptr) return Status(StatusCode::kInvalidArgument, "digest() needs JournalOptions::folder");
  const Revision durable = (*shard)->durable_revision.load();
  ReadView view(db_, view_mu());
  if (Status status = check_revision(**shard, revision, durable); !status) return status;
  Sha256 sha;
  Status status = for_each_entity(**shard, view, "", "", [&](const std::string& entity, bool&) {
    auto history = read_entity(**shard, entity, revision, view);
    if (!history) return history.status();
    if (history->exists) {
      std::string state = fold(entity, *history);
      repair(**shard, entity, *history, state);
      sha.update_framed(entity);
      sha.update_framed(state);
    }
    return Status::ok();
  });
  if (!status) return status;
  return sha.hex_digest();
}

Result<std::vector<LogRecord>> Journal::Impl::watch_next(ShardId shard_id, std::string_view prefix, Revision& next,
                                                         std::size_t max_records) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  max_records = std::clamp<std::size_t>(max_records, 1, limits::watch_scan_records_max);
  std::vector<LogRecord> records;
  if (next == 0) next = 1;  // revision 0 is the empty shard: no record
  const Revision durable = (*shard)->durable_revision.load();
  if (next > durable) return records;
  ReadView view(db_, view_mu());
  const Revision compacted = (*shard)->compacted_revision.load();
  if (next < compacted) {
    return Status(StatusCode::kCompacted, (*shard)->name + ": the watch is at revision " + std::to_string(next) +
                                              ", below the compacted revision " + std::to_string(compacted));
  }
  const Revision last = std::min<Revision>(durable, next + limits::watch_scan_records_max - 1);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options, (*shard)->cf));
  Revision expected = next;
  for (it->Seek(enc::log_key(next)); it->Valid() && expected <= last && records.size() < max_records; it->Next()) {
    auto revision = enc::parse_log_key(view_key(it->key()));
    if (!revision || *revision != expected) {
      return Status(StatusCode::kCorruption, (*shard)->name + ": the log has no revision " + std::to_string(expected) +
                                                 " though the shard is at " + std::to_string(durable) + " (a gap)");
    }
    auto record = enc::decode_log_record(view_key(it->value()));
    if (!record || record->revision != expected) {
      return Status(StatusCode::kCorruption, (*shard)->name + ": log record " + std::to_string(expected) + " is malformed");
    }
    ++expected;
    if (!prefix.empty()) {
      std::erase_if(record->events, [&](const Event& event) { return !event.entity_key.starts_with(prefix); });
      if (record->events.empty()) continue;
    }
    records.push_back(std::move(*record));
  }
  if (!it->status().ok()) return from_rocks(it->status(), (*shard)->name + ": reading the log");
  if (expected <= last && records.size() < max_records) {
    return Status(StatusCode::kCorruption, (*shard)->name + ": the log ends before revision " + std::to_string(expected) +
                                               " though the shard is at " + std::to_string(durable));
  }
  next = expected;
  return records;
}

bool Journal::Impl::wait_for_revision(ShardId shard_id, Revision revision, std::chrono::milliseconds timeout) const {
  ShardState* shard = find(shard_id);
  if (shard == nullptr) return false;
  std::unique_lock lock(progress_mu_);
  return shard->progress_cv.wait_for(lock, timeout, [&] {
    return shard->durable_revision.load() >= revision || closing_ || failed_.load();
  }) && shard->durable_revision.load() >= revision;
}

bool Journal::Impl::wait_for_outbox(ShardId shard_id, OutboxPosition from, std::chrono::milliseconds timeout) const {
  ShardState* shard = find(shard_id);
  if (shard == nullptr) return false;
  std::unique_lock lock(progress_mu_);
  return shard->progress_cv.wait_for(lock, timeout, [&] { return shard->outbox_end > from || closing_ || failed_.load(); }) &&
         shard->outbox_end > from;
}

// ---------------------------------------------------------------------------------------------
// compaction

Status Journal::Impl::compact(ShardId shard_id, Revision revision) {
  auto found = shard_or_error(shard_id);
  if (!found) return found.status();
  ShardState& shard = **found;
  if (options_.read_only) return read_only_refused("compaction");
  std::lock_guard compact_lock(compact_mu_);
  if (failed_.load()) return stopped_status();
  const Revision durable = shard.durable_revision.load();
  const Revision compacted = shard.compacted_revision.load();
  if (revision > durable) {
    return Status(StatusCode::kFutureRevision, shard.name + ": cannot compact to revision " + std::to_string(revision) +
                                                   ", above the current revision " + std::to_string(durable));
  }
  if (revision < compacted) {
    return Status(StatusCode::kCompacted, shard.name + ": revision " + std::to_string(revision) +
                                              " is below the compacted revision " + std::to_string(compacted));
  }
  if (revision == compacted) return Status::ok();
  if (options_.folder == nullptr) return Status(StatusCode::kInvalidArgument, "compact() needs JournalOptions::folder");
  const std::string what = shard.name + ": compacting to revision " + std::to_string(revision);
  constexpr std::size_t kChunkBytes = 4 * 1024 * 1024;

  // 0. Which entities to visit. The last compaction (to `compacted`) left every entity that
  //    had not changed since with a snapshot at its last change and nothing older, so only
  //    the entities changed in [compacted, revision) have work to do: read from the log,
  //    whose records there still exist. That keeps a compaction's cost proportional to what
  //    changed since the last one, not to everything ever stored (retention runs every 10 s).
  //    Every entity is visited on a shard's first compaction, when the last one stopped
  //    halfway (kMetaCompactPending: it left garbage only the full pass finds), and for a
  //    range too long to hold its keys in memory.
  constexpr Revision kIncrementalRevisionsMax = Revision{1} << 20;
  std::optional<std::set<std::string>> changed;
  if (compacted > 0 && revision - compacted <= kIncrementalRevisionsMax) {
    ReadView view(db_, view_mu());
    std::string pending;
    const rocksdb::Status marker = db_->Get(view.options, shard.cf, enc::kMetaCompactPending, &pending);
    if (!marker.ok() && !marker.IsNotFound()) return from_rocks(marker, what);
    if (marker.IsNotFound()) {
      changed.emplace();
      // The log as a watch reads it (gaps and malformed records refused there).
      for (Revision next = compacted; next < revision;) {
        auto records = watch_next(shard_id, "", next, static_cast<std::size_t>(revision - next));
        if (!records) return records.status();
        if (records->empty()) {
          return Status(StatusCode::kCorruption, what + ": the log ends before revision " + std::to_string(next));
        }
        for (const LogRecord& record : *records) {
          for (const Event& event : record.events) changed->insert(event.entity_key);
        }
      }
    }
  }
  stat_compactions_.fetch_add(1, std::memory_order_relaxed);
  if (!changed) stat_compactions_full_.fetch_add(1, std::memory_order_relaxed);
  auto each_entity = [&](const ReadView& view, const std::function<Status(const std::string&, bool&)>& visit) -> Status {
    if (!changed) return for_each_entity(shard, view, "", "", visit);
    bool keep_going = true;
    for (const std::string& entity : *changed) {
      if (Status status = visit(entity, keep_going); !status) return status;
      if (!keep_going) break;
    }
    return Status::ok();
  };

  // 1. Every entity with history below `revision` gets a snapshot at its last change below
  //    it, so nothing older is needed to read at `revision` or later.
  {
    ReadView view(db_, view_mu());
    rocksdb::WriteBatch batch;
    Status status = each_entity(view, [&](const std::string& entity, bool&) {
      stat_compaction_entities_.fetch_add(1, std::memory_order_relaxed);
      auto history = read_entity(shard, entity, revision - 1, view);
      if (!history) return history.status();
      if (!history->exists || history->events.empty()) return Status::ok();  // born later, or snapshot at its last change
      batch.Put(shard.cf, enc::entity_key(enc::kSnapshotTag, entity, history->mod_revision), fold(entity, *history));
      if (batch.GetDataSize() > kChunkBytes) {
        Status written = write_side(batch, /*sync=*/false, what);
        batch.Clear();
        return written;
      }
      return Status::ok();
    });
    if (!status) return status;
    if (batch.Count() > 0) {
      if (Status written = write_side(batch, /*sync=*/false, what); !written) return written;
    }
  }

  // 2. The point of no return: reads below `revision` fail from now on (set before the
  //    deletion is visible, see check_revision), then the revision and the log deletion
  //    are written together, synced.
  OutboxPosition cursor;
  {
    std::lock_guard lock(progress_mu_);
    cursor = shard.outbox_cursor;
  }
  shard.compacted_revision.store(revision);
  {
    rocksdb::WriteBatch batch;
    batch.Put(shard.cf, enc::kMetaCompacted, enc::encode_revision(revision));
    batch.Put(shard.cf, enc::kMetaCompactPending, "");
    batch.DeleteRange(shard.cf, enc::log_key(0), enc::log_key(revision));
    OutboxPosition outbox_limit = std::min(OutboxPosition{revision, 0}, cursor);  // only sent entries go
    batch.DeleteRange(shard.cf, enc::outbox_key(0, 0), enc::outbox_key(outbox_limit.revision, outbox_limit.seq));
    // The cursor that decided it, stored with it (mark_sent leaves storing to the writer).
    batch.Put(shard.cf, enc::kMetaOutboxCursor, enc::encode_outbox_position(cursor));
    if (Status written = write_side(batch, /*sync=*/true, what); !written) return written;
  }

  // 3. Garbage below the compacted revision: version entries, older snapshots, expired
  //    dedupe keys. Unreadable already; a crash here leaves garbage the next compaction
  //    removes.
  {
    ReadView view(db_, view_mu());
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options, shard.cf));
    auto flush = [&]() -> Status {
      if (batch.GetDataSize() <= kChunkBytes) return Status::ok();
      Status written = write_side(batch, /*sync=*/false, what);
      batch.Clear();
      return written;
    };
    Status status = each_entity(view, [&](const std::string& entity, bool&) {
      const std::string version_prefix = enc::entity_prefix(enc::kVersionTag, entity);
      for (it->Seek(version_prefix); it->Valid() && starts_with(it->key(), version_prefix); it->Next()) {
        auto parts = enc::parse_entity_key(view_key(it->key()));
        if (!parts || parts->revision >= revision) break;
        batch.Delete(shard.cf, it->key());
      }
      const std::string snapshot_prefix = enc::entity_prefix(enc::kSnapshotTag, entity);
      std::optional<std::string> previous;  // keep the latest snapshot below `revision`
      for (it->Seek(snapshot_prefix); it->Valid() && starts_with(it->key(), snapshot_prefix); it->Next()) {
        auto parts = enc::parse_entity_key(view_key(it->key()));
        if (!parts || parts->revision >= revision) break;
        if (previous) batch.Delete(shard.cf, *previous);
        previous = it->key().ToString();
      }
      if (!it->status().ok()) return from_rocks(it->status(), what);
      return flush();
    });
    if (!status) return status;
    if (batch.Count() > 0) {
      if (Status written = write_side(batch, /*sync=*/false, what); !written) return written;
      batch.Clear();
    }
  }
  {
    std::lock_guard dedupe_lock(dedupe_mu_);  // the writer may rewrite a key at a newer revision
    ReadView view(db_, view_mu());
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options, shard.cf));
    const std::string end = enc::dedupe_expiry_key(revision, "");
    std::string value;
    for (it->Seek(std::string(1, enc::kDedupeExpiryTag)); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      std::string_view key = view_key(it->key());
      if (key.size() < 9) break;
      const Revision written_at = enc::get_be64(key.substr(1, 8));
      const std::string dedupe = enc::dedupe_key(key.substr(9));
      rocksdb::Status got = db_->Get(view.options, shard.cf, dedupe, &value);
      if (got.ok()) {
        auto stored = enc::decode_revision(value);
        if (stored && *stored == written_at) batch.Delete(shard.cf, dedupe);
      }
    }
    if (!it->status().ok()) return from_rocks(it->status(), what);
    batch.DeleteRange(shard.cf, enc::dedupe_expiry_key(0, ""), end);
    // The clean-up is done (unsynced: if this is lost, the next compaction is a full one).
    batch.Delete(shard.cf, enc::kMetaCompactPending);
    if (Status written = write_side(batch, /*sync=*/false, what); !written) return written;
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// outbox, dedupe, inputs

Result<std::vector<OutboxEntry>> Journal::Impl::outbox_read(ShardId shard_id, OutboxPosition from,
                                                            std::size_t limit) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  limit = std::clamp<std::size_t>(limit, 1, limits::outbox_read_entries_max);
  // Only entries the writer has published: RocksDB shows a batch a moment before the writer
  // records it, and a relay must never get ahead of mark_sent's and wait_for_outbox's view.
  OutboxPosition end;
  {
    std::lock_guard lock(progress_mu_);
    end = (*shard)->outbox_end;
  }
  ReadView view(db_, view_mu());
  std::vector<OutboxEntry> entries;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options, (*shard)->cf));
  for (it->Seek(enc::outbox_key(from.revision, from.seq)); it->Valid() && entries.size() < limit; it->Next()) {
    auto position = enc::parse_outbox_key(view_key(it->key()));
    if (!position || !(*position < end)) break;  // past the outbox keys, or not yet published
    auto message = enc::decode_outbox_message(view_key(it->value()));
    if (!message) {
      return Status(StatusCode::kCorruption, (*shard)->name + ": outbox entry at revision " +
                                                 std::to_string(position->revision) + " is malformed");
    }
    entries.push_back(OutboxEntry{*position, std::move(*message)});
  }
  if (!it->status().ok()) return from_rocks(it->status(), (*shard)->name + ": reading the outbox");
  return entries;
}

Result<OutboxPosition> Journal::Impl::outbox_cursor(ShardId shard_id) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  std::lock_guard lock(progress_mu_);
  return (*shard)->outbox_cursor;
}

Status Journal::Impl::mark_sent(ShardId shard_id, OutboxPosition up_to) {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  if (options_.read_only) return read_only_refused("mark_sent");
  std::lock_guard outbox_lock(outbox_mu_);
  OutboxPosition end, cursor;
  {
    std::lock_guard lock(progress_mu_);
    end = (*shard)->outbox_end;
    cursor = (*shard)->outbox_cursor;
  }
  if (!(up_to < end)) {
    return Status(StatusCode::kInvalidArgument, (*shard)->name + ": mark_sent(" + std::to_string(up_to.revision) + "/" +
                                                    std::to_string(up_to.seq) + ") is past the last durable outbox entry");
  }
  const OutboxPosition next = up_to.next();
  if (next <= cursor) return Status::ok();
  // Stored by the writer's next batch (or the close), not by a write of its own: a write
  // here joined RocksDB's write queue behind the writer's synced write, so the relay waited
  // out an fsync for every hand-off. A crash loses at most the marks since the last batch,
  // and those messages are sent again (at-least-once).
  std::lock_guard lock(progress_mu_);
  (*shard)->outbox_cursor = next;
  if (!(*shard)->outbox_cursor_dirty) {
    (*shard)->outbox_cursor_dirty = true;
    dirty_outbox_cursors_.push_back(*shard);
  }
  return Status::ok();
}

Result<std::optional<Revision>> Journal::Impl::dedupe_revision(ShardId shard_id, std::string_view key) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  std::string value;
  rocksdb::ReadOptions read_options;
  rocksdb::Status got = db_->Get(read_options, (*shard)->cf, enc::dedupe_key(key), &value);
  if (got.IsNotFound()) return std::optional<Revision>();
  if (!got.ok()) return from_rocks(got, (*shard)->name + ": reading a dedupe key");
  auto revision = enc::decode_revision(value);
  if (!revision) return Status(StatusCode::kCorruption, (*shard)->name + ": malformed dedupe entry");
  return std::optional<Revision>(*revision);
}

Result<std::vector<IndexEntry>> Journal::Impl::index_scan(ShardId shard_id, std::string_view prefix,
                                                          std::string_view start_after, std::size_t limit) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  limit = std::clamp<std::size_t>(limit, 1, limits::index_scan_entries_max);
  // The latest state, as RocksDB shows it: it applies a synced batch to the memtable only
  // after the batch's WAL sync returned OK (a failed sync applies nothing), so no index
  // write is visible before it is durable. No revision check: the index has no history.
  ReadView view(db_, view_mu());
  // Bounded above by the prefix's end, so a scan never walks on over the deletion
  // tombstones of later keys (an index churns: orders open and close) or other tags.
  const std::string end = enc::index_prefix_end(prefix);
  rocksdb::Slice upper_bound(end);
  rocksdb::ReadOptions options = view.options;
  options.iterate_upper_bound = &upper_bound;
  std::string from = enc::index_key(prefix);
  if (!start_after.empty() && start_after >= prefix) {
    from = enc::index_key(start_after);
    from.push_back('\0');  // the first key after start_after
  }
  const std::string key_prefix = enc::index_key(prefix);
  std::vector<IndexEntry> entries;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, (*shard)->cf));
  for (it->Seek(from); it->Valid() && entries.size() < limit; it->Next()) {
    if (!starts_with(it->key(), key_prefix)) break;
    entries.push_back(IndexEntry{std::string(view_key(it->key()).substr(1)), std::string(view_key(it->value()))});
  }
  if (!it->status().ok()) return from_rocks(it->status(), (*shard)->name + ": scanning the index");
  return entries;
}

Result<std::optional<std::int64_t>> Journal::Impl::input_offset(ShardId shard_id, std::string_view source) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  std::string value;
  rocksdb::ReadOptions read_options;
  rocksdb::Status got = db_->Get(read_options, (*shard)->cf, enc::input_key(source), &value);
  if (got.IsNotFound()) return std::optional<std::int64_t>();
  if (!got.ok()) return from_rocks(got, (*shard)->name + ": reading an input position");
  auto input = enc::decode_input_value(value);
  if (!input) return Status(StatusCode::kCorruption, (*shard)->name + ": malformed input position");
  return std::optional<std::int64_t>(input->offset);
}

Result<std::vector<InputPosition>> Journal::Impl::input_positions(ShardId shard_id) const {
  auto shard = shard_or_error(shard_id);
  if (!shard) return shard.status();
  ReadView view(db_, view_mu());
  std::vector<InputPosition> positions;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options, (*shard)->cf));
  for (it->Seek(std::string(1, enc::kInputTag)); it->Valid() && starts_with(it->key(), "i"); it->Next()) {
    auto input = enc::decode_input_value(view_key(it->value()));
    if (!input) return Status(StatusCode::kCorruption, (*shard)->name + ": malformed input position");
    positions.push_back(InputPosition{std::string(view_key(it->key()).substr(1)), input->offset});
  }
  if (!it->status().ok()) return from_rocks(it->status(), (*shard)->name + ": reading input positions");
  return positions;
}

// ---------------------------------------------------------------------------------------------
// Journal (the public face)

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::~Journal() = default;

bool Journal::holds_data(const std::string& data_dir) {
  return ::access((data_dir + "/" + kRocksDbDir + "/CURRENT").c_str(), F_OK) == 0;
}

Status Journal::finish_restore(const std::string& data_dir) { return storage::finish_restore(data_dir); }

bool Journal::restore_unfinished(const std::string& data_dir) { return !unfinished_restore(data_dir).is_ok(); }

Result<std::unique_ptr<Journal>> Journal::open(const std::string& data_dir, JournalOptions options) {
  auto impl = std::make_unique<Impl>(data_dir, std::move(options));
  if (Status status = impl->open(); !status) return status;
  if (!impl->read_only()) impl->start_threads();  // a read-only journal writes nothing: no threads
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

Status Journal::submit(CommitRequest request, CommitCallback done, Admission admission) {
  return impl_->submit(std::move(request), std::move(done), admission);
}

std::future<CommitResult> Journal::commit(CommitRequest request) {
  auto promise = std::make_shared<std::promise<CommitResult>>();
  auto future = promise->get_future();
  Status status = impl_->submit(
      std::move(request), [promise](const CommitResult& result) { promise->set_value(result); }, Admission::kWait);
  if (!status) {
    CommitResult result;
    result.status = status;
    promise->set_value(result);
  }
  return future;
}

Status Journal::status() const { return impl_->status(); }
JournalStats Journal::stats() const { return impl_->stats(); }
std::vector<ShardId> Journal::shards() const { return impl_->shard_ids(); }

Result<Revision> Journal::revision(ShardId shard) const {
  auto state = impl_->shard_or_error(shard);
  if (!state) return state.status();
  return (*state)->durable_revision.load();
}

Result<Revision> Journal::compacted_revision(ShardId shard) const {
  auto state = impl_->shard_or_error(shard);
  if (!state) return state.status();
  return (*state)->compacted_revision.load();
}

bool Journal::wait_for_revision(ShardId shard, Revision revision, std::chrono::milliseconds timeout) const {
  return impl_->wait_for_revision(shard, revision, timeout);
}

Result<std::optional<std::int64_t>> Journal::input_offset(ShardId shard, std::string_view source) const {
  return impl_->input_offset(shard, source);
}

Result<std::vector<InputPosition>> Journal::input_positions(ShardId shard) const {
  return impl_->input_positions(shard);
}

Result<std::optional<EntityState>> Journal::get(ShardId shard, std::string_view entity_key, Revision revision) const {
  return impl_->get(shard, entity_key, revision);
}

Result<RangePage> Journal::range(ShardId shard, std::string_view key_prefix, Revision revision,
                                 std::string_view start_after, std::size_t limit) const {
  return impl_->range(shard, key_prefix, revision, start_after, limit);
}

Result<Watch> Journal::watch(ShardId shard, std::string key_prefix, Revision from_revision) const {
  auto state = impl_->shard_or_error(shard);
  if (!state) return state.status();
  const Revision durable = (*state)->durable_revision.load();
  const Revision compacted = (*state)->compacted_revision.load();
  if (from_revision > durable + 1) {
    return Status(StatusCode::kFutureRevision, (*state)->name + ": cannot watch from revision " +
                                                   std::to_string(from_revision) + ", the current revision is " +
                                                   std::to_string(durable));
  }
  if (std::max<Revision>(from_revision, 1) < compacted) {
    return Status(StatusCode::kCompacted, (*state)->name + ": cannot watch from revision " + std::to_string(from_revision) +
                                              ", below the compacted revision " + std::to_string(compacted));
  }
  return Watch(impl_.get(), shard, std::move(key_prefix), from_revision);
}

Status Journal::compact(ShardId shard, Revision revision) { return impl_->compact(shard, revision); }

Result<std::string> Journal::digest(ShardId shard, Revision revision) const { return impl_->digest(shard, revision); }

Result<std::vector<OutboxEntry>> Journal::outbox_read(ShardId shard, OutboxPosition from, std::size_t limit) const {
  return impl_->outbox_read(shard, from, limit);
}

Result<OutboxPosition> Journal::outbox_cursor(ShardId shard) const { return impl_->outbox_cursor(shard); }

Status Journal::mark_sent(ShardId shard, OutboxPosition up_to) { return impl_->mark_sent(shard, up_to); }

bool Journal::wait_for_outbox(ShardId shard, OutboxPosition from, std::chrono::milliseconds timeout) const {
  return impl_->wait_for_outbox(shard, from, timeout);
}

Result<std::optional<Revision>> Journal::dedupe_revision(ShardId shard, std::string_view dedupe_key) const {
  return impl_->dedupe_revision(shard, dedupe_key);
}

Result<std::vector<IndexEntry>> Journal::index_scan(ShardId shard, std::string_view prefix, std::string_view start_after,
                                                    std::size_t limit) const {
  return impl_->index_scan(shard, prefix, start_after, limit);
}

void Journal::wait_for_snapshots() const { impl_->wait_for_snapshots(); }

Status Journal::refresh() { return impl_->refresh(); }

Result<std::vector<LogRecord>> Watch::next(std::size_t max_records) {
  return impl_->watch_next(shard_, prefix_, next_, max_records);
}

bool Watch::wait(std::chrono::milliseconds timeout) const {
  return impl_->wait_for_revision(shard_, std::max<Revision>(next_, 1), timeout);
}

}  // namespace ffe::storage
