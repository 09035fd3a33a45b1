#pragma once
// Internal to adapters/sim: what the simulators and the producer share about librdkafka
// (configuration, error logging, content-type headers). Included only by .cc files of this
// folder, so the public headers (sim_runner.h, producer.h) stay free of librdkafka.

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/log/log.h"

namespace ffe::simkafka {

using Settings = std::vector<std::pair<std::string, std::string>>;

// One line on stderr, printf-style, through log::line(): plain with --log-format text, a JSON
// line at `level` with json, dropped below --log-level. Every line the simulators and the
// producer write as they run goes through here (the producer's progress bar on a terminal
// aside).
[[gnu::format(printf, 2, 3)]] void say(log::Level level, const char* format, ...);

// Logs librdkafka's errors and warnings on stderr, each error code at most once per 10 s
// (a broker that is down repeats itself), so a failing simulator says why without flooding.
class EventLogger : public RdKafka::EventCb {
 public:
  explicit EventLogger(std::string who) : who_(std::move(who)) {}
  void event_cb(RdKafka::Event& event) override;
  // The same throttle for the caller's own repeated errors.
  bool should_log(int code);
  const std::string& who() const { return who_; }
  // A fatal error was reported (for example the idempotent producer's): the client is dead.
  bool fatal() const { return fatal_; }

 private:
  std::string who_;
  bool fatal_ = false;
  std::map<int, std::chrono::steady_clock::time_point> last_;
};

// A global config with bootstrap.servers = brokers, the event logger, then `settings`
// (-X key=value, applied last, so they override). nullptr and `error` set on a bad setting.
std::unique_ptr<RdKafka::Conf> make_conf(const std::string& brokers, const Settings& settings,
                                         EventLogger& logger, std::string& error);
bool set(RdKafka::Conf& conf, const std::string& key, const std::string& value,
         std::string& error);

// The content-type header of a message, nullopt when absent (then it is JSON).
std::optional<std::string> content_type_of(RdKafka::Message& message);

}  // namespace ffe::simkafka
