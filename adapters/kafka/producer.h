#pragma once
// Producer — the one Kafka producer a process of ffe shares between the outbox egress, the
// ingress's DLQ and the events publisher: librdkafka's idempotent producer (acks=all,
// enable.idempotence=true, a few ms of linger so messages batch), behind a CAF- and
// rdkafka-free interface.
//
// Owner: adapters/serve (or a test). Lifecycle: create() connects lazily (librdkafka retries
// brokers in the background forever); a poll thread serves delivery reports until the
// destructor, which flushes for at most Options::close_flush_timeout and then drops what is
// left undelivered (its callbacks then run with an error).
//
// Thread safety: every method may be called from any thread. Delivery callbacks run on the
// poll thread: keep them short and never call back into produce() with a blocking wait.
//
// Guarantees:
//  - Every accepted produce() gets exactly one delivery callback: ok once the broker
//    acknowledged the record on all in-sync replicas, an error otherwise (message timeout,
//    fatal producer error, close).
//  - Per partition, records are written in produce() order, without duplicates from the
//    producer's own retries (idempotence).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapters/kafka/client_config.h"
#include "storage/status.h"

namespace ffe::kafka {

using storage::Result;
using storage::Status;
using storage::StatusCode;

struct Header {
  std::string name;
  std::string value;
  friend bool operator==(const Header&, const Header&) = default;
};

struct Record {
  std::string topic;
  std::string key;  // empty: a null key (Kafka tells the two apart; ffe never sends an empty one)
  std::string value;
  // For the DLQ, which forwards input as it came: an empty key that is not null, and a
  // null value (a tombstone) rather than an empty one.
  bool empty_key_not_null = false;
  bool null_value = false;
  std::vector<Header> headers;
  // -1: the partitioner picks by key (librdkafka's default, consistent_random).
  std::int32_t partition = -1;
};

struct Delivery {
  bool ok = false;
  std::string error;  // set when !ok
  // The broker refused the record for its size: sending it again cannot succeed.
  bool too_large = false;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

using DeliveryFn = std::function<void(const Delivery&)>;

class Producer {
 public:
  struct Options {
    ClientConfig client;
    int linger_ms = 5;
    // librdkafka's message.timeout.ms: how long a record may wait for the broker before its
    // delivery fails (and the caller offers it again). 0: librdkafka's default (5 minutes).
    int message_timeout_ms = 0;
    std::chrono::milliseconds close_flush_timeout{10'000};
  };

  static Result<std::unique_ptr<Producer>> create(Options options);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Queues a record. OK: `done` runs exactly once, later, on the poll thread. While
  // librdkafka's local queue is full it waits (push-back), until `abort` (if given) turns
  // true. Not OK (`done` never runs): kInvalidArgument (too large, bad topic), kClosed
  // (aborted or closing), kIoError (a fatal producer error).
  Status produce(Record record, DeliveryFn done, const std::atomic<bool>* abort = nullptr);

  // Waits until every queued record has its delivery report or the timeout passes; false
  // on timeout.
  bool flush(std::chrono::milliseconds timeout);

  // Records queued and not yet reported.
  std::size_t in_flight() const;

  class Impl;

 private:
  explicit Producer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// DeliveryBatch — counts the delivery reports of a group of records so a caller can wait
// for all of them. Owner: the caller, through a shared_ptr (the callbacks hold it, so a
// caller that gives up waiting leaves no dangling pointer). Thread-safe.
class DeliveryBatch : public std::enable_shared_from_this<DeliveryBatch> {
 public:
  static std::shared_ptr<DeliveryBatch> make() { return std::shared_ptr<DeliveryBatch>(new DeliveryBatch()); }
  // A callback for one more record. Call before produce(); if produce() refuses the record,
  // call refused() so the count stays right.
  DeliveryFn expect();
  void refused(std::string error);
  // Waits until every expected report arrived, the timeout passed, or `abort` turned true.
  // True only when all arrived.
  bool wait(std::chrono::milliseconds timeout, const std::atomic<bool>* abort = nullptr);
  bool all_ok() const;
  std::size_t failed() const;
  std::string first_error() const;
  // Call after the last expect()/refused(): `fn` runs once, when every expected report is
  // in (at once, on this thread, if they already are; else on the thread of the last
  // report). Instead of wait(), for a caller that must not block.
  void on_done(std::function<void(const DeliveryBatch&)> fn);

 private:
  DeliveryBatch() = default;
  void report(const Delivery& delivery);
  std::function<void(const DeliveryBatch&)> on_done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t expected_ = 0;
  std::size_t reported_ = 0;
  std::size_t failed_ = 0;
  std::string first_error_;
};

}  // namespace ffe::kafka
