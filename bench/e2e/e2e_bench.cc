// `ffe bench e2e`: orders through the Kafka protocol, the saga completed by in-process
// participant simulators, outcomes read back (docs/e2e-bench.md).
//
//   1. The cluster: the embedded broker (librdkafka's mock, what `ffe serve` starts without
//      --brokers), with the contract topics made (partitions = shards); or --brokers.
//   2. A serve::Server on a fresh data dir (no admin HTTP), exactly as `ffe serve` runs it.
//   3. `ffe sim payment` and `ffe sim shipping`: run_participant on two threads (consumer
//      groups, so the first join costs the mock's 3 s; it happens during the warm-up).
//   4. A reader of <prefix>orders.outcomes (assign(), from the current end), and a load
//      producer (librdkafka, idempotent, linger 5 ms, batches of up to 10,000).
//   5. Setup, not timed: ReceiveStock on sku-1..sku-K with enough units for every order,
//      waited for in the engine's durable state; then W warm-up orders ("o-w<i>") end to end.
//   6. The broker's ceiling: C small JSON messages (about 200 bytes, a content-type header)
//      through one producer and one consumer on a topic of its own, in this process, now.
//   7. The timed phase: N PlaceOrder commands "o-<i>" (1-3 lines of 1-3 units over the K
//      SKUs, tok_visa, country US) at --rate (0: as fast as possible); the clock is read just
//      before each produce() and again when its outcome is consumed. It ends at the last
//      outcome (or --seconds-max).
//   8. High watermarks of every contract topic before and after the timed phase (after the
//      journal feed settled): messages per order, per topic. CPU seconds per thread over the
//      timed phase (/proc/self/task), grouped by which step started the thread.
//   9. Where the latency goes: the six hop topics read back between the two snapshots, the
//      CreateTime of each order's first message on each, p50/p99 per hop.
//
// ok: every order got exactly one outcome, all FULFILLED, nothing in the DLQ.

#include "bench/e2e/e2e_bench.h"

#include <librdkafka/rdkafkacpp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/kafka/broker.h"
#include "adapters/kafka/ingress.h"
#include "adapters/kafka/topics.h"
#include "adapters/serve/serve.h"
#include "adapters/sim/rng.h"
#include "adapters/sim/sim_runner.h"
#include "events/codec.h"
#include "events/codec_internal.h"
#include "events/json_text.h"
#include "events/json_writer.h"
#include "ffe/v1/outcomes.pb.h"

namespace ffe::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kWho = "ffe bench e2e";

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }


std::string fixed(double value, int digits) {
  if (!std::isfinite(value)) return "null";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

std::string loadavg() {
  std::ifstream file("/proc/loadavg");
  std::string a, b, c;
  file >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string base36_now() {
  auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  std::string text;
  do {
    text.insert(text.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[ms % 36]);
    ms /= 36;
  } while (ms != 0);
  return text;
}

using participants::Rng;  // the same orders every run, as `ffe produce`

// ---- CPU per thread -----------------------------------------------------------------------------

int gettid_now() { return static_cast<int>(::syscall(SYS_gettid)); }

struct ThreadSample {
  std::string name;
  std::uint64_t ticks = 0;  // utime + stime, in clock ticks
};

std::map<int, ThreadSample> read_threads() {
  std::map<int, ThreadSample> out;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const int tid = std::atoi(entry->d_name);
    std::ifstream file(std::string("/proc/self/task/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(file, line)) continue;
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    ThreadSample sample;
    sample.name = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    // After the name: state (field 3) ... utime (14), stime (15).
    std::uint64_t utime = 0, stime = 0;
    for (int index = 3; index <= 15 && rest >> field; ++index) {
      if (index == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
      if (index == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    sample.ticks = utime + stime;
    out[tid] = sample;
  }
  ::closedir(dir);
  return out;
}

// Which step started each thread: after a step, every thread not yet claimed is claimed by
// it (librdkafka starts a client's broker threads shortly after the client, so each step
// waits a moment before claiming). Threads of the bench's own loops claim themselves.
class ThreadOwners {
 public:
  void claim_new(const std::string& component) {
    const auto threads = read_threads();
    std::lock_guard lock(mu_);
    for (const auto& [tid, sample] : threads) owners_.try_emplace(tid, component);
  }
  void claim_self(const std::string& component) {
    std::lock_guard lock(mu_);
    owners_[gettid_now()] = component;
  }
  std::string owner(int tid) const {
    std::lock_guard lock(mu_);
    auto it = owners_.find(tid);
    return it == owners_.end() ? "unclaimed" : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<int, std::string> owners_;
};

void name_this_thread(const char* name) { ::pthread_setname_np(::pthread_self(), name); }

// CPU seconds per owner between two samples (threads that ended in between are missing).
std::map<std::string, double> cpu_by_owner(const std::map<int, ThreadSample>& before,
                                           const std::map<int, ThreadSample>& after, const ThreadOwners& owners) {
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::map<std::string, double> out;
  for (const auto& [tid, sample] : after) {
    auto was = before.find(tid);
    const std::uint64_t ticks = sample.ticks - (was == before.end() ? 0 : std::min(sample.ticks, was->second.ticks));
    out[owners.owner(tid)] += static_cast<double>(ticks) / tick;
  }
  return out;
}

// ---- librdkafka helpers -------------------------------------------------------------------------

class Events : public RdKafka::EventCb {
 public:
  explicit Events(std::string who) : who_(std::move(who)) {}
  void event_cb(RdKafka::Event& event) override {
    if (event.type() != RdKafka::Event::EVENT_ERROR && !(event.type() == RdKafka::Event::EVENT_LOG &&
                                                         event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING)) {
      return;
    }
    const auto now = Clock::now();
    std::lock_guard lock(mu_);
    auto [it, first] = last_.try_emplace(static_cast<int>(event.err()), now);
    if (!first && now - it->second < std::chrono::seconds(10)) return;
    it->second = now;
    std::fprintf(stderr, "%s: %s: kafka %s: %s\n", kWho, who_.c_str(), RdKafka::err2str(event.err()).c_str(),
                 event.str().c_str());
  }

 private:
  std::string who_;
  std::mutex mu_;
  std::map<int, Clock::time_point> last_;
};

std::unique_ptr<RdKafka::Conf> make_conf(const std::string& brokers,
                                         const std::vector<std::pair<std::string, std::string>>& settings,
                                         RdKafka::EventCb* events, std::string& error) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string why;
  if (conf->set("bootstrap.servers", brokers, why) != RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", events, why) != RdKafka::Conf::CONF_OK) {
    error = why;
    return nullptr;
  }
  for (const auto& [key, value] : settings) {
    if (conf->set(key, value, why) != RdKafka::Conf::CONF_OK) {
      error = key + "=" + value + ": " + why;
      return nullptr;
    }
  }
  return conf;
}

// The producer settings of a well-behaved client: idempotent, a few ms of linger, big batches.
const std::vector<std::pair<std::string, std::string>> kProducerSettings = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    {"linger.ms", "5"},
    {"batch.num.messages", "10000"},
    {"queue.buffering.max.messages", "1000000"},
    {"message.timeout.ms", "60000"},
};

std::unique_ptr<RdKafka::KafkaConsumer> make_reader(const std::string& brokers, const std::string& group,
                                                    RdKafka::EventCb* events, std::string& error) {
  // fetch.wait.max.ms: the mock answers an empty fetch only when it runs out (docs/kafka.md).
  auto conf = make_conf(brokers,
                        {{"group.id", group},
                         {"enable.auto.commit", "false"},
                         {"enable.auto.offset.store", "false"},
                         {"enable.partition.eof", "false"},
                         {"auto.offset.reset", "earliest"},
                         {"fetch.wait.max.ms", "10"}},
                        events, error);
  if (!conf) return nullptr;
  return std::unique_ptr<RdKafka::KafkaConsumer>(RdKafka::KafkaConsumer::create(conf.get(), error));
}

// Assigns every partition of `topic` at its current end; false (with the reason) if not.
bool assign_at_end(RdKafka::KafkaConsumer& consumer, const std::string& topic, int partitions, std::string& error) {
  std::vector<RdKafka::TopicPartition*> list;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    const RdKafka::ErrorCode err = consumer.query_watermark_offsets(topic, p, &low, &high, 10'000);
    if (err != RdKafka::ERR_NO_ERROR) {
      RdKafka::TopicPartition::destroy(list);
      error = "reading the end of " + topic + "/" + std::to_string(p) + ": " + RdKafka::err2str(err);
      return false;
    }
    list.push_back(RdKafka::TopicPartition::create(topic, p, high));
  }
  const RdKafka::ErrorCode err = consumer.assign(list);
  RdKafka::TopicPartition::destroy(list);
  if (err != RdKafka::ERR_NO_ERROR) {
    error = "assigning " + topic + ": " + RdKafka::err2str(err);
    return false;
  }
  return true;
}

// The high watermark of every partition of each topic (messages ever written).
using Offsets = std::map<std::string, std::vector<std::int64_t>>;
std::optional<Offsets> high_watermarks(RdKafka::Handle& handle, const std::vector<std::string>& topics,
                                       const std::vector<int>& partitions, std::string& error) {
  Offsets out;
  for (std::size_t t = 0; t < topics.size(); ++t) {
    std::vector<std::int64_t>& highs = out[topics[t]];
    for (int p = 0; p < partitions[t]; ++p) {
      std::int64_t low = 0, high = 0;
      const RdKafka::ErrorCode err = handle.query_watermark_offsets(topics[t], p, &low, &high, 10'000);
      if (err != RdKafka::ERR_NO_ERROR) {
        error = "reading the end of " + topics[t] + "/" + std::to_string(p) + ": " + RdKafka::err2str(err);
        return std::nullopt;
      }
      highs.push_back(high);
    }
  }
  return out;
}

std::int64_t total(const std::vector<std::int64_t>& highs) {
  std::int64_t sum = 0;
  for (std::int64_t high : highs) sum += high;
  return sum;
}

// Takes snapshots until two in a row agree (what the engine sends after the last outcome,
// the journal feed mostly, has arrived), at most `limit`.
std::optional<Offsets> settled_watermarks(RdKafka::Handle& handle, const std::vector<std::string>& topics,
                                          const std::vector<int>& partitions, std::chrono::milliseconds limit,
                                          std::string& error) {
  const auto until = Clock::now() + limit;
  auto last = high_watermarks(handle, topics, partitions, error);
  while (last && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto next = high_watermarks(handle, topics, partitions, error);
    if (!next) return std::nullopt;
    if (*next == *last) return next;
    last = std::move(next);
  }
  return last;
}

// ---- the load producer --------------------------------------------------------------------------

class Deliveries : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      delivered.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (failed.fetch_add(1) < 5) {
      std::fprintf(stderr, "%s: a message to %s was not delivered: %s\n", kWho, message.topic_name().c_str(),
                   message.errstr().c_str());
    }
  }
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> failed{0};
};

class Loader {
 public:
  Loader(std::string brokers, std::string topic_prefix, bool protobuf, std::uint32_t skus)
      : brokers_(std::move(brokers)),
        orders_topic_(topic_prefix + "orders.commands"),
        inventory_topic_(topic_prefix + "inventory.commands"),
        protobuf_(protobuf),
        skus_(skus) {}

  bool start(std::string& error) {
    auto conf = make_conf(brokers_, kProducerSettings, &events_, error);
    if (!conf) return false;
    conf->set("client.id", "ffe-bench-e2e-load", error);
    if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&deliveries_), error) != RdKafka::Conf::CONF_OK) {
      return false;
    }
    producer_.reset(RdKafka::Producer::create(conf.get(), error));
    return producer_ != nullptr;
  }

  RdKafka::Producer& producer() { return *producer_; }

  bool send_stock(std::uint64_t sku_index, std::int64_t qty) {
    v1::InventoryCommand command;
    v1::ReceiveStock& receipt = *command.mutable_receive_stock();
    receipt.set_sku(sku_name(sku_index));
    receipt.set_qty(qty);
    receipt.set_receipt_id("r-" + std::to_string(sku_index + 1));
    return send(inventory_topic_, receipt.sku(), encode(command));
  }

  // The encoded size of the next order the generator would make (the generator moves on).
  std::size_t order_bytes(const std::string& id) { return encode(make_order(id)).size() + id.size(); }

  // Places order `id` (drawn from the seeded generator); `stamp` is set to the clock just
  // before produce().
  bool send_order(const std::string& id, std::atomic<std::int64_t>* stamp) {
    v1::OrderCommand command = make_order(id);
    return send(orders_topic_, id, encode(command), stamp);
  }

  void poll(int ms) { producer_->poll(ms); }

  // Waits for every delivery report (at most `timeout`); false if some are missing or failed.
  bool flush(std::chrono::milliseconds timeout) {
    producer_->flush(static_cast<int>(timeout.count()));
    return producer_->outq_len() == 0 && deliveries_.failed.load() == 0;
  }

  std::uint64_t failed() const { return deliveries_.failed.load() + refused_; }

  void stop() { producer_.reset(); }

 private:
  static std::string sku_name(std::uint64_t index) { return "sku-" + std::to_string(index + 1); }

  template <class Message>
  std::string encode(const Message& message) {
    return protobuf_ ? events::encode_binary(message) : events::json::encode(message);
  }

  v1::OrderCommand make_order(const std::string& id) {
    v1::OrderCommand command;
    v1::PlaceOrder& order = *command.mutable_place_order();
    order.set_order_id(id);
    order.set_customer_id("c-" + std::to_string(1 + rng_.below(1000)));
    const std::uint64_t lines = std::min<std::uint64_t>(1 + rng_.below(3), skus_);
    std::uint64_t chosen[3] = {0, 0, 0};
    for (std::uint64_t n = 0; n < lines;) {
      const std::uint64_t sku = rng_.below(skus_);
      if (std::find(chosen, chosen + n, sku) != chosen + n) continue;
      chosen[n++] = sku;
      v1::OrderLine& line = *order.add_lines();
      line.set_sku(sku_name(sku));
      line.set_qty(1 + static_cast<std::int64_t>(rng_.below(3)));
      line.set_unit_price_cents(100 + static_cast<std::int64_t>((sku * 2654435761ULL) % 9900));
    }
    order.mutable_payment()->set_method("card");
    order.mutable_payment()->set_token("tok_visa");
    v1::Address& ship_to = *order.mutable_ship_to();
    ship_to.set_name("Customer " + order.customer_id().substr(2));
    ship_to.set_line1(std::to_string(1 + rng_.below(999)) + " Main St");
    ship_to.set_city("Springfield");
    ship_to.set_country("US");
    return command;
  }

  bool send(const std::string& topic, const std::string& key, const std::string& value,
            std::atomic<std::int64_t>* stamp = nullptr) {
    const std::string_view type =
        protobuf_ ? events::kProtobufContentType : events::kJsonContentType;
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("content-type", type.data(), type.size());
    for (;;) {
      if (stamp != nullptr) stamp->store(now_ns(), std::memory_order_release);
      const RdKafka::ErrorCode err = producer_->produce(
          topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
          value.size(), key.data(), key.size(), 0, headers, nullptr);
      if (err == RdKafka::ERR_NO_ERROR) return true;
      if (err == RdKafka::ERR__QUEUE_FULL) {
        producer_->poll(1);
        continue;
      }
      delete headers;
      if (refused_++ < 5) {
        std::fprintf(stderr, "%s: cannot produce to %s: %s\n", kWho, topic.c_str(), RdKafka::err2str(err).c_str());
      }
      return false;
    }
  }

  std::string brokers_;
  std::string orders_topic_;
  std::string inventory_topic_;
  bool protobuf_;
  std::uint32_t skus_;
  Rng rng_{1};
  Events events_{"load producer"};
  Deliveries deliveries_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::uint64_t refused_ = 0;
};

// ---- the outcome reader -------------------------------------------------------------------------

enum class Outcome : std::uint8_t { kNone, kFulfilled, kCancelled, kRejected, kOther };

// orderId and state of an outcome. JSON: read from the canonical encoding (orderId first,
// state second; ffe's egress prints exactly that), with the codec as the fallback; binary:
// parsed.
bool parse_outcome(const char* data, std::size_t size, bool binary, std::string& order_id, Outcome& state) {
  auto from_enum = [](v1::OrderState s) {
    switch (s) {
      case v1::FULFILLED: return Outcome::kFulfilled;
      case v1::CANCELLED: return Outcome::kCancelled;
      case v1::REJECTED: return Outcome::kRejected;
      default: return Outcome::kOther;
    }
  };
  const std::string_view bytes(data, size);
  if (!binary) {
    auto field = [&](std::string_view name) -> std::optional<std::string_view> {
      const auto at = bytes.find(name);
      if (at == std::string_view::npos) return std::nullopt;
      const auto start = at + name.size();
      const auto end = bytes.find('"', start);
      if (end == std::string_view::npos) return std::nullopt;
      return bytes.substr(start, end - start);
    };
    const auto id = field("{\"orderId\":\"");
    const auto s = field(",\"state\":\"");
    if (id && s && id->find('\\') == std::string_view::npos) {
      order_id.assign(*id);
      state = *s == "FULFILLED"   ? Outcome::kFulfilled
              : *s == "CANCELLED" ? Outcome::kCancelled
              : *s == "REJECTED"  ? Outcome::kRejected
                                  : Outcome::kOther;
      return true;
    }
  }
  v1::OrderOutcome outcome;
  if (events::decode(bytes, binary ? events::ContentType::kProtobuf : events::ContentType::kJson, outcome)) {
    return false;
  }
  order_id = outcome.order_id();
  state = from_enum(outcome.state());
  return true;
}

// The index i-1 of a timed order "o-<i>"; -1 for anything else ("o-w<i>": warm-up).
std::int64_t timed_index(std::string_view id, std::uint64_t orders) {
  if (id.size() < 3 || id.substr(0, 2) != "o-") return -1;
  std::uint64_t value = 0;
  for (char c : id.substr(2)) {
    if (c < '0' || c > '9') return -1;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value < 1 || value > orders) return -1;
  return static_cast<std::int64_t>(value - 1);
}

class OutcomeReader {
 public:
  OutcomeReader(std::uint64_t orders, std::uint64_t warmup)
      : consumed_wall_ms(orders, 0), orders_(orders), sent_(orders), seen_(orders, 0), warm_seen_(warmup, 0) {
    latencies_ns_.reserve(orders);
  }
  ~OutcomeReader() { stop(); }

  bool start(const std::string& brokers, const std::string& topic, int partitions, ThreadOwners& owners,
             std::string& error) {
    consumer_ = make_reader(brokers, "ffe-bench-e2e-outcomes", &events_, error);
    if (!consumer_) return false;
    if (!assign_at_end(*consumer_, topic, partitions, error)) return false;
    thread_ = std::thread([this, &owners] {
      name_this_thread("e2e-outcomes");
      owners.claim_self("outcome_reader");
      run();
    });
    return true;
  }

  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (consumer_) {
      consumer_->close();
      consumer_.reset();
    }
  }

  std::atomic<std::int64_t>* stamp(std::uint64_t index) { return &sent_[index]; }

  // Everything below is read by the main thread once the reader is stopped, except these.
  std::atomic<std::uint64_t> timed_unique{0};
  std::atomic<std::uint64_t> warm_unique{0};
  std::atomic<std::int64_t> last_outcome_ns{0};

  std::vector<std::int64_t> latencies_ns_;
  std::vector<std::int64_t> consumed_wall_ms;  // per timed order: when its first outcome was read
  std::uint64_t fulfilled = 0, cancelled = 0, rejected = 0, other = 0, duplicates = 0, unknown = 0, undecodable = 0;

 private:
  void run() {
    std::string order_id;
    while (!stop_.load(std::memory_order_relaxed)) {
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(50));
      if (message->err() == RdKafka::ERR__TIMED_OUT) continue;
      if (message->err() != RdKafka::ERR_NO_ERROR) {
        std::fprintf(stderr, "%s: outcome reader: %s\n", kWho, message->errstr().c_str());
        continue;
      }
      const std::int64_t at = now_ns();
      bool binary = false;
      if (const RdKafka::Headers* headers = message->headers(); headers != nullptr) {
        const RdKafka::Headers::Header header = headers->get_last("content-type");
        binary = header.err() == RdKafka::ERR_NO_ERROR && header.value() != nullptr &&
                 std::string_view(static_cast<const char*>(header.value()), header.value_size()) !=
                     events::kJsonContentType;
      }
      Outcome state = Outcome::kNone;
      if (!parse_outcome(static_cast<const char*>(message->payload()), message->len(), binary, order_id, state)) {
        ++undecodable;
        continue;
      }
      const std::int64_t index = timed_index(order_id, orders_);
      if (index < 0) {
        if (order_id.rfind("o-w", 0) == 0) {
          const std::uint64_t w = std::strtoull(order_id.c_str() + 3, nullptr, 10);
          if (w >= 1 && w <= warm_seen_.size() && warm_seen_[w - 1]++ == 0) warm_unique.fetch_add(1);
          continue;
        }
        ++unknown;
        continue;
      }
      if (seen_[static_cast<std::size_t>(index)]++ > 0) {
        ++duplicates;
        continue;
      }
      consumed_wall_ms[static_cast<std::size_t>(index)] = wall_ms();
      const std::int64_t sent = sent_[static_cast<std::size_t>(index)].load(std::memory_order_acquire);
      latencies_ns_.push_back(sent > 0 ? at - sent : 0);
      switch (state) {
        case Outcome::kFulfilled: ++fulfilled; break;
        case Outcome::kCancelled: ++cancelled; break;
        case Outcome::kRejected: ++rejected; break;
        default: ++other; break;
      }
      last_outcome_ns.store(at, std::memory_order_relaxed);
      timed_unique.fetch_add(1, std::memory_order_release);
    }
  }

  std::uint64_t orders_;
  std::vector<std::atomic<std::int64_t>> sent_;
  std::vector<std::uint32_t> seen_;
  std::vector<std::uint32_t> warm_seen_;
  Events events_{"outcome reader"};
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- the broker's ceiling -----------------------------------------------------------------------

