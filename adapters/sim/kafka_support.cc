#include "adapters/sim/kafka_support.h"

#include <cstdarg>

namespace ffe::simkafka {

void say(log::Level level, const char* format, ...) {
  char small[512];
  std::va_list args;
  va_start(args, format);
  std::va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(small, sizeof small, format, args);
  va_end(args);
  std::string text;
  if (n >= 0 && static_cast<std::size_t>(n) < sizeof small) {
    text.assign(small, static_cast<std::size_t>(n));
  } else if (n >= 0) {
    text.resize(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(text.data(), text.size(), format, again);
    text.resize(static_cast<std::size_t>(n));
  }
  va_end(again);
  log::line(level, text);
}

bool EventLogger::should_log(int code) {
  const auto now = std::chrono::steady_clock::now();
  auto [it, first] = last_.try_emplace(code, now);
  if (!first && now - it->second < std::chrono::seconds(10)) return false;
  it->second = now;
  return true;
}

void EventLogger::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR:
      if (event.fatal()) fatal_ = true;
      if (event.fatal() || should_log(static_cast<int>(event.err()))) {
        simkafka::say(event.fatal() ? log::Level::kError : log::Level::kWarn, "%s: kafka %s: %s%s", who_.c_str(),
                     RdKafka::err2str(event.err()).c_str(), event.str().c_str(),
                     event.fatal() ? " (fatal)" : "");
      }
      break;
    case RdKafka::Event::EVENT_LOG:
      if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING &&
          should_log(100000 + event.severity())) {
        simkafka::say(log::Level::kWarn, "%s: kafka log %s: %s", who_.c_str(), event.fac().c_str(),
                     event.str().c_str());
      }
      break;
    default: break;
  }
}

bool set(RdKafka::Conf& conf, const std::string& key, const std::string& value,
         std::string& error) {
  std::string why;
  if (conf.set(key, value, why) != RdKafka::Conf::CONF_OK) {
    error = "kafka setting " + key + "=" + value + ": " + why;
    return false;
  }
  return true;
}

std::unique_ptr<RdKafka::Conf> make_conf(const std::string& brokers, const Settings& settings,
                                         EventLogger& logger, std::string& error) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string why;
  if (!set(*conf, "bootstrap.servers", brokers, error)) return nullptr;
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(&logger), why) !=
      RdKafka::Conf::CONF_OK) {
    error = "kafka event_cb: " + why;
    return nullptr;
  }
  for (const auto& [key, value] : settings) {
    if (!set(*conf, key, value, error)) return nullptr;
  }
  return conf;
}

std::optional<std::string> content_type_of(RdKafka::Message& message) {
  const RdKafka::Headers* headers = message.headers();
  if (headers == nullptr) return std::nullopt;
  RdKafka::Headers::Header header = headers->get_last("content-type");
  if (header.err() != RdKafka::ERR_NO_ERROR) return std::nullopt;
  if (header.value() == nullptr) return std::string();
  return std::string(static_cast<const char*>(header.value()), header.value_size());
}

}  // namespace ffe::simkafka
