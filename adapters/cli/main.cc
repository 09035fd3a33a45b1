// The `ffe` command line: one binary, one CLI11 subcommand per job (ARCHITECTURE.md,
// "Command line"). Only subcommands that work are listed; later issues add serve, sim,
// produce, get, confirm, replay, watch, compact, drift and bench.
//
// CLI11 is expensive to compile (5-10 s per translation unit), so it lives in this one file.

#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/common.h>

#include <cstdint>
#include <cstdio>
#include <string>

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

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) return run_version();
  if (simulate->parsed()) return run_simulate(sim);
  return 2;  // unreachable: require_subcommand(1)
}
