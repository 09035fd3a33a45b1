// The `ffe` command line: one binary, one CLI11 subcommand per job (ARCHITECTURE.md,
// "Command line"). Only subcommands that work are listed; later issues add serve, sim,
// produce, get, confirm, replay, watch, compact, drift and the other benchmarks.
//
// CLI11 is expensive to compile (5-10 s per translation unit), so it lives in this one file.

#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/common.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/journal/journal_bench.h"
#include "sagas/simulation.h"

namespace {

constexpr const char* kContractsVersion = "v1";

int run_version() {
  std::printf("ffe %s (contracts %s, protobuf %s)\n", FFE_VERSION, kContractsVersion,
              google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION).c_str());
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ffe: an order-fulfillment engine. Kafka producers submit orders; ffe reserves "
               "stock, drives payment and shipment through a saga, compensates on failure or "
               "timeout, and confirms each order's terminal state at a revision."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ffe ") + FFE_VERSION);

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
                      "Rounds of (ceiling, journal); medians are reported")
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

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) return run_version();
  if (simulate->parsed()) return run_simulate(sim);
  if (journal->parsed()) return run_bench_journal(bench_journal);
  return 2;  // unreachable: require_subcommand(1)
}
