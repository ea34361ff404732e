#!/usr/bin/env bash
# bench/compare.py refuses bad arguments and an earlier run's results before
# measuring anything (no contender runs in this test).
# Usage: compare_cli.sh PYTHON3 COMPARE_PY BUILD_DIR
set -u
py=$1
compare=$2
build=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/vitint-compare-cli-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT

# expect_error WHAT ARGS...: exit status 2, WHAT in the message, OUT not created.
expect_error() {
  local what=$1
  shift
  "$py" "$compare" --build "$build" --tools vitint --out "$dir/out" "$@" > "$dir/stdout" 2> "$dir/stderr"
  local rc=$?
  if [ "$rc" -ne 2 ] || ! grep -qF -- "$what" "$dir/stderr"; then
    echo "FAIL: $* gave status $rc, expected 2 and '$what':"; cat "$dir/stderr"; exit 1
  fi
  if [ -e "$dir/out" ]; then echo "FAIL: $* created the output directory"; exit 1; fi
}
expect_error "--threads must be comma-separated integers" --threads 0
expect_error "--batches must be comma-separated integers" --batches 1,x
expect_error "--rounds must be >= 1" --rounds 0
expect_error "--seconds must be > 0" --seconds -1
expect_error "unknown architecture" --archs deit_huge
expect_error "--tools names no contender" --tools ,
printf 'not json' > "$dir/bad.json"
expect_error "not a results.json of compare.py" --from-json "$dir/bad.json"

# An earlier run's results are kept unless --force.
mkdir "$dir/prev" && printf 'earlier run\n' > "$dir/prev/results.json"
"$py" "$compare" --build "$build" --tools vitint --out "$dir/prev" > "$dir/stdout" 2> "$dir/stderr"
rc=$?
if [ "$rc" -ne 2 ] || ! grep -qF "holds an earlier run; pass --force" "$dir/stderr"; then
  echo "FAIL: an earlier run was not refused (status $rc):"; cat "$dir/stderr"; exit 1
fi
[ "$(cat "$dir/prev/results.json")" = "earlier run" ] || { echo "FAIL: the earlier results were changed"; exit 1; }

# saved_table NAME CHAIN VITINT_ISA CHAIN_ISA [EXACT]: the table of a saved run
# of vitint and one oneDNN chain contender (nothing is measured).
saved_table() {
  local out=$dir/$1 exact=${5:+, \"int8_exact\": $5}
  mkdir -p "$out"
  cat > "$out/in.json" <<JSON
{"meta": {"rounds": 1, "date": "2026-11-23", "cpu": "test", "cores": 2, "git": "test", "argv": [],
          "load_before": 0.0, "load_after": 0.0},
 "runs": [{"tool_key": "vitint", "architecture": "deit_tiny_patch16_224", "threads": 1, "batch": 1,
           "median_ms": 2.0, "p10_ms": 1.9, "isa": "$3"},
          {"tool_key": "$2", "architecture": "deit_tiny_patch16_224", "threads": 1, "batch": 1,
           "median_ms": 3.0, "p10_ms": 2.9, "isa": "$4"$exact}]}
JSON
  "$py" "$compare" --from-json "$out/in.json" --out "$out" 2> "$dir/stderr" || {
    echo "FAIL: --from-json of a saved run:"; cat "$dir/stderr"; exit 1; }
}
# Labels name the ISA a run reports where it is not the one the label names
# (a CPU without AMX).
labels() {  # labels VITINT_ISA ONEDNN_ISA [EXACT]: the unrestricted contenders
  saved_table "$1${3:-}" onednn_amx "$1" "$2" "${3:-}"
}
table=$(labels avx2 avx2)
for want in "| libvitint (avx2), 1 thread | 2.00 ms (1.90) |" "| oneDNN int8 matmuls only (avx2), 1 thread |" \
            "| libvitint (avx2) / oneDNN int8 matmuls only (avx2), 1 thread | 0.67x (0.66x) |"; do
  grep -qF -- "$want" <<< "$table" || { echo "FAIL: no '$want' in:"; echo "$table"; exit 1; }
done
if grep -qF "saturating" <<< "$table"; then echo "FAIL: runs without int8_exact called saturating:"; echo "$table"; exit 1; fi
# A chain whose probe found its int8 products inexact (oneDNN without VNNI)
# is labelled so, with the reason under the table.
table=$(labels avx2 avx2 false)
for want in "| oneDNN int8 matmuls only (avx2, saturating), 1 thread |" \
            "| libvitint (avx2) / oneDNN int8 matmuls only (avx2, saturating), 1 thread |" \
            '"saturating": on this ISA oneDNN adds the u8 x s8 products in pairs into saturating int16'; do
  grep -qF -- "$want" <<< "$table" || { echo "FAIL: no '$want' in:"; echo "$table"; exit 1; }
done
# Contenders with no pair among them: a sentence instead of an empty ratio table.
table=$(saved_table nopair onednn_vnni avx512vnni avx512_core_vnni)
if grep -qF "### Ratios" <<< "$table" || ! grep -qF "No ratios for batch 1: --tools names no pair" <<< "$table"; then
  echo "FAIL: a run without pairs did not say so:"; echo "$table"; exit 1
fi
table=$(labels amx avx512_core_amx)
grep -qF "| libvitint (AMX) / oneDNN int8 matmuls only (AMX), 1 thread |" <<< "$table" || {
  echo "FAIL: AMX runs not labelled AMX:"; echo "$table"; exit 1; }
echo "ok"
