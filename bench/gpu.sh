#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md, as one prepared run (up to about 13 minutes on one H200):
#   1. the ten models at paper width, 256 px, batch 8, 5 sites x 32 training images, fp32:
#      kit centralized / plain loop, sflv2 and sflv1 / centralized (two groups of five, so
#      that a group that runs out of time does not lose the other);
#   2. UNet width 32 at batch 16 and DeepLabV3+ at paper width, batch 8: fp32, bf16 with
#      channels_last, and that compiled (torch.compile), each against fp32.
# Each group has its own time limit and writes bench.md / bench.json under OUT/<group>.
#
# Usage: bash bench/gpu.sh [OUT]            (KIT="python3 -m medseg_kit.cli" without install)
set -u
OUT=${1:-outputs/bench-gpu}
KIT=${KIT:-medseg-kit}
mkdir -p "$OUT"
common=(--device "${DEVICE:-cuda}" --size 256 --sites 5 --strategies sflv2,sflv1 --repeats 3 --warmup 1
        --no-data-cache --quiet)
group() {  # name, time limit (s), flags...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" $KIT bench "${common[@]}" --out "$OUT/$name" "$@" \
        >"$OUT/$name.md" 2>"$OUT/$name.log"
    echo "== $name: exit $? in $((SECONDS - t0)) s"
}
group paper-a 125 --paper --models unet,segnet,deeplabv3,deeplabv3plus,refinenet \
    --batch-size 8 --images 160 --variants fp32 --profile
group paper-b 200 --paper --models sunet,cgnet,ducknet,attention_unet,swin_unet \
    --batch-size 8 --images 160 --variants fp32
group unet32-b16 140 --models unet --width 32 --batch-size 16 --images 320 \
    --strategies sflv2 --variants fp32,bf16-cl,bf16-cl-compile
group deeplabv3plus-b8 300 --paper --models deeplabv3plus --batch-size 8 --images 160 \
    --strategies sflv2 --variants fp32,bf16-cl,bf16-cl-compile
