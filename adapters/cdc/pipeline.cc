#include "adapters/cdc/pipeline.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_map>

#include "adapters/cdc/rows.h"
#include "adapters/log/redact.h"

namespace ffe::cdc {

using storage::Result;
using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

// One shard's progress. The pipeline thread owns every field; the ones stats() reads
// (checkpoint, oldest_unapplied_ms, counters, flags) are written under the pipeline's mutex.
struct CdcPipeline::ShardState {
  ShardId shard;
  bool known = false;            // checkpoint read from the sink (and the watch opened)
  Revision checkpoint = 0;
  std::optional<Revision> cursor_stored;  // the journal's cursor/cdc as last written or read
  bool backfill_pending = false;
  std::optional<storage::Watch> watch;
  // The batch read and not yet applied (kept across failed attempts) and its commit times.
  std::optional<Batch> pending;
  std::vector<std::int64_t> pending_committed_ms;
  std::vector<ChangeEnvelope> pending_envelopes;  // with PipelineOptions::publish only
  bool envelopes_published = false;
  std::chrono::steady_clock::time_point retry_at{};
  std::chrono::milliseconds backoff{0};
  // When the next batch may be read (PipelineOptions::batch_linger after one not full).
  std::chrono::steady_clock::time_point next_batch_at{};
  // Entity states as of `cache_revision` (the end of the last batch built), kept up to date
  // from the events the watch delivers, so building a batch folds each changed entity's new
  // events onto its cached state instead of reading it back from the journal (a Journal::get
  // reads the entity's latest snapshot and every log record after it). Kept decoded: a
  // SKU's state holds up to thousands of closed reservations, which encoding and decoding
  // again for every batch would cost. Two generations, each at most kCachedEntities: an
  // approximate LRU. Cleared whenever the batch about to be built does not start at
  // cache_revision (a re-read after an error, a new checkpoint).
  Revision cache_revision = 0;
  std::unordered_map<std::string, CachedEntity> cache, cache_old;
  // Published.
  bool confirmed = false;  // checkpoint read from the sink and any backfill done
  std::int64_t oldest_unapplied_ms = 0;  // 0: none known
  ShardStats stats;
};

namespace {

Result<std::optional<Revision>> parse_revision(const std::string& value, ShardId shard) {
  Revision revision = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), revision);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return Status(StatusCode::kCorruption,
                  "shard " + std::to_string(shard.value) + ": the CDC cursor \"" + value + "\" is not a revision");
  }
  return std::optional<Revision>(revision);
}

std::int64_t system_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

CachedEntity* CdcPipeline::cache_find(ShardState& state, const std::string& key) {
  if (auto found = state.cache.find(key); found != state.cache.end()) return &found->second;
  auto old = state.cache_old.find(key);
  if (old == state.cache_old.end()) return nullptr;
  CachedEntity entity = std::move(old->second);
  state.cache_old.erase(old);
  return &cache_put(state, key, std::move(entity));
}

CachedEntity& CdcPipeline::cache_put(ShardState& state, const std::string& key, CachedEntity entity) {
  if (state.cache.size() >= kCachedEntities && !state.cache.contains(key)) {
    state.cache_old = std::move(state.cache);
    state.cache.clear();
  }
  return state.cache.insert_or_assign(key, std::move(entity)).first->second;
}

namespace {

// An entity's state bytes (as Journal::get returns them), decoded.
CachedEntity decode_entity(const std::string& key, const storage::EntityState& entity) {
  CachedEntity decoded;
  if (kind_of(key) == EntityKind::kOrder) {
    decoded.state = runtime::decode_order(key, entity.state);
  } else {
    decoded.state = runtime::decode_sku(key, entity.state);
  }
  decoded.mod_revision = entity.mod_revision;
  return decoded;
}

}  // namespace

std::string default_analytics_url(const std::string& data_dir) {
  std::string dir = data_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return "sqlite:" + dir + "/analytics.db";
}

CdcPipeline::CdcPipeline(storage::Journal& journal, std::unique_ptr<Sink> sink, Migration migration,
                         PipelineOptions options)
    : journal_(journal), sink_(std::move(sink)), migration_(std::move(migration)), options_(std::move(options)) {
  sink_description_ = sink_->describe();
  totals_.sink_open = true;
  for (ShardId shard : journal_.shards()) {
    auto state = std::make_unique<ShardState>();
    state->shard = shard;
    state->stats.shard = shard.value;
    shards_.push_back(std::move(state));
  }
}

CdcPipeline::CdcPipeline(storage::Journal& journal, std::string analytics_url, PipelineOptions options)
    : journal_(journal), url_(std::move(analytics_url)), options_(std::move(options)) {
  sink_description_ = log::redact_url(url_);
  for (ShardId shard : journal_.shards()) {
    auto state = std::make_unique<ShardState>();
    state->shard = shard;
    state->stats.shard = shard.value;
    shards_.push_back(std::move(state));
  }
}

