#!/usr/bin/env bash
# The recipe of the bundled default model: generate the procedural training set, then train a
# CascadedASPPNet (UVR's 33966 capacity, params 4band_v2) on it, time-boxed.
#
#   bash scripts/train_default.sh WORKDIR [TRAIN_MINUTES] [TRACKS]
#
# WORKDIR/data gets the generated set (not kept in git), WORKDIR/run the checkpoint and the exported
# model (model.pth + model.json). Rerunning the same command resumes the training from its last
# checkpoint (runs may be cut into pieces). The bundled model was trained on one GPU (see README,
# "The bundled model"); on a CPU use a smaller --arch (e.g. aspp_w8_b5_l4) and more minutes.
set -euo pipefail
work=${1:?usage: train_default.sh WORKDIR [TRAIN_MINUTES] [TRACKS]}
minutes=${2:-5}
tracks=${3:-240}
here=$(cd "$(dirname "$0")" && pwd)
jobs=$(python3 -c "import os; print(os.cpu_count() or 1)")

if [ ! -f "$work/data/recipe.json" ]; then
    python3 "$here/make_dataset.py" "$work/data" --tracks "$tracks" --test-tracks 0 --seconds 20 \
        --seed 1 --jobs "$jobs"
fi
python3 -m uvrsep train "$work/data/train" -o "$work/run" --arch 33966 -p 4band_v2 \
    --steps 100000 --max-minutes "$minutes" -b 16 --crop-frames 256 --lr 1e-3 \
    --val-every 200 --checkpoint-every 200 --seed 1 -j "$jobs" --export-dtype fp16 --json
