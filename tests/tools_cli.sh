#!/usr/bin/env bash
# vitint-classify, vitint-eval and vitint-bench on bad input: each refusal
# names what is wrong, and comes before the work where it can.
# Usage: tools_cli.sh VITINT_BENCH VITINT_CLASSIFY VITINT_EVAL
set -u
bench=$1 classify=$2 eval=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/vitint-tools-cli-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $1"; [ -f "$dir/err" ] && cat "$dir/err"; exit 1; }
# expect_error MESSAGE COMMAND...: the command fails and says MESSAGE on stderr.
expect_error() {
  local msg=$1; shift
  if "$@" > "$dir/out" 2> "$dir/err"; then fail "succeeded: $*"; fi
  grep -qF -- "$msg" "$dir/err" || fail "'$*' did not say '$msg'"
}

expect_error "--threads" "$bench" --arch deit_tiny_patch16_224 --threads 300 --iterations 1

"$bench" --arch deit_tiny_patch16_224 --save "$dir/m.vti" --iterations 1 --calib-images 1 --quiet \
    > "$dir/out" 2> "$dir/err" || fail "cannot make a model"
{ printf 'P6\n8 8\n255\n'; head -c 192 /dev/zero | tr '\0' '\200'; } > "$dir/grey.ppm"
printf 'grey.ppm 3\ngrey.ppm 5\n' > "$dir/list.txt"

# A path that is not UTF-8 prints in --json as U+FFFD (EF BF BD).
cp "$dir/grey.ppm" "$dir/grey$(printf '\377').ppm"
"$classify" "$dir/m.vti" "$dir/grey$(printf '\377').ppm" --json > "$dir/out" 2> "$dir/err" ||
  fail "classify --json with a non-UTF-8 image path"
grep -q "$(printf '\357\277\275')" "$dir/out" || fail "no U+FFFD in the JSON"

# --predictions into a missing folder: refused before the evaluation.
expect_error "No such file or directory" \
  "$eval" "$dir/m.vti" --list "$dir/list.txt" --root "$dir" --predictions "$dir/none/p.txt"
[ -s "$dir/out" ] && fail "the evaluation ran before the predictions folder was checked"
"$eval" "$dir/m.vti" --list "$dir/list.txt" --root "$dir" --predictions "$dir/p.txt" --quiet \
    > "$dir/out" 2> "$dir/err" || fail "eval --predictions"
[ "$(wc -l < "$dir/p.txt")" = 2 ] || fail "predictions file has not 2 lines"

# Reference logits of the wrong shape: the message says which shape they have.
{ printf '\223NUMPY\001\000\166\000'; printf "%-117s\n" "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }"
  head -c 40 /dev/zero; } > "$dir/logits.npy"
expect_error "not [2, 5]" "$eval" "$dir/m.vti" --list "$dir/list.txt" --root "$dir" --reference-logits "$dir/logits.npy"

# An image the preprocessing refuses: the message names the file.
{ printf 'P6\n600 1\n255\n'; head -c 1800 /dev/zero; } > "$dir/thin.ppm"
printf 'thin.ppm 1\n' > "$dir/thin.txt"
expect_error "image $dir/thin.ppm: Session::classify: preprocess: a 600x1 image has an absurd aspect ratio" \
  "$classify" "$dir/m.vti" "$dir/thin.ppm"
expect_error "image $dir/thin.ppm: preprocess: a 600x1 image has an absurd aspect ratio" \
  "$eval" "$dir/m.vti" --list "$dir/thin.txt" --root "$dir"

# A binary file as the list, a label too large for an int.
expect_error "is not a text file" "$eval" "$dir/m.vti" --list "$dir/m.vti" --root "$dir"
printf 'grey.ppm 99999999999\n' > "$dir/big.txt"
expect_error "label '99999999999' is too large" "$eval" "$dir/m.vti" --list "$dir/big.txt" --root "$dir"
echo "ok"
