#include "adapters/kafka/ingress.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include "adapters/kafka/rdkafka_internal.h"
#include "adapters/kafka/topics.h"
#include "events/codec.h"
#include "events/limits.h"
#include "events/validate.h"
#include "storage/journal.h"

namespace ffe::kafka {

using runtime::Ack;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

namespace {

enum class InputKind { kOrders, kInventory, kPaymentReplies, kShipmentReplies };

// The index key (shard 0) holding the id of the cluster the recorded positions belong to.
constexpr std::string_view kClusterIdKey = "ingress/cluster-id";
// How long lag() waits for the broker to say where a paused partition ends.
constexpr int kLagQueryTimeoutMs = 1000;

// A message as it arrived, kept for the DLQ: its original key (a null key and an empty one
// both go out as a null key), bytes and headers.
struct Original {
  std::string key;
  std::string value;
  bool key_null = true;     // Kafka tells a null key from an empty one, and a null value
  bool value_null = true;   // (a tombstone) from an empty one: the DLQ keeps which it was

  std::vector<Header> headers;
  bool inventory = false;  // an inventory command: any refusal goes to the DLQ
};

// PartitionState — one input partition. The consumer thread owns the fields above `mu`;
// `unacked` and `handed_next` are shared with the threads that acknowledge (the journal's
// completion thread for acks, the producer's poll thread for DLQ deliveries).
struct PartitionState {
  std::string topic;
  std::int32_t partition = 0;
  InputKind kind = InputKind::kOrders;
  std::string position_source;
  std::string watermark_source;
  ShardId watermark_shard;

  // consumer thread only
  std::int64_t fetched_next = -1;  // offsets below were received; a refetch is skipped
  std::deque<std::unique_ptr<RdKafka::Message>> pending;  // received, waiting for credit
  std::atomic<bool> paused{false};  // written by the consumer thread, read by lag() too
  // The head of `pending` is a PlaceOrder refused for Options::max_open_orders: retried only
  // once the runtime has room again (a check, not a decode and a refused submit).
  bool waiting_for_room = false;

  mutable std::mutex mu;
  std::set<std::int64_t> unacked;  // handed over, not yet acknowledged
  std::int64_t handed_next = -1;   // the offset after the last one handed over (-1: none yet)

  std::atomic<std::int64_t> recorded{-1};  // the resume position durable in the journal
  std::atomic<bool> recording{false};      // a commit of it is in flight

