#include "adapters/serve/serve.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "adapters/cdc/pipeline.h"  // CDC into the analytics tables (docs/cdc.md)
#include "adapters/http/address.h"
#include "adapters/http/admin_server.h"
#include "adapters/kafka/broker.h"
#include "adapters/kafka/events_publisher.h"
#include "adapters/kafka/ingress.h"
#include "adapters/kafka/producer.h"
#include "adapters/kafka/topics.h"
#include "adapters/log/log.h"
#include "adapters/log/redact.h"
#include "adapters/metrics/metrics.h"
#include "adapters/metrics/runtime_metrics.h"
#include "storage/journal.h"

namespace ffe::serve {

using storage::Result;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

namespace {

constexpr std::uint32_t kDefaultShards = 8;

void say(std::FILE* out, const std::string& line) {
  if (out == nullptr) return;
  std::fprintf(out, "%s\n", line.c_str());
  std::fflush(out);
}

Status with_context(const Status& status, const std::string& context) {
  return Status(status.code(), context + ": " + status.message());
}

}  // namespace

class Server::Impl {
 public:
  explicit Impl(ServeOptions options) : options_(std::move(options)), topics_(options_.topic_prefix) {}
  ~Impl() { stop(); }

  Status start();
  // The caller asked the start to give up (ServeOptions::stop_requested): kClosed, else ok.
  Status check_stop_requested() const {
    if (options_.stop_requested == nullptr || !options_.stop_requested->load()) return Status::ok();
    return Status(StatusCode::kClosed, "stopped during the start");
  }
  void stop();

  ServeOptions options_;
  kafka::Topics topics_;
  std::string bootstrap_;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::KafkaEgress> egress_;
  std::unique_ptr<runtime::Runtime> runtime_;
  std::unique_ptr<kafka::Ingress> ingress_;
  std::unique_ptr<kafka::EventsPublisher> events_;
  std::atomic<bool> ready_{false};  // /readyz: the start is done (read by http_'s workers)
  std::unique_ptr<metrics::Registry> registry_;
  // Outlives the runtime that reports to it; the registry outlives both.
  std::unique_ptr<metrics::RuntimeObserver> observer_;
  metrics::Registration runtime_metrics_;
  metrics::Registration kafka_metrics_;
  std::unique_ptr<http::AdminServer> http_;
  std::unique_ptr<runtime::Retention> retention_;
  std::unique_ptr<cdc::CdcPipeline> cdc_;
  metrics::Registration cdc_metrics_;
  bool stopped_ = false;

