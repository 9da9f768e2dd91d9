"""transformers bf16 reference on the same random-weight shapes: greedy generate tok/s and prefill tok/s.

usage: python3 hf_bench.py [--decode 128] [--prompt 2048] MODEL_DIR...  (prints one JSON object)
Weights are random-initialised on the GPU from each config.json (no checkpoint read).
"""
import json
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

args = sys.argv[1:]
decode, prompt, dirs = 128, 2048, []
while args:
    a = args.pop(0)
    if a == "--decode":
        decode = int(args.pop(0))
    elif a == "--prompt":
        prompt = int(args.pop(0))
    else:
        dirs.append(a)

results = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "models": []}
for d in dirs:
    cfg = json.load(open(f"{d}/config.json"))
    config = LlamaConfig(**cfg)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).eval()
    torch.cuda.synchronize()
    init_s = time.perf_counter() - t0
    V = config.vocab_size
    ids = torch.tensor([[(i * 31 + 7) % V for i in range(16)]], device="cuda")
    gen = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, **gen)
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(ids, max_new_tokens=decode, min_new_tokens=decode, **gen)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        new = out.shape[1] - ids.shape[1]
        long = torch.tensor([[(i * 131 + 17) % V for i in range(prompt)]], device="cuda")
        model(long[:, :256], logits_to_keep=1)
        torch.cuda.synchronize()
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            model(long, logits_to_keep=1)
            torch.cuda.synchronize()
            best = max(best, prompt / (time.perf_counter() - t))
    results["models"].append(
        {"dir": d, "init_s": init_s, "decode_tok_s": new / dt, "decode_tokens": new, "prefill_tokens": prompt, "prefill_tok_s": best}
    )
    print(f"{d}: transformers decode {new / dt:.1f} tok/s, prefill {best:.0f} tok/s", file=sys.stderr)
    del model
    torch.cuda.empty_cache()
print(json.dumps(results, indent=2))
