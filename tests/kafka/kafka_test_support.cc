#include "tests/kafka/kafka_test_support.h"

#include <librdkafka/rdkafkacpp.h>

#include <cstdio>
#include <functional>

#include "events/codec.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::kafka::testing {

namespace {

std::unique_ptr<RdKafka::Conf> conf_for(const std::string& brokers) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  conf->set("bootstrap.servers", brokers, error);
  conf->set("log_level", "3", error);
  return conf;
}

Message to_message(RdKafka::Message& m) {
  Message out;
  out.topic = m.topic_name();
  out.partition = m.partition();
  out.offset = m.offset();
  if (m.key() != nullptr) out.key = *m.key();
  if (m.payload() != nullptr) out.value.assign(static_cast<const char*>(m.payload()), m.len());
  if (RdKafka::Headers* headers = m.headers(); headers != nullptr) {
    for (const RdKafka::Headers::Header& h : headers->get_all()) {
      out.headers.emplace_back(h.key(), h.value() == nullptr
                                            ? std::string()
                                            : std::string(static_cast<const char*>(h.value()), h.value_size()));
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> Message::header(const std::string& name) const {
  std::optional<std::string> found;
  for (const auto& [n, v] : headers) {
    if (n == name) found = v;
  }
  return found;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---- TestProducer ------------------------------------------------------------------------------

class TestProducer::Impl : public RdKafka::DeliveryReportCb {
 public:
  explicit Impl(const std::string& brokers) {
    auto conf = conf_for(brokers);
    std::string error;
    conf->set("linger.ms", "0", error);
    // Above librdkafka's default of 1,000,000, so tests can send input larger than what
    // ffe's own producer takes by default.
    conf->set("message.max.bytes", "4000000", error);
    conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), error);
    producer.reset(RdKafka::Producer::create(conf.get(), error));
    if (!producer) std::fprintf(stderr, "TestProducer: %s\n", error.c_str());
  }
  void dr_cb(RdKafka::Message& m) override {
    auto* result = static_cast<std::optional<std::pair<std::int32_t, std::int64_t>>*>(m.msg_opaque());
    if (m.err() == RdKafka::ERR_NO_ERROR) *result = std::make_pair(m.partition(), m.offset());
  }
  std::unique_ptr<RdKafka::Producer> producer;
};

TestProducer::TestProducer(std::string brokers) : impl_(std::make_unique<Impl>(brokers)) {}
TestProducer::~TestProducer() = default;

std::optional<std::pair<std::int32_t, std::int64_t>> TestProducer::send(
    const std::string& topic, const std::optional<std::string>& key, const std::string& value,
    const std::vector<std::pair<std::string, std::string>>& headers, std::int32_t partition) {
  std::optional<std::pair<std::int32_t, std::int64_t>> result;
  RdKafka::Headers* h = RdKafka::Headers::create();
  for (const auto& [name, v] : headers) h->add(name, v);
  const RdKafka::ErrorCode err = impl_->producer->produce(
      topic, partition == -1 ? RdKafka::Topic::PARTITION_UA : partition, RdKafka::Producer::RK_MSG_COPY,
      const_cast<char*>(value.data()), value.size(), key ? key->data() : nullptr, key ? key->size() : 0, 0, h,
      &result);
  if (err != RdKafka::ERR_NO_ERROR) {
    delete h;
    return std::nullopt;
  }
  impl_->producer->flush(10'000);
  return result;
}

// ---- TestReader ---------------------------------------------------------------------------------

class TestReader::Impl {
 public:
  Impl(const std::string& brokers, const std::string& topic) {
    auto conf = conf_for(brokers);
    std::string error;
    conf->set("group.id", "ffe-test-reader", error);
    conf->set("enable.auto.commit", "false", error);
    conf->set("fetch.wait.max.ms", "10", error);
    consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), error));
    RdKafka::Metadata* metadata = nullptr;
    std::unique_ptr<RdKafka::Topic> handle(RdKafka::Topic::create(consumer.get(), topic, nullptr, error));
    if (consumer->metadata(false, handle.get(), &metadata, 10'000) != RdKafka::ERR_NO_ERROR) return;
    std::vector<RdKafka::TopicPartition*> partitions;
    for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
      for (const RdKafka::PartitionMetadata* p : *t->partitions()) {
        partitions.push_back(RdKafka::TopicPartition::create(topic, p->id(), RdKafka::Topic::OFFSET_BEGINNING));
      }
    }
    delete metadata;
    consumer->assign(partitions);
    RdKafka::TopicPartition::destroy(partitions);
  }
  ~Impl() {
    if (consumer) consumer->close();
  }
  void poll_once(int timeout_ms) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(timeout_ms));
    if (m && m->err() == RdKafka::ERR_NO_ERROR) read.push_back(to_message(*m));
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::vector<Message> read;
};

