"""PyTorch CPU reference for the CPU backend: transformers on the same checkpoint (bf16 safetensors), prompt of
128 token ids, 32 greedy tokens; bf16 and f32 compute, for the given thread counts. Prints one JSON object.

usage: python3 hf_cpu_bench.py MODEL_DIR THREADS[,THREADS...]
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM

model_dir, threads = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
prompt = torch.tensor([[(i * 131 + 17) % 1000 for i in range(128)]])
gen = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
rows = []
for dtype in (torch.bfloat16, torch.float32):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    for t in threads:
        torch.set_num_threads(t)
        with torch.no_grad():
            model.generate(prompt[:, :16], max_new_tokens=4, min_new_tokens=4, **gen)
            best_prefill = 1e9
            for _ in range(2):
                t0 = time.perf_counter()
                model(prompt, logits_to_keep=1)
                best_prefill = min(best_prefill, time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = model.generate(prompt, max_new_tokens=33, min_new_tokens=33, **gen)
            total = time.perf_counter() - t0
        decode_s = max(1e-9, total - best_prefill)
        row = {"dtype": str(dtype), "threads": t, "prefill_tok_s": 128 / best_prefill, "decode_tok_s": 32 / decode_s}
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    del model
print(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))
