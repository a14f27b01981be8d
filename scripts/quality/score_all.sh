#!/usr/bin/env bash
# Score the resyntheses of scripts/quality/resynth_all.sh against ground truth (docs/quality.md).
# Usage: scripts/quality/score_all.sh OUT_DIR   (default: out/quality); writes OUT_DIR/scores/*.json
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-out/quality}
DATA=${VOCODER_TEST_DATA:-../shared/data}
# Two passes so the cheap table comes first: signal metrics, then CREPE pitch (CREPE full is heavy on a CPU).
PASSES=${PASSES:-"signal:pesq,stoi,mstft,mcd,dnsmos pitch:pitch"}
declare -A SETS=([ljspeech-dev]="$DATA/ljspeech/dev/wavs" [reader_m-test]="$DATA/reader_m/test/wavs" [allison_en-test]="$DATA/allison_en/test")
mkdir -p "$OUT/scores"
for set in ljspeech-dev reader_m-test allison_en-test; do
  [[ -f $OUT/scores/ground-truth.$set.json ]] \
    || vocoder score "${SETS[$set]}" -m dnsmos -f json -q -o "$OUT/scores/ground-truth.$set.json"
done
for pass in $PASSES; do
  for set in ljspeech-dev reader_m-test allison_en-test; do
    for weights in hifigan-lj-v1 hifigan-universal-v1 hifigan-lj-v2 griffin-lim; do
      out="$OUT/scores/$weights.$set.${pass%%:*}.json"
      [[ -f $out ]] || vocoder score "${SETS[$set]}" "$OUT/$weights/$set" -m "${pass#*:}" -f json --per-file -q -o "$out" || true
    done
  done
done
