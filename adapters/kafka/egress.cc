#include "adapters/kafka/egress.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <memory>

#include "events/codec.h"
#include "events/json_writer.h"
#include "ffe/v1/outcomes.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::kafka {

namespace {

constexpr std::string_view kContentType = "content-type";

std::unique_ptr<google::protobuf::Message> message_for(const std::string& topic, const Topics& topics) {
  if (topic == topics.payments_requests) return std::make_unique<v1::PaymentRequest>();
  if (topic == topics.shipments_requests) return std::make_unique<v1::ShipmentRequest>();
  if (topic == topics.orders_outcomes) return std::make_unique<v1::OrderOutcome>();
  return nullptr;
}

void set_content_type(std::vector<Header>& headers, std::string_view type) {
  std::erase_if(headers, [](const Header& header) { return header.name == kContentType; });
  headers.push_back(Header{std::string(kContentType), std::string(type)});
}

}  // namespace

Record to_record(const storage::OutboxMessage& message, const Topics& topics, Wire wire) {
  Record record;
  record.topic = message.topic;
  record.key = message.key;
  for (const storage::OutboxHeader& header : message.headers) record.headers.push_back({header.name, header.value});
  record.value = message.payload;
  if (wire == Wire::kProtobuf) {
    set_content_type(record.headers, events::kProtobufContentType);
    return record;
  }
  std::unique_ptr<google::protobuf::Message> decoded = message_for(message.topic, topics);
  if (!decoded) return record;
  if (!decoded->ParseFromString(message.payload)) {
    spdlog::error("egress: an outbox message for {} (key {}) does not parse as {}; sent as it is",
                  message.topic, message.key, decoded->GetTypeName());
    return record;
  }
  record.value = events::json::encode_message(*decoded);  // = encode_json, by the fast writer
  set_content_type(record.headers, events::kJsonContentType);
  return record;
}

KafkaEgress::KafkaEgress(Producer& producer, Options options)
    : producer_(producer), options_(std::move(options)), topics_(options_.topic_prefix) {}

void KafkaEgress::open() { open_.store(true); }

void KafkaEgress::close() {
  closing_.store(true);
  open_.store(false);
}

bool KafkaEgress::publish(runtime::ShardId shard, const std::vector<storage::OutboxEntry>& entries) {
  auto handed_off = std::make_shared<std::promise<bool>>();
  std::future<bool> result = handed_off->get_future();
  publish_async(shard, entries, [handed_off](bool ok) { handed_off->set_value(ok); });
  // No deadline of our own: a broker that is away makes librdkafka retry until
  // message.timeout.ms, then the reports fail. close() makes it give up waiting.
  while (result.wait_for(std::chrono::seconds(1)) != std::future_status::ready) {
    if (closing_.load()) {
      counters_->failed_calls.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  return result.get();
}

void KafkaEgress::publish_async(runtime::ShardId shard, const std::vector<storage::OutboxEntry>& entries,
                                std::function<void(bool handed_off)> done) {
  if (!open_.load() || closing_.load()) {
    counters_->refused_closed.fetch_add(1, std::memory_order_relaxed);
    done(false);
    return;
  }
  auto batch = DeliveryBatch::make();
  for (const storage::OutboxEntry& entry : entries) {
    DeliveryFn report = batch->expect();
    if (Status status = producer_.produce(to_record(entry.message, topics_, options_.wire), report, &closing_);
        !status) {
      batch->refused(status.to_string());
      break;  // the rest of the call is offered again with it
    }
  }
  batch->on_done([counters = counters_, batch_size = entries.size(), shard, done = std::move(done)](
                     const DeliveryBatch& delivered) {
    if (!delivered.all_ok()) {
      counters->failed_calls.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("egress: shard {}: {} of {} records not delivered ({}); they are offered again", shard.value,
                   delivered.failed(), batch_size, delivered.first_error());
      done(false);
      return;
    }
    counters->records.fetch_add(batch_size, std::memory_order_relaxed);
    done(true);
  });
}

KafkaEgress::Stats KafkaEgress::stats() const {
  Stats stats;
  stats.records = counters_->records.load();
  stats.failed_calls = counters_->failed_calls.load();
  stats.refused_closed = counters_->refused_closed.load();
  return stats;
}

}  // namespace ffe::kafka
