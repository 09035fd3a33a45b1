// The `ffe` command line: one binary, one CLI11 subcommand per job (ARCHITECTURE.md,
// "Command line"). Only subcommands that work are listed; later issues add serve, sim,
// produce, get, confirm, replay, watch, compact, drift and the other benchmarks.
//
// CLI11 is expensive to compile (5-10 s per translation unit), so it lives in this one file.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/common.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "adapters/http/client.h"
#include "adapters/log/log.h"         // --log-level, --log-format
#include "bench/journal/journal_bench.h"
#include "bench/reserve/reserve_bench.h"
#include "bench/e2e/e2e_bench.h"      // ffe bench e2e
#include "bench/cdc/cdc_bench.h"      // ffe bench cdc
#include "bench/replay/replay_bench.h"  // ffe bench replay
#include "adapters/sim/producer.h"    // ffe produce
#include "adapters/sim/sim_runner.h"  // ffe sim
#include "adapters/serve/serve.h"     // ffe serve, ffe broker
#include "adapters/cdc/drift.h"       // ffe drift
#include "adapters/replay/replay.h"   // ffe replay
#include "events/limits.h"
#include "sagas/simulation.h"

namespace {

constexpr const char* kContractsVersion = "v1";

// What `ffe version` and `ffe --version` print (one line, no newline).
std::string version_line() {
  return std::string("ffe ") + FFE_VERSION + " (contracts " + kContractsVersion + ", protobuf " +
         google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION) + ")";
}

int run_version() {
  std::printf("%s\n", version_line().c_str());
  return 0;
}

struct SimulateArgs {
  std::uint64_t seed = 1;
  int seeds = 1;
  std::int64_t steps = 20'000;
  int skus = 5;
  std::int64_t stock = 20;
};

// Runs the deterministic simulation of the pure core for `seeds` consecutive seeds from
// `seed`, one JSON line per seed. Exit 1 at the first seed whose run breaks an invariant.
int run_simulate(const SimulateArgs& args) {
  for (int i = 0; i < args.seeds; ++i) {
    ffe::sim::Options options;
    options.seed = args.seed + static_cast<std::uint64_t>(i);
    options.steps = args.steps;
    options.skus = args.skus;
    options.initial_stock = args.stock;
    const ffe::sim::Report report = ffe::sim::run(options);
    std::printf("%s\n", ffe::sim::to_json(report).c_str());
    std::fflush(stdout);
    if (report.failure) {
      std::fprintf(stderr, "ffe simulate: invariant broken: %s\n", report.failure->c_str());
      std::fprintf(stderr, "reproduce: ffe simulate --seed %llu --steps %lld --skus %d --stock %lld\n",
                   static_cast<unsigned long long>(options.seed),
                   static_cast<long long>(options.steps), options.skus,
                   static_cast<long long>(options.initial_stock));
      return 1;
    }
  }
  return 0;
}

struct BenchJournalArgs {
  double seconds = 2;
  int rounds = 3;
  std::uint64_t restart_events = 1'000'000;
  std::string batches = "1,16,256,4096";
  std::string ceiling_script = std::string(FFE_PEERS_DIR) + "/rocksdb_ceiling.sh";
  bool no_ceiling = false;
  std::string dir;
};

// Runs the journal benchmark beside the raw RocksDB ceiling (the peer script), in the same
// run, so the printed ratios compare like with like on this disk.
int run_bench_journal(const BenchJournalArgs& args) {
  std::vector<std::string> flags = {"ffe bench journal",
                                    "--seconds", std::to_string(args.seconds),
                                    "--rounds", std::to_string(args.rounds),
                                    "--restart-events", std::to_string(args.restart_events),
                                    "--batches", args.batches};
  if (!args.dir.empty()) flags.insert(flags.end(), {"--dir", args.dir});
  if (!args.no_ceiling) {
    if (!std::filesystem::exists(args.ceiling_script)) {
      std::fprintf(stderr,
                   "ffe bench journal: the ceiling script %s is missing; pass --ceiling-script "
                   "PATH, or --no-ceiling to measure the journal alone\n",
                   args.ceiling_script.c_str());
      return 2;
    }
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", args.seconds);
    flags.insert(flags.end(), {"--ceiling-command", "bash '" + args.ceiling_script + "' " + seconds});
  }
  std::vector<char*> argv;
  for (std::string& flag : flags) argv.push_back(flag.data());
  argv.push_back(nullptr);
  return ffe::bench::journal_bench_main(static_cast<int>(flags.size()), argv.data());
}

struct GetArgs {
  std::string kind;  // "order" | "sku"
  std::string id;
  std::uint64_t revision = 0;
  bool has_revision = false;
  std::string http = std::string(ffe::http::kDefaultAddress);
};

// "90s", "30m", "12h", "7d" as milliseconds; nullopt for anything else (or 0).
std::optional<std::int64_t> parse_duration_ms(const std::string& text) {
  if (text.size() < 2) return std::nullopt;
  std::int64_t unit = 0;
  std::size_t suffix = 1;
  switch (text.back()) {
    case 's': unit = 1'000; break;
    case 'm': unit = 60'000; break;
    case 'h': unit = 3'600'000; break;
    case 'd': unit = 86'400'000; break;
    default: return std::nullopt;
  }
  if (text.size() > 2 && text.ends_with("ms")) {
    unit = 1;
    suffix = 2;
  }
  std::int64_t value = 0;
  for (std::size_t i = 0; i + suffix < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9' || value > 1'000'000'000) return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  if (value == 0) return std::nullopt;
  return value * unit;
}

// `ffe get`: one entity from the admin HTTP API; exit 0 found, 1 not found, 2 otherwise.
int run_get(const GetArgs& args) {
  const auto outcome = ffe::http::get_entity(
      args.kind == "order" ? ffe::http::EntityKind::kOrder : ffe::http::EntityKind::kSku, args.id,
      args.has_revision ? std::optional<std::uint64_t>(args.revision) : std::nullopt, args.http);
  std::fputs(outcome.out.c_str(), stdout);
  std::fputs(outcome.err.c_str(), stderr);
  return outcome.exit_code;
}