TestReader::TestReader(std::string brokers, std::string topic) : impl_(std::make_unique<Impl>(brokers, topic)) {}
TestReader::~TestReader() = default;

std::vector<Message> TestReader::read_until(std::size_t count, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (impl_->read.size() < count && std::chrono::steady_clock::now() < until) impl_->poll_once(20);
  return impl_->read;
}

std::vector<Message> TestReader::read_for(std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) impl_->poll_once(20);
  return impl_->read;
}

// ---- TestParticipants ---------------------------------------------------------------------------

TestParticipants::TestParticipants(std::string brokers, std::string topic_prefix)
    : brokers_(std::move(brokers)), prefix_(std::move(topic_prefix)), thread_([this] { run(); }) {}

TestParticipants::~TestParticipants() {
  stop_.store(true);
  thread_.join();
}

void TestParticipants::run() {
  TestReader payments(brokers_, prefix_ + "payments.requests");
  TestReader shipments(brokers_, prefix_ + "shipments.requests");
  TestProducer producer(brokers_);
  std::size_t payments_seen = 0, shipments_seen = 0;
  const std::vector<std::pair<std::string, std::string>> json = {{"content-type", "application/json"}};
  while (!stop_.load()) {
    auto p = payments.read_for(std::chrono::milliseconds(20));
    for (; payments_seen < p.size(); ++payments_seen) {
      const Message& m = p[payments_seen];
      requests_++;
      if (m.header("content-type") != std::optional<std::string>("application/json")) non_json_++;
      auto decoded = events::decode_payment_request(m.value, m.header("content-type"));
      auto* request = std::get_if<v1::PaymentRequest>(&decoded);
      if (request == nullptr) continue;
      // The contract's convention: tok_silent's authorize is never answered.
      if (request->has_authorize() && request->authorize().token() == "tok_silent") continue;
      v1::PaymentReply reply;
      reply.set_command_id(request->command_id());
      reply.set_order_id(request->order_id());
      reply.set_payment_id("p-" + request->order_id());
      reply.set_status(request->has_authorize() && request->authorize().token() == "tok_decline"
                           ? v1::PaymentReply::DECLINED
                           : v1::PaymentReply::APPROVED);
      producer.send(prefix_ + "payments.replies", request->order_id(), events::encode_json(reply), json);
    }
    auto s = shipments.read_for(std::chrono::milliseconds(20));
    for (; shipments_seen < s.size(); ++shipments_seen) {
      const Message& m = s[shipments_seen];
      requests_++;
      if (m.header("content-type") != std::optional<std::string>("application/json")) non_json_++;
      auto decoded = events::decode_shipment_request(m.value, m.header("content-type"));
      auto* request = std::get_if<v1::ShipmentRequest>(&decoded);
      if (request == nullptr) continue;
      v1::ShipmentReply reply;
      reply.set_command_id(request->command_id());
      reply.set_order_id(request->order_id());
      reply.set_shipment_id("s-" + request->order_id());
      reply.set_status(request->has_create() ? v1::ShipmentReply::CREATED : v1::ShipmentReply::CANCELLED);
      producer.send(prefix_ + "shipments.replies", request->order_id(), events::encode_json(reply), json);
    }
  }
}

}  // namespace ffe::kafka::testing
