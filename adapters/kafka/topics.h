#pragma once
// The contract topics (ARCHITECTURE.md, "Public contracts") under a prefix, and making sure
// they exist on any cluster. No librdkafka header here.
//
// Partitions: every contract topic gets `shards` partitions when ffe creates it (the shard
// of partition p is p % shards, so equal counts make partition index = shard). Topics that
// exist are left alone, whatever their partition count: ffe routes by the payload's id, so
// a different count costs locality, never correctness.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapters/kafka/client_config.h"
#include "storage/status.h"

namespace ffe::kafka {

// Topic names under one prefix ("ff." by default).
struct Topics {
  explicit Topics(std::string prefix = "ff.");
  std::string prefix;
  std::string orders_commands;     // <prefix>orders.commands     (in)
  std::string inventory_commands;  // <prefix>inventory.commands  (in)
  std::string payments_requests;   // <prefix>payments.requests   (out)
  std::string payments_replies;    // <prefix>payments.replies    (in)
  std::string shipments_requests;  // <prefix>shipments.requests  (out)
  std::string shipments_replies;   // <prefix>shipments.replies   (in)
  std::string orders_outcomes;     // <prefix>orders.outcomes     (out)
  std::string dlq;                 // <prefix>dlq                 (out)
  std::string events;              // <prefix>events              (out)
  // All nine, in the order above.
  std::vector<std::string> all() const;
  // The four ffe consumes.
  std::vector<std::string> inputs() const;
};

// Partition counts of the named topics (nullopt: the topic does not exist), from one
// metadata request of all topics (which, unlike a request naming topics, never makes a
// broker auto-create them). `cluster_id`, when given, receives the cluster's id ("" when the
// broker does not say). Errors: kIoError (no broker answered within the timeout).
storage::Result<std::vector<std::optional<int>>> partition_counts(const ClientConfig& client,
                                                                  const std::vector<std::string>& topics,
                                                                  int timeout_ms = 10'000,
                                                                  std::string* cluster_id = nullptr);

struct EnsureReport {
  std::vector<std::string> created;
  std::vector<std::string> existing;
};

// Creates every contract topic that is missing with `partitions` partitions and the
// cluster's default replication factor (Admin API CreateTopics; TOPIC_ALREADY_EXISTS, a race
// with another creator, is fine). Errors: kIoError with the broker's reason. A cluster that
// names no controller in its metadata cannot create topics (librdkafka's mock, `ffe broker`:
// create them there with EmbeddedBroker::create_topic); that is said at once instead of
// after the request's timeout.
storage::Result<EnsureReport> ensure_topics(const ClientConfig& client, const Topics& topics, int partitions,
                                            int timeout_ms = 30'000);

// Whether a failure of ensure_topics() or partition_counts() means no broker answered the
// metadata request (unreachable, wrong address), rather than that the topics could not be made.
bool no_broker_answered(const storage::Status& status);

}  // namespace ffe::kafka
