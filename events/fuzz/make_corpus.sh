#!/usr/bin/env bash
# Writes the seed corpora in corpus/<target>/: the contract's JSON examples (and a few
# near misses), and binary encodings of the examples made with protoc --encode. Each seed
# starts with the content-type byte fuzz_decode.h reads: '0' JSON, '1' binary.
# The output is committed; rerun this only when the contracts change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
events=$(cd "$here/.." && pwd)
out=$here/corpus

json() {  # json TARGET NAME TEXT
  mkdir -p "$out/$1"
  { printf '0'; printf '%s' "$3"; } >"$out/$1/json-$2"
}
binary() {  # binary TARGET NAME MESSAGE_TYPE PROTO_FILE TEXT_FORMAT
  mkdir -p "$out/$1"
  { printf '1'; printf '%s' "$5" | protoc --encode="ffe.v1.$3" -I "$events" "$events/ffe/v1/$4"; } \
    >"$out/$1/bin-$2"
}

rm -rf "$out"

ship_to='{"name": "A. Customer", "line1": "1 Main St", "city": "Springfield", "country": "US"}'
ship_to_text='name: "A. Customer" line1: "1 Main St" city: "Springfield" country: "US"'

json order_command place-order '{"placeOrder": {"orderId": "o-1001", "customerId": "c-7",
  "lines": [{"sku": "sku-1", "qty": 2, "unitPriceCents": 1299}],
  "payment": {"method": "card", "token": "tok_visa"},
  "shipTo": '"$ship_to"',
  "deadlineMs": 30000}}'
json order_command cancel-order '{"cancelOrder": {"orderId": "o-1001", "reason": "customer request"}}'
json order_command place-order-strings '{"placeOrder": {"orderId": "o-2", "customerId": "c-7", "lines": [{"sku": "sku-1", "qty": "2", "unitPriceCents": "1299"}, {"sku": "sku-2", "qty": 1, "unitPriceCents": 0}], "payment": {"method": "card", "token": "tok_decline"}, "shipTo": {"name": "Zoë", "line1": "Straße 1", "line2": "", "city": "Köln", "postalCode": "50667", "region": "NRW", "country": "DE"}, "deadlineMs": "60000", "currency": "EUR"}}'
json order_command unknown-command '{"shipOrder": {"orderId": "o-1"}, "traceId": [1, {"a": null}]}'
binary order_command place-order OrderCommand orders.proto \
  'place_order { order_id: "o-1001" customer_id: "c-7" lines { sku: "sku-1" qty: 2 unit_price_cents: 1299 } payment { method: "card" token: "tok_visa" } ship_to { '"$ship_to_text"' } deadline_ms: 30000 }'
binary order_command cancel-order OrderCommand orders.proto \
  'cancel_order { order_id: "o-1001" reason: "customer request" }'

json inventory_command receive-stock '{"receiveStock": {"sku": "sku-1", "qty": 100, "receiptId": "r-77"}}'
json inventory_command adjust-stock '{"adjustStock": {"sku": "sku-1", "delta": -3, "reason": "cycle count", "adjustmentId": "a-9"}}'
binary inventory_command receive-stock InventoryCommand inventory.proto \
  'receive_stock { sku: "sku-1" qty: 100 receipt_id: "r-77" }'
binary inventory_command adjust-stock InventoryCommand inventory.proto \
  'adjust_stock { sku: "sku-1" delta: -3 reason: "cycle count" adjustment_id: "a-9" }'

json payment_reply approved '{"commandId": "o-1001:authorize:1", "orderId": "o-1001",
                        "status": "APPROVED", "paymentId": "p-1", "reason": ""}'
json payment_reply declined '{"commandId": "o-1001:authorize:1", "orderId": "o-1001", "status": "DECLINED", "reason": "card declined"}'
binary payment_reply approved PaymentReply payments.proto \
  'command_id: "o-1001:authorize:1" order_id: "o-1001" status: APPROVED payment_id: "p-1"'

json shipment_reply created '{"commandId": "o-1001:ship:1", "orderId": "o-1001",
                        "status": "CREATED", "shipmentId": "s-1", "reason": ""}'
json shipment_reply failed '{"commandId": "o-1001:ship:1", "orderId": "o-1001", "status": "FAILED", "reason": "country XX"}'
binary shipment_reply created ShipmentReply shipments.proto \
  'command_id: "o-1001:ship:1" order_id: "o-1001" status: CREATED shipment_id: "s-1"'

json payment_request authorize '{"commandId": "o-1001:authorize:1", "orderId": "o-1001",
                        "authorize": {"amountCents": 2598, "currency": "USD", "token": "tok_visa"}}'
json payment_request void '{"commandId": "o-1001:void:1", "orderId": "o-1001",
                        "void": {"paymentId": "p-1", "authorizeCommandId": "o-1001:authorize:1"}}'
json payment_request refund '{"commandId": "o-1001:refund:1", "orderId": "o-1001", "refund": {"paymentId": "p-1", "amountCents": 2598}}'
binary payment_request authorize PaymentRequest payments.proto \
  'command_id: "o-1001:authorize:1" order_id: "o-1001" authorize { amount_cents: 2598 currency: "USD" token: "tok_visa" }'

json shipment_request create '{"commandId": "o-1001:ship:1", "orderId": "o-1001",
                        "create": {"lines": [{"sku": "sku-1", "qty": 2}], "shipTo": '"$ship_to"'}}'
json shipment_request cancel '{"commandId": "o-1001:cancel-shipment:1", "orderId": "o-1001",
                        "cancel": {"shipmentId": "s-1", "createCommandId": "o-1001:ship:1"}}'
binary shipment_request create ShipmentRequest shipments.proto \
  'command_id: "o-1001:ship:1" order_id: "o-1001" create { lines { sku: "sku-1" qty: 2 } ship_to { '"$ship_to_text"' } }'

echo "make_corpus: $(find "$out" -type f | wc -l) seeds in $out"
