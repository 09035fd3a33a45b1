#pragma once
// EmbeddedBroker — librdkafka's mock cluster (rdkafka_mock.h) as an in-process,
// Kafka-protocol broker on a loopback port, so `ffe serve` alone is a working engine that
// kcat or any Kafka client can talk to (../shared/STACK.md has its facts and limits).
//
// Owner: adapters/serve (`ffe serve` without --brokers, `ffe broker`) or a test.
// Lifecycle: start() creates a throwaway librdkafka handle and the mock cluster on it; the
// listener is a real TCP socket on 127.0.0.1 with a random port (bootstrap()); the
// destructor stops it and every client connected to it sees the broker go down.
//
// Not durable: topics live in memory, each partition keeps at most about 5 MiB or 100,000
// message sets (older ones are dropped). Transactions are accepted but not implemented.
// The Admin API (CreateTopics) is not implemented either: create topics here.
//
// Thread safety: create_topic() and bootstrap() may be called from any thread.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storage/status.h"

namespace ffe::kafka {

class EmbeddedBroker {
 public:
  // brokers: how many mock brokers (1 is enough on one machine).
  static storage::Result<std::unique_ptr<EmbeddedBroker>> start(int brokers = 1);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // "127.0.0.1:PORT[,...]": what clients use as bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }

  // Creates a topic with `partitions` partitions (replication factor 1). OK when it exists
  // already (the mock then keeps its partition count).
  storage::Status create_topic(const std::string& topic, int partitions);
  // The same for each topic (ffe's contract topics: Topics::all()).
  storage::Status create_topics(const std::vector<std::string>& topics, int partitions);

  // Tests: false disconnects every client and refuses new connections (the broker is
  // "down"; its topics and messages are kept); true accepts connections again.
  storage::Status set_available(bool available);

  class Impl;

 private:
  explicit EmbeddedBroker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

}  // namespace ffe::kafka
