#include "adapters/sim/producer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/sim/kafka_support.h"
#include "adapters/sim/rng.h"
#include "events/codec.h"
#include "events/json_writer.h"
#include "events/validate.h"

namespace ffe::participants {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Allows `rate` takes per second on average, in bursts of at most max(1, rate/100).
class TokenBucket {
 public:
  explicit TokenBucket(double rate) : rate_(rate), burst_(std::max(1.0, rate / 100)) {}
  // Waits (through `idle(ms)`, which may return early) until a token is available.
  template <class Idle, class Stopped>
  void take(Idle idle, Stopped stopped) {
    if (rate_ <= 0) return;
    for (;;) {
      const auto now = Clock::now();
      tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
      last_ = now;
      if (tokens_ >= 1 || stopped()) {
        tokens_ -= 1;
        return;
      }
      idle(std::max(1, static_cast<int>(std::ceil((1 - tokens_) / rate_ * 1000))));
    }
  }

 private:
  double rate_;
  double burst_;
  double tokens_ = 1;
  Clock::time_point last_ = Clock::now();
};

class Deliveries : public RdKafka::DeliveryReportCb {
 public:
  explicit Deliveries(simkafka::EventLogger& logger) : logger_(logger) {}
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      ++delivered;
      return;
    }
    ++failed;
    if (failed <= 5 || logger_.should_log(200000 + static_cast<int>(message.err()))) {
      simkafka::say(log::Level::kWarn, "%s: not delivered to %s: %s", logger_.who().c_str(),
                   message.topic_name().c_str(), message.errstr().c_str());
    }
  }
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;

 private:
  simkafka::EventLogger& logger_;
};

std::string human(double value) {
  char text[32];
  if (value >= 1e6) std::snprintf(text, sizeof text, "%.1fM", value / 1e6);
  else if (value >= 1e4) std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  else std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

// A progress bar (terminal), a line every 5 s (not a terminal), or nothing (--quiet).
class Progress {
 public:
  enum class Mode { kNone, kBar, kLines };
  Progress(Mode mode, std::string label, std::uint64_t total)
      : mode_(mode), label_(std::move(label)), total_(total) {}

  void update(std::uint64_t sent, std::uint64_t delivered, std::uint64_t failed, bool force = false) {
    if (mode_ == Mode::kNone) return;
    const auto now = Clock::now();
    const auto every = mode_ == Mode::kBar ? std::chrono::milliseconds(100) : std::chrono::seconds(5);
    if (!force && now - last_ < every) return;
    last_ = now;
    const double elapsed = std::max(1e-3, seconds_since(start_));
    const double rate = static_cast<double>(sent) / elapsed;
    const double fraction = total_ == 0 ? 1.0 : static_cast<double>(sent) / static_cast<double>(total_);
    const double eta = rate > 0 ? static_cast<double>(total_ - std::min(sent, total_)) / rate : 0;
    if (mode_ == Mode::kBar) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.append(static_cast<std::size_t>(kWidth - filled), '-');
      std::fprintf(stderr, "\r%s [%s] %3.0f%% %llu/%llu  %s/s  acked %llu%s  ETA %.0fs\x1b[K",
                   label_.c_str(), bar.c_str(), fraction * 100,
                   static_cast<unsigned long long>(sent), static_cast<unsigned long long>(total_),
                   human(rate).c_str(), static_cast<unsigned long long>(delivered),
                   failed ? (" failed " + std::to_string(failed)).c_str() : "", eta);
      drawn_ = true;
    } else {
      simkafka::say(log::Level::kInfo, "%s: %llu/%llu sent, %llu acked, %llu failed, %s/s", label_.c_str(),
                   static_cast<unsigned long long>(sent), static_cast<unsigned long long>(total_),
                   static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(failed),
                   human(rate).c_str());
    }
    std::fflush(stderr);
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\n");
  }

 private:
  Mode mode_;
  std::string label_;
  std::uint64_t total_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
  bool drawn_ = false;
};

std::string default_id_prefix() {
  // Base 36 of the wall clock in ms: short, and different for every run.
  auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  std::string text;
  do {
    text.insert(text.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[ms % 36]);
    ms /= 36;
  } while (ms != 0);
  return text;
}

