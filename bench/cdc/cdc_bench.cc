#include "bench/cdc/cdc_bench.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "adapters/cdc/drift.h"
#include "adapters/cdc/pipeline.h"
#include "events/json_text.h"
#include "ffe/v1/outcomes.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The payment and shipping services, in process: every authorize APPROVED, every shipment
// CREATED. Replies are submitted from a worker thread (never from the relay's publish()).
// Owner: run_cdc_bench; outlives the runtime. Thread-safe.
class BenchParticipants final : public runtime::Egress {
 public:
  BenchParticipants() : worker_([this] { work(); }) {}
  ~BenchParticipants() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }
  void attach(runtime::Runtime* runtime) {
    std::lock_guard lock(mutex_);
    runtime_ = runtime;
    changed_.notify_all();
  }
  void detach() {
    std::unique_lock lock(mutex_);
    runtime_ = nullptr;
    changed_.wait(lock, [this] { return !submitting_; });
  }

  bool publish(storage::ShardId, const std::vector<storage::OutboxEntry>& entries) override {
    std::vector<runtime::OrderCommand> replies;
    std::uint64_t outcomes = 0, fulfilled = 0;
    for (const storage::OutboxEntry& entry : entries) {
      const std::string& topic = entry.message.topic;
      if (topic.ends_with("payments.requests")) {
        v1::PaymentRequest request;
        if (!request.ParseFromString(entry.message.payload)) continue;
        v1::PaymentReply reply;
        reply.set_command_id(request.command_id());
        reply.set_order_id(request.order_id());
        reply.set_status(v1::PaymentReply::APPROVED);
        if (request.has_authorize()) reply.set_payment_id("p-" + request.order_id());
        replies.emplace_back(std::move(reply));
      } else if (topic.ends_with("shipments.requests")) {
        v1::ShipmentRequest request;
        if (!request.ParseFromString(entry.message.payload)) continue;
        v1::ShipmentReply reply;
        reply.set_command_id(request.command_id());
        reply.set_order_id(request.order_id());
        if (request.has_create()) {
          reply.set_status(v1::ShipmentReply::CREATED);
          reply.set_shipment_id("s-" + request.order_id());
        } else {
          reply.set_status(v1::ShipmentReply::CANCELLED);
        }
        replies.emplace_back(std::move(reply));
      } else if (topic.ends_with("orders.outcomes")) {
        v1::OrderOutcome outcome;
        if (!outcome.ParseFromString(entry.message.payload)) continue;
        ++outcomes;
        if (outcome.state() == v1::FULFILLED) ++fulfilled;
      }
    }
    std::lock_guard lock(mutex_);
    if (runtime_ == nullptr) return false;  // offered again later: nothing is lost
    for (auto& reply : replies) pending_.push_back(std::move(reply));
    outcomes_ += outcomes;
    fulfilled_ += fulfilled;
    changed_.notify_all();
    return true;
  }

  std::uint64_t outcomes() const {
    std::lock_guard lock(mutex_);
    return outcomes_;
  }
  std::uint64_t fulfilled() const {
    std::lock_guard lock(mutex_);
    return fulfilled_;
  }
  bool wait_outcomes(std::uint64_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return outcomes_ >= n; });
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [this] { return stopping_ || (runtime_ != nullptr && !pending_.empty()); });
      if (stopping_) return;
      runtime::OrderCommand reply = std::move(pending_.front());
      pending_.pop_front();
      runtime::Runtime* runtime = runtime_;
      submitting_ = true;
      lock.unlock();
      (void)runtime->submit(std::move(reply), [](const runtime::Ack&) {});
      lock.lock();
      submitting_ = false;
      changed_.notify_all();
    }
  }

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::deque<runtime::OrderCommand> pending_;
  runtime::Runtime* runtime_ = nullptr;
  bool stopping_ = false;
  bool submitting_ = false;
  std::uint64_t outcomes_ = 0;
  std::uint64_t fulfilled_ = 0;
  std::thread worker_;
};

