#!/usr/bin/env bash
# vitint-bench --save never overwrites an existing file without --force.
# Usage: bench_save.sh VITINT_BENCH
set -u
bench=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/vitint-bench-save-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
printf 'keep me\n' > "$dir/model.vti"

if "$bench" --arch deit_tiny_patch16_224 --save "$dir/model.vti" --iterations 1 --calib-images 1 --quiet \
    > "$dir/out" 2> "$dir/err"; then
  echo "FAIL: --save over an existing file succeeded"; exit 1
fi
grep -q "already exists; pass --force" "$dir/err" || { echo "FAIL: unexpected message:"; cat "$dir/err"; exit 1; }
[ "$(cat "$dir/model.vti")" = "keep me" ] || { echo "FAIL: the existing file was changed"; exit 1; }

"$bench" --arch deit_tiny_patch16_224 --save "$dir/model.vti" --force --iterations 1 --calib-images 1 --quiet \
    > "$dir/out" 2> "$dir/err" || { echo "FAIL: --save --force failed:"; cat "$dir/err"; exit 1; }
"$bench" "$dir/model.vti" --iterations 1 --quiet > "$dir/out" 2> "$dir/err" ||
  { echo "FAIL: the saved model does not run:"; cat "$dir/err"; exit 1; }
echo "ok"
