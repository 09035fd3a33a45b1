#pragma once
// Replay: rebuilds each shard's state from its journal's log and proves it by the shard's
// digest (ARCHITECTURE.md invariant 8: replay to revision R yields exactly the live state at
// R). docs/replay.md describes it; `ffe replay` is the command line over it.
//
// Replay does not call Journal::digest (which folds from snapshots): it starts from the
// shard's base (nothing at revision 0; when compacted, the entities as of the compacted
// revision, which compaction kept as snapshots), reads every later log record in revision
// order with watch(), checks the revisions follow without a gap, folds each entity's events
// through the domain's pure evolve() functions (actors/sku, actors/order, after the upcaster),
// keeping the decoded states in memory, and serializes them canonically only at the end to
// hash them in exactly Journal::digest's format. So the digests agree only if the log, the
// deciders' evolve() and the journal's reads agree.
//
// The journal is opened read-only (storage::JournalOptions::read_only): replay works on a
// stopped engine's data dir and beside a running engine, and never writes to the dir.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "storage/journal_types.h"
#include "storage/status.h"

namespace ffe::storage {
class Journal;
}

namespace ffe::replay {

// The result of replaying one shard.
struct ShardReplay {
  std::uint32_t shard = 0;
  storage::Revision revision = 0;            // replayed up to (and including) this revision
  storage::Revision base_revision = 0;       // the compacted revision it started from (0: none)
  std::uint64_t events = 0;                  // events folded from the log (after the base)
  std::uint64_t base_entities = 0;           // entities read at the base revision
  std::uint64_t entities = 0;                // entities in the state at `revision`
  std::string digest;                        // hex SHA-256, Journal::digest's format
  double seconds = 0;                        // wall time of this shard's replay
};

// Shared progress of a replay, updated by the workers as they go (relaxed atomics).
struct ReplayProgress {
  std::atomic<std::uint64_t> records_total{0};  // log records to read, all shards (known after planning)
  std::atomic<std::uint64_t> records_done{0};
  std::atomic<std::uint64_t> events_done{0};
};

struct ReplayOptions {
  std::string data_dir;
  std::optional<std::uint32_t> shard;              // only this shard (default: every shard)
  std::optional<storage::Revision> to_revision;    // default: each shard's current revision
  std::size_t threads = 2;                         // shards replayed in parallel
  ReplayProgress* progress = nullptr;              // optional; not owned
};

// Replays one shard of an open journal (read-only or not) up to `to_revision` (default: its
// current revision). Errors: kFutureRevision (above the shard's revision), kCompacted
// (below its compacted revision; the message names it), kCorruption (a gap in the log, an
// undecodable event or state, an unknown entity key: the message names shard, revision and
// key), kInvalidArgument (unknown shard).
storage::Result<ShardReplay> replay_shard(const storage::Journal& journal, storage::ShardId shard,
                                          std::optional<storage::Revision> to_revision,
                                          ReplayProgress* progress = nullptr);

// Opens data_dir read-only and replays the chosen shards on `threads` threads. The results
// in shard order; the first error stops the run.
storage::Result<std::vector<ShardReplay>> replay(const ReplayOptions& options);

// {"shard":S,"revision":R,"events":N,"digest":"..."}
std::string to_json(const ShardReplay& result);

// `ffe replay`: what adapters/cli/main.cc parsed.
struct ReplayCommand {
  std::string data_dir;
  std::optional<std::uint32_t> shard;
  std::optional<storage::Revision> to_revision;
  std::string from_kafka;           // non-empty: restore from <topic_prefix>events into data_dir first
  std::string topic_prefix = "ff.";
  // librdkafka properties for the restore's consumer (`-X name=value`: SASL, TLS).
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  std::size_t threads = 2;
  bool quiet = false;               // no progress bar (it is only drawn when stderr is a terminal)
  std::FILE* out = stdout;
  std::FILE* err = stderr;
};

// Prints one JSON line per shard on `out`; exit 0, or 2 with "ffe replay: <why>" on `err`.
int run_replay(const ReplayCommand& command);

}  // namespace ffe::replay