v1::PlaceOrder order(std::uint64_t n, std::uint32_t skus) {
  v1::PlaceOrder place;
  place.set_order_id("o-" + std::to_string(n));
  place.set_customer_id("c-" + std::to_string(n % 1000));
  v1::OrderLine* line = place.add_lines();
  line->set_sku("sku-" + std::to_string(1 + (n * 2654435761u) % skus));
  line->set_qty(1);
  line->set_unit_price_cents(1299);
  place.mutable_payment()->set_method("card");
  place.mutable_payment()->set_token("tok_visa");
  v1::Address* to = place.mutable_ship_to();
  to->set_name("A. Customer");
  to->set_line1("1 Main St");
  to->set_city("Springfield");
  to->set_country("US");
  return place;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double percentile(std::vector<std::int64_t>& values, double p) {
  if (values.empty()) return 0;
  const std::size_t index = std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size())));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return static_cast<double>(values[index]);
}

std::string fixed(double value, int decimals = 1) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// Submits `count` orders numbered from `first`: paced at `rate` per second (0: as fast as
// the runtime's credit allows). Returns the refused submits.
std::uint64_t place_orders(runtime::Runtime& runtime, std::uint64_t first, std::uint64_t count, double rate,
                           std::uint32_t skus) {
  std::uint64_t refused = 0;
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < count; ++i) {
    if (rate > 0) {
      const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 * static_cast<double>(i) / rate));
      if (due > Clock::now()) std::this_thread::sleep_until(due);
    }
    if (!runtime.submit(runtime::OrderCommand(order(first + i, skus)), [](const runtime::Ack&) {})) ++refused;
  }
  return refused;
}

}  // namespace

