#!/usr/bin/env python3
"""What transformers computes on the trained demo model: the golden file for test/demo and sample answers.

    python3 oracle.py --model MODEL_DIR --data DATA_DIR --golden golden.json --samples samples.json

golden.json (f32, eager attention, on the CPU, like test/fixtures): for three held-out conversations the
rendered chat template, its ids, the greedy continuation of 24 tokens by full recompute (each step's id
and top1 − top2 margin), the same continuation through transformers' KV cache, and the top-10 logits at
the prompt's last position; plus a few plain encodes for the tokenizer.
samples.json: greedy answers (up to --max-new tokens, stopped at the eos ids) to held-out and README
questions, for the model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_format import render  # noqa: E402

GREEDY_STEPS = 24
README_QUESTIONS = [
    "What does os.path.join do?", "What does json.dumps do?", "What is the json module?", "Hello",
    "What does str.split do?", "What is the with statement?", "What is the capital of France?",
]
ENCODE_TEXTS = [
    "What does os.path.join do?",
    "json.dumps(obj, *, indent=None) -> str  # 12345 and 3.14159",
    "Héllo wörld — naïve café ✓ 日本語\n\n\ttabs  and   spaces",
    "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
]


def load_model(path: str, device: str, attn: str):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attn)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation=attn)
    return model.to(device).eval()


@torch.no_grad()
def greedy_recompute(model, ids: list[int], steps: int) -> tuple[list[dict], dict]:
    seq = list(ids)
    out = []
    top = None
    for i in range(steps):
        logits = model(input_ids=torch.tensor([seq])).logits[0, -1].float()
        if i == 0:
            v, k = torch.topk(logits, 10)
            top = {"ids": k.tolist(), "logits": v.tolist()}
        v, k = torch.topk(logits, 2)
        out.append({"id": int(k[0]), "margin": float(v[0] - v[1])})
        seq.append(int(k[0]))
    return out, top


@torch.no_grad()
def greedy_cached(model, ids: list[int], steps: int, stop: set[int] | None = None) -> list[int]:
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
    result: list[int] = []
    for _ in range(steps):
        nxt = int(out.logits[0, -1].argmax())
        result.append(nxt)
        if stop and nxt in stop:
            break
        out = model(input_ids=torch.tensor([[nxt]], device=device), past_key_values=out.past_key_values,
                    use_cache=True)
    return result


def pick(held: list[dict], kind: str, n: int) -> list[dict]:
    rows = [h for h in held if h["kind"] == kind]
    rows.sort(key=lambda h: hashlib.sha256(h["question"].encode()).hexdigest())
    return rows[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--per-kind", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=200)
    args = ap.parse_args()
    torch.manual_seed(0)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    with open(os.path.join(args.data, "heldout.json"), encoding="utf-8") as f:
        held = json.load(f)

    # The template transformers renders must be the one the model was trained on.
    with open(os.path.join(args.data, "train.jsonl"), encoding="utf-8") as f:
        for line, _ in zip(f, range(200)):
            conv = json.loads(line)["messages"]
            for gen in (False, True):
                text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                assert text == render(conv, gen), (text, render(conv, gen))
    print("chat template: transformers == training format on 200 conversations", flush=True)

    phr = pick(held, "new_phrasing", 2)
    unseen = pick(held, "unseen_api", 1)
    conversations = [
        [{"role": "user", "content": phr[0]["question"]}],
        [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": unseen[0]["question"]}],
        [{"role": "user", "content": "What does os.path.join do?"},
         {"role": "assistant", "content": "os.path.join(a, *p)\n\nJoin two or more pathname components, "
                                          "inserting '/' as needed."},
         {"role": "user", "content": phr[1]["question"]}],
    ]
    cpu = load_model(args.model, "cpu", "eager")
    cases = []
    for conv in conversations:
        text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        steps, top = greedy_recompute(cpu, ids, GREEDY_STEPS)
        cached = greedy_cached(cpu, ids, GREEDY_STEPS)
        cases.append({
            "messages": conv, "prompt_text": text, "prompt_ids": ids,
            "greedy_ids": [s["id"] for s in steps], "greedy_steps": steps, "greedy_ids_with_cache": cached,
            "greedy_text": tok.decode([s["id"] for s in steps], skip_special_tokens=False),
            "last_logits_top": top,
        })
        print(f"golden case: {len(ids)} prompt tokens, min margin {min(s['margin'] for s in steps):.3g}, "
              f"cache == recompute {cached == [s['id'] for s in steps]}", flush=True)
    encodes = [{
        "text": t, "ids": tok(t)["input_ids"], "ids_no_special": tok(t, add_special_tokens=False)["input_ids"],
    } for t in ENCODE_TEXTS]
    golden = {"model": "models/demo", "vocab_size": cpu.config.vocab_size, "eos_token_ids": [4, 1],
              "cases": cases, "encode": encodes}
    with open(args.golden, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device, "sdpa") if device == "cuda" else cpu
    stop = {4, 1}
    rows = [{"kind": "readme", "question": q, "reference": None} for q in README_QUESTIONS]
    for kind in ("chat", "off_topic", "new_phrasing", "unseen_api"):
        rows += pick(held, kind, args.per_kind)
    t0 = time.time()
    produced = 0
    samples = []
    for row in rows:
        ids = tok.apply_chat_template([{"role": "user", "content": row["question"]}], tokenize=False,
                                      add_generation_prompt=True)
        ids = tok(ids, add_special_tokens=False)["input_ids"]
        out = greedy_cached(model, ids, args.max_new, stop)
        produced += len(out)
        samples.append({**row, "answer": tok.decode(out, skip_special_tokens=True),
                        "tokens": len(out), "stopped": bool(out) and out[-1] in stop})
    elapsed = time.time() - t0
    with open(args.samples, "w", encoding="utf-8") as f:
        json.dump({"device": device, "tokens": produced, "seconds": round(elapsed, 2), "samples": samples},
                  f, ensure_ascii=False, indent=1)
    for s in samples:
        print(f"--- [{s['kind']}] {s['question']}\n{s['answer']}", flush=True)
    print(f"samples: {produced} tokens in {elapsed:.1f} s on {device}", flush=True)


if __name__ == "__main__":
    main()
