#!/usr/bin/env python3
"""make_chat_golden.py: golden chat prompts (tests/golden/chat/) from transformers'
apply_chat_template(messages, add_generation_prompt=True) for the three chat formats transit knows
(design §11, docs/chat.md), on real tokenizers from ../shared:

  llama3  ../shared/models/llama3-tokenizer (its tokenizer_config.json carries the Llama 3 template)
  llama2  ../shared/models/llama2-tokenizer/tokenizer.model with Llama-2-chat's template, legacy=True
          (text after <s> gets SentencePiece's dummy prefix, as in Meta's chat code). The text is
          transformers'; the ids are `sentencepiece` encoding the text between <s> and </s>, as
          Meta's chat code does and as transformers 4.34's LlamaTokenizer (sentencepiece inside)
          gives for every conversation here. transformers 5 converts tokenizer.model into a
          `tokenizers` BPE that merges across SentencePiece's piece boundaries in runs of spaces
          ("\n\n  Tell" -> "▁▁", "T", "ell" where SentencePiece has "▁", "▁Tell"); the script lists
          where it differs and keeps SentencePiece's ids, the tokenizer Llama 2 was trained with
  chatml  the Llama 3 tokenizer with <|im_start|> and <|im_end|> added as special tokens (ids 128256
          and 128257, as fine-tunes that adopt ChatML add them), with the usual ChatML template

What it writes:
  chat.json            {"formats": {name: {"tokenizer": dir under shared/models, "file": the tokenizer
                       file, "added": [[id, text], ...] special tokens the test adds, "template": the
                       template file under tests/golden/chat or "shared", "cases": [{"messages": [...],
                       "text": rendered prompt, "ids": [...]}]}}}
  llama2.jinja, chatml.jinja   the templates (the test recognises the format from them)
  unknown_*.jinja      templates transit must refuse (Mistral's [INST] without <<SYS>>, Zephyr)

Usage: tools/make_chat_golden.py [--shared DIR] [--out DIR]
       (pip: transformers tokenizers sentencepiece protobuf jinja2)
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

from tokenizers import AddedToken, Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}")

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Templates transit must not take for one of its formats.
UNKNOWN_TEMPLATES = {
    # Mistral Instruct: [INST] without Llama 2's <<SYS>> block (the system text is placed differently)
    "unknown_mistral": (
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
        "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        "{{ message['content'] + eos_token}}{% endif %}{% endfor %}"),
    # Zephyr
    "unknown_zephyr": (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"),
}

# Conversations. Whitespace at the ends of a message is trimmed by the Llama 2 and 3 templates (Python's
# str.strip, which also takes U+00A0 and U+3000) and kept by ChatML; roles alternate as Llama 2 requires.
CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one short sentence.\nNever use lists."},
     {"role": "user", "content": "  Tell me a joke about compilers.\n"},
     {"role": "assistant", "content": "Why did the compiler break up? Too many unresolved references."},
     {"role": "user", "content": "Another one,\tplease; with digits 1234567 and 42."},
     {"role": "assistant", "content": " I'd rather not:\n\n it's 3 a.m. here. "},
     {"role": "user", "content": "Fine. Translate 'good night' into Japanese (おやすみ?) and French (bonne nuit)."}],
    [{"role": "user", "content": "First question: what's 2+2?"},
     {"role": "assistant", "content": "4."},
     {"role": "user", "content": "And 2*3?"},
     {"role": "assistant", "content": "6."},
     {"role": "user", "content": "Thanks 👩\u200d💻 ✔"}],
    [{"role": "system", "content": "\u00a0Café owner persona.\u3000"},
     {"role": "user", "content": "\u00a0Was kostet ein Kaffee?\u3000"}],
    [{"role": "user", "content": ""}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Line one\r\nline two\n\n\nline five"},
     {"role": "assistant", "content": "Noted."},
     {"role": "user", "content": "   "}],
]


def render(tok, messages):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if not isinstance(ids, list):
        ids = ids["input_ids"]
    ids = [int(i) for i in ids]
    # the ids must be the rendered text tokenized with its special tokens and no others added
    again = tok(text, add_special_tokens=False)["input_ids"]
    if again != ids:
        sys.exit("apply_chat_template's ids differ from its text tokenized")
    return text, ids


def llama2_sentencepiece_ids(model_file, text, bos, eos):
    """Meta's chat code: the text between <s> and </s> encoded by SentencePiece, BOS/EOS as ids."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_file)
    want, i = [], 0
    while i < len(text):
        if text.startswith("<s>", i):
            want.append(bos); i += 3; continue
        if text.startswith("</s>", i):
            want.append(eos); i += 4; continue
        j = len(text)
        for mark in ("<s>", "</s>"):
            k = text.find(mark, i)
            if k >= 0:
                j = min(j, k)
        want += sp.encode(text[i:j])
        i = j
    return want


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden", "chat"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    models = os.path.join(a.shared, "models")
    tmp = tempfile.mkdtemp()
    try:
        formats = {}
        l3dir = os.path.join(models, "llama3-tokenizer")
        tok3 = AutoTokenizer.from_pretrained(l3dir)
        formats["llama3"] = (tok3, {"tokenizer": "llama3-tokenizer", "file": "tokenizer.json", "added": [],
                                    "template": "shared"})

        l2dir = os.path.join(tmp, "llama2")
        os.makedirs(l2dir)
        l2model = os.path.join(models, "llama2-tokenizer", "tokenizer.model")
        shutil.copyfile(l2model, os.path.join(l2dir, "tokenizer.model"))
        with open(os.path.join(l2dir, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                       "unk_token": "<unk>", "legacy": True, "add_bos_token": True,
                       "chat_template": LLAMA2_TEMPLATE}, f)
        tok2 = AutoTokenizer.from_pretrained(l2dir)
        formats["llama2"] = (tok2, {"tokenizer": "llama2-tokenizer", "file": "tokenizer.model", "added": [],
                                    "template": "llama2.jinja"})

        raw = Tokenizer.from_file(os.path.join(l3dir, "tokenizer.json"))
        raw.add_special_tokens([AddedToken("<|im_start|>", special=True, normalized=False),
                                AddedToken("<|im_end|>", special=True, normalized=False)])
        added = [[raw.token_to_id(t), t] for t in ("<|im_start|>", "<|im_end|>")]
        tokc = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|begin_of_text|>",
                                       eos_token="<|im_end|>", chat_template=CHATML_TEMPLATE)
        formats["chatml"] = (tokc, {"tokenizer": "llama3-tokenizer", "file": "tokenizer.json", "added": added,
                                    "template": "chatml.jinja"})

        out = {"formats": {}}
        for name, (tok, spec) in formats.items():
            cases = []
            for conv in CONVERSATIONS:
                text, ids = render(tok, conv)
                if name == "llama2":
                    sp_ids = llama2_sentencepiece_ids(l2model, text, tok.bos_token_id, tok.eos_token_id)
                    if sp_ids != ids:
                        print("llama2: transformers 5 differs from SentencePiece on %r" % text[:60])
                    ids = sp_ids
                cases.append({"messages": conv, "text": text, "ids": ids})
            out["formats"][name] = dict(spec, cases=cases)
            print("%-7s %d conversations, %d ids" % (name, len(cases), sum(len(c["ids"]) for c in cases)))
        with open(os.path.join(a.out, "chat.json"), "w") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
        for fn, text in [("llama2.jinja", LLAMA2_TEMPLATE), ("chatml.jinja", CHATML_TEMPLATE)] + \
                [(k + ".jinja", v) for k, v in UNKNOWN_TEMPLATES.items()]:
            with open(os.path.join(a.out, fn), "w") as f:
                f.write(text)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