// Every integer flag takes a plain decimal number. CLI11 2.1 reads integers with strtoull /
// strtoll in base 0: "-1" given to an unsigned flag wrapped to 2^64-1, "010" was octal 8,
// "0x10" hex and a number past the type's range was clamped to its maximum. This runs before
// the conversion (and before any range check), refuses the rest with a clear message and
// drops leading zeros so that "010" is ten.
void decimal_integers_only(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    // The type's name, then any validator's description after a colon ("UINT:UINT in [0 - 64]").
    const std::string type = option->get_type_name();
    const std::string base = type.substr(0, type.find(':'));
    if (base != "UINT" && base != "INT") continue;
    const bool is_signed = base == "INT";
    option->transform(CLI::Validator(
        [is_signed](std::string& text) -> std::string {
          std::string_view digits(text);
          const bool negative = is_signed && digits.starts_with('-');
          if (negative) digits.remove_prefix(1);
          const bool decimal = !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
          if (!decimal) {
            return "\"" + text + "\" is not " + (is_signed ? "an integer" : "a non-negative integer") +
                   " (decimal digits only)";
          }
          while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
          const std::string number = (negative ? "-" : "") + std::string(digits);
          const auto fits = [&number](auto value) {
            return std::from_chars(number.data(), number.data() + number.size(), value).ec == std::errc();
          };
          if (!(is_signed ? fits(std::int64_t{0}) : fits(std::uint64_t{0}))) return "\"" + text + "\" is out of range";
          text = number;
          return {};
        },
        ""));
  }
  for (CLI::App* sub : app.get_subcommands({})) decimal_integers_only(*sub);
}

// A usage error's line on stderr, in the log format asked for: before the flags are parsed
// that is read from argv (`--log-format json` or `--log-format=json`, anywhere), so a JSON
// log stays all JSON even when the flags themselves are wrong. Returns 2.
int usage_error(int argc, char** argv, const std::string& message) {
  bool json = ffe::log::json_format();
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--log-format=json" || (word == "--log-format" && i + 1 < argc && std::string_view(argv[i + 1]) == "json")) {
      json = true;
    }
  }
  if (json && !ffe::log::json_format()) ffe::log::setup(ffe::log::Level::kInfo, true);
  std::string text = message;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  ffe::log::fatal(text);
  return 2;
}

// The benches' --worker-spins and --worker-naps help, with the runtime's defaults
// (runtime::Options) rather than copies of them.
std::string worker_spins_help(const char* whose) {
  return std::string("Polls of an idle CAF worker") + whose + " before it naps (default " +
         std::to_string(ffe::runtime::Options{}.worker_spins) + "; CAF's own 100)";
}

