#!/usr/bin/env bash
# The whole demo-model pipeline as run on the GPU machine, in one go:
# data from this interpreter's stdlib → smoke run (30 steps, checks every stage) → full run → oracle.
# Results go to $OUT: log (via the caller's tee), bundle.tar (model folder without weights, golden,
# samples, report, held-out set), model.safetensors.partNN (the weights, split to stay under 16 MiB).
set -euo pipefail
OUT=${OUT:?set OUT to the folder that receives the results}
HERE=$(cd "$(dirname "$0")" && pwd)
W=${WORK:-/tmp/demo-model}
# STEPS=1039 is the shipped model's run; STEPS=0 derives the steps from TIME_BUDGET seconds instead.
STEPS=${STEPS:-1039}
BUDGET=${TIME_BUDGET:-180}
rm -rf "$W"; mkdir -p "$W/data" "$W/smoke" "$W/full"
export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=true
python3 -c 'import sys, torch, transformers, tokenizers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__, "cuda", torch.cuda.is_available())'
start=$(date +%s)
python3 "$HERE/build_data.py" "$W/data" | tee "$W/summary.json"

echo "== smoke $(( $(date +%s) - start )) s"
python3 "$HERE/train.py" --data "$W/data" --out "$W/smoke/demo" --steps 30
python3 "$HERE/oracle.py" --model "$W/smoke/demo" --data "$W/data" --golden "$W/smoke/golden.json" \
  --samples "$W/smoke/samples.json" --per-kind 1 --max-new 16 > "$W/smoke/oracle.log"
grep -E "chat template|golden case|samples:" "$W/smoke/oracle.log"
tar cf "$OUT/smoke.tar" -C "$W/smoke" golden.json samples.json train_report.json

echo "== full $(( $(date +%s) - start )) s"
python3 "$HERE/train.py" --data "$W/data" --out "$W/full/demo" --steps "$STEPS" --time-budget "$BUDGET"
python3 "$HERE/oracle.py" --model "$W/full/demo" --data "$W/data" --golden "$W/full/golden.json" \
  --samples "$W/full/samples.json"
cp "$W/data/heldout.json" "$W/summary.json" "$W/full/"
sha256sum "$W/full/demo/model.safetensors"
split -b 14M -d "$W/full/demo/model.safetensors" "$OUT/model.safetensors.part"
tar cf "$OUT/bundle.tar" -C "$W/full" --exclude demo/model.safetensors \
  demo golden.json samples.json train_report.json heldout.json summary.json
rm -f "$OUT/smoke.tar"
echo "== done $(( $(date +%s) - start )) s"
ls -la "$OUT"
