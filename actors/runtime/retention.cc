#include "actors/runtime/retention.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace ffe::runtime {

using storage::Result;
using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

Result<std::optional<CursorFloor>> cursor_floor(const storage::Journal& journal, ShardId shard) {
  std::optional<CursorFloor> floor;
  std::string after;
  for (;;) {
    auto page = journal.index_scan(shard, kCursorPrefix, after);
    if (!page.is_ok()) return page.status();
    for (const storage::IndexEntry& entry : *page) {
      Revision revision = 0;
      const auto [end, error] =
          std::from_chars(entry.value.data(), entry.value.data() + entry.value.size(), revision);
      if (error != std::errc() || end != entry.value.data() + entry.value.size()) {
        return Status(StatusCode::kCorruption, "index entry " + entry.key + " of shard " +
                                                   std::to_string(shard.value) + " is not a revision: " + entry.value);
      }
      if (!floor || revision < floor->revision) floor = CursorFloor{entry.key, revision};
    }
    if (page->size() < storage::limits::index_scan_entries_max) return floor;
    after = page->back().key;
  }
}

CompactOutcome compact_shard(storage::Journal& journal, ShardId shard, Revision revision, bool force) {
  CompactOutcome outcome;
  // A revision the shard has not reached is an error of its own (kFutureRevision), not a
  // cursor's refusal.
  if (auto current = journal.revision(shard); !current.is_ok() || revision > *current) {
    outcome.status = current.is_ok() ? journal.compact(shard, revision) : current.status();
    if (auto compacted = journal.compacted_revision(shard); compacted.is_ok()) outcome.compacted_revision = *compacted;
    return outcome;
  }
  // At or below the compacted revision nothing more is dropped, whatever the cursors say:
  // the same revision again is a no-op, one below it kCompacted.
  if (auto compacted = journal.compacted_revision(shard); !compacted.is_ok() || revision <= *compacted) {
    outcome.status = compacted.is_ok() ? journal.compact(shard, revision) : compacted.status();
    if (auto after = journal.compacted_revision(shard); after.is_ok()) outcome.compacted_revision = *after;
    return outcome;
  }
  auto floor = cursor_floor(journal, shard);
  if (!floor.is_ok()) {
    outcome.status = floor.status();
    return outcome;
  }
  if (*floor && (*floor)->revision < revision) {
    outcome.blocked_by = **floor;
    if (!force) {
      outcome.status = Status(
          StatusCode::kInvalidArgument,
          "compacting shard " + std::to_string(shard.value) + " to revision " + std::to_string(revision) +
              " would drop history " + (*floor)->name + " has not processed yet (it is at revision " +
              std::to_string((*floor)->revision) + "); compact to " + std::to_string((*floor)->revision) +
              " or below, or force it");
      if (auto compacted = journal.compacted_revision(shard); compacted.is_ok()) outcome.compacted_revision = *compacted;
      return outcome;
    }
  }
  outcome.status = journal.compact(shard, revision);
  if (auto compacted = journal.compacted_revision(shard); compacted.is_ok()) outcome.compacted_revision = *compacted;
  return outcome;
}

namespace {

// The commit time of `revision` (which must be readable and exist).
Result<std::int64_t> committed_at(const storage::Journal& journal, ShardId shard, Revision revision) {
  auto watch = journal.watch(shard, "", revision);
  if (!watch.is_ok()) return watch.status();
  auto records = watch->next(1);
  if (!records.is_ok()) return records.status();
  if (records->empty() || records->front().revision != revision) {
    return Status(StatusCode::kCorruption, "revision " + std::to_string(revision) + " of shard " +
                                               std::to_string(shard.value) + " is not in the log");
  }
  return records->front().committed_at_ms;
}

}  // namespace

