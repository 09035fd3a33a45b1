#include "adapters/sim/sim_runner.h"

#include <signal.h>

#include <chrono>
#include <future>
#include <thread>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "adapters/sim/kafka_support.h"
#include "events/codec.h"
#include "events/json_writer.h"

namespace ffe::participants {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) { g_stop.store(true); }

// Counts replies that could not be delivered (after librdkafka's own retries).
class DeliveryReports : public RdKafka::DeliveryReportCb {
 public:
  explicit DeliveryReports(simkafka::EventLogger& logger) : logger_(logger) {}
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) return;
    ++failed;
    if (logger_.should_log(200000 + static_cast<int>(message.err()))) {
      simkafka::say(log::Level::kWarn, "%s: a reply was not delivered to %s: %s", logger_.who().c_str(),
                   message.topic_name().c_str(), message.errstr().c_str());
    }
  }
  std::uint64_t failed = 0;

 private:
  simkafka::EventLogger& logger_;
};

// The two clients and what their callbacks use, shared with the thread that closes them.
struct Clients {
  explicit Clients(std::string who) : logger(std::move(who)), reports(logger) {}
  simkafka::EventLogger logger;
  DeliveryReports reports;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::unique_ptr<RdKafka::Producer> producer;
};

// Leaves the group (commits offsets, revokes). KafkaConsumer::close() blocks for as long as
// the broker is unreachable, so it runs on its own thread: after `limit` the simulator gives
// up and exits anyway, leaving that thread (and the clients it holds) to the process's exit.
bool close_within(const std::shared_ptr<Clients>& clients, std::chrono::milliseconds limit) {
  if (!clients->consumer) return true;
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> closed = done->get_future();
  std::thread closer([clients, done] {
    clients->consumer->close();
    done->set_value();
  });
  if (closed.wait_for(limit) == std::future_status::ready) {
    closer.join();
    return true;
  }
  closer.detach();
  simkafka::say(log::Level::kWarn, "%s: could not leave the group within %lld ms (broker unreachable?); exiting anyway",
               clients->logger.who().c_str(), static_cast<long long>(limit.count()));
  return false;
}

template <class Reply>
std::string counter_line(const char* who, const Stats& stats, std::size_t remembered,
                         std::uint64_t failed) {
  std::string line = std::string(who) + ": " + std::to_string(stats.requests) + " requests (" +
                     std::to_string(stats.duplicates) + " duplicates, " +
                     std::to_string(stats.undo_before_do) + " after their undo), " +
                     std::to_string(stats.undecodable) + " undecodable skipped; answers";
  for (int status = 1; status < static_cast<int>(stats.answers.size()); ++status) {
    if (!Reply::Status_IsValid(status)) continue;
    line += " " + Reply::Status_Name(static_cast<typename Reply::Status>(status)) + " " +
            std::to_string(stats.answers[static_cast<std::size_t>(status)]) + ",";
  }
  line += " none (silent) " + std::to_string(stats.silent) + "; " + std::to_string(remembered) +
          " command ids remembered";
  if (failed > 0) line += "; " + std::to_string(failed) + " replies undelivered";
  return line;
}

struct Topics {
  std::string requests;
  std::string replies;
};

Topics topics_for(Kind kind, const std::string& prefix) {
  const std::string base = kind == Kind::kPayment ? "payments" : "shipments";
  return {prefix + base + ".requests", prefix + base + ".replies"};
}

// Decodes one request and answers it; returns the reply's bytes, or nullopt when there is
// nothing to send (silent, or undecodable: logged and skipped).
template <class Request, class Reply, class State, class Decode, class Answer>
std::optional<std::string> handle(RdKafka::Message& message, State& state, Decode decode,
                                  Answer answer, simkafka::EventLogger& logger,
                                  std::string& key) {
  const std::optional<std::string> header = simkafka::content_type_of(message);
  const std::optional<std::string_view> header_view =
      header ? std::optional<std::string_view>(*header) : std::nullopt;
  const std::string_view bytes(static_cast<const char*>(message.payload()), message.len());

  auto undecodable = [&](const std::string& why) -> std::optional<std::string> {
    ++state.stats.undecodable;
    // Logged every time at first, then throttled (one line per 10 s) after 100.
    if (state.stats.undecodable <= 100 || logger.should_log(300000)) {
      simkafka::say(log::Level::kWarn, "%s: skipping an undecodable request at %s[%d]@%lld: %s",
                   logger.who().c_str(), message.topic_name().c_str(), message.partition(),
                   static_cast<long long>(message.offset()), why.c_str());
    }
    return std::nullopt;
  };

  auto type = events::parse_content_type(header_view);
  if (auto* error = std::get_if<events::DecodeError>(&type)) return undecodable(error->reason);
  auto decoded = decode(bytes, header_view);
  if (auto* error = std::get_if<events::DecodeError>(&decoded)) return undecodable(error->reason);

  std::optional<Reply> reply = answer(std::get<Request>(decoded), state);
  if (!reply) return std::nullopt;
  key = reply->order_id();
  if (std::get<events::ContentType>(type) == events::ContentType::kJson) return events::json::encode(*reply);
  return events::encode_binary(*reply);
}

}  // namespace

