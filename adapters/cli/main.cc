// The `ffe` command line: one binary, one CLI11 subcommand per job (ARCHITECTURE.md,
// "Command line"). Only subcommands that work are listed; later issues add serve, sim,
// produce, get, confirm, replay, watch, compact, drift and the other benchmarks.
//
// CLI11 is expensive to compile (5-10 s per translation unit), so it lives in this one file.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/common.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "adapters/http/client.h"
#include "bench/journal/journal_bench.h"
#include "bench/reserve/reserve_bench.h"
#include "bench/e2e/e2e_bench.h"      // ffe bench e2e
#include "adapters/sim/producer.h"    // ffe produce
#include "adapters/sim/sim_runner.h"  // ffe sim
#include "adapters/serve/serve.h"     // ffe serve, ffe broker
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

struct GetArgs {
  std::string kind;  // "order" | "sku"
  std::string id;
  std::uint64_t revision = 0;
  bool has_revision = false;
  std::string http = std::string(ffe::http::kDefaultAddress);
};

// `ffe get`: one entity from the admin HTTP API; exit 0 found, 1 not found, 2 otherwise.
int run_get(const GetArgs& args) {
  const auto outcome = ffe::http::get_entity(
      args.kind == "order" ? ffe::http::EntityKind::kOrder : ffe::http::EntityKind::kSku, args.id,
      args.has_revision ? std::optional<std::uint64_t>(args.revision) : std::nullopt, args.http);
  std::fputs(outcome.out.c_str(), stdout);
  std::fputs(outcome.err.c_str(), stderr);
  return outcome.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries what scripts read (status lines, JSON results).
  spdlog::set_default_logger(spdlog::stderr_color_mt("ffe"));
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
  reserve->add_option("--max-live", bench_reserve.max_live,
                      "max_live_entities per shard (0: the runtime's default)")
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
  e2e->add_option("--ceiling-messages", bench_e2e.ceiling_messages,
                  "Messages of the raw broker produce+consume run (0: skip it)")
      ->capture_default_str();
  e2e->add_option("--warmup", bench_e2e.warmup_orders, "Orders completed before timing starts (not counted)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000}))
      ->capture_default_str();
  e2e->add_option("--threads", bench_e2e.scheduler_threads, "CAF scheduler threads of the engine (0: one per core)")
      ->capture_default_str();
  e2e->add_flag("--thread-cpu", bench_e2e.thread_cpu, "Also print CPU seconds per thread on stderr");
  e2e->add_flag("--no-progress", e2e_no_progress, "No progress line on stderr (only shown on a terminal)");

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
  produce_cmd->add_option("--max-lines", produce.max_lines, "orders: lines per order, 1..N")
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
                        "Shards of a new data dir (default: partitions of <prefix>orders.commands, or 8 "
                        "when ffe creates the topics); an existing data dir keeps its own")
      ->check(CLI::Range(std::uint32_t{0}, std::uint32_t{4096}));
  serve_cmd->add_option("--topic-prefix", serve_options.topic_prefix, "Prefix of every topic name")
      ->capture_default_str();
  serve_cmd->add_option("--wire", serve_wire,
                        "Outgoing messages as canonical JSON or binary Protobuf (content-type says which)")
      ->check(CLI::IsMember({"json", "protobuf"}))
      ->capture_default_str();
  serve_cmd->add_option("--analytics", serve_options.analytics,
                        "sqlite:PATH or postgresql://... (accepted; CDC arrives with a later issue)");
  serve_cmd->add_option("-X,--kafka", serve_kafka,
                        "A librdkafka property name=value for every Kafka client (repeatable)");

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

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) return run_version();
  if (serve_cmd->parsed()) {
    serve_options.wire = serve_wire == "protobuf" ? ffe::kafka::Wire::kProtobuf : ffe::kafka::Wire::kJson;
    for (const std::string& property : serve_kafka) {
      const auto eq = property.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::fprintf(stderr, "ffe serve: -X %s: expected name=value\n", property.c_str());
        return 2;
      }
      serve_options.kafka_properties.emplace_back(property.substr(0, eq), property.substr(eq + 1));
    }
    return ffe::serve::serve(serve_options);
  }
  if (broker_cmd->parsed()) return ffe::serve::run_broker(broker_options);
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
  if (e2e->parsed()) {
    bench_e2e.protobuf = e2e_wire == "protobuf";
    bench_e2e.progress = !e2e_no_progress;
    return ffe::bench::run_e2e_bench(bench_e2e);
  }
  if (sim_cmd->parsed()) {
    if (auto bad = ffe::participants::parse_kafka_settings(participant_kafka, participant.kafka_config)) {
      std::fprintf(stderr, "ffe sim: %s\n", bad->c_str());
      return 2;
    }
    participant.stop = &ffe::participants::stop_on_signals();
    return ffe::participants::run_participant(participant_kind == "payment"
                                                  ? ffe::participants::Kind::kPayment
                                                  : ffe::participants::Kind::kShipping,
                                              participant);
  }
  if (produce_cmd->parsed()) {
    if (auto bad = ffe::participants::parse_kafka_settings(produce_kafka, produce.kafka_config)) {
      std::fprintf(stderr, "ffe produce: %s\n", bad->c_str());
      return 2;
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
