#!/usr/bin/env bash
# The README's first command: set up, build, and run ffe's main job on its embedded defaults.
# Today the engine's runtime is not built yet; what exists is the domain core, so this runs
# the core's deterministic simulation over a few seeds (see docs/simulation.md).
# Extra arguments go to `ffe simulate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec ./build/adapters/ffe simulate --seeds 4 --steps 20000 "$@"