std::string worker_naps_help(const char* whose_default, std::size_t naps) {
  return std::string("Then polls 50 us apart before it sleeps until work comes (default: ") + whose_default + ", " +
         std::to_string(naps) + "; CAF's own 500)";
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries what scripts read (status lines, JSON results).
  spdlog::set_default_logger(spdlog::stderr_color_mt("ffe"));
  CLI::App app{"ffe: an order-fulfillment engine. Kafka producers submit orders; ffe reserves "
               "stock, drives payment and shipment through a saga, compensates on failure or "
               "timeout, and confirms each order's terminal state at a revision."};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_line());
  // Global logging flags (adapters/log/log.h). fallthrough() lets them follow the subcommand
  // too (`ffe serve --log-format json`); it must be set before the subcommands are added.
  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--log-level", log_level, "Log level on stderr: trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "Log lines as text or as JSON objects {ts,level,logger,msg}")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.fallthrough();

  auto* version = app.add_subcommand("version", "Print ffe's version and its contracts' version");

  SimulateArgs sim;
  auto* simulate = app.add_subcommand(
      "simulate",
      "Run the seeded, deterministic simulation of the domain core: many orders racing for few "
      "SKUs through the real deciders and saga, with duplicate and late messages, silent and "
      "failing participants, timeouts, cancels and crashes; checks the invariants after every "
      "step and prints one JSON report per seed (exit 1 if one breaks)");
  simulate->add_option("--seed", sim.seed, "First seed")->capture_default_str();
  simulate->add_option("--seeds", sim.seeds, "How many consecutive seeds to run")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  simulate->add_option("--steps", sim.steps, "Load steps per seed (the run then drains)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}))
      ->capture_default_str();
  simulate->add_option("--skus", sim.skus, "SKUs the orders race for")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  simulate->add_option("--stock", sim.stock, "Initial units per SKU")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000'000}))
      ->capture_default_str();

  auto* bench = app.add_subcommand("bench", "Benchmarks a user can run; each prints one JSON object");
  bench->require_subcommand(1);
  BenchJournalArgs bench_journal;
  auto* journal = bench->add_subcommand(
      "journal",
      "Durable commits/s and p50/p99 commit latency at 1, 16, 256 and 4096 commands per synced "
      "batch, beside the raw RocksDB synced-WriteBatch ceiling on the same disk in the same run "
      "(../shared/peers/rocksdb_ceiling.sh), with the ratio; restart time with 1M events; the "
      "cost of reads at old revisions. Writes under $TMPDIR (default /tmp)");
  journal->add_option("--seconds", bench_journal.seconds, "Seconds per case")
      ->check(CLI::Range(0.1, 600.0))
      ->capture_default_str();
  journal->add_option("--rounds", bench_journal.rounds,
                      "Rounds of (journal, ceiling, journal); medians are reported")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  journal->add_option("--restart-events", bench_journal.restart_events,
                      "Events in the journal whose restart is timed (0: skip)")
      ->capture_default_str();
  journal->add_option("--batches", bench_journal.batches, "Commands per synced batch, comma-separated")
      ->capture_default_str();
  journal->add_option("--ceiling-script", bench_journal.ceiling_script,
                      "The peer script measuring the raw RocksDB ceiling")
      ->capture_default_str();
  journal->add_flag("--no-ceiling", bench_journal.no_ceiling, "Measure the journal alone");
  journal->add_option("--dir", bench_journal.dir, "Where to write (default $TMPDIR/ffe-journal-bench-PID)");

  ffe::bench::ReserveBenchOptions bench_reserve;
  bool reserve_no_progress = false;
  auto* reserve = bench->add_subcommand(
      "reserve",
      "Reservations/s and p50/p99/p99.9 latency of the runtime on a fresh data dir: stock received "
      "on K SKUs, then N reservations of 1 unit (a new order each, the SKU drawn uniformly; K=1 is "
      "the hot SKU) with exactly C requests in flight; journal batching, bytes and RSS; checks that "
      "no SKU is oversold and every attempt is answered (exit 1 if not). --entities-touched M "
      "measures memory instead. bench/reserve.sh runs it beside Redis+Lua and PostgreSQL");
  reserve->add_option("--skus", bench_reserve.skus, "K: SKUs the attempts spread over uniformly (1: one hot SKU)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}))
      ->capture_default_str();
  reserve->add_option("--stock", bench_reserve.stock, "S: units received on each SKU before the run")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000'000'000}))
      ->capture_default_str();
  reserve->add_option("--attempts", bench_reserve.attempts, "N: reservation attempts of 1 unit")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{4'000'000'000}))
      ->capture_default_str();
  reserve->add_option("--concurrency", bench_reserve.concurrency,
                      "C: requests in flight (the window; compare with a peer's clients x pipeline)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  reserve->add_option("--senders", bench_reserve.senders, "Threads submitting into the window")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}))
      ->capture_default_str();
  reserve->add_option("--seed", bench_reserve.seed, "Seed of the SKU drawn per attempt")->capture_default_str();
  reserve->add_option("--data-dir", bench_reserve.data_dir,
                      "An empty or new data dir to use and keep (default: a temp dir under $TMPDIR, removed)");
  reserve->add_flag("--keep", bench_reserve.keep, "Keep the temp data dir (its path is in the JSON)");
  reserve->add_option("--shards", bench_reserve.shards, "Shards of the new data dir (0: the runtime's default)")
      ->check(CLI::Range(std::uint32_t{0}, std::uint32_t{4096}))
      ->capture_default_str();
  reserve->add_option("--threads", bench_reserve.scheduler_threads, "CAF scheduler threads (0: one per core)")
      ->capture_default_str();
  reserve->add_option("--worker-spins", bench_reserve.worker_spins, worker_spins_help(""));
  reserve->add_option("--worker-naps", bench_reserve.worker_naps,
                      worker_naps_help("the runtime's", ffe::runtime::Options{}.worker_naps));
  reserve->add_option("--max-live", bench_reserve.max_live,
                      "max_live_entities per shard (0: the runtime's default)")
      ->capture_default_str();
  reserve->add_option("--commit-wait-us", bench_reserve.commit_wait_us,
                      "Microseconds the journal's writer lingers after the first queued command for a "
                      "fuller synced batch (0: batch what queued during the previous sync)")
      ->check(CLI::Range(0, 100'000))
      ->capture_default_str();
  reserve->add_option("--entities-touched", bench_reserve.entities_touched,
                      "M > 0: the memory mode: touch M distinct SKUs once each (ReceiveStock qty 1) "
                      "and report RSS per entity, instead of reservations")
      ->capture_default_str();
  reserve->add_flag("--no-progress", reserve_no_progress, "No progress line on stderr (only shown on a terminal)");

  // ffe bench e2e: orders through Kafka, end to end, in one process (bench/e2e/, docs/e2e-bench.md).
  ffe::bench::E2eBenchOptions bench_e2e;
  std::string e2e_wire = "json";
  bool e2e_no_progress = false;
  auto* e2e = bench->add_subcommand(
      "e2e",
      "Orders/s and p50/p99 placement-to-outcome latency end to end, in one process: the embedded "
      "broker (or --brokers), the engine of `ffe serve` on a fresh data dir, `ffe sim payment` and "
      "`ffe sim shipping` on threads, a load producer placing N orders at --rate over K SKUs "
      "(stock received first) and a reader of ff.orders.outcomes; beside the broker's own "
      "produce+consume ceiling measured in the same run, messages per order per topic, the ratio, "
      "and CPU seconds per component. Exit 1 unless every order got exactly one outcome, FULFILLED");
  e2e->add_option("--orders", bench_e2e.orders, "N: orders placed in the timed phase")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}))
      ->capture_default_str();
  e2e->add_option("--rate", bench_e2e.rate, "Orders per second (0: open loop, as fast as possible)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  e2e->add_option("--skus", bench_e2e.skus, "K: SKUs sku-1..sku-K the order lines spread over")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{10'000'000}))
      ->capture_default_str();
  e2e->add_option("--shards", bench_e2e.shards, "Shards of the engine = partitions of every topic (0: 8)")
      ->check(CLI::Range(std::uint32_t{0}, std::uint32_t{4096}))
      ->capture_default_str();
  e2e->add_option("--brokers", bench_e2e.brokers,
                  "Kafka bootstrap servers (default: the embedded broker, in this process)");
  e2e->add_option("--topic-prefix", bench_e2e.topic_prefix,
                  "Prefix of every topic (default ff. on the embedded broker, a fresh one with --brokers)");
  e2e->add_option("--seconds-max", bench_e2e.seconds_max, "Give up waiting for outcomes after this long")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  e2e->add_option("--data-dir", bench_e2e.data_dir,
                  "An empty or new data dir to use and keep (default: a temp dir under $TMPDIR, removed)");
  e2e->add_flag("--keep", bench_e2e.keep, "Keep the temp data dir (its path is in the JSON)");
  e2e->add_option("--wire", e2e_wire, "Every message as canonical JSON or binary Protobuf")
      ->check(CLI::IsMember({"json", "protobuf"}))
      ->capture_default_str();
  e2e->add_flag("--json-full-path", bench_e2e.json_full_path,
                "Decode JSON with the shape check and protobuf's parser only, without the fast path "
                "(docs/contracts.md), to measure what the fast path saves");
  e2e->add_option("--ceiling-messages", bench_e2e.ceiling_messages,
                  "Messages of the raw broker produce+consume run (0: skip it)")
      ->capture_default_str();
  e2e->add_option("--warmup", bench_e2e.warmup_orders, "Orders completed before timing starts (not counted)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000}))
      ->capture_default_str();
  e2e->add_option("--threads", bench_e2e.scheduler_threads, "CAF scheduler threads of the engine (0: one per core)")
      ->capture_default_str();
  e2e->add_option("--worker-spins", bench_e2e.worker_spins, worker_spins_help(" of the engine"));
  e2e->add_option("--worker-naps", bench_e2e.worker_naps,
                  worker_naps_help("ffe serve's", ffe::serve::ServeOptions{}.worker_naps));
  e2e->add_option("--max-open-orders", bench_e2e.max_open_orders,
                  "The engine's admission bound on open orders (default: ffe serve's, " +
                      std::to_string(ffe::serve::ServeOptions{}.max_open_orders) + "; 0: unbounded)");
  e2e->add_option("--analytics", bench_e2e.analytics,
                  "The engine's CDC target as in ffe serve: sqlite:PATH, postgresql://..., or off (default: "
                  "ffe serve's, SQLite in the data dir)");
  e2e->add_flag("--thread-cpu", bench_e2e.thread_cpu, "Also print CPU seconds per thread on stderr");
  e2e->add_flag("--no-progress", e2e_no_progress, "No progress line on stderr (only shown on a terminal)");

  // ffe bench cdc: CDC lag and the sinks' apply rate (bench/cdc/, docs/cdc.md).
  ffe::bench::CdcBenchOptions bench_cdc;
  bench_cdc.pg_script = FFE_PG_TEMP_SCRIPT_PATH;
  auto* cdc_bench = bench->add_subcommand(
      "cdc",
      "CDC lag and apply rate, in one process without Kafka: the engine on a fresh data dir with "
      "in-process payment and shipping participants, orders at a steady --rate for --seconds with "
      "CDC into the analytics tables, measuring per revision the time from its commit to its "
      "apply (lag p50/p99/max ms); then a --backlog of orders committed with CDC stopped and the "
      "rows/s CDC applies catching up; then drift. Exit 1 unless drift is 0 and every order was "
      "FULFILLED");
  cdc_bench->add_option("--rate", bench_cdc.rate, "Orders per second in the steady phase")
      ->check(CLI::Range(1.0, 1e7))
      ->capture_default_str();
  cdc_bench->add_option("--seconds", bench_cdc.seconds, "Length of the steady phase")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  cdc_bench->add_option("--backlog", bench_cdc.backlog, "Orders of the catch-up phase (0: skip it)")
      ->capture_default_str();
  cdc_bench->add_option("--shards", bench_cdc.shards, "Shards of the engine")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{4096}))
      ->capture_default_str();
  cdc_bench->add_option("--skus", bench_cdc.skus, "SKUs the orders spread over")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{10'000'000}))
      ->capture_default_str();
  cdc_bench->add_option("--analytics", bench_cdc.analytics,
                        "sqlite:PATH or postgresql://... (default: sqlite:<data-dir>/analytics.db)");
  cdc_bench->add_flag("--postgres", bench_cdc.postgres,
                      "Start a throw-away PostgreSQL 15 (scripts/pg_temp.sh) and use it");
  cdc_bench->add_option("--batch", bench_cdc.batch_revisions_max, "CDC: revisions per transaction at most")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  cdc_bench->add_option("--threads", bench_cdc.scheduler_threads, "CAF scheduler threads (0: one per core)")
      ->capture_default_str();
  cdc_bench->add_option("--data-dir", bench_cdc.data_dir, "An empty or new data dir to use and keep");
  cdc_bench->add_flag("--keep", bench_cdc.keep, "Keep the temp data dir (its path is in the JSON)");

  // ffe bench replay: replay events/s and restart time on a big journal (bench/replay/, docs/replay.md).
  ffe::bench::ReplayBenchOptions bench_replay;
  bool replay_bench_no_progress = false;
  auto* replay_bench = bench->add_subcommand(
      "replay",
      "Replay events/s on a journal of N events (default 10M) that the real deciders and saga wrote "
      "(stock received/reserved/released/committed on K SKUs, orders fulfilled and cancelled), per shard "
      "and in total; --restart also times `ffe serve` on that data dir from exec to the first 200 of "
      "/readyz. Generates the journal (minutes at 10M) unless --data-dir names one to reuse; keep it with "
      "--keep. Exit 1 if a check fails (--verify: replay digests equal Journal::digest)");
  replay_bench->add_option("--events", bench_replay.events,
                           "N: events to generate, at least (every SKU's first receipt is made whatever N is)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000'000}))
      ->capture_default_str();
  replay_bench->add_option("--shards", bench_replay.shards, "Shards of a generated journal")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{4096}))
      ->capture_default_str();
  replay_bench->add_option("--skus", bench_replay.skus, "K: SKUs the generated orders spread over")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{100'000'000}))
      ->capture_default_str();
  replay_bench->add_option("--seed", bench_replay.seed, "Seed of the generated workload")->capture_default_str();
  replay_bench->add_option("--data-dir", bench_replay.data_dir,
                           "A data dir to reuse as it is, or a new/empty one to generate into and keep "
                           "(default: a temp dir under $TMPDIR, removed)");
  replay_bench->add_flag("--keep", bench_replay.keep, "Keep the temp data dir (its path is in the JSON)");
  replay_bench->add_option("--threads", bench_replay.threads, "Shards replayed in parallel")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}))
      ->capture_default_str();
  replay_bench->add_option("--rounds", bench_replay.rounds, "Timed replays; the best is reported, each listed")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  replay_bench->add_flag("--verify", bench_replay.verify,
                         "Also compare each shard's replay digest with Journal::digest (from snapshots)");
  replay_bench->add_flag("--restart", bench_replay.restart,
                         "Also time `ffe serve --analytics off` on the data dir from exec to /readyz 200");
  replay_bench->add_flag("--no-progress", replay_bench_no_progress, "No progress line on stderr (only shown on a terminal)");

  // ffe sim payment|shipping: a participant simulator (adapters/sim/, docs/participants.md).
  ffe::participants::SimOptions participant;
  std::string participant_kind;
  std::vector<std::string> participant_kafka;
  auto* sim_cmd = app.add_subcommand(
      "sim",
      "Run a participant simulator: answers ff.payments.requests (payment) or "
      "ff.shipments.requests (shipping) by the contract's conventions (tok_decline: DECLINED, "
      "tok_silent: never answered, country XX: shipment FAILED), dedupes by commandId; "
      "SIGINT/SIGTERM stop it (exit 0). docs/participants.md");
  sim_cmd->add_option("KIND", participant_kind, "payment or shipping")
      ->required()
      ->check(CLI::IsMember({"payment", "shipping"}));
  sim_cmd->add_option("--brokers", participant.brokers, "Kafka bootstrap servers (host:port,...)")
      ->required();
  sim_cmd->add_option("--topic-prefix", participant.topic_prefix, "Prefix of every topic name")
      ->capture_default_str();
  sim_cmd->add_option("--group", participant.group_id,
                      "Consumer group (default ffe-sim-payment / ffe-sim-shipping)");
  sim_cmd->add_option("--dedupe-capacity", participant.dedupe_capacity,
                      "Command ids remembered for dedupe (LRU, about 280 bytes each)")
      ->check(CLI::Range(std::size_t{4}, std::size_t{100'000'000}))
      ->capture_default_str();
  sim_cmd->add_option("--stats-interval", participant.stats_interval_s,
                      "Seconds between counter lines on stderr (0: only at exit)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  sim_cmd->add_flag("--quiet", participant.quiet, "No counter lines (errors are still logged)");
  sim_cmd->add_option("-X,--kafka", participant_kafka, "A librdkafka setting key=value (repeatable)")
      ->allow_extra_args(false);

  // ffe produce orders|stock: the load and demo producer (adapters/sim/producer.h).
  ffe::participants::ProduceOptions produce;
  std::string produce_what;
  std::uint64_t produce_count = 0;
  std::string produce_id_prefix;
  std::vector<std::string> produce_kafka;
  auto* produce_cmd = app.add_subcommand(
      "produce",
      "Load and demo producer: ReceiveStock (stock: one receipt per SKU sku-1..sku-K by "
      "default) or PlaceOrder (orders: 1-3 lines over K SKUs, optional shares of declined, "
      "silent, unshippable and cancelled orders) commands, rate-limited, with a progress bar; "
      "waits for every delivery and prints one JSON summary line. docs/participants.md");
  produce_cmd->add_option("WHAT", produce_what, "orders or stock")
      ->required()
      ->check(CLI::IsMember({"orders", "stock"}));
  produce_cmd->add_option("--brokers", produce.brokers, "Kafka bootstrap servers (host:port,...)")
      ->required();
  produce_cmd->add_option("--topic-prefix", produce.topic_prefix, "Prefix of every topic name")
      ->capture_default_str();
  auto* count_opt = produce_cmd->add_option(
      "--count", produce_count, "Orders or receipts to send (default: 1000 orders, or --skus receipts)");
  count_opt->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000'000'000}));
  produce_cmd->add_option("--rate", produce.rate, "Messages per second (0: as fast as possible)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  produce_cmd->add_option("--skus", produce.skus, "K: SKUs sku-1..sku-K")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{100'000'000}))
      ->capture_default_str();
  produce_cmd->add_option("--seed", produce.seed, "Seed of every random choice")->capture_default_str();
  auto* id_prefix_opt = produce_cmd->add_option(
      "--id-prefix", produce_id_prefix,
      "Ids are o-<P>-<i> / r-<P>-<i> (\"\": o-<i>); default: from the clock, unique per run");
  produce_cmd->add_option("--qty", produce.stock_qty, "stock: units per receipt")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}))
      ->capture_default_str();
  produce_cmd->add_option("--max-lines", produce.max_lines,
                          "orders: lines per order, 1..N, each a distinct SKU (so at most --skus)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  produce_cmd->add_option("--max-line-qty", produce.max_line_qty, "orders: units per line, 1..N")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}))
      ->capture_default_str();
  produce_cmd->add_option("--customers", produce.customers, "orders: customer ids c-1..c-N")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{1'000'000'000}))
      ->capture_default_str();
  produce_cmd->add_option("--decline-pct", produce.decline_pct, "orders: % paid with tok_decline")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  produce_cmd->add_option("--silent-pct", produce.silent_pct, "orders: % paid with tok_silent")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  produce_cmd->add_option("--fail-ship-pct", produce.fail_ship_pct, "orders: % shipped to country XX")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  produce_cmd->add_option("--cancel-pct", produce.cancel_pct, "orders: % followed by a CancelOrder")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  produce_cmd->add_option("--deadline-ms", produce.deadline_ms, "orders: deadlineMs (0: ffe's default)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86'400'000}))
      ->capture_default_str();
  produce_cmd->add_flag("--protobuf", produce.protobuf, "Binary Protobuf instead of JSON");
  produce_cmd->add_flag("--quiet", produce.quiet, "No progress on stderr");
  produce_cmd->add_option("-X,--kafka", produce_kafka, "A librdkafka setting key=value (repeatable)")
      ->allow_extra_args(false);

  GetArgs get_args;
  auto* get = app.add_subcommand(
      "get",
      "Print one order or SKU as JSON from a running engine's admin HTTP API, as of its shard's "
      "current revision or --revision R. Exit 0 found, 1 not found, 2 any other error (410: R was "
      "compacted; 400: R is in the future) with the server's message");
  get->add_option("kind", get_args.kind, "order or sku")->required()->check(CLI::IsMember({"order", "sku"}));
  get->add_option("id", get_args.id, "The order id or the SKU")->required();
  auto* get_revision = get->add_option("--revision", get_args.revision, "Read as of this revision of the entity's shard");
  get->add_option("--http", get_args.http, "The admin HTTP address")->capture_default_str();

  // ffe confirm / watch / compact: revisions through the admin HTTP API (docs/revisions.md).
  std::string confirm_id;
  std::string confirm_http = std::string(ffe::http::kDefaultAddress);
  auto* confirm_cmd = app.add_subcommand(
      "confirm",
      "Print an order's terminal confirmation {\"orderId\",\"state\",\"reason\",\"shard\",\"revision\","
      "\"confirmed\":true,...}, checked through the public reads: the order is terminal now and its state "
      "as of its terminal revision (or the compacted revision, when that was compacted) equals its state "
      "now. Exit 0 confirmed; 1 not terminal yet or unknown; 3 terminal but not stable (an invariant "
      "broke); 2 any other error");
  confirm_cmd->add_option("ORDER_ID", confirm_id, "The order id")->required();
  confirm_cmd->add_option("--http", confirm_http, "The admin HTTP address")->capture_default_str();

  ffe::http::WatchArgs watch_args;
  watch_args.address = std::string(ffe::http::kDefaultAddress);
  std::uint32_t watch_shard = 0;
  auto* watch_cmd = app.add_subcommand(
      "watch",
      "Stream the journal's changes under a key prefix (order/<id>, sku/<sku>, order/, sku/, or \"\" "
      "for all) of one shard from --from-revision on, in revision order, one JSON line per event "
      "{\"shard\",\"revision\",\"committedAtMs\",\"key\",\"event\"}. Resume with the last revision seen + 1. "
      "Exit 0 at the end (the current revision, or --limit; --follow waits for new changes until "
      "interrupted); 1 if the revision was compacted (the message names the oldest readable one); 2 otherwise "
      "(a stream cut short, the server stopping: the message names the revision to resume from)");
  watch_cmd->add_option("PREFIX", watch_args.prefix, "Key prefix: order/<id>, sku/<sku>, order/, sku/ or \"\"")
      ->required();
  watch_cmd->add_option("--from-revision", watch_args.from_revision, "The first revision to stream")->required();
  auto* watch_shard_opt = watch_cmd->add_option(
      "--shard", watch_shard, "The shard (default: the one owning the entity PREFIX names; required otherwise)");
  watch_cmd->add_flag("--follow", watch_args.follow, "Keep streaming new changes until interrupted");
  watch_cmd->add_option("--limit", watch_args.limit, "Stop after this many events, at the end of the revision that reaches it (so a "
                        "resume from the last revision + 1 misses nothing; 0: no limit)")
      ->capture_default_str();
  watch_cmd->add_option("--http", watch_args.address, "The admin HTTP address")->capture_default_str();

  std::uint32_t compact_shard = 0;
  std::uint64_t compact_revision = 0;
  bool compact_force = false;
  std::string compact_http = std::string(ffe::http::kDefaultAddress);
  auto* compact_cmd = app.add_subcommand(
      "compact",
      "Compact a shard's history below --revision: older revisions become unreadable (410) and their "
      "space is freed; every entity's state as of R is kept. Refused (exit 1) when a reader of the log "
      "(the ff.events publisher, CDC) has not processed up to R yet, unless --force; or when R is below "
      "the compacted revision. Prints {\"shard\",\"compactedRevision\"}; exit 2 on other errors");
  compact_cmd->add_option("--shard", compact_shard, "The shard")->required();
  compact_cmd->add_option("--revision", compact_revision, "Revisions below this one go")->required();
  compact_cmd->add_flag("--force", compact_force, "Compact even past a reader's cursor (it will fail to resume)");
  compact_cmd->add_option("--http", compact_http, "The admin HTTP address")->capture_default_str();

  // ffe serve: the engine (adapters/serve/serve.h, docs/kafka.md).
  ffe::serve::ServeOptions serve_options;
  std::string serve_wire = "json";
  std::vector<std::string> serve_kafka;
  auto* serve_cmd = app.add_subcommand(
      "serve",
      "Run the engine: consume ff.orders.commands, ff.inventory.commands and the participants' "
      "replies, drive every order through the saga, publish requests and outcomes (after they "
      "are durable), bad input to ff.dlq and the journal to ff.events; admin HTTP on --http. "
      "Without --brokers it starts an embedded Kafka-protocol broker on 127.0.0.1 (in memory) and "
      "prints its address, so `ffe serve` alone is a working engine kcat can talk to. Creates "
      "missing topics (partitions = shards). SIGTERM/SIGINT drain and exit 0. docs/kafka.md");
  serve_cmd->add_option("--brokers", serve_options.brokers,
                        "Kafka bootstrap servers host:port,... (default: start the embedded broker)");
  serve_cmd->add_option("--data-dir", serve_options.data_dir, "The journal's directory (created if missing)")
      ->capture_default_str();
  serve_cmd->add_option("--http", serve_options.http,
                        "Admin HTTP address HOST:PORT (port 0: any free port; \"\": no HTTP)")
      ->capture_default_str();
  serve_cmd->add_option("--shards", serve_options.shards,
                        "Shards of a new data dir (default, or 0: partitions of <prefix>orders.commands, or "
                        "8 when ffe creates the topics); an existing data dir keeps its own")
      ->check(CLI::Range(std::uint32_t{0}, std::uint32_t{4096}));
  serve_cmd->add_option("--topic-prefix", serve_options.topic_prefix, "Prefix of every topic name")
      ->capture_default_str();
  serve_cmd->add_option("--wire", serve_wire,
                        "Outgoing messages as canonical JSON or binary Protobuf (content-type says which)")
      ->check(CLI::IsMember({"json", "protobuf"}))
      ->capture_default_str();
  serve_cmd->add_option("--analytics", serve_options.analytics,
                        "Where CDC keeps the analytics tables in step with the journal, exactly once: "
                        "sqlite:PATH or postgresql://user[:password]@127.0.0.1:5432/db; \"off\": no CDC "
                        "(default: sqlite:<data-dir>/analytics.db). A bad URL or a refused schema stops the "
                        "start; a database that is down does not (CDC retries, the lag grows). docs/cdc.md");
  serve_cmd->add_option("--retain-revisions", serve_options.retention.keep_revisions,
                        "Retention: keep the last N revisions of each shard readable, compact older ones "
                        "(0: no count limit). Never passes what ff.events or CDC still has to read")
      ->capture_default_str();
  std::string serve_retain_for;
  serve_cmd->add_option("--retain-for", serve_retain_for,
                        "Retention: keep every revision committed within this long, e.g. 90s, 30m, 12h, 7d "
                        "(default: no time limit)")
      ->check([](const std::string& text) { return parse_duration_ms(text) ? std::string() : std::string("expected <number>s|m|h|d, e.g. 12h"); });
  serve_cmd->add_option("--cdc-topic", serve_options.cdc_topic,
                        "Also publish a Debezium-style change envelope {\"op\",\"before\",\"after\",\"source\","
                        "\"ts_ms\"} per changed row on this topic, at least once (default: none)");
  serve_cmd->add_option("--max-open-orders", serve_options.max_open_orders,
                        "Admission: at most N orders open (placed, not yet terminal) at once; above it "
                        "further placements wait in Kafka (their partitions pause; a cancel behind them "
                        "waits too) while replies go on, so an overload never runs into saga deadlines "
                        "(0: unbounded)")
      ->capture_default_str();
  serve_cmd->add_option("--max-live", serve_options.max_live,
                        "Passivation: at most N live SKU and order actors per shard; above it the least "
                        "recently used idle ones stop and restore from the journal on their next command. "
                        "Size it to the hot set: restores cost throughput (0: the runtime's default, 10000)")
      ->capture_default_str();
  // The saga's step timeouts (order::Policy): a step's deadline is the earlier of the
  // order's and now + the step's timeout. Durations within an order deadline's bounds.
  // (An order's default deadline, 30 s, is the contract's: not a flag.)
  std::map<std::string, std::pair<std::string, std::int64_t*>> serve_clocks = {
      {"--reserve-timeout", {"Step timeout: reserving every line", &serve_options.order_policy.reserve_timeout_ms}},
      {"--authorize-timeout",
       {"Step timeout: the payment's authorize (unanswered: the order is cancelled and the payment voided)",
        &serve_options.order_policy.authorize_timeout_ms}},
      {"--ship-timeout",
       {"Step timeout: the shipment's create (unanswered: the shipment is cancelled and the payment voided)",
        &serve_options.order_policy.ship_timeout_ms}},
  };
  std::map<std::string, std::string> serve_clock_texts;
  for (auto& [flag, about] : serve_clocks) {
    const std::int64_t default_ms = *about.second;
    serve_cmd
        ->add_option(flag, serve_clock_texts[flag],
                     about.first + " (default " + std::to_string(default_ms / 1000) + "s; e.g. 500ms, 20s, 2m)")
        ->check([](const std::string& text) {
          const auto ms = parse_duration_ms(text);
          return ms && *ms >= ffe::limits::deadline_ms_min && *ms <= ffe::limits::deadline_ms_max
                     ? std::string()
                     : std::string("expected a duration from 100ms to 1d: <number>ms|s|m|h|d, e.g. 20s");
        });
  }
  serve_cmd->add_option("-X,--kafka", serve_kafka,
                        "A librdkafka property name=value for every Kafka client (repeatable)");

  // ffe drift: the analytics tables against the engine's state at their checkpoint (docs/cdc.md).
  ffe::cdc::DriftOptions drift_options;
  drift_options.data_dir.clear();
  auto* drift_cmd = app.add_subcommand(
      "drift",
      "Compare the analytics tables at their checkpoint revision with the engine's state at that "
      "revision, shard by shard (every order, order line and SKU, column by column). Prints one JSON "
      "line per shard {\"shard\",\"checkpoint\",\"orders\",\"skus\",\"drift\",\"analytics\"} and the first "
      "differences on stderr. Works on a stopped engine's data dir and, read-only, beside a running one. "
      "Exit 0 with zero drift; 1 drift; 2 could not compare. docs/cdc.md");
  drift_cmd->add_option("--data-dir", drift_options.data_dir, "The engine's data dir (the journal)")->required();
  drift_cmd->add_option("--analytics", drift_options.analytics,
                        "sqlite:PATH or postgresql://... (default: sqlite:<data-dir>/analytics.db)");
  drift_cmd->add_option("--max-differences", drift_options.differences_max, "Differences printed per shard")
      ->capture_default_str();

  // ffe replay: rebuild state from the journal (or from ff.events) and print digests (docs/replay.md).
  ffe::replay::ReplayCommand replay_command;
  std::uint32_t replay_shard = 0;
  std::uint64_t replay_to = 0;
  bool replay_json = false;
  auto* replay_cmd = app.add_subcommand(
      "replay",
      "Rebuild each shard's state from the journal's log alone (not from snapshots), up to its current "
      "revision or --to-revision, through the domain's evolve(), and print one JSON line per shard "
      "{\"shard\",\"revision\",\"events\",\"digest\"}: the digest equals the live one of /v1/shards at that "
      "revision (invariant 8). Works on a stopped engine's data dir and, read-only, beside a running one; "
      "never writes to it. --from-kafka rebuilds a new data dir from ff.events alone first. Exit 0; 2 with "
      "the reason (a gap in the log, a compacted or future revision, not a data dir). docs/replay.md");
  replay_cmd->add_option("--data-dir", replay_command.data_dir,
                         "The engine's data dir (with --from-kafka: a new, empty one to restore into)")
      ->required();
  auto* replay_shard_opt = replay_cmd->add_option("--shard", replay_shard, "Only this shard (default: every shard)");
  auto* replay_to_opt = replay_cmd->add_option(
      "--to-revision", replay_to,
      "Replay up to this revision (default: each shard's current one); with several shards it applies to each");
  replay_cmd->add_option("--from-kafka", replay_command.from_kafka,
                         "Kafka bootstrap servers: restore --data-dir from <prefix>events first (a lost disk)");
  replay_cmd->add_option("--topic-prefix", replay_command.topic_prefix, "Prefix of the topic names (--from-kafka)")
      ->capture_default_str();
  replay_cmd->add_option("--threads", replay_command.threads, "Shards replayed in parallel")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}))
      ->capture_default_str();
  std::vector<std::string> replay_kafka;
  replay_cmd->add_option("-X,--kafka", replay_kafka,
                         "A librdkafka property name=value for the restore's consumer (--from-kafka; repeatable)");
  replay_cmd->add_flag("--json", replay_json, "For scripts: only the JSON lines, no progress bar");
  replay_cmd->add_flag("--quiet", replay_command.quiet, "No progress bar (it is only drawn when stderr is a terminal)");

  // ffe broker: only the embedded broker, for tests and demos that restart ffe around it.
  ffe::serve::BrokerOptions broker_options;
  auto* broker_cmd = app.add_subcommand(
      "broker",
      "Run only the embedded Kafka-protocol broker (librdkafka's mock cluster, in memory) on "
      "127.0.0.1: prints its bootstrap address, creates the contract topics, runs until "
      "SIGTERM/SIGINT (exit 0). Point `ffe serve --brokers`, `ffe sim`, `ffe produce` or kcat at it");
  broker_cmd->add_option("--partitions", broker_options.partitions, "Partitions of every contract topic")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  broker_cmd->add_option("--topic-prefix", broker_options.topic_prefix, "Prefix of every topic name")
      ->capture_default_str();
  broker_cmd->add_option("--bootstrap-file", broker_options.bootstrap_file,
                         "Also write the bootstrap address to this file");

  decimal_integers_only(app);
  // A word where a command is expected that names none: say so (CLI11 would say only that a
  // subcommand is required). Walks the words before the first flag, command by command.
  {
    CLI::App* at = &app;
    std::string path = "ffe";
    for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
      const auto known = at->get_subcommands([&](const CLI::App* sub) { return sub->check_name(argv[i]); });
      if (!known.empty()) {
        at = known.front();
        path += std::string(" ") + argv[i];
        continue;
      }
      const bool takes_words = !at->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
      if (at->get_subcommands({}).empty() || takes_words) break;  // a leaf's own arguments
      return usage_error(argc, argv, path + ": unknown command \"" + argv[i] + "\" (" + path + " --help lists them)");
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help prints and exits 0; a usage error prints its message and exits 2, the code every
    // command documents for "any other error" (CLI11's own codes are 100 and up).
    if (error.get_exit_code() == 0) return app.exit(error);
    return usage_error(argc, argv, std::string(error.what()) + " (--help says more)");
  }
  ffe::log::setup(*ffe::log::parse_level(log_level), log_format == "json");

  if (version->parsed()) return run_version();
  if (serve_cmd->parsed()) {
    if (!serve_retain_for.empty()) serve_options.retention.keep_for = std::chrono::milliseconds(*parse_duration_ms(serve_retain_for));
    serve_options.wire = serve_wire == "protobuf" ? ffe::kafka::Wire::kProtobuf : ffe::kafka::Wire::kJson;
    for (const auto& [flag, text] : serve_clock_texts) {
      if (!text.empty()) *serve_clocks.at(flag).second = *parse_duration_ms(text);
    }
    if (auto bad = ffe::participants::parse_kafka_settings(serve_kafka, serve_options.kafka_properties)) {
      return usage_error(argc, argv, "ffe serve: " + *bad);
    }
    return ffe::serve::serve(serve_options);
  }
  if (broker_cmd->parsed()) return ffe::serve::run_broker(broker_options);
  if (drift_cmd->parsed()) return ffe::cdc::run_drift(drift_options);
  if (replay_cmd->parsed()) {
    if (replay_shard_opt->count() > 0) replay_command.shard = replay_shard;
    if (replay_to_opt->count() > 0) replay_command.to_revision = replay_to;
    replay_command.quiet = replay_command.quiet || replay_json;
    if (auto bad = ffe::participants::parse_kafka_settings(replay_kafka, replay_command.kafka_properties)) {
      return usage_error(argc, argv, "ffe replay: " + *bad);
    }
    return ffe::replay::run_replay(replay_command);
  }
  if (confirm_cmd->parsed()) {
    const auto outcome = ffe::http::confirm_order(confirm_id, confirm_http);
    std::fputs(outcome.out.c_str(), stdout);
    std::fputs(outcome.err.c_str(), stderr);
    return outcome.exit_code;
  }
  if (watch_cmd->parsed()) {
    if (watch_shard_opt->count() > 0) watch_args.shard = watch_shard;
    return ffe::http::watch(
        watch_args,
        [](std::string_view line) {
          std::fwrite(line.data(), 1, line.size(), stdout);
          std::fputc('\n', stdout);
          std::fflush(stdout);
        },
        [](std::string_view message) { std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data()); });
  }
  if (compact_cmd->parsed()) {
    const auto outcome = ffe::http::compact(compact_shard, compact_revision, compact_force, compact_http);
    std::fputs(outcome.out.c_str(), stdout);
    std::fputs(outcome.err.c_str(), stderr);
    return outcome.exit_code;
  }
  if (get->parsed()) {
    get_args.has_revision = get_revision->count() > 0;
    return run_get(get_args);
  }
  if (simulate->parsed()) return run_simulate(sim);
  if (journal->parsed()) return run_bench_journal(bench_journal);
  if (reserve->parsed()) {
    bench_reserve.progress = !reserve_no_progress;
    return ffe::bench::run_reserve_bench(bench_reserve);
  }
  if (cdc_bench->parsed()) return ffe::bench::run_cdc_bench(bench_cdc);
  if (replay_bench->parsed()) {
    bench_replay.progress = !replay_bench_no_progress;
    return ffe::bench::run_replay_bench(bench_replay);
  }
  if (e2e->parsed()) {
    bench_e2e.protobuf = e2e_wire == "protobuf";
    bench_e2e.progress = !e2e_no_progress;
    return ffe::bench::run_e2e_bench(bench_e2e);
  }
  if (sim_cmd->parsed()) {
    if (auto bad = ffe::participants::parse_kafka_settings(participant_kafka, participant.kafka_config)) {
      return usage_error(argc, argv, "ffe sim: " + *bad);
    }
    participant.stop = &ffe::participants::stop_on_signals();
    return ffe::participants::run_participant(participant_kind == "payment"
                                                  ? ffe::participants::Kind::kPayment
                                                  : ffe::participants::Kind::kShipping,
                                              participant);
  }
  if (produce_cmd->parsed()) {
    if (auto bad = ffe::participants::parse_kafka_settings(produce_kafka, produce.kafka_config)) {
      return usage_error(argc, argv, "ffe produce: " + *bad);
    }
    produce.what = produce_what == "stock" ? ffe::participants::ProduceWhat::kStock
                                           : ffe::participants::ProduceWhat::kOrders;
    if (count_opt->count() > 0) produce.count = produce_count;
    if (id_prefix_opt->count() > 0) produce.id_prefix = produce_id_prefix;
    produce.stop = &ffe::participants::stop_on_signals();
    return ffe::participants::run_produce(produce);
  }
  return 2;  // unreachable: require_subcommand(1)
}
