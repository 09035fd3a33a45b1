#include "adapters/replay/replay.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "actors/order/order.h"
#include "actors/runtime/folder.h"
#include "actors/sku/sku.h"
#include "adapters/replay/restore.h"
#include "events/upcast.h"
#include "ffe/v1/journal.pb.h"
#include "storage/journal.h"
#include "storage/limits.h"
#include "storage/sha256.h"

namespace ffe::replay {

using storage::Result;
using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kSkuPrefix = "sku/";
constexpr std::string_view kOrderPrefix = "order/";
// Log records per watch() call, below the journal's cap of 10,000: a batch of decoded records
// (a few hundred bytes each with their strings) stays in the cache and the allocator's free
// lists (docs/replay.md, "Benchmark": no difference measurable through this machine's noise).
constexpr std::size_t kRecordsPerRead = 1'024;
// Entities per range() page when the base is read at a compacted revision.
constexpr std::size_t kBaseEntitiesPerPage = storage::limits::range_page_entities_max;
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
// Shards replayed in parallel at most (a CLI flag may ask for fewer).
constexpr std::size_t kThreadsMax = 64;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The state of one shard while it is replayed: every entity decoded, in memory, so each
// event costs one protobuf parse and one evolve(), and the canonical bytes are made once per
// entity at the end. Owner: one replay_shard() call, on one thread.
class ShardFold {
 public:
  explicit ShardFold(std::string shard_name) : shard_name_(std::move(shard_name)) {}

  // One event of the log at revision `at`.
  Status apply(const std::string& key, std::string_view payload, Revision at) {
    if (key.starts_with(kSkuPrefix)) {
      if (!sku_event_.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
        return corrupt(at, key, "an undecodable SKU event");
      }
      if (last_sku_ == nullptr || key != last_sku_key_) {
        last_sku_ = &skus_.try_emplace(key).first->second;
        last_sku_key_ = key;
      }
      sku::evolve(*last_sku_, std::string_view(key).substr(kSkuPrefix.size()), sku_event_);
      return Status::ok();
    }
    if (key.starts_with(kOrderPrefix)) {
      if (!order_event_.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
        return corrupt(at, key, "an undecodable order event");
      }
      // Events an older ffe wrote are brought up to the current schema first, exactly as
      // the engine's folder does (events/upcast.h), or the states (and digests) would differ.
      const events::UpcastResult upcast = events::upcast(order_event_);
      if (!upcast.ok()) return corrupt(at, key, "an order event that cannot be upcast: " + upcast.reason);
      if (last_order_ == nullptr || key != last_order_key_) {
        last_order_ = &orders_.try_emplace(key).first->second;
        last_order_key_ = key;
      }
      order::evolve(*last_order_, order_event_);
      return Status::ok();
    }
    return corrupt(at, key, "an entity key ffe does not know");
  }

  // An entity's canonical state at the base (compacted) revision.
  Status load(const std::string& key, std::string_view state, Revision at) {
    if (key.starts_with(kSkuPrefix)) {
      v1::SkuSnapshot snapshot;
      if (!snapshot.ParseFromArray(state.data(), static_cast<int>(state.size()))) {
        return corrupt(at, key, "an undecodable SKU state");
      }
      skus_[key] = sku::from_snapshot(snapshot);
      return Status::ok();
    }
    if (key.starts_with(kOrderPrefix)) {
      v1::OrderSnapshot snapshot;
      if (!snapshot.ParseFromArray(state.data(), static_cast<int>(state.size()))) {
        return corrupt(at, key, "an undecodable order state");
      }
      orders_[key] = order::from_snapshot(snapshot);
      return Status::ok();
    }
    return corrupt(at, key, "an entity key ffe does not know");
  }

  std::size_t entities() const { return skus_.size() + orders_.size(); }