CdcPipeline::~CdcPipeline() { stop(); }

Result<std::optional<Revision>> CdcPipeline::stored_cursor(const storage::Journal& journal, ShardId shard) {
  auto page = journal.index_scan(shard, kCdcCursorKey, {}, 1);
  if (!page) return page.status();
  if (page->empty() || page->front().key != kCdcCursorKey) return std::optional<Revision>();
  return parse_revision(page->front().value, shard);
}

Status CdcPipeline::start() {
  // What the journal remembers (cursor, unfinished backfill) is read here, so a journal that
  // cannot be read fails the start; the database is only touched by the thread.
  for (auto& state : shards_) {
    auto cursor = stored_cursor(journal_, state->shard);
    if (!cursor) return cursor.status();
    state->cursor_stored = *cursor;
    if (!*cursor) {
      // CDC never ran on this journal: hold compaction where it is until the thread knows the
      // sink's checkpoint (the retention compactor may start before it does).
      auto compacted = journal_.compacted_revision(state->shard);
      if (!compacted) return compacted.status();
      storage::CommitRequest request;
      request.shard = state->shard;
      request.index_put.push_back({std::string(kCdcCursorKey), std::to_string(*compacted)});
      storage::CommitResult result = journal_.commit(std::move(request)).get();
      if (!result.status) return result.status;
      state->cursor_stored = *compacted;
    }
    {
      // Until the sink answers, the stored cursor is the best known checkpoint (lag metrics).
      std::lock_guard lock(mutex_);
      state->checkpoint = state->stats.checkpoint = state->cursor_stored.value_or(0);
    }
    auto marker = journal_.index_scan(state->shard, kCdcBackfillKey, {}, 1);
    if (!marker) return marker.status();
    state->backfill_pending = !marker->empty() && marker->front().key == kCdcBackfillKey;
  }
  if (sink_ && !begin_backfill()) return Status(StatusCode::kIoError, "marking the backfill in the journal failed");
  stop_.store(false);
  finished_.store(false);
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

bool CdcPipeline::begin_backfill() {
  if (backfill_marked_) return true;
  if (!migration_.added_columns.empty()) {
    std::string columns;
    for (const std::string& column : migration_.added_columns) columns += (columns.empty() ? "" : ", ") + column;
    spdlog::info("cdc: {} migrated from schema version {} to {} (added {}); backfilling from the journal",
                 sink_description_, migration_.from_version, migration_.to_version, columns);
    for (auto& state : shards_) {
      // Durable before the first row is backfilled: a crash in the backfill resumes it.
      storage::CommitRequest request;
      request.shard = state->shard;
      request.index_put.push_back({std::string(kCdcBackfillKey), std::to_string(migration_.to_version)});
      storage::CommitResult result = journal_.commit(std::move(request)).get();
      if (!result.status) {
        spdlog::error("cdc: shard {}: marking the backfill: {}", state->shard.value, result.status.to_string());
        return false;
      }
      state->backfill_pending = true;
    }
  }
  backfill_marked_ = true;
  {
    std::lock_guard lock(mutex_);
    totals_.sink_open = true;
  }
  return true;
}

bool CdcPipeline::ensure_sink() {
  if (sink_) return begin_backfill();
  Migration migration;
  auto sink = open_sink(url_, &migration);
  if (!sink) {
    const std::string message = "opening " + sink_description_ + ": " + sink.status().to_string();
    record_error(nullptr, message);
    if (sink.status().code() != StatusCode::kIoError) {
      spdlog::error("cdc: {}; CDC stops", message);
      std::lock_guard lock(mutex_);
      totals_.failed = true;
      return false;
    }
    spdlog::warn("cdc: {}; retrying (the engine goes on, the lag grows)", message);
    return false;
  }
  {
    std::lock_guard lock(sink_mutex_);
    sink_ = std::move(*sink);
  }
  sink_description_ = sink_->describe();
  migration_ = std::move(migration);
  spdlog::info("cdc: {} is reachable; CDC starts", sink_description_);
  return begin_backfill();
}

void CdcPipeline::stop() {
  stop_.store(true);
  progressed_.notify_all();
  if (!thread_.joinable()) return;
  // A round in progress finishes (milliseconds). One held by a database that does not answer
  // (a lock wait, a stopped server) is broken off: its transaction is rolled back by the
  // server, its checkpoint not moved, and the next start applies it again.
  const auto patience = std::chrono::steady_clock::now() + kStopPatience;
  while (!finished_.load() && std::chrono::steady_clock::now() < patience) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!finished_.load()) {
    spdlog::warn("cdc: {} has not answered for {} ms; breaking the connection off to stop (the round in progress is "
                 "applied again at the next start)",
                 sink_description_, kStopPatience.count());
    std::lock_guard lock(sink_mutex_);
    if (sink_) sink_->interrupt();
  }
  thread_.join();
}

