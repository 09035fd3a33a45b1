#pragma once
// State -> analytics rows: decodes an entity's canonical state bytes (the journal's
// ffe.v1.OrderSnapshot / SkuSnapshot, actors/runtime/folder.h), or takes its decoded state,
// into the rows of sink.h.
// Shared by the CDC pipeline (pipeline.h) and `ffe drift` (drift.h), so both sides of the
// drift comparison are built by the same code.
//
// updated_at_ms of an order is the commit time (LogRecord.committed_at_ms) of the order's
// mod_revision. The pipeline knows it from the records of the batch it reads; drift and the
// backfill read it back with commit_time(). Once compaction removed that record the time is
// gone from the journal: drift then cannot check the column and says so (docs/cdc.md,
// "Pipeline").
//
// Pure functions over values; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "actors/order/order.h"
#include "actors/sku/sku.h"
#include "adapters/cdc/sink.h"
#include "storage/journal.h"

namespace ffe::cdc {

inline constexpr std::string_view kOrderKeyPrefix = "order/";
inline constexpr std::string_view kSkuKeyPrefix = "sku/";

enum class EntityKind { kOrder, kSku, kOther };
EntityKind kind_of(std::string_view entity_key);

// kCorruption when the bytes do not parse or the key names another entity.
storage::Result<OrderRow> order_row(std::uint32_t shard, std::string_view entity_key,
                                    const storage::EntityState& entity, std::int64_t updated_at_ms);
storage::Result<SkuRow> sku_row(std::uint32_t shard, std::string_view entity_key,
                                const storage::EntityState& entity);
// The same rows from decoded states (the pipeline keeps its states decoded): equal to the
// rows of the states' canonical bytes.
OrderRow order_row(std::uint32_t shard, std::string_view entity_key, const order::State& state,
                   storage::Revision mod_revision, std::int64_t updated_at_ms);
SkuRow sku_row(std::uint32_t shard, std::string_view entity_key, const sku::State& state,
               storage::Revision mod_revision);

// The commit time of `revision` in `shard`; nullopt when compaction removed its record.
storage::Result<std::optional<std::int64_t>> commit_time(const storage::Journal& journal,
                                                         storage::ShardId shard,
                                                         storage::Revision revision);

// Field-by-field differences of two rows of the same key ("state: RESERVING != FULFILLED"),
// empty when equal; with check_updated_at false the updated_at_ms column is not compared.
std::string order_difference(const OrderRow& sink, const OrderRow& engine, bool check_updated_at = true);
std::string sku_difference(const SkuRow& sink, const SkuRow& engine);

}  // namespace ffe::cdc
