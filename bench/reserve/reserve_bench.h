#pragma once
// The reservation benchmark (docs/runtime-bench.md), as `ffe bench reserve` runs it: a real
// runtime::Runtime on a fresh data dir, stock received on K SKUs, then N reservations of one
// unit each (StockCommand RESERVE, a new order per attempt, the SKU drawn uniformly among
// the K; K=1 is the hot SKU) with exactly C requests in flight. Prints one JSON object on
// stdout: throughput, latency percentiles from submit to Ack, journal batching and bytes,
// RSS, and the correctness check (no SKU oversold, every attempt answered).
//
// A second mode (entities_touched > 0) measures memory instead: M distinct SKUs touched once
// each (ReceiveStock qty 1) under a max_live_entities cap, reporting RSS per entity.
//
// No CLI11 here (adapters/cli/main.cc parses the flags); never asserts on time.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace ffe::bench {

struct ReserveBenchOptions {
  std::uint64_t skus = 1;            // K; 1 is the hot SKU
  std::int64_t stock = 1'000'000;    // S, received on each SKU before the run (0: none)
  std::uint64_t attempts = 100'000;  // N reservations of 1 unit
  std::size_t concurrency = 50;      // C requests in flight (the window)
  std::size_t senders = 1;           // threads that submit (Admission::kWait)
  std::uint64_t seed = 1;            // the SKU drawn for attempt i is a hash of (seed, i)
  std::string data_dir;              // empty: a fresh dir under $TMPDIR, removed afterwards
  bool keep = false;                 // keep the fresh dir (its path is in the JSON)
  std::uint32_t shards = 0;          // 0: the runtime's default
  std::size_t scheduler_threads = 0; // 0: the runtime's default (one per core)
  std::size_t max_live = 0;          // max_live_entities per shard; 0: the runtime's default
  std::uint32_t commit_wait_us = 0;  // the journal's commit_wait (linger for a fuller batch)
  std::optional<std::size_t> worker_spins;  // runtime::Options::worker_spins; unset: its default
  std::optional<std::size_t> worker_naps;   // runtime::Options::worker_naps; unset: its default
  std::uint64_t entities_touched = 0;  // > 0: the memory mode instead of reservations
  bool progress = true;              // a progress line on stderr, only if it is a terminal
};

// Runs the benchmark and prints its JSON object. Returns the process exit code: 0 when the
// correctness check holds, 1 when it fails, 2 when the runtime could not be opened or the
// options are unusable (the reason on stderr).
int run_reserve_bench(const ReserveBenchOptions& options);

}  // namespace ffe::bench
