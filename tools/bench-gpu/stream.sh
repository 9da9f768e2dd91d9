# Decode with layers streamed from host memory onto the GPU (stream-bench.ts), on the 1B and 8B checkpoints,
# in one device call from the project root; results under $OUT.
source .bench/kit/setup.sh >/dev/null 2>&1
TOK=test/fixtures/tokenizers/bytelevel-llama3/tokenizer.json
for m in 1b 8b; do
  node .bench-build/tools/bench-gpu/make-checkpoint.js /tmp/m$m $m $TOK
  OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 90 \
    node .bench-build/tools/bench-gpu/stream-bench.js /tmp/m$m 6 "$OUT/stream-m$m.json" 2>&1 | grep -E "tok/s|Error"
done