std::string make_id(char kind, const std::string& prefix, std::uint64_t i) {
  std::string id(1, kind);
  id += '-';
  if (!prefix.empty()) id += prefix + "-";
  id += std::to_string(i);
  return id;
}

std::string sku_name(std::uint64_t index) { return "sku-" + std::to_string(index + 1); }

std::int64_t unit_price_cents(std::uint64_t sku_index) {
  return 100 + static_cast<std::int64_t>((sku_index * 2654435761ULL) % 9900);
}

struct Message {
  std::string key;
  std::string bytes;
};

// The option checks CLI11 cannot express; "" when fine.
std::string check(const ProduceOptions& options, const std::string& prefix) {
  if (options.brokers.empty()) return "--brokers is required";
  if (options.skus < 1) return "--skus must be at least 1";
  if (options.rate < 0) return "--rate must be >= 0";
  if (options.stock_qty < 1 || options.stock_qty > 1'000'000'000) return "--qty must be 1..1000000000";
  if (options.max_lines < 1 || options.max_lines > 100) return "--max-lines must be 1..100";
  if (options.max_line_qty < 1 || options.max_line_qty > 1'000'000) return "--max-line-qty must be 1..1000000";
  if (options.customers < 1) return "--customers must be at least 1";
  for (double pct : {options.decline_pct, options.silent_pct, options.fail_ship_pct, options.cancel_pct}) {
    if (!(pct >= 0 && pct <= 100)) return "percentages must be 0..100";
  }
  if (options.decline_pct + options.silent_pct > 100) return "--decline-pct + --silent-pct must be <= 100";
  if (prefix.size() > 40) return "--id-prefix must be at most 40 characters";
  for (char c : prefix) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return "--id-prefix may hold only A-Z a-z 0-9 . _ -";
  }
  return "";
}

}  // namespace

