#!/usr/bin/env bash
# Builds the libFuzzer targets of events/fuzz/ with clang and runs each one for a short time
# on a copy of its seed corpus, so a change that makes the codec crash on some input is
# caught before it is merged. Longer runs: see docs/contracts.md ("Fuzzing").
#
#   scripts/fuzz_smoke.sh [BUILD_DIR]     (default: build-fuzz, relative to the current dir)
#
# Environment: FUZZ_SECONDS (default 15) per target; FUZZ_TARGETS to run only some
# ("order_command payment_reply"). Non-interactive; the repository is never written to
# (corpora are copied to a temporary directory; crash inputs are kept in BUILD_DIR).
# Exit status: 0 when no target found a crash, 1 when one did, 2 when the build failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "${1:-build-fuzz}" && cd "${1:-build-fuzz}" && pwd)
seconds=${FUZZ_SECONDS:-15}
fuzz_dir=$root/events/fuzz

if ! command -v clang++ >/dev/null; then
  echo "fuzz_smoke: clang++ not found (scripts/setup.sh installs it)" >&2
  exit 2
fi

targets=${FUZZ_TARGETS:-$(cd "$fuzz_dir/corpus" && ls -d -- */ | tr -d /)}

echo "fuzz_smoke: building in $build"
if ! cmake -S "$root" -B "$build" -G Ninja -DFFE_CORE_ONLY=ON -DFFE_FUZZ=ON \
       -DCMAKE_CXX_COMPILER=clang++ >"$build/fuzz_smoke_configure.log" 2>&1; then
  tail -n 40 "$build/fuzz_smoke_configure.log" >&2
  echo "fuzz_smoke: configure failed (log: $build/fuzz_smoke_configure.log)" >&2
  exit 2
fi
build_targets=()
for target in $targets; do build_targets+=("fuzz_$target"); done
if ! cmake --build "$build" --target "${build_targets[@]}" </dev/null; then
  echo "fuzz_smoke: build failed" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ffe-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$build/fuzz-artifacts
failed=0

for target in $targets; do
  binary=$build/events/fuzz/fuzz_$target
  if [ ! -x "$binary" ]; then
    echo "fuzz_$target: binary not found under $build"
    failed=1
    continue
  fi
  rm -rf "${artifacts:?}/$target"  # only this run's findings
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  cp "$fuzz_dir/corpus/$target/"* "$work/$target/corpus/"
  seeds=$(ls "$work/$target/corpus" | wc -l)
  log=$work/$target/log
  status=0
  # -timeout: one input taking 10 s is a hang, a finding like a crash.
  (cd "$work/$target" && ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
     "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
     -dict="$fuzz_dir/contracts.dict" -artifact_prefix="$work/$target/artifacts/" \
     corpus </dev/null >"$log" 2>&1) || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  runs=${runs:-0}
  secs=${secs:-$seconds}
  rate=$(( runs / (secs > 0 ? secs : 1) ))
  corpus_now=$(ls "$work/$target/corpus" | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "fuzz_$target: ok, $runs runs in ${secs} s ($rate exec/s), corpus $seeds -> $corpus_now"
  else
    failed=1
    mkdir -p "$artifacts/$target"
    cp "$work/$target/artifacts/"* "$artifacts/$target/" 2>/dev/null || true
    cp "$log" "$artifacts/$target/log"
    echo "fuzz_$target: FAILED (exit $status) after $runs runs; inputs and log in $artifacts/$target/"
    grep -m 1 -E 'ERROR: |assertion failed|runtime error' "$log" || tail -n 20 "$log"
    echo "  replay: $binary $artifacts/$target/<crash-file>"
  fi
done

exit "$failed"
