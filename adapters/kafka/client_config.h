#pragma once
// How every Kafka client ffe creates finds its cluster: the bootstrap list plus any extra
// librdkafka properties (CONFIGURATION.md names), so a deployment (SASL, TLS, timeouts) or a
// test (short timeouts) can tune clients without a code change. A plain value type; no
// librdkafka header here (STACK.md: rdkafka headers stay in .cc files).

#include <atomic>
#include <string>
#include <utility>
#include <vector>

namespace ffe::kafka {

struct ClientConfig {
  // "host:port[,host:port...]" (bootstrap.servers).
  std::string brokers;
  // client.id as the brokers log it.
  std::string client_id = "ffe";
  // Extra librdkafka properties, applied last (they override ffe's defaults).
  std::vector<std::pair<std::string, std::string>> properties;
  // When set and it turns true, a wait for the cluster's metadata (topics, partition counts)
  // gives up within half a second with kClosed instead of waiting out its timeout: `ffe serve`
  // sets it on SIGTERM during its start. nullptr: waits run to their timeout.
  const std::atomic<bool>* cancel = nullptr;
};

}  // namespace ffe::kafka
