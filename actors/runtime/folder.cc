#include "actors/runtime/folder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "actors/order/order.h"
#include "actors/sku/sku.h"
#include "events/assert.h"
#include "events/upcast.h"

namespace ffe::runtime {

std::string deterministic_bytes(const google::protobuf::MessageLite& message) {
  message.ByteSizeLong();  // SerializeWithCachedSizes needs the cached sizes
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeWithCachedSizes(&coded);
    FFE_ASSERT(!coded.HadError(), "serializing a snapshot failed");
  }
  return out;
}

namespace {

constexpr std::string_view kSkuPrefix = "sku/";
constexpr std::string_view kOrderPrefix = "order/";

template <class Snapshot>
Snapshot parse_snapshot(std::string_view key, std::string_view bytes) {
  Snapshot snapshot;
  FFE_ASSERT(snapshot.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
             ("undecodable snapshot of " + std::string(key)).c_str());
  return snapshot;
}

// Decodes one journal event and brings it up to the current schema (events/upcast.h), so
// evolve() never sees an event an older ffe wrote. An event the upcaster refuses is as
// corrupt as undecodable bytes.
template <class Event>
Event parse_event(std::string_view key, std::string_view bytes) {
  Event event;
  FFE_ASSERT(event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
             ("undecodable event of " + std::string(key)).c_str());
  const events::UpcastResult upcast = events::upcast(event);
  FFE_ASSERT(upcast.ok(), ("an event of " + std::string(key) + " cannot be upcast: " + upcast.reason).c_str());
  return event;
}

}  // namespace

sku::State decode_sku(std::string_view entity_key, std::string_view state_bytes) {
  return sku::from_snapshot(parse_snapshot<v1::SkuSnapshot>(entity_key, state_bytes));
}

order::State decode_order(std::string_view entity_key, std::string_view state_bytes) {
  return order::from_snapshot(parse_snapshot<v1::OrderSnapshot>(entity_key, state_bytes));
}

void fold_events(sku::State& state, std::string_view entity_key, std::span<const std::string_view> events) {
  FFE_ASSERT(entity_key.starts_with(kSkuPrefix), ("not a SKU: " + std::string(entity_key)).c_str());
  const std::string_view id = entity_key.substr(kSkuPrefix.size());
  for (std::string_view bytes : events) sku::evolve(state, id, parse_event<v1::SkuEvent>(entity_key, bytes));
}

void fold_events(order::State& state, std::string_view entity_key, std::span<const std::string_view> events) {
  FFE_ASSERT(entity_key.starts_with(kOrderPrefix), ("not an order: " + std::string(entity_key)).c_str());
  for (std::string_view bytes : events) order::evolve(state, parse_event<v1::OrderEvent>(entity_key, bytes));
}

bool creates_entity(std::string_view entity_key, std::string_view bytes) {
  if (!entity_key.starts_with(kOrderPrefix)) return false;
  return order::is_creation(parse_event<v1::OrderEvent>(entity_key, bytes));
}

std::string DomainFolder::fold(std::string_view entity_key, std::optional<std::string_view> snapshot,
                               std::span<const std::string_view> events) {
  if (entity_key.starts_with(kSkuPrefix)) {
    sku::State state;
    if (snapshot) state = decode_sku(entity_key, *snapshot);
    fold_events(state, entity_key, events);
    return deterministic_bytes(sku::to_snapshot(state));
  }
  if (entity_key.starts_with(kOrderPrefix)) {
    order::State state;
    if (snapshot) state = decode_order(entity_key, *snapshot);
    fold_events(state, entity_key, events);
    return deterministic_bytes(order::to_snapshot(state));
  }
  FFE_ASSERT(false, ("an entity key ffe does not know: " + std::string(entity_key)).c_str());
  return {};
}

}  // namespace ffe::runtime
