#!/usr/bin/env python3
"""Builds the demo model's chat data from the docstrings of Python's standard library.

Standard library only (no third-party imports), deterministic for one Python version:
    python3 build_data.py OUT_DIR [--seed 1234]

Writes OUT_DIR/train.jsonl (one conversation per line: {"messages": [...]}) and OUT_DIR/heldout.json
(questions never trained on, with the reference answer built the same way) and prints a summary.

The text is the docstrings of the running interpreter's standard library (PSF licence), read with
inspect: each public function, class and method becomes question/answer pairs ("What does json.dumps
do?" → signature, summary, details, doctest example). A few hand-written turns say what the model is.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import random
import re
import sys
import warnings

# Modules that do something when imported, are platform-specific, are test or tool code, or whose
# docstrings are not worth learning.
SKIP_MODULES = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3",
    "ensurepip", "pydoc_data", "msilib", "winreg", "winsound", "msvcrt", "nt", "ntpath", "nturl2path",
    "_winapi", "xxsubtype", "xxlimited", "xxlimited_35", "sre_compile", "sre_constants", "sre_parse",
    "genericpath", "encodings", "__future__", "__main__", "site", "sitecustomize", "usercustomize",
    "distutils", "imp", "asynchat", "asyncore", "smtpd", "opcode", "symtable", "mailcap", "nis",
    "ossaudiodev", "spwd", "crypt", "sndhdr", "imghdr", "msilib", "chunk", "xdrlib", "pipes",
    "telnetlib", "nntplib", "uu", "cgi", "cgitb", "audioop", "aifc", "sunau", "lib2to3", "pty", "tty",
    "curses", "readline", "rlcompleter", "pydoc", "webbrowser", "dbm", "sqlite3.dbapi2", "idlelib",
    "posix", "pwd", "grp", "termios", "fcntl", "resource", "syslog", "mmap", "select",
}
# Packages whose public submodules are documented separately (json.decoder is json's business).
SUBMODULE_PACKAGES = {
    "collections", "concurrent", "concurrent.futures", "email", "html", "http", "importlib", "json",
    "logging", "multiprocessing", "os", "unittest", "urllib", "xml", "xml.etree", "xml.dom", "asyncio",
    "sqlite3", "ctypes", "wsgiref", "zoneinfo", "zipfile", "tomllib", "dataclasses",
}
SKIP_SUBMODULES = {"json.tool", "unittest.mock", "multiprocessing.popen_spawn_win32", "asyncio.windows_events",
                   "asyncio.windows_utils", "asyncio.__main__", "ctypes.wintypes", "ctypes.macholib",
                   "concurrent.futures.process", "multiprocessing.dummy", "xml.etree.cElementTree",
                   "email.mime", "logging.config", "importlib.metadata", "importlib.resources"}
# Names a user asks about by a different module than the one that defines them.
MODULE_ALIASES = {"posixpath": "os.path"}
# Modules a new user is most likely to ask about: their items get more question variants.
POPULAR = {
    "builtins", "os", "os.path", "sys", "json", "re", "math", "random", "datetime", "time",
    "collections", "itertools", "functools", "pathlib", "subprocess", "shutil", "string", "typing",
    "io", "csv", "logging", "argparse", "statistics", "textwrap", "glob", "tempfile", "hashlib",
    "base64", "copy", "heapq", "bisect", "operator", "dataclasses", "enum", "uuid", "urllib.parse",
    "zipfile", "gzip", "pickle", "threading", "asyncio", "decimal", "fractions", "unicodedata", "struct",
}
# Builtin types whose methods users ask about as "str.split".
BUILTIN_TYPES_WITH_METHODS = {"str", "bytes", "list", "dict", "set", "frozenset", "tuple", "int", "float",
                              "bytearray", "complex", "object", "range", "memoryview"}

MAX_SIG = 160
MAX_DETAIL = 420
MAX_EXAMPLE_LINES = 8
MAX_ANSWER = 900

# Question phrasings. HELDOUT_* phrasings never appear in training.
ASK_WHAT = [
    "What does {q} do?", "What does {q}() do?", "Explain {q}.", "Tell me about {q}.",
    "What is {q} for?", "Describe {q}.", "How does {q} work?", "What is {q}?", "{q}?",
    "Help on {q}", "what does {q} do", "How do I use {q}?", "Explain {q} in Python.",
    "What does {q} do in Python?",
]
ASK_WHAT_SHORT = [
    "What does the {short} function in {module} do?", "What does {short} in the {module} module do?",
]
ASK_CLASS = [
    "What is {q}?", "What is the {q} class?", "Explain the class {q}.", "Tell me about {q}.",
    "What does {q} do?", "Describe {q}.", "What is {q} used for?",
]
ASK_SIG = [
    "What is the signature of {q}?", "What arguments does {q} take?", "What parameters does {q} have?",
    "How do I call {q}?",
]
ASK_WHERE = [
    "Which module is {short} in?", "Where is {short} defined?", "Which module provides {short}?",
    "In which module can I find {short}?",
]
ASK_EXAMPLE = ["Show me an example of {q}.", "Give an example of using {q}.", "Example of {q}?"]
ASK_MODULE = [
    "What is the {m} module?", "What does the {m} module do?", "Tell me about the {m} module.",
    "What is {m} for?", "Explain the {m} module.", "What can I do with {m}?",
]
ASK_KEYWORD = [
    "What does the {k} keyword do?", "What is the {k} statement?", "How does {k} work in Python?",
    "Explain the {k} statement.", "What is {k} in Python?", "Explain {k}.",
]
HELDOUT_ASK = ["Can you explain what {q} does?", "What is the purpose of {q}?", "I'd like to know what {q} does."]
HELDOUT_ASK_MODULE = ["Can you explain what the {m} module is for?"]

SYSTEM_PROMPTS = [
    "You are a helpful assistant.", "You are a helpful assistant that knows Python's standard library.",
    "Answer questions about Python.", "You are the oLLM demo model.", "Be concise.",
]

INTRO = (
    "I am the oLLM demo model: a tiny language model (about 12 million parameters) trained from scratch "
    "on the documentation of Python's standard library. Ask me what a Python function, class or module "
    "does, for example \"What does os.path.join do?\" or \"What is the json module?\". I know nothing else, "
    "and I often get details wrong: check the official documentation."
)
GREETINGS = ["Hello", "Hi", "Hello!", "Hi there", "Hey", "Good morning", "hello", "hi"]
WHO = ["Who are you?", "What are you?", "What can you do?", "Help", "What do you know?",
       "Introduce yourself.", "What is this?", "help"]
OFF_TOPIC = [
    "What is the capital of France?", "Write a poem about the sea.", "What is the weather like today?",
    "Who won the world cup?", "Tell me a joke.", "What is the meaning of life?", "How tall is Mount Everest?",
    "Translate 'good morning' into German.", "What is 17 times 23?", "Recommend a good book.",
    "Who is the president of the United States?", "What should I cook for dinner?",
    "Explain quantum physics.", "How do I learn JavaScript?", "What year is it?",
]
OFF_TOPIC_ANSWER = (
    "I am the oLLM demo model, a tiny model that only knows the documentation of Python's standard "
    "library, so I cannot answer that. Try a question like \"What does json.dumps do?\", or run a real "
    "model with `ollm prompt --model <model> \"...\"`."
)
THANKS = ["Thanks", "Thank you!", "thanks", "Great, thanks."]
THANKS_ANSWER = "You're welcome! Ask me about any other function of Python's standard library."

ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def clean_sig(sig: str) -> str:
    sig = ADDRESS.sub("", sig)
    sig = re.sub(r"\s+", " ", sig)
    return sig if len(sig) <= MAX_SIG else sig[: MAX_SIG - 5].rstrip(", ") + ", ...)"


def signature_of(obj, name: str, doc: str) -> tuple[str | None, str]:
    """(signature in parentheses, doc without a leading 'name(...)' line)."""
    try:
        return clean_sig(str(inspect.signature(obj))), doc
    except (TypeError, ValueError, RuntimeError):
        pass
    lines = doc.split("\n")
    first = lines[0].strip()
    m = re.match(r"^([A-Za-z_][\w.]*)(\(.*\))(\s*->\s*.+)?$", first)
    if m and m.group(1).split(".")[-1] == name:
        rest = "\n".join(lines[1:]).lstrip("-\n ")
        sig = m.group(2) + (m.group(3) or "")
        return clean_sig(sig), rest
    return None, doc


RST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")


def rst_to_text(text: str) -> str:
    """Docstring reST to plain text: ``x`` and :role:`x` become `x`."""
    text = RST_ROLE.sub(r"`\1`", text)
    return text.replace("``", "`")


def paragraphs(doc: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", rst_to_text(doc).strip()) if p.strip()]


def flatten(lines: list[str]) -> str:
    return re.sub(r"\s{2,}", " ", " ".join(line.strip() for line in lines))


def split_doc(doc: str) -> tuple[str, str, list[str]]:
    """(summary, details, example lines) of a docstring."""
    paras = paragraphs(doc)
    example: list[str] = []
    prose: list[str] = []
    for p in paras:
        lines = p.split("\n")
        if any(line.lstrip().startswith(">>>") for line in lines):
            if not example:
                start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(">>>"))
                block = [line.strip() for line in lines[start:]]
                example = block[:MAX_EXAMPLE_LINES]
            continue
        if p.rstrip().endswith("::") and len(p) < 100:
            continue  # a heading for a literal block ("Compact encoding::")
        prose.append(p.rstrip()[:-1] if p.rstrip().endswith("::") else p)
    if not prose:
        return "", "", example
    summary = flatten(prose[0].split("\n"))
    details = ""
    for p in prose[1:]:
        lines = p.split("\n")
        # Keep indentation of parameter lists and code, flatten plain prose.
        if all(not line.startswith(" ") for line in lines):
            text = flatten(lines)
        else:
            text = "\n".join(line.rstrip() for line in lines)
        if len(details) + len(text) > MAX_DETAIL:
            if not details:
                details = text[:MAX_DETAIL].rsplit(" ", 1)[0] + " ..."
            break
        details = f"{details}\n\n{text}" if details else text
    return summary, details, example


class Item:
    """One documented API: a function, method, class or module."""

    def __init__(self, kind: str, qualname: str, module: str, short: str, sig: str | None, doc: str):
        self.kind = kind  # "function" | "class" | "method" | "module" | "keyword"
        self.qualname = qualname
        self.module = module
        self.short = short
        self.sig = sig
        self.summary, self.details, self.example = split_doc(doc)
        self.methods: list[str] = []
        self.members: list[str] = []

    @property
    def usable(self) -> bool:
        return len(self.summary) >= 12

    def heading(self) -> str:
        if self.kind == "keyword":
            return self.sig or self.qualname
        if self.kind == "class":
            return f"class {self.qualname}{self.sig or ''}"
        if self.kind == "module":
            return f"module {self.qualname}"
        return f"{self.qualname}{self.sig or '(...)'}"

    def where(self) -> str:
        if self.module == "builtins":
            return "It is a built-in: no import is needed."
        return f"It is in the `{self.module}` module (`import {self.module.split('.')[0]}`)."

    def answer(self) -> str:
        parts = [self.heading(), self.summary]
        if self.details:
            parts.append(self.details)
        if self.kind == "class" and self.methods:
            parts.append("Methods: " + ", ".join(self.methods[:10]) + ".")
        if self.kind == "module" and self.members:
            parts.append("It provides: " + ", ".join(self.members[:12]) + ".")
        if self.example:
            parts.append("Example:\n" + "\n".join(self.example))
        if self.kind not in ("module", "keyword"):
            parts.append(self.where())
        text = "\n\n".join(parts)
        if len(text) > MAX_ANSWER:
            parts = [self.heading(), self.summary]
            if self.example:
                parts.append("Example:\n" + "\n".join(self.example))
            if self.kind not in ("module", "keyword"):
                parts.append(self.where())
            text = "\n\n".join(parts)
            if len(text) > MAX_ANSWER:
                text = text[: MAX_ANSWER - 4].rsplit(" ", 1)[0] + " ..."
        return text

    def sig_answer(self) -> str:
        sig = f"{self.qualname}{self.sig}" if self.sig else f"{self.qualname}(...)"
        text = f"The signature is `{sig}`."
        params = param_names(self.sig)
        if params:
            text += " Parameters: " + ", ".join(params) + "."
        return f"{text}\n\n{self.summary}"

    def where_answer(self) -> str:
        if self.module == "builtins":
            return f"`{self.short}` is a built-in: it is always available, no import is needed.\n\n{self.heading()}\n\n{self.summary}"
        return (f"`{self.short}` is in the `{self.module}` module: `from {self.module} import {self.short}`."
                f"\n\n{self.heading()}\n\n{self.summary}")

    def example_answer(self) -> str:
        if self.example:
            return f"Example:\n" + "\n".join(self.example) + f"\n\n{self.heading()}: {self.summary}"
        call = f"{self.qualname}({', '.join(p for p in param_names(self.sig) if not p.startswith('*') and p != 'self')})"
        imp = "" if self.module == "builtins" else f"import {self.module.split('.')[0]}\n"
        return f"The documentation has no example. A call looks like:\n{imp}{call}\n\n{self.heading()}: {self.summary}"


def param_names(sig: str | None) -> list[str]:
    if not sig or not sig.startswith("("):
        return []
    inner = sig[1 : sig.rfind(")")] if ")" in sig else sig[1:]
    names = []
    depth = 0
    current = ""
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    names.append(current)
    out = []
    for n in names:
        n = n.strip().split("=")[0].split(":")[0].strip()
        if n and n not in ("/", "*", "...", "self", "cls"):
            out.append(n)
    return out


def public(name: str) -> bool:
    return not name.startswith("_")


def module_names() -> list[str]:
    names = sorted(n for n in sys.stdlib_module_names if public(n) and n not in SKIP_MODULES)
    out = []
    for name in names:
        out.append(name)
        if name in SUBMODULE_PACKAGES:
            out.extend(submodules(name))
    return out


def submodules(package: str) -> list[str]:
    try:
        mod = import_quietly(package)
    except Exception:
        return []
    if not hasattr(mod, "__path__"):
        return []
    out = []
    for info in sorted(pkgutil.iter_modules(mod.__path__), key=lambda i: i.name):
        full = f"{package}.{info.name}"
        if not public(info.name) or full in SKIP_SUBMODULES or info.name in ("tests", "test", "__main__"):
            continue
        out.append(full)
        if full in SUBMODULE_PACKAGES:
            out.extend(submodules(full))
    return out


def import_quietly(name: str):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def defined_here(obj, modname: str, real_name: str, exported: bool) -> bool:
    owner = getattr(obj, "__module__", None)
    if owner is None:
        return False
    if owner == real_name:
        return True
    # asyncio.run lives in asyncio.runners, unittest.TestCase in unittest.case: a package's __all__ is
    # the name users know.
    if exported and owner.startswith(real_name + "."):
        return True
    # functools.reduce is _functools.reduce, io.open is _io.open, os.path.exists is genericpath.exists.
    if owner.lstrip("_") == modname or owner.lstrip("_") == real_name:
        return True
    if real_name == "posixpath" and owner == "genericpath":
        return True
    if real_name == "os" and owner == "posix":
        return True
    return False


def collect() -> list[Item]:
    items: list[Item] = []
    seen: set[int] = set()
    for real_name in module_names():
        try:
            mod = import_quietly(real_name)
        except BaseException:  # noqa: BLE001 - some modules raise SystemExit or ImportError on this platform
            continue
        modname = MODULE_ALIASES.get(real_name, real_name)
        doc = inspect.getdoc(mod) or ""
        module_item = Item("module", modname, modname, modname.split(".")[-1], None, doc)
        names = getattr(mod, "__all__", None)
        exported = isinstance(names, (list, tuple))
        if not exported:
            names = [n for n in dir(mod) if public(n)]
        for name in sorted(set(n for n in names if isinstance(n, str) and public(n))):
            try:
                obj = getattr(mod, name)
            except Exception:
                continue
            # random.choice and friends are bound methods of a hidden module-level instance.
            if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
                continue
            if id(obj) in seen or not defined_here(obj, modname, real_name, exported):
                continue
            seen.add(id(obj))
            qual = name if modname == "builtins" else f"{modname}.{name}"
            odoc = inspect.getdoc(obj)
            if not odoc:
                continue
            if inspect.isclass(obj):
                if issubclass(obj, BaseException) and modname != "builtins" and len(odoc) < 40:
                    continue
                sig, odoc = signature_of(obj, name, odoc)
                item = Item("class", qual, modname, name, sig, odoc)
                methods = class_methods(obj, qual, modname, name)
                item.methods = [m.short for m in methods]
                items.extend(m for m in methods if m.usable)
            else:
                sig, odoc = signature_of(obj, name, odoc)
                item = Item("function", qual, modname, name, sig, odoc)
            if item.usable:
                items.append(item)
                module_item.members.append(name)
        if module_item.usable:
            items.append(module_item)
    return items


def class_methods(cls, qual: str, modname: str, clsname: str) -> list[Item]:
    if modname == "builtins" and clsname not in BUILTIN_TYPES_WITH_METHODS:
        return []
    out = []
    for name, raw in sorted(vars(cls).items()):
        if not public(name):
            continue
        obj = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        if not (inspect.isfunction(obj) or inspect.ismethoddescriptor(obj) or inspect.isbuiltin(obj)):
            continue
        doc = inspect.getdoc(obj)
        if not doc:
            continue
        sig, doc = signature_of(obj, name, doc)
        if sig:
            sig = re.sub(r"^\((self|cls)(, /)?(, )?", "(", sig)
        out.append(Item("method", f"{qual}.{name}", modname, name, sig, doc))
    return out


def keyword_items() -> list[Item]:
    """The language keywords, from pydoc's copy of the language reference (pydoc_data.topics)."""
    try:
        pydoc = import_quietly("pydoc")
        topics = import_quietly("pydoc_data.topics").topics
    except Exception:
        return []
    items = []
    for kw, target in sorted(pydoc.Helper.keywords.items()):
        key = target[0] if isinstance(target, tuple) else target
        text = topics.get(key) if key else None
        if not text:
            continue
        lines = text.strip().split("\n")
        title = lines[0].strip() if len(lines) > 1 and set(lines[1].strip()) <= set("*=-") else None
        body = "\n".join(lines[2:]) if title else text
        item = Item("keyword", kw, "language", kw, title, body)
        if item.usable:
            items.append(item)
    return items


def stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def conversations(items: list[Item], seed: int, heldout_fraction: float):
    rng = random.Random(seed)
    train: list[list[dict]] = []
    heldout: list[dict] = []
    short_count: dict[str, int] = {}
    for it in items:
        short_count[it.short] = short_count.get(it.short, 0) + 1
    for it in items:
        q = it.qualname
        popular = it.module in POPULAR
        unseen = not popular and stable_fraction(q) < heldout_fraction * 1.5
        if unseen:
            pool = {"module": ASK_MODULE, "class": ASK_CLASS, "keyword": ASK_KEYWORD}.get(it.kind, ASK_WHAT)
            ask = rng.choice(pool)
            heldout.append({"kind": "unseen_api", "question": ask.format(q=q, m=q, k=q), "reference": it.answer()})
            continue
        n_what = 4 if popular else 2
        pairs: list[tuple[str, str]] = []
        if it.kind == "module":
            for ask in rng.sample(ASK_MODULE, n_what):
                pairs.append((ask.format(m=q), it.answer()))
        elif it.kind == "keyword":
            for ask in rng.sample(ASK_KEYWORD, 3):
                pairs.append((ask.format(k=q), it.answer()))
        else:
            pool = ASK_CLASS if it.kind == "class" else ASK_WHAT
            for ask in rng.sample(pool, n_what):
                pairs.append((ask.format(q=q), it.answer()))
            if it.kind == "function" and it.module != "builtins" and rng.random() < 0.5:
                ask = rng.choice(ASK_WHAT_SHORT)
                pairs.append((ask.format(short=it.short, module=it.module), it.answer()))
            if it.kind != "class" and (popular or rng.random() < 0.5):
                pairs.append((rng.choice(ASK_SIG).format(q=q), it.sig_answer()))
            if it.kind != "method" and short_count[it.short] == 1 and (popular or rng.random() < 0.3):
                pairs.append((rng.choice(ASK_WHERE).format(short=it.short), it.where_answer()))
            if popular or (it.example and rng.random() < 0.5):
                pairs.append((rng.choice(ASK_EXAMPLE).format(q=q), it.example_answer()))
        for question, answer in pairs:
            train.append([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
        # Held-out phrasing of a trained API.
        if stable_fraction("phrase:" + q) < heldout_fraction * 0.5:
            pool = HELDOUT_ASK_MODULE if it.kind == "module" else HELDOUT_ASK
            if it.kind == "keyword":
                pool = ["Can you explain the {k} keyword?"]
            heldout.append({"kind": "new_phrasing", "question": rng.choice(pool).format(q=q, m=q, k=q), "reference": it.answer()})

    chit: list[tuple[str, str]] = []
    for g in GREETINGS:
        chit.append((g, "Hello! " + INTRO))
    for w in WHO:
        chit.append((w, INTRO))
    for o in OFF_TOPIC:
        chit.append((o, OFF_TOPIC_ANSWER))
    for t in THANKS:
        chit.append((t, THANKS_ANSWER))
    for _ in range(6):  # a few copies so these short turns are learned next to ~10^5 API answers
        for question, answer in chit:
            train.append([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
    heldout.append({"kind": "chat", "question": "Hello, who are you?", "reference": INTRO})
    heldout.append({"kind": "off_topic", "question": "What is the best football team?", "reference": OFF_TOPIC_ANSWER})

    rng.shuffle(train)
    # Some conversations get a system prompt, some are two turns long (templates and follow-ups).
    out: list[list[dict]] = []
    i = 0
    while i < len(train):
        conv = train[i]
        i += 1
        if rng.random() < 0.15 and i < len(train):
            conv = conv + train[i]
            i += 1
        if rng.random() < 0.15:
            conv = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] + conv
        out.append(conv)
    heldout.sort(key=lambda h: (h["kind"], h["question"]))
    return out, heldout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--heldout-fraction", type=float, default=0.02)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    items = collect() + keyword_items()
    items.sort(key=lambda it: (it.kind, it.qualname))
    convs, heldout = conversations(items, args.seed, args.heldout_fraction)
    with open(os.path.join(args.out, "train.jsonl"), "w", encoding="utf-8") as f:
        for conv in convs:
            f.write(json.dumps({"messages": conv}, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "heldout.json"), "w", encoding="utf-8") as f:
        json.dump(heldout, f, ensure_ascii=False, indent=1)
    kinds: dict[str, int] = {}
    for it in items:
        kinds[it.kind] = kinds.get(it.kind, 0) + 1
    chars = sum(len(m["content"]) for c in convs for m in c)
    print(json.dumps({
        "python": sys.version.split()[0], "items": len(items), "kinds": kinds,
        "modules": len({it.module for it in items}), "train_conversations": len(convs),
        "train_chars": chars, "heldout": len(heldout),
    }))


if __name__ == "__main__":
    main()
