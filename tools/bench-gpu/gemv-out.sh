#!/usr/bin/env bash
# Output rows per GEMV workgroup on the device: the tuner's table, then decode/prefill with 1, 2 and 4
# (OLLM_WEBGPU_GEMV_OUT). carry [".bench", ".bench-build"]; results under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/bench-out}
source .bench/kit/setup.sh
TOK=test/fixtures/tokenizers/bytelevel-llama3/tokenizer.json
W=/tmp/bench && mkdir -p "$W"
node .bench-build/tools/bench-gpu/make-checkpoint.js "$W/m1b" 1b "$TOK" > /dev/null
node .bench-build/tools/bench-gpu/make-checkpoint.js "$W/m8b" 8b "$TOK" > /dev/null
export OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation
timeout 120 node .bench-build/tools/bench-gpu/gemv-tune.js "$OUT/gemv-tune.json" 2>&1 | grep -v "libEGL\|OpenGLES\|InitializeWithDynamicLoading"
for out in 1 4 2; do
  OLLM_WEBGPU_GEMV_OUT=$out timeout 100 node .bench-build/tools/bench-gpu/bench.js --decode 96 --json "$OUT/ours-out$out.json" "$W/m1b" "$W/m8b" 2>&1 | grep -E "decode|prefill"
done
