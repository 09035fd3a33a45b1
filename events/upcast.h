#pragma once
// The upcaster: brings a journal event written by an older ffe up to the current event schema,
// so the deciders' evolve() functions only ever see current events. Pure, no I/O, never throws.
//
// Why an upcaster and not only defaults: contracts change by addition (events/README.md,
// "Adding a field"), and an event read from an older journal has the proto3 default for a
// field it lacked. Where that default does not mean what the older writer meant, the value
// is derived here from the rest of the event, at read time; the journal's bytes are never
// rewritten (they are the history, and their checksums and revisions stay as written).
//
// Schema history of the journal's events (JournalEvent.schema_version; docs/replay.md,
// "Upcasting", tells the story and how to add a version):
//   1  OrderPlaced carried the order, accepted_at_ms and deadline_at_ms only.
//   2  OrderPlaced gained amount_cents (field 4: sum of qty * unit_price_cents of its lines)
//      and currency (field 5: the order's currency with the default applied, "USD").
//      A version-1 OrderPlaced is recognised by its empty currency: every version-2 writer
//      sets it (the default is applied at placement), so an empty currency can only come
//      from version 1.
// SKU events have not changed since version 1.
//
// Every reader of journal events calls upcast() after decoding and before evolve():
// actors/runtime/folder.cc (state, digests, the runtime's restores), the ff.events publisher
// (adapters/kafka/events_publisher.cc publishes current events), and replay.

#include <cstdint>
#include <string>
#include <string_view>

#include "ffe/v1/journal.pb.h"

namespace ffe::events {

// The schema version this ffe writes (JournalEvent.schema_version).
inline constexpr std::uint32_t journal_schema_version = 2;
// The currency an order without one is placed in: the contract's "absent: USD"
// (orders.proto). The order decider applies it when it places an order, the upcaster when it
// reads a version-1 OrderPlaced: one definition for both.
inline constexpr std::string_view currency_default = "USD";

enum class UpcastOutcome {
  kCurrent,  // already current: unchanged
  kUpcast,   // written by an older version: the missing fields were filled in place
  kInvalid,  // older, but cannot be brought up (see reason): unchanged
};

struct UpcastResult {
  UpcastOutcome outcome = UpcastOutcome::kCurrent;
  std::string reason;  // kInvalid only: what is wrong, e.g. "orderPlaced: the lines' total overflows int64"
  bool ok() const { return outcome != UpcastOutcome::kInvalid; }
};

// Brings an order event up to journal_schema_version in place. kInvalid (event unchanged) for
// a version-1 OrderPlaced whose lines cannot have come from a valid order: a negative
// quantity or price, or a total that does not fit in int64 (computed with checked arithmetic:
// no overflow, no undefined behaviour). A valid older ffe never wrote such an event, so a
// reader treats kInvalid like undecodable bytes (a corrupted journal).
UpcastResult upcast(v1::OrderEvent& event);

// SKU events have one version; here so every reader has one call per event kind.
inline UpcastResult upcast(v1::SkuEvent&) { return {}; }

// The envelope of ff.events: upcasts the event it carries and sets schema_version to the
// current one when it succeeds.
UpcastResult upcast(v1::JournalEvent& event);

}  // namespace ffe::events
