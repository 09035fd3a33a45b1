#include "adapters/kafka/topics.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string_view>
#include <thread>

#include "adapters/kafka/rdkafka_internal.h"

namespace ffe::kafka {

using storage::Result;
using storage::Status;
using storage::StatusCode;

Topics::Topics(std::string topic_prefix)
    : prefix(std::move(topic_prefix)),
      orders_commands(prefix + "orders.commands"),
      inventory_commands(prefix + "inventory.commands"),
      payments_requests(prefix + "payments.requests"),
      payments_replies(prefix + "payments.replies"),
      shipments_requests(prefix + "shipments.requests"),
      shipments_replies(prefix + "shipments.replies"),
      orders_outcomes(prefix + "orders.outcomes"),
      dlq(prefix + "dlq"),
      events(prefix + "events") {}

std::vector<std::string> Topics::all() const {
  return {orders_commands,   inventory_commands, payments_requests, payments_replies, shipments_requests,
          shipments_replies, orders_outcomes,    dlq,               events};
}

std::vector<std::string> Topics::inputs() const {
  return {orders_commands, inventory_commands, payments_replies, shipments_replies};
}

namespace {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

Result<Handle> admin_handle(const ClientConfig& client) {
  std::string error;
  ClientConfig admin = client;
  admin.client_id = client.client_id + "-admin";
  rd_kafka_conf_t* conf = internal::make_c_conf(admin, &error);
  if (conf == nullptr) return Status(StatusCode::kInvalidArgument, error);
  char why[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return internal::io_error(std::string("cannot create a Kafka admin client: ") + why);
  }
  return Handle(rk);
}

constexpr std::string_view kNoMetadata = "reading the cluster's topics: ";

// The metadata of every topic, asked for in slices of at most half a second until the timeout,
// so a cancel (ClientConfig::cancel) is seen within one slice.
Result<std::map<std::string, int>> all_topics(rd_kafka_t* rk, int timeout_ms, const std::atomic<bool>* cancel) {
  constexpr auto kSlice = std::chrono::milliseconds(500);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const struct rd_kafka_metadata* metadata = nullptr;
  while (true) {
    const auto slice_start = std::chrono::steady_clock::now();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - slice_start);
    const int wait_ms = static_cast<int>(std::clamp<std::int64_t>(std::min(left, kSlice).count(), 1, kSlice.count()));
    const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &metadata, wait_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (cancel != nullptr && cancel->load()) return Status(StatusCode::kClosed, "stopped while waiting for the cluster");
    const bool waiting = err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT;
    if (!waiting || std::chrono::steady_clock::now() >= deadline) {
      return internal::io_error(std::string(kNoMetadata) + rd_kafka_err2str(err));
    }
    // An error before the slice ran out (no broker known yet): wait out the slice.
    std::this_thread::sleep_until(std::min(slice_start + kSlice, deadline));
    if (cancel != nullptr && cancel->load()) return Status(StatusCode::kClosed, "stopped while waiting for the cluster");
  }
  std::map<std::string, int> topics;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic& topic = metadata->topics[i];
    if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    topics[topic.topic] = topic.partition_cnt;
  }
  rd_kafka_metadata_destroy(metadata);
  return topics;
}

// Whether the cluster's metadata names a controller that is one of its brokers.
bool controller_known(rd_kafka_t* rk, int timeout_ms) {
  const std::int32_t controller = rd_kafka_controllerid(rk, 0);
  if (controller < 0) return false;
  const struct rd_kafka_metadata* metadata = nullptr;
  if (rd_kafka_metadata(rk, 0, nullptr, &metadata, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) return true;  // let CreateTopics say
  bool known = false;
  for (int i = 0; i < metadata->broker_cnt; ++i) known = known || metadata->brokers[i].id == controller;
  rd_kafka_metadata_destroy(metadata);
  return known;
}

}  // namespace

Result<std::vector<std::optional<int>>> partition_counts(const ClientConfig& client,
                                                         const std::vector<std::string>& topics, int timeout_ms,
                                                         std::string* cluster_id) {
  auto handle = admin_handle(client);
  if (!handle) return handle.status();
  auto known = all_topics(handle->get(), timeout_ms, client.cancel);
  if (!known) return known.status();
  if (cluster_id != nullptr) {
    // The metadata just read carries it: no wait.
    char* id = rd_kafka_clusterid(handle->get(), 0);
    *cluster_id = id != nullptr ? id : "";
    if (id != nullptr) rd_kafka_mem_free(handle->get(), id);
  }
  std::vector<std::optional<int>> counts;
  for (const std::string& topic : topics) {
    auto it = known->find(topic);
    counts.push_back(it == known->end() ? std::nullopt : std::optional<int>(it->second));
  }
  return counts;
}

Result<EnsureReport> ensure_topics(const ClientConfig& client, const Topics& topics, int partitions,
                                   int timeout_ms) {
  if (partitions < 1) return Status(StatusCode::kInvalidArgument, "topics need at least 1 partition");
  auto handle = admin_handle(client);
  if (!handle) return handle.status();
  rd_kafka_t* rk = handle->get();
  auto known = all_topics(rk, timeout_ms, client.cancel);
  if (!known) return known.status();

  EnsureReport report;
  std::vector<std::string> missing;
  for (const std::string& topic : topics.all()) {
    (known->contains(topic) ? report.existing : missing).push_back(topic);
  }
  if (missing.empty()) return report;
  // CreateTopics goes to the controller, which the metadata names among its brokers on every
  // Kafka cluster (ZooKeeper or KRaft). librdkafka's mock names broker 0, which it does not
  // have (its brokers count from 1), and the request would only time out.
  if (!controller_known(rk, timeout_ms)) {
    return internal::io_error("creating topics: the cluster names no controller among its brokers, so it cannot create topics (" +
                              std::to_string(missing.size()) + " missing, the first " + missing.front() + ")");
  }

  std::vector<rd_kafka_NewTopic_t*> requests;
  auto free_requests = [&] {
    for (rd_kafka_NewTopic_t* request : requests) rd_kafka_NewTopic_destroy(request);
  };
  char why[512];
  for (const std::string& topic : missing) {
    // Replication factor -1: the cluster's default.replication.factor (Kafka 2.4+).
    rd_kafka_NewTopic_t* request = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, why, sizeof why);
    if (request == nullptr) {
      free_requests();
      return Status(StatusCode::kInvalidArgument, "topic " + topic + ": " + why);
    }
    requests.push_back(request);
  }
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, why, sizeof why);
  rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms, why, sizeof why);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, requests.data(), requests.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 5'000);

  Status status = Status::ok();
  if (event == nullptr) {
    status = internal::io_error("creating topics: no answer from the cluster within " + std::to_string(timeout_ms) + " ms");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = internal::io_error(std::string("creating topics: ") + rd_kafka_event_error_string(event));
  } else {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
    std::size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::string name = rd_kafka_topic_result_name(results[i]);
      const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        report.created.push_back(name);
      } else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        report.existing.push_back(name);  // another creator won the race: fine
      } else if (status.is_ok()) {
        const char* message = rd_kafka_topic_result_error_string(results[i]);
        status = internal::io_error("creating topic " + name + ": " + rd_kafka_err2str(err) +
                                    (message != nullptr && *message != '\0' ? std::string(" (") + message + ")" : ""));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(options);
  free_requests();
  if (!status) return status;
  return report;
}

bool no_broker_answered(const storage::Status& status) {
  return !status.is_ok() && std::string_view(status.message()).starts_with(kNoMetadata);
}

}  // namespace ffe::kafka
