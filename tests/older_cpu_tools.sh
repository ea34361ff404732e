#!/usr/bin/env bash
# The command-line tools on an emulated CPU without AVX (qemu-user, Nehalem):
# vitint-classify runs the scalar reference path and prints the classes it
# prints natively; the tools built on the AVX2 converter code refuse with a
# message instead of dying of an illegal instruction.
# usage: older_cpu_tools.sh QEMU BUILD_DIR MODELS_DIR SOURCE_DIR
set -uo pipefail
qemu=$1
build=$2
models=$3
src=$4
shared=${VITINT_SHARED:-$src/../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
image=$shared/data/imagenet-val-1300/$(awk 'NR == 101 {print $1}' "$shared/data/imagenet-val-1300/val.txt")
model=$models/deit_tiny_a8.vti

"$build/tools/vitint-classify" "$model" "$image" --top 5 > "$work/native" || exit 1
"$qemu" -cpu Nehalem "$build/tools/vitint-classify" "$model" "$image" --top 5 > "$work/old" 2> "$work/old.err" ||
  { echo "FAIL: vitint-classify on Nehalem:"; cat "$work/old.err"; exit 1; }
head -1 "$work/old" | grep -q ", ref kernels," || { echo "FAIL: expected ref kernels:"; head -1 "$work/old"; exit 1; }
diff <(tail -n +2 "$work/native") <(tail -n +2 "$work/old") || { echo "FAIL: other classes on Nehalem"; exit 1; }

for tool in converter/vitint-convert tools/vitint-eval bench/vitint-bench; do
  "$qemu" -cpu Nehalem "$build/$tool" --help > "$work/out" 2> "$work/err"
  rc=$?
  name=$(basename "$tool")
  if [ "$rc" -ne 1 ] || ! grep -q "^$name: error: this tool needs a CPU with AVX2 and FMA" "$work/err"; then
    echo "FAIL: $name on Nehalem gave status $rc:"; cat "$work/err"; exit 1
  fi
done
echo "ok: vitint-classify runs the ref path, the AVX2 tools refuse with a message"
