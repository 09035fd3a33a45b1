// `ffe bench reserve`: reservations per second, latency and memory of the real runtime
// (actors/runtime/runtime.h) on a real RocksDB journal, the figures bench/reserve.sh sets
// beside Redis+Lua and a PostgreSQL hot row at the same number of requests in flight.
//
// Reservation mode (the default):
//   1. open a Runtime on a fresh data dir (a temp dir unless --data-dir);
//   2. ReceiveStock S units on each of K SKUs ("sku-000000" ...), waiting for every ack;
//   3. N attempts, each a StockCommand RESERVE of 1 unit for a new order "o-<i>" (command id
//      "o-<i>:reserve:<sku>") on a SKU drawn uniformly among the K by a hash of (seed, i),
//      submitted by `senders` threads with Admission::kWait through a counting semaphore of C
//      permits: a permit is taken before submit and given back in the Ack callback, so
//      exactly C requests are in flight (the window a peer's clients x pipeline equalizes);
//   4. latency of each attempt from just before submit() to its Ack callback, in a log-linear
//      (HDR-style, 1/128 relative precision) histogram;
//   5. the check: every attempt answered RESERVED or INSUFFICIENT, and per SKU the units
//      reserved == min(attempts drawn for it, S) -- so the total is min(N, K*S) whenever no
//      SKU's draw straddles S (always for K=1) -- and the durable SKU state (Runtime::sku)
//      agrees: on_hand == S, reserved == what the acks said.
//
// Memory mode (--entities-touched M): M distinct SKUs touched once each (ReceiveStock qty 1),
// with max_live_entities per shard capped (--max-live), then RSS before and after, per entity.
//
// Never asserts on time; exit 1 only when the correctness check fails.

#include "bench/reserve/reserve_bench.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "events/json_text.h"
#include "storage/journal.h"

namespace ffe::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Requests in flight while stock is received before a reservation run (not measured).
constexpr std::size_t kSetupWindow = 1024;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A log-linear latency histogram (HDR-style): values below 256 exact, above that 128
// sub-buckets per power of two (relative error under 0.4%). Lock-free: Ack callbacks run on
// several runtime threads.
class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSub = 1u << kSubBits;  // 128
  static constexpr int kMaxMsb = 46;                     // ~70 s in ns
  static constexpr std::size_t kBuckets = 2 * kSub + (kMaxMsb - kSubBits) * kSub;

  void record(std::uint64_t value) {
    counts_[index(value)].fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
    std::uint64_t max = max_.load(std::memory_order_relaxed);
    while (value > max && !max_.compare_exchange_weak(max, value, std::memory_order_relaxed)) {
    }
  }
  std::uint64_t count() const { return total_.load(); }
  double mean() const { return total_ ? static_cast<double>(sum_.load()) / total_.load() : 0; }
  std::uint64_t max() const { return max_.load(); }
  // The value at rank ceil(p * count), as its bucket's midpoint (capped by the max seen).
  double percentile(double p) const {
    const std::uint64_t n = total_.load();
    if (n == 0) return 0;
    std::uint64_t rank = static_cast<std::uint64_t>(p * static_cast<double>(n) + 0.999999);
    rank = std::clamp<std::uint64_t>(rank, 1, n);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return std::min(midpoint(i), static_cast<double>(max_.load()));
    }
    return static_cast<double>(max_.load());
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    int msb = 63 - std::countl_zero(v);
    if (msb > kMaxMsb) {
      msb = kMaxMsb;
      v = (std::uint64_t{1} << (kMaxMsb + 1)) - 1;
    }
    const int shift = msb - kSubBits;  // >= 1
    return 2 * kSub + static_cast<std::size_t>(shift - 1) * kSub + static_cast<std::size_t>((v >> shift) - kSub);
  }
  static double midpoint(std::size_t i) {
    if (i < 2 * kSub) return static_cast<double>(i);
    const std::size_t shift = (i - 2 * kSub) / kSub + 1;
    const std::uint64_t top = (i - 2 * kSub) % kSub + kSub;
    return static_cast<double>(top << shift) + static_cast<double>(std::uint64_t{1} << shift) / 2;
  }

  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> total_{0}, sum_{0}, max_{0};
};

