#!/usr/bin/env bash
# Train HiFi-GAN on every GPU of this machine (DDP via torchrun), e.g. on the shared speech data:
#   scripts/train_gpu.sh v1 runs/v1 ../shared/data/reader_m/train/wavs ../shared/data/allison_en/train
# Extra arguments after the data folders are not supported; pass settings through VOCODER_ARGS:
#   VOCODER_ARGS="--max-minutes 10 --set val_interval=500" scripts/train_gpu.sh v1 runs/v1 DATA...
set -euo pipefail
config=${1:?config (v1|v2|v3|FILE)}; run=${2:?run folder}; shift 2
prepared="${run}.data"
if [ ! -f "${prepared}/train.jsonl" ]; then
  mkdir -p "${prepared}.src"
  # prepare walks one folder and does not follow symlinked folders: gather hard links (or copies).
  for folder in "$@"; do
    name="$(basename "$(dirname "$(realpath "$folder")")")_$(basename "$folder")"
    cp -al "$folder" "${prepared}.src/${name}" 2>/dev/null || cp -r "$folder" "${prepared}.src/${name}"
  done
  python -m vocoder_cli prepare folder "${prepared}.src" "${prepared}" --sample-rate 22050 || [ $? -eq 1 ]
fi
gpus=$(python -c "import torch; print(max(1, torch.cuda.device_count()))")
# --run-dir, not --run: torchrun's own argument parser takes --run for an abbreviation of --run-path.
exec torchrun --standalone --nproc_per_node "${gpus}" -m vocoder_cli train \
  --config "${config}" --data "${prepared}" --run-dir "${run}" ${VOCODER_ARGS:-}
