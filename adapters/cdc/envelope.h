#pragma once
// Debezium-style change envelopes (docs/cdc.md, "Change envelopes"), for users who feed
// other systems from ffe's changes: one JSON object per changed row,
//   {"op":"c|u|r|d","before":{...}|null,"after":{...}|null,
//    "source":{"db":"ffe","table":"orders","shard":0,"revision":41},"ts_ms":1700000000000}
// with the row's columns under their table's names (orders: order_id, ..., lines as an
// array; sku_stock: sku, on_hand, ...). op "c": the entity did not exist before the batch;
// "u": it did; "r": read (written by a backfill, not by a change); "d" is never emitted
// (ffe never deletes an entity). ts_ms is the commit time of the row's revision (orders) or
// of the batch's last revision (SKUs, whose rows carry no time).
//
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>

#include "adapters/cdc/sink.h"

namespace ffe::cdc {

struct ChangeEnvelope {
  std::string key;    // the entity key: "order/<id>" or "sku/<sku>"
  std::string value;  // the JSON object
};

ChangeEnvelope order_envelope(const std::optional<OrderRow>& before, const OrderRow& after, char op,
                              std::int64_t ts_ms);
ChangeEnvelope sku_envelope(const std::optional<SkuRow>& before, const SkuRow& after, char op, std::int64_t ts_ms);

}  // namespace ffe::cdc
