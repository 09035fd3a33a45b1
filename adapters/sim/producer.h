#pragma once
// `ffe produce orders|stock`: a load and demo producer, a standalone Kafka client that writes
// only the public contracts (docs/participants.md, "The producer").
//
//   stock   N ReceiveStock commands on <prefix>inventory.commands, keyed by SKU: receipt i
//           goes to "sku-<(i mod K) + 1>" (so N = K, the default, is one receipt per SKU),
//           qty `stock_qty`, receiptId "r-<idPrefix>-<i>" (unique per run).
//   orders  N PlaceOrder commands on <prefix>orders.commands, keyed by orderId
//           "o-<idPrefix>-<i>": 1..max_lines distinct SKUs of sku-1..sku-K, 1..max_line_qty
//           units each, customer "c-<1..customers>", token tok_visa except the given
//           percentages of tok_decline and tok_silent, country "US" except a percentage of
//           "XX"; a percentage followed at once by a CancelOrder.
//
// Seeded: the same seed and id prefix produce the same messages. Rate-limited by a token
// bucket (0: as fast as the broker takes them). Waits for every delivery report, then prints
// one JSON line: {"what","topic","idPrefix","produced","failed","seconds","rate",...}.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ffe::participants {

enum class ProduceWhat { kOrders, kStock };

struct ProduceOptions {
  ProduceWhat what = ProduceWhat::kOrders;
  std::string brokers;
  std::string topic_prefix = "ff.";
  std::optional<std::uint64_t> count;  // nullopt: 1000 orders, or one receipt per SKU
  double rate = 0;                     // messages per second; 0: unlimited
  std::uint32_t skus = 10;             // K
  std::uint64_t seed = 1;
  // Ids are "o-<prefix>-<i>" / "r-<prefix>-<i>" (i from 1); "" gives "o-<i>"; nullopt: a
  // prefix from the clock, so that repeated runs never collide.
  std::optional<std::string> id_prefix;
  std::int64_t stock_qty = 1000;       // stock: units per receipt
  int max_lines = 3;                   // orders: lines per order, 1..max_lines
  std::int64_t max_line_qty = 3;       // orders: units per line, 1..max_line_qty
  std::uint32_t customers = 1000;
  double decline_pct = 0;              // orders with token tok_decline
  double silent_pct = 0;               // orders with token tok_silent
  double fail_ship_pct = 0;            // orders shipped to country XX
  double cancel_pct = 0;               // orders followed by a CancelOrder
  std::int64_t deadline_ms = 0;        // 0: not set (ffe's default)
  bool protobuf = false;               // binary Protobuf instead of JSON
  bool quiet = false;                  // nothing on stderr but errors
  std::optional<bool> progress_bar;    // nullopt: a bar when stderr is a terminal
  const std::atomic<bool>* stop = nullptr;
  std::vector<std::pair<std::string, std::string>> kafka_config;  // -X key=value
  std::FILE* summary_out = stdout;     // where the JSON summary goes
};

// 0: everything delivered; 1: some messages failed; 2: bad options; 130: stopped early.
int run_produce(const ProduceOptions& options);

}  // namespace ffe::participants
