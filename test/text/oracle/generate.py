"""Oracle for the text layer: what transformers (v5) + tokenizers compute on the fixture tokenizers.

Run where transformers is installed (the device machine):
    python3 test/text/oracle/generate.py test/text/fixtures/variants.json test/text/fixtures/oracle.json \
        test/text/fixtures/template_cases.json

Each variant in variants.json is a fixture tokenizer with a few fields of tokenizer.json / tokenizer_config.json
changed (or a whole tokenizer.json), so the general mechanisms (post-processors, pre-tokenizer behaviours,
added-token flags, decoders, clean-up) are checked against the reference implementation, not only the four
fixtures as they are.
"""

import json
import os
import random
import shutil
import sys
import tempfile

import tokenizers
import transformers
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "tokenizers")


def build_variant(variant, root):
    out = os.path.join(root, variant["name"])
    os.makedirs(out)
    if "full" in variant:
        tokenizer_json, config = variant["full"], {}
    else:
        base = os.path.join(FIXTURES, variant["base"])
        with open(os.path.join(base, "tokenizer.json"), encoding="utf-8") as f:
            tokenizer_json = json.load(f)
        with open(os.path.join(base, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        if os.path.exists(os.path.join(base, "chat_template.jinja")):
            shutil.copy(os.path.join(base, "chat_template.jinja"), out)
    tokenizer_json = dict(tokenizer_json)
    tokenizer_json.update(variant.get("tokenizer", {}))
    added = [dict(t) for t in tokenizer_json["added_tokens"]]
    for patch in variant.get("addedTokens", []):
        existing = next((t for t in added if t["content"] == patch["content"]), None)
        if existing is not None:
            existing.update(patch)
        else:
            added.append(dict(patch))
    tokenizer_json["added_tokens"] = added
    config = dict(config)
    config.update(variant.get("config", {}))
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False)
    return out


def random_sequences(tok, texts, name):
    rng = random.Random(name)
    size = len(tok)
    vocab = tok.get_vocab()
    byte_ids = sorted(i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">"))
    specials = list(tok.all_special_ids)
    seqs = []
    for _ in range(30):  # uniform ids, a few past the vocabulary (skipped by the decoder)
        seqs.append([rng.randrange(size + 2) for _ in range(rng.randint(1, 24))])
    if byte_ids:  # byte-fallback runs, valid or not
        for _ in range(15):
            seqs.append([rng.choice(byte_ids) if rng.random() < 0.7 else rng.randrange(size)
                         for _ in range(rng.randint(1, 16))])
    multibyte = [t for t in texts if any(ord(c) > 127 for c in t)]
    for _ in range(20):  # slices of real encodings that cut multi-byte characters
        ids = tok("".join(rng.sample(multibyte, 3)), add_special_tokens=False)["input_ids"]
        a = rng.randrange(len(ids))
        b = rng.randint(a + 1, len(ids))
        seq = ids[a:b]
        if specials and rng.random() < 0.5:
            seq.insert(rng.randrange(len(seq) + 1), rng.choice(specials))
        seqs.append(seq)
    return seqs


def oracle_for(variant, root, texts):
    path = build_variant(variant, root)
    tok = AutoTokenizer.from_pretrained(path)
    encode = []
    for text in texts:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        encode.append({
            "text": text,
            "ids": ids,
            "ids_no_special": tok(text, add_special_tokens=False)["input_ids"],
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    decode = []
    for seq in random_sequences(tok, texts, variant["name"]):
        decode.append({
            "ids": seq,
            "decoded": tok.decode(seq, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(seq, skip_special_tokens=True),
        })
    return {
        "name": variant["name"],
        "class": type(tok).__name__,
        "vocab_size": len(tok),
        "special_ids": sorted(set(tok.all_special_ids)),
        "added_special": sorted(i for i, t in tok.added_tokens_decoder.items() if t.special),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "encode": encode,
        "decode": decode,
    }


def render_cases(cases_path):
    """Renders template_cases.json's template the way apply_chat_template does (same variables)."""
    with open(cases_path, encoding="utf-8") as f:
        spec = json.load(f)
    with open(os.path.join(os.path.dirname(cases_path), spec["template"]), encoding="utf-8") as f:
        template = f.read()
    out = {}
    for case in spec["cases"]:
        kwargs = {**spec["special_tokens"], **case.get("extra", {})}
        try:
            rendered, _ = render_jinja_template(
                conversations=[case["messages"]], tools=case.get("tools"), documents=case.get("documents"),
                chat_template=template, add_generation_prompt=case["add_generation_prompt"], **kwargs)
            out[case["name"]] = {"text": rendered[0]}
        except Exception as e:
            out[case["name"]] = {"error": repr(e)}
    return out


def main():
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    root = tempfile.mkdtemp()
    results = []
    for variant in spec["variants"]:
        try:
            results.append(oracle_for(variant, root, spec["texts"]))
        except Exception as e:  # keep going: one broken variant should not hide the others
            results.append({"name": variant["name"], "error": repr(e)})
            print("ERROR", variant["name"], repr(e))
    templates = render_cases(sys.argv[3]) if len(sys.argv) > 3 else {}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                   "variants": results, "templates": templates}, f, ensure_ascii=False, separators=(",", ":"))
    print("wrote", out_path, len(results), "variants")


if __name__ == "__main__":
    main()
