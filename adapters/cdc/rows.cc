#include "adapters/cdc/rows.h"

#include <type_traits>

#include "ffe/v1/journal.pb.h"
#include "ffe/v1/outcomes.pb.h"

namespace ffe::cdc {

using storage::Result;
using storage::Status;
using storage::StatusCode;

EntityKind kind_of(std::string_view entity_key) {
  if (entity_key.starts_with(kOrderKeyPrefix)) return EntityKind::kOrder;
  if (entity_key.starts_with(kSkuKeyPrefix)) return EntityKind::kSku;
  return EntityKind::kOther;
}

namespace {

OrderRow order_row_of(std::uint32_t shard, std::string_view entity_key, const v1::OrderSnapshot& snapshot,
                      storage::Revision mod_revision, std::int64_t updated_at_ms) {
  OrderRow row;
  row.order_id = snapshot.order_id();
  // An order's id is its key's suffix; a snapshot that says otherwise would put the row
  // under another key than the engine's, which drift must see.
  if (row.order_id.empty()) row.order_id = std::string(entity_key.substr(kOrderKeyPrefix.size()));
  row.customer_id = snapshot.customer_id();
  row.state = v1::OrderState_Name(snapshot.state());
  row.terminal = snapshot.state() == v1::FULFILLED || snapshot.state() == v1::CANCELLED ||
                 snapshot.state() == v1::REJECTED;
  row.total_cents = snapshot.amount_cents();
  row.shard = shard;
  row.revision = mod_revision;
  row.updated_at_ms = updated_at_ms;
  row.currency = snapshot.currency();
  row.reason = snapshot.reason();
  row.lines.reserve(static_cast<std::size_t>(snapshot.lines_size()));
  for (const v1::OrderLineSnapshot& line : snapshot.lines()) {
    row.lines.push_back(OrderLineRow{line.sku(), line.qty(), line.unit_price_cents()});
  }
  return row;
}

// The SKU row, whether its fields come from a snapshot or a decoded state.
SkuRow sku_row_of(std::uint32_t shard, std::string_view entity_key, const std::string& sku, std::int64_t on_hand,
                  std::int64_t reserved, storage::Revision mod_revision) {
  SkuRow row;
  row.sku = sku.empty() ? std::string(entity_key.substr(kSkuKeyPrefix.size())) : sku;
  row.on_hand = on_hand;
  row.reserved = reserved;
  row.shard = shard;
  row.revision = mod_revision;
  return row;
}

}  // namespace

Result<OrderRow> order_row(std::uint32_t shard, std::string_view entity_key, const storage::EntityState& entity,
                           std::int64_t updated_at_ms) {
  v1::OrderSnapshot snapshot;
  if (kind_of(entity_key) != EntityKind::kOrder || !snapshot.ParseFromString(entity.state)) {
    return Status(StatusCode::kCorruption,
                  "shard " + std::to_string(shard) + ": the state of " + std::string(entity_key) +
                      " is not an order snapshot");
  }
  return order_row_of(shard, entity_key, snapshot, entity.mod_revision, updated_at_ms);
}

OrderRow order_row(std::uint32_t shard, std::string_view entity_key, const order::State& state,
                   storage::Revision mod_revision, std::int64_t updated_at_ms) {
  return order_row_of(shard, entity_key, order::to_snapshot(state), mod_revision, updated_at_ms);
}

SkuRow sku_row(std::uint32_t shard, std::string_view entity_key, const sku::State& state,
               storage::Revision mod_revision) {
  return sku_row_of(shard, entity_key, state.sku, state.on_hand, state.reserved, mod_revision);
}

Result<SkuRow> sku_row(std::uint32_t shard, std::string_view entity_key, const storage::EntityState& entity) {
  v1::SkuSnapshot snapshot;
  if (kind_of(entity_key) != EntityKind::kSku || !snapshot.ParseFromString(entity.state)) {
    return Status(StatusCode::kCorruption,
                  "shard " + std::to_string(shard) + ": the state of " + std::string(entity_key) +
                      " is not a SKU snapshot");
  }
  return sku_row_of(shard, entity_key, snapshot.sku(), snapshot.on_hand(), snapshot.reserved(), entity.mod_revision);
}

Result<std::optional<std::int64_t>> commit_time(const storage::Journal& journal, storage::ShardId shard,
                                                storage::Revision revision) {
  auto compacted = journal.compacted_revision(shard);
  if (!compacted) return compacted.status();
  if (revision == 0 || revision < *compacted) return std::optional<std::int64_t>();
  auto watch = journal.watch(shard, "", revision);
  if (!watch) {
    if (watch.status().code() == StatusCode::kCompacted) return std::optional<std::int64_t>();
    return watch.status();
  }
  auto records = watch->next(1);
  if (!records) {
    if (records.status().code() == StatusCode::kCompacted) return std::optional<std::int64_t>();
    return records.status();
  }
  if (records->empty() || records->front().revision != revision) {
    return Status(StatusCode::kCorruption, "shard " + std::to_string(shard.value) + ": no log record at revision " +
                                               std::to_string(revision));
  }
  return std::optional<std::int64_t>(records->front().committed_at_ms);
}

namespace {

template <typename T>
void compare(std::string& out, const char* name, const T& sink, const T& engine) {
  if (sink == engine) return;
  if (!out.empty()) out += ", ";
  out += name;
  out += ": ";
  if constexpr (std::is_same_v<T, std::string>) {
    out += "\"" + sink + "\" (tables) != \"" + engine + "\" (engine)";
  } else if constexpr (std::is_same_v<T, bool>) {
    out += std::string(sink ? "true" : "false") + " (tables) != " + (engine ? "true" : "false") + " (engine)";
  } else {
    out += std::to_string(sink) + " (tables) != " + std::to_string(engine) + " (engine)";
  }
}

std::string lines_text(const std::vector<OrderLineRow>& lines) {
  std::string out = "[";
  for (const OrderLineRow& line : lines) {
    if (out.size() > 1) out += " ";
    out += line.sku + "x" + std::to_string(line.qty) + "@" + std::to_string(line.unit_price_cents);
  }
  return out + "]";
}

}  // namespace

std::string order_difference(const OrderRow& sink, const OrderRow& engine, bool check_updated_at) {
  std::string out;
  compare(out, "order_id", sink.order_id, engine.order_id);
  compare(out, "customer_id", sink.customer_id, engine.customer_id);
  compare(out, "state", sink.state, engine.state);
  compare(out, "terminal", sink.terminal, engine.terminal);
  compare(out, "total_cents", sink.total_cents, engine.total_cents);
  compare(out, "shard", sink.shard, engine.shard);
  compare(out, "revision", sink.revision, engine.revision);
  if (check_updated_at) compare(out, "updated_at_ms", sink.updated_at_ms, engine.updated_at_ms);
  compare(out, "currency", sink.currency, engine.currency);
  compare(out, "reason", sink.reason, engine.reason);
  if (sink.lines != engine.lines) {
    compare(out, "order_lines", lines_text(sink.lines), lines_text(engine.lines));
  }
  return out;
}

std::string sku_difference(const SkuRow& sink, const SkuRow& engine) {
  std::string out;
  compare(out, "sku", sink.sku, engine.sku);
  compare(out, "on_hand", sink.on_hand, engine.on_hand);
  compare(out, "reserved", sink.reserved, engine.reserved);
  compare(out, "shard", sink.shard, engine.shard);
  compare(out, "revision", sink.revision, engine.revision);
  return out;
}

}  // namespace ffe::cdc