const char* kind_name(Kind kind) { return kind == Kind::kPayment ? "payment" : "shipping"; }

std::optional<std::string> parse_kafka_settings(
    const std::vector<std::string>& items, std::vector<std::pair<std::string, std::string>>& out) {
  for (const std::string& item : items) {
    const std::size_t equals = item.find('=');
    if (equals == std::string::npos || equals == 0) {
      return "-X takes key=value (a librdkafka setting), got '" + item + "'";
    }
    out.emplace_back(item.substr(0, equals), item.substr(equals + 1));
  }
  return std::nullopt;
}

std::atomic<bool>& stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;  // the second signal takes the default action
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return g_stop;
}

int run_participant(Kind kind, const SimOptions& options) {
  const std::string who = std::string("ffe sim ") + kind_name(kind);
  if (options.brokers.empty()) {
    simkafka::say(log::Level::kError, "%s: --brokers is required", who.c_str());
    return 2;
  }
  const Topics topics = topics_for(kind, options.topic_prefix);
  const std::string group =
      options.group_id.empty() ? std::string("ffe-sim-") + kind_name(kind) : options.group_id;

  auto clients = std::make_shared<Clients>(who);
  simkafka::EventLogger& logger = clients->logger;
  DeliveryReports& reports = clients->reports;
  std::unique_ptr<RdKafka::KafkaConsumer>& consumer = clients->consumer;
  std::unique_ptr<RdKafka::Producer>& producer = clients->producer;
  std::string error;

  simkafka::Settings consumer_settings = {
      {"group.id", group},
      {"client.id", "ffe-sim-" + std::string(kind_name(kind))},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      // A participant answers as soon as a request arrives: with librdkafka's default
      // (500 ms) a broker that holds an empty fetch for the whole wait (the embedded mock
      // does) delays every reply by about half a second.
      {"fetch.wait.max.ms", "10"},
  };
  consumer_settings.insert(consumer_settings.end(), options.kafka_config.begin(),
                           options.kafka_config.end());
  std::unique_ptr<RdKafka::Conf> consumer_conf =
      simkafka::make_conf(options.brokers, consumer_settings, logger, error);
  // The producer gets only the settings a producer knows (group.id & co. would warn).
  simkafka::Settings producer_settings = {
      {"client.id", "ffe-sim-" + std::string(kind_name(kind))},
      {"enable.idempotence", "true"},
      {"linger.ms", "2"},
  };
  for (const auto& setting : options.kafka_config) {
    if (setting.first.rfind("group.", 0) != 0 && setting.first.rfind("session.", 0) != 0 &&
        setting.first.rfind("heartbeat.", 0) != 0 && setting.first.rfind("auto.", 0) != 0 &&
        setting.first.rfind("enable.auto.", 0) != 0 && setting.first.rfind("fetch.", 0) != 0 &&
        setting.first.rfind("max.poll.", 0) != 0 && setting.first != "enable.partition.eof") {
      producer_settings.push_back(setting);
    }
  }
  std::unique_ptr<RdKafka::Conf> producer_conf =
      consumer_conf ? simkafka::make_conf(options.brokers, producer_settings, logger, error)
                    : nullptr;
  if (producer_conf) {
    std::string why;
    if (producer_conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&reports), why) !=
        RdKafka::Conf::CONF_OK) {
      error = "kafka dr_cb: " + why;
      producer_conf.reset();
    }
  }
  if (!consumer_conf || !producer_conf) {
    simkafka::say(log::Level::kError, "%s: %s", who.c_str(), error.c_str());
    return 2;
  }

  consumer.reset(RdKafka::KafkaConsumer::create(consumer_conf.get(), error));
  if (!consumer) {
    simkafka::say(log::Level::kError, "%s: cannot create the consumer: %s", who.c_str(), error.c_str());
    return 2;
  }
  producer.reset(RdKafka::Producer::create(producer_conf.get(), error));
  if (!producer) {
    simkafka::say(log::Level::kError, "%s: cannot create the producer: %s", who.c_str(), error.c_str());
    close_within(clients, std::chrono::seconds(5));
    return 2;
  }
  if (RdKafka::ErrorCode err = consumer->subscribe({topics.requests}); err != RdKafka::ERR_NO_ERROR) {
    simkafka::say(log::Level::kError, "%s: cannot subscribe to %s: %s", who.c_str(), topics.requests.c_str(),
                 RdKafka::err2str(err).c_str());
    close_within(clients, std::chrono::seconds(5));
    return 2;
  }
  if (!options.quiet) {
    simkafka::say(log::Level::kInfo, "%s: answering %s on %s (group %s, brokers %s)", who.c_str(),
                 topics.requests.c_str(), topics.replies.c_str(), group.c_str(),
                 options.brokers.c_str());
  }

  PaymentState payments(kind == Kind::kPayment ? options.dedupe_capacity : 4);
  ShipmentState shipments(kind == Kind::kShipping ? options.dedupe_capacity : 4);
  const Stats& stats = kind == Kind::kPayment ? payments.stats : shipments.stats;
  auto line = [&] {
    return kind == Kind::kPayment
               ? counter_line<v1::PaymentReply>(who.c_str(), stats, payments.ledger.size(),
                                                reports.failed)
               : counter_line<v1::ShipmentReply>(who.c_str(), stats, shipments.ledger.size(),
                                                 reports.failed);
  };

  using Clock = std::chrono::steady_clock;
  auto next_line = Clock::now();
  std::uint64_t requests_at_last_line = 0;
  std::uint64_t failed_at_last_line = 0;
  int exit_code = 0;
  std::string key;

  while (options.stop == nullptr || !options.stop->load()) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(100));
    const RdKafka::ErrorCode err = message->err();
    if (err == RdKafka::ERR_NO_ERROR) {
      std::optional<std::string> reply =
          kind == Kind::kPayment
              ? handle<v1::PaymentRequest, v1::PaymentReply>(
                    *message, payments, events::decode_payment_request, answer_payment, logger, key)
              : handle<v1::ShipmentRequest, v1::ShipmentReply>(
                    *message, shipments, events::decode_shipment_request, answer_shipment, logger,
                    key);
      if (reply) {
        // Same content type as the request (its canonical name).
        const std::optional<std::string> header = simkafka::content_type_of(*message);
        auto type = events::parse_content_type(
            header ? std::optional<std::string_view>(*header) : std::nullopt);
        const std::string_view content_type =
            events::content_type_name(std::get<events::ContentType>(type));
        RdKafka::Headers* headers = RdKafka::Headers::create();
        headers->add("content-type", content_type.data(), content_type.size());
        for (;;) {
          const RdKafka::ErrorCode produced = producer->produce(
              topics.replies, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
              reply->data(), reply->size(), key.data(), key.size(), 0, headers, nullptr);
          if (produced == RdKafka::ERR_NO_ERROR) break;  // librdkafka owns the headers now
          if (produced == RdKafka::ERR__QUEUE_FULL &&
              (options.stop == nullptr || !options.stop->load())) {
            producer->poll(50);
            continue;
          }
          delete headers;
          ++reports.failed;
          if (logger.should_log(400000 + static_cast<int>(produced))) {
            simkafka::say(log::Level::kWarn, "%s: cannot send a reply to %s: %s", who.c_str(),
                         topics.replies.c_str(), RdKafka::err2str(produced).c_str());
          }
          break;
        }
      }
    } else if (err == RdKafka::ERR__FATAL) {
      std::string why;
      consumer->fatal_error(why);
      simkafka::say(log::Level::kError, "%s: fatal kafka error: %s", who.c_str(), why.c_str());
      exit_code = 1;
      break;
    } else if (err != RdKafka::ERR__TIMED_OUT && err != RdKafka::ERR__PARTITION_EOF) {
      if (logger.should_log(static_cast<int>(err))) {
        simkafka::say(log::Level::kWarn, "%s: consume: %s", who.c_str(), message->errstr().c_str());
      }
    }
    producer->poll(0);
    if (logger.fatal()) {
      simkafka::say(log::Level::kError, "%s: a fatal kafka error stopped the simulator", who.c_str());
      exit_code = 1;
      break;
    }
    if (!options.quiet && options.stats_interval_s > 0 && Clock::now() >= next_line) {
      next_line = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(options.stats_interval_s));
      if (stats.requests != requests_at_last_line || reports.failed != failed_at_last_line) {
        requests_at_last_line = stats.requests;
        failed_at_last_line = reports.failed;
        simkafka::say(log::Level::kInfo, "%s", line().c_str());
      }
    }
  }

  // Replies already handed to librdkafka go out before the group is left.
  if (producer->flush(5'000) != RdKafka::ERR_NO_ERROR) {
    simkafka::say(log::Level::kWarn, "%s: %d replies still unsent at exit", who.c_str(),
                 producer->outq_len());
  }
  close_within(clients, std::chrono::seconds(5));
  if (!options.quiet) simkafka::say(log::Level::kInfo, "%s (stopped)", line().c_str());
  return exit_code;
}

}  // namespace ffe::participants