  // W: the lowest unacknowledged offset, or the next offset when none is (-1: unknown).
  std::int64_t watermark() const {
    std::lock_guard lock(mu);
    return unacked.empty() ? handed_next : *unacked.begin();
  }
  void acknowledged(std::int64_t offset) {
    std::lock_guard lock(mu);
    unacked.erase(offset);
  }
};

struct DlqJob {
  PartitionState* partition = nullptr;
  std::int64_t offset = 0;
  std::shared_ptr<const Original> original;
  std::string reason;
  // The original could not be carried (the producer or the broker refused the record for
  // its size): the record then goes without it, and the reason says where it is.
  bool without_original = false;
  std::uint32_t failures = 0;  // produce() or delivery failures so far, for the log
};

// The DLQ record of a job: the original key, bytes and headers, then ff-error and the
// source; or, when the original is too large for the DLQ, its key alone (when that is
// small), no value and no original headers, with an ff-error that says so.
Record dlq_record(const DlqJob& job, const std::string& topic) {
  Record record;
  record.topic = topic;
  const Original& original = *job.original;
  std::string error = job.reason;
  if (!job.without_original) {
    record.key = original.key;
    record.value = original.value;
    record.empty_key_not_null = !original.key_null;
    record.null_value = original.value_null;
    for (const Header& header : original.headers) {
      if (header.name == "ff-error" || header.name.starts_with("ff-source-")) continue;
      record.headers.push_back(header);
    }
  } else {
    const bool key_fits = original.key.size() <= limits::message_bytes_max;
    if (key_fits) {
      record.key = original.key;
      record.empty_key_not_null = !original.key_null;
    }
    record.null_value = true;
    error += "; the original message (" + std::to_string(original.value.size()) + " bytes" +
             (key_fits ? "" : ", key " + std::to_string(original.key.size()) + " bytes") +
             ") is too large for " + topic + " and is not carried: read it at its source offset";
  }
  record.headers.push_back({"ff-error", std::move(error)});
  record.headers.push_back({"ff-source-topic", job.partition->topic});
  record.headers.push_back({"ff-source-partition", std::to_string(job.partition->partition)});
  record.headers.push_back({"ff-source-offset", std::to_string(job.offset)});
  return record;
}

// Retried failures are logged at the 1st, 2nd, 4th, 8th, ... so a long outage does not
// flood the log.
bool worth_logging(std::uint32_t failures) { return (failures & (failures - 1)) == 0; }

// The last header named `name`, matched case-insensitively: producers that
// follow HTTP's spelling send "Content-Type". The exact name is looked up first (what ffe and
// most clients send); the scan of every header runs only when it is absent.
std::optional<std::string> header_value(RdKafka::Message& message, const std::string& name) {
  RdKafka::Headers* headers = message.headers();
  if (headers == nullptr) return std::nullopt;
  auto value_of = [](const RdKafka::Headers::Header& header) -> std::optional<std::string> {
    if (header.err() != RdKafka::ERR_NO_ERROR || header.value() == nullptr) return std::nullopt;
    return std::string(static_cast<const char*>(header.value()), header.value_size());
  };
  if (auto exact = value_of(headers->get_last(name))) return exact;
  std::optional<std::string> found;
  for (const RdKafka::Headers::Header& header : headers->get_all()) {
    if (events::equals_ignoring_case(header.key(), name)) found = value_of(header);
  }
  return found;
}

std::shared_ptr<Original> original_of(RdKafka::Message& message) {
  auto original = std::make_shared<Original>();
  if (const std::string* key = message.key(); key != nullptr) {
    original->key = *key;
    original->key_null = false;
  }
  if (message.payload() != nullptr) {
    original->value.assign(static_cast<const char*>(message.payload()), message.len());
    original->value_null = false;
  }
  if (RdKafka::Headers* headers = message.headers(); headers != nullptr) {
    for (const RdKafka::Headers::Header& header : headers->get_all()) {
      std::string value;
      if (header.value() != nullptr) value.assign(static_cast<const char*>(header.value()), header.value_size());
      original->headers.push_back(Header{header.key(), std::move(value)});
    }
  }
  return original;
}

using Command = std::variant<runtime::OrderCommand, runtime::InventoryCommand>;
using Decoded = std::variant<Command, events::DecodeError>;

template <class T>
bool failed(const events::Decoded<T>& decoded, events::DecodeError* error) {
  if (const auto* e = std::get_if<events::DecodeError>(&decoded)) {
    *error = *e;
    return true;
  }
  return false;
}

// Decodes by the topic's contract. The codec already refuses an unset oneof ("unknown
// command") and an unusable id; the id check here is a second line for the routing id.
Decoded decode(InputKind kind, std::string_view bytes, std::optional<std::string_view> content_type) {
  events::DecodeError error;
  auto id_error = [](std::string_view id, std::string_view path) -> std::optional<events::DecodeError> {
    if (events::is_valid_id(id)) return std::nullopt;
    auto validation = events::validate_id(id, path);
    return events::DecodeError{validation ? validation->to_string() : std::string(path) + ": invalid"};
  };
  switch (kind) {
    case InputKind::kOrders: {
      auto decoded = events::decode_order_command(bytes, content_type);
      if (failed(decoded, &error)) return error;
      v1::OrderCommand& command = std::get<v1::OrderCommand>(decoded);
      if (command.has_place_order()) {
        if (auto e = id_error(command.place_order().order_id(), "placeOrder.orderId")) return *e;
        return Command(runtime::OrderCommand(std::move(*command.mutable_place_order())));
      }
      if (command.has_cancel_order()) {
        if (auto e = id_error(command.cancel_order().order_id(), "cancelOrder.orderId")) return *e;
        return Command(runtime::OrderCommand(std::move(*command.mutable_cancel_order())));
      }
      return events::DecodeError{"unknown command"};
    }
    case InputKind::kInventory: {
      auto decoded = events::decode_inventory_command(bytes, content_type);
      if (failed(decoded, &error)) return error;
      v1::InventoryCommand& command = std::get<v1::InventoryCommand>(decoded);
      if (command.has_receive_stock()) {
        if (auto e = id_error(command.receive_stock().sku(), "receiveStock.sku")) return *e;
        return Command(runtime::InventoryCommand(std::move(*command.mutable_receive_stock())));
      }
      if (command.has_adjust_stock()) {
        if (auto e = id_error(command.adjust_stock().sku(), "adjustStock.sku")) return *e;
        return Command(runtime::InventoryCommand(std::move(*command.mutable_adjust_stock())));
      }
      return events::DecodeError{"unknown command"};
    }
    case InputKind::kPaymentReplies: {
      auto decoded = events::decode_payment_reply(bytes, content_type);
      if (failed(decoded, &error)) return error;
      v1::PaymentReply& reply = std::get<v1::PaymentReply>(decoded);
      if (auto e = id_error(reply.order_id(), "orderId")) return *e;
      return Command(runtime::OrderCommand(std::move(reply)));
    }
    case InputKind::kShipmentReplies: {
      auto decoded = events::decode_shipment_reply(bytes, content_type);
      if (failed(decoded, &error)) return error;
      v1::ShipmentReply& reply = std::get<v1::ShipmentReply>(decoded);
      if (auto e = id_error(reply.order_id(), "orderId")) return *e;
      return Command(runtime::OrderCommand(std::move(reply)));
    }
  }
  return events::DecodeError{"unknown input topic"};
}

// A command whose refusal goes to the DLQ, so its original bytes are kept until it is
// acknowledged: an order command that can name an order that does not exist (kUnknownEntity),
// and every inventory command. An inventory command has no outcome topic, so a receipt or
// adjustment the SKU refuses (qty 0, a delta that would take stock below zero) would
// otherwise vanish without a trace (invariant 6). PlaceOrder never needs it: a refused order
// is a journaled REJECTED outcome.
bool may_go_to_dlq(const Command& command) {
  if (std::holds_alternative<runtime::InventoryCommand>(command)) return true;
  const auto* order = std::get_if<runtime::OrderCommand>(&command);
  return order != nullptr && !std::holds_alternative<v1::PlaceOrder>(*order);
}

// Logs at most once per interval per site.
class RateLimitedLog {
 public:
  bool allow() {
    const std::int64_t now = internal::now_ms();
    std::int64_t last = last_.load();
    return now - last >= 5'000 && last_.compare_exchange_strong(last, now);
  }