struct Ceiling {
  std::map<std::string, double> cpu;  // CPU seconds per component during the run
  double msgs_per_s = 0;
  double produce_msgs_per_s = 0;
  std::uint64_t consumed = 0;
  double seconds = 0;
  std::string error;
};

// `count` messages of about 200 bytes of JSON (an outcome's shape) with a content-type
// header, keyed by distinct ids, through one producer (the load producer's settings) and one
// consumer (assign(), fetch.wait.max.ms 10) at once: messages/s from the first produce to the
// last consume.
Ceiling measure_ceiling(const std::string& brokers, const std::string& topic, int partitions, std::uint64_t count,
                        ThreadOwners& owners) {
  Ceiling result;
  Events events("ceiling");
  std::string error;
  auto consumer = make_reader(brokers, "ffe-bench-e2e-ceiling", &events, error);
  if (!consumer || !assign_at_end(*consumer, topic, partitions, error)) {
    result.error = "ceiling consumer: " + error;
    return result;
  }
  Deliveries deliveries;
  auto conf = make_conf(brokers, kProducerSettings, &events, error);
  if (!conf || conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&deliveries), error) != RdKafka::Conf::CONF_OK) {
    result.error = "ceiling producer: " + error;
    return result;
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  if (!producer) {
    result.error = "ceiling producer: " + error;
    return result;
  }
  // Connected before the clock starts: one message each way.
  {
    const std::string warm = "{}";
    producer->produce(topic, 0, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(warm.data()), warm.size(), nullptr,
                      0, 0, nullptr, nullptr);
    producer->flush(10'000);
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < until) {
      std::unique_ptr<RdKafka::Message> message(consumer->consume(100));
      if (message->err() == RdKafka::ERR_NO_ERROR) break;
    }
  }
  owners.claim_new("ceiling");
  const auto cpu_before = read_threads();

  std::atomic<double> produce_seconds{0};
  const auto start = Clock::now();
  std::thread sender([&] {
    name_this_thread("e2e-ceiling");
    owners.claim_self("ceiling");
    const std::string_view type = events::kJsonContentType;
    char value[256];
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::string key = "o-c" + std::to_string(i);
      const int length = std::snprintf(
          value, sizeof value,
          "{\"orderId\":\"%s\",\"state\":\"FULFILLED\",\"reason\":\"\",\"shard\":%d,\"revision\":\"%" PRIu64
          "\",\"lines\":[{\"sku\":\"sku-%" PRIu64 "\",\"qty\":\"2\"}],\"paymentId\":\"p-%s\",\"shipmentId\":\"s-%s\"}",
          key.c_str(), static_cast<int>(i % 8), i * 7 + 5, i % 1000 + 1, key.c_str(), key.c_str());
      RdKafka::Headers* headers = RdKafka::Headers::create();
      headers->add("content-type", type.data(), type.size());
      for (;;) {
        const RdKafka::ErrorCode err =
            producer->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, value,
                              static_cast<std::size_t>(length), key.data(), key.size(), 0, headers, nullptr);
        if (err == RdKafka::ERR_NO_ERROR) break;
        if (err == RdKafka::ERR__QUEUE_FULL) {
          producer->poll(1);
          continue;
        }
        delete headers;
        break;
      }
      if ((i & 1023) == 0) producer->poll(0);
    }
    producer->flush(60'000);
    produce_seconds.store(seconds_since(start));
  });
  const auto until = start + std::chrono::seconds(120);
  while (result.consumed < count && Clock::now() < until) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(100));
    if (message->err() == RdKafka::ERR_NO_ERROR) ++result.consumed;
  }
  result.seconds = seconds_since(start);
  result.cpu = cpu_by_owner(cpu_before, read_threads(), owners);
  sender.join();
  if (result.consumed < count) {
    result.error = "the ceiling run consumed only " + std::to_string(result.consumed) + " of " +
                   std::to_string(count) + " messages in 120 s";
  }
  result.msgs_per_s = static_cast<double>(result.consumed) / result.seconds;
  result.produce_msgs_per_s = produce_seconds.load() > 0 ? static_cast<double>(count) / produce_seconds.load() : 0;
  consumer->close();
  return result;
}

