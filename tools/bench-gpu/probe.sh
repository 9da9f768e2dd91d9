#!/usr/bin/env bash
# Exploratory device run (see tools/bench-gpu/device.sh for the full benchmark): raw dispatch / GEMV probes,
# a profiled WebGPU decode of the 1B shape, and the CPU backend vs PyTorch CPU on the host's cores.
#   carry [".bench", ".bench-build"]; command: bash tools/bench-gpu/probe.sh
set -uo pipefail
OUT=${OUT:-/tmp/probe-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
START=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - START )) s]"; }
source .bench/kit/setup.sh
nproc; lscpu | grep -E "Model name|Flags" | cut -c1-200
TOK=test/fixtures/tokenizers/bytelevel-llama3/tokenizer.json
W=/tmp/bench; mkdir -p "$W"
B=.bench-build/tools/bench-gpu
node $B/make-checkpoint.js "$W/m1b" 1b "$TOK" > /dev/null
elapsed; echo "checkpoint written"
export OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness
timeout 120 node $B/probe.js --json "$OUT/probe.json"; elapsed
OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 60 node $B/probe.js --json "$OUT/probe-skipval.json" 2>&1 | grep -E "dispatch|GEMV 1B gate"; elapsed
timeout 120 node --cpu-prof --cpu-prof-dir="$OUT/prof" $B/decode-profile.js "$W/m1b" 64; elapsed
OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 60 node $B/decode-profile.js "$W/m1b" 64; elapsed
timeout 240 node $B/cpu-bench.js "$W/m1b" 16,8 "$OUT/cpu-ours.json"; elapsed
PYTHONUNBUFFERED=1 timeout 200 python3 tools/bench-gpu/hf_cpu_bench.py "$W/m1b" 16,8 > "$OUT/cpu-torch.json"; elapsed