  // Journal::digest's format: entities sorted by key, each as (le64 key length, key, le64
  // state length, state), the state being the canonical snapshot bytes the folder makes.
  std::string digest() const {
    std::vector<std::pair<std::string_view, bool>> keys;  // (key, is_sku)
    keys.reserve(entities());
    for (const auto& [key, state] : skus_) keys.emplace_back(key, true);
    for (const auto& [key, state] : orders_) keys.emplace_back(key, false);
    std::sort(keys.begin(), keys.end());
    storage::Sha256 sha;
    for (const auto& [key, is_sku] : keys) {
      const std::string bytes =
          is_sku ? runtime::deterministic_bytes(sku::to_snapshot(skus_.at(std::string(key))))
                 : runtime::deterministic_bytes(order::to_snapshot(orders_.at(std::string(key))));
      sha.update_framed(key);
      sha.update_framed(bytes);
    }
    return sha.hex_digest();
  }

 private:
  Status corrupt(Revision at, std::string_view key, const std::string& what) const {
    return Status(StatusCode::kCorruption, shard_name_ + " revision " + std::to_string(at) + ", entity '" +
                                               std::string(key) + "': " + what);
  }

  std::string shard_name_;
  std::unordered_map<std::string, sku::State> skus_;
  std::unordered_map<std::string, order::State> orders_;
  // The entity of the previous event of each kind: a command's events usually belong to one
  // entity, so most events skip the hash lookup. Node-based maps keep the pointers valid.
  std::string last_sku_key_, last_order_key_;
  sku::State* last_sku_ = nullptr;
  order::State* last_order_ = nullptr;
  // Reused for every event: parsing into a cleared message reuses its allocations (a
  // protobuf arena reset per event measured no faster here).
  v1::SkuEvent sku_event_;
  v1::OrderEvent order_event_;
};

// The revision a shard is replayed to, checked against what the journal holds.
Result<Revision> target_of(const storage::Journal& journal, ShardId shard, std::optional<Revision> to_revision) {
  auto head = journal.revision(shard);
  if (!head) return head.status();
  auto compacted = journal.compacted_revision(shard);
  if (!compacted) return compacted.status();
  const Revision target = to_revision.value_or(*head);
  if (target > *head) {
    return Status(StatusCode::kFutureRevision, storage::shard_name(shard) + ": revision " + std::to_string(target) +
                                                   " is in the future: the shard's current revision is " +
                                                   std::to_string(*head));
  }
  if (target < *compacted) {
    return Status(StatusCode::kCompacted, storage::shard_name(shard) + ": revision " + std::to_string(target) +
                                              " was compacted: the oldest revision replay can reach is the compacted "
                                              "revision " + std::to_string(*compacted));
  }
  return target;
}

}  // namespace

Result<ShardReplay> replay_shard(const storage::Journal& journal, ShardId shard, std::optional<Revision> to_revision,
                                 ReplayProgress* progress) {
  const auto start = Clock::now();
  auto target = target_of(journal, shard, to_revision);
  if (!target) return target.status();
  auto compacted = journal.compacted_revision(shard);
  if (!compacted) return compacted.status();
  const std::string name = storage::shard_name(shard);

  ShardReplay result;
  result.shard = shard.value;
  result.revision = *target;
  result.base_revision = *compacted;
  ShardFold fold(name);

  // The base: nothing at revision 0; after a compaction, the entities as of the compacted
  // revision (all that is left of the history below it).
  if (*compacted > 0) {
    std::string after;
    while (true) {
      auto page = journal.range(shard, "", *compacted, after, kBaseEntitiesPerPage);
      if (!page) return page.status();
      for (const auto& entry : page->entries) {
        if (Status status = fold.load(entry.entity_key, entry.entity.state, *compacted); !status) return status;
        ++result.base_entities;
      }
      if (!page->more || page->entries.empty()) break;
      after = page->entries.back().entity_key;
    }
  }

  // Every later record, in revision order, without a gap.
  Revision expected = *compacted + 1;
  auto watch = journal.watch(shard, "", expected);
  if (!watch) return watch.status();
  while (expected <= *target) {
    const std::size_t want = static_cast<std::size_t>(std::min<Revision>(kRecordsPerRead, *target - expected + 1));
    auto records = watch->next(want);
    if (!records) return records.status();
    if (records->empty()) {
      return Status(StatusCode::kCorruption, name + ": the log ends at revision " + std::to_string(expected - 1) +
                                                 ", before revision " + std::to_string(*target));
    }
    std::uint64_t events = 0;
    for (const storage::LogRecord& record : *records) {
      if (record.revision != expected) {
        return Status(StatusCode::kCorruption, name + ": the log jumps from revision " + std::to_string(expected - 1) +
                                                   " to " + std::to_string(record.revision) + " (a gap)");
      }
      if (record.events.empty()) {
        return Status(StatusCode::kCorruption, name + ": log record " + std::to_string(expected) + " has no event");
      }
      for (const storage::Event& event : record.events) {
        if (Status status = fold.apply(event.entity_key, event.payload, expected); !status) return status;
      }
      events += record.events.size();
      ++expected;
    }
    result.events += events;
    if (progress != nullptr) {
      progress->records_done.fetch_add(records->size(), std::memory_order_relaxed);
      progress->events_done.fetch_add(events, std::memory_order_relaxed);
    }
  }
  result.entities = fold.entities();
  result.digest = fold.digest();
  result.seconds = seconds_since(start);
  return result;
}