 private:
  Result<std::uint32_t> shards_for_new_data_dir(const kafka::ClientConfig& client);
  // For a failed request to the cluster: where no broker answered, which address and what to
  // check; else "".
  std::string unreachable_hint(const Status& status) const {
    return kafka::no_broker_answered(status) ? " (no broker answered at " + bootstrap_ + ": is it running and reachable?)"
                                             : "";
  }
  Status start_cdc();
  // An --analytics PostgreSQL URL, opened before the data dir (open_early_analytics): the sink
  // or the reason it could not be opened, and what its opening migrated.
  std::optional<Result<std::unique_ptr<cdc::Sink>>> early_sink_;
  cdc::Migration early_migration_;
  Status open_early_analytics();
  void register_kafka_metrics();
  void drain_outbox(std::chrono::milliseconds timeout);
};

Result<std::uint32_t> Server::Impl::shards_for_new_data_dir(const kafka::ClientConfig& client) {
  if (options_.shards > 0) return options_.shards;
  if (broker_) return kDefaultShards;  // the embedded broker starts empty
  auto counts = kafka::partition_counts(client, {topics_.orders_commands});
  if (!counts) {
    return Status(counts.status().code(), "reading the partitions of " + topics_.orders_commands + ": " +
                                              counts.status().message() + unreachable_hint(counts.status()));
  }
  if ((*counts)[0]) return static_cast<std::uint32_t>(*(*counts)[0]);
  return kDefaultShards;
}

Status Server::check_options(const ServeOptions& options) {
  // A malformed --http would otherwise be found only after the ingress had consumed (the
  // admin server starts last), and an unknown --analytics after the broker had started.
  if (!options.http.empty()) {
    if (auto address = http::parse_address(options.http); !address) return with_context(address.status(), "--http");
  }
  const std::string& url = options.analytics;
  if (url == "sqlite:") {
    return Status(StatusCode::kInvalidArgument, "--analytics: no path after sqlite: (sqlite:PATH)");
  }
  if (!url.empty() && url != "off" && !cdc::is_sink_url(url)) {
    return Status(StatusCode::kInvalidArgument, "--analytics: '" + log::redact_url(url) +
                                                    "' is neither sqlite:PATH, a postgresql:// URL nor off");
  }
  return Status::ok();
}

Status Server::Impl::start() {
  // 0. What can be refused before anything starts, and the admin HTTP address: a port in use
  // fails the start before the data dir is made, and /healthz answers while the journal
  // recovers (/readyz and the reads answer 503 until the start is done).
  if (Status status = Server::check_options(options_); !status) return status;
  registry_ = std::make_unique<metrics::Registry>();
  if (!options_.http.empty()) {
    auto server = http::AdminServer::start(options_.http, *registry_, [this] { return ready_.load(); });
    if (!server) return with_context(server.status(), "starting the admin HTTP server on " + options_.http);
    http_ = std::move(*server);
  }
  // 1. The cluster.
  if (options_.brokers.empty()) {
    auto broker = kafka::EmbeddedBroker::start();
    if (!broker) return broker.status();
    broker_ = std::move(*broker);
    bootstrap_ = broker_->bootstrap();
    say(options_.out, "ffe: embedded Kafka broker at " + bootstrap_);
  } else {
    bootstrap_ = options_.brokers;
  }
  kafka::ClientConfig client;
  client.brokers = bootstrap_;
  client.client_id = "ffe";
  client.properties = options_.kafka_properties;
  client.cancel = options_.stop_requested;

  if (Status status = open_early_analytics(); !status) return status;
  if (Status status = check_stop_requested(); !status) return status;

  // 2. The runtime, with the egress closed until the topics exist (the relays keep offering).
  std::uint32_t shards = options_.shards;
  if (!storage::Journal::holds_data(options_.data_dir)) {  // the shard count is still to be chosen
    auto wanted = shards_for_new_data_dir(client);
    if (!wanted) return wanted.status();
    shards = *wanted;
  }
  if (Status status = check_stop_requested(); !status) return status;
  kafka::Producer::Options producer_options;
  producer_options.client = client;
  // 1 ms, not librdkafka's 5: three of an order's six Kafka hops leave through this producer
  // (docs/e2e-bench.md, "the engine's producer lingers 1 ms"); -X linger.ms=N overrides it.
  producer_options.linger_ms = 1;
  // stop() flushes (5 s) before the producer closes; what is left then is in the journal.
  producer_options.close_flush_timeout = std::chrono::seconds(1);
  auto producer = kafka::Producer::create(producer_options);
  if (!producer) return producer.status();
  producer_ = std::move(*producer);
  egress_ = std::make_unique<kafka::KafkaEgress>(*producer_,
                                                 kafka::KafkaEgress::Options{options_.topic_prefix, options_.wire});
  runtime::Options runtime_options;
  runtime_options.data_dir = options_.data_dir;
  runtime_options.shards = shards;
  runtime_options.topic_prefix = options_.topic_prefix;
  runtime_options.egress = egress_.get();
  runtime_options.max_open_orders = options_.max_open_orders;
  if (options_.max_live > 0) runtime_options.max_live_entities = options_.max_live;
  runtime_options.worker_naps = options_.worker_naps;
  runtime_options.order_policy = options_.order_policy;
  observer_ = std::make_unique<metrics::RuntimeObserver>(*registry_);
  runtime_options.observer = observer_.get();
  if (options_.tune_runtime) options_.tune_runtime(runtime_options);
  auto runtime = runtime::Runtime::open(std::move(runtime_options));
  if (!runtime) return with_context(runtime.status(), "opening the data dir " + options_.data_dir);
  runtime_ = std::move(*runtime);
  shards = runtime_->shard_count();
  if (Status status = start_cdc(); !status) return status;
  if (Status status = check_stop_requested(); !status) return status;

  // 3. The topics (partitions = shards when ffe makes them).
  if (broker_) {
    if (Status status = broker_->create_topics(topics_.all(), static_cast<int>(shards)); !status) return status;
  }
  auto ensured = kafka::ensure_topics(client, topics_, static_cast<int>(shards));
  if (!ensured && ensured.status().code() == StatusCode::kClosed) return ensured.status();
  if (!ensured) {
    const std::string hint = unreachable_hint(ensured.status());
    return Status(ensured.status().code(),
                  ensured.status().message() +
                      (!hint.empty() ? hint
                                     : " (a cluster without the Admin API, such as `ffe broker`, needs the topics "
                                       "made beforehand: `ffe broker --topic-prefix " +
                                           options_.topic_prefix + "` makes them)"));
  }
  for (const std::string& topic : ensured->created) spdlog::info("serve: created topic {} ({} partitions)", topic, shards);
  if (auto counts = kafka::partition_counts(client, {topics_.orders_commands}); counts && (*counts)[0] &&
                                                                               *(*counts)[0] != static_cast<int>(shards)) {
    spdlog::warn("serve: {} has {} partitions but the data dir has {} shards: correct, but partition p no longer "
                 "maps to shard p",
                 topics_.orders_commands, *(*counts)[0], shards);
  }
  egress_->open();
  if (Status status = check_stop_requested(); !status) return status;

  // 4. Input and the journal feed.
  kafka::Ingress::Options ingress_options;
  ingress_options.client = client;
  ingress_options.topic_prefix = options_.topic_prefix;
  ingress_ = std::make_unique<kafka::Ingress>(*runtime_, *producer_, ingress_options);
  if (Status status = ingress_->start(); !status) return with_context(status, "starting the ingress");
  kafka::EventsPublisher::Options events_options;
  events_options.topic = topics_.events;
  events_ = std::make_unique<kafka::EventsPublisher>(runtime_->journal(), *producer_, events_options);
  if (Status status = events_->start(); !status) return with_context(status, "starting the events publisher");

  // Compaction by the retention policy (off unless asked for); it never passes the ff.events
  // publisher's or CDC's cursor.
  // The last minute stays whatever the flags say: it holds the marks of the input messages a
  // restart would deliver again (docs/kafka.md, "Exactly-once effects").
  runtime::RetentionPolicy retention = options_.retention;
  retention.keep_recent = std::max(retention.keep_recent, std::chrono::milliseconds(60'000));
  retention_ = std::make_unique<runtime::Retention>(runtime_->journal(), retention, [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  });

  // 5. Admin HTTP.
  runtime_metrics_ = metrics::register_runtime_metrics(*registry_, *runtime_);
  register_kafka_metrics();
  if (cdc_) cdc_metrics_ = cdc::register_cdc_metrics(*registry_, *cdc_);
  if (http_) http_->attach(*runtime_);
  ready_.store(true);

  say(options_.out, "ffe: ready: " + std::to_string(shards) + " shards, data dir " + options_.data_dir + ", brokers " +
                        bootstrap_ + ", topics " + options_.topic_prefix + "*, wire " +
                        (options_.wire == kafka::Wire::kJson ? "json" : "protobuf") + ", admin http " +
                        (http_ ? http_->address() : std::string("off")));
  return Status::ok();
}

// A PostgreSQL --analytics is opened before the data dir is made or opened, so a URL or
// credentials it refuses (kInvalidArgument, docs/cdc.md) fail the start with nothing made: a
// retry may still choose the data dir's shard count. A server that is down (kIoError) is
// kept for start_cdc, which starts CDC lazily. A sqlite: file may live in the data dir, which
// does not exist yet: it is opened by start_cdc.
Status Server::Impl::open_early_analytics() {
  const std::string& url = options_.analytics;
  if (!(url.starts_with("postgresql://") || url.starts_with("postgres://"))) return Status::ok();
  auto sink = cdc::open_sink(url, &early_migration_);
  if (!sink && sink.status().code() != StatusCode::kIoError) {
    return with_context(sink.status(), "opening the analytics database (--analytics)");
  }
  early_sink_ = std::move(sink);
  return Status::ok();
}

// CDC starts once the runtime recovered (the journal is open and complete) and before the
// retention compactor, which must find CDC's cursor. A database that refuses the URL or the
// schema fails the start with its message; one that is merely unreachable does not stop the
// engine: the pipeline opens it when it comes up, and the lag grows meanwhile (docs/cdc.md).
Status Server::Impl::start_cdc() {
  if (options_.analytics == "off") {
    spdlog::info("serve: --analytics off: no CDC");
    return Status::ok();
  }
  const std::string url =
      options_.analytics.empty() ? cdc::default_analytics_url(options_.data_dir) : options_.analytics;
  cdc::PipelineOptions cdc_options;
  if (!options_.cdc_topic.empty()) {
    // Debezium-style envelopes of every changed row (adapters/cdc/envelope.h), at least once,
    // before the rows are applied: a batch waits until the broker acknowledged its envelopes.
    if (broker_) {
      if (Status status = broker_->create_topics({options_.cdc_topic}, static_cast<int>(runtime_->shard_count()));
          !status) {
        return with_context(status, "creating the CDC topic " + options_.cdc_topic);
      }
    }
    cdc_options.publish = [this](std::uint32_t, std::vector<cdc::ChangeEnvelope> envelopes) {
      auto batch = kafka::DeliveryBatch::make();
      for (cdc::ChangeEnvelope& envelope : envelopes) {
        kafka::Record record;
        record.topic = options_.cdc_topic;
        record.key = std::move(envelope.key);
        record.value = std::move(envelope.value);
        record.headers.push_back({"content-type", "application/json"});
        kafka::DeliveryFn done = batch->expect();
        if (Status status = producer_->produce(std::move(record), done); !status) batch->refused(status.to_string());
      }
      if (!batch->wait(std::chrono::seconds(10))) return Status(StatusCode::kIoError, "no delivery report in 10 s");
      if (!batch->all_ok()) return Status(StatusCode::kIoError, batch->first_error());
      return Status::ok();
    };
  }
  cdc::Migration migration = std::move(early_migration_);  // what an early open did, if one did
  auto sink = early_sink_ ? std::move(*early_sink_) : cdc::open_sink(url, &migration);
  if (sink) {
    cdc_ = std::make_unique<cdc::CdcPipeline>(runtime_->journal(), std::move(*sink), std::move(migration),
                                              std::move(cdc_options));
  } else if (sink.status().code() == StatusCode::kIoError) {
    spdlog::warn("serve: the analytics database is unreachable ({}); the engine starts, CDC retries",
                 sink.status().to_string());
    cdc_ = std::make_unique<cdc::CdcPipeline>(runtime_->journal(), url, std::move(cdc_options));
  } else {
    return with_context(sink.status(), "opening the analytics database (--analytics)");
  }
  if (Status status = cdc_->start(); !status) return with_context(status, "starting CDC");
  say(options_.out, "ffe: CDC into " + cdc_->sink_description() +
                        (options_.cdc_topic.empty() ? std::string() : ", change envelopes on " + options_.cdc_topic));
  return Status::ok();
}

void Server::Impl::register_kafka_metrics() {
  kafka_metrics_ = registry_->add_collector([this](metrics::Scrape& scrape) {
    if (ingress_) {
      const kafka::Ingress::Stats s = ingress_->stats();
      scrape.counter("ffe_ingress_consumed_total", "Messages received from the input topics", {}, s.consumed);
      scrape.counter("ffe_ingress_submitted_total", "Commands handed to the runtime", {}, s.submitted);
      scrape.counter("ffe_ingress_dlq_total", "Messages sent to the DLQ", {}, s.dlq);
      scrape.counter("ffe_ingress_dlq_delivered_total", "DLQ records acknowledged by the broker", {}, s.dlq_delivered);
      scrape.counter("ffe_ingress_unknown_entity_total", "Commands for an unknown order (sent to the DLQ)", {},
                     s.unknown_entity);
      scrape.counter("ffe_ingress_busy_total", "Submits refused for lack of credit (partition paused)", {}, s.busy);
      scrape.counter("ffe_ingress_ack_errors_total", "Commands the runtime could not apply", {}, s.ack_errors);
      scrape.counter("ffe_ingress_watermark_commits_total", "Resume positions recorded in the journal", {},
                     s.watermark_commits);
      for (const kafka::Ingress::PartitionLag& lag : ingress_->lag()) {
        scrape.gauge("ffe_ingress_consumer_lag_messages",
                     "Messages in an input partition after ffe's resume position (end offset - position)",
                     {{"topic", lag.topic}, {"partition", std::to_string(lag.partition)}},
                     static_cast<double>(lag.messages));
      }
    }
    if (egress_) {
      const kafka::KafkaEgress::Stats s = egress_->stats();
      scrape.counter("ffe_egress_records_total", "Outbox records acknowledged by the broker", {}, s.records);
      scrape.counter("ffe_egress_failed_calls_total", "Outbox batches offered again after a delivery failure", {},
                     s.failed_calls);
    }
    if (events_) {
      scrape.counter("ffe_events_published_total", "Journal events acknowledged on the events topic", {},
                     events_->events_published());
    }
  });
}

void Server::Impl::drain_outbox(std::chrono::milliseconds timeout) {
  storage::Journal& journal = runtime_->journal();
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (ShardId shard : journal.shards()) {
    while (std::chrono::steady_clock::now() < until) {
      auto cursor = journal.outbox_cursor(shard);
      if (!cursor || !journal.wait_for_outbox(shard, *cursor, std::chrono::milliseconds(0))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void Server::Impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  ready_.store(false);  // /readyz says 503 while it drains
  // First: a retention pass must not hold the drain (it stops between shards).
  if (retention_) retention_->stop();
  // Nothing new comes in; what was handed over is acknowledged and its position recorded.
  if (ingress_) ingress_->stop();
  if (runtime_) {
    if (!runtime_->wait_quiet(std::chrono::seconds(10))) spdlog::warn("serve: the runtime did not go quiet in 10 s");
    // Give the relays the chance to send what is durable (what they miss goes out next start).
    if (egress_) drain_outbox(std::chrono::seconds(10));
  }
  if (events_) events_->stop();
  // The runtime is quiet: CDC applies what is left within a few seconds, then stops.
  if (cdc_) {
    if (!cdc_->wait_caught_up(std::chrono::seconds(5))) spdlog::warn("serve: CDC did not catch up in 5 s");
    cdc_->stop();
  }
  if (http_) http_->stop();
  kafka_metrics_.reset();
  cdc_metrics_.reset();
  runtime_metrics_.reset();
  if (egress_) egress_->close();
  if (producer_ && !producer_->flush(std::chrono::seconds(5))) {
    spdlog::warn("serve: {} records were not delivered before the timeout", producer_->in_flight());
  }
  http_.reset();
  retention_.reset();
  cdc_.reset();
  events_.reset();
  ingress_.reset();
  runtime_.reset();
  observer_.reset();
  producer_.reset();
  egress_.reset();
  registry_.reset();
  broker_.reset();
}

// ---- Server -------------------------------------------------------------------------------------

Result<std::unique_ptr<Server>> Server::start(ServeOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status status = impl->start(); !status) {
    impl->stop();
    return status;
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
void Server::stop() { impl_->stop(); }
const std::string& Server::bootstrap() const { return impl_->bootstrap_; }
std::string Server::http_address() const { return impl_->http_ ? impl_->http_->address() : std::string(); }
runtime::Runtime& Server::runtime() { return *impl_->runtime_; }
kafka::Ingress& Server::ingress() { return *impl_->ingress_; }
kafka::KafkaEgress& Server::egress() { return *impl_->egress_; }
kafka::EventsPublisher& Server::events_publisher() { return *impl_->events_; }
cdc::CdcPipeline* Server::cdc() { return impl_->cdc_.get(); }
Status Server::health() const {
  if (!impl_->runtime_) return Status(StatusCode::kClosed, "stopped");
  return impl_->runtime_->journal().status();
}

// ---- the commands ------------------------------------------------------------------------------

namespace {

// Blocks SIGTERM and SIGINT in this thread and in every thread started after it, so they are
// taken only by wait_for_stop_signal() (sigwait), never delivered to a random thread.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Waits for SIGTERM/SIGINT, checking `healthy` every second; returns the signal, or 0 when
// `healthy` turned false.
int wait_for_stop_signal(const sigset_t& set, const std::function<bool()>& healthy) {
  while (true) {
    timespec one_second{1, 0};
    const int signal = sigtimedwait(&set, nullptr, &one_second);
    if (signal > 0) return signal;
    if (healthy && !healthy()) return 0;
  }
}

}  // namespace

int serve(const ServeOptions& options) {
  if (Status usage = Server::check_options(options); !usage) {
    log::fatal("ffe serve: " + usage.message());
    return 2;
  }
  const sigset_t signals = block_stop_signals();
  // A stop signal during the start (waiting for an unreachable cluster, say) is taken by a
  // watcher, which asks the start to give up; what the start began is undone and the process
  // exits 0, as for a stop after it.
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> start_done{false};
  int early_signal = 0;
  std::thread watcher([&] {
    while (!start_done.load()) {
      timespec slice{0, 100'000'000};
      const int signal = sigtimedwait(&signals, nullptr, &slice);
      if (signal <= 0) continue;
      early_signal = signal;
      say(options.out, std::string("ffe: ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") +
                           " during the start: stopping at its next step");
      stop_requested.store(true);
      return;
    }
  });
  ServeOptions start_options = options;
  start_options.stop_requested = &stop_requested;
  auto server = Server::start(std::move(start_options));
  start_done.store(true);
  watcher.join();
  if (early_signal != 0 && (server || server.status().code() == StatusCode::kClosed)) {
    if (server) (*server)->stop();
    say(options.out, "ffe: stopped");
    return 0;
  }
  if (!server) {
    log::fatal("ffe serve: " + server.status().to_string());
    return 1;
  }
  const int signal = wait_for_stop_signal(signals, [&] { return (*server)->health().is_ok(); });
  if (signal == 0) {
    log::fatal("ffe serve: the journal stopped: " + (*server)->health().to_string() + "; shutting down");
    (*server)->stop();
    return 1;
  }
  say(options.out, std::string("ffe: ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining and stopping");
  (*server)->stop();
  say(options.out, "ffe: stopped");
  return 0;
}

int run_broker(const BrokerOptions& options) {
  const sigset_t signals = block_stop_signals();
  auto broker = kafka::EmbeddedBroker::start();
  if (!broker) {
    log::fatal("ffe broker: " + broker.status().to_string());
    return 1;
  }
  const kafka::Topics topics(options.topic_prefix);
  if (Status status = (*broker)->create_topics(topics.all(), options.partitions); !status) {
    log::fatal("ffe broker: " + status.to_string());
    return 1;
  }
  if (!options.bootstrap_file.empty()) {
    std::ofstream file(options.bootstrap_file, std::ios::trunc);
    file << (*broker)->bootstrap() << "\n";
    if (!file.flush()) {
      log::fatal("ffe broker: cannot write " + options.bootstrap_file);
      return 1;
    }
  }
  say(options.out, "ffe: embedded Kafka broker at " + (*broker)->bootstrap());
  say(options.out, "ffe broker: topics " + options.topic_prefix + "{orders.commands, inventory.commands, "
                   "payments.requests, payments.replies, shipments.requests, shipments.replies, orders.outcomes, "
                   "dlq, events} with " + std::to_string(options.partitions) +
                   " partitions each; in memory only; SIGTERM or Ctrl-C stops it");
  const int signal = wait_for_stop_signal(signals, nullptr);
  say(options.out, std::string("ffe broker: ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping");
  broker->reset();
  return 0;
}

}  // namespace ffe::serve