// ---- where the latency goes ---------------------------------------------------------------------

// Per timed order, the CreateTime (set by the producing client at produce(), in ms) of the
// first message about it on each hop topic, read after the timed phase from the offsets
// before it to the offsets after it; then the time between consecutive hops, per order.
struct Trace {
  std::vector<std::pair<std::string, std::pair<double, double>>> segments;  // name -> (p50, p99) ms
  std::uint64_t traced = 0;  // orders with every hop seen
  std::string error;
};

Trace trace_orders(const std::string& brokers, const std::vector<std::string>& hop_topics,
                   const std::vector<int>& partitions, const Offsets& before, const Offsets& after,
                   std::uint64_t orders, const std::vector<std::int64_t>& consumed_wall_ms) {
  Trace trace;
  Events events("trace");
  std::string error;
  auto consumer = make_reader(brokers, "ffe-bench-e2e-trace", &events, error);
  if (!consumer) {
    trace.error = "trace reader: " + error;
    return trace;
  }
  std::vector<RdKafka::TopicPartition*> list;
  std::map<std::pair<std::string, int>, std::int64_t> ends;
  for (std::size_t t = 0; t < hop_topics.size(); ++t) {
    const auto& from = before.at(hop_topics[t]);
    const auto& to = after.at(hop_topics[t]);
    for (int p = 0; p < partitions[t]; ++p) {
      if (to[static_cast<std::size_t>(p)] <= from[static_cast<std::size_t>(p)]) continue;
      list.push_back(RdKafka::TopicPartition::create(hop_topics[t], p, from[static_cast<std::size_t>(p)]));
      ends[{hop_topics[t], p}] = to[static_cast<std::size_t>(p)];
    }
  }
  consumer->assign(list);
  RdKafka::TopicPartition::destroy(list);
  std::map<std::string, std::size_t> topic_index;
  for (std::size_t t = 0; t < hop_topics.size(); ++t) topic_index[hop_topics[t]] = t;
  std::vector<std::vector<std::int64_t>> stamps(hop_topics.size(), std::vector<std::int64_t>(orders, 0));
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (!ends.empty() && Clock::now() < until) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(100));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    auto end = ends.find({message->topic_name(), message->partition()});
    if (end == ends.end()) continue;
    if (message->offset() + 1 >= end->second) ends.erase(end);
    const std::string* key = message->key();
    if (key == nullptr) continue;
    const std::int64_t index = timed_index(*key, orders);
    if (index < 0) continue;
    std::int64_t& stamp = stamps[topic_index[message->topic_name()]][static_cast<std::size_t>(index)];
    if (stamp == 0) stamp = message->timestamp().timestamp;
  }
  consumer->close();
  if (!ends.empty()) trace.error = "the trace reader did not reach the end of every hop topic in 60 s";

  static const char* const kNames[] = {"order_to_payment_request",          "payment_request_to_reply",
                                       "payment_reply_to_shipment_request", "shipment_request_to_reply",
                                       "shipment_reply_to_outcome",         "outcome_to_reader"};
  const std::size_t hops = hop_topics.size();  // orders, pay req, pay reply, ship req, ship reply, outcome
  std::vector<std::vector<std::int64_t>> spans(hops);
  for (std::uint64_t i = 0; i < orders; ++i) {
    bool complete = consumed_wall_ms[i] > 0;
    for (std::size_t k = 0; k < hops && complete; ++k) complete = stamps[k][i] > 0;
    if (!complete) continue;
    ++trace.traced;
    for (std::size_t k = 0; k + 1 < hops; ++k) spans[k].push_back(stamps[k + 1][i] - stamps[k][i]);
    spans[hops - 1].push_back(consumed_wall_ms[i] - stamps[hops - 1][i]);
  }
  for (std::size_t k = 0; k < hops && k < std::size(kNames); ++k) {
    std::vector<std::int64_t>& v = spans[k];
    std::sort(v.begin(), v.end());
    auto at = [&](double p) -> double {
      if (v.empty()) return 0;
      auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
      return static_cast<double>(v[std::clamp<std::size_t>(rank, 1, v.size()) - 1]);
    };
    trace.segments.push_back({kNames[k], {at(0.5), at(0.99)}});
  }
  return trace;
}

