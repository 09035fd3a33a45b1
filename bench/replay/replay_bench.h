#pragma once
// The replay benchmark (docs/replay.md, "Benchmark"), as `ffe bench replay` runs it:
//
//  1. A journal of N events (default 10M) with what an engine writes: stock received on K
//     SKUs, orders placed over them and driven through the whole saga by the real deciders
//     (actors/sku, actors/order) and the real saga reaction (sagas/), with in-process
//     participants (a share of declined payments and unshippable addresses, so stock is
//     reserved, released and committed, orders fulfilled and cancelled). Every decision is
//     one journal command of real protobuf events, submitted through Journal::submit in large
//     group-committed batches, so generation takes minutes, not hours. Or an existing data
//     dir (--data-dir with a journal in it) is reused as it is.
//  2. Replay of every shard (adapters/replay/replay.h) on `threads` threads, timed: events/s
//     per shard and in total (best of `rounds`).
//  3. With restart: `ffe serve` (embedded broker, --analytics off) exec'ed on the data dir,
//     timed from exec to the first 200 of /readyz; then SIGTERM.
//
// Prints one JSON object on stdout. No CLI11 here (adapters/cli/main.cc parses the flags);
// never asserts on time.

#include <cstddef>
#include <cstdint>
#include <string>

namespace ffe::bench {

struct ReplayBenchOptions {
  std::uint64_t events = 10'000'000;  // N: events to generate (at least; a command may carry several)
  std::uint32_t shards = 8;           // of a generated journal
  std::uint32_t skus = 10'000;        // K: SKUs the orders spread over
  std::uint64_t seed = 1;
  std::string data_dir;               // a journal to reuse, or where to generate (empty: a temp dir)
  bool keep = false;                  // keep a generated temp dir (its path is in the JSON)
  std::size_t threads = 2;            // shards replayed in parallel
  int rounds = 3;                     // timed replays (the best is reported; each is listed)
  bool verify = false;                // also compare every shard's digest with Journal::digest
  bool restart = false;               // also time `ffe serve` to /readyz on the data dir
  std::string ffe_binary;             // for restart (default: this executable)
  bool progress = true;               // a progress line on stderr, only if it is a terminal
};

// Runs the benchmark, prints its JSON object. Exit code: 0 ok, 1 a check failed (a digest
// differs, a commit failed, the engine never became ready), 2 unusable options or dir.
int run_replay_bench(const ReplayBenchOptions& options);

}  // namespace ffe::bench
