#!/usr/bin/env bash
# The unit tests (kernels on every path against the reference, model-file and
# checkpoint parsing with corrupted inputs, calibration, the timm-variant
# conversions, threads) under AddressSanitizer and UndefinedBehaviorSanitizer,
# then the real DeiT-Tiny converted (4 calibration images) and evaluated
# through the command-line tools: any out-of-bounds access, leak or undefined
# arithmetic (signed overflow, bad shift) fails. Builds into ${VITINT_ASAN_BUILD:-build-asan}; needs what
# `tools/install-deps.sh --tests` installs. CI runs it after tools/test.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VITINT_ASAN_BUILD:-$root/build-asan}
# With the sanitizers' instrumentation GCC 12 misreports the undefined
# pass-through operands of its AVX-512 intrinsics as uninitialized (PR 105593)
# and the allocation-counting test's malloc-based global operator new/delete
# as mismatched; the Release build keeps those warnings on.
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
flags+=" -Wno-uninitialized -Wno-maybe-uninitialized -Wno-mismatched-new-delete"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVITINT_BUILD_BENCH=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j"$(nproc)" --target vitint_tests vitint-convert vitint-eval
# One doctest process per test case (ctest -j): the real-model tests, which
# need the converted models, stay with the Release run of tools/test.sh.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -L '^unit$'

# A real checkpoint through the converter and the engine (best kernel path and
# the scalar reference, 2 threads), on images outside the calibration lines.
shared=${VITINT_SHARED:-$root/../shared}
data=$shared/data/imagenet-val-1300
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vitint-sanitize-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$build/converter/vitint-convert" "$shared/models/deit_tiny_patch16_224.fb_in1k" -o "$tmp/deit.vti" \
  --calib-list "$data/val.txt" --calib-root "$data" --calib-count 4 --attn-bits 4 --quiet
for isa in "" ref; do
  "$build/tools/vitint-eval" "$tmp/deit.vti" --list "$data/val.txt" --root "$data" --skip 100 --limit 8 \
    --threads 2 ${isa:+--isa "$isa"} --quiet
done
echo "sanitizers: unit tests and a real conversion + evaluation clean"
