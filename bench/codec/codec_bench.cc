// JSON decodes per second of each inbound contract example (tests/events/contract_examples.h),
// with the fast path (events/json_reader.h) and with the full path (UTF-8 check, shape check,
// protobuf's parser). One JSON line per example on stdout. docs/contracts.md has the numbers.
//
// Usage: ffe_codec_bench [seconds per case, default 1]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "events/codec.h"
#include "events/codec_internal.h"
#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"
#include "tests/events/contract_examples.h"

namespace {

using Clock = std::chrono::steady_clock;

// Decodes/s of `json` as `type` for `seconds`; exits 1 if a decode fails.
double rate(std::string_view json, google::protobuf::Message& type, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::uint64_t decodes = 0;
  const auto start = Clock::now();
  while (Clock::now() < end) {
    for (int i = 0; i < 100; ++i) {
      if (ffe::events::decode(json, ffe::events::ContentType::kJson, type)) {
        std::fprintf(stderr, "decode failed: %.*s\n", static_cast<int>(json.size()), json.data());
        std::exit(1);
      }
    }
    decodes += 100;
  }
  return static_cast<double>(decodes) / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  namespace examples = ffe::events::examples;
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  struct Case {
    const char* name;
    std::string_view json;
    std::unique_ptr<google::protobuf::Message> type;
  };
  Case cases[] = {{"placeOrder", examples::kPlaceOrder, std::make_unique<ffe::v1::OrderCommand>()},
                  {"receiveStock", examples::kReceiveStock, std::make_unique<ffe::v1::InventoryCommand>()},
                  {"authorize", examples::kAuthorize, std::make_unique<ffe::v1::PaymentRequest>()},
                  {"paymentReply", examples::kPaymentReply, std::make_unique<ffe::v1::PaymentReply>()},
                  {"createShipment", examples::kCreateShipment, std::make_unique<ffe::v1::ShipmentRequest>()},
                  {"shipmentReply", examples::kShipmentReply, std::make_unique<ffe::v1::ShipmentReply>()}};
  for (auto& c : cases) {
    ffe::events::internal::set_json_fast_path(false);
    const double full = rate(c.json, *c.type, seconds);
    ffe::events::internal::set_json_fast_path(true);
    const std::uint64_t before = ffe::events::internal::json_fast_path_decodes();
    const double fast = rate(c.json, *c.type, seconds);
    const bool took_fast_path = ffe::events::internal::json_fast_path_decodes() > before;
    std::printf(
        "{\"message\":\"%s\",\"bytes\":%zu,\"fullPathDecodesPerS\":%.0f,\"fastPathDecodesPerS\":%.0f,"
        "\"speedup\":%.2f,\"fastPathTaken\":%s}\n",
        c.name, c.json.size(), full, fast, fast / full, took_fast_path ? "true" : "false");
  }
  return 0;
}