 private:
  std::atomic<std::int64_t> last_{-1'000'000};
};

struct TopicPartitionList {
  std::vector<RdKafka::TopicPartition*> list;
  ~TopicPartitionList() { RdKafka::TopicPartition::destroy(list); }
};

// What the acknowledging threads touch. Held by shared_ptr in every callback, so an ack or
// delivery report that arrives after the Ingress was destroyed (stop() gave up waiting) finds
// it alive.
struct Shared {
  std::vector<std::unique_ptr<PartitionState>> partitions;
  std::mutex dlq_mu;
  std::vector<DlqJob> dlq_jobs;  // from acks and failed deliveries; produced by the consumer thread
  std::atomic<std::uint64_t> consumed{0}, submitted{0}, dlq{0}, dlq_delivered{0}, unknown_entity{0}, busy{0},
      refetched{0}, ack_errors{0}, watermark_commits{0};
  RateLimitedLog ack_error_log;
  RateLimitedLog refusal_log;

  void on_ack(PartitionState& p, std::int64_t offset, const std::shared_ptr<const Original>& original,
              const Ack& ack) {
    if (!ack.status) {
      // Not applied: the offset stays unacknowledged, so the resume position stays below it
      // and the next start delivers it again.
      ack_errors.fetch_add(1, std::memory_order_relaxed);
      if (ack_error_log.allow()) {
        spdlog::error("ingress: {}/{}@{} was not applied: {} (it is delivered again after a restart)", p.topic,
                      p.partition, offset, ack.status.to_string());
      }
      return;
    }
    // Unknown order (a cancel or a reply for an order that does not exist), or any refused
    // inventory command: to the DLQ with the reason. Other refusals of order commands change
    // nothing and are answered elsewhere (a late reply is counted; a cancel after terminal is
    // a no-op by contract).
    const bool refused_inventory = ack.rejection && original && original->inventory;
    if (ack.rejection && original && (ack.rejection->code == RejectionCode::kUnknownEntity || refused_inventory)) {
      if (ack.rejection->code == RejectionCode::kUnknownEntity) unknown_entity.fetch_add(1, std::memory_order_relaxed);
      // Its ff-error says why too, but a crash before the record is delivered would leave only
      // the redelivery's "refused when it was first delivered" (docs/kafka.md).
      if (refused_inventory && refusal_log.allow()) {
        spdlog::warn("ingress: {}/{}@{} refused: {} (to the DLQ; at most one such line per 5 s)", p.topic, p.partition,
                     offset, ack.rejection->reason);
      }
      std::lock_guard lock(dlq_mu);
      dlq_jobs.push_back(DlqJob{&p, offset, original, ack.rejection->reason});
      return;  // acknowledged once the DLQ record is delivered
    }
    p.acknowledged(offset);
  }
};

}  // namespace

class Ingress::Impl {
 public:
  Impl(runtime::Runtime& runtime, Producer& producer, Options options)
      : runtime_(runtime), producer_(producer), options_(std::move(options)), topics_(options_.topic_prefix) {
    if (options_.group_id.empty()) options_.group_id = options_.topic_prefix + "ffe";
  }
  ~Impl() { stop(); }

