#!/usr/bin/env bash
# The second generation of the bundled model (issue #18): fine-tune the bundled model on old
# (numpy) material mixed with new material that has real timbres: accompaniment through FluidSynth
# with a General MIDI SoundFont, voice-like sampled leads, Festival's voices of real speakers.
#
#   bash scripts/train_bundled_v2.sh WORKDIR [TRAIN_MINUTES] [PRECISION] [NEW_VOICE] [HORN_SECTIONS] [TRAIN_OPTION...]
#
# NEW_VOICE (festival, the default, or numpy) is the voice of the new material's main part
# (newa): Festival's speakers, or the numpy singer (the ablation without Festival, whose voices
# come at 16 kHz and so carry nothing above 8 kHz). HORN_SECTIONS (default 0) is the fraction of
# the new material's horn leads harmonised by a section (make_dataset.py --horn-sections). The
# held-out sets are the same either way. Further arguments go to `uvrsep train` after the recipe's
# own (a later one wins), e.g. `--mono-probability 0.3` or `--lr 1e-4`.
#
# WORKDIR/{old,newa,newb} get the training material, WORKDIR/heldout_{old,new} one held-out set
# per generator (none of it is kept in git), WORKDIR/run the checkpoint and the exported model.
# Rerunning the same command resumes the training (runs may be cut into pieces). Then compare:
#
#   python scripts/compare_models.py -m old=uvrsep/bundled/default.pth -m new=WORKDIR/run/model.pth \
#       --generated old-gen=WORKDIR/heldout_old/test --generated new-gen=WORKDIR/heldout_new/test
#
# Needs fluidsynth and festival (+ voices) installed; the full SoundFont (fluid-soundfont-gm) is
# preferred, TimGM6mb is the small fallback. PRECISION: bf16 on a CPU with native bf16 (or a GPU),
# fp32 elsewhere.
set -euo pipefail
work=${1:?usage: train_bundled_v2.sh WORKDIR [TRAIN_MINUTES] [PRECISION] [NEW_VOICE] [HORN_SECTIONS] [TRAIN_OPTION...]}
minutes=${2:-80}
precision=${3:-bf16}
new_voice=${4:-festival}
sections=${5:-0}
train_options=("${@:6}")
case $new_voice in festival|numpy) ;; *) echo "NEW_VOICE must be festival or numpy, not $new_voice" >&2; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
jobs=$(python3 -c "import os; print(os.cpu_count() or 1)")
soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2
[ -f "$soundfont" ] || soundfont=/usr/share/sounds/sf2/TimGM6mb.sf2
sampled=(--accompaniment fluidsynth --soundfont "$soundfont" --leads sampled)
new=("${sampled[@]}" --horn-sections "$sections")

generate() {  # OUT ARGS...: generate once (a finished set has its recipe.json)
    local out=$1; shift
    [ -f "$work/$out/recipe.json" ] || python3 "$here/make_dataset.py" "$work/$out" --seconds 20 --jobs "$jobs" "$@"
}
generate old --tracks 60 --test-tracks 0 --seed 1 --subtype PCM_16
generate newa --tracks 70 --test-tracks 0 --seed 2 --subtype PCM_16 "${new[@]}" --voice "$new_voice" \
    --instrumental-fraction 0.3
generate newb --tracks 30 --test-tracks 0 --seed 3 --subtype PCM_16 "${new[@]}"
generate heldout_old --tracks 0 --test-tracks 12 --seed 1
generate heldout_new --tracks 0 --test-tracks 12 --seed 2 "${sampled[@]}" --voice festival \
    --instrumental-fraction 0.3

python3 -m uvrsep train "$work/old/train" "$work/newa/train" "$work/newb/train" -o "$work/run" \
    --init "$here/../uvrsep/bundled/default.pth" --steps 100000 --max-minutes "$minutes" -b 8 \
    --crop-frames 256 --lr 3e-4 --val-every 40 --checkpoint-every 20 --seed 1 --precision "$precision" \
    -j "$jobs" --export-dtype fp16 --json "${train_options[@]}"
