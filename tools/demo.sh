#!/usr/bin/env bash
# The main job: install, build, convert a real timm checkpoint to an integer
# model with 100 calibration images, and classify images with it.
#   tools/demo.sh [CHECKPOINT_DIR] [IMAGE...]
# Defaults: DeiT-Tiny and the data in ${VITINT_SHARED:-../shared}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${VITINT_SHARED:-$root/../shared}
build=${VITINT_BUILD:-$root/build}
ckpt=${1:-$shared/models/deit_tiny_patch16_224.fb_in1k}
data=$shared/data/imagenet-val-1300
if [ ! -f "$ckpt/model.safetensors" ] || [ ! -f "$ckpt/config.json" ]; then
  cat >&2 <<MSG
No timm checkpoint at $ckpt (model.safetensors + config.json).
Get the same files from the model hub, e.g. with Hugging Face's CLI:
  huggingface-cli download timm/deit_tiny_patch16_224.fb_in1k model.safetensors config.json --local-dir deit_tiny
and run: tools/demo.sh deit_tiny IMAGE...
(calibration images: set VITINT_SHARED to a folder with data/imagenet-val-1300/{val.txt,*.JPEG}
or pass your own with vitint-convert --calib-list/--calib-root)
MSG
  exit 1
fi
"$root/tools/install-deps.sh"
"$root/tools/build.sh" >/dev/null
mkdir -p "$root/out"
model=$root/out/$(basename "$ckpt").vti
"$build/converter/vitint-convert" "$ckpt" -o "$model" --force \
  --calib-list "$data/val.txt" --calib-root "$data" --calib-count 100 \
  --labels "$shared/data/imagenet_synset_words.txt"
shift $(( $# > 0 ? 1 : 0 ))
if [ $# -eq 0 ]; then
  set -- $(awk 'NR > 100 && NR <= 104 {print "'"$data"'/" $1}' "$data/val.txt")
fi
"$build/tools/vitint-classify" "$model" "$@" --top 3
