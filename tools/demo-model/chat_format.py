"""The demo model's chat format: special tokens, the Llama-3-style template and its Python twin."""

BOS = "<|begin_of_text|>"
EOS_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
# Ids 0..4, in this order (the BPE trainer puts its special tokens first).
SPECIALS = [BOS, EOS_TEXT, START_HEADER, END_HEADER, EOT]

# Llama 3's pre-tokenizer split (numbers in groups of up to three digits).
SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Llama-3-style: no default system prompt (a system turn is rendered only when given).
CHAT_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)


def render(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """What CHAT_TEMPLATE renders (checked against jinja in the tests of train.py)."""
    out = BOS
    for m in messages:
        out += f"{START_HEADER}{m['role']}{END_HEADER}\n\n{m['content'].strip()}{EOT}"
    if add_generation_prompt:
        out += f"{START_HEADER}assistant{END_HEADER}\n\n"
    return out