std::int64_t CdcPipeline::now_ms() const { return options_.clock ? options_.clock() : system_ms(); }

void CdcPipeline::record_error(ShardState* state, const std::string& message) {
  std::lock_guard lock(mutex_);
  ++totals_.errors;
  totals_.last_error = message;
  if (state != nullptr) ++state->stats.errors;
}

void CdcPipeline::run() {
  pthread_setname_np(pthread_self(), "ffe-cdc");  // for top -H and perf
  if (options_.nice != 0) {
    // Lowering a thread's own priority needs no privilege; a failure only costs latency.
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), options_.nice) != 0) {
      spdlog::debug("cdc: cannot set the thread's nice value to {}: {}", options_.nice, std::strerror(errno));
    }
  }
  auto last_cursor_store = std::chrono::steady_clock::now();
  std::chrono::milliseconds backoff{0};
  std::vector<ShardState*> ready;  // shards with a batch to apply this round
  bool checkpoints_known = false;
  while (!stop_.load()) {
    if (!sink_ || !backfill_marked_) {
      if (!ensure_sink()) {
        {
          std::lock_guard lock(mutex_);
          if (totals_.failed) break;
        }
        backoff = std::clamp(backoff * 2, options_.backoff_min, options_.backoff_max);
        std::unique_lock lock(mutex_);
        progressed_.wait_for(lock, backoff, [this] { return stop_.load(); });
        continue;
      }
    }
    if (!checkpoints_known) {
      checkpoints_known = ensure_checkpoints();
      if (!checkpoints_known) {
        backoff = std::clamp(backoff * 2, options_.backoff_min, options_.backoff_max);
        std::unique_lock lock(mutex_);
        progressed_.wait_for(lock, backoff, [this] { return stop_.load(); });
        continue;
      }
      backoff = std::chrono::milliseconds(0);
    }
    bool busy = false;
    bool reread = false;
    const std::uint64_t refusals_before = totals_.guard_refusals;
    for (auto& state : shards_) {
      if (stop_.load()) break;
      if (state->stats.compacted_past) continue;
      if (!state->known) {
        reread = true;
        continue;
      }
      if (state->backfill_pending) {
        if (std::chrono::steady_clock::now() < state->retry_at) continue;
        if (!backfill_shard(*state)) {
          state->backoff = std::clamp(state->backoff * 2, options_.backoff_min, options_.backoff_max);
          state->retry_at = std::chrono::steady_clock::now() + state->backoff;
          continue;
        }
        state->backoff = std::chrono::milliseconds(0);
      }
      if (read_batch(*state)) ready.push_back(state.get());
    }
    busy |= apply_ready(ready);
    ready.clear();
    if (totals_.guard_refusals != refusals_before) reread = true;
    if (reread) checkpoints_known = false;
    if (std::chrono::steady_clock::now() - last_cursor_store >= options_.cursor_interval) {
      store_cursors(false);
      last_cursor_store = std::chrono::steady_clock::now();
    }
    if (!busy && !stop_.load()) {
      // Sleep until something may have changed: a short poll keeps the lag low without a
      // per-shard waiter thread (Watch::wait blocks on one shard only).
      std::unique_lock lock(mutex_);
      progressed_.wait_for(lock, options_.idle_wait, [this] { return stop_.load(); });
    }
  }
  if (sink_) store_cursors(true);
  finished_.store(true);
}

