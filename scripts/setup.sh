#!/usr/bin/env bash
# Installs every package ffe needs to build, test and run, from Debian 12's archive.
# Idempotent: when everything is already installed it changes nothing and returns in
# well under a second (no `apt-get update`).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache clang libclang-rt-14-dev git
  # libraries (see ../shared/STACK.md for how CMake finds each)
  libcaf-dev librocksdb-dev librdkafka-dev libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libpqxx-dev libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev libssl-dev
  libjemalloc-dev
  # test tools: promtool (`promtool check metrics` on /metrics); 19 MB, about 16 s. On a
  # host with systemd this also enables a prometheus.service on :9090 (in containers
  # policy-rc.d keeps it stopped); the tests only run promtool.
  prometheus
  # Kafka clients ffe did not write: the README's kcat examples, the demo in scripts/run.sh
  # and the end-to-end tests talk to ffe through them.
  kcat python3-kafka
  # the analytics sink's server: the CDC tests and the plain-process environment start a
  # PostgreSQL 15 of their own (initdb in a temp dir, loopback, a free port)
  postgresql
  # compose/docker-compose.yml is checked with `docker-compose config` (there is no Docker
  # engine on the build machines; everything compose starts also runs as plain processes)
  docker-compose
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run as root (or install them with apt-get) and try again" >&2
  exit 1
fi

echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
