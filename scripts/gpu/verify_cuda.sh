#!/usr/bin/env bash
# Verify every CUDA path of vocoder on a GPU machine without internet and measure a few numbers (docs/performance.md,
# "On an NVIDIA H200"). One run, every stage under its own `timeout` and a global deadline, so one hang
# cannot eat the rest; everything is teed to $OUT/log.txt (it comes back even when the run is cut).
#
#   scripts/gpu/verify_cuda.sh carry     # here, once: build the git-ignored .carry/ (~14 MiB): wheels the GPU
#                                        # image lacks, 48 reader_m/train clips, 4 ljspeech/dev clips, LJ_V2
#   scripts/gpu/verify_cuda.sh           # there (the repository with .carry/ copied; ~8 minutes)
#   VERIFY_DEVICE=cpu PY=.venv/bin/python STEPS=2 BATCH=2 LOGI=1 WARM=1 SECONDS_BENCH=1 REPEATS=1 \
#     COMPILE_CONFIGS= MORE_TESTS=0 scripts/gpu/verify_cuda.sh   # dry run of the same commands on a CPU
#
# Stages: env, pytest -m cuda (tests/test_cuda.py), prepare, train V1/V3 eager (bf16 autocast, GPU-resident
# segments), resynth LJ dev in fp32/fp16/bf16 (LJ_V2) + their differences, bench synth, bench train,
# train V1/V3 with --compile, then the CPU suite's device-related test files on this machine.
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "carry" ]; then
  set -e
  data=${VOCODER_SHARED_DATA:-../shared/data}
  rm -rf .carry && mkdir -p .carry/data/reader_m .carry/data/ljspeech .carry/whl .carry/weights
  clips=("$data"/reader_m/train/wavs/*.flac) lj=("$data"/ljspeech/dev/wavs/*.flac)
  cp "${clips[@]:0:${CLIPS:-48}}" .carry/data/reader_m/
  cp "${lj[@]:0:4}" .carry/data/ljspeech/
  # LJ_V2 in our format (imported once from ../shared/weights/hifigan-lj-v2, see docs/weights.md)
  v2=$(VOCODER_DATA_DIR=$PWD/.carry/vd ${PY:-.venv/bin/python} -m vocoder_cli weights import \
       "${VOCODER_SHARED_WEIGHTS:-../shared/weights}/hifigan-lj-v2/generator_v2" --name hifigan-lj-v2 | tail -1)
  mv "$v2" .carry/weights/hifigan-lj-v2.safetensors && rm -rf .carry/vd
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .carry/whl soundfile soxr platformdirs cffi pycparser
  du -sh .carry
  exit 0
fi

OUT=${OUT:-/tmp/verify_cuda_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEV=${VERIFY_DEVICE:-cuda}
STEPS=${STEPS:-150}        # training steps per run
LOGI=${LOGI:-25}           # log interval (steps per timing window)
WARM=${WARM:-50}           # steps excluded from the rate (cuDNN autotune, compile, allocator warm-up)
BATCH=${BATCH:-16}
SEGMENT=${SEGMENT:-8192}
SECONDS_BENCH=${SECONDS_BENCH:-10}
REPEATS=${REPEATS:-3}
COMPILE_CONFIGS=${COMPILE_CONFIGS-v3 v1}  # V1 compiled did not reach step 25 in 146 s on 2026-12-04
MORE_TESTS=${MORE_TESTS:-1}
BENCH_TRAIN_STEPS=${BENCH_TRAIN_STEPS:-20}
BUDGET=${BUDGET:-465}      # seconds for the whole run; stages are cut to what is left
RUNS=${RUNS:-/tmp/verify_runs}
START=$(date +%s)
SUMMARY=()

# Carried wheels the image lacks (soundfile, soxr, platformdirs); the package itself from the checkout.
if ! $PY -c "import soundfile, soxr, platformdirs" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export VOCODER_OFFLINE=1 VOCODER_DATA_DIR=$RUNS/vocoder-data VOCODER_CACHE_DIR=$RUNS/vocoder-cache
export COLUMNS=160 TERM=dumb
rm -rf "$RUNS" && mkdir -p "$RUNS"
V2=.carry/weights/hifigan-lj-v2.safetensors

# stage NAME MAX_SECONDS CMD... : run CMD under timeout min(MAX, time left), record rc and duration.
stage() {
  local name=$1 max=$2; shift 2
  local left=$((BUDGET - ($(date +%s) - START) - 5))
  local limit=$((max < left ? max : left))
  if [ "$limit" -lt 10 ]; then
    echo "=== $name: SKIPPED (only ${left}s left)"; SUMMARY+=("$name skipped"); return 0
  fi
  echo; echo "=== $name (limit ${limit}s) $(date +%T)"
  local t0=$(date +%s)
  timeout -k 5 "$limit" bash -c '"$@"' _ "$@"  # a child bash, so shell functions (exported below) run too
  local rc=$?
  local dt=$(($(date +%s) - t0))
  [ $rc -eq 124 ] && echo "=== $name: TIMED OUT after ${dt}s"
  echo "=== $name: rc=$rc in ${dt}s"
  SUMMARY+=("$name rc=$rc ${dt}s")
}

env_info() {
  nvidia-smi || true
  $PY - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs", "cc", f"{p.major}.{p.minor}")
print("tf32 defaults: matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn", torch.backends.cudnn.allow_tf32)
import numpy, soundfile, soxr, typer, rich, safetensors
print("numpy", numpy.__version__, "soundfile", soundfile.__version__, "soxr", soxr.__version__)
for name in ("pesq", "pystoi", "onnxruntime", "onnx", "tensorboard", "librosa"):
    try:
        print(name, __import__(name).__version__ if hasattr(__import__(name), "__version__") else "present")
    except ImportError:
        print(name, "MISSING")
EOF
}

train_speed() {  # train_speed RUN_DIR : steps/s after the first $WARM steps, from metrics.csv times
  $PY - "$1" "$WARM" "$BATCH" "$SEGMENT" <<'EOF'
import csv, sys
run, warm, batch, segment = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [r for r in csv.DictReader(open(f"{run}/metrics.csv")) if r["tag"] == "speed/steps_per_sec"]
if not rows:
    sys.exit(f"no speed rows in {run}/metrics.csv")
t = {int(r["step"]): float(r["time"]) for r in rows}
windows = [(int(r["step"]), float(r["value"])) for r in rows]
print("windows (step: steps/s):", " ".join(f"{s}:{v:.2f}" for s, v in windows))
last = max(t)
first = max((s for s in t if s <= warm), default=None)
if first is None or first == last:
    first = min(t)
rate = (last - first) / max(t[last] - t[first], 1e-9)
hop = 256
print(f"RESULT {run.split('/')[-1]}: steps {first + 1}-{last}: {rate:.3f} steps/s = {rate * batch:.1f} segments/s "
      f"= {rate * batch * segment / hop:,.0f} mel frames/s = {rate * batch * segment / 22050:.1f} s of audio per s "
      f"(batch {batch}, segment {segment})")
EOF
}

train_run() {  # train_run NAME CONFIG [--compile|--no-compile]
  local name=$1 config=$2 flag=$3
  $PY -m vocoder_cli train --run "$RUNS/$name" --config "$config" --data "$RUNS/data" --device "$DEV" \
    --batch-size "$BATCH" --segment "$SEGMENT" --max-steps "$STEPS" $flag --data-on-device on \
    --set log_interval="$LOGI" --set val_interval="$STEPS" --set checkpoint_interval=1000000 --set metric_clips=1 \
    && train_speed "$RUNS/$name"
}

prepare() {
  $PY -m vocoder_cli prepare folder .carry/data/reader_m "$RUNS/data" --sample-rate 22050 -q
  local rc=$?; [ $rc -le 1 ] && wc -l "$RUNS/data/train.jsonl" "$RUNS/data/val.jsonl" && return 0; return $rc
}

resynth_all() {
  for p in fp32 fp16 bf16; do
    $PY -m vocoder_cli resynth .carry/data/ljspeech "$RUNS/resynth-$p" -w "$V2" --device "$DEV" --precision "$p" \
      --backend torch --float || return $?
  done
  $PY - "$RUNS" <<'EOF'
import sys
from pathlib import Path
import numpy as np, soundfile as sf
runs = Path(sys.argv[1])
try:
    from pesq import pesq
except ImportError:
    pesq = None
    print("pesq not installed here: differences only (PESQ is computed from $OUT/resynth.tar afterwards)")
for p in ("fp16", "bf16"):
    for ref_path in sorted((runs / "resynth-fp32").glob("*.wav")):
        ref, sr = sf.read(ref_path, dtype="float32")
        got, _ = sf.read(runs / f"resynth-{p}" / ref_path.name, dtype="float32")
        d = np.abs(got - ref)
        snr = 10 * np.log10(np.sum(ref**2) / max(np.sum((got - ref) ** 2), 1e-20))
        print(f"RESULT resynth {p} vs fp32 {ref_path.name}: max|diff| {d.max():.2e}, max|diff|/max|fp32| "
              f"{d.max() / np.abs(ref).max():.2e}, SNR {snr:.1f} dB, finite {np.isfinite(got).all()}")
EOF
  tar -C "$RUNS" -cf "$OUT/resynth.tar" resynth-fp32 resynth-fp16 resynth-bf16
}

bench_synth_all() {
  local b
  for b in 1 16; do
    $PY -m vocoder_cli bench synth --models v1,v2,v3 --device "$DEV" --batch "$b" --seconds "$SECONDS_BENCH" \
      --repeats "$REPEATS" --backend torch --json | sed 's/^/RESULT bench-synth /' || return $?
  done
  for p in fp32 bf16 fp16; do
    $PY -m vocoder_cli bench synth --weights "$V2" --device "$DEV" --batch 16 --precision "$p" --seconds "$SECONDS_BENCH" \
      --repeats "$REPEATS" --backend torch --json | sed 's/^/RESULT bench-synth /' || return $?
  done
}

tf32_check() {  # fp32 synthesis with cuDNN's TF32 convolutions (torch's default) against true fp32
  $PY - "$DEV" "$SECONDS_BENCH" <<'EOF'
import sys, time, torch
from vocoder_cli.demo import speech_mel
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
dev, seconds = sys.argv[1], float(sys.argv[2])
mel = speech_mel(MelConfig(), seconds)[None].expand(16, -1, -1).contiguous()
for preset in ("v1", "v2", "v3"):
    torch.manual_seed(0)
    gen = Generator(generator_preset(preset)).eval()
    with torch.inference_mode():
        ref = gen(mel[:1]).double()  # CPU float32
        gen.to(dev)
        x = mel.to(dev)
        for tf32 in (True, False):
            with torch.backends.cudnn.flags(enabled=True, benchmark=False, allow_tf32=tf32):
                out = gen(x)  # warm-up
                times = []
                for _ in range(3):
                    if dev == "cuda": torch.cuda.synchronize()
                    t0 = time.perf_counter(); out = gen(x)
                    if dev == "cuda": torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
            err = float((out[:1].double().cpu() - ref).abs().max() / ref.abs().max())
            print(f"RESULT tf32 {preset} batch 16 x {seconds:g} s fp32 with TF32 convolutions {'on ' if tf32 else 'off'}: "
                  f"median {sorted(times)[1] * 1e3:.1f} ms, vs CPU max rel error {err:.2e}")
EOF
}

more_tests() {
  VOCODER_TEST_DATA=/nonexistent $PY -m pytest -q -p no:cacheprovider -n 8 -m "not network and not slow" -rfE \
    tests/test_inference.py tests/test_resynth_cli.py tests/test_bench_cli.py tests/test_train.py \
    tests/test_train_config.py tests/test_train_recipe.py tests/test_models.py tests/test_mel.py tests/test_onnx.py
}

export PY DEV STEPS LOGI WARM BATCH SEGMENT SECONDS_BENCH REPEATS RUNS V2 OUT
export -f env_info train_speed train_run prepare resynth_all bench_synth_all tf32_check more_tests
echo "verify_cuda.sh: device $DEV, steps $STEPS, batch $BATCH, segment $SEGMENT, budget ${BUDGET}s, $(date -u +%FT%TZ)"
stage env 40 env_info
stage pytest-cuda 150 $PY -m pytest -q -s -m cuda -p no:cacheprovider -rs --durations=8 tests/test_cuda.py  # no -x: one run, see every failure
stage prepare 60 prepare
stage train-v1-eager 100 train_run v1-eager v1 --no-compile
stage train-v3-eager 60 train_run v3-eager v3 --no-compile
stage resynth 60 resynth_all
stage bench-synth 100 bench_synth_all
for c in $COMPILE_CONFIGS; do
  TORCH_LOGS=recompiles stage "train-$c-compile" 200 train_run "$c-compile" "$c" --compile
done
stage tf32 40 tf32_check
stage bench-train 60 $PY -m vocoder_cli bench train --configs v1,v2,v3 --device "$DEV" --batch-size "$BATCH" \
  --segment "$SEGMENT" --steps "$BENCH_TRAIN_STEPS" --warmup "${BENCH_TRAIN_WARMUP:-5}" --json
[ "$MORE_TESTS" = 1 ] && stage more-tests 150 more_tests
nvidia-smi --query-gpu=memory.used,utilization.gpu,clocks.sm --format=csv 2>/dev/null || true
echo; echo "=== summary ($(($(date +%s) - START)) s)"; printf '%s\n' "${SUMMARY[@]}"
