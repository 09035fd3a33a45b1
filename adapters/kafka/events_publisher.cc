#include "adapters/kafka/events_publisher.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <optional>

#include "events/codec.h"
#include "events/upcast.h"
#include "ffe/v1/journal.pb.h"

namespace ffe::kafka {

using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

struct EventsPublisher::ShardCursor {
  ShardId shard;
  std::optional<storage::Watch> watch;
  Revision acknowledged = 0;  // every event up to here was acknowledged by the broker
  Revision stored = 0;        // the cursor last written to the journal
  Revision in_round = 0;      // the last revision produced in the current round
};

namespace {

// The JournalEvent envelope of the event at `index` of a record, in the current schema (an
// event an older ffe journaled is upcast: events/upcast.h), with the record's input position
// and the deployment's shard count, which restore needs (docs/replay.md). False when the key
// names no known aggregate, the payload does not parse or cannot be upcast (a bug or a
// corrupted journal: the journal only holds what the runtime wrote).
bool envelope(ShardId shard, std::uint32_t shard_count, const storage::LogRecord& record, std::size_t index,
              v1::JournalEvent& out) {
  const storage::Event& event = record.events[index];
  out.Clear();
  out.set_schema_version(events::journal_schema_version);
  out.set_shard(static_cast<std::int32_t>(shard.value));
  out.set_revision(static_cast<std::int64_t>(record.revision));
  out.set_entity_key(event.entity_key);
  out.set_committed_at_ms(record.committed_at_ms);
  if (record.input) {
    out.set_input_source(record.input->source);
    out.set_input_offset(record.input->offset);
  }
  out.set_event_index(static_cast<std::uint32_t>(index));
  out.set_revision_events(static_cast<std::uint32_t>(record.events.size()));
  out.set_shard_count(shard_count);
  if (event.entity_key.starts_with("sku/")) {
    return out.mutable_sku()->ParseFromString(event.payload) && events::upcast(*out.mutable_sku()).ok();
  }
  if (event.entity_key.starts_with("order/")) {
    return out.mutable_order()->ParseFromString(event.payload) && events::upcast(*out.mutable_order()).ok();
  }
  return false;
}

}  // namespace

EventsPublisher::EventsPublisher(storage::Journal& journal, Producer& producer, Options options)
    : journal_(journal), producer_(producer), options_(std::move(options)) {}

EventsPublisher::~EventsPublisher() { stop(); }

storage::Result<Revision> EventsPublisher::stored_cursor(const storage::Journal& journal, ShardId shard) {
  auto page = journal.index_scan(shard, kEventsCursorKey, {}, 1);
  if (!page) return page.status();
  if (page->empty() || page->front().key != kEventsCursorKey) return Revision{0};
  const std::string& value = page->front().value;
  Revision revision = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), revision);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return Status(StatusCode::kCorruption, "shard " + std::to_string(shard.value) + ": the events cursor \"" + value +
                                               "\" is not a revision");
  }
  return revision;
}

Status EventsPublisher::start() {
  std::vector<ShardCursor> shards;
  for (ShardId shard : journal_.shards()) {
    ShardCursor cursor;
    cursor.shard = shard;
    auto stored = stored_cursor(journal_, shard);
    if (!stored) return stored.status();
    cursor.acknowledged = cursor.stored = *stored;
    auto compacted = journal_.compacted_revision(shard);
    if (!compacted) return compacted.status();
    Revision from = *stored + 1;
    if (*compacted > 0 && from < *compacted) {
      spdlog::error("events: shard {}: revisions {}..{} were compacted before they were published to {}; "
                    "they are skipped",
                    shard.value, from, *compacted - 1, options_.topic);
      from = *compacted;
    }
    auto watch = journal_.watch(shard, "", from);
    if (!watch) return watch.status();
    cursor.watch.emplace(std::move(*watch));
    shards.push_back(std::move(cursor));
  }
  {
    std::lock_guard lock(mu_);
    for (const ShardCursor& cursor : shards) published_[cursor.shard.value] = cursor.acknowledged;
  }
  thread_ = std::thread([this, shards = std::move(shards)]() mutable {
    pthread_setname_np(pthread_self(), "ffe-events");  // for top -H and perf
    auto last_store = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      const bool busy = round(shards);
      if (std::chrono::steady_clock::now() - last_store >= options_.cursor_interval) {
        store_cursors(shards, false);
        last_store = std::chrono::steady_clock::now();
      }
      if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    store_cursors(shards, true);
  });
  return Status::ok();
}