bool CdcPipeline::ensure_checkpoints() {
  auto checkpoints = (SinkCall(*this), sink_->checkpoints());
  if (!checkpoints) {
    record_error(nullptr, "reading the checkpoints of " + sink_description_ + ": " + checkpoints.status().to_string());
    spdlog::warn("cdc: reading the checkpoints of {}: {}; retrying", sink_description_,
                 checkpoints.status().to_string());
    return false;
  }
  for (auto& state : shards_) {
    const auto it = checkpoints->find(state->shard.value);
    Revision checkpoint = it == checkpoints->end() ? 0 : it->second;
    if (it == checkpoints->end()) {
      // Every shard has a checkpoint row from the moment CDC starts (ARCHITECTURE.md):
      // an empty batch 0 -> 0 makes it, through the same guard as every batch.
      Batch empty;
      empty.shard = state->shard.value;
      if (Status status = (SinkCall(*this), sink_->apply(empty)); !status) {
        record_error(state.get(), "creating the checkpoint of shard " + std::to_string(state->shard.value) + ": " +
                                      status.to_string());
        return false;
      }
    }
    auto head = journal_.revision(state->shard);
    auto compacted = journal_.compacted_revision(state->shard);
    if (!head || !compacted) {
      record_error(state.get(), (!head ? head.status() : compacted.status()).to_string());
      return false;
    }
    state->pending.reset();
    state->pending_committed_ms.clear();
    state->watch.reset();
    {
      std::lock_guard lock(mutex_);
      state->confirmed = false;
      state->checkpoint = checkpoint;
      state->stats.checkpoint = checkpoint;
      state->stats.journal_revision = *head;
      state->oldest_unapplied_ms = 0;
    }
    if (checkpoint > *head) {
      const std::string message = "shard " + std::to_string(state->shard.value) + ": " + sink_description_ +
                                  " holds checkpoint " + std::to_string(checkpoint) +
                                  " but the journal ends at revision " + std::to_string(*head) +
                                  ": the tables belong to another data dir; CDC of this shard stops";
      spdlog::error("cdc: {}", message);
      record_error(state.get(), message);
      std::lock_guard lock(mutex_);
      state->stats.compacted_past = true;
      continue;
    }
    if (*compacted > 0 && checkpoint + 1 < *compacted) {
      const std::string message =
          "shard " + std::to_string(state->shard.value) + ": the checkpoint " + std::to_string(checkpoint) + " of " +
          sink_description_ + " is below the journal's compacted revision " + std::to_string(*compacted) +
          ": the changes in between are gone, CDC of this shard cannot resume exactly and stops (docs/cdc.md)";
      spdlog::error("cdc: {}", message);
      record_error(state.get(), message);
      std::lock_guard lock(mutex_);
      state->stats.compacted_past = true;
      continue;
    }
    // Tables of another history whose checkpoint this journal has passed (the check above
    // no longer sees them): their newest order row was written at a revision whose commit
    // time differs from this journal's at the same revision. A restore from ff.events keeps
    // the commit times, so its own tables pass.
    if (checkpoint > 0) {
      auto last = (SinkCall(*this), sink_->last_order_change(state->shard.value));
      if (!last) {
        record_error(state.get(), "reading the newest order row of shard " + std::to_string(state->shard.value) +
                                      ": " + last.status().to_string());
        return false;
      }
      if (*last && (*last)->first <= checkpoint) {
        auto when = commit_time(journal_, state->shard, (*last)->first);
        if (!when) {
          record_error(state.get(), when.status().to_string());
          return false;
        }
        if (*when && **when != (*last)->second) {
          const std::string message =
              "shard " + std::to_string(state->shard.value) + ": " + sink_description_ + " holds an order written at revision " +
              std::to_string((*last)->first) + " committed at " + std::to_string((*last)->second) +
              " ms, but this journal committed revision " + std::to_string((*last)->first) + " at " +
              std::to_string(**when) + " ms: the tables belong to another data dir; CDC of this shard stops";
          spdlog::error("cdc: {}", message);
          record_error(state.get(), message);
          std::lock_guard lock(mutex_);
          state->stats.compacted_past = true;
          continue;
        }
      }
    }
    auto watch = journal_.watch(state->shard, "", checkpoint + 1);
    if (!watch) {
      record_error(state.get(), watch.status().to_string());
      return false;
    }
    state->watch.emplace(std::move(*watch));
    state->known = true;
    {
      std::lock_guard lock(mutex_);
      state->confirmed = !state->backfill_pending;
    }
    if (state->cursor_stored != checkpoint) {
      // Store it at once: from now on the retention compactor must not pass it.
      storage::CommitRequest request;
      request.shard = state->shard;
      request.index_put.push_back({std::string(kCdcCursorKey), std::to_string(checkpoint)});
      storage::CommitResult result = journal_.commit(std::move(request)).get();
      if (result.status) state->cursor_stored = checkpoint;
    }
  }
  progressed_.notify_all();
  return true;
}

