#pragma once
// The CDC pipeline: keeps the analytics tables (sink.h) in step with the journal, exactly
// once (docs/cdc.md, "Pipeline").
//
// Per shard: read the sink's checkpoint C; follow the journal from C+1 with
// Journal::watch; take up to batch_revisions_max revisions (C, T]; collect the entities
// they changed; fold each one's new events onto its state as of C (kept from earlier batches;
// read with Journal::get when not cached) to get its state at T; turn the states into rows (rows.h); hand
// the sink Batch{shard, after=C, to=T, rows}. The sink writes the rows and the checkpoint T
// in one transaction, and only if its checkpoint is still C. So a batch is applied once
// whatever crashes around it: a crash before the commit leaves C (the batch is read again),
// after it leaves T (the batch is never read again); a stale pipeline's batch is refused.
//
// The engine never waits for CDC: an unreachable or refusing database (kIoError) keeps the
// batch, backs off (backoff_min doubling to backoff_max) and retries; the lag grows.
//
// The pipeline records its progress in each shard's journal index under "cursor/cdc" (the
// checkpoint, decimal, stored at most every cursor_interval), so the retention compactor
// (actors/runtime/retention.h) never compacts history CDC has not applied. A checkpoint
// below the journal's compacted revision cannot be resumed exactly: that shard stops with an
// error in the log and in stats (errors, compacted_past), the others go on.
//
// After a migration that added columns (Migration::added_columns), every entity of each
// shard is written again as of the shard's checkpoint (Sink::backfill) before new batches.
//
// CdcPipeline — owner: `ffe serve` (adapters/serve), a test or `ffe bench cdc`. Must not
// outlive the Journal. Lifecycle: start() starts one thread that serves every shard in turn
// (enough on two cores: a round is a few reads and one transaction per busy shard); stop()
// (or the destructor) finishes the batch in hand (one more attempt), stores the cursors and
// joins. Thread safety: start/stop from one thread; stats() and wait_caught_up() from any.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "adapters/cdc/envelope.h"
#include "adapters/cdc/sink.h"
#include "adapters/metrics/metrics.h"  // standard library only
#include "actors/runtime/folder.h"
#include "storage/journal.h"

