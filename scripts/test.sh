#!/usr/bin/env bash
# The README's second command, and what CI runs (.ci/run): set up, build, run every test.
#   1. the pure core under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   2. a short libFuzzer smoke of the decoders and validation (build-fuzz/)
#   3. the full build and the whole test suite (build/), last, so its summary closes the log
# Each stage prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CTEST_OUTPUT_ON_FAILURE=1
jobs=$(nproc)

stage() { printf '\n=== %s\n' "$*"; }
started=$SECONDS

bash scripts/setup.sh

stage "sanitizers: pure core under ASan+UBSan"
t=$SECONDS
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFFE_CORE_ONLY=ON \
  -DFFE_SANITIZE=ON >/dev/null
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j "$jobs"
echo "sanitizers: $((SECONDS - t)) s"

stage "fuzz smoke: decoders and validation"
t=$SECONDS
bash scripts/fuzz_smoke.sh build-fuzz
echo "fuzz smoke: $((SECONDS - t)) s"

stage "full build and test suite"
t=$SECONDS
bash scripts/build.sh
ctest --test-dir build -j "$jobs"
echo "full suite: $((SECONDS - t)) s; all stages: $((SECONDS - started)) s"