bool CdcPipeline::backfill_shard(ShardState& state) {
  if (!state.known) return false;
  const std::uint32_t shard = state.shard.value;
  const Revision at = state.checkpoint;
  auto fail = [&](const std::string& what) {
    const std::string message = "shard " + std::to_string(shard) + ": backfill: " + what;
    spdlog::warn("cdc: {}; retrying", message);
    record_error(&state, message);
    return false;
  };
  if (at > 0) {
    // The rows' updated_at_ms are kept as the pipeline wrote them: the row's revision is the
    // entity's mod_revision at the checkpoint, so the commit time is the same.
    auto existing = (SinkCall(*this), sink_->read_orders(shard));
    if (!existing) return fail(existing.status().to_string());
    std::unordered_map<std::string, std::pair<Revision, std::int64_t>> updated_at;
    for (const OrderRow& row : *existing) updated_at[row.order_id] = {row.revision, row.updated_at_ms};
    existing->clear();
    std::uint64_t rows = 0;
    for (std::string_view prefix : {kOrderKeyPrefix, kSkuKeyPrefix}) {
      std::string after;
      while (true) {
        auto page = journal_.range(state.shard, prefix, at, after, options_.backfill_page_entities);
        if (!page) return fail(page.status().to_string());
        std::vector<OrderRow> orders;
        std::vector<SkuRow> skus;
        for (const storage::RangeEntry& entry : page->entries) {
          if (prefix == kOrderKeyPrefix) {
            std::int64_t time = 0;
            auto known = updated_at.find(std::string(entry.entity_key.substr(kOrderKeyPrefix.size())));
            if (known != updated_at.end() && known->second.first == entry.entity.mod_revision) {
              time = known->second.second;
            } else {
              auto looked_up = commit_time(journal_, state.shard, entry.entity.mod_revision);
              if (!looked_up) return fail(looked_up.status().to_string());
              time = looked_up->value_or(0);
            }
            auto row = order_row(shard, entry.entity_key, entry.entity, time);
            if (!row) return fail(row.status().to_string());
            orders.push_back(std::move(*row));
          } else {
            auto row = sku_row(shard, entry.entity_key, entry.entity);
            if (!row) return fail(row.status().to_string());
            skus.push_back(std::move(*row));
          }
        }
        if (!orders.empty() || !skus.empty()) {
          if (options_.publish) {
            std::vector<ChangeEnvelope> envelopes;
            for (const OrderRow& row : orders) envelopes.push_back(order_envelope(std::nullopt, row, 'r', row.updated_at_ms));
            for (const SkuRow& row : skus) envelopes.push_back(sku_envelope(std::nullopt, row, 'r', 0));
            if (Status status = options_.publish(shard, std::move(envelopes)); !status) {
              return fail("publishing the change envelopes: " + status.to_string());
            }
          }
          if (Status status = (SinkCall(*this), sink_->backfill(shard, orders, skus)); !status) return fail(status.to_string());
          rows += orders.size() + skus.size();
        }
        if (!page->more || page->entries.empty()) break;
        after = page->entries.back().entity_key;
      }
    }
    {
      std::lock_guard lock(mutex_);
      totals_.backfilled_rows += rows;
    }
    spdlog::info("cdc: shard {}: backfilled {} rows as of revision {}", shard, rows, at);
  }
  storage::CommitRequest request;
  request.shard = state.shard;
  request.index_delete.push_back(std::string(kCdcBackfillKey));
  storage::CommitResult result = journal_.commit(std::move(request)).get();
  if (!result.status) return fail("clearing the backfill mark: " + result.status.to_string());
  state.backfill_pending = false;
  {
    std::lock_guard lock(mutex_);
    state.confirmed = true;
  }
  progressed_.notify_all();
  return true;
}

bool CdcPipeline::apply_ready(const std::vector<ShardState*>& ready) {
  if (ready.empty()) return false;
  if (ready.size() > 1) {
    // Every shard's batch of this round in one transaction: one commit (a synced write in
    // SQLite) instead of one per shard. Each batch keeps its own checkpoint guard; if any
    // part fails, nothing was written and each shard applies alone below, so a refusal or
    // a batch the database will not take holds back only its own shard. Any failure but a
    // guard's refusal marks every shard of the round stalled first: each alone waits out an
    // outage again (a locked SQLite: its 5 s busy timeout per shard), and the gauge must not
    // say "fine" for the shards still waiting their turn.
    std::vector<const Batch*> batches;
    Status status;
    for (ShardState* state : ready) {
      if (status) status = publish_pending(*state);
      batches.push_back(&*state->pending);
    }
    if (status) status = (SinkCall(*this), sink_->apply_all(batches));
    if (status) {
      for (ShardState* state : ready) applied(*state);
      return true;
    }
    if (status.code() != StatusCode::kInvalidArgument) {
      std::string fresh;  // the shards that were not stalled yet: warned about here, once
      std::lock_guard lock(mutex_);
      for (ShardState* state : ready) {
        if (!state->stats.stalled) fresh += (fresh.empty() ? "" : ", ") + std::to_string(state->shard.value);
        state->stats.stalled = true;
      }
      if (!fresh.empty()) {
        spdlog::warn("cdc: {} did not take the batches of shards {}: {}; each shard retries (the engine goes on, "
                     "the lag grows)",
                     sink_description_, fresh, status.to_string());
      }
    }
  }
  bool busy = false;
  for (ShardState* state : ready) {
    if (stop_.load()) break;
    busy |= apply_pending(*state);
  }
  return busy;
}

