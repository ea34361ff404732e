#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test (unit, kernel
# bit-exactness, FP32 reference vs timm, integer accuracy on the real
# evaluation split, installed-package example).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" --tests
"$root/tools/build.sh"
ctest --test-dir "${VITINT_BUILD:-$root/build}" --output-on-failure -j"$(nproc)"