// ---- the run ------------------------------------------------------------------------------------

std::string cpu_json(const std::map<std::string, double>& cpu) {
  std::string out;
  for (const auto& [owner, seconds] : cpu) {
    if (!out.empty()) out += ",";
    out += events::json::quoted(owner) + ":" + fixed(seconds, 2);
  }
  return "{" + out + "}";
}

struct DataDir {
  std::string path;
  std::string removes;  // "" keeps it
};

bool make_data_dir(const E2eBenchOptions& options, DataDir& out) {
  namespace fs = std::filesystem;
  if (!options.data_dir.empty()) {
    std::error_code ec;
    if (fs::exists(options.data_dir, ec) && !fs::is_empty(options.data_dir, ec)) {
      std::fprintf(stderr, "%s: --data-dir %s is not empty; the benchmark needs a fresh dir\n", kWho,
                   options.data_dir.c_str());
      return false;
    }
    out.path = options.data_dir;
    return true;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string base = std::string(tmp && *tmp ? tmp : "/tmp") + "/ffe-e2e-bench-XXXXXX";
  if (::mkdtemp(base.data()) == nullptr) {
    std::fprintf(stderr, "%s: cannot create a temp dir %s: %s\n", kWho, base.c_str(), std::strerror(errno));
    return false;
  }
  out.path = base + "/data";
  out.removes = options.keep ? "" : base;
  return true;
}

double percentile_ms(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1e6;
}

class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && ::isatty(STDERR_FILENO) == 1) {}
  template <class... Args>
  void line(const char* format, Args... args) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    std::fprintf(stderr, "\r%s: ", kWho);
    std::fprintf(stderr, format, args...);
    std::fprintf(stderr, "\x1b[K");
    drawn_ = true;
  }
  void done() {
    if (drawn_) std::fprintf(stderr, "\r\x1b[K");
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point last_{};
};

class Bench {
 public:
  explicit Bench(const E2eBenchOptions& options) : options_(options), progress_(options.progress) {}
  ~Bench() { teardown(); }
  int run();

 private:
  bool setup();
  bool receive_stock();
  bool warm_up();
  void place_orders(Clock::time_point start);
  void teardown();
  bool fail(const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", kWho, why.c_str());
    return false;
  }

  const E2eBenchOptions& options_;
  Progress progress_;
  ThreadOwners owners_;
  DataDir dir_;
  std::string prefix_;
  std::string brokers_;
  std::string ceiling_topic_;
  std::uint64_t ceiling_messages_ = 0;
  int partitions_ = 8;
  std::int64_t stock_qty_ = 0;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::unique_ptr<serve::Server> server_;
  std::atomic<bool> stop_participants_{false};
  std::vector<std::thread> participants_;
  std::atomic<int> participant_failures_{0};
  std::unique_ptr<OutcomeReader> reader_;
  std::unique_ptr<Loader> loader_;
  std::vector<std::string> topics_;
  std::vector<int> topic_partitions_;
  std::atomic<std::uint64_t> placed_{0};
  bool torn_down_ = false;
};

