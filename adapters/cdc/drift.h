#pragma once
// `ffe drift`: compares the analytics tables at their checkpoint with the engine's state at
// that revision (invariant 9, ARCHITECTURE.md; docs/cdc.md, "Drift").
//
// Per shard: the sink's checkpoint R; every entity of the journal at R (range over "order/"
// and "sku/", paged), turned into rows by the same code as the pipeline (rows.h), against
// every row of the tables (Sink::read_orders / read_skus). A row missing, extra, or
// different in any column is drift. updated_at_ms is compared for every order whose last
// change is still in the journal's history (compaction removes the commit time of older
// ones; those are counted as `unchecked_updated_at`).
//
// On a running engine the tables may move while they are read: the checkpoint is read
// before and after the rows, and the comparison is done again (a few times) until both
// agree.
//
// Pure functions over a Journal and a Sink; not thread-safe (one caller).

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "adapters/cdc/sink.h"
#include "storage/journal.h"

namespace ffe::cdc {

struct ShardDrift {
  std::uint32_t shard = 0;
  storage::Revision checkpoint = 0;
  std::uint64_t orders = 0;  // rows compared (the engine's side)
  std::uint64_t skus = 0;
  std::uint64_t missing = 0;     // in the engine, not in the tables
  std::uint64_t extra = 0;       // in the tables, not in the engine
  std::uint64_t different = 0;   // both, with a column that differs
  std::uint64_t unchecked_updated_at = 0;
  std::vector<std::string> differences;  // the first differences_max, one line each
  std::uint64_t drift() const { return missing + extra + different; }
};

// Compares one shard. kFutureRevision when the sink's checkpoint is past the journal's
// revision (a stale read-only view: refresh and try again, or tables of another data dir).
storage::Result<ShardDrift> compare_shard(const storage::Journal& journal, Sink& sink, storage::ShardId shard,
                                          std::size_t differences_max = 10);

struct DriftOptions {
  std::string data_dir;
  std::string analytics;  // empty: sqlite:<data_dir>/analytics.db
  std::size_t differences_max = 10;
  std::FILE* out = stdout;
  std::FILE* err = stderr;
};

// `ffe drift`: one JSON line per shard on `out`, the differences on `err`. Exit code 0: no
// drift in any shard; 1: drift; 2: could not compare (no data dir, bad URL, unreadable).
int run_drift(const DriftOptions& options);

}  // namespace ffe::cdc
