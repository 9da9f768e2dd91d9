# Decode with 2 and 4 output rows per GEMV workgroup (OLLM_WEBGPU_GEMV_OUT), in one device call from the project root.
source .bench/kit/setup.sh >/dev/null 2>&1
TOK=test/fixtures/tokenizers/bytelevel-llama3/tokenizer.json
node .bench-build/tools/bench-gpu/make-checkpoint.js /tmp/m1b 1b $TOK
node .bench-build/tools/bench-gpu/make-checkpoint.js /tmp/m8b 8b $TOK
for out in 2 4; do
  echo "== OLLM_WEBGPU_GEMV_OUT=$out"
  OLLM_WEBGPU_GEMV_OUT=$out timeout 100 node .bench-build/tools/bench-gpu/bench.js --decode 96 --prompt 256 --json "$OUT/out$out.json" /tmp/m1b /tmp/m8b 2>&1 | grep -E "decode|prefill"
done