int run_cdc_bench(const CdcBenchOptions& options) {
  namespace fs = std::filesystem;
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "ffe bench cdc: %s\n", message.c_str());
    return 2;
  };
  // Directories.
  std::string base;
  std::string data_dir = options.data_dir;
  if (data_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = std::string(tmp && *tmp ? tmp : "/tmp") + "/ffe-cdc-bench-XXXXXX";
    if (::mkdtemp(base.data()) == nullptr) return fail("cannot create a temp dir: " + std::string(std::strerror(errno)));
    // PostgreSQL runs as the postgres user (scripts/pg_temp.sh): it must reach its dir.
    ::chmod(base.c_str(), 0755);
    data_dir = base + "/data";
  } else {
    std::error_code ec;
    if (fs::exists(data_dir, ec) && !fs::is_empty(data_dir, ec)) {
      return fail("--data-dir " + data_dir + " is not empty; the benchmark needs a fresh dir");
    }
    base = data_dir + ".bench";
    fs::create_directories(base, ec);
    ::chmod(base.c_str(), 0755);
  }
  const std::string load_before = load_average();

  // The runtime.
  BenchParticipants participants;
  runtime::Options runtime_options;
  runtime_options.data_dir = data_dir;
  runtime_options.shards = options.shards;
  runtime_options.scheduler_threads = options.scheduler_threads;
  runtime_options.egress = &participants;
  auto opened = runtime::Runtime::open(std::move(runtime_options));
  if (!opened) return fail("opening the runtime in " + data_dir + ": " + opened.status().to_string());
  std::unique_ptr<runtime::Runtime> rt = std::move(*opened);
  participants.attach(rt.get());

  // The analytics database.
  std::string url = options.analytics;
  std::string pg_dir;
  if (options.postgres) {
    pg_dir = base + "/pg";
    const std::string command = "bash '" + options.pg_script + "' start '" + pg_dir + "'";
    FILE* pipe = ::popen(command.c_str(), "r");
    char line[512] = {0};
    if (pipe == nullptr || std::fgets(line, sizeof line, pipe) == nullptr) {
      if (pipe) ::pclose(pipe);
      return fail("starting PostgreSQL with " + options.pg_script + " failed");
    }
    ::pclose(pipe);
    url = line;
    while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
  }
  if (url.empty()) url = cdc::default_analytics_url(data_dir);
  auto stop_pg = [&] {
    if (!pg_dir.empty()) (void)std::system(("bash '" + options.pg_script + "' stop '" + pg_dir + "' >/dev/null").c_str());
  };

  // Stock.
  for (std::uint32_t k = 1; k <= options.skus; ++k) {
    v1::ReceiveStock receive;
    receive.set_sku("sku-" + std::to_string(k));
    receive.set_qty(10'000'000);
    receive.set_receipt_id("r-" + std::to_string(k));
    (void)rt->submit(runtime::InventoryCommand(receive), [](const runtime::Ack&) {});
  }
  rt->wait_quiet(60s);

  // Phase 1: steady rate, lag per revision.
  std::vector<std::int64_t> lags;
  lags.reserve(static_cast<std::size_t>(options.rate * options.seconds * 12));
  std::atomic<std::int64_t> measure_from{std::numeric_limits<std::int64_t>::max()};
  cdc::PipelineOptions pipeline_options;
  pipeline_options.batch_revisions_max = options.batch_revisions_max;
  pipeline_options.on_applied = [&](std::uint32_t, const std::vector<std::int64_t>& committed, std::int64_t applied) {
    const std::int64_t from = measure_from.load();
    for (std::int64_t c : committed) {
      if (c >= from) lags.push_back(applied - c);
    }
  };
  cdc::Migration migration;
  auto sink = cdc::open_sink(url, &migration);
  if (!sink) {
    stop_pg();
    return fail("opening " + url + ": " + sink.status().to_string());
  }
  const std::string sink_description = (*sink)->describe();
  auto pipeline = std::make_unique<cdc::CdcPipeline>(rt->journal(), std::move(*sink), migration, pipeline_options);
  if (!pipeline->start()) return fail("starting CDC");
  pipeline->wait_caught_up(60s);
  const cdc::PipelineStats before = pipeline->stats();
  const std::uint64_t steady_orders = static_cast<std::uint64_t>(options.rate * options.seconds);
  measure_from.store(wall_ms());
  const auto steady_start = Clock::now();
  std::uint64_t refused = place_orders(*rt, 0, steady_orders, options.rate, options.skus);
  const double placing_seconds = std::chrono::duration<double>(Clock::now() - steady_start).count();
  const bool steady_outcomes = participants.wait_outcomes(steady_orders, 120s);
  rt->wait_quiet(30s);
  const bool steady_caught_up = pipeline->wait_caught_up(120s);
  const double steady_seconds = std::chrono::duration<double>(Clock::now() - steady_start).count();
  const cdc::PipelineStats after = pipeline->stats();
  pipeline->stop();
  std::uint64_t steady_revisions = 0;
  for (std::size_t i = 0; i < after.shards.size(); ++i) {
    steady_revisions += after.shards[i].checkpoint - before.shards[i].checkpoint;
  }
  const std::uint64_t steady_rows =
      (after.orders_applied + after.skus_applied) - (before.orders_applied + before.skus_applied);
  const std::uint64_t steady_batches = [&] {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < after.shards.size(); ++i) n += after.shards[i].batches - before.shards[i].batches;
    return n;
  }();
  std::vector<std::int64_t> lag_values = lags;
  const double lag_p50 = percentile(lag_values, 0.50);
  const double lag_p99 = percentile(lag_values, 0.99);
  const double lag_max = lag_values.empty() ? 0 : static_cast<double>(*std::max_element(lag_values.begin(), lag_values.end()));
  pipeline.reset();

  // Phase 2: a backlog committed while CDC is stopped, then the catch-up.
  double catchup_seconds = 0;
  std::uint64_t catchup_rows = 0, catchup_revisions = 0, catchup_batches = 0;
  bool catchup_ok = true;
  if (options.backlog > 0) {
    refused += place_orders(*rt, steady_orders, options.backlog, 0, options.skus);
    catchup_ok = participants.wait_outcomes(steady_orders + options.backlog, 300s);
    rt->wait_quiet(60s);
    auto again = cdc::open_sink(url);
    if (!again) return fail("opening " + url + ": " + again.status().to_string());
    cdc::PipelineOptions catchup_options;
    catchup_options.batch_revisions_max = options.batch_revisions_max;
    cdc::CdcPipeline catchup(rt->journal(), std::move(*again), cdc::Migration{}, catchup_options);
    const auto t0 = Clock::now();
    if (!catchup.start()) return fail("starting CDC");
    catchup_ok = catchup.wait_caught_up(600s) && catchup_ok;
    catchup_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const cdc::PipelineStats s = catchup.stats();
    catchup_rows = s.orders_applied + s.skus_applied;
    for (const cdc::ShardStats& shard : s.shards) catchup_batches += shard.batches;
    for (std::size_t i = 0; i < s.shards.size(); ++i) catchup_revisions += s.shards[i].checkpoint - after.shards[i].checkpoint;
    catchup.stop();
  }

  // Drift.
  std::uint64_t drift = 0, compared_orders = 0;
  std::string drift_error;
  if (auto reader = cdc::open_sink(url)) {
    for (storage::ShardId shard : rt->journal().shards()) {
      auto result = cdc::compare_shard(rt->journal(), **reader, shard, 3);
      if (!result) {
        drift_error = result.status().to_string();
        break;
      }
      drift += result->drift();
      compared_orders += result->orders;
      for (const std::string& line : result->differences) std::fprintf(stderr, "ffe bench cdc: drift: %s\n", line.c_str());
    }
  } else {
    drift_error = reader.status().to_string();
  }
  const std::uint64_t fulfilled = participants.fulfilled();
  const std::uint64_t outcomes = participants.outcomes();
  const std::string load_after = load_average();
  participants.detach();
  rt.reset();
  stop_pg();
  const bool ok = drift == 0 && drift_error.empty() && steady_outcomes && steady_caught_up && catchup_ok &&
                  refused == 0 && outcomes == steady_orders + options.backlog;

  std::string json = "{\"bench\":\"cdc\",\"sink\":" + events::json::quoted(sink_description) +
                     ",\"shards\":" + std::to_string(options.shards) + ",\"rate\":" + fixed(options.rate, 0) +
                     ",\"seconds\":" + fixed(options.seconds) + ",\"batchRevisionsMax\":" +
                     std::to_string(options.batch_revisions_max);
  json += ",\"steady\":{\"orders\":" + std::to_string(steady_orders) + ",\"placingSeconds\":" +
          fixed(placing_seconds, 2) + ",\"achievedOrdersPerS\":" +
          fixed(static_cast<double>(steady_orders) / std::max(placing_seconds, 1e-9), 0) +
          ",\"revisions\":" + std::to_string(steady_revisions) + ",\"rows\":" + std::to_string(steady_rows) +
          ",\"batches\":" + std::to_string(steady_batches) + ",\"rowsPerS\":" +
          fixed(static_cast<double>(steady_rows) / std::max(steady_seconds, 1e-9), 0) + ",\"lagMs\":{\"p50\":" +
          fixed(lag_p50, 0) + ",\"p99\":" + fixed(lag_p99, 0) + ",\"max\":" + fixed(lag_max, 0) +
          ",\"samples\":" + std::to_string(lags.size()) + "}}";
  json += ",\"catchup\":{\"orders\":" + std::to_string(options.backlog) + ",\"revisions\":" +
          std::to_string(catchup_revisions) + ",\"rows\":" + std::to_string(catchup_rows) + ",\"batches\":" +
          std::to_string(catchup_batches) + ",\"seconds\":" + fixed(catchup_seconds, 2) + ",\"rowsPerS\":" +
          fixed(static_cast<double>(catchup_rows) / std::max(catchup_seconds, 1e-9), 0) + ",\"revisionsPerS\":" +
          fixed(static_cast<double>(catchup_revisions) / std::max(catchup_seconds, 1e-9), 0) + "}";
  json += ",\"outcomes\":" + std::to_string(outcomes) + ",\"fulfilled\":" + std::to_string(fulfilled) + ",\"refused\":" + std::to_string(refused) +
          ",\"ordersCompared\":" + std::to_string(compared_orders) + ",\"drift\":" + std::to_string(drift) +
          (drift_error.empty() ? "" : ",\"driftError\":" + events::json::quoted(drift_error)) +
          ",\"loadavgBefore\":" + events::json::quoted(load_before) + ",\"loadavgAfter\":" + events::json::quoted(load_after) +
          ",\"dataDir\":" + events::json::quoted(options.keep || !options.data_dir.empty() ? data_dir : std::string()) +
          ",\"ok\":" + (ok ? "true" : "false") + "}";
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (options.data_dir.empty() && !options.keep) {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  return ok ? 0 : 1;
}

}  // namespace ffe::bench