// VmRSS and VmHWM (peak) of this process, in bytes.
struct Rss {
  std::uint64_t now = 0, peak = 0;
};
Rss read_rss() {
  Rss rss;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kb) == 1) rss.now = kb * 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) rss.peak = kb * 1024;
  }
  return rss;
}

// Hands what the allocator keeps but the process no longer uses back to the OS: every
// jemalloc arena's purge when ffe runs on jemalloc (docs/architecture.md, "Memory
// allocator"), glibc's malloc_trim otherwise. Looked up at run time, so no jemalloc header.
void return_free_memory() {
  using Mallctl = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  if (auto* mallctl = reinterpret_cast<Mallctl>(::dlsym(RTLD_DEFAULT, "mallctl"))) {
    constexpr const char* kPurgeAllArenas = "arena.4096.purge";  // 4096: MALLCTL_ARENAS_ALL
    mallctl(kPurgeAllArenas, nullptr, nullptr, nullptr, 0);
    return;
  }
  ::malloc_trim(0);
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The SKU index attempt i reserves on: uniform over [0, k), reproducible from the seed.
std::uint64_t sku_of_attempt(std::uint64_t seed, std::uint64_t i, std::uint64_t k) {
  return splitmix64(seed * 0x100000001b3ULL ^ splitmix64(i)) % k;
}

std::string sku_name(const char* prefix, std::uint64_t i) {
  char name[40];
  std::snprintf(name, sizeof name, "%s%06" PRIu64, prefix, i);
  return name;
}


// Counts answers and hands the window's permits back; shared by the Ack callbacks.
struct Window {
  explicit Window(std::size_t c) : permits(static_cast<std::ptrdiff_t>(c)), size(c) {}
  std::counting_semaphore<> permits;
  std::size_t size;
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex first_error_mutex;
  std::string first_error;

  void error(const std::string& what) {
    if (errors.fetch_add(1) == 0) {
      std::lock_guard lock(first_error_mutex);
      first_error = what;
    }
  }
  // Waits until every permit is back: nothing of ours is in flight.
  void drain() {
    for (std::size_t i = 0; i < size; ++i) permits.acquire();
    permits.release(static_cast<std::ptrdiff_t>(size));
  }
};

// A progress line on stderr while `total` answers come in; only when stderr is a terminal.
class Progress {
 public:
  Progress(bool enabled, const char* what, std::uint64_t total, const std::atomic<std::uint64_t>& done)
      : enabled_(enabled && ::isatty(2)) {
    if (!enabled_) return;
    thread_ = std::thread([this, what, total, &done] {
      const auto start = Clock::now();
      while (!stop_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        const std::uint64_t n = done.load();
        const double s = seconds_between(start, Clock::now());
        std::fprintf(stderr, "\r\033[Kffe bench reserve: %s %" PRIu64 "/%" PRIu64 " (%.0f/s)", what, n, total,
                     s > 0 ? n / s : 0.0);
      }
      std::fprintf(stderr, "\r\033[K");
    });
  }
  ~Progress() {
    if (!enabled_) return;
    stop_ = true;
    thread_.join();
  }

 private:
  bool enabled_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Submits `count` inventory commands made by make(i) (i in [0, count)) from `senders`
// threads through the window; on_ack(i, ack) classifies each answer. Returns when every
// command is answered.
template <typename Make, typename OnAck>
void run_window(runtime::Runtime& rt, Window& window, std::uint64_t count, std::size_t senders, Make make,
                OnAck on_ack) {
  std::atomic<std::uint64_t> next{0};
  auto send = [&] {
    while (true) {
      window.permits.acquire();
      const std::uint64_t i = next.fetch_add(1);
      if (i >= count) {
        window.permits.release();
        return;
      }
      runtime::InventoryCommand command = make(i);
      runtime::Status status = rt.submit(
          std::move(command),
          [&window, &on_ack, i, submitted = Clock::now()](const runtime::Ack& ack) {
            on_ack(i, ack, Clock::now() - submitted);
            window.answered.fetch_add(1, std::memory_order_relaxed);
            window.permits.release();
          },
          runtime::Admission::kWait);
      if (!status) {
        window.error("submit: " + status.to_string());
        window.answered.fetch_add(1, std::memory_order_relaxed);
        window.permits.release();
      }
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < senders; ++t) threads.emplace_back(send);
  send();
  for (auto& thread : threads) thread.join();
  window.drain();
}

struct DataDir {
  std::string path;     // what the runtime opens
  std::string removes;  // what is removed at the end ("" keeps it)
};

// A fresh data dir: the given one (it must be empty or absent; never removed), or a temp dir.
bool make_data_dir(const ReserveBenchOptions& options, DataDir& out) {
  namespace fs = std::filesystem;
  if (!options.data_dir.empty()) {
    std::error_code ec;
    if (fs::exists(options.data_dir, ec) && !fs::is_empty(options.data_dir, ec)) {
      std::fprintf(stderr, "ffe bench reserve: --data-dir %s is not empty; the benchmark needs a fresh dir\n",
                   options.data_dir.c_str());
      return false;
    }
    out.path = options.data_dir;
    return true;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string base = std::string(tmp && *tmp ? tmp : "/tmp") + "/ffe-reserve-bench-XXXXXX";
  if (::mkdtemp(base.data()) == nullptr) {
    std::fprintf(stderr, "ffe bench reserve: cannot create a temp dir %s: %s\n", base.c_str(), std::strerror(errno));
    return false;
  }
  out.path = base + "/data";
  out.removes = options.keep ? "" : base;
  return true;
}

std::unique_ptr<runtime::Runtime> open_runtime(const ReserveBenchOptions& options, const std::string& dir) {
  runtime::Options ro;
  ro.data_dir = dir;
  if (options.shards > 0) ro.shards = options.shards;
  ro.scheduler_threads = options.scheduler_threads;
  if (options.max_live > 0) ro.max_live_entities = options.max_live;
  ro.commit_wait = std::chrono::microseconds(options.commit_wait_us);
  if (options.worker_spins) ro.worker_spins = *options.worker_spins;
  if (options.worker_naps) ro.worker_naps = *options.worker_naps;
  // The window, not the runtime's credit, bounds what is in flight.
  ro.max_in_flight = std::max({ro.max_in_flight, options.concurrency, kSetupWindow});
  auto opened = runtime::Runtime::open(std::move(ro));
  if (!opened) {
    std::fprintf(stderr, "ffe bench reserve: cannot open a runtime in %s: %s\n", dir.c_str(),
                 opened.status().to_string().c_str());
    return nullptr;
  }
  return std::move(*opened);
}

// ReceiveStock `stock` units on each of `skus` SKUs; false (with the reason) if one failed.
bool receive_stock(runtime::Runtime& rt, const ReserveBenchOptions& options, const char* label, const char* prefix,
                   std::uint64_t skus, std::int64_t stock, Window& window) {
  Progress progress(options.progress, label, skus, window.answered);
  run_window(
      rt, window, skus, options.senders,
      [&](std::uint64_t i) {
        v1::ReceiveStock receive;
        receive.set_sku(sku_name(prefix, i));
        receive.set_qty(stock);
        receive.set_receipt_id("bench-receipt");
        return runtime::InventoryCommand(std::move(receive));
      },
      [&](std::uint64_t i, const runtime::Ack& ack, Clock::duration) {
        if (!ack.status) {
          window.error("receive " + sku_name(prefix, i) + ": " + ack.status.to_string());
        } else if (ack.rejection) {
          window.error("receive " + sku_name(prefix, i) + " rejected: " + ack.rejection->reason);
        }
      });
  return window.errors.load() == 0;
}

struct JournalDelta {
  std::uint64_t batches = 0, commands = 0, noop_commands = 0, batch_bytes = 0;
};
JournalDelta journal_delta(const storage::JournalStats& a, const storage::JournalStats& b) {
  return {b.batches - a.batches, b.commands - a.commands, b.noop_commands - a.noop_commands,
          b.batch_bytes - a.batch_bytes};
}

void remove_data_dir(const DataDir& dir) {
  if (dir.removes.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir.removes, ec);
}

int run_memory(const ReserveBenchOptions& options, const DataDir& dir) {
  const runtime::Options defaults;
  const std::size_t max_live = options.max_live ? options.max_live : defaults.max_live_entities;
  auto rt = open_runtime(options, dir.path);
  if (!rt) return 2;
  const std::uint32_t shards = rt->shard_count();  // --shards 0 is the runtime's default
  const Rss before = read_rss();
  const storage::JournalStats journal_before = rt->journal().stats();
  Window window(options.concurrency);
  const auto start = Clock::now();
  const bool touched = receive_stock(*rt, options, "touching SKUs", "m-", options.entities_touched, 1, window);
  const double seconds = seconds_between(start, Clock::now());  // includes joining the progress line (< 0.25 s)
  const bool quiet = rt->wait_quiet(std::chrono::seconds(120));
  // An entity asked to stop while its commit was in flight stays live and is passivated on
  // the router's next tick (at most a second apart), so the cap is judged once that had time
  // to run: a few ticks, or as soon as the live count is within it.
  const std::uint64_t cap = static_cast<std::uint64_t>(max_live) * shards;
  runtime::Stats stats = rt->stats();
  for (const auto settle_until = Clock::now() + std::chrono::seconds(5);
       stats.live_entities > cap && Clock::now() < settle_until; stats = rt->stats()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const JournalDelta journal = journal_delta(journal_before, rt->journal().stats());
  const Rss after = read_rss();
  return_free_memory();
  const Rss trimmed = read_rss();

  std::string failure;
  if (!touched) failure = "touch failed: " + window.first_error;
  else if (!quiet) failure = "the runtime did not become quiet within 120 s";
  else if (stats.live_entities > cap) failure = "live entities above max_live_entities x shards";
  const bool ok = failure.empty();
  const double m = static_cast<double>(std::max<std::uint64_t>(options.entities_touched, 1));
  auto per_entity = [&](std::uint64_t rss) {
    return rss > before.now ? static_cast<double>(rss - before.now) / m : 0.0;
  };
  std::printf(
      "{\"benchmark\":\"reserve\",\"mode\":\"memory\",\"entities_touched\":%" PRIu64 ",\"shards\":%u,"
      "\"max_live_per_shard\":%zu,\"max_live_total\":%" PRIu64 ",\"concurrency\":%zu,\"seconds\":%.2f,"
      "\"touches_per_s\":%.0f,\"live_entities\":%" PRIu64 ",\"spawned\":%" PRIu64 ",\"passivated\":%" PRIu64
      ",\"journal_batches\":%" PRIu64 ",\"journal_commands\":%" PRIu64 ",\"rss_before_bytes\":%" PRIu64
      ",\"rss_bytes\":%" PRIu64 ",\"rss_peak_bytes\":%" PRIu64 ",\"rss_after_malloc_trim_bytes\":%" PRIu64
      ",\"rss_per_entity_bytes\":%.0f,\"rss_per_entity_after_trim_bytes\":%.0f,\"errors\":%" PRIu64
      ",%s\"ok\":%s,\"failure\":%s}\n",
      options.entities_touched, shards, max_live, cap, options.concurrency, seconds,
      options.entities_touched / std::max(seconds, 1e-9), stats.live_entities, stats.spawned, stats.passivated,
      journal.batches, journal.commands, before.now, after.now, after.peak, trimmed.now, per_entity(after.now),
      per_entity(trimmed.now), window.errors.load(),
      dir.removes.empty() ? ("\"data_dir\":" + events::json::quoted(dir.path) + ",").c_str() : "", ok ? "true" : "false",
      ok ? "null" : events::json::quoted(failure).c_str());
  std::fflush(stdout);
  rt.reset();
  remove_data_dir(dir);
  return ok ? 0 : 1;
}

int run_reservations(const ReserveBenchOptions& options, const DataDir& dir) {
  const std::uint64_t k = options.skus;
  const std::uint64_t n = options.attempts;
  const std::int64_t s = options.stock;
  // What each SKU is asked for, known in advance: the check's expectation.
  std::vector<std::uint32_t> demand(k, 0);
  for (std::uint64_t i = 0; i < n; ++i) ++demand[sku_of_attempt(options.seed, i, k)];
  std::uint64_t expected_reserved = 0;
  for (std::uint32_t d : demand) expected_reserved += std::min<std::uint64_t>(d, static_cast<std::uint64_t>(s));
  const std::uint64_t min_attempts_stock =
      std::min<std::uint64_t>(n, k * static_cast<std::uint64_t>(std::max<std::int64_t>(s, 0)));
  std::vector<std::string> names(k);
  for (std::uint64_t i = 0; i < k; ++i) names[i] = sku_name("sku-", i);

  auto rt = open_runtime(options, dir.path);
  if (!rt) return 2;
  const std::uint32_t shards = rt->shard_count();  // --shards 0 is the runtime's default

  const auto setup_start = Clock::now();
  if (s > 0) {
    // Setup is not measured: a wider window than the run's fills the SKUs sooner.
    Window window(kSetupWindow);
    if (!receive_stock(*rt, options, "receiving stock", "sku-", k, s, window)) {
      std::fprintf(stderr, "ffe bench reserve: receiving stock failed: %s\n", window.first_error.c_str());
      rt.reset();
      remove_data_dir(dir);
      return 2;
    }
  }
  const double setup_seconds = seconds_between(setup_start, Clock::now());

  Histogram latency;  // ns
  std::vector<std::atomic<std::uint32_t>> reserved_by_sku(k);
  std::atomic<std::uint64_t> reserved{0}, rejected{0};
  Window window(options.concurrency);
  const storage::JournalStats journal_before = rt->journal().stats();
  const runtime::Stats runtime_before = rt->stats();
  const auto start = Clock::now();
  Clock::time_point end;
  {
    Progress progress(options.progress, "reservations", n, window.answered);
    run_window(
        *rt, window, n, options.senders,
        [&](std::uint64_t i) {
          const std::string& sku = names[sku_of_attempt(options.seed, i, k)];
          std::string order = "o-" + std::to_string(i);
          v1::StockCommand reserve;
          reserve.set_command_id(order + ":reserve:" + sku);
          reserve.set_order_id(std::move(order));
          reserve.set_sku(sku);
          reserve.set_qty(1);
          reserve.set_kind(v1::StockCommand::RESERVE);
          return runtime::InventoryCommand(std::move(reserve));
        },
        [&](std::uint64_t i, const runtime::Ack& ack, Clock::duration took) {
          latency.record(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()));
          if (!ack.status) {
            window.error("attempt " + std::to_string(i) + ": " + ack.status.to_string());
          } else if (!ack.stock_reply) {
            window.error("attempt " + std::to_string(i) + ": no stock reply" +
                         (ack.rejection ? " (rejected: " + ack.rejection->reason + ")" : std::string()));
          } else if (ack.stock_reply->status() == v1::StockReply::RESERVED) {
            reserved.fetch_add(1, std::memory_order_relaxed);
            reserved_by_sku[sku_of_attempt(options.seed, i, k)].fetch_add(1, std::memory_order_relaxed);
          } else if (ack.stock_reply->status() == v1::StockReply::INSUFFICIENT) {
            rejected.fetch_add(1, std::memory_order_relaxed);
          } else {
            window.error("attempt " + std::to_string(i) + ": answered " +
                         v1::StockReply::Status_Name(ack.stock_reply->status()) + " " + ack.stock_reply->reason());
          }
        });
    end = Clock::now();  // before the progress line's thread is joined
  }
  const double seconds = seconds_between(start, end);
  const JournalDelta journal = journal_delta(journal_before, rt->journal().stats());
  const runtime::Stats stats = rt->stats();
  const Rss rss = read_rss();

  // The check: every attempt answered, each SKU reserved exactly min(its demand, S), and the
  // durable state agrees (all SKUs up to 10,000; beyond that an even sample of 10,000).
  std::string failure;
  const std::uint64_t errors = window.errors.load();
  if (errors > 0) failure = std::to_string(errors) + " errors; first: " + window.first_error;
  else if (reserved + rejected != n) failure = "reserved + rejected != attempts";
  else if (reserved != expected_reserved) failure = "reserved != expected_reserved";
  const std::uint64_t step = std::max<std::uint64_t>(1, k / 10'000);
  std::uint64_t checked = 0;
  for (std::uint64_t i = 0; i < k && failure.empty(); i += step, ++checked) {
    const std::uint64_t got = reserved_by_sku[i].load();
    const std::uint64_t want = std::min<std::uint64_t>(demand[i], static_cast<std::uint64_t>(std::max<std::int64_t>(s, 0)));
    if (got != want) {
      failure = names[i] + ": " + std::to_string(got) + " reserved, expected " + std::to_string(want);
      break;
    }
    auto state = rt->sku(names[i]);
    if (!state) {
      failure = names[i] + ": reading its durable state: " + state.status().to_string();
    } else if (!state->has_value()) {
      if (s > 0 || got > 0) failure = names[i] + ": no durable state";
    } else if ((*state)->on_hand != s || (*state)->reserved != static_cast<std::int64_t>(got)) {
      failure = names[i] + ": durable on_hand " + std::to_string((*state)->on_hand) + " reserved " +
                std::to_string((*state)->reserved) + ", the acks say on_hand " + std::to_string(s) + " reserved " +
                std::to_string(got);
    }
  }
  const bool ok = failure.empty();

  const double commands_per_batch = journal.batches ? static_cast<double>(journal.commands) / journal.batches : 0;
  const double bytes_per_reservation = journal.commands ? static_cast<double>(journal.batch_bytes) / journal.commands : 0;
  std::printf(
      "{\"benchmark\":\"reserve\",\"mode\":\"reserve\",\"skus\":%" PRIu64 ",\"stock\":%" PRId64
      ",\"attempts\":%" PRIu64 ",\"concurrency\":%zu,\"senders\":%zu,\"shards\":%u,\"reserved\":%" PRIu64
      ",\"rejected\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"expected_reserved\":%" PRIu64
      ",\"min_attempts_stock\":%" PRIu64 ",\"ops_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f"
      ",\"max_us\":%.1f,\"mean_us\":%.1f,\"seconds\":%.3f,\"setup_seconds\":%.3f,\"journal_batches\":%" PRIu64
      ",\"journal_commands\":%" PRIu64 ",\"journal_noop_commands\":%" PRIu64 ",\"commands_per_batch\":%.1f"
      ",\"journal_batch_bytes\":%" PRIu64 ",\"bytes_per_reservation\":%.1f,\"spawned\":%" PRIu64
      ",\"passivated\":%" PRIu64 ",\"submit_waits\":%" PRIu64 ",\"rss_bytes\":%" PRIu64 ",\"rss_peak_bytes\":%" PRIu64
      ",\"durable_checked_skus\":%" PRIu64 ",%s\"ok\":%s,\"failure\":%s}\n",
      k, s, n, options.concurrency, options.senders, shards, reserved.load(), rejected.load(), errors,
      expected_reserved, min_attempts_stock, n / std::max(seconds, 1e-9), latency.percentile(0.50) / 1e3,
      latency.percentile(0.99) / 1e3, latency.percentile(0.999) / 1e3, static_cast<double>(latency.max()) / 1e3,
      latency.mean() / 1e3, seconds, setup_seconds, journal.batches, journal.commands, journal.noop_commands,
      commands_per_batch, journal.batch_bytes, bytes_per_reservation, stats.spawned - runtime_before.spawned,
      stats.passivated - runtime_before.passivated, stats.submit_waits - runtime_before.submit_waits, rss.now,
      rss.peak, checked, dir.removes.empty() ? ("\"data_dir\":" + events::json::quoted(dir.path) + ",").c_str() : "",
      ok ? "true" : "false", ok ? "null" : events::json::quoted(failure).c_str());
  std::fflush(stdout);
  if (!ok) std::fprintf(stderr, "ffe bench reserve: the check failed: %s\n", failure.c_str());
  rt.reset();
  remove_data_dir(dir);
  return ok ? 0 : 1;
}

}  // namespace

int run_reserve_bench(const ReserveBenchOptions& options) {
  if (options.concurrency == 0 || options.senders == 0 || (options.entities_touched == 0 && options.skus == 0) ||
      options.stock < 0) {
    std::fprintf(stderr, "ffe bench reserve: --concurrency, --senders and --skus must be >= 1, --stock >= 0\n");
    return 2;
  }
  DataDir dir;
  if (!make_data_dir(options, dir)) return 2;
  return options.entities_touched > 0 ? run_memory(options, dir) : run_reservations(options, dir);
}

}  // namespace ffe::bench
