#!/usr/bin/env bash
# vitint-onednn-chain reports whether oneDNN's int8 products are exact: not
# where it is held to AVX2 (u8 x s8 pairs summed in saturating int16), and
# exactly when it runs VNNI or AMX where it is not held back.
# Usage: onednn_probe.sh VITINT_ONEDNN_CHAIN
set -u
chain=$1
field() {  # field NAME JSON: the value of a top-level "NAME": VALUE line
  sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" <<< "$2"
}
run() { "$chain" --arch deit_tiny_patch16_224 --iterations 1 --warmup 0 --json "$@"; }

out=$(run --isa avx2) || { echo "FAIL: the AVX2-held chain did not run"; exit 1; }
[ "$(field int8_exact "$out")" = false ] || { echo "FAIL: AVX2 products reported exact:"; echo "$out"; exit 1; }

out=$(run) || { echo "FAIL: the chain did not run"; exit 1; }
isa=$(field isa "$out")
want=false
case $isa in *vnni* | *amx* | *bf16*) want=true ;; esac
[ "$(field int8_exact "$out")" = "$want" ] || { echo "FAIL: on $isa int8_exact should be $want:"; echo "$out"; exit 1; }
echo "ok ($isa: exact $want)"
