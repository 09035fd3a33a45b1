#pragma once
// Internal to adapters/kafka/*.cc: the librdkafka helpers every client shares. This is the
// one header of ffe that includes librdkafka's; nothing outside adapters/kafka includes it
// (rdkafkacpp.h stays out of the headers other components compile).

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "adapters/kafka/client_config.h"
#include "storage/status.h"

namespace ffe::kafka::internal {

// Logs librdkafka's events through spdlog: errors as warnings (a broker that is down is
// expected and retried; each error code is logged at most once per 10 s), fatal errors as
// errors, librdkafka's own log lines at debug (critical ones as warnings). One per client
// handle; thread-safe (librdkafka calls it from its threads).
class LogEvents final : public RdKafka::EventCb {
 public:
  explicit LogEvents(std::string client) : client_(std::move(client)) {}
  void event_cb(RdKafka::Event& event) override;

 private:
  // Whether an error with this code may be logged now (each code at most once per 10 s).
  bool should_log(int code);

  std::string client_;
  std::mutex mu_;
  std::map<int, std::int64_t> last_logged_ms_;
};

// A global Conf with bootstrap.servers, client.id, the event callback and then
// `client.properties` (which win). nullptr and *error set on a bad property.
std::unique_ptr<RdKafka::Conf> make_conf(const ClientConfig& client, RdKafka::EventCb* events,
                                         std::string* error);
// Sets one property; false and *error set when librdkafka refuses it.
bool set(RdKafka::Conf& conf, const std::string& name, const std::string& value, std::string* error);

// The same for the C API (the Admin API and metadata live there): a conf with
// bootstrap.servers, client.id and `client.properties`. nullptr and *error on failure.
rd_kafka_conf_t* make_c_conf(const ClientConfig& client, std::string* error);

storage::Status io_error(std::string message);

std::int64_t now_ms();

}  // namespace ffe::kafka::internal