  Status start();
  void stop();
  Stats stats() const;
  std::map<std::string, std::int64_t> watermarks() const;
  std::vector<PartitionLag> lag() const;

 private:
  // kNoRoom: a PlaceOrder refused for max_open_orders (only this partition waits).
  enum class Handed { kDone, kBusy, kNoRoom, kRefused };

  Status describe_partitions(std::string* cluster_id);
  void run();
  void on_message(std::unique_ptr<RdKafka::Message> message);
  Handed hand(PartitionState& p, RdKafka::Message& message);
  void send_to_dlq(DlqJob job);
  void drain_dlq_jobs();
  void retry_pending();
  void set_paused(PartitionState& p, bool paused);
  void record_watermarks(bool wait);
  void drain_at_stop();
  PartitionState* find(const std::string& topic, std::int32_t partition);

  runtime::Runtime& runtime_;
  Producer& producer_;
  Options options_;
  const Topics topics_;
  internal::LogEvents events_{"ffe-ingress"};
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  // Guards consumer_'s destruction against lag() on a scraping thread.
  mutable std::mutex consumer_mu_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::vector<std::unique_ptr<PartitionState>>& partitions_ = shared_->partitions;
  std::map<std::string, std::vector<PartitionState*>> by_topic_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::size_t paused_count_ = 0;

