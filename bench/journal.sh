#!/usr/bin/env bash
# The journal benchmark (docs/journal.md): builds ffe and runs `ffe bench journal`, which
# measures commits/s and p50/p99 commit latency at 1, 16, 256 and 4096 commands per synced
# batch beside the raw RocksDB synced-WriteBatch ceiling on the same disk in the same run
# (../shared/peers/rocksdb_ceiling.sh; each round runs the journal just before and just
# after the ceiling; medians over rounds), prints the ratio per batch size, then the restart
# time of a journal holding 1M events and the cost of a get at old revisions. One JSON
# object on stdout.
#
# Usage: bench/journal.sh [seconds_per_case] [rounds]     (defaults 2 and 5)
# Environment: TMPDIR picks the filesystem both write to (default /tmp);
#   FFE_BENCH_RESTART_EVENTS (default 1000000; 0 skips the restart measurement).
# Takes about 5 minutes with the defaults.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-2}
rounds=${2:-5}
bash "$repo/scripts/build.sh" >&2
exec "$repo/build/adapters/ffe" bench journal --seconds "$seconds" --rounds "$rounds" \
  --restart-events "${FFE_BENCH_RESTART_EVENTS:-1000000}" \
  --ceiling-script "$(realpath -m "$repo/../shared/peers/rocksdb_ceiling.sh")"
