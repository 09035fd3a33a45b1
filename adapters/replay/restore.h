#pragma once
// Restore from Kafka: rebuilds a journal from `ff.events` alone, into a new data dir, so a
// lost disk can be restored from the topic (ARCHITECTURE.md, Replay; docs/replay.md).
// `ffe replay --from-kafka LIST --data-dir NEW` runs it, then replays NEW and prints each
// shard's digest; `ffe serve --data-dir NEW` then serves the same state the lost engine had
// at those revisions.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "storage/status.h"

namespace ffe::replay {

struct RestoreOptions {
  std::string brokers;                 // bootstrap servers
  std::string topic = "ff.events";     // <topic-prefix>events
  std::string data_dir;                // must not exist or be empty; never overwritten
  // Extra librdkafka properties for the consumer.
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  // Progress (events read so far, of about `total` when known, else 0); may be empty.
  std::function<void(std::uint64_t events, std::uint64_t total)> progress;
  // Tests only: called once the first cut's end offsets are read, before any record is; and
  // once everything up to that cut was read, before restore looks for the revisions the cut
  // split off.
  std::function<void()> after_end_offsets;
  std::function<void()> at_first_cut;
};

struct RestoreResult {
  // Per shard: the last restored revision and how many events it holds.
  std::map<std::uint32_t, std::uint64_t> revisions;
  std::map<std::uint32_t, std::uint64_t> events;
  std::uint64_t duplicates_skipped = 0;  // records seen twice (the publisher is at-least-once)
};

// Reads every partition of the topic from its start to the end offsets seen when it began,
// groups the events by (shard, revision), checks each shard's revisions follow without gaps
// from 1 (or fails naming the first gap: a topic whose retention dropped records cannot
// restore), and commits them into a new journal, one commit per revision, with the index
// entries the runtime needs to resume (open orders and their deadlines) and the events
// cursor at the restored revision.
storage::Result<RestoreResult> restore_from_kafka(const RestoreOptions& options);

}  // namespace ffe::replay
