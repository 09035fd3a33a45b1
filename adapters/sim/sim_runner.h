#pragma once
// `ffe sim payment|shipping`: a participant simulator as a standalone Kafka client. It talks
// to ffe only through the public contracts: it consumes <prefix>payments.requests (or
// shipments.requests) in a consumer group, answers each request by participants.h, and
// publishes the reply on <prefix>payments.replies (shipments.replies), keyed by the order id,
// in the request's content type, with an idempotent producer. docs/participants.md.

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/sim/participants.h"

namespace ffe::participants {

enum class Kind { kPayment, kShipping };

const char* kind_name(Kind kind);  // "payment", "shipping"

struct SimOptions {
  std::string brokers;                // bootstrap servers, required
  std::string topic_prefix = "ff.";
  std::string group_id;               // empty: "ffe-sim-payment" / "ffe-sim-shipping"
  const std::atomic<bool>* stop = nullptr;  // set it to stop (exit 0); nullptr: run forever
  std::size_t dedupe_capacity = kDefaultDedupeCapacity;
  double stats_interval_s = 5;        // a counter line on stderr this often (0: only at exit)
  bool quiet = false;                 // no counter lines at all (errors are still logged)
  // librdkafka settings applied last (`-X key=value`), e.g. session.timeout.ms in tests.
  std::vector<std::pair<std::string, std::string>> kafka_config;
};

// Runs until *stop: 0 when stopped, 2 on a bad option or Kafka setting, 1 on a fatal Kafka
// error. Undecodable requests are logged and skipped (never answered; not the simulator's to
// dead-letter).
int run_participant(Kind kind, const SimOptions& options);

// Splits `-X key=value` flags; an error text for the first item without a key or '='.
std::optional<std::string> parse_kafka_settings(
    const std::vector<std::string>& items, std::vector<std::pair<std::string, std::string>>& out);

// SIGINT and SIGTERM set the returned flag (a second signal kills as usual). Idempotent.
std::atomic<bool>& stop_on_signals();

}  // namespace ffe::participants
