#!/usr/bin/env bash
# The compose topology (compose/docker-compose.yml) as plain local processes, no Docker:
#   a Kafka-protocol broker   `ffe broker` (embedded, in memory), or --brokers LIST
#   PostgreSQL 15             a throw-away server in DIR/pg (scripts/pg_temp.sh), analytics
#   the engine                `ffe serve --brokers B --analytics URL --data-dir DIR/data`
#   the participants          `ffe sim payment`, `ffe sim shipping`
#   the producers             `ffe produce stock`, then `ffe produce orders --count N`
# then waits until every order has its outcome on ff.orders.outcomes (read with kcat), prints
# a summary (exit 1 unless each order has exactly one outcome), waits for CDC to catch up and
# runs `ffe drift` on the analytics tables (exit 1 on drift). Everything it started is
# stopped on exit (SIGTERM, then PostgreSQL's fast shutdown), also on Ctrl-C or a failure.
#
# usage: bash scripts/local-env.sh [--orders N] [--brokers LIST] [--keep] [--dir DIR]
#                                  [--http ADDR] [--skus K] [--ffe PATH] [--timeout S]
#   --orders N      orders to place (default 2000): ~10% declined, 5% unshippable, 5% cancelled,
#                   and some naming one of 2 SKUs without stock (REJECTED)
#   --brokers LIST  use this Kafka cluster instead of starting `ffe broker`
#   --keep          after the checks, leave everything running (Ctrl-C stops it)
#   --dir DIR       work in DIR (kept afterwards; default: a temp dir, removed on success)
#   --http ADDR     ffe's admin HTTP address (default 127.0.0.1:8080; port 0: any free port)
#   --skus K        SKUs sku-1..sku-K (default 50), 100000 units each received first
#   --ffe PATH      the ffe binary (default: build with scripts/build.sh, use build/adapters/ffe)
#   --timeout S     give up waiting for the outcomes after S seconds (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

orders=2000
brokers=""
keep=0
dir=""
http=127.0.0.1:8080
skus=50
stock_qty=100000
ffe=""
timeout_s=120
readonly READY_TIMEOUT_S=60  # broker, engine
readonly CDC_CATCH_UP_TIMEOUT_S=60
readonly UNSTOCKED_SKUS=2  # SKUs the orders name but no stock was received for (REJECTED orders)

die() { echo "local-env: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --orders) orders=$2; shift 2 ;;
    --brokers) brokers=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --http) http=$2; shift 2 ;;
    --skus) skus=$2; shift 2 ;;
    --ffe) ffe=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ $orders =~ ^[1-9][0-9]*$ ]] || die "--orders: expected a positive number, got '$orders'"
command -v kcat >/dev/null || die "kcat is missing: run scripts/setup.sh"
py=/usr/bin/python3
[[ -x $py ]] || py=python3

if [[ -z $ffe ]]; then
  bash scripts/build.sh
  ffe=$repo/build/adapters/ffe
fi
[[ -x $ffe ]] || die "no ffe binary at $ffe"
ffe=$(cd "$(dirname "$ffe")" && pwd)/$(basename "$ffe")

remove_dir=0
if [[ -z $dir ]]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/ffe-local-env.XXXXXX")
  remove_dir=1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# pg_temp.sh runs PostgreSQL as the `postgres` user when we are root: it must reach DIR/pg.
chmod 755 "$dir"
run_id="le$(date +%s)$$"   # order ids o-<run_id>-<i>: this run's outcomes, whatever the topic held

