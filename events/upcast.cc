#include "events/upcast.h"

#include <cstdint>

namespace ffe::events {
namespace {

// sum(qty * unit_price_cents) with every step checked: false (total untouched) when a value
// is negative or the total leaves int64. A version-1 writer validated its orders
// (events/limits.h keeps every valid total far inside int64), so false means the event did
// not come from a valid order.
bool lines_total_cents(const v1::PlaceOrder& order, std::int64_t* total, std::string* why) {
  std::int64_t sum = 0;
  for (int i = 0; i < order.lines_size(); ++i) {
    const v1::OrderLine& line = order.lines(i);
    if (line.qty() < 0 || line.unit_price_cents() < 0) {
      *why = "orderPlaced.order.lines[" + std::to_string(i) + "]: negative qty or unitPriceCents";
      return false;
    }
    std::int64_t line_cents = 0;
    if (__builtin_mul_overflow(line.qty(), line.unit_price_cents(), &line_cents) ||
        __builtin_add_overflow(sum, line_cents, &sum)) {
      *why = "orderPlaced.order.lines: the total of qty * unitPriceCents overflows int64 at line " +
             std::to_string(i);
      return false;
    }
  }
  *total = sum;
  return true;
}

}  // namespace

UpcastResult upcast(v1::OrderEvent& event) {
  if (event.event_case() != v1::OrderEvent::kPlaced) return {};
  v1::OrderPlaced& placed = *event.mutable_placed();
  // Version 2 always sets the currency (the default is applied at placement).
  if (!placed.currency().empty()) return {};
  UpcastResult result;
  std::int64_t total = 0;
  if (!lines_total_cents(placed.order(), &total, &result.reason)) {
    result.outcome = UpcastOutcome::kInvalid;
    return result;
  }
  placed.set_amount_cents(total);
  placed.set_currency(placed.order().currency().empty() ? std::string(currency_default)
                                                        : placed.order().currency());
  result.outcome = UpcastOutcome::kUpcast;
  return result;
}

UpcastResult upcast(v1::JournalEvent& event) {
  UpcastResult result;
  if (event.has_order()) result = upcast(*event.mutable_order());
  if (event.has_sku()) result = upcast(*event.mutable_sku());
  if (result.ok() && event.schema_version() < journal_schema_version) {
    event.set_schema_version(journal_schema_version);
  }
  return result;
}

}  // namespace ffe::events
