#pragma once
// KafkaEgress — where the runtime's outbox relays hand durable outbox entries (payment and
// shipment requests, outcomes): they go to Kafka through the shared idempotent Producer.
//
// Owner: adapters/serve (or a test); must outlive the Runtime that calls it.
// Lifecycle: constructed closed (publish() answers false, so the relays keep offering the
// entries: nothing is lost while the topics are being made); open() once the topics exist;
// close() at shutdown makes publish() give up at once (what was not confirmed stays unsent
// in the outbox and goes out after the next start).
//
// Thread safety: publish() is called by one relay thread per shard, concurrently; every
// method is thread-safe.
//
// Guarantee (invariant 2 and at-least-once): publish() returns true only when the broker
// acknowledged every entry of the call (delivery report OK); any failure returns false and
// the relay offers the same entries again. A crash between the acknowledgement and the
// relay's mark may send them twice: consumers dedupe by commandId, outcomes by
// orderId + revision.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/runtime/runtime.h"
#include "adapters/kafka/producer.h"
#include "adapters/kafka/topics.h"

namespace ffe::kafka {

// What outgoing messages look like on the wire: canonical Protobuf JSON with
// `content-type: application/json` (the default), or binary Protobuf with
// `content-type: application/x-protobuf`.
enum class Wire { kJson, kProtobuf };

// The Kafka record for an outbox message: topic, key and headers as the runtime wrote them;
// with Wire::kJson the binary payload is decoded by topic (payments.requests ->
// PaymentRequest, shipments.requests -> ShipmentRequest, orders.outcomes -> OrderOutcome) and
// re-encoded as canonical JSON, its content-type header replaced. A topic it does not know,
// or a payload that does not parse (a bug, logged), goes out as it is.
Record to_record(const storage::OutboxMessage& message, const Topics& topics, Wire wire);

class KafkaEgress final : public runtime::Egress {
 public:
  struct Options {
    std::string topic_prefix = "ff.";
    Wire wire = Wire::kJson;
  };
  struct Stats {
    std::uint64_t records = 0;         // records acknowledged by the broker
    std::uint64_t failed_calls = 0;    // publish() calls that returned false after producing
    std::uint64_t refused_closed = 0;  // publish() calls refused while closed
  };

  KafkaEgress(Producer& producer, Options options);

  void open();
  void close();

  bool publish(runtime::ShardId shard, const std::vector<storage::OutboxEntry>& entries) override;
  // Produces every entry and returns; `done` runs on the producer's poll thread once every
  // delivery report is in (true: all acknowledged), or at once when closed or refused.
  void publish_async(runtime::ShardId shard, const std::vector<storage::OutboxEntry>& entries,
                     std::function<void(bool handed_off)> done) override;

  Stats stats() const;

 private:
  // Shared with delivery callbacks, which may outlive this object.
  struct Counters {
    std::atomic<std::uint64_t> records{0};
    std::atomic<std::uint64_t> failed_calls{0};
    std::atomic<std::uint64_t> refused_closed{0};
  };

  Producer& producer_;
  const Options options_;
  const Topics topics_;
  std::atomic<bool> open_{false};
  std::atomic<bool> closing_{false};
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

}  // namespace ffe::kafka
