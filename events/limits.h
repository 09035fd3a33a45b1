#pragma once
// Every bound ffe enforces on input and on per-entity state, in one place (STYLE habit 5).
// Going over a limit is a handled rejection with a precise reason, never silent growth or a
// silent drop. docs/contracts.md explains each value; keep the two in step.
//
// The per-SKU window sizes are part of the state machine: evolve() trims to them, so they
// shape the canonical state and its digest. Changing one is a versioned change of the
// journal's meaning (replay would build different windows), not a tuning knob.

#include <cstddef>
#include <cstdint>

namespace ffe::limits {

// --- messages ---------------------------------------------------------------------------
// Largest encoded message accepted on any input topic (JSON or binary), in bytes.
inline constexpr std::size_t message_bytes_max = 64 * 1024;
// Deepest JSON nesting accepted (objects + arrays); the contracts need 4.
inline constexpr int json_depth_max = 16;

// --- identifiers (orderId, customerId, sku, receiptId, adjustmentId) ------------------------
// 1..64 characters from [A-Za-z0-9._-], first one alphanumeric. No ':' (it separates the
// parts of a commandId), no whitespace, no control characters.
inline constexpr std::size_t id_length_max = 64;
// Ids minted by participants (paymentId, shipmentId) and commandIds: 1..160 printable ASCII.
inline constexpr std::size_t external_id_length_max = 160;

// --- free text (reasons, names, address lines, payment method and token) -------------------
inline constexpr std::size_t text_length_max = 256;

// --- orders -----------------------------------------------------------------------------
inline constexpr std::size_t order_lines_max = 100;
inline constexpr std::int64_t line_qty_max = 1'000'000;
inline constexpr std::int64_t unit_price_cents_max = 100'000'000;  // 1,000,000.00 per unit
// The whole order's deadline, from the moment ffe accepts it.
inline constexpr std::int64_t deadline_ms_default = 30'000;
inline constexpr std::int64_t deadline_ms_min = 100;
inline constexpr std::int64_t deadline_ms_max = 86'400'000;  // one day

// --- inventory --------------------------------------------------------------------------
inline constexpr std::int64_t receipt_qty_max = 1'000'000'000;
inline constexpr std::int64_t adjustment_delta_max = 1'000'000'000;  // |delta|

// --- per-SKU state windows (see the note at the top) ------------------------------------------
// Closed reservations remembered per SKU, so a late or repeated reserve from an order that
// already released (or committed) here is refused rather than applied again.
inline constexpr std::size_t sku_closed_reservations_max = 4096;
// Receipt and adjustment ids remembered per SKU for idempotency.
inline constexpr std::size_t sku_recent_receipts_max = 1024;
inline constexpr std::size_t sku_recent_adjustments_max = 1024;

}  // namespace ffe::limits