bool Bench::setup() {
  owners_.claim_new("bench");
  if (!make_data_dir(options_, dir_)) return false;
  ceiling_messages_ = options_.ceiling_messages;
  const std::uint32_t shards = options_.shards > 0 ? options_.shards : 8;
  partitions_ = static_cast<int>(shards);
  prefix_ = !options_.topic_prefix.empty() ? options_.topic_prefix
            : options_.brokers.empty()     ? std::string("ff.")
                                           : "ffe-bench-" + base36_now() + ".";
  const kafka::Topics topics(prefix_);
  ceiling_topic_ = prefix_ + "bench.ceiling";

  // 1. The cluster.
  if (options_.brokers.empty()) {
    auto broker = kafka::EmbeddedBroker::start();
    if (!broker) return fail("cannot start the embedded broker: " + broker.status().to_string());
    broker_ = std::move(*broker);
    brokers_ = broker_->bootstrap();
    std::vector<std::string> all = topics.all();
    all.push_back(ceiling_topic_);
    if (auto status = broker_->create_topics(all, partitions_); !status) return fail(status.to_string());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    owners_.claim_new("broker");
  } else {
    brokers_ = options_.brokers;
    if (ceiling_messages_ > 0) {
      // A topic of its own for the ceiling: <prefix>bench.ceiling when it exists, else one the
      // cluster makes through the Admin API (a mock broker in another process has none: then
      // the ceiling is skipped, with a note).
      const kafka::ClientConfig client{brokers_, "ffe-bench-e2e", {}};
      auto existing = kafka::partition_counts(client, {ceiling_topic_});
      if (!existing || !(*existing)[0]) {
        const kafka::Topics ceiling(prefix_ + "ceiling.");
        auto made = kafka::ensure_topics(client, ceiling, partitions_, 10'000);
        if (made) {
          ceiling_topic_ = ceiling.orders_commands;
        } else {
          std::fprintf(stderr, "%s: no ceiling run: the cluster could not make a topic for it (%s); make %s to have it\n",
                       kWho, made.status().to_string().c_str(), ceiling_topic_.c_str());
          ceiling_messages_ = 0;
        }
      }
    }
  }

  // 2. The engine, as `ffe serve` runs it.
  serve::ServeOptions serve_options;
  serve_options.brokers = brokers_;
  serve_options.data_dir = dir_.path;
  serve_options.http = "";
  serve_options.shards = shards;
  serve_options.topic_prefix = prefix_;
  serve_options.wire = options_.protobuf ? kafka::Wire::kProtobuf : kafka::Wire::kJson;
  serve_options.out = nullptr;
  if (options_.max_open_orders) serve_options.max_open_orders = *options_.max_open_orders;
  if (options_.worker_naps) serve_options.worker_naps = *options_.worker_naps;
  serve_options.analytics = options_.analytics;
  serve_options.tune_runtime = [this](runtime::Options& runtime) {
    if (options_.scheduler_threads > 0) runtime.scheduler_threads = options_.scheduler_threads;
    if (options_.worker_spins) runtime.worker_spins = *options_.worker_spins;
  };
  auto server = serve::Server::start(serve_options);
  if (!server) return fail("cannot start the engine: " + server.status().to_string());
  server_ = std::move(*server);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  owners_.claim_new("engine");

  // 3. The participants, as `ffe sim payment|shipping` run them.
  for (auto kind : {participants::Kind::kPayment, participants::Kind::kShipping}) {
    participants_.emplace_back([this, kind] {
      name_this_thread(kind == participants::Kind::kPayment ? "e2e-sim-pay" : "e2e-sim-ship");
      owners_.claim_self("participants");
      participants::SimOptions sim;
      sim.brokers = brokers_;
      sim.topic_prefix = prefix_;
      sim.group_id = "ffe-bench-e2e-" + std::string(participants::kind_name(kind));
      sim.stop = &stop_participants_;
      sim.quiet = true;
      sim.stats_interval_s = 0;
      sim.kafka_config = {{"fetch.wait.max.ms", "10"}, {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
      if (participants::run_participant(kind, sim) != 0) participant_failures_.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  owners_.claim_new("participants");

  // 4. The outcome reader and the load producer.
  auto counts = kafka::partition_counts(kafka::ClientConfig{brokers_, "ffe-bench-e2e", {}}, topics.all());
  if (!counts) return fail("reading the topics' partitions: " + counts.status().to_string());
  topics_ = topics.all();
  for (std::size_t i = 0; i < topics_.size(); ++i) {
    if (!(*counts)[i]) return fail("the topic " + topics_[i] + " does not exist");
    topic_partitions_.push_back(*(*counts)[i]);
  }
  std::string error;
  reader_ = std::make_unique<OutcomeReader>(options_.orders, options_.warmup_orders);
  if (!reader_->start(brokers_, topics.orders_outcomes, topic_partitions_[6], owners_, error)) {
    return fail("the outcome reader: " + error);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  owners_.claim_new("outcome_reader");
  loader_ = std::make_unique<Loader>(brokers_, prefix_, options_.protobuf, options_.skus);
  if (!loader_->start(error)) return fail("the load producer: " + error);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  owners_.claim_new("load_producer");
  return true;
}

// ReceiveStock on every SKU with enough units for every order (each order takes at most 3
// units of a SKU), then waits until the engine's durable state has them all.
bool Bench::receive_stock() {
  const std::uint64_t demand = (options_.orders + options_.warmup_orders) * 3 + 100;
  stock_qty_ = static_cast<std::int64_t>(std::min<std::uint64_t>(demand, 1'000'000'000));
  if (demand > 1'000'000'000) {
    std::fprintf(stderr, "%s: note: %" PRIu64 " orders may need more than the 10^9 units a receipt can carry\n",
                 kWho, options_.orders);
  }
  for (std::uint64_t k = 0; k < options_.skus; ++k) {
    if (!loader_->send_stock(k, stock_qty_)) return fail("cannot send the stock receipts");
    if ((k & 1023) == 0) loader_->poll(0);
  }
  if (!loader_->flush(std::chrono::seconds(60))) return fail("the stock receipts were not all delivered");
  std::vector<std::uint64_t> waiting(options_.skus);
  for (std::uint64_t k = 0; k < options_.skus; ++k) waiting[k] = k;
  const auto until = Clock::now() + std::chrono::seconds(120);
  while (!waiting.empty()) {
    if (Clock::now() > until) return fail(std::to_string(waiting.size()) + " SKUs still lack their stock after 120 s");
    std::vector<std::uint64_t> still;
    for (std::uint64_t k : waiting) {
      auto state = server_->runtime().sku("sku-" + std::to_string(k + 1));
      if (!state) return fail("reading a SKU: " + state.status().to_string());
      if (!*state || (*state)->on_hand < stock_qty_) still.push_back(k);
    }
    waiting.swap(still);
    if (!waiting.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// Warm-up orders end to end (connections, group joins, SKU actors), not counted.
bool Bench::warm_up() {
  for (std::uint64_t w = 1; w <= options_.warmup_orders; ++w) {
    if (!loader_->send_order("o-w" + std::to_string(w), nullptr)) return fail("cannot send the warm-up orders");
  }
  loader_->poll(0);
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (reader_->warm_unique.load() < options_.warmup_orders) {
    if (Clock::now() > until) {
      return fail("only " + std::to_string(reader_->warm_unique.load()) + " of " +
                  std::to_string(options_.warmup_orders) + " warm-up orders completed in 60 s");
    }
    loader_->poll(10);
  }
  return loader_->flush(std::chrono::seconds(10)) || fail("the warm-up orders were not all delivered");
}

// The timed orders "o-1".."o-N", at options_.rate (0: as fast as librdkafka takes them). With
// a rate, every millisecond the orders that are due go out together.
void Bench::place_orders(Clock::time_point start) {
  const std::uint64_t n = options_.orders;
  std::string id;
  std::uint64_t i = 0;
  while (i < n) {
    if (options_.rate > 0) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(i) / options_.rate));
      const auto now = Clock::now();
      if (due > now) {
        loader_->poll(0);
        std::this_thread::sleep_for(std::min<Clock::duration>(due - now, std::chrono::milliseconds(1)));
        continue;
      }
    }
    id = "o-" + std::to_string(i + 1);
    loader_->send_order(id, reader_->stamp(i));
    ++i;
    placed_.store(i, std::memory_order_relaxed);
    if ((i & 255) == 0) loader_->poll(0);
  }
  loader_->flush(std::chrono::seconds(60));
}

int Bench::run() {
  const auto setup_start = Clock::now();
  const std::string load_start = loadavg();
  if (!setup() || !receive_stock() || !warm_up()) return 2;

  Ceiling ceiling;
  if (ceiling_messages_ > 0) {
    ceiling = measure_ceiling(brokers_, ceiling_topic_, partitions_, ceiling_messages_, owners_);
    if (!ceiling.error.empty()) std::fprintf(stderr, "%s: %s\n", kWho, ceiling.error.c_str());
  }

  std::string error;
  auto before = settled_watermarks(loader_->producer(), topics_, topic_partitions_, std::chrono::seconds(10), error);
  if (!before) {
    fail(error);
    return 2;
  }
  const runtime::Stats runtime_before = server_->runtime().stats();
  const double setup_seconds = seconds_since(setup_start);
  const std::string load_timed_start = loadavg();

  // The timed phase.
  const auto cpu_before = read_threads();
  const auto start = Clock::now();
  const std::int64_t start_ns = now_ns();
  std::thread placer([this, start] {
    name_this_thread("e2e-load");
    owners_.claim_self("load_producer");
    place_orders(start);
  });
  const auto give_up = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options_.seconds_max));
  bool timed_out = false;
  while (reader_->timed_unique.load(std::memory_order_acquire) < options_.orders) {
    if (Clock::now() > give_up) {
      timed_out = true;
      break;
    }
    progress_.line("placed %" PRIu64 "/%" PRIu64 ", outcomes %" PRIu64 ", %.1f s", placed_.load(),
                   options_.orders, reader_->timed_unique.load(), seconds_since(start));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::int64_t last_ns = reader_->last_outcome_ns.load();
  const auto cpu_after = read_threads();
  const double seconds =
      timed_out || last_ns <= start_ns ? seconds_since(start) : static_cast<double>(last_ns - start_ns) / 1e9;
  progress_.done();
  placer.join();
  const std::string load_end = loadavg();
  const runtime::Stats runtime_after = server_->runtime().stats();
  const kafka::Ingress::Stats ingress = server_->ingress().stats();

  // Messages per order, per topic (after the journal feed settled).
  auto after = settled_watermarks(loader_->producer(), topics_, topic_partitions_, std::chrono::seconds(15), error);
  if (!after) {
    fail(error);
    return 2;
  }
  reader_->stop();
  const kafka::Topics names(prefix_);
  const std::vector<std::string> hop_topics = {names.orders_commands,    names.payments_requests,
                                               names.payments_replies,   names.shipments_requests,
                                               names.shipments_replies,  names.orders_outcomes};
  std::vector<int> hop_partitions;
  for (const std::string& topic : hop_topics) {
    hop_partitions.push_back(topic_partitions_[static_cast<std::size_t>(
        std::find(topics_.begin(), topics_.end(), topic) - topics_.begin())]);
  }
  const Trace trace = trace_orders(brokers_, hop_topics, hop_partitions, *before, *after, options_.orders,
                                   reader_->consumed_wall_ms);
  if (!trace.error.empty()) std::fprintf(stderr, "%s: %s\n", kWho, trace.error.c_str());
  std::string breakdown;
  for (const auto& [name, p] : trace.segments) {
    if (!breakdown.empty()) breakdown += ",";
    breakdown += events::json::quoted(name) + ":{\"p50\":" + fixed(p.first, 0) + ",\"p99\":" + fixed(p.second, 0) + "}";
  }

  // Results.
  std::vector<std::int64_t> latencies = std::move(reader_->latencies_ns_);
  std::sort(latencies.begin(), latencies.end());
  const std::uint64_t outcomes = latencies.size();
  const double orders_per_s = seconds > 0 ? static_cast<double>(outcomes) / seconds : 0;
  double mean_ms = 0;
  for (std::int64_t v : latencies) mean_ms += static_cast<double>(v) / 1e6;
  if (!latencies.empty()) mean_ms /= static_cast<double>(latencies.size());
  const double n = static_cast<double>(options_.orders);
  std::int64_t total_messages = 0;
  std::string by_topic;
  for (const std::string& topic : topics_) {
    const std::int64_t delta = total((*after)[topic]) - total((*before)[topic]);
    total_messages += delta;
    if (!by_topic.empty()) by_topic += ",";
    by_topic += events::json::quoted(topic) + ":" + fixed(static_cast<double>(delta) / n, 3);
  }
  const double messages_per_order = static_cast<double>(total_messages) / n;
  const std::int64_t dlq = total((*after)[prefix_ + "dlq"]) - total((*before)[prefix_ + "dlq"]);
  const double ceiling_orders = messages_per_order > 0 ? ceiling.msgs_per_s / messages_per_order : 0;
  const double ratio = ceiling_orders > 0 ? orders_per_s / ceiling_orders : 0;
  const double p99 = percentile_ms(latencies, 0.99);

  // CPU seconds per component over the timed phase.
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::map<std::string, double> cpu;
  std::map<std::pair<std::string, std::string>, std::pair<double, int>> per_name;
  double cpu_total = 0;
  for (const auto& [tid, sample] : cpu_after) {
    auto was = cpu_before.find(tid);
    const std::uint64_t ticks = sample.ticks - (was == cpu_before.end() ? 0 : std::min(sample.ticks, was->second.ticks));
    const double s = static_cast<double>(ticks) / tick;
    const std::string owner = owners_.owner(tid);
    cpu[owner] += s;
    auto& entry = per_name[{owner, sample.name}];
    entry.first += s;
    entry.second += 1;
    cpu_total += s;
  }

  if (options_.thread_cpu) {
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [key, value] : per_name) {
      rows.emplace_back(value.first, key.first + " / " + key.second + " (x" + std::to_string(value.second) + ")");
    }
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "%s: CPU seconds per thread over %.2f s (component / thread name (threads)):\n", kWho,
                 seconds);
    for (const auto& [s, label] : rows) {
      if (s > 0) std::fprintf(stderr, "  %7.2f  %s\n", s, label.c_str());
    }
  }

  std::string failure;
  if (timed_out) failure = "timed out after " + fixed(options_.seconds_max, 0) + " s; ";
  if (outcomes != options_.orders) {
    failure += std::to_string(options_.orders - outcomes) + " orders without an outcome; ";
  }
  if (reader_->duplicates > 0) failure += std::to_string(reader_->duplicates) + " duplicate outcomes; ";
  if (reader_->fulfilled != options_.orders) {
    failure += std::to_string(options_.orders - std::min(options_.orders, reader_->fulfilled)) + " not FULFILLED; ";
  }
  if (dlq > 0) failure += std::to_string(dlq) + " records on the DLQ; ";
  if (reader_->unknown + reader_->undecodable > 0) failure += "outcomes for unknown or undecodable orders; ";
  if (loader_->failed() > 0) failure += std::to_string(loader_->failed()) + " orders not delivered; ";
  if (participant_failures_.load() > 0) failure += "a participant simulator failed; ";
  if (!failure.empty()) failure.resize(failure.size() - 2);
  const bool ok = failure.empty();

  std::string out = "{";
  auto field = [&](const char* name, const std::string& value) {
    if (out.size() > 1) out += ",";
    out += events::json::quoted(name) + ":" + value;
  };
  auto u64 = [](std::uint64_t v) { return std::to_string(v); };
  field("orders", u64(options_.orders));
  field("rate", fixed(options_.rate, 0));
  field("skus", u64(options_.skus));
  field("shards", u64(static_cast<std::uint64_t>(partitions_)));
  field("scheduler_threads", u64(options_.scheduler_threads));
  field("worker_naps", u64(options_.worker_naps.value_or(serve::ServeOptions{}.worker_naps)));
  field("wire", events::json::quoted(options_.protobuf ? "protobuf" : "json"));
  field("jsonFastPath", options_.json_full_path ? "false" : "true");
  field("brokers", events::json::quoted(broker_ ? "embedded" : brokers_));
  field("outcomes", u64(outcomes));
  field("fulfilled", u64(reader_->fulfilled));
  field("cancelled", u64(reader_->cancelled));
  field("rejected", u64(reader_->rejected));
  field("duplicates", u64(reader_->duplicates));
  field("seconds", fixed(seconds, 3));
  field("orders_per_s", fixed(orders_per_s, 0));
  field("p50_ms", fixed(percentile_ms(latencies, 0.50), 2));
  field("p90_ms", fixed(percentile_ms(latencies, 0.90), 2));
  field("p99_ms", fixed(p99, 2));
  field("max_ms", fixed(latencies.empty() ? 0 : static_cast<double>(latencies.back()) / 1e6, 2));
  field("mean_ms", fixed(mean_ms, 2));
  field("hop_ms", "{" + breakdown + "}");
  field("hops_traced", u64(trace.traced));
  field("messages_per_order", fixed(messages_per_order, 2));
  field("messages_per_order_by_topic", "{" + by_topic + "}");
  field("dlq", std::to_string(dlq));
  const bool measured = ceiling.msgs_per_s > 0;  // null: no ceiling run
  field("broker_msgs_per_s_ceiling", measured ? fixed(ceiling.msgs_per_s, 0) : "null");
  field("broker_produce_msgs_per_s", measured ? fixed(ceiling.produce_msgs_per_s, 0) : "null");
  field("ceiling_seconds", measured ? fixed(ceiling.seconds, 3) : "null");
  field("ceiling_cpu_seconds", measured ? cpu_json(ceiling.cpu) : "null");
  field("ceiling_orders_per_s", measured ? fixed(ceiling_orders, 0) : "null");
  field("ratio", measured ? fixed(ratio, 3) : "null");
  field("target_10k_orders_per_s", orders_per_s >= 10'000 ? "true" : "false");
  field("target_p99_under_100ms", outcomes > 0 && p99 < 100 ? "true" : "false");
  field("target_60pct_of_ceiling", !measured ? "null" : ratio >= 0.6 ? "true" : "false");
  field("saga_retries", u64(runtime_after.retries - runtime_before.retries));
  field("late_replies", u64(runtime_after.late_replies - runtime_before.late_replies));
  field("ingress_busy", u64(ingress.busy));
  // The CDC target's kind only (sqlite, postgresql, off): a URL may carry a password.
  field("analytics", events::json::quoted(options_.analytics.empty() ? "sqlite"
                                          : options_.analytics.substr(0, options_.analytics.find(':'))));
  field("max_open_orders", u64(options_.max_open_orders.value_or(serve::ServeOptions{}.max_open_orders)));
  field("placements_deferred", u64(runtime_after.placements_refused - runtime_before.placements_refused));
  field("cpu_seconds", cpu_json(cpu));
  field("cpu_cores_used", fixed(seconds > 0 ? cpu_total / seconds : 0, 2));
  field("loadavg_start", events::json::quoted(load_start));
  field("loadavg_timed_start", events::json::quoted(load_timed_start));
  field("loadavg_end", events::json::quoted(load_end));
  field("setup_seconds", fixed(setup_seconds, 2));
  if (dir_.removes.empty()) field("data_dir", events::json::quoted(dir_.path));
  if (!broker_) field("topic_prefix", events::json::quoted(prefix_));
  field("ok", ok ? "true" : "false");
  field("failure", ok ? "null" : events::json::quoted(failure));
  out += "}";
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
  return ok ? 0 : 1;
}

void Bench::teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  if (reader_) reader_->stop();
  if (loader_) loader_->stop();
  stop_participants_.store(true);
  for (std::thread& t : participants_) t.join();
  if (server_) server_->stop();
  server_.reset();
  broker_.reset();
  if (!dir_.removes.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_.removes, ec);
  }
}

}  // namespace

int run_e2e_bench(const E2eBenchOptions& options) {
  if (options.orders < 1) {
    std::fprintf(stderr, "%s: --orders must be at least 1\n", kWho);
    return 2;
  }
  if (options.skus < 1) {
    std::fprintf(stderr, "%s: --skus must be at least 1\n", kWho);
    return 2;
  }
  if (!(options.rate >= 0) || !(options.seconds_max > 0)) {
    std::fprintf(stderr, "%s: --rate must be >= 0 and --seconds-max > 0\n", kWho);
    return 2;
  }
  if (options.brokers.empty() && options.rate == 0) {
    // The embedded broker keeps at most 5 MiB per partition and drops older data (STACK.md,
    // docs/kafka.md): an open-loop run places every order before the engine has read most
    // of them, so more than that on one partition of ff.orders.commands loses orders and
    // the run would wait for outcomes that cannot come. Refuse it up front.
    Loader sample("", "", options.protobuf, options.skus);
    std::size_t bytes = 0;
    constexpr int kSamples = 256;
    for (int i = 0; i < kSamples; ++i) bytes += sample.order_bytes("o-" + std::to_string(options.orders));
    const double per_order = static_cast<double>(bytes) / kSamples + 64;  // + headers, record overhead
    const std::uint32_t partitions = options.shards > 0 ? options.shards : 8;
    // Keys spread orders unevenly: the fullest partition gets about a quarter more than the mean.
    const double fullest = 1.25 * per_order * static_cast<double>(options.orders + options.warmup_orders) / partitions;
    constexpr double kEmbeddedPartitionBytes = 5.0 * 1024 * 1024;
    if (fullest > 0.9 * kEmbeddedPartitionBytes) {
      const auto fit = static_cast<std::uint64_t>(0.9 * kEmbeddedPartitionBytes * partitions / (1.25 * per_order));
      const std::uint64_t most = fit > options.warmup_orders ? fit - options.warmup_orders : 0;
      std::fprintf(stderr,
                   "%s: an open-loop run of %llu orders would put about %.1f MiB on a partition of the embedded "
                   "broker, which keeps at most 5 MiB per partition and drops older data (the engine would "
                   "never see some orders). Place at most about %llu orders open loop with %u shards, or give "
                   "--rate, more --shards, or --brokers for a real cluster\n",
                   kWho, static_cast<unsigned long long>(options.orders), fullest / (1024 * 1024),
                   static_cast<unsigned long long>(most), partitions);
      return 2;
    }
  }
  events::internal::set_json_fast_path(!options.json_full_path);
  Bench bench(options);
  return bench.run();
}

}  // namespace ffe::bench