Result<std::vector<ShardReplay>> replay(const ReplayOptions& options) {
  // Journal::open would not create a missing dir read-only, but say it in replay's words.
  std::error_code error;
  if (options.data_dir.empty() || !std::filesystem::is_directory(options.data_dir, error)) {
    return Status(StatusCode::kNotJournal, "no ffe data dir at \"" + options.data_dir + "\"");
  }
  runtime::DomainFolder folder;  // only for the base of a compacted shard (range())
  storage::JournalOptions journal_options;
  journal_options.folder = &folder;
  journal_options.read_only = true;  // a stopped engine's dir, or beside a running engine
  journal_options.snapshot_every_events = 0;
  // Replay reads (and checks) every record it folds; the open need not read them first: it
  // checks each shard's first and last record only (the default tail of 100,000 records per
  // shard cost 0.5 s of CPU on a 10M-event journal, decoded and thrown away).
  journal_options.open_verification = storage::OpenVerification::kTail;
  journal_options.open_verify_tail_revisions = 1;
  auto journal = storage::Journal::open(options.data_dir, journal_options);
  if (!journal) return journal.status();

  std::vector<ShardId> shards;
  for (ShardId shard : (*journal)->shards()) {
    if (!options.shard || *options.shard == shard.value) shards.push_back(shard);
  }
  if (shards.empty()) {
    return Status(StatusCode::kInvalidArgument, "data dir " + options.data_dir + " has no shard " +
                                                    std::to_string(options.shard.value_or(0)));
  }
  // Plan first, so bad revisions fail before any work and the progress knows its total.
  std::uint64_t total = 0;
  for (ShardId shard : shards) {
    auto target = target_of(**journal, shard, options.to_revision);
    if (!target) return target.status();
    total += *target - *(*journal)->compacted_revision(shard);
  }
  if (options.progress != nullptr) options.progress->records_total.store(total);

  std::vector<std::optional<ShardReplay>> results(shards.size());
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  auto work = [&] {
    while (!failed.load()) {
      const std::size_t i = next.fetch_add(1);
      if (i >= shards.size()) return;
      auto replayed = replay_shard(**journal, shards[i], options.to_revision, options.progress);
      if (!replayed) {
        std::lock_guard lock(error_mu);
        if (!failed.exchange(true)) first_error = replayed.status();
        return;
      }
      results[i] = std::move(*replayed);
    }
  };
  const std::size_t threads = std::clamp<std::size_t>(options.threads, 1, std::min(kThreadsMax, shards.size()));
  std::vector<std::thread> workers;
  for (std::size_t t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (auto& worker : workers) worker.join();
  if (failed.load()) return first_error;
  std::vector<ShardReplay> out;
  for (auto& result : results) out.push_back(std::move(*result));
  return out;
}

std::string to_json(const ShardReplay& result) {
  return "{\"shard\":" + std::to_string(result.shard) + ",\"revision\":" + std::to_string(result.revision) +
         ",\"events\":" + std::to_string(result.events) + ",\"digest\":\"" + result.digest + "\"}";
}

namespace {

std::string human_count(double value) {
  char text[32];
  if (value >= 1e6) {
    std::snprintf(text, sizeof text, "%.1fM", value / 1e6);
  } else if (value >= 1e3) {
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f", value);
  }
  return text;
}

// The progress bar on a terminal: records read of the total, events/s, ETA. Drawn every
// kProgressInterval from its own thread until stopped; erased at the end. Owner: run_replay.
class ProgressBar {
 public:
  ProgressBar(const char* what, const ReplayProgress& progress, std::FILE* err)
      : what_(what), progress_(progress), err_(err), thread_([this] { loop(); }) {}
  ~ProgressBar() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::fprintf(err_, "\r\033[K");
    std::fflush(err_);
  }

 private:
  void loop() {
    const auto start = Clock::now();
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, kProgressInterval, [&] { return stopping_; })) {
      const double seconds = std::max(1e-3, seconds_since(start));
      const double done = static_cast<double>(progress_.records_done.load(std::memory_order_relaxed));
      const double total = static_cast<double>(progress_.records_total.load(std::memory_order_relaxed));
      const double events = static_cast<double>(progress_.events_done.load(std::memory_order_relaxed));
      const double fraction = total > 0 ? std::min(1.0, done / total) : 0.0;
      constexpr int kWidth = 30;
      std::string bar(static_cast<std::size_t>(fraction * kWidth), '#');
      bar.resize(kWidth, '.');
      const double rate = done / seconds;
      const double eta = rate > 0 && total > done ? (total - done) / rate : 0;
      std::fprintf(err_, "\r\033[Kffe %s [%s] %3.0f%% %s/%s revisions, %s events/s, ETA %.0f s", what_, bar.c_str(),
                   fraction * 100, human_count(done).c_str(), human_count(total).c_str(),
                   human_count(events / seconds).c_str(), eta);
      std::fflush(err_);
    }
  }

  const char* what_;
  const ReplayProgress& progress_;
  std::FILE* err_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

