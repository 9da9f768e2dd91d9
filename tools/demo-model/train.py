#!/usr/bin/env python3
"""Trains the oLLM demo model: a byte-level BPE tokenizer and a small Llama, from build_data.py's output.

    python3 train.py --data DATA_DIR --out MODEL_DIR [--steps N | --time-budget SECONDS] [--seed 1234]

Needs torch, transformers and tokenizers (run on the GPU machine, see README.md). Writes MODEL_DIR with
config.json, generation_config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json
(chat template inside) and MODEL_DIR/../train_report.json (sizes, loss curve, timings).

Determinism: everything is seeded, and the run is fixed by --steps N (the shipped model: --steps 1039).
With --steps 0 the step count is derived from --time-budget and the measured speed of a training step
(measured without touching the model) and printed; that run trains exactly like --steps with that count.
GPU kernels are not bit-deterministic, so a rerun gives a model that is close to, not equal to, the
shipped one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_format import (  # noqa: E402
    BOS, CHAT_TEMPLATE, END_HEADER, EOS_TEXT, EOT, SPECIALS, SPLIT_REGEX, START_HEADER, render,
)

# The model. vocab 8192, hidden 384, 6 layers, GQA 6/2 heads of 64, MLP 960, tied embeddings:
# 12.1M parameters, 24.3 MB in bf16.
MODEL = dict(
    hidden_size=384, intermediate_size=960, num_hidden_layers=6, num_attention_heads=6,
    num_key_value_heads=2, head_dim=64, max_position_embeddings=2048, rms_norm_eps=1e-5,
    tie_word_embeddings=True, attention_bias=False, mlp_bias=False, hidden_act="silu",
    initializer_range=0.02,
)
VOCAB_SIZE = 8192
MAX_LEN = 640


def log(*args) -> None:
    print(*args, flush=True)


def read_conversations(data_dir: str) -> list[list[dict]]:
    with open(os.path.join(data_dir, "train.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["messages"] for line in f]


# ---------------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(convs: list[list[dict]], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )

    def texts():
        for conv in convs:
            for m in conv:
                yield m["role"]
                yield m["content"]

    tok.train_from_iterator(texts(), trainer=trainer)
    tok.add_special_tokens(SPECIALS)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))],
        ),
    ])
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def save_tokenizer(tok, out: str) -> None:
    tok.save(os.path.join(out, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOT,
        "pad_token": EOS_TEXT,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL["max_position_embeddings"],
        "model_input_names": ["input_ids", "attention_mask"],
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ---------------------------------------------------------------------------------------------- data
def encode_all(tok, convs: list[list[dict]]) -> tuple[list[list[int]], list[list[int]], int]:
    """Token ids and loss labels (-100 outside assistant turns) of each conversation; drops long ones."""
    start, end, eot = (tok.token_to_id(s) for s in (START_HEADER, END_HEADER, EOT))
    assistant = tuple(tok.encode("assistant", add_special_tokens=False).ids)
    encs = tok.encode_batch([render(c) for c in convs], add_special_tokens=False)
    ids_out, labels_out, dropped = [], [], 0
    for enc in encs:
        ids = enc.ids
        if len(ids) > MAX_LEN:
            dropped += 1
            continue
        labels = [-100] * len(ids)
        role: list[int] | None = None
        train = False
        for j, t in enumerate(ids):
            if t == start:
                role, train = [], False
            elif t == end:
                train = tuple(role or ()) == assistant
                role = None
            elif role is not None:
                role.append(t)
            elif train:
                labels[j] = t
                if t == eot:
                    train = False
        ids_out.append(ids)
        labels_out.append(labels)
    return ids_out, labels_out, dropped


class Batches:
    """Length-bucketed batches of about `tokens` tokens (rows × padded length), reshuffled each epoch."""

    def __init__(self, ids, labels, tokens: int, pad_id: int, seed: int):
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        self.batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            longest = len(ids[i])  # ascending order: the newest row is the longest
            if cur and (len(cur) + 1) * longest > tokens:
                self.batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            self.batches.append(cur)
        self.ids, self.labels, self.pad = ids, labels, pad_id
        self.rng = random.Random(seed)
        self.queue: list[list[int]] = []
        self.epoch = 0

    def next(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.queue:
            self.queue = list(self.batches)
            self.rng.shuffle(self.queue)
            self.epoch += 1
        rows = self.queue.pop()
        width = max(len(self.ids[i]) for i in rows)
        x = torch.full((len(rows), width), self.pad, dtype=torch.long)
        y = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(self.ids[i])
            x[r, :n] = torch.tensor(self.ids[i])
            y[r, :n] = torch.tensor(self.labels[i])
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def loss_of(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x).logits
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1), ignore_index=-100
    )


# ---------------------------------------------------------------------------------------------- model
def build_model(vocab_size: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, bos_token_id=0, eos_token_id=[4, 1], pad_token_id=1, **MODEL,
    )
    return LlamaForCausalLM(config)


def unique_params(model) -> int:
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def save_model(model, out: str) -> None:
    model = model.to(torch.bfloat16)
    try:
        model.save_pretrained(out, safe_serialization=True)
    except TypeError:
        model.save_pretrained(out)
    generation = {
        "bos_token_id": 0,
        "eos_token_id": [4, 1],
        "pad_token_id": 1,
        "do_sample": False,
    }
    with open(os.path.join(out, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump(generation, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------- training
def measure_step_seconds(model, ids, labels, batch_tokens: int, seed: int, device) -> float:
    """Seconds per training step, measured without changing the model: forward + backward on every batch
    shape once (the first pass over new shapes is slow), then on 20 batches timed. Gradients are dropped,
    so a run with --time-budget trains exactly like one with the --steps it derives."""
    probe = Batches(ids, labels, batch_tokens, pad_id=1, seed=seed + 1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def one() -> None:
        x, y = probe.next(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss_of(model, x, y).backward()

    for _ in range(len(probe.batches)):
        one()
    sync()
    t0 = time.time()
    for _ in range(20):
        one()
    sync()
    model.zero_grad(set_to_none=True)
    return (time.time() - t0) / 20 * 1.1  # + optimizer step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=0,
                    help="total optimizer steps (0: derive from --time-budget); the shipped model used 1039")
    ap.add_argument("--time-budget", type=float, default=180.0, help="seconds of training when --steps is 0")
    ap.add_argument("--batch-tokens", type=int, default=32768)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    args = ap.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(args.out, exist_ok=True)
    report: dict = {"seed": args.seed, "python": sys.version.split()[0], "torch": torch.__version__}
    try:
        import transformers, tokenizers  # noqa: E401

        report.update(transformers=transformers.__version__, tokenizers=tokenizers.__version__)
    except ImportError:
        pass

    t0 = time.time()
    convs = read_conversations(args.data)
    tok = train_tokenizer(convs, args.vocab_size)
    save_tokenizer(tok, args.out)
    report["tokenizer_seconds"] = round(time.time() - t0, 1)
    log(f"tokenizer: vocab {tok.get_vocab_size()} in {report['tokenizer_seconds']} s")

    t0 = time.time()
    ids, labels, dropped = encode_all(tok, convs)
    n_tok = sum(len(i) for i in ids)
    n_train = sum(sum(1 for t in lab if t != -100) for lab in labels)
    report.update(conversations=len(ids), dropped_long=dropped, tokens=n_tok, trained_tokens=n_train)
    log(f"data: {len(ids)} conversations ({dropped} longer than {MAX_LEN} dropped), {n_tok} tokens, "
        f"{n_train} in assistant turns, encoded in {time.time() - t0:.1f} s")
    heldout_ids = heldout_labels = None
    heldout_path = os.path.join(args.data, "heldout.json")
    if os.path.exists(heldout_path):
        with open(heldout_path, encoding="utf-8") as f:
            held = json.load(f)
        hconvs = [[{"role": "user", "content": h["question"]}, {"role": "assistant", "content": h["reference"]}]
                  for h in held if h["kind"] == "unseen_api"]
        heldout_ids, heldout_labels, _ = encode_all(tok, hconvs)

    model = build_model(tok.get_vocab_size(), args.seed)
    if model.lm_head.weight is not model.model.embed_tokens.weight:
        model.lm_head.weight = model.model.embed_tokens.weight  # tie_word_embeddings: one matrix
    model = model.to(device)
    n_params = unique_params(model)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    report.update(parameters=n_params, tied_embeddings=tied)
    log(f"model: {n_params} parameters ({n_params * 2 / 1e6:.2f} MB in bf16), tied embeddings {tied}")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt_kwargs = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    if device.type == "cuda":
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            **opt_kwargs)
    batches = Batches(ids, labels, args.batch_tokens, pad_id=1, seed=args.seed)
    log(f"batches per epoch: {len(batches.batches)}")

    def held_out_loss() -> float | None:
        if not heldout_ids:
            return None
        model.eval()
        hb = Batches(heldout_ids, heldout_labels, args.batch_tokens, 1, 0)
        total, count = 0.0, 0
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for _ in range(len(hb.batches)):
                x, y = hb.next(device)
                n = int((y[:, 1:] != -100).sum())
                total += float(loss_of(model, x, y)) * n
                count += n
        model.train()
        return total / max(count, 1)

    total_steps = args.steps
    if total_steps == 0:
        per_step = measure_step_seconds(model, ids, labels, args.batch_tokens, args.seed, device)
        total_steps = max(args.warmup + 1, int(args.time_budget / per_step))
        log(f"timing: {per_step * 1000:.1f} ms/step -> --steps {total_steps} for {args.time_budget:.0f} s")
    curve: list[dict] = []
    model.train()
    t_start = time.time()
    step = 0
    while step < total_steps:
        horizon = total_steps
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            progress = min(1.0, (step - args.warmup) / max(1, horizon - args.warmup))
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batches.next(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_of(model, x, y)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % 100 == 0 or step == 1 or step == total_steps:
            point = {"step": step, "epoch": batches.epoch, "loss": round(float(loss.detach()), 4), "lr": round(lr, 6),
                     "grad_norm": round(float(grad_norm), 3), "seconds": round(time.time() - t_start, 1)}
            if step % 500 == 0 or step == total_steps:
                point["heldout_loss"] = held_out_loss()
            curve.append(point)
            log(json.dumps(point))
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.time() - t_start
    report.update(steps=total_steps, epochs=batches.epoch, train_seconds=round(train_seconds, 1),
                  batch_tokens=args.batch_tokens, lr=args.lr, final_loss=curve[-1]["loss"] if curve else None,
                  final_heldout_loss=curve[-1].get("heldout_loss") if curve else None, curve=curve,
                  device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu")
    log(f"trained {total_steps} steps ({batches.epoch} epochs) in {train_seconds:.1f} s")

    save_model(model, args.out)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    report["safetensors_bytes"] = size
    log(f"saved {sorted(os.listdir(args.out))}, model.safetensors {size} bytes")
    with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "train_report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
