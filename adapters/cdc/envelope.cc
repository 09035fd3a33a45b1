#include "adapters/cdc/envelope.h"

#include <nlohmann/json.hpp>

namespace ffe::cdc {

using json = nlohmann::json;

namespace {

json order_json(const OrderRow& row) {
  json lines = json::array();
  for (const OrderLineRow& line : row.lines) {
    lines.push_back({{"sku", line.sku}, {"qty", line.qty}, {"unit_price_cents", line.unit_price_cents}});
  }
  return {{"order_id", row.order_id}, {"customer_id", row.customer_id}, {"state", row.state},
          {"terminal", row.terminal}, {"total_cents", row.total_cents},   {"shard", row.shard},
          {"revision", row.revision}, {"updated_at_ms", row.updated_at_ms}, {"currency", row.currency},
          {"reason", row.reason},     {"lines", std::move(lines)}};
}

json sku_json(const SkuRow& row) {
  return {{"sku", row.sku}, {"on_hand", row.on_hand}, {"reserved", row.reserved}, {"shard", row.shard},
          {"revision", row.revision}};
}

std::string envelope(json before, json after, const char* table, std::uint32_t shard, std::uint64_t revision,
                     char op, std::int64_t ts_ms) {
  json out = {{"op", std::string(1, op)},
              {"before", std::move(before)},
              {"after", std::move(after)},
              {"source", {{"db", "ffe"}, {"table", table}, {"shard", shard}, {"revision", revision}}},
              {"ts_ms", ts_ms}};
  return out.dump();
}

}  // namespace

ChangeEnvelope order_envelope(const std::optional<OrderRow>& before, const OrderRow& after, char op,
                              std::int64_t ts_ms) {
  return {"order/" + after.order_id, envelope(before ? order_json(*before) : json(nullptr), order_json(after),
                                              "orders", after.shard, after.revision, op, ts_ms)};
}

ChangeEnvelope sku_envelope(const std::optional<SkuRow>& before, const SkuRow& after, char op, std::int64_t ts_ms) {
  return {"sku/" + after.sku, envelope(before ? sku_json(*before) : json(nullptr), sku_json(after), "sku_stock",
                                       after.shard, after.revision, op, ts_ms)};
}

}  // namespace ffe::cdc
