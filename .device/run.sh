#!/bin/bash
# one-shot device session: GPU checks, RTF benchmark, then time-boxed training of the bundled model
T0=$(date +%s)
DEADLINE=${DEADLINE:-500}      # seconds after T0 by which training must have exported
TRACKS=${TRACKS:-240}
ARCH=${ARCH:-33966}
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
python3 -m uvrsep train $W/data/train -o $W/run --arch $ARCH -p ${PARAMS:-4band_v2} --steps 100000 --max-minutes $MIN -b ${BATCH:-16} --crop-frames ${CROP:-256} --lr 1e-3 --val-every 200 --checkpoint-every 200 --seed 1 -j $(nproc) --export-dtype fp16 --device $DEVICE 2>&1 | grep -v Warning | tail -40
kill $WATCH
split -b 15000000 -d $W/run/model.pth $OUT/model.pth.part; cp $W/run/model.json $W/run/train_log.jsonl $OUT/
el "done"; ls -la $OUT
