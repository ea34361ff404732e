#!/usr/bin/env bash
# Configures and builds libvitint (Release) into ${VITINT_BUILD:-build}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VITINT_BUILD:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
