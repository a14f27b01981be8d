#!/usr/bin/env bash
# Watch a training run started by train_builtin.sh (a job scheduler that ends idle sessions sees activity): print
# progress and GPU utilisation every 30 s, and copy the newest exported generator to $OUT.
for _ in $(seq "${POLLS:-18}"); do
  tail -1 runs/builtin.log
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  sleep 30
done
cp runs/builtin/*.safetensors "$OUT"/ 2>/dev/null || true
