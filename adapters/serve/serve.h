#pragma once
// `ffe serve` and `ffe broker`: the engine as its users run it (docs/kafka.md).
//
// Server wires the parts together: the embedded broker (without --brokers), the contract
// topics, the runtime with the Kafka egress, the ingress, the ff.events publisher and the
// admin HTTP server (adapters/http). serve() runs one until SIGTERM/SIGINT. No librdkafka,
// CAF or httplib header here.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "actors/runtime/retention.h"
#include "actors/runtime/runtime.h"
#include "adapters/kafka/egress.h"
#include "storage/status.h"

namespace ffe::cdc {
class CdcPipeline;
}  // namespace ffe::cdc

namespace ffe::kafka {
class EventsPublisher;
class Ingress;
}  // namespace ffe::kafka

namespace ffe::serve {

struct ServeOptions {
  // Bootstrap servers of the cluster to use; empty: start the embedded broker (librdkafka's
  // mock cluster) on 127.0.0.1 and print its address.
  std::string brokers;
  std::string data_dir = "./ffe-data";
  // The admin HTTP address (HOST:PORT; port 0 picks a free one); empty: no admin HTTP.
  std::string http = "127.0.0.1:8080";
  // Shards of a new data dir; 0: the partition count of <prefix>orders.commands when it
  // exists, else 8. An existing data dir keeps its own count (a different non-zero value is
  // an error).
  std::uint32_t shards = 0;
  std::string topic_prefix = "ff.";
  kafka::Wire wire = kafka::Wire::kJson;
  // Where CDC keeps the analytics tables (docs/cdc.md): sqlite:PATH or postgresql://...;
  // empty: sqlite:<data_dir>/analytics.db (CDC is on by default); "off": no CDC.
  std::string analytics;
  // Also publish a Debezium-style change envelope per changed row on this topic (JSON,
  // key = entity key; docs/cdc.md, "Change envelopes"); empty: none.
  std::string cdc_topic;
  // Compaction by policy: keep the last N revisions and/or the last T of history per shard
  // (default: keep everything). docs/revisions.md.
  runtime::RetentionPolicy retention;
  // Admission: at most this many orders open (placed, not yet terminal) at once, all shards
  // together; above it the ingress leaves further PlaceOrders in Kafka (their partitions
  // pause) until orders finish, so an overload waits where no saga deadline runs.
  // Replies are never held back; a cancel waits only behind the placements held in its own
  // partition. 0: unbounded. docs/kafka.md, "Backpressure".
  std::size_t max_open_orders = 4096;
  // Passivation cap: at most this many live SKU and order actors per shard (the least
  // recently used idle ones stop; the next command restores them from the journal).
  // 0: the runtime's default (10,000). docs/runtime.md, "Passivation".
  std::size_t max_live = 0;
  // How the engine's idle CAF workers wait (runtime::Options::worker_naps): 0 naps, unlike
  // the runtime's 20, goes from polling straight to sleeping until work comes. Measured on
  // the e2e workload (docs/e2e-bench.md, "the engine's workers without naps"): p99 a quarter
  // to a third lower at 1,000-3,000 orders/s and 6-12% less engine CPU, the open loop the same.
  std::size_t worker_naps = 0;
  // The saga's step timeouts (a step's deadline is the earlier of the order's and now + its
  // timeout; `ffe serve --reserve-timeout` etc.). docs/order-saga.md.
  order::Policy order_policy;
  // Extra librdkafka properties for every Kafka client (`-X name=value`).
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  // Where the status lines go ("ffe: embedded Kafka broker at ...", "ffe: ready ..."); each
  // is flushed at once. nullptr: nowhere.
  std::FILE* out = stdout;
  // Tests and tools: adjust the runtime's options (deadlines, limits) before it opens.
  std::function<void(runtime::Options&)> tune_runtime;
  // When set and it turns true during start(), the start gives up at its next step, or within
  // half a second of a wait for the cluster, with kClosed, undoing what it started: `ffe
  // serve` sets it on SIGTERM/SIGINT before it is ready. A recovery in progress finishes first.
  const std::atomic<bool>* stop_requested = nullptr;
};

// Server — owner: serve() or a test. Lifecycle: start() brings everything up in order
// (broker, producer, runtime, topics, egress, ingress, events publisher, HTTP) and fails
// cleanly, undoing what it started, if any step fails. stop() (or the destructor) shuts down
// in the reverse order: ingress first (nothing new comes in), then drain (the runtime goes
// quiet, the outbox relays send what is durable), then the events publisher, HTTP, egress,
// runtime, producer and broker. Not thread-safe: start and stop from one thread; the
// accessors may be used between them.
class Server {
 public:
  static storage::Result<std::unique_ptr<Server>> start(ServeOptions options);
  // What can be refused from the options alone, before anything starts (a malformed --http
  // or an --analytics that names no database ffe speaks): kInvalidArgument with the flag.
  // start() checks it first; `ffe serve` exits 2 on it, as for any usage error.
  static storage::Status check_options(const ServeOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Idempotent.
  void stop();

  // "host:port,..." the clients use (the embedded broker's address without --brokers).
  const std::string& bootstrap() const;
  // The admin HTTP address actually bound ("" without HTTP).
  std::string http_address() const;
  runtime::Runtime& runtime();
  kafka::Ingress& ingress();
  kafka::KafkaEgress& egress();
  kafka::EventsPublisher& events_publisher();
  // The CDC pipeline; nullptr with --analytics off.
  cdc::CdcPipeline* cdc();
  // OK while the journal accepts commits; its fail-stop reason otherwise.
  storage::Status health() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs a Server until SIGTERM or SIGINT, then stops it. Exit code: 0 after a clean stop, 1
// when it could not start or the journal fail-stopped while serving (the reason is on
// stderr).
int serve(const ServeOptions& options);

struct BrokerOptions {
  int partitions = 8;
  std::string topic_prefix = "ff.";
  // Also write the bootstrap address (one line) to this file, for scripts; empty: don't.
  std::string bootstrap_file;
  std::FILE* out = stdout;
};

// `ffe broker`: only the embedded broker, with the contract topics made, until SIGTERM or
// SIGINT (exit 0), so tests and demos can keep the broker alive while ffe is killed and
// restarted. Memory only: stopping it loses every message.
int run_broker(const BrokerOptions& options);

}  // namespace ffe::serve