bool CdcPipeline::read_batch(ShardState& state) {
  const std::uint32_t shard = state.shard.value;
  if (!state.pending) {
    if (!state.watch) return false;
    if (std::chrono::steady_clock::now() < state.next_batch_at) return false;
    auto records = state.watch->next(options_.batch_revisions_max);
    if (!records) {
      if (records.status().code() == StatusCode::kCompacted) {
        const std::string message = "shard " + std::to_string(shard) + ": compaction passed the CDC position " +
                                    std::to_string(state.watch->position()) +
                                    ": CDC of this shard cannot resume exactly and stops (docs/cdc.md)";
        spdlog::error("cdc: {}", message);
        record_error(&state, message);
        std::lock_guard lock(mutex_);
        state.stats.compacted_past = true;
      } else {
        record_error(&state, "shard " + std::to_string(shard) + ": reading the journal: " +
                                 records.status().to_string());
      }
      return false;
    }
    if (records->empty()) {
      std::lock_guard lock(mutex_);
      state.oldest_unapplied_ms = 0;
      return false;
    }
    if (records->size() < options_.batch_revisions_max) {
      state.next_batch_at = std::chrono::steady_clock::now() + options_.batch_linger;
    }
    Batch batch;
    batch.shard = shard;
    batch.after_revision = state.checkpoint;
    batch.to_revision = records->back().revision;
    std::vector<std::int64_t> committed_ms;
    committed_ms.reserve(records->size());
    // Entity key -> its last change in the batch: the revision (its mod_revision at `to`)
    // and that revision's commit time.
    // ... and its events in the batch, in revision order (views into `records`). One hash
    // lookup per event; the entities are then visited in key order, sorted once.
    struct Changed {
      Revision revision = 0;
      std::int64_t committed_ms = 0;
      std::vector<std::string_view> events;
    };
    std::unordered_map<std::string_view, Changed> changes;
    std::vector<ChangeEnvelope> envelopes;
    for (const storage::LogRecord& record : *records) {
      committed_ms.push_back(record.committed_at_ms);
      for (const storage::Event& event : record.events) {
        Changed& change = changes[event.entity_key];
        change.revision = record.revision;
        change.committed_ms = record.committed_at_ms;
        change.events.push_back(event.payload);
      }
    }
    std::vector<std::pair<std::string, const Changed*>> changed;
    changed.reserve(changes.size());
    for (const auto& [key, change] : changes) changed.emplace_back(std::string(key), &change);
    std::sort(changed.begin(), changed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (state.cache_revision != batch.after_revision) {
      state.cache.clear();
      state.cache_old.clear();
    }
    state.cache_revision = batch.to_revision;
    for (const auto& [key, last_change] : changed) {
      const Changed& last = *last_change;
      const std::int64_t time = last.committed_ms;
      const EntityKind kind = kind_of(key);
      if (kind == EntityKind::kOther) continue;  // no analytics table for it
      // The entity as of the batch's start (nullopt: it did not exist yet), cached or read
      // from the journal at after_revision, and the batch's events folded onto it. A read at
      // the batch's start finds a new entity missing at once and re-reads none of the
      // batch's records (they are in memory). Only if that revision was compacted (the CDC
      // cursor normally holds compaction back) is the entity read whole at to_revision.
      // Folded in place, in the cache: a SKU's state is large, and even moving it allocates.
      CachedEntity* entity = cache_find(state, key);
      // The state at C is known (nullptr: did not exist): cached, or the batch begins the
      // entity (an order's OrderPlaced or OrderRejected), which needs no read.
      bool start_known = entity != nullptr || runtime::creates_entity(key, last.events.front());
      Status failure = Status::ok();
      if (!start_known) {
        auto read = batch.after_revision == 0 ? Result<std::optional<storage::EntityState>>(std::nullopt)
                                              : journal_.get(state.shard, key, batch.after_revision);
        if (read) {
          if (read->has_value()) entity = &cache_put(state, key, decode_entity(key, **read));
          start_known = true;
        } else if (read.status().code() != StatusCode::kCompacted) {
          failure = read.status();
        }
      }
      // Existed at the batch's start: an earlier batch (or the backfill) wrote its row.
      const bool existed = start_known && entity != nullptr;
      // "before" of an envelope: the row of the state at the batch's start (none if it did not
      // exist, or if that revision was compacted), taken before the batch's events move it on.
      bool has_before = false;
      std::optional<OrderRow> order_before;
      std::optional<SkuRow> sku_before;
      if (options_.publish && existed) {
        has_before = true;
        if (kind == EntityKind::kOrder) {
          auto when = commit_time(journal_, state.shard, entity->mod_revision);
          order_before = order_row(shard, key, std::get<order::State>(entity->state), entity->mod_revision,
                                   when && *when ? **when : 0);
        } else {
          sku_before = sku_row(shard, key, std::get<sku::State>(entity->state), entity->mod_revision);
        }
      }
      if (failure.is_ok() && start_known) {
        if (entity == nullptr) {  // new in this batch
          CachedEntity fresh;
          if (kind == EntityKind::kSku) fresh.state = sku::State{};
          entity = &cache_put(state, key, std::move(fresh));
        }
        std::visit([&](auto& s) { runtime::fold_events(s, key, last.events); }, entity->state);
        entity->mod_revision = last.revision;
      } else if (failure.is_ok()) {
        auto read = journal_.get(state.shard, key, batch.to_revision);
        if (!read) {
          failure = read.status();
        } else if (!read->has_value()) {
          failure = Status(StatusCode::kCorruption, key + " has events but no state at revision " +
                                                        std::to_string(batch.to_revision));
        } else {
          entity = &cache_put(state, key, decode_entity(key, **read));
        }
      }
      if (failure.is_ok()) {
        const char op = has_before ? 'u' : 'c';
        if (kind == EntityKind::kOrder) {
          OrderRow row = order_row(shard, key, std::get<order::State>(entity->state), entity->mod_revision, time);
          if (options_.publish) envelopes.push_back(order_envelope(order_before, row, op, time));
          row.lines_stored = existed;
          batch.orders.push_back(std::move(row));
        } else {
          SkuRow row = sku_row(shard, key, std::get<sku::State>(entity->state), entity->mod_revision);
          if (options_.publish) {
            envelopes.push_back(sku_envelope(sku_before, row, op, records->back().committed_at_ms));
          }
          batch.skus.push_back(std::move(row));
        }
      }
      if (!failure.is_ok()) {
        state.cache_revision = 0;  // part of this batch is cached: forget it all
        state.cache.clear();
        state.cache_old.clear();
        record_error(&state, "shard " + std::to_string(shard) + ": reading " + key + ": " + failure.to_string());
        // Read the same revisions again next round.
        auto watch = journal_.watch(state.shard, "", state.checkpoint + 1);
        if (watch) {
          state.watch.emplace(std::move(*watch));
        } else {
          state.watch.reset();
          state.known = false;  // the run loop reads the checkpoints again
        }
        return false;
      }
    }
    state.pending = std::move(batch);
    state.pending_committed_ms = std::move(committed_ms);
    state.pending_envelopes = std::move(envelopes);
    state.envelopes_published = false;
    state.retry_at = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    state.oldest_unapplied_ms = state.pending_committed_ms.front();
  }
  return std::chrono::steady_clock::now() >= state.retry_at;
}

Status CdcPipeline::publish_pending(ShardState& state) {
  if (!options_.publish || state.envelopes_published) return Status::ok();
  Status status = options_.publish(state.shard.value, state.pending_envelopes);
  if (!status) return Status(StatusCode::kIoError, "publishing the change envelopes: " + status.to_string());
  state.envelopes_published = true;
  return status;
}

void CdcPipeline::applied(ShardState& state) {
  const std::uint32_t shard = state.shard.value;
  if (options_.after_apply) options_.after_apply(*state.pending);
  const Batch& batch = *state.pending;
  if (options_.on_applied) options_.on_applied(shard, state.pending_committed_ms, now_ms());
  if (state.stats.stalled) {
    spdlog::info("cdc: shard {}: {} accepts writes again; applied revisions {}..{}", shard, sink_description_,
                 batch.after_revision + 1, batch.to_revision);
  }
  {
    std::lock_guard lock(mutex_);
    state.checkpoint = batch.to_revision;
    state.stats.checkpoint = batch.to_revision;
    ++state.stats.batches;
    state.stats.orders_applied += batch.orders.size();
    state.stats.skus_applied += batch.skus.size();
    state.stats.stalled = false;
    totals_.orders_applied += batch.orders.size();
    totals_.skus_applied += batch.skus.size();
    state.oldest_unapplied_ms = 0;
  }
  state.pending.reset();
  state.pending_committed_ms.clear();
  state.pending_envelopes.clear();
  state.backoff = std::chrono::milliseconds(0);
  progressed_.notify_all();
}

bool CdcPipeline::apply_pending(ShardState& state) {
  const std::uint32_t shard = state.shard.value;
  Status status = publish_pending(state);
  if (status) status = (SinkCall(*this), sink_->apply(*state.pending));
  if (status) {
    applied(state);
    return true;
  }
  if (status.code() == StatusCode::kInvalidArgument) {
    // The guard: the sink's checkpoint is not ours (another writer moved it, or it was
    // restored from a backup). Nothing was written; read the checkpoints again.
    spdlog::warn("cdc: shard {}: {} refused revisions {}..{}: {}; reading the checkpoints again", shard,
                 sink_description_, state.pending->after_revision + 1, state.pending->to_revision,
                 status.to_string());
    record_error(&state, status.to_string());
    std::lock_guard lock(mutex_);
    ++totals_.guard_refusals;
    return false;
  }
  apply_failed(state, status);
  return false;
}

void CdcPipeline::apply_failed(ShardState& state, const Status& status) {
  state.backoff = std::clamp(state.backoff * 2, options_.backoff_min, options_.backoff_max);
  state.retry_at = std::chrono::steady_clock::now() + state.backoff;
  if (!state.stats.stalled) {
    spdlog::warn("cdc: shard {}: {} did not take revisions {}..{}: {}; retrying (the engine goes on, the lag grows)",
                 state.shard.value, sink_description_, state.pending->after_revision + 1, state.pending->to_revision,
                 status.to_string());
  }
  record_error(&state, status.to_string());
  std::lock_guard lock(mutex_);
  state.stats.stalled = true;
}

void CdcPipeline::store_cursors(bool wait) {
  for (auto& state : shards_) {
    if (!state->known || state->cursor_stored == state->checkpoint) continue;
    storage::CommitRequest request;
    request.shard = state->shard;
    request.index_put.push_back({std::string(kCdcCursorKey), std::to_string(state->checkpoint)});
    if (wait) {
      storage::CommitResult result = journal_.commit(std::move(request)).get();
      if (!result.status) {
        spdlog::warn("cdc: shard {}: storing the cursor failed: {}", state->shard.value, result.status.to_string());
        continue;
      }
    } else {
      // Not waited for: a cursor lost in a crash is only older, which holds compaction back
      // a little longer; the checkpoint itself lives in the sink.
      Status status = journal_.submit(std::move(request), [](const storage::CommitResult&) {}, storage::Admission::kTry);
      if (!status) continue;
    }
    state->cursor_stored = state->checkpoint;
  }
}

PipelineStats CdcPipeline::stats() const {
  const std::int64_t now = now_ms();
  PipelineStats out;
  std::vector<std::int64_t> oldest;
  {
    std::lock_guard lock(mutex_);
    out = totals_;
    for (const auto& state : shards_) {
      out.shards.push_back(state->stats);
      oldest.push_back(state->oldest_unapplied_ms);
    }
  }
  // A database call that has not returned for long (a server that is stopped or wedged: its
  // own statement_timeout never fires) stalls every shard, though no call failed yet. Said
  // here, where scrapes look, since the CDC thread is the one waiting.
  const std::int64_t call_since = sink_call_since_ms_.load();
  if (call_since > 0 && now - call_since >= options_.call_stalled_after.count()) {
    for (ShardStats& shard : out.shards) shard.stalled = true;
    if (!sink_call_reported_.exchange(true)) {
      spdlog::warn("cdc: {} has not answered a call for {} s; every shard is stalled until it does",
                   sink_description_, (now - call_since) / 1000);
    }
  }
  for (std::size_t i = 0; i < out.shards.size(); ++i) {
    ShardStats& s = out.shards[i];
    const ShardId shard{s.shard};
    if (auto head = journal_.revision(shard)) s.journal_revision = *head;
    s.lag_revisions = s.journal_revision > s.checkpoint ? s.journal_revision - s.checkpoint : 0;
    if (s.lag_revisions == 0) continue;
    std::int64_t since = oldest[i];
    if (since == 0) {
      // Behind but no batch in hand (the database was down at start, or a read is due):
      // the commit time of the first revision not applied, one journal seek.
      if (auto time = commit_time(journal_, shard, s.checkpoint + 1); time && time->has_value()) since = **time;
    }
    if (since > 0) s.lag_seconds = static_cast<double>(std::max<std::int64_t>(0, now - since)) / 1000.0;
  }
  return out;
}

bool CdcPipeline::wait_caught_up(std::chrono::milliseconds timeout) const {
  std::vector<Revision> targets;
  for (const auto& state : shards_) {
    auto head = journal_.revision(state->shard);
    targets.push_back(head ? *head : 0);
  }
  std::unique_lock lock(mutex_);
  return progressed_.wait_for(lock, timeout, [&] {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      if (!shards_[i]->confirmed || shards_[i]->checkpoint < targets[i]) return false;
    }
    return true;
  });
}