Result<std::optional<Revision>> retention_target(const storage::Journal& journal, ShardId shard,
                                                 const RetentionPolicy& policy, std::int64_t now_ms,
                                                 std::optional<CursorFloor>* held_by) {
  if (held_by != nullptr) held_by->reset();
  if (!policy.enabled()) return std::optional<Revision>{};
  auto current = journal.revision(shard);
  if (!current.is_ok()) return current.status();
  auto compacted = journal.compacted_revision(shard);
  if (!compacted.is_ok()) return compacted.status();
  if (*current == 0) return std::optional<Revision>{};

  // Each limit gives the lowest revision it wants readable; the stricter (lower) one wins.
  Revision target = *current;
  if (policy.keep_revisions > 0) {
    const Revision by_count = *current >= policy.keep_revisions ? *current - policy.keep_revisions + 1 : 1;
    target = std::min(target, by_count);
  }
  const std::chrono::milliseconds keep_for = std::max(policy.keep_for, policy.keep_recent);
  if (keep_for.count() > 0) {
    // The first revision committed at or after the cutoff (commit times rise with the
    // revision: one writer thread stamps them in order). Binary search over the readable log.
    const std::int64_t cutoff = now_ms - keep_for.count();
    Revision low = std::max<Revision>(*compacted, 1);
    Revision high = *current;
    auto high_at = committed_at(journal, shard, high);
    if (!high_at.is_ok()) return high_at.status();
    if (*high_at >= cutoff) {
      while (low < high) {
        const Revision mid = low + (high - low) / 2;
        auto at = committed_at(journal, shard, mid);
        if (!at.is_ok()) return at.status();
        if (*at >= cutoff) {
          high = mid;
        } else {
          low = mid + 1;
        }
      }
      target = std::min(target, low);
    }
  }
  auto floor = cursor_floor(journal, shard);
  if (!floor.is_ok()) return floor.status();
  if (*floor && (*floor)->revision < target) {
    target = (*floor)->revision;
    if (held_by != nullptr) *held_by = *floor;
  }
  if (target <= *compacted) return std::optional<Revision>{};
  return std::optional<Revision>{target};
}

Retention::Retention(storage::Journal& journal, RetentionPolicy policy, std::function<std::int64_t()> clock)
    : journal_(journal), policy_(policy), clock_(std::move(clock)) {
  if (policy_.enabled()) {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ffe-retention");  // for top -H and perf
      loop();
    });
  }
}

Retention::~Retention() { stop(); }

void Retention::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t Retention::compactions() const {
  std::lock_guard lock(mu_);
  return compactions_;
}

void Retention::run_once() {
  for (ShardId shard : journal_.shards()) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;  // a stop waits for one shard's compaction at most, not the pass
    }
    std::optional<CursorFloor> held_by;
    auto target = retention_target(journal_, shard, policy_, clock_(), &held_by);
    if (!target.is_ok()) {
      spdlog::warn("retention: shard {}: {}", shard.value, target.status().to_string());
      continue;
    }
    // A reader that holds compaction back is said once when it starts to, and when it stops:
    // `--analytics off` on a data dir that once ran CDC leaves cursor/cdc where it was.
    {
      std::lock_guard lock(mu_);
      auto& last = held_by_[shard.value];
      if (held_by && last != held_by->name) {
        spdlog::warn("retention: shard {} is held at revision {} by {}, a reader that has not processed what follows; "
                     "the policy compacts no further until it moves (a reader that is gone for good, such as CDC "
                     "after --analytics off: `ffe compact --force`; docs/revisions.md)",
                     shard.value, held_by->revision, held_by->name);
        last = held_by->name;
      } else if (!held_by && !last.empty()) {
        spdlog::info("retention: shard {} is no longer held back by {}", shard.value, last);
        last.clear();
      }
    }
    if (!*target) continue;
    const Status status = journal_.compact(shard, **target);
    if (!status.is_ok()) {
      spdlog::warn("retention: compacting shard {} to revision {}: {}", shard.value, **target, status.to_string());
      continue;
    }
    spdlog::info("retention: shard {} compacted below revision {}", shard.value, **target);
    std::lock_guard lock(mu_);
    ++compactions_;
  }
}

void Retention::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, policy_.interval, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    run_once();
    lock.lock();
  }
}

}  // namespace ffe::runtime