  RateLimitedLog consume_error_log_, refused_log_;
};

Status Ingress::Impl::describe_partitions(std::string* cluster_id) {
  const std::vector<std::string> inputs = topics_.inputs();
  ClientConfig client = options_.client;
  client.client_id = options_.client.client_id + "-ingress";
  auto counts = partition_counts(client, inputs, 10'000, cluster_id);
  if (!counts) return counts.status();
  const std::uint32_t shards = runtime_.shard_count();
  const InputKind kinds[] = {InputKind::kOrders, InputKind::kInventory, InputKind::kPaymentReplies,
                             InputKind::kShipmentReplies};
  for (std::size_t t = 0; t < inputs.size(); ++t) {
    if (!(*counts)[t]) {
      return Status(StatusCode::kInvalidArgument, "the input topic " + inputs[t] + " does not exist");
    }
    for (int i = 0; i < *(*counts)[t]; ++i) {
      auto p = std::make_unique<PartitionState>();
      p->topic = inputs[t];
      p->partition = i;
      p->kind = kinds[t];
      p->position_source = position_source(p->topic, i);
      p->watermark_source = watermark_source(p->topic, i);
      p->watermark_shard = ShardId{static_cast<std::uint32_t>(i) % shards};
      by_topic_[p->topic].push_back(p.get());
      partitions_.push_back(std::move(p));
    }
  }
  return Status::ok();
}

Status Ingress::Impl::start() {
  std::string error;
  ClientConfig client = options_.client;
  client.client_id = options_.client.client_id + "-ingress";
  auto conf = internal::make_conf(client, &events_, &error);
  if (!conf) return Status(StatusCode::kInvalidArgument, error);
  const std::pair<std::string, std::string> settings[] = {
      {"group.id", options_.group_id},
      // The journal holds the positions; Kafka's committed offsets are never used.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A recorded position the broker no longer has (retention, a new embedded broker):
      // start from what it has.
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"fetch.wait.max.ms", std::to_string(options_.fetch_wait_max_ms)},
  };
  for (const auto& [name, value] : settings) {
    if (!internal::set(*conf, name, value, &error)) return Status(StatusCode::kInvalidArgument, error);
  }
  for (const auto& [name, value] : client.properties) {
    if (!internal::set(*conf, name, value, &error)) return Status(StatusCode::kInvalidArgument, error);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (!consumer_) return internal::io_error("cannot create the Kafka consumer: " + error);

  std::string cluster_id;
  if (Status status = describe_partitions(&cluster_id); !status) return status;

  storage::Journal& journal = runtime_.journal();
  // Positions recorded against another cluster (a new embedded broker: memory only) name
  // offsets of a log that is gone: start from the beginning of the new one.
  bool positions_valid = true;
  auto stored_id = journal.index_scan(ShardId{0}, kClusterIdKey, {}, 1);
  if (!stored_id) return stored_id.status();
  const bool has_stored_id = !stored_id->empty() && stored_id->front().key == kClusterIdKey;
  if (has_stored_id && !cluster_id.empty() && stored_id->front().value != cluster_id) {
    spdlog::warn("ingress: the cluster id changed ({} -> {}): the recorded positions name another cluster's "
                 "log; consuming every input partition from its beginning",
                 stored_id->front().value, cluster_id);
    positions_valid = false;
  }
  if (!cluster_id.empty() && (!has_stored_id || stored_id->front().value != cluster_id)) {
    storage::CommitRequest request;
    request.shard = ShardId{0};
    request.index_put.push_back({std::string(kClusterIdKey), cluster_id});
    if (storage::CommitResult result = journal.commit(std::move(request)).get(); !result.status) return result.status;
  }

  TopicPartitionList assignment;
  for (auto& p : partitions_) {
    std::int64_t start = RdKafka::Topic::OFFSET_BEGINNING;
    if (positions_valid) {
      auto recorded = journal.input_offset(p->watermark_shard, p->watermark_source);
      if (!recorded) return recorded.status();
      if (*recorded) {
        std::int64_t low = 0, high = 0;
        const RdKafka::ErrorCode err = consumer_->query_watermark_offsets(p->topic, p->partition, &low, &high, 10'000);
        if (err == RdKafka::ERR_NO_ERROR && high < **recorded) {
          spdlog::warn("ingress: {}/{}: the recorded position {} is past the partition's end {} (a new broker?); "
                       "consuming it from its beginning",
                       p->topic, p->partition, **recorded, high);
        } else {
          start = **recorded;
          p->recorded.store(start);
          p->handed_next = start;
        }
      }
    }
    assignment.list.push_back(RdKafka::TopicPartition::create(p->topic, p->partition, start));
  }
  if (const RdKafka::ErrorCode err = consumer_->assign(assignment.list); err != RdKafka::ERR_NO_ERROR) {
    return internal::io_error("assigning the input partitions: " + RdKafka::err2str(err));
  }
  spdlog::info("ingress: consuming {} partitions of {} topics", partitions_.size(), by_topic_.size());
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ffe-ingress");  // for top -H and perf
    run();
  });
  return Status::ok();
}

void Ingress::Impl::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  // Messages still waiting in a paused partition (for credit, or for room under the open-orders
  // bound) were never handed over, so their offsets were never acknowledged: the next start
  // reads them again. They must go before the consumer: librdkafka's destroy waits for every
  // message it handed out, and with one still held it waited forever (SIGTERM never ended).
  for (auto& p : partitions_) p->pending.clear();
  std::lock_guard lock(consumer_mu_);
  if (consumer_) {
    consumer_->close();
    consumer_.reset();
  }
}

PartitionState* Ingress::Impl::find(const std::string& topic, std::int32_t partition) {
  auto it = by_topic_.find(topic);
  if (it == by_topic_.end() || partition < 0 || static_cast<std::size_t>(partition) >= it->second.size()) return nullptr;
  return it->second[static_cast<std::size_t>(partition)];
}

void Ingress::Impl::run() {
  auto next_record = std::chrono::steady_clock::now() + options_.watermark_interval;
  while (!stop_.load()) {
    drain_dlq_jobs();
    if (paused_count_ > 0) retry_pending();
    if (std::chrono::steady_clock::now() >= next_record) {
      record_watermarks(false);
      next_record = std::chrono::steady_clock::now() + options_.watermark_interval;
    }
    // Short polls while a partition waits for credit, so it is retried promptly.
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(paused_count_ > 0 ? 2 : 50));
    if (message) on_message(std::move(message));
  }
  drain_at_stop();
}