metrics::Registration register_cdc_metrics(metrics::Registry& registry, const CdcPipeline& pipeline) {
  return registry.add_collector([&pipeline](metrics::Scrape& scrape) {
    const PipelineStats stats = pipeline.stats();
    for (const ShardStats& shard : stats.shards) {
      const metrics::Labels labels = {{"shard", std::to_string(shard.shard)}};
      scrape.gauge("ffe_cdc_lag_revisions", "Revisions committed to the journal and not yet applied to the analytics tables",
                   labels, static_cast<double>(shard.lag_revisions));
      scrape.gauge("ffe_cdc_lag_seconds",
                   "Seconds since the oldest revision not yet applied to the analytics tables was committed (0: caught up)",
                   labels, shard.lag_seconds);
      scrape.gauge("ffe_cdc_checkpoint_revision", "The analytics tables' checkpoint revision", labels,
                   static_cast<double>(shard.checkpoint));
      scrape.gauge("ffe_cdc_stalled", "1 while the analytics database refuses or cannot take writes (CDC retries)",
                   labels, shard.stalled || shard.compacted_past || !stats.sink_open ? 1.0 : 0.0);
    }
    scrape.counter("ffe_cdc_rows_applied_total", "Rows written to the analytics tables by CDC",
                   {{"table", "orders"}}, static_cast<double>(stats.orders_applied));
    scrape.counter("ffe_cdc_rows_applied_total", "Rows written to the analytics tables by CDC",
                   {{"table", "sku_stock"}}, static_cast<double>(stats.skus_applied));
    scrape.counter("ffe_cdc_errors_total", "Failed CDC applies, reads and refusals (each retried)", {},
                   static_cast<double>(stats.errors));
  });
}

}  // namespace ffe::cdc
