#pragma once
// `ffe bench cdc`: CDC lag and apply rate (docs/cdc.md, "Benchmark"). One process: the
// runtime on a fresh data dir (no Kafka: the payment and shipping participants answer in
// process, every order FULFILLED), a steady order rate for a number of seconds, and the CDC
// pipeline into SQLite (default: sqlite:<data-dir>/analytics.db) or PostgreSQL
// (--analytics postgresql://..., or --postgres to start a throw-away one with
// scripts/pg_temp.sh). Measures:
//   - lag: for every revision committed in the timed phase, apply time - commit time
//     (p50/p99/max ms), at the steady rate;
//   - catch-up: with CDC stopped, a backlog of orders is committed; then CDC starts and the
//     rows/s it applies until caught up is the sink's capacity;
//   - drift at the end (must be 0).
// Prints one JSON object; exit 0 when drift is 0 and every order got its outcome (FULFILLED,
// or CANCELLED when the engine could not keep its deadlines at that rate), 1 otherwise.

#include <cstdint>
#include <string>

namespace ffe::bench {

struct CdcBenchOptions {
  double rate = 5000;            // orders per second in the timed phase
  double seconds = 10;           // length of the timed phase
  std::uint64_t backlog = 20'000;  // orders of the catch-up phase (0: skip it)
  std::uint32_t shards = 4;
  std::uint32_t skus = 1000;
  std::string analytics;         // empty: sqlite:<data-dir>/analytics.db
  bool postgres = false;         // start a temp PostgreSQL (scripts/pg_temp.sh) and use it
  std::string pg_script;         // path of pg_temp.sh
  std::string data_dir;          // empty: a fresh temp dir, removed afterwards
  bool keep = false;
  std::size_t batch_revisions_max = 1024;
  std::size_t scheduler_threads = 0;
};

int run_cdc_bench(const CdcBenchOptions& options);

}  // namespace ffe::bench