int run_replay(const ReplayCommand& command) {
  auto fail = [&](const std::string& message) {
    std::fprintf(command.err, "ffe replay: %s\n", message.c_str());
    return 2;
  };
  const bool bar = !command.quiet && ::isatty(::fileno(command.err)) == 1;
  if (!command.from_kafka.empty()) {
    // A lost disk restored from ff.events alone, into a new data dir, then replayed below
    // like any other (restore.h).
    RestoreOptions restore;
    restore.brokers = command.from_kafka;
    restore.topic = command.topic_prefix + "events";
    restore.data_dir = command.data_dir;
    restore.kafka_properties = command.kafka_properties;
    auto restored = restore_from_kafka(restore);
    if (!restored) return fail("restoring from " + restore.topic + " at " + command.from_kafka + ": " +
                               restored.status().to_string());
  }
  ReplayProgress progress;
  ReplayOptions options;
  options.data_dir = command.data_dir;
  options.shard = command.shard;
  options.to_revision = command.to_revision;
  options.threads = command.threads;
  options.progress = &progress;
  Result<std::vector<ShardReplay>> results = Status(StatusCode::kInvalidArgument, "not run");
  {
    std::optional<ProgressBar> drawing;
    if (bar) drawing.emplace("replay", progress, command.err);
    results = replay(options);
  }
  if (!results) return fail(results.status().to_string());
  for (const ShardReplay& result : *results) std::fprintf(command.out, "%s\n", to_json(result).c_str());
  std::fflush(command.out);
  return 0;
}

}  // namespace ffe::replay
