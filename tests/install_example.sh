#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds examples/classify
# against it with find_package(vitint), and classifies one real image.
# With QEMU (qemu-x86_64), it also runs the example on emulated older CPUs
# and checks that the library picks the path each has (Nehalem: no AVX, so
# the scalar reference; Haswell: AVX2) and prints the same classes.
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
"$work/example/classify_example" "$models/deit_tiny_a8.vti" "$image" | tee "$work/native"
[ -n "$qemu" ] || exit 0
for cpu_isa in Nehalem:ref Haswell:avx2; do
  cpu=${cpu_isa%%:*}
  isa=${cpu_isa##*:}
  # (qemu warns about CPU features its emulator lacks: not our business)
  "$qemu" -cpu "$cpu" "$work/example/classify_example" "$models/deit_tiny_a8.vti" "$image" \
      > "$work/$cpu" 2> "$work/$cpu.err" || { echo "FAIL: on $cpu:"; cat "$work/$cpu.err"; exit 1; }
  head -1 "$work/$cpu"
  grep -q "(libvitint .*, $isa kernels)" "$work/$cpu" || { echo "FAIL: on $cpu expected $isa kernels"; exit 1; }
  diff <(tail -n +2 "$work/native") <(tail -n +2 "$work/$cpu") || { echo "FAIL: other classes on $cpu"; exit 1; }
done
echo "same classes on the emulated CPUs"
