# Decode with layers streamed from host memory or disk onto the GPU (stream-bench.ts), on the 1B and 8B
# checkpoints (made unless device.sh left them in /tmp/bench), in one device call from the project root;
# results under $OUT.
source .bench/kit/setup.sh >/dev/null 2>&1
TOK=test/fixtures/tokenizers/bytelevel-llama3/tokenizer.json
W=/tmp/bench
mkdir -p "$W"
for m in 1b 8b; do
  [ -f "$W/m$m/config.json" ] || node .bench-build/tools/bench-gpu/make-checkpoint.js "$W/m$m" $m $TOK
  OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness,skip_validation timeout 200 \
    node .bench-build/tools/bench-gpu/stream-bench.js "$W/m$m" 4 "$OUT/stream-m$m.json" 2>&1 | grep -E "tok/s|Error"
done
bash tools/bench-gpu/pack.sh
