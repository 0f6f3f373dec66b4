#!/bin/bash
# The one-shot GPU session that produced the bundled model and the GPU figures in the README:
# GPU tests (parity on CUDA), the end-to-end real-time-factor benchmark, then the generation of
# the training set and a training run time-boxed to end DEADLINE seconds after the start.
#
#   DEADLINE=530 OUT=results/ bash scripts/gpu_session.sh
#
# On a machine without network, carry the wheels of librosa, soundfile, soxr, samplerate, resampy
# (and their small pure-Python needs) in .whl/; they are installed into /tmp/site. The model comes
# back split into 15 MB parts ($OUT/model.pth.partNN; `cat` them together).
T0=$(date +%s)
DEADLINE=${DEADLINE:-500}      # seconds after T0 by which training must have exported
TRACKS=${TRACKS:-240}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
W=/tmp/work; mkdir -p $W
export PYTHONUNBUFFERED=1
el() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
if [ -d .whl ] && [ -z "$NOWHL" ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; export PYTHONPATH=/tmp/site:$PWD; else export PYTHONPATH=$PWD; fi
nvidia-smi -L 2>/dev/null; nproc
python3 -c "import uvrsep.api, uvrsep.train, librosa, soundfile, soxr, samplerate, resampy, torch; print('imports ok', torch.__version__, torch.cuda.is_available())" || exit 1
el "dataset start"
python3 scripts/make_dataset.py $W/data --tracks $TRACKS --test-tracks 0 --seconds 20 --seed 1 --jobs $(( $(nproc) > 2 ? $(nproc) - 2 : 1 )) > $W/dataset.log 2>&1 &
DS=$!
if [ "$DEVICE" = cuda ]; then
  el "gpu tests"; timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -4
fi
wait $DS; tail -2 $W/dataset.log; el "dataset done"
if [ "$DEVICE" = cuda ]; then
  el "rtf bench"; timeout 130 python3 scripts/bench_rtf.py --device cuda --seconds 180 --arch 123812 --precision fp16 fp32 --batch-sizes 8 32 --repeats 1 --budget 100 --cudnn-benchmark --json $OUT/rtf.json 2>&1 | tail -40
fi
( while true; do sleep 20; if [ -f $W/run/model.pth ]; then split -b 15000000 -d $W/run/model.pth $OUT/model.pth.part; cp $W/run/model.json $W/run/train_log.jsonl $OUT/ 2>/dev/null; fi; done ) &
WATCH=$!
MIN=$(python3 -c "print(max(0.3, ($T0 + $DEADLINE - $(date +%s) - 75) / 60))")
el "train for $MIN min"
bash scripts/train_default.sh $W $MIN $TRACKS 2>&1 | grep -v Warning | tail -40
kill $WATCH
split -b 15000000 -d $W/run/model.pth $OUT/model.pth.part; cp $W/run/model.json $W/run/train_log.jsonl $OUT/
el "done"; ls -la $OUT
