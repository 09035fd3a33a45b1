#include "adapters/kafka/rdkafka_internal.h"

#include <spdlog/spdlog.h>

namespace ffe::kafka::internal {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool LogEvents::should_log(int code) {
  const std::int64_t now = now_ms();
  std::lock_guard lock(mu_);
  auto [it, inserted] = last_logged_ms_.try_emplace(code, now);
  if (inserted) return true;
  if (now - it->second < 10'000) return false;
  it->second = now;
  return true;
}

void LogEvents::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR: {
      // Repeats of one error (a broker that stays down) are logged every 10 s at most.
      if (!event.fatal() && !should_log(static_cast<int>(event.err()))) return;
      if (event.fatal()) {
        spdlog::error("kafka {}: fatal: {}: {}", client_, RdKafka::err2str(event.err()), event.str());
      } else {
        spdlog::warn("kafka {}: {}: {} (librdkafka retries)", client_, RdKafka::err2str(event.err()),
                     event.str());
      }
      return;
    }
    case RdKafka::Event::EVENT_LOG: {
      // Connection failures also arrive as error events (logged above): logs are debug
      // unless librdkafka calls them critical.
      if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_CRITICAL) {
        spdlog::warn("kafka {}: {} {}", client_, event.fac(), event.str());
      } else {
        spdlog::debug("kafka {}: {} {}", client_, event.fac(), event.str());
      }
      return;
    }
    default:
      return;
  }
}

bool set(RdKafka::Conf& conf, const std::string& name, const std::string& value, std::string* error) {
  std::string why;
  if (conf.set(name, value, why) != RdKafka::Conf::CONF_OK) {
    *error = "kafka property " + name + "=" + value + ": " + why;
    return false;
  }
  return true;
}

std::unique_ptr<RdKafka::Conf> make_conf(const ClientConfig& client, RdKafka::EventCb* events,
                                         std::string* error) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  if (!set(*conf, "bootstrap.servers", client.brokers, error)) return nullptr;
  if (!set(*conf, "client.id", client.client_id, error)) return nullptr;
  if (events != nullptr) {
    std::string why;
    if (conf->set("event_cb", events, why) != RdKafka::Conf::CONF_OK) {
      *error = "kafka event_cb: " + why;
      return nullptr;
    }
  }
  for (const auto& [name, value] : client.properties) {
    if (!set(*conf, name, value, error)) return nullptr;
  }
  return conf;
}

namespace {

// librdkafka's log lines of a C API client (the Admin API, metadata) through spdlog, as
// LogEvents does for the C++ clients: without it librdkafka prints its own "%3|..." lines on
// stderr, past --log-format json and the redaction. Errors (a broker that is down) are
// retried by the caller and reported there; here they are debug unless critical.
void log_c_client(const rd_kafka_t* handle, int level, const char* facility, const char* message) {
  const char* name = handle != nullptr ? rd_kafka_name(handle) : "admin";
  if (level <= 2) {  // LOG_CRIT and worse
    spdlog::warn("kafka {}: {} {}", name, facility, message);
  } else {
    spdlog::debug("kafka {}: {} {}", name, facility, message);
  }
}

}  // namespace

rd_kafka_conf_t* make_c_conf(const ClientConfig& client, std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, log_c_client);
  char why[512];
  auto put = [&](const std::string& name, const std::string& value) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), why, sizeof why) != RD_KAFKA_CONF_OK) {
      *error = "kafka property " + name + "=" + value + ": " + why;
      return false;
    }
    return true;
  };
  bool ok = put("bootstrap.servers", client.brokers) && put("client.id", client.client_id);
  for (const auto& [name, value] : client.properties) ok = ok && put(name, value);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  return conf;
}

storage::Status io_error(std::string message) {
  return storage::Status(storage::StatusCode::kIoError, std::move(message));
}

}  // namespace ffe::kafka::internal
