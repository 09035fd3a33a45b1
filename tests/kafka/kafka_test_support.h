#pragma once
// Shared by the Kafka tests (tests/kafka/*_test.cc): plain librdkafka clients that play the
// outside world (producers, a reader of any topic, the payment and shipping services), so
// the tests see ffe only through the Kafka protocol and the contracts. No gtest here.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ffe::kafka::testing {

struct Message {
  std::string topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::optional<std::string> key;  // nullopt: a null key
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  // The last header of that name, nullopt if absent.
  std::optional<std::string> header(const std::string& name) const;
};

// A synchronous producer: send() returns once the broker acknowledged (or failed).
class TestProducer {
 public:
  explicit TestProducer(std::string brokers);
  ~TestProducer();
  // partition -1: by key. Returns the (partition, offset) written, or nullopt on failure.
  std::optional<std::pair<std::int32_t, std::int64_t>> send(
      const std::string& topic, const std::optional<std::string>& key, const std::string& value,
      const std::vector<std::pair<std::string, std::string>>& headers = {}, std::int32_t partition = -1);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Reads every partition of a topic from the beginning (assign(), no group).
class TestReader {
 public:
  TestReader(std::string brokers, std::string topic);
  ~TestReader();
  // Messages read so far plus whatever arrives until at least `count` were read in total or
  // the timeout passes. Returns everything read since construction.
  std::vector<Message> read_until(std::size_t count, std::chrono::milliseconds timeout);
  // Reads for `duration` and returns everything read since construction.
  std::vector<Message> read_for(std::chrono::milliseconds duration);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The payment and shipping services, reduced: every authorize is APPROVED (payment id
// "p-<orderId>") unless the token is tok_decline (DECLINED) or tok_silent (never answered,
// as the contract's simulators do); every create-shipment is
// CREATED ("s-<orderId>"); voids are APPROVED, cancels CANCELLED. Reads the JSON requests
// (and checks their content-type), answers in JSON. Counts what it saw.
class TestParticipants {
 public:
  TestParticipants(std::string brokers, std::string topic_prefix = "ff.");
  ~TestParticipants();
  std::size_t requests() const { return requests_.load(); }
  std::size_t non_json_requests() const { return non_json_.load(); }

 private:
  void run();
  std::string brokers_;
  std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> requests_{0};
  std::atomic<std::size_t> non_json_{0};
  std::thread thread_;
};

// Polls `condition` every 10 ms until it holds or the timeout passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace ffe::kafka::testing
