#!/usr/bin/env bash
# On a GPU machine without internet (repo root, .carry/ copied; see docs/builtin-weights.md): install the carried
# wheels, then start scripts/train_gpu.sh on the two training speakers in its own process session, so it
# outlives this command. Poll with scripts/gpu/poll.sh. Rerunning resumes runs/builtin exactly.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export VOCODER_ARGS="--max-minutes ${MINUTES:-24} --quiet ${INIT_FROM:+--init-from $INIT_FROM}"
mkdir -p runs
setsid nohup scripts/train_gpu.sh "${CONFIG:-v1}" runs/builtin .carry/data/reader_m/wavs .carry/data/allison_en \
  > runs/builtin.log 2>&1 &
sleep 90; tail -5 runs/builtin.log; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
