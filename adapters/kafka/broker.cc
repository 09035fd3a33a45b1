#include "adapters/kafka/broker.h"

// rdkafka_mock.h must follow rdkafka.h.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <thread>

namespace ffe::kafka {

using storage::Status;
using storage::StatusCode;

class EmbeddedBroker::Impl {
 public:
  ~Impl() {
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
    if (handle_ != nullptr) rd_kafka_destroy(handle_);
  }

  Status start(int brokers) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The handle only hosts the cluster; it never connects anywhere. Quiet its logs (it has
    // no bootstrap servers on purpose).
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    rd_kafka_conf_set(conf, "client.id", "ffe-embedded-broker", error, sizeof error);
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (handle_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      return Status(StatusCode::kIoError, std::string("cannot create the embedded broker's handle: ") + error);
    }
    cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
    if (cluster_ == nullptr) return Status(StatusCode::kIoError, "cannot start the embedded Kafka broker");
    return Status::ok();
  }

  Status set_available(bool available) {
    const rd_kafka_resp_err_t err =
        available ? rd_kafka_mock_broker_set_up(cluster_, -1) : rd_kafka_mock_broker_set_down(cluster_, -1);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status(StatusCode::kIoError, std::string("setting the embedded broker ") + (available ? "up" : "down") +
                                              ": " + rd_kafka_err2str(err));
    }
    return Status::ok();
  }

  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

  // Thread-safe: the request goes to the mock cluster's thread through its op queue.
  Status create_topic(const std::string& topic, int partitions) {
    const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      return Status(StatusCode::kIoError, "creating topic " + topic + " on the embedded broker: " + rd_kafka_err2str(err));
    }
    return Status::ok();
  }

 private:
  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

storage::Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start(int brokers) {
  if (brokers < 1) return Status(StatusCode::kInvalidArgument, "the embedded broker needs at least 1 broker");
  auto impl = std::make_unique<Impl>();
  if (Status status = impl->start(brokers); !status) return status;
  auto broker = std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker(std::move(impl)));
  return broker;
}

EmbeddedBroker::EmbeddedBroker(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), bootstrap_(impl_->bootstrap()) {}

EmbeddedBroker::~EmbeddedBroker() = default;

Status EmbeddedBroker::set_available(bool available) { return impl_->set_available(available); }

Status EmbeddedBroker::create_topic(const std::string& topic, int partitions) {
  if (partitions < 1) return Status(StatusCode::kInvalidArgument, "a topic needs at least 1 partition");
  return impl_->create_topic(topic, partitions);
}

}  // namespace ffe::kafka

namespace ffe::kafka {

storage::Status EmbeddedBroker::create_topics(const std::vector<std::string>& topics, int partitions) {
  // In parallel: librdkafka 2.0.2's mock thread sometimes notices a queued request only at its
  // next 1 s poll timeout, so one request after the other can cost a second each, while
  // requests queued together are served together.
  std::vector<storage::Status> statuses(topics.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < topics.size(); ++i) {
    threads.emplace_back([&, i] { statuses[i] = create_topic(topics[i], partitions); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const storage::Status& status : statuses) {
    if (!status) return status;
  }
  return storage::Status::ok();
}

}  // namespace ffe::kafka