int run_produce(const ProduceOptions& options) {
  const bool stock = options.what == ProduceWhat::kStock;
  const std::string who = std::string("ffe produce ") + (stock ? "stock" : "orders");
  const std::string prefix = options.id_prefix ? *options.id_prefix : default_id_prefix();
  if (std::string problem = check(options, prefix); !problem.empty()) {
    simkafka::say(log::Level::kError, "%s: %s", who.c_str(), problem.c_str());
    return 2;
  }
  const std::uint64_t count = options.count ? *options.count : (stock ? options.skus : 1000);
  const std::string topic = options.topic_prefix + (stock ? "inventory.commands" : "orders.commands");
  const events::ContentType type = options.protobuf ? events::ContentType::kProtobuf
                                                    : events::ContentType::kJson;
  const std::string_view content_type = events::content_type_name(type);

  simkafka::EventLogger logger(who);
  Deliveries deliveries(logger);
  std::string error;
  simkafka::Settings settings = {
      {"client.id", "ffe-produce"},
      {"enable.idempotence", "true"},
      {"linger.ms", "5"},
      {"batch.num.messages", "10000"},
      // A message not acknowledged within a minute is failed (default 5 min): an unreachable
      // broker ends the run with a count of failures instead of a long silent wait.
      {"message.timeout.ms", "60000"},
  };
  settings.insert(settings.end(), options.kafka_config.begin(), options.kafka_config.end());
  std::unique_ptr<RdKafka::Conf> conf = simkafka::make_conf(options.brokers, settings, logger, error);
  if (conf) {
    std::string why;
    if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&deliveries), why) !=
        RdKafka::Conf::CONF_OK) {
      error = "kafka dr_cb: " + why;
      conf.reset();
    }
  }
  if (!conf) {
    simkafka::say(log::Level::kError, "%s: %s", who.c_str(), error.c_str());
    return 2;
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  if (!producer) {
    simkafka::say(log::Level::kError, "%s: cannot create the producer: %s", who.c_str(), error.c_str());
    return 2;
  }

  // Canonical JSON by the fast writer (the same bytes as events::encode_json), or binary.
  auto encode = [&](const auto& message) {
    return options.protobuf ? events::encode_binary(message) : events::json::encode(message);
  };
  Rng rng(options.seed);
  auto next_message = [&](std::uint64_t i, std::optional<Message>& cancel) -> Message {
    if (stock) {
      v1::InventoryCommand command;
      v1::ReceiveStock& receipt = *command.mutable_receive_stock();
      receipt.set_sku(sku_name((i - 1) % options.skus));
      receipt.set_qty(options.stock_qty);
      receipt.set_receipt_id(make_id('r', prefix, i));
      return {receipt.sku(), encode(command)};
    }
    v1::OrderCommand command;
    v1::PlaceOrder& order = *command.mutable_place_order();
    order.set_order_id(make_id('o', prefix, i));
    order.set_customer_id("c-" + std::to_string(1 + rng.below(options.customers)));
    const std::uint64_t lines =
        std::min<std::uint64_t>(1 + rng.below(static_cast<std::uint64_t>(options.max_lines)), options.skus);
    std::vector<std::uint64_t> chosen;
    while (chosen.size() < lines) {
      const std::uint64_t sku = rng.below(options.skus);
      if (std::find(chosen.begin(), chosen.end(), sku) != chosen.end()) continue;
      chosen.push_back(sku);
      v1::OrderLine& line = *order.add_lines();
      line.set_sku(sku_name(sku));
      line.set_qty(1 + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(options.max_line_qty))));
      line.set_unit_price_cents(unit_price_cents(sku));
    }
    const double token_roll = rng.percent();
    order.mutable_payment()->set_method("card");
    order.mutable_payment()->set_token(
        token_roll < options.decline_pct ? "tok_decline"
        : token_roll < options.decline_pct + options.silent_pct ? "tok_silent"
                                                                : "tok_visa");
    v1::Address& ship_to = *order.mutable_ship_to();
    ship_to.set_name("Customer " + order.customer_id().substr(2));
    ship_to.set_line1(std::to_string(1 + rng.below(999)) + " Main St");
    ship_to.set_city("Springfield");
    ship_to.set_country(rng.percent() < options.fail_ship_pct ? "XX" : "US");
    if (options.deadline_ms > 0) order.set_deadline_ms(options.deadline_ms);
    if (rng.percent() < options.cancel_pct) {
      v1::OrderCommand cancel_command;
      cancel_command.mutable_cancel_order()->set_order_id(order.order_id());
      cancel_command.mutable_cancel_order()->set_reason("demo cancel");
      cancel = Message{order.order_id(), encode(cancel_command)};
    }
    return {order.order_id(), encode(command)};
  };

  // The first message is checked against the contract's validation before anything is sent.
  {
    Rng saved = rng;
    std::optional<Message> ignored;
    Message first = next_message(1, ignored);
    rng = saved;
    std::string why;
    if (stock) {
      v1::InventoryCommand command;
      if (auto failure = events::decode(first.bytes, type, command)) why = failure->reason;
      else if (auto invalid = events::validate(command)) why = invalid->to_string();
    } else {
      v1::OrderCommand command;
      if (auto failure = events::decode(first.bytes, type, command)) why = failure->reason;
      else if (auto invalid = events::validate(command)) why = invalid->to_string();
    }
    if (!why.empty()) {
      simkafka::say(log::Level::kError, "%s: these options make invalid commands: %s", who.c_str(), why.c_str());
      return 2;
    }
  }

  auto stopped = [&] { return options.stop != nullptr && options.stop->load(); };

  // A cluster that does not answer is named within 10 s, before anything is sent, instead of
  // each message failing after message.timeout.ms (a minute). Asked in half-second slices, so
  // Ctrl-C ends the wait.
  {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    RdKafka::ErrorCode err = RdKafka::ERR__TRANSPORT;
    while (!stopped()) {
      RdKafka::Metadata* metadata = nullptr;
      err = producer->metadata(false, nullptr, &metadata, 500);
      delete metadata;
      if (err == RdKafka::ERR_NO_ERROR || Clock::now() >= deadline) break;
      if (err != RdKafka::ERR__TIMED_OUT && err != RdKafka::ERR__TRANSPORT) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (stopped()) return 130;
    if (err == RdKafka::ERR__TIMED_OUT || err == RdKafka::ERR__TRANSPORT) {
      simkafka::say(log::Level::kError, "%s: no broker answered at %s within 10 s (%s): is it running and reachable?",
                    who.c_str(), options.brokers.c_str(), RdKafka::err2str(err).c_str());
      return 1;
    }
    if (err != RdKafka::ERR_NO_ERROR) {
      simkafka::say(log::Level::kError, "%s: the cluster at %s refused its metadata: %s", who.c_str(),
                    options.brokers.c_str(), RdKafka::err2str(err).c_str());
      return 1;
    }
  }

  const bool tty = isatty(STDERR_FILENO) == 1;
  const Progress::Mode mode = options.quiet ? Progress::Mode::kNone
                              : options.progress_bar.value_or(tty && !log::json_format()) ? Progress::Mode::kBar
                                                                   : Progress::Mode::kLines;
  Progress progress(mode, who, count);
  TokenBucket bucket(options.rate);

  const auto start = Clock::now();
  std::uint64_t sent = 0;      // orders / receipts handed to librdkafka
  std::uint64_t messages = 0;  // messages handed to librdkafka (cancels included)
  std::uint64_t cancels = 0;
  std::uint64_t refused = 0;   // produce() refused outright (counted as failed)

  auto send = [&](const Message& message) {
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("content-type", content_type.data(), content_type.size());
    for (;;) {
      const RdKafka::ErrorCode err = producer->produce(
          topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
          const_cast<char*>(message.bytes.data()), message.bytes.size(), message.key.data(),
          message.key.size(), 0, headers, nullptr);
      if (err == RdKafka::ERR_NO_ERROR) {
        ++messages;
        return;
      }
      if (err == RdKafka::ERR__QUEUE_FULL && !stopped()) {
        producer->poll(10);  // the queue drains as the broker acknowledges
        continue;
      }
      delete headers;
      ++refused;
      if (refused <= 5) {
        simkafka::say(log::Level::kWarn, "%s: cannot produce to %s: %s", who.c_str(), topic.c_str(),
                     RdKafka::err2str(err).c_str());
      }
      return;
    }
  };

  for (std::uint64_t i = 1; i <= count && !stopped() && !logger.fatal(); ++i) {
    std::optional<Message> cancel;
    Message message = next_message(i, cancel);
    bucket.take([&](int ms) { producer->poll(ms); }, stopped);
    send(message);
    if (cancel) {
      bucket.take([&](int ms) { producer->poll(ms); }, stopped);
      send(*cancel);
      ++cancels;
    }
    ++sent;
    if ((i & 255) == 0) producer->poll(0);
    progress.update(sent, deliveries.delivered, deliveries.failed + refused);
  }

  // Every delivery report, or the stop flag (then what is left is purged and counted failed).
  while (producer->outq_len() > 0 && !logger.fatal()) {
    if (stopped()) {
      producer->flush(5000);
      producer->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
      producer->flush(1000);
      break;
    }
    producer->poll(100);
    progress.update(sent, deliveries.delivered, deliveries.failed + refused);
  }
  producer->poll(0);
  progress.update(sent, deliveries.delivered, deliveries.failed + refused, true);
  progress.finish();

  const double seconds = seconds_since(start);
  const std::uint64_t failed = deliveries.failed + refused + (messages - std::min(messages, deliveries.delivered + deliveries.failed));
  const bool interrupted = stopped();
  std::fprintf(options.summary_out,
               "{\"what\":\"%s\",\"topic\":\"%s\",\"idPrefix\":\"%s\",\"count\":%llu,\"sent\":%llu,"
               "\"cancels\":%llu,\"produced\":%llu,\"failed\":%llu,\"seconds\":%.3f,\"rate\":%.1f,"
               "\"interrupted\":%s}\n",
               stock ? "stock" : "orders", topic.c_str(), prefix.c_str(),
               static_cast<unsigned long long>(count), static_cast<unsigned long long>(sent),
               static_cast<unsigned long long>(cancels),
               static_cast<unsigned long long>(deliveries.delivered),
               static_cast<unsigned long long>(failed), seconds,
               seconds > 0 ? static_cast<double>(deliveries.delivered) / seconds : 0.0,
               interrupted ? "true" : "false");
  std::fflush(options.summary_out);
  if (interrupted) return 130;
  return failed == 0 && sent == count ? 0 : 1;
}

}  // namespace ffe::participants
