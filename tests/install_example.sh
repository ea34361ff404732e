#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds examples/classify
# against it with find_package(vitint), and classifies one real image.
# With QEMU (qemu-x86_64) it then checks older CPUs, emulated: the example
# picks the path each has (Nehalem: no AVX, so the scalar reference;
# Haswell: AVX2) and prints the same classes; on the Nehalem vitint-classify
# does too, and the tools built on the AVX2 converter code refuse with a
# message instead of dying of an illegal instruction.
# usage: install_example.sh BUILD_DIR SOURCE_DIR MODELS_DIR [QEMU]
set -euo pipefail
build=$1
src=$2
models=$3
qemu=${4:-}
shared=${VITINT_SHARED:-$src/../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/examples/classify" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null
image=$shared/data/imagenet-val-1300/$(awk 'NR == 101 {print $1}' "$shared/data/imagenet-val-1300/val.txt")
model=$models/deit_tiny_a8.vti
"$work/example/classify_example" "$model" "$image" | tee "$work/example.native"
[ -n "$qemu" ] || exit 0

# same_classes NAME CPU ISA_PATTERN PROGRAM ARGS...: PROGRAM on the emulated
# CPU names the kernel path in its first line as ISA_PATTERN and prints the
# lines after it as natively (run once per NAME).
same_classes() {
  local name=$1 cpu=$2 isa=$3
  shift 3
  [ -e "$work/$name.native" ] || "$@" > "$work/$name.native"
  # (qemu warns about CPU features its emulator lacks: not our business)
  "$qemu" -cpu "$cpu" "$@" > "$work/$name.$cpu" 2> "$work/$name.$cpu.err" ||
    { echo "FAIL: $name on $cpu:"; cat "$work/$name.$cpu.err"; exit 1; }
  head -1 "$work/$name.$cpu"
  grep -q "$isa" <(head -1 "$work/$name.$cpu") || { echo "FAIL: $name on $cpu: expected '$isa'"; exit 1; }
  diff <(tail -n +2 "$work/$name.native") <(tail -n +2 "$work/$name.$cpu") ||
    { echo "FAIL: $name printed other classes on $cpu"; exit 1; }
}
same_classes example Nehalem ", ref kernels)" "$work/example/classify_example" "$model" "$image"
same_classes example Haswell ", avx2 kernels)" "$work/example/classify_example" "$model" "$image"
same_classes vitint-classify Nehalem ", ref kernels," "$build/tools/vitint-classify" "$model" "$image" --top 5

for tool in converter/vitint-convert tools/vitint-eval bench/vitint-bench; do
  [ -e "$build/$tool" ] || continue  # vitint-bench: not built with VITINT_BUILD_BENCH=OFF
  name=$(basename "$tool")
  rc=0
  "$qemu" -cpu Nehalem "$build/$tool" --help > "$work/out" 2> "$work/err" || rc=$?
  if [ "$rc" -ne 1 ] || ! grep -q "^$name: error: this tool needs a CPU with AVX2 and FMA" "$work/err"; then
    echo "FAIL: $name on Nehalem gave status $rc:"; cat "$work/err"; exit 1
  fi
done
echo "ok: same classes on the emulated CPUs; the AVX2 tools refuse with a message"
