#pragma once
// Test helpers for the simulators' Kafka tests: librdkafka's mock cluster in-process
// (../shared/STACK.md: a real loopback listener, first group join waits 3 s), a producer of
// raw test messages and a reader that assign()s partitions (no group join).

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ffe::participants::testing {

class MockCluster {
 public:
  explicit MockCluster(int brokers = 1) {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (handle_ == nullptr) throw std::runtime_error(error);
    cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
    if (cluster_ == nullptr) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  const std::string& bootstraps() const { return bootstraps_; }
  void create_topic(const std::string& topic, int partitions) {
    if (rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("cannot create topic " + topic);
    }
  }

 private:
  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstraps_;
};

struct Record {
  std::string key;
  std::string value;
  std::optional<std::string> content_type;
  int partition = 0;
};

inline std::unique_ptr<RdKafka::Conf> conf_for(const std::string& brokers) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  conf->set("bootstrap.servers", brokers, error);
  conf->set("log_level", "3", error);
  return conf;
}

// Sends raw messages (with an optional content-type header) and waits until each is acked.
inline void produce(const std::string& brokers, const std::string& topic,
                    const std::vector<Record>& records) {
  std::string error;
  auto conf = conf_for(brokers);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  if (!producer) throw std::runtime_error(error);
  for (const Record& record : records) {
    RdKafka::Headers* headers = RdKafka::Headers::create();
    if (record.content_type) {
      headers->add("content-type", record.content_type->data(), record.content_type->size());
    }
    const RdKafka::ErrorCode err = producer->produce(
        topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
        const_cast<char*>(record.value.data()), record.value.size(), record.key.data(),
        record.key.size(), 0, headers, nullptr);
    if (err != RdKafka::ERR_NO_ERROR) {
      delete headers;
      throw std::runtime_error("produce: " + RdKafka::err2str(err));
    }
  }
  if (producer->flush(10'000) != RdKafka::ERR_NO_ERROR) throw std::runtime_error("flush timed out");
}

// The sum of the high watermarks of a topic's partitions: how many messages it holds.
inline std::int64_t message_count(const std::string& brokers, const std::string& topic,
                                  int partitions) {
  std::string error;
  auto conf = conf_for(brokers);
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), error));
  std::int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    if (client->query_watermark_offsets(topic, p, &low, &high, 5000) != RdKafka::ERR_NO_ERROR) {
      throw std::runtime_error("cannot read the watermarks of " + topic);
    }
    total += high - low;
  }
  return total;
}

// Reads a topic from the beginning of every partition (assign: no group join) until `want`
// records arrived, then `linger` more to catch extras, or until `timeout`.
inline std::vector<Record> read(const std::string& brokers, const std::string& topic,
                                int partitions, std::size_t want,
                                std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                std::chrono::milliseconds linger = std::chrono::milliseconds(500)) {
  std::string error;
  auto conf = conf_for(brokers);
  conf->set("group.id", "ffe-test-reader", error);
  conf->set("enable.auto.commit", "false", error);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (!consumer) throw std::runtime_error(error);
  std::vector<RdKafka::TopicPartition*> assignment;
  for (int p = 0; p < partitions; ++p) {
    assignment.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  consumer->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);

  std::vector<Record> records;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool lingering = false;
  while (std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(100));
    if (message->err() == RdKafka::ERR_NO_ERROR) {
      Record record;
      if (message->key()) record.key = *message->key();
      record.value.assign(static_cast<const char*>(message->payload()), message->len());
      record.partition = message->partition();
      if (RdKafka::Headers* headers = message->headers()) {
        RdKafka::Headers::Header header = headers->get_last("content-type");
        if (header.err() == RdKafka::ERR_NO_ERROR && header.value() != nullptr) {
          record.content_type.emplace(static_cast<const char*>(header.value()), header.value_size());
        }
      }
      records.push_back(std::move(record));
    }
    if (records.size() >= want && !lingering) {
      lingering = true;
      deadline = std::min(deadline, std::chrono::steady_clock::now() + linger);
    }
  }
  consumer->close();
  return records;
}

}  // namespace ffe::participants::testing