namespace ffe::cdc {

// The journal index key holding a shard's applied CDC checkpoint (retention.h's prefix).
inline constexpr std::string_view kCdcCursorKey = "cursor/cdc";
// The journal index key marking a shard whose backfill after a migration is not finished
// (written before the backfill starts, deleted when it ends), so a crash in the middle
// resumes it at the next start.
inline constexpr std::string_view kCdcBackfillKey = "cdc/backfill";

// The analytics URL `ffe serve` and `ffe drift` use without --analytics: the embedded SQLite
// database beside the journal, "sqlite:<data_dir>/analytics.db".
std::string default_analytics_url(const std::string& data_dir);

struct PipelineOptions {
  // Revisions per transaction at most (a bounded batch: bounded memory and transaction size).
  std::size_t batch_revisions_max = 1024;
  // How long the thread sleeps when every shard is caught up (waiting on the journal).
  std::chrono::milliseconds idle_wait{5};
  // A database call that has not returned for this long shows every shard stalled (a server
  // stopped or wedged, which PostgreSQL's statement_timeout does not catch).
  std::chrono::milliseconds call_stalled_after{30'000};
  // After a batch that was not full, a shard's next batch waits this long, so a trickle of
  // revisions makes a few larger transactions (each one a synced commit in the sink) instead
  // of one per revision. A full batch (CDC behind) is followed at once. It adds at most this
  // much to the lag. 0: no wait.
  std::chrono::milliseconds batch_linger{20};
  // Retry of a failed apply: backoff_min, doubling, at most backoff_max.
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5'000};
  // How often a moving checkpoint is stored as the journal cursor (and always at stop()).
  std::chrono::milliseconds cursor_interval{200};
  // The CDC thread's nice value (Linux: per thread). CDC is off the saga's path (the
  // analytics tables may lag, orders may not), so by default it yields the cores to the
  // engine when they are short; 0 keeps the process's priority.
  int nice = 10;
  // Entities per backfill call (one transaction each).
  std::size_t backfill_page_entities = 512;
  // Wall clock in ms since the epoch, for lag_seconds (tests may substitute their own).
  std::function<std::int64_t()> clock;
  // Called on the pipeline's thread after each applied batch with the commit times of its
  // revisions and the wall time the apply returned (`ffe bench cdc` measures lag with it).
  std::function<void(std::uint32_t shard, const std::vector<std::int64_t>& committed_at_ms,
                     std::int64_t applied_at_ms)>
      on_applied;
  // Optional: Debezium-style envelopes (envelope.h) of a batch's rows (op c/u) and of a
  // backfill's (op r), handed over on the pipeline's thread BEFORE the batch is applied. Not
  // OK: the batch waits and is offered again after the back-off, like a failed apply. So the
  // envelopes are at-least-once (a crash between this and the apply hands them over again at
  // the next start; consumers dedupe by source shard + revision + key), the tables exactly once.
  std::function<storage::Status(std::uint32_t shard, std::vector<ChangeEnvelope> envelopes)> publish;
  // Tests only: called on the pipeline's thread after a batch was applied and before the
  // pipeline records it (a crash injected there is a crash between the sink's commit and
  // everything the pipeline does after it).
  std::function<void(const Batch&)> after_apply;
};

struct ShardStats {
  std::uint32_t shard = 0;
  storage::Revision checkpoint = 0;        // the sink's, as last known
  storage::Revision journal_revision = 0;  // the shard's revision when last looked
  std::uint64_t lag_revisions = 0;
  double lag_seconds = 0;                  // now - commit time of the oldest unapplied revision
  std::uint64_t batches = 0;
  std::uint64_t orders_applied = 0;
  std::uint64_t skus_applied = 0;
  std::uint64_t errors = 0;
  bool stalled = false;         // the last apply failed; retrying
  bool compacted_past = false;  // the checkpoint fell below the compacted revision: stopped
};

struct PipelineStats {
  std::vector<ShardStats> shards;
  std::uint64_t orders_applied = 0;
  std::uint64_t skus_applied = 0;
  std::uint64_t backfilled_rows = 0;
  std::uint64_t errors = 0;        // failed applies, reads and refusals, all shards
  std::uint64_t guard_refusals = 0;  // batches the sink refused because its checkpoint moved
  bool sink_open = false;
  bool failed = false;  // the sink could not be opened for good (bad URL, refused schema)
  std::string last_error;
};

// An entity's state as the pipeline keeps it between batches: decoded (runtime::fold_events
// moves it on), with the revision of its latest change.
struct CachedEntity {
  std::variant<order::State, sku::State> state;
  storage::Revision mod_revision = 0;
};

class CdcPipeline {
 public:
  // `migration` is what open_sink() reported (its added columns trigger the backfill).
  CdcPipeline(storage::Journal& journal, std::unique_ptr<Sink> sink, Migration migration,
              PipelineOptions options = {});
  // Opens the sink itself, on its thread, retrying while the database is unreachable
  // (kIoError from open_sink): for a database that is down when ffe starts. Any other open
  // error (a bad URL, a refused schema) stops CDC with the error in the log and in stats.
  CdcPipeline(storage::Journal& journal, std::string analytics_url, PipelineOptions options = {});
  ~CdcPipeline();
  CdcPipeline(const CdcPipeline&) = delete;
  CdcPipeline& operator=(const CdcPipeline&) = delete;

  // Starts the thread. Never fails on a database that is down (the thread retries).
  storage::Status start();
  void stop();

