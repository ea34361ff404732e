#!/usr/bin/env bash
# ctest fixture: converts the two real models (8-bit and 4-bit attention)
# with 100 calibration images (val.txt lines 1-100) for the e2e tests.
# usage: convert_models.sh VITINT_CONVERT OUT_DIR
set -euo pipefail
convert=$1
out=$2
shared=${VITINT_SHARED:-$(dirname "$0")/../../shared}
data=$shared/data/imagenet-val-1300
mkdir -p "$out"
for spec in deit_tiny:deit_tiny_patch16_224.fb_in1k vit_tiny:vit_tiny_patch16_224.augreg_in21k_ft_in1k; do
  short=${spec%%:*}
  name=${spec#*:}
  for bits in 8 4; do
    "$convert" "$shared/models/$name" -o "$out/${short}_a$bits.vti" --attn-bits "$bits" \
      --calib-list "$data/val.txt" --calib-root "$data" --calib-count 100 \
      --labels "$shared/data/imagenet_synset_words.txt" --force
  done
done
