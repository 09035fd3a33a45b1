#!/usr/bin/env bash
# RunScriptShowsEveryKindOfOutcome: the README's first command, scripts/run.sh, with the
# built ffe (FFE_DEMO_BINARY, so it neither sets up nor builds) on a fresh data dir and a free
# HTTP port, stopping after the outcomes (FFE_DEMO_EXIT=1). It must exit 0 and print the
# dozen demo orders' outcomes: 7 FULFILLED, 2 CANCELLED by a declined payment, 2 CANCELLED by
# a failed shipment (country XX), 1 CANCELLED by the customer, and none REJECTED (the script
# waits for the stock before it places the orders).
# usage: run_script_test.sh REPO_ROOT FFE_BIN
set -uo pipefail
root=$1 ffe=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/ffe-run-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "RunScriptShowsEveryKindOfOutcome: FAIL: $*"; exit 1; }

FFE_DEMO_EXIT=1 FFE_DEMO_BINARY="$ffe" timeout 120 bash "$root/scripts/run.sh" \
  --data-dir "$work/data" --http 127.0.0.1:0 >"$work/log" 2>&1
code=$?
cat "$work/log"
[[ $code == 0 ]] || fail "scripts/run.sh exited $code"
outcomes=$(grep '^{"orderId":' "$work/log")
count() { grep -c "$1" <<<"$outcomes"; }
[[ $(count '"orderId"') == 12 ]] || fail "$(count '"orderId"') outcomes, expected 12"
[[ $(count '"state":"FULFILLED"') == 7 ]] || fail "$(count '"state":"FULFILLED"') FULFILLED, expected 7"
[[ $(count '"state":"CANCELLED","reason":"payment declined') == 2 ]] || fail "expected 2 declined payments"
[[ $(count '"state":"CANCELLED","reason":"shipment failed: cannot ship to country XX') == 2 ]] ||
  fail "expected 2 failed shipments"
[[ $(count '"state":"CANCELLED","reason":"cancelled: ') == 1 ]] || fail "expected 1 order cancelled by the customer"
[[ $(count '"state":"REJECTED"') == 0 ]] || fail "an order was REJECTED (placed before its stock?)"
grep -q '^ffe is running: .*admin HTTP 127\.0\.0\.1:[1-9]' "$work/log" || fail "the closing hint does not name the HTTP address"
echo "RunScriptShowsEveryKindOfOutcome: ok"
