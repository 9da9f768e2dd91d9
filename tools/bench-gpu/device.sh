#!/usr/bin/env bash
# The GPU benchmark, run on the device machine from the project root in one call (see docs/benchmarks-gpu.md):
#   carry [".bench", ".bench-build"]; command: bash tools/bench-gpu/device.sh
# Prepared here by tools/bench-gpu/prepare.sh. Results and logs go to $OUT.
# LLAMA=0 skips building and running llama.cpp, HF_GPU=0 the transformers GPU reference, CPU=0 the CPU part,
# SAFE=0 our second run with the product's default Dawn toggles, PROFILE=0 the per-dispatch profiles, HOST=0
# the host-time profiles of a decode step, GEMM=0 the prefill GEMM probe, ATTN=0 the attention probe, CHECK=0 the fixture families check
# (for a short device budget; the table then shows "—" for what was skipped).
set -uo pipefail
OUT=${OUT:-/tmp/bench-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
ROOT=$(pwd)
source .bench/kit/setup.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
TOK=test/fixtures/tokenizers/bytelevel-llama3/tokenizer.json
W=/tmp/bench
mkdir -p "$W"

# llama.cpp (CUDA) built in the background at low priority while our bench runs.
[ "${LLAMA:-1}" = 0 ] || (
  cd "$W" && tar -xJf "$ROOT/.bench/llama-src.tar.xz" && cd llama-src &&
    nice -n 15 cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release &&
    nice -n 15 cmake --build build --target llama-bench -j 12
) > "$W/build.log" 2>&1 &
BUILD=$!

node .bench-build/tools/bench-gpu/make-checkpoint.js "$W/m1b" 1b "$TOK"
node .bench-build/tools/bench-gpu/make-checkpoint.js "$W/m8b" 8b "$TOK"
[ "${LLAMA:-1}" = 0 ] || (
  nice -n 10 python3 .bench/write_gguf.py "$TOK" "$W/m1b.gguf" 2048 8192 16 32 8 &&
    nice -n 10 python3 .bench/write_gguf.py "$TOK" "$W/m8b.gguf" 4096 14336 32 32 8
) > "$W/gguf.log" 2>&1 &
GGUF=$!
echo "[$(elapsed) s] checkpoints written"

# Every fixture family against the CPU backend and transformers' golden outputs, with the product's default
# Dawn toggles (validation on).
[ "${CHECK:-1}" = 0 ] || timeout 120 node .bench-build/tools/bench-gpu/families-check.js "$OUT/check.txt" 2>&1 | grep -E "^ok|^FAIL|ALL|FAILED"
# Prefill GEMM variants against the previous kernel (raw dispatches, fast Dawn toggles).
if [ "${GEMM:-1}" != 0 ]; then
  OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 120 \
    node .bench-build/tools/bench-gpu/gemm-probe.js --json "$OUT/gemm.json" 2>&1 | grep -v -i "egl\|^ *at \|While"
  echo "[$(elapsed) s] gemm probe done"
fi
timeout 200 node .bench-build/tools/bench-gpu/bench.js --json "$OUT/ours.json" "$W/m1b" "$W/m8b"
echo "[$(elapsed) s] ours done (rc $?)"
# The same with the product's default Dawn toggles (robustness and validation on).
[ "${SAFE:-1}" = 0 ] || timeout 120 node .bench-build/tools/bench-gpu/bench.js --safe --json "$OUT/ours-safe.json" "$W/m1b" "$W/m8b" | grep -E "check|decode|prefill"
# Each decode dispatch timed on its own (where the GPU time of a step goes); default Dawn toggles, so
# WebGPU validation also checks every command of a step.
for m in m1b m8b; do
  [ "${PROFILE:-1}" = 0 ] && break
  timeout 60 node .bench-build/tools/bench-gpu/dispatch-profile.js "$W/$m" 16 "$OUT/profile-$m.json" 2>&1 | grep -v -i "egl\|^ *at \|While" | head -40
done
[ "${PROFILE:-1}" = 0 ] || timeout 60 node .bench-build/tools/bench-gpu/dispatch-profile.js "$W/m8b" 1 "$OUT/profile-prefill-m8b.json" 2048 2>&1 | grep -v -i "egl\|^ *at \|While" | head -30
echo "[$(elapsed) s] dispatch profiles done"
# Decode attention by context length and workgroup cut, and one prefill attention call.
if [ "${ATTN:-1}" != 0 ]; then
  OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 120 \
    node .bench-build/tools/bench-gpu/attention-probe.js --json "$OUT/attention.json" 2>&1 | grep -v -i "egl\|^ *at \|While"
  echo "[$(elapsed) s] attention probe done"
fi
# Host time of a decode step per backend method, and a CPU profile of it (the fast Dawn toggles).
for m in m1b m8b; do
  [ "${HOST:-1}" = 0 ] && break
  OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 60 node --cpu-prof --cpu-prof-dir="$OUT/cpuprof-$m" \
    .bench-build/tools/bench-gpu/host-cost.js "$W/$m" 64 "$OUT/host-$m.json" 2>&1 | grep -v -i "egl\|^ *at \|While"
done
echo "[$(elapsed) s] host profiles done"

if [ "${HF_GPU:-1}" != 0 ]; then
  PYTHONUNBUFFERED=1 timeout 100 python3 tools/bench-gpu/hf_bench.py "$W/m1b" "$W/m8b" > "$OUT/hf.json"
  echo "[$(elapsed) s] transformers done (rc $?)"
fi

wait $GGUF
echo "[$(elapsed) s] gguf: $(tail -2 "$W/gguf.log" | tr '\n' ' ')"
# Wait for the build, but not past ~470 s of this run.
while kill -0 $BUILD 2>/dev/null && [ "$(elapsed)" -lt 470 ]; do sleep 2; done
tail -5 "$W/build.log"
tail -40 "$W/build.log" > "$OUT/build-tail.txt"
if [ -x "$W/llama-src/build/bin/llama-bench" ]; then
  for m in m1b m8b; do
    timeout 55 "$W/llama-src/build/bin/llama-bench" -m "$W/$m.gguf" -p 2048 -n 128 -ngl 99 -fa 1 -r 3 -o json > "$OUT/llama-$m.json"
    echo "[$(elapsed) s] llama-bench $m rc $?"
  done
else
  echo "llama-bench was not built in time"
fi
# The CPU backend on the host's cores against PyTorch CPU on the same checkpoint (after the build: no competition).
if [ "${CPU:-1}" != 0 ]; then
  timeout 90 node .bench-build/tools/bench-gpu/cpu-bench.js "$W/m1b" 16 "$OUT/cpu-ours.json" > "$W/cpu-ours.log" 2>&1
  echo "[$(elapsed) s] CPU ours rc $?"; tail -8 "$W/cpu-ours.log"
  PYTHONUNBUFFERED=1 timeout 90 python3 tools/bench-gpu/hf_cpu_bench.py "$W/m1b" 16 > "$OUT/cpu-torch.json"
  echo "[$(elapsed) s] CPU torch rc $?"
fi
node .bench-build/tools/bench-gpu/table.js "$OUT" | tee "$OUT/table.md"
echo "[$(elapsed) s] done"
bash tools/bench-gpu/pack.sh
