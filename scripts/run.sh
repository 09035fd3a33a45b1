#!/usr/bin/env bash
# The README's first command: set up, build, and run ffe on its embedded defaults.
#
# Starts `ffe serve` (embedded Kafka-protocol broker on loopback, data in ./ffe-data, admin
# HTTP on 127.0.0.1:8080), both participant simulators, receives stock, waits until the
# engine shows it, and places a dozen demo orders (two declined, two with a failing shipment,
# one cancelled by the customer, the rest fulfilled), prints every order's outcome as read
# from ff.orders.outcomes with kcat, then keeps the engine running until Ctrl-C.
# FFE_DEMO_EXIT=1 stops everything after the outcomes instead; FFE_DEMO_ORDERS=N (at least
# 5) places N orders; FFE_DEMO_BINARY=PATH runs that ffe without setting up or building (the
# test of this script, RunScriptShowsEveryKindOfOutcome, does).
# Extra arguments go to `ffe serve` (e.g. --http 127.0.0.1:8090 --data-dir /tmp/d).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${FFE_DEMO_BINARY:-}" ]]; then
  ffe=$FFE_DEMO_BINARY
else
  bash scripts/build.sh
  ffe=./build/adapters/ffe
fi
orders=${FFE_DEMO_ORDERS:-12}
if ! [[ "$orders" =~ ^[0-9]+$ ]] || ((orders < 5)); then
  echo "run.sh: FFE_DEMO_ORDERS must be a number of at least 5 (got \"$orders\")" >&2
  exit 2
fi

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
# The admin HTTP address as serve printed it ("admin http off" when --http "").
http=$(sed -n 's/^ffe: ready.*admin http \([^ ,]*\).*/\1/p' "$work/serve.out" | head -1)
[[ "$http" == "off" ]] && http=""

"$ffe" sim payment --brokers "$bootstrap" --quiet 2>"$work/sim-payment.err" &
pids+=($!)
"$ffe" sim shipping --brokers "$bootstrap" --quiet 2>"$work/sim-shipping.err" &
pids+=($!)

echo "== stock: 100 units of each of 5 SKUs"
"$ffe" produce stock --brokers "$bootstrap" --skus 5 --qty 100 --quiet
# Stock and orders travel on different topics: an order the engine took before its SKU's
# receipt would be REJECTED. Wait until every SKU shows its stock.
if [[ -n "$http" ]]; then
  for sku in 1 2 3 4 5; do
    for _ in $(seq 1 100); do
      on_hand=$("$ffe" get sku "sku-$sku" --http "$http" 2>/dev/null | sed -n 's/.*"onHand":\([0-9]*\).*/\1/p' || true)
      [[ -n "$on_hand" ]] && ((on_hand >= 100)) && break
      sleep 0.1
    done
  done
else
  sleep 2
fi
stamp=$(date +%s)
plain=$((orders - 5))
echo "== $orders orders: $plain plain, 2 paid with tok_decline, 2 shipped to country XX, 1 cancelled by the customer"
demo_orders() {  # NAME COUNT FLAGS...: COUNT orders o-<stamp><NAME>-<i>
  local name=$1 count=$2
  shift 2
  ((count > 0)) || return 0
  "$ffe" produce orders --brokers "$bootstrap" --count "$count" --skus 5 --id-prefix "$stamp$name" --quiet "$@"
}
demo_orders ok "$plain"
demo_orders declined 2 --decline-pct 100
demo_orders xx 2 --fail-ship-pct 100
demo_orders cancelled 1 --cancel-pct 100

echo "== outcomes on ff.orders.outcomes (kcat):"
timeout 60 kcat -C -b "$bootstrap" -X fetch.wait.max.ms=10 -t ff.orders.outcomes -o beginning -c "$orders" -q -f '%s\n' ||
  echo "run.sh: not every outcome arrived within 60 s" >&2

cat <<MSG

ffe is running: Kafka bootstrap $bootstrap, admin HTTP ${http:-off}.
  produce an order:  echo '{"placeOrder": {...}}' | kcat -P -b $bootstrap -t ff.orders.commands -k o-1
  read outcomes:     kcat -C -b $bootstrap -X fetch.wait.max.ms=10 -t ff.orders.outcomes -o beginning
  an entity:         ./build/adapters/ffe get sku sku-1 --http ${http:-ADDR}   (or curl http://${http:-ADDR}/v1/skus/sku-1)
Ctrl-C stops the engine and the simulators.
MSG
if [[ "${FFE_DEMO_EXIT:-0}" == "1" ]]; then exit 0; fi
wait "${pids[0]}"
