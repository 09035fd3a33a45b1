#pragma once
// Ingress — consumes the four input topics (`<prefix>orders.commands`,
// `inventory.commands`, `payments.replies`, `shipments.replies`), decodes each message
// (events/codec.h, by its content-type header) and hands it to the runtime; what cannot be
// decoded, has no usable id, names an unknown command or (after the runtime decided) an
// unknown order goes to `<prefix>dlq` with its original key, bytes and headers plus
// ff-error, ff-source-topic, ff-source-partition and ff-source-offset (ARCHITECTURE.md).
// docs/kafka.md tells the whole design.
//
// Owner: adapters/serve (or a test). Must not outlive the Runtime or the Producer.
// Lifecycle: start() reads each partition's resume position from the journal, assigns every
// partition of the input topics (assign(): no consumer group; this version owns all
// partitions) and starts the consumer thread. stop() (or the destructor) stops consuming,
// waits (bounded) for what was handed over to be acknowledged, records the final resume
// positions and closes the consumer.
//
// Exactly-once effects (invariant 3), per partition:
//  - Every offset handed to the runtime (or to the DLQ producer) is "unacknowledged" until
//    its Ack runs (after the command's effects are durable) or its DLQ record is delivered.
//  - The resume position W = the lowest unacknowledged offset, or the next offset when none
//    is. Every Options::watermark_interval, and at stop, W is recorded durably by a no-op
//    journal commit in shard (partition % shards) carrying input {watermark_source(), W}.
//  - start() resumes each partition at its recorded W (the beginning when none). Messages
//    from W on may have been applied before a crash; they are delivered again and the
//    deciders make the repeat a no-op (a repeated PlaceOrder, a reply matched by commandId,
//    a receipt or adjustment id inside the SKU's window, events/limits.h).
//  - Each command also carries its own position {position_source(), offset} into the batch
//    that holds its effects (for tracing which message caused what).
//
// Backpressure (invariant 7): commands go in with Admission::kTry; on kBusy the partition
// is paused and its messages wait, in order, until the runtime takes them. Nothing is
// dropped and nothing is reordered within a partition.
//
// Thread safety: start/stop from one thread; stats()/watermarks() from any.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "actors/runtime/runtime.h"
#include "adapters/kafka/client_config.h"
#include "adapters/kafka/producer.h"

namespace ffe::kafka {

class Ingress {
 public:
  struct Options {
    ClientConfig client;
    std::string topic_prefix = "ff.";
    // The consumer group id librdkafka requires of a KafkaConsumer. No group is joined
    // (assign(), no subscribe) and no offset is committed to Kafka: the journal holds the
    // positions. Empty: "<prefix>ffe".
    std::string group_id;
    std::chrono::milliseconds watermark_interval{100};
    // How long stop() waits for handed-over messages to be acknowledged.
    std::chrono::milliseconds drain_timeout{15'000};
    // librdkafka's fetch.wait.max.ms: the longest a fetch waits on an idle partition.
    int fetch_wait_max_ms = 10;
  };

  struct Stats {
    std::uint64_t consumed = 0;          // messages received from the broker
    std::uint64_t submitted = 0;         // commands the runtime accepted
    std::uint64_t dlq = 0;               // messages sent to the DLQ (accepted by the producer)
    std::uint64_t dlq_delivered = 0;     // ... and acknowledged by the broker
    std::uint64_t unknown_entity = 0;    // of the DLQ ones, refused by the runtime as unknown order
    std::uint64_t busy = 0;              // submits answered kBusy (a partition paused)
    std::uint64_t refetched = 0;         // messages received twice (after a pause) and skipped
    std::uint64_t ack_errors = 0;        // acks that said the command was not applied
    std::uint64_t watermark_commits = 0; // resume positions recorded
  };

  Ingress(runtime::Runtime& runtime, Producer& dlq_producer, Options options);
  ~Ingress();
  Ingress(const Ingress&) = delete;
  Ingress& operator=(const Ingress&) = delete;

  // Errors: the input topics cannot be described (kIoError), a journal read failed.
  storage::Status start();
  void stop();

  Stats stats() const;
  // The current resume position per watermark source ("resume/<topic>/<partition>"), as
  // computed now (not necessarily recorded yet); partitions that received nothing and have
  // no recorded position are absent.
  std::map<std::string, std::int64_t> watermarks() const;
  // Consumer lag per input partition: the partition's end offset minus the resume position
  // W. The end offset is what the last fetch saw (no broker request), or for a paused
  // partition, which is not fetched, the broker's answer now (one request each, up to 1 s).
  // Empty before start and after stop.
  struct PartitionLag {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t messages = 0;
  };
  std::vector<PartitionLag> lag() const;

  // Journal input sources: where a partition resumes, and a command's own position.
  static std::string watermark_source(const std::string& topic, std::int32_t partition);
  static std::string position_source(const std::string& topic, std::int32_t partition);
  // The recorded resume position of a partition (nullopt: none: start at the beginning).
  static storage::Result<std::optional<std::int64_t>> recorded_watermark(const storage::Journal& journal,
                                                                         std::uint32_t shards,
                                                                         const std::string& topic,
                                                                         std::int32_t partition);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ffe::kafka
