#!/usr/bin/env bash
# Score the resyntheses of scripts/quality/resynth_all.sh against ground truth (docs/quality.md).
# Usage: scripts/quality/score_all.sh OUT_DIR   (default: out/quality); writes OUT_DIR/scores/*.json
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-out/quality}
DATA=${VOCODER_TEST_DATA:-../shared/data}
METRICS=${METRICS:-pesq,stoi,mstft,mcd,pitch,dnsmos}
declare -A SETS=([ljspeech-dev]="$DATA/ljspeech/dev/wavs" [reader_m-test]="$DATA/reader_m/test/wavs" [allison_en-test]="$DATA/allison_en/test")
mkdir -p "$OUT/scores"
for set in ljspeech-dev reader_m-test allison_en-test; do
  [[ -f $OUT/scores/ground-truth.$set.json ]] \
    || vocoder score "${SETS[$set]}" -m dnsmos -f json -q -o "$OUT/scores/ground-truth.$set.json"
  for weights in hifigan-lj-v1 hifigan-universal-v1 hifigan-lj-v2 griffin-lim; do
    [[ -f $OUT/scores/$weights.$set.json ]] \
      || vocoder score "${SETS[$set]}" "$OUT/$weights/$set" -m "$METRICS" -f json --per-file -q -o "$OUT/scores/$weights.$set.json"
  done
done
