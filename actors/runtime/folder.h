#pragma once
// The domain's StateFolder: turns "snapshot + later events" of an entity into its canonical
// state bytes, for the journal's reads, snapshots and digests (storage/journal.h), and for
// replay. Keys: "sku/<sku>" folds SkuEvents into a SkuSnapshot, "order/<orderId>" folds
// OrderEvents into an OrderSnapshot, through the pure evolve() functions; the state bytes are
// the snapshot's deterministic binary serialization, so equal states give equal bytes
// whatever history built them (the digest's requirement). Every event is upcast
// (events/upcast.h) before evolve(), so a journal an older ffe wrote folds to the states,
// and digests, the current ffe would have written.

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <google/protobuf/message_lite.h>

#include "actors/order/order.h"
#include "actors/sku/sku.h"
#include "storage/journal.h"

namespace ffe::runtime {

class DomainFolder final : public storage::StateFolder {
 public:
  // Stateless and thread-safe. An unknown key prefix or undecodable bytes are a corrupted
  // journal: it aborts with the key (the journal's checksums make that a programmer error).
  std::string fold(std::string_view entity_key, std::optional<std::string_view> snapshot,
                   std::span<const std::string_view> events) override;
};

// Deterministic binary serialization of a protobuf message (the canonical state bytes).
std::string deterministic_bytes(const google::protobuf::MessageLite& message);

// The same fold, on decoded states, for a reader that keeps an entity's state from one batch
// of events to the next (CDC): decode the state bytes once, then apply each batch's events,
// without encoding and decoding the whole state again for every batch. fold() is
// state_bytes(fold_events(decode(snapshot), events)). Bad bytes abort as in fold().
sku::State decode_sku(std::string_view entity_key, std::string_view state_bytes);
order::State decode_order(std::string_view entity_key, std::string_view state_bytes);
void fold_events(sku::State& state, std::string_view entity_key, std::span<const std::string_view> events);
void fold_events(order::State& state, std::string_view entity_key, std::span<const std::string_view> events);

// True when the journal event `bytes` of `entity_key` can only be the entity's first
// (order::is_creation): a reader that meets it first in a run of events knows the entity
// did not exist before, without reading it. False for anything else (a SKU has no such
// event). Bad bytes abort as in fold().
bool creates_entity(std::string_view entity_key, std::string_view bytes);

}  // namespace ffe::runtime
