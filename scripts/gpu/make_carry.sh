#!/usr/bin/env bash
# Build the git-ignored .carry/ folder to copy to a GPU machine without internet (kept small, ~37 MiB):
# the training speech (reader_m/train + allison_en/train FLAC, ~37 MiB; never test folders or LJSpeech)
# and the wheels the GPU image lacks (soundfile, soxr, platformdirs for Python 3.12).
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${VOCODER_SHARED_DATA:-../shared/data}
rm -rf .carry && mkdir -p .carry/data/reader_m .carry/data/allison_en .carry/whl
cp -r "$data/reader_m/train/wavs" .carry/data/reader_m/
cp "$data"/allison_en/train/*.flac .carry/data/allison_en/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .carry/whl soundfile soxr platformdirs cffi pycparser
du -sh .carry