pids=()
names=()
pg_started=0
ok=0
cleanup() {
  local i
  # Reverse order: the producers are done; the engine drains before the participants and the
  # broker go (SIGTERM makes `ffe serve` deliver what is durable and exit 0).
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    [[ -n ${pids[i]} ]] || continue
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [[ $pg_started == 1 ]]; then bash scripts/pg_temp.sh stop "$dir/pg" || true; fi
  if [[ $remove_dir == 1 && $ok == 1 ]]; then
    rm -rf "$dir"
  elif [[ $remove_dir == 1 ]]; then
    echo "local-env: logs kept in $dir" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {  # start NAME COMMAND...: in the background, stdout/stderr to DIR/NAME.{out,err}
  local name=$1
  shift
  "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
  pids+=($!)
  names+=("$name")
}
alive_or_die() {  # the last started process is still running
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then
    echo "local-env: ${names[-1]} exited:" >&2
    cat "$dir/${names[-1]}.err" >&2
    exit 1
  fi
}

# 1. Kafka.
if [[ -z $brokers ]]; then
  start broker "$ffe" broker --partitions 8 --bootstrap-file "$dir/bootstrap"
  for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    [[ -s $dir/bootstrap ]] && break
    alive_or_die
    sleep 0.1
  done
  [[ -s $dir/bootstrap ]] || die "ffe broker did not start within ${READY_TIMEOUT_S}s"
  brokers=$(head -1 "$dir/bootstrap")
  echo "local-env: broker     ffe broker at $brokers (embedded, in memory)"
else
  echo "local-env: broker     $brokers (--brokers)"
fi

# 2. PostgreSQL for the analytics tables.
analytics=$(bash scripts/pg_temp.sh start "$dir/pg")
pg_started=1
echo "local-env: postgres   $analytics (data in $dir/pg)"

# 3. The engine.
start_serve() {
  start serve "$ffe" serve --brokers "$brokers" --analytics "$analytics" --data-dir "$dir/data" --http "$http"
  serve_index=$((${#pids[@]} - 1))
  for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    grep -q '^ffe: ready' "$dir/serve.out" && break
    alive_or_die
    sleep 0.1
  done
  grep -q '^ffe: ready' "$dir/serve.out" || die "ffe serve was not ready within ${READY_TIMEOUT_S}s (see $dir/serve.err)"
  admin=$(sed -n 's/^ffe: ready: .*admin http \([^ ]*\).*/\1/p' "$dir/serve.out" | head -1)
  echo "local-env: engine     ffe serve, admin HTTP http://$admin, data dir $dir/data"
}
start_serve

# 4. The participants.
start sim-payment "$ffe" sim payment --brokers "$brokers" --quiet
start sim-shipping "$ffe" sim shipping --brokers "$brokers" --quiet
sleep 0.5
alive_or_die
echo "local-env: simulators ffe sim payment, ffe sim shipping"

# 5. Stock, then the orders.
"$ffe" produce stock --brokers "$brokers" --skus "$skus" --qty "$stock_qty" --id-prefix "$run_id" --quiet \
  >"$dir/produce-stock.out" 2>"$dir/produce-stock.err" || { cat "$dir/produce-stock.err" >&2; die "ffe produce stock failed"; }
started=$SECONDS
# The orders also name UNSTOCKED_SKUS SKUs that received nothing: those orders are REJECTED
# (not enough stock), so every kind of outcome shows up.
"$ffe" produce orders --brokers "$brokers" --count "$orders" --skus "$((skus + UNSTOCKED_SKUS))" --id-prefix "$run_id" \
  --decline-pct 10 --fail-ship-pct 5 --cancel-pct 5 --quiet \
  >"$dir/produce-orders.out" 2>"$dir/produce-orders.err" || { cat "$dir/produce-orders.err" >&2; die "ffe produce orders failed"; }
echo "local-env: producer   $skus SKUs x $stock_qty units received; $orders orders placed over $((skus + UNSTOCKED_SKUS)) SKUs (ids o-$run_id-*)"

# 6. Every order's outcome, read from ff.orders.outcomes with kcat (a client ffe did not write).
count_outcomes() {
  kcat -C -b "$brokers" -t ff.orders.outcomes -o beginning -e -q -f '%s\n' 2>/dev/null |
    "$py" -c '
import json, sys
prefix, wanted = sys.argv[1], int(sys.argv[2])
seen = {}     # orderId -> set of (state, revision)
for line in sys.stdin:
    try:
        o = json.loads(line)
    except ValueError:
        continue
    oid = o.get("orderId", "")
    if oid.startswith(prefix):
        seen.setdefault(oid, set()).add((o.get("state"), str(o.get("revision"))))
states = {"FULFILLED": 0, "CANCELLED": 0, "REJECTED": 0}
conflicting = 0
for oid, outcomes in seen.items():
    if len(outcomes) > 1:
        conflicting += 1   # a repeat after a crash carries the same state and revision
    state = sorted(outcomes)[0][0]
    states[state] = states.get(state, 0) + 1
print(len(seen), conflicting, " ".join(f"{k}={v}" for k, v in states.items()))
' "o-$run_id-" "$orders"
}
result=""
while true; do
  result=$(count_outcomes)
  read -r got conflicting _ <<<"$result"
  [[ $got -ge $orders ]] && break
  if ((SECONDS - started > timeout_s)); then
    echo "local-env: only $got of $orders orders have an outcome after ${timeout_s}s" >&2
    break
  fi
  for i in "${!pids[@]}"; do
    [[ -z ${pids[i]} ]] || kill -0 "${pids[i]}" 2>/dev/null || die "${names[i]} exited (see $dir/${names[i]}.err)"
  done
  sleep 1
done
read -r got conflicting states <<<"$result"
elapsed=$((SECONDS - started))
fulfilled=$(sed -n 's/.*FULFILLED=\([0-9]*\).*/\1/p' <<<"$states")
cancelled=$(sed -n 's/.*CANCELLED=\([0-9]*\).*/\1/p' <<<"$states")
rejected=$(sed -n 's/.*REJECTED=\([0-9]*\).*/\1/p' <<<"$states")
echo "local-env: summary: orders $orders, with an outcome $got, conflicting $conflicting," \
  "FULFILLED $fulfilled, CANCELLED $cancelled, REJECTED $rejected (${elapsed}s from the first order)"
[[ $got == "$orders" && $conflicting == 0 && $((fulfilled + cancelled + rejected)) == "$orders" ]] ||
  die "FAILED: every order must have exactly one outcome (FULFILLED + CANCELLED + REJECTED = orders)"
echo "local-env: every order has exactly one outcome"

# 7. The analytics tables against the engine (zero drift at CDC's checkpoint, after it caught
# up), on the stopped engine's data dir: SIGTERM drains ffe serve, which must exit 0.
if ! "$ffe" drift --help >/dev/null 2>&1; then
  echo "local-env: WARNING: this ffe has no 'ffe drift': the analytics check is SKIPPED" >&2
else
  lag=""
  for _ in $(seq 1 $((CDC_CATCH_UP_TIMEOUT_S * 2))); do
    lag=$(curl -fsS "http://$admin/metrics" 2>/dev/null |
      awk '/^ffe_cdc_lag_revisions[{ ]/ {sum += $NF; n++} END {if (n) print sum}')
    [[ $lag == 0 ]] && break
    sleep 0.5
  done
  echo "local-env: analytics  CDC lag ${lag:-unknown} revisions; stopping ffe serve for ffe drift"
  kill -TERM "${pids[serve_index]}"
  serve_exit=0
  wait "${pids[serve_index]}" || serve_exit=$?
  pids[serve_index]=""
  [[ $serve_exit == 0 ]] || die "FAILED: ffe serve exited $serve_exit on SIGTERM (see $dir/serve.err)"
  echo "local-env: ffe drift --data-dir $dir/data --analytics $analytics"
  "$ffe" drift --data-dir "$dir/data" --analytics "$analytics" >"$dir/drift.out" 2>"$dir/drift.err" || {
    cat "$dir/drift.out" "$dir/drift.err" >&2
    die "FAILED: ffe drift found the analytics tables differ from the engine (or could not compare)"
  }
  shards=$(grep -c '"drift":0' "$dir/drift.out" || true)
  echo "local-env: drift: zero on $shards shards (ffe drift exit 0)"
  if [[ $keep == 1 ]]; then start_serve; fi
fi
ok=1

if [[ $keep == 1 ]]; then
  cat <<MSG

local-env: everything keeps running (Ctrl-C stops it):
  Kafka bootstrap  $brokers
  admin HTTP       http://$admin   (curl http://$admin/v1/orders/o-$run_id-1, /metrics)
  analytics        $analytics       (psql "$analytics" -c 'select state, count(*) from orders group by state')
  produce an order echo '{"placeOrder": {...}}' | kcat -P -b $brokers -t ff.orders.commands -k o-1
  logs             $dir/*.err
MSG
  wait "${pids[serve_index]}"
fi
