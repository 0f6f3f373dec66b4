#!/bin/bash
# The GPU checks behind the README's GPU figures: the CUDA tests, the parity fixtures on CUDA
# (fp32, spectral work on the GPU), and the end-to-end real-time factor of a 3-minute file with
# the spectral work on the host and on the GPU, side by side in one run.
#
#   OUT=results/ bash scripts/gpu_checks.sh
#
# On a machine without network, carry the wheels of librosa, soundfile, soxr, samplerate, resampy
# (and their small pure-Python needs) in .whl/; they are installed into /tmp/site.
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
el() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
if [ -d .whl ] && [ -z "$NOWHL" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi -L 2>/dev/null; nproc
el "cuda tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -4
el "parity on cuda, spectral work on the gpu"
timeout 120 python3 scripts/parity.py --device cuda --precision fp32 --spectral device 2>&1 | tail -8
el "rtf bench"
timeout 240 python3 scripts/bench_rtf.py --device cuda --seconds 180 --arch 123812 --precision ${PRECISIONS:-fp16 fp32} \
  --batch-sizes ${BATCHES:-32} --spectral host device --repeats 2 --budget 220 --json "$OUT/rtf.json" 2>&1 | tail -24
el "cli: three 3-minute files, spectral work on the host vs the gpu (per-file seconds)"
W=/tmp/cli; mkdir -p $W/in
python3 - "$W" ${CLI_SECONDS:-180} <<'PY'
import sys, torch
sys.path.insert(0, "scripts")
from bench import test_signal
from uvrsep.audio import write_audio
from uvrsep.nets import config_from_name
from uvrsep.testing import random_state_dict
folder = sys.argv[1]
torch.save(random_state_dict(config_from_name("123812"), seed=1), f"{folder}/w.pth")
wave, rate = test_signal(float(sys.argv[2]) if len(sys.argv) > 2 else 180.0)
for k in range(3):
    write_audio(f"{folder}/in/song{k}.wav", wave * (1 - 0.1 * k), rate, overwrite=True)
PY
for mode in host device; do
  START=$(date +%s.%N)
  python3 -m uvrsep split $W/in/*.wav -m $W/w.pth -p 4band_v2 -o $W/out_$mode --spectral $mode --overwrite \
    ${CLI_ARGS:-} 2>&1 | grep -E "s\)$|rror"
  echo "  $mode: whole command $(python3 -c "print(round($(date +%s.%N) - $START, 1))") s (start-up, model load and CUDA init included)"
done
el "done"
