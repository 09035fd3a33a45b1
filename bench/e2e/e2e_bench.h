#pragma once
// The end-to-end benchmark (docs/e2e-bench.md), as `ffe bench e2e` runs it, all in one
// process: the embedded Kafka-protocol broker (or --brokers), a serve::Server (the engine of
// `ffe serve`) on a fresh data dir, the two participant simulators (`ffe sim payment` and
// `ffe sim shipping`: run_participant on threads), a load producer that places N PlaceOrder
// commands through librdkafka (batched, linger) at a target rate over K SKUs whose stock was
// received before timing starts, and a reader of <prefix>orders.outcomes that matches every
// outcome to its order and measures placement-to-outcome latency (the clock read just before
// the order's produce() call, and again when its outcome is consumed).
//
// In the same run: the broker's own ceiling (a raw produce+consume of small JSON messages
// through the same broker, one producer and one consumer), the messages one order costs
// (high watermarks of every contract topic before and after), and CPU seconds per component
// (engine, broker, participants, load producer, outcome reader) from /proc/self/task.
//
// Prints one JSON object on stdout. No CLI11 here (adapters/cli/main.cc parses the flags);
// never asserts on time.

#include <cstdint>
#include <optional>
#include <string>

namespace ffe::bench {

struct E2eBenchOptions {
  std::uint64_t orders = 20'000;      // N PlaceOrder commands in the timed phase
  double rate = 0;                    // orders per second; 0: open loop, as fast as possible
  std::uint32_t skus = 1'000;         // K: sku-1..sku-K; each order has 1-3 lines of 1-3 units
  std::uint32_t shards = 0;           // shards (= partitions of every topic); 0: 8, serve's default
  std::string brokers;                // empty: start the embedded broker in this process
  std::string topic_prefix;           // empty: "ff." on the embedded broker, a unique one with --brokers
  double seconds_max = 300;           // give up waiting for outcomes after this long (then ok=false)
  std::string data_dir;               // empty: a fresh dir under $TMPDIR, removed afterwards
  bool keep = false;                  // keep the fresh dir (its path is in the JSON)
  bool protobuf = false;              // --wire protobuf: orders, requests, replies, outcomes in binary
  bool json_full_path = false;        // decode JSON with protobuf's parser only (no fast path)
  std::uint64_t ceiling_messages = 200'000;  // the raw broker run; 0: skip it
  std::uint64_t warmup_orders = 200;  // placed and completed before timing (not counted)
  std::size_t scheduler_threads = 0;  // CAF scheduler threads of the engine; 0: its default (one per core)
  std::optional<std::size_t> worker_spins;  // runtime::Options::worker_spins; unset: its default
  std::optional<std::size_t> worker_naps;   // ServeOptions::worker_naps; unset: ffe serve's default
  std::optional<std::size_t> max_open_orders;  // the engine's admission bound; unset: ffe serve's default
  std::string analytics;              // ServeOptions::analytics: empty: ffe serve's (SQLite in the data dir); "off"
  bool thread_cpu = false;            // also print CPU seconds per thread on stderr
  bool progress = true;               // a progress line on stderr, only if it is a terminal
};

// Runs the benchmark and prints its JSON object. Returns the process exit code: 0 when every
// order got exactly one outcome and all were FULFILLED (nothing in the DLQ), 1 when not, 2
// when it could not be set up (the reason on stderr).
int run_e2e_bench(const E2eBenchOptions& options);

}  // namespace ffe::bench
