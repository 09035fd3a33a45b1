#pragma once
// The journal's plain value types: what a command commits and what reads return. Values
// only (copy and move freely, no thread-safety concerns); the Journal class is in
// storage/journal.h. The journal is domain-free: payloads and states are opaque bytes
// (serialized protobuf in ffe), entity keys are strings such as "order/o-1" or "sku/sku-1".

#include <compare>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ffe::storage {

// A shard revision (etcd's): 0 is the empty shard before any command; each committed
// command that produced events adds exactly one.
using Revision = std::uint64_t;

// The unit of ownership, ordering and revision (ARCHITECTURE.md). A strong type so a shard
// number cannot be passed where a revision or a count is expected.
struct ShardId {
  std::uint32_t value = 0;
  friend auto operator<=>(ShardId, ShardId) = default;
};

// One event of one entity.
struct Event {
  std::string entity_key;
  std::string payload;
};

// The canonical state of an entity after the command that carries it (a caller-supplied
// snapshot: the runtime holds the state anyway, so this costs it nothing).
struct EntitySnapshot {
  std::string entity_key;
  std::string state;
};

// The input a command consumed: "topic/partition" -> offset.
struct InputPosition {
  std::string source;
  std::int64_t offset = 0;
  friend bool operator==(const InputPosition&, const InputPosition&) = default;
};

struct OutboxHeader {
  std::string name;
  std::string value;
  friend bool operator==(const OutboxHeader&, const OutboxHeader&) = default;
};

// A message that may leave the process only after the command that holds it is durable.
struct OutboxMessage {
  std::string topic;
  std::string key;
  std::string payload;
  std::vector<OutboxHeader> headers;
  friend bool operator==(const OutboxMessage&, const OutboxMessage&) = default;
};

// A key of a shard's index: current state only (no revisions; reads see the latest
// durable value), written in the same atomic batch as the command that carries it; never
// compacted, not part of the digest or of the log. For small lookup sets such as "the open
// orders and their deadlines" that a restart must find without scanning every entity.
struct IndexEntry {
  std::string key;
  std::string value;
  friend bool operator==(const IndexEntry&, const IndexEntry&) = default;
};

// One command's effects: ONE atomic unit in one shard. With no events it is a no-op: it
// records its input position (and any outbox messages, dedupe keys and index changes) at
// the shard's current revision, without a new revision.
struct CommitRequest {
  ShardId shard;
  std::vector<Event> events;
  std::optional<InputPosition> input;
  std::vector<OutboxMessage> outbox;
  std::vector<std::string> dedupe_keys;
  // Optional; each must name an entity that has events in this command.
  std::vector<EntitySnapshot> snapshots;
  // Index changes, applied with the command: first every delete, then every put (a key
  // both deleted and put ends up put; of two puts of one key the later wins). Commands
  // apply in commit order, so a later command's change of a key wins over an earlier one's.
  std::vector<IndexEntry> index_put;
  std::vector<std::string> index_delete;
  // The log record's commit time, when it is not now: a restore writes back the times the
  // lost journal recorded (ff.events carries them), so rows and envelopes built from the
  // restored journal carry the same updated_at_ms. Unset: the writer's wall clock, as for
  // every command of a running engine. Commit times must not go backwards within a shard
  // (retention searches them); the restore's times rise with the revision as the original
  // writer's did.
  std::optional<std::int64_t> committed_at_ms;
};

// Where an outbox message sits in its shard's outbox: the revision of the command that
// wrote it (the shard's current revision for a no-op) and its sequence inside that revision.
struct OutboxPosition {
  Revision revision = 0;
  std::uint32_t seq = 0;
  friend auto operator<=>(const OutboxPosition&, const OutboxPosition&) = default;
  OutboxPosition next() const { return {revision, seq + 1}; }
};

struct OutboxEntry {
  OutboxPosition position;
  OutboxMessage message;
};

// One committed command as the log holds it (what watch() and replay read).
struct LogRecord {
  Revision revision = 0;
  std::int64_t committed_at_ms = 0;  // wall clock when the writer built the batch
  std::optional<InputPosition> input;
  std::vector<Event> events;
  std::vector<std::string> dedupe_keys;
  std::uint32_t outbox_count = 0;
};

// An entity as of a revision: its canonical state (from the StateFolder) and the revision
// of its last change at or before that revision (etcd's mod_revision).
struct EntityState {
  std::string state;
  Revision mod_revision = 0;
  friend bool operator==(const EntityState&, const EntityState&) = default;
};

struct RangeEntry {
  std::string entity_key;
  EntityState entity;
};

// One page of range(): `more` means call again with start_after = the last key returned.
struct RangePage {
  std::vector<RangeEntry> entries;
  bool more = false;
};

// One synced write, as the journal's writer saw it (for metrics: group-commit size and
// commit latency; JournalOptions::on_batch).
struct BatchObservation {
  std::size_t commands = 0;           // commands in the write
  std::size_t bytes = 0;              // bytes handed to RocksDB
  std::chrono::nanoseconds write{0};  // the synced Write call alone
};

}  // namespace ffe::storage