void EventsPublisher::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

bool EventsPublisher::round(std::vector<ShardCursor>& shards) {
  auto batch = DeliveryBatch::make();
  bool produced = false;
  std::size_t events = 0;
  v1::JournalEvent event;
  const auto shard_count = static_cast<std::uint32_t>(journal_.shards().size());
  for (ShardCursor& cursor : shards) {
    cursor.in_round = 0;
    auto records = cursor.watch->next(options_.batch_records);
    if (!records) {
      if (records.status().code() == StatusCode::kCompacted) {
        auto compacted = journal_.compacted_revision(cursor.shard);
        if (compacted) {
          spdlog::error("events: shard {}: compaction passed the cursor {}; revisions up to {} are skipped",
                        cursor.shard.value, cursor.watch->position(), *compacted - 1);
          if (auto watch = journal_.watch(cursor.shard, "", *compacted)) cursor.watch.emplace(std::move(*watch));
        }
      } else {
        spdlog::warn("events: shard {}: reading the journal: {}", cursor.shard.value, records.status().to_string());
      }
      continue;
    }
    for (const storage::LogRecord& record : *records) {
      for (std::size_t index = 0; index < record.events.size(); ++index) {
        const storage::Event& e = record.events[index];
        if (!envelope(cursor.shard, shard_count, record, index, event)) {
          spdlog::error("events: shard {} revision {}: the event of {} does not parse; not published",
                        cursor.shard.value, record.revision, e.entity_key);
          continue;
        }
        Record out;
        out.topic = options_.topic;
        out.key = e.entity_key;
        out.value = event.SerializeAsString();
        out.headers.push_back({"content-type", std::string(events::kProtobufContentType)});
        DeliveryFn done = batch->expect();
        if (Status status = producer_.produce(std::move(out), done, &stop_); !status) batch->refused(status.to_string());
        ++events;
      }
      cursor.in_round = record.revision;
      produced = true;
    }
  }
  if (!produced) return false;
  // Wait for the round; at stop give it a few seconds more so a clean shutdown ends with
  // every cursor at the journal's head.
  bool reported = false;
  while (!(reported = batch->wait(std::chrono::milliseconds(500), &stop_)) && !stop_.load()) {
  }
  if (!reported) reported = batch->wait(std::chrono::seconds(5));
  if (reported && batch->all_ok()) {
    events_.fetch_add(events, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    for (ShardCursor& cursor : shards) {
      if (cursor.in_round == 0) continue;
      cursor.acknowledged = cursor.in_round;
      published_[cursor.shard.value] = cursor.acknowledged;
    }
    return true;
  }
  spdlog::warn("events: {} events not acknowledged ({}); publishing again from the last acknowledged revision",
               batch->failed(), reported ? batch->first_error() : std::string("no delivery report in time"));
  for (ShardCursor& cursor : shards) {
    if (cursor.in_round == 0) continue;
    if (auto watch = journal_.watch(cursor.shard, "", cursor.acknowledged + 1)) cursor.watch.emplace(std::move(*watch));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return true;
}

void EventsPublisher::store_cursors(std::vector<ShardCursor>& shards, bool wait) {
  for (ShardCursor& cursor : shards) {
    if (cursor.acknowledged <= cursor.stored) continue;
    storage::CommitRequest request;
    request.shard = cursor.shard;
    request.index_put.push_back({std::string(kEventsCursorKey), std::to_string(cursor.acknowledged)});
    if (wait) {
      storage::CommitResult result = journal_.commit(std::move(request)).get();
      if (!result.status) {
        spdlog::warn("events: shard {}: storing the cursor failed: {}", cursor.shard.value, result.status.to_string());
        continue;
      }
    } else {
      // Not waited for: a lost cursor only means those events are published again.
      Status status = journal_.submit(std::move(request), [](const storage::CommitResult&) {}, storage::Admission::kTry);
      if (!status) continue;  // busy: next time
    }
    cursor.stored = cursor.acknowledged;
  }
}

std::map<std::uint32_t, Revision> EventsPublisher::published() const {
  std::lock_guard lock(mu_);
  return published_;
}

}  // namespace ffe::kafka