void Ingress::Impl::on_message(std::unique_ptr<RdKafka::Message> message) {
  switch (message->err()) {
    case RdKafka::ERR_NO_ERROR:
      break;
    case RdKafka::ERR__TIMED_OUT:
    case RdKafka::ERR__PARTITION_EOF:
      return;
    default:
      if (consume_error_log_.allow()) {
        spdlog::warn("ingress: consuming: {} {} (librdkafka retries)", RdKafka::err2str(message->err()),
                     message->errstr());
      }
      return;
  }
  PartitionState* p = find(message->topic_name(), message->partition());
  if (p == nullptr) return;  // not assigned by us: cannot happen with assign()
  shared_->consumed.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t offset = message->offset();
  if (offset < p->fetched_next) {
    // Already received (pausing and resuming can fetch a partition again from the
    // consumer's position); it is handed over or waiting in `pending`.
    shared_->refetched.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  p->fetched_next = offset + 1;
  if (!p->pending.empty()) {
    p->pending.push_back(std::move(message));  // behind the ones waiting: keep the order
    return;
  }
  if (const Handed handed = hand(*p, *message); handed != Handed::kDone) {
    p->pending.push_back(std::move(message));
    p->waiting_for_room = handed == Handed::kNoRoom;
    set_paused(*p, true);
  }
}

Ingress::Impl::Handed Ingress::Impl::hand(PartitionState& p, RdKafka::Message& message) {
  const std::int64_t offset = message.offset();
  const std::optional<std::string> content_type = header_value(message, "content-type");
  const std::string_view bytes(message.payload() != nullptr ? static_cast<const char*>(message.payload()) : "",
                               message.len());
  Decoded decoded = decode(p.kind, bytes, content_type ? std::optional<std::string_view>(*content_type) : std::nullopt);
  if (auto* error = std::get_if<events::DecodeError>(&decoded)) {
    {
      std::lock_guard lock(p.mu);
      p.unacked.insert(offset);
      p.handed_next = offset + 1;
    }
    send_to_dlq(DlqJob{&p, offset, original_of(message), error->reason});
    return Handed::kDone;
  }
  Command& command = std::get<Command>(decoded);
  std::shared_ptr<const Original> original;
  if (may_go_to_dlq(command)) {
    std::shared_ptr<Original> kept = original_of(message);
    kept->inventory = std::holds_alternative<runtime::InventoryCommand>(command);
    original = std::move(kept);
  }
  std::int64_t handed_before;
  {
    std::lock_guard lock(p.mu);
    p.unacked.insert(offset);
    handed_before = p.handed_next;
    p.handed_next = offset + 1;
  }
  runtime::AckFn done = [shared = shared_, &p, offset, original](const Ack& ack) {
    shared->on_ack(p, offset, original, ack);
  };
  storage::InputPosition input{p.position_source, offset};
  Status status = std::visit(
      [&](auto& c) { return runtime_.submit(std::move(c), std::move(done), runtime::Admission::kTry, input); }, command);
  if (status) {
    shared_->submitted.fetch_add(1, std::memory_order_relaxed);
    return Handed::kDone;
  }
  {
    std::lock_guard lock(p.mu);
    p.unacked.erase(offset);
    p.handed_next = handed_before;
  }
  if (status.code() == StatusCode::kBusy) {
    shared_->busy.fetch_add(1, std::memory_order_relaxed);
    if (std::holds_alternative<runtime::OrderCommand>(command) &&
        std::holds_alternative<v1::PlaceOrder>(std::get<runtime::OrderCommand>(command)) &&
        !runtime_.placements_admissible()) {
      return Handed::kNoRoom;
    }
    return Handed::kBusy;
  }
  // Closed or fail-stopped: the message waits (it is not acknowledged, so a restart
  // delivers it again).
  if (refused_log_.allow()) {
    spdlog::error("ingress: the runtime refused {}/{}@{}: {}; the partition waits", p.topic, p.partition, offset,
                  status.to_string());
  }
  return Handed::kRefused;
}

void Ingress::Impl::send_to_dlq(DlqJob job) {
  auto shared_job = std::make_shared<DlqJob>(job);
  Status status =
      producer_.produce(dlq_record(job, topics_.dlq), [shared = shared_, shared_job](const Delivery& delivery) {
        if (delivery.ok) {
          shared->dlq_delivered.fetch_add(1, std::memory_order_relaxed);
          shared_job->partition->acknowledged(shared_job->offset);
          return;
        }
        DlqJob again = *shared_job;
        if (delivery.too_large && !again.without_original) {
          // Sending the same bytes again would fail for ever, and the partition's resume
          // position would stay at this offset (docs/kafka.md, "The DLQ").
          again.without_original = true;
          spdlog::warn("ingress: the DLQ record for {}/{}@{} is too large for the broker ({}); sending it without "
                       "the original",
                       again.partition->topic, again.partition->partition, again.offset, delivery.error);
        } else if (worth_logging(++again.failures)) {
          spdlog::warn("ingress: a DLQ record for {}/{}@{} was not delivered ({}, {} times); sending it again",
                       again.partition->topic, again.partition->partition, again.offset, delivery.error,
                       again.failures);
        }
        std::lock_guard lock(shared->dlq_mu);
        shared->dlq_jobs.push_back(std::move(again));
      });
  if (status) {
    shared_->dlq.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (status.code() == StatusCode::kInvalidArgument && !job.without_original) {
    // The producer refused it (larger than its message.max.bytes): no retry can change that.
    spdlog::warn("ingress: the DLQ record for {}/{}@{} cannot be produced ({}); sending it without the original",
                 job.partition->topic, job.partition->partition, job.offset, status.to_string());
    job.without_original = true;
    send_to_dlq(std::move(job));
    return;
  }
  if (worth_logging(++job.failures)) {
    spdlog::warn("ingress: producing a DLQ record for {}/{}@{} failed ({}, {} times); trying again",
                 job.partition->topic, job.partition->partition, job.offset, status.to_string(), job.failures);
  }
  std::lock_guard lock(shared_->dlq_mu);
  shared_->dlq_jobs.push_back(std::move(job));
}

void Ingress::Impl::drain_dlq_jobs() {
  std::vector<DlqJob> jobs;
  {
    std::lock_guard lock(shared_->dlq_mu);
    if (shared_->dlq_jobs.empty()) return;
    jobs.swap(shared_->dlq_jobs);
  }
  for (DlqJob& job : jobs) send_to_dlq(std::move(job));
}

void Ingress::Impl::set_paused(PartitionState& p, bool paused) {
  if (p.paused.load() == paused) return;
  TopicPartitionList list;
  list.list.push_back(RdKafka::TopicPartition::create(p.topic, p.partition));
  const RdKafka::ErrorCode err = paused ? consumer_->pause(list.list) : consumer_->resume(list.list);
  if (err != RdKafka::ERR_NO_ERROR) {
    spdlog::warn("ingress: {} {}/{}: {}", paused ? "pausing" : "resuming", p.topic, p.partition, RdKafka::err2str(err));
  }
  p.paused.store(paused);
  paused ? ++paused_count_ : --paused_count_;
}

void Ingress::Impl::retry_pending() {
  bool refused = false;
  for (auto& owned : partitions_) {
    PartitionState& p = *owned;
    if (!p.paused.load()) continue;
    // Open orders at the bound hold back only the partitions whose next message places one;
    // replies and cancels (what closes orders) go on.
    if (p.waiting_for_room && !runtime_.placements_admissible()) continue;
    p.waiting_for_room = false;
    bool no_room = false;
    while (!p.pending.empty()) {
      const Handed handed = hand(p, *p.pending.front());
      if (handed == Handed::kNoRoom) {
        no_room = p.waiting_for_room = true;
        break;
      }
      if (handed != Handed::kDone) {
        refused = true;
        break;
      }
      p.pending.pop_front();
    }
    if (refused) break;  // credit is shared: the others would be refused too
    if (no_room) continue;
    set_paused(p, false);
  }
  if (refused) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Ingress::Impl::record_watermarks(bool wait) {
  storage::Journal& journal = runtime_.journal();
  for (auto& owned : partitions_) {
    PartitionState& p = *owned;
    const std::int64_t w = p.watermark();
    if (w < 0 || w == p.recorded.load()) continue;
    storage::CommitRequest request;
    request.shard = p.watermark_shard;
    request.input = storage::InputPosition{p.watermark_source, w};
    if (wait) {
      storage::CommitResult result = journal.commit(std::move(request)).get();
      if (result.status) {
        p.recorded.store(w);
        shared_->watermark_commits.fetch_add(1, std::memory_order_relaxed);
      } else {
        spdlog::warn("ingress: recording the position of {}/{} failed: {}", p.topic, p.partition,
                     result.status.to_string());
      }
      continue;
    }
    bool expected = false;
    if (!p.recording.compare_exchange_strong(expected, true)) continue;  // one in flight per partition
    Status status = journal.submit(
        std::move(request),
        [shared = shared_, &p, w](const storage::CommitResult& result) {
          if (result.status) {
            p.recorded.store(w);
            shared->watermark_commits.fetch_add(1, std::memory_order_relaxed);
          }
          p.recording.store(false);
        },
        storage::Admission::kTry);
    if (!status) p.recording.store(false);  // busy: next interval
  }
}

void Ingress::Impl::drain_at_stop() {
  // Everything handed over is owed an ack (or a DLQ delivery); wait for it, bounded, so the
  // recorded positions are as far as they can be. What does not finish is delivered again.
  const auto until = std::chrono::steady_clock::now() + options_.drain_timeout;
  while (std::chrono::steady_clock::now() < until) {
    // A fail-stopped journal acknowledges nothing any more: no point waiting.
    if (!runtime_.journal().status()) break;
    drain_dlq_jobs();
    bool idle = true;
    for (auto& p : partitions_) {
      std::lock_guard lock(p->mu);
      if (!p->unacked.empty()) {
        idle = false;
        break;
      }
    }
    if (idle) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Let an asynchronous recording finish before the last one (keeps them in order).
  for (auto& p : partitions_) {
    while (p->recording.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  record_watermarks(true);
}

Ingress::Stats Ingress::Impl::stats() const {
  Stats stats;
  stats.consumed = shared_->consumed.load();
  stats.submitted = shared_->submitted.load();
  stats.dlq = shared_->dlq.load();
  stats.dlq_delivered = shared_->dlq_delivered.load();
  stats.unknown_entity = shared_->unknown_entity.load();
  stats.busy = shared_->busy.load();
  stats.refetched = shared_->refetched.load();
  stats.ack_errors = shared_->ack_errors.load();
  stats.watermark_commits = shared_->watermark_commits.load();
  return stats;
}

std::map<std::string, std::int64_t> Ingress::Impl::watermarks() const {
  std::map<std::string, std::int64_t> out;
  for (const auto& p : partitions_) {
    const std::int64_t w = p->watermark();
    if (w >= 0) out[p->watermark_source] = w;
  }
  return out;
}

// ---- Ingress ------------------------------------------------------------------------------------

Ingress::Ingress(runtime::Runtime& runtime, Producer& dlq_producer, Options options)
    : impl_(std::make_unique<Impl>(runtime, dlq_producer, std::move(options))) {}
Ingress::~Ingress() = default;

Status Ingress::start() { return impl_->start(); }
void Ingress::stop() { impl_->stop(); }
std::vector<Ingress::PartitionLag> Ingress::Impl::lag() const {
  std::vector<PartitionLag> out;
  std::lock_guard lock(consumer_mu_);
  if (!consumer_) return out;
  bool broker_answers = true;
  for (const auto& p : partitions_) {
    std::int64_t low = -1;
    std::int64_t high = -1;
    // The offsets the last fetch responses carried: no request to the broker. A paused
    // partition is not fetched, so those would stay where the pause began while the backlog
    // grows in Kafka: ask the broker (until one such request fails).
    bool known = false;
    if (p->paused.load() && broker_answers) {
      known = consumer_->query_watermark_offsets(p->topic, p->partition, &low, &high, kLagQueryTimeoutMs) ==
              RdKafka::ERR_NO_ERROR;
      broker_answers = known;
    }
    if (!known && consumer_->get_watermark_offsets(p->topic, p->partition, &low, &high) != RdKafka::ERR_NO_ERROR) {
      continue;
    }
    if (high < 0) continue;
    std::int64_t at = p->watermark();
    if (at < 0) at = p->recorded.load();
    if (at < 0) at = std::max<std::int64_t>(low, 0);
    out.push_back(PartitionLag{p->topic, p->partition, std::max<std::int64_t>(high - at, 0)});
  }
  return out;
}

Ingress::Stats Ingress::stats() const { return impl_->stats(); }
std::vector<Ingress::PartitionLag> Ingress::lag() const { return impl_->lag(); }
std::map<std::string, std::int64_t> Ingress::watermarks() const { return impl_->watermarks(); }

std::string Ingress::watermark_source(const std::string& topic, std::int32_t partition) {
  return "resume/" + topic + "/" + std::to_string(partition);
}

std::string Ingress::position_source(const std::string& topic, std::int32_t partition) {
  return topic + "/" + std::to_string(partition);
}

storage::Result<std::optional<std::int64_t>> Ingress::recorded_watermark(const storage::Journal& journal,
                                                                         std::uint32_t shards,
                                                                         const std::string& topic,
                                                                         std::int32_t partition) {
  return journal.input_offset(ShardId{static_cast<std::uint32_t>(partition) % shards},
                              watermark_source(topic, partition));
}

}  // namespace ffe::kafka