  PipelineStats stats() const;
  // Waits until every shard's checkpoint, as the sink confirmed it (and after any backfill),
  // reached the journal's revision as of this call; false on timeout. A shard whose CDC
  // stopped (compacted_past) never catches up.
  bool wait_caught_up(std::chrono::milliseconds timeout) const;
  const std::string& sink_description() const { return sink_description_; }

  // Reads a shard's stored cursor/cdc (nullopt: never stored).
  static storage::Result<std::optional<storage::Revision>> stored_cursor(const storage::Journal& journal,
                                                                          storage::ShardId shard);

  struct ShardState;

 private:
  void run();
  bool ensure_sink();
  bool begin_backfill();
  bool ensure_checkpoints();
  bool backfill_shard(ShardState& state);
  // One round for the shards: read_batch() makes a shard's next batch (if it has none) and
  // says whether one is ready to apply; apply_ready() applies the ready ones, together when
  // it can; apply_pending() applies one shard's alone and handles its failure; applied()
  // moves the shard's checkpoint on; apply_failed() marks the shard stalled and backs it off.
  // They return true on progress.
  bool read_batch(ShardState& state);
  bool apply_ready(const std::vector<ShardState*>& ready);
  storage::Status publish_pending(ShardState& state);
  bool apply_pending(ShardState& state);
  void applied(ShardState& state);
  void apply_failed(ShardState& state, const storage::Status& status);
  // The entity-state cache of a shard (ShardState::cache): find a state (moved to the young
  // generation; nullptr: not cached), put one in. The reference lives until the next put.
  static constexpr std::size_t kCachedEntities = 4'096;
  // How long stop() lets a round in progress finish before it interrupts the sink.
  static constexpr std::chrono::milliseconds kStopPatience{2000};
  CachedEntity* cache_find(ShardState& state, const std::string& key);
  CachedEntity& cache_put(ShardState& state, const std::string& key, CachedEntity entity);
  void store_cursors(bool wait);
  void record_error(ShardState* state, const std::string& message);
  std::int64_t now_ms() const;

  storage::Journal& journal_;
  std::unique_ptr<Sink> sink_;  // null until a lazy open succeeded; set under sink_mutex_
  std::mutex sink_mutex_;       // sink_'s assignment (the thread) against stop()'s interrupt
  std::atomic<bool> finished_{false};  // run() returned
  // When the database call in progress began (now_ms), 0 when none is: a call that has not
  // returned for options_.call_stalled_after shows every shard stalled (stats()).
  std::atomic<std::int64_t> sink_call_since_ms_{0};
  mutable std::atomic<bool> sink_call_reported_{false};
  // Marks a database call in progress for its lifetime (the CDC thread's calls only).
  struct SinkCall {
    explicit SinkCall(CdcPipeline& pipeline) : pipeline_(pipeline) {
      pipeline_.sink_call_since_ms_.store(std::max<std::int64_t>(1, pipeline_.now_ms()));
    }
    ~SinkCall() {
      pipeline_.sink_call_since_ms_.store(0);
      pipeline_.sink_call_reported_.store(false);
    }
    SinkCall(const SinkCall&) = delete;
    SinkCall& operator=(const SinkCall&) = delete;
    CdcPipeline& pipeline_;
  };
  std::string url_;             // for the lazy open
  Migration migration_;
  bool backfill_marked_ = false;  // begin_backfill() done
  PipelineOptions options_;
  std::string sink_description_;

  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mutex_;  // guards shards_'s published fields and the totals below
  mutable std::condition_variable progressed_;
  std::vector<std::unique_ptr<ShardState>> shards_;
  PipelineStats totals_;
};

// Exports the pipeline's stats on /metrics: ffe_cdc_lag_revisions{shard},
// ffe_cdc_lag_seconds{shard}, ffe_cdc_checkpoint_revision{shard},
// ffe_cdc_rows_applied_total{table}, ffe_cdc_errors_total. The pipeline must outlive the
// returned registration.
metrics::Registration register_cdc_metrics(metrics::Registry& registry, const CdcPipeline& pipeline);

}  // namespace ffe::cdc
