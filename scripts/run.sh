#!/usr/bin/env bash
# The README's first command: set up, build, and run ffe on its embedded defaults.
#
# Starts `ffe serve` (embedded Kafka-protocol broker on loopback, data in ./ffe-data, admin
# HTTP on 127.0.0.1:8080), both participant simulators, receives stock and places a few demo
# orders (some declined, some with a failing shipment, one cancelled), prints every order's
# outcome as read from ff.orders.outcomes with kcat, then keeps the engine running until
# Ctrl-C. FFE_DEMO_EXIT=1 stops everything after the outcomes instead.
# Extra arguments go to `ffe serve` (e.g. --http 127.0.0.1:8090 --data-dir /tmp/d).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ffe=./build/adapters/ffe
orders=${FFE_DEMO_ORDERS:-12}

work=$(mktemp -d "${TMPDIR:-/tmp}/ffe-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ffe" serve "$@" >"$work/serve.out" 2>"$work/serve.err" &
pids+=($!)
bootstrap=""
for _ in $(seq 1 300); do
  bootstrap=$(sed -n 's/^ffe: embedded Kafka broker at //p' "$work/serve.out" | head -1)
  if [[ -n "$bootstrap" ]] && grep -q '^ffe: ready' "$work/serve.out"; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "run.sh: ffe serve exited:" >&2; cat "$work/serve.err" >&2; exit 1
  fi
  sleep 0.1
done
grep -q '^ffe: ready' "$work/serve.out" || { echo "run.sh: ffe serve did not become ready" >&2; cat "$work/serve.err" >&2; exit 1; }
cat "$work/serve.out"

"$ffe" sim payment --brokers "$bootstrap" --quiet 2>"$work/sim-payment.err" &
pids+=($!)
"$ffe" sim shipping --brokers "$bootstrap" --quiet 2>"$work/sim-shipping.err" &
pids+=($!)

echo "== stock: 100 units of each of 5 SKUs"
"$ffe" produce stock --brokers "$bootstrap" --skus 5 --qty 100 --quiet
echo "== $orders orders (about 20% declined, 15% with a failing shipment, 10% cancelled by the customer)"
"$ffe" produce orders --brokers "$bootstrap" --count "$orders" --skus 5 \
  --decline-pct 20 --fail-ship-pct 15 --cancel-pct 10 --quiet

echo "== outcomes on ff.orders.outcomes (kcat):"
timeout 60 kcat -C -b "$bootstrap" -t ff.orders.outcomes -o beginning -c "$orders" -q -f '%s\n' ||
  echo "run.sh: not every outcome arrived within 60 s" >&2

cat <<MSG

ffe is running: Kafka bootstrap $bootstrap, admin HTTP as printed above.
  produce an order:  echo '{"placeOrder": {...}}' | kcat -P -b $bootstrap -t ff.orders.commands -k o-1
  read outcomes:     kcat -C -b $bootstrap -t ff.orders.outcomes -o beginning
  an entity:         ./build/adapters/ffe get sku sku-1   (or curl http://127.0.0.1:8080/v1/skus/sku-1)
Ctrl-C stops the engine and the simulators.
MSG
if [[ "${FFE_DEMO_EXIT:-0}" == "1" ]]; then exit 0; fi
wait "${pids[0]}"
