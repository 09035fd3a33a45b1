#!/usr/bin/env bash
# Fails if a source of the pure core (events/, actors/sku, actors/order, sagas/) includes a
# header of CAF, RocksDB or librdkafka, or if its CMake targets link one of them.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
pure_dirs=(events actors/sku actors/order sagas)
bad=$(grep -rnE '#\s*include\s*[<"](caf/|rocksdb/|librdkafka/|rdkafka)' \
        --include='*.h' --include='*.cc' "${pure_dirs[@]}" || true)
if [ -n "$bad" ]; then
  echo "pure core includes an infrastructure header:"; echo "$bad"; exit 1
fi
# comments may name the libraries; only code lines count
bad=$(grep -nvE '^\s*#' events/CMakeLists.txt actors/CMakeLists.txt sagas/CMakeLists.txt \
        | grep -E '(caf_core|caf_io|RocksDB::|rdkafka|PkgConfig::RDKAFKA)' || true)
if [ -n "$bad" ]; then
  echo "pure core target links an infrastructure library:"; echo "$bad"; exit 1
fi
echo "pure core: no CAF, RocksDB or librdkafka in ${pure_dirs[*]}"
