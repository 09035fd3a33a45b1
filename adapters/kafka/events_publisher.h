#pragma once
// EventsPublisher — publishes the journal, every shard in revision order, to
// `<prefix>events` (key: the entity key, "order/o-1" or "sku/sku-1"; value: a binary
// ffe.v1.JournalEvent with shard, revision, committed_at_ms and the SkuEvent or OrderEvent in
// the current schema (upcast: events/upcast.h), plus what restore needs: the command's input
// position, the event's index in its revision and the revision's event count, the shard
// count; header content-type application/x-protobuf), for replay and restore
// (adapters/replay/restore.h).
//
// Owner: adapters/serve (or a test); must not outlive the Journal it reads.
// Lifecycle: start() reads each shard's cursor (index key "cursor/events": the last
// revision whose events the broker acknowledged) and starts one thread that follows every
// shard with Journal::watch; stop() (or the destructor) waits for what was produced, stores
// the cursors and joins.
//
// Guarantee: at-least-once, in revision order per shard. A cursor is stored (a no-op journal
// commit carrying only the index entry) only after every event up to it was acknowledged;
// after a crash the events after the stored cursor are published again, so a consumer
// dedupes by (shard, revision, entity key). A revision compacted away before it was
// published is skipped with an error in the log (compaction should trail the cursor).
//
// Thread safety: start/stop from one thread; stats() from any.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapters/kafka/producer.h"
#include "storage/journal.h"

namespace ffe::kafka {

// The index key holding a shard's published cursor (decimal revision).
inline constexpr std::string_view kEventsCursorKey = "cursor/events";

class EventsPublisher {
 public:
  struct Options {
    std::string topic = "ff.events";
    // Records read per shard per round.
    std::size_t batch_records = 512;
    // How often a moving cursor is stored (and always at stop()).
    std::chrono::milliseconds cursor_interval{200};
  };

  EventsPublisher(storage::Journal& journal, Producer& producer, Options options);
  ~EventsPublisher();
  EventsPublisher(const EventsPublisher&) = delete;
  EventsPublisher& operator=(const EventsPublisher&) = delete;

  storage::Status start();
  void stop();

  // The last revision per shard whose events the broker acknowledged.
  std::map<std::uint32_t, storage::Revision> published() const;
  std::uint64_t events_published() const { return events_.load(); }

  // Reads a shard's stored cursor (0: nothing published yet).
  static storage::Result<storage::Revision> stored_cursor(const storage::Journal& journal, storage::ShardId shard);

 private:
  struct ShardCursor;
  void run();
  bool round(std::vector<ShardCursor>& shards);
  void store_cursors(std::vector<ShardCursor>& shards, bool wait);

  storage::Journal& journal_;
  Producer& producer_;
  const Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> events_{0};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<std::uint32_t, storage::Revision> published_;
};

}  // namespace ffe::kafka
