#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds examples/classify
# against it with find_package(vitint), and classifies one real image.
# usage: install_example.sh BUILD_DIR SOURCE_DIR MODELS_DIR
set -euo pipefail
build=$1
src=$2
models=$3
shared=${VITINT_SHARED:-$src/../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/examples/classify" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null
image=$shared/data/imagenet-val-1300/$(awk 'NR == 101 {print $1}' "$shared/data/imagenet-val-1300/val.txt")
"$work/example/classify_example" "$models/deit_tiny_a8.vti" "$image"
