#!/usr/bin/env bash
# Resynthesise the evaluation sets of ../shared/data with each vocoder (docs/quality.md).
# Usage: scripts/quality/resynth_all.sh OUT_DIR   (default: out/quality). Needs ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-out/quality}
DATA=${VOCODER_TEST_DATA:-../shared/data}
# hifigan-lj-v2's pinned URL is on GitHub; where only the package index is reachable, import the local copy.
if ! vocoder weights path hifigan-lj-v2 >/dev/null 2>&1; then
  vocoder weights pull hifigan-lj-v2 -q 2>/dev/null \
    || vocoder weights import ../shared/weights/hifigan-lj-v2/generator_v2 --name hifigan-lj-v2
fi
declare -A SETS=([ljspeech-dev]="$DATA/ljspeech/dev/wavs" [reader_m-test]="$DATA/reader_m/test/wavs" [allison_en-test]="$DATA/allison_en/test")
for weights in hifigan-lj-v1 hifigan-universal-v1 hifigan-lj-v2 griffin-lim; do
  for set in ljspeech-dev reader_m-test allison_en-test; do
    rate=22050; [[ $set == allison_en-test ]] && rate=16000  # back to the reference's rate
    vocoder resynth "${SETS[$set]}" "$OUT/$weights/$set" --weights "$weights" --out-sr "$rate" --skip-existing --float -q
  done
done
