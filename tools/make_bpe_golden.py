#!/usr/bin/env python3
"""make_bpe_golden.py: golden ids of the Llama 3 byte-level BPE tokenizer (tests/golden/bpe/), from the
reference libraries: HF `tokenizers` on ../shared/models/llama3-tokenizer/tokenizer.json and `tiktoken`
on its tokenizer.model (pip: tokenizers tiktoken). Every text is encoded by both and the script stops
if they disagree, so one golden file serves the tokenizer.json, tiktoken and GGUF forms.

What it writes (text; tests/test_tokenizer.c reads it):
  llama3_corpus_<name>.txt  shared/corpus/<name>.txt split on b"\\n" (the empty piece after the final
                            newline dropped), in blocks of 64 lines: "<lines> <ids> <fnv64>", the number
                            of lines in the block, of ids the reference gives them (no BOS), and the
                            64-bit FNV-1a hash of those ids, each line's followed by -1, each id as 4
                            little-endian bytes. Blocks keep the file small; a mismatch names its block.
  llama3_hard.txt           hard cases with full ids: "<name>\\t<input as hex>\\t<ids>".
  llama3_big.txt            the 1 MB line: "<repeat> <ids> <fnv64>\\n<hex of the unit>\\n"; the line is the
                            unit repeated, built the same way by the test.

Special-token strings in the text are matched (HF's default; tiktoken with allowed_special="all").
Invalid UTF-8 cannot be given to either library (they take str): those cases are encoded as transit
defines them, which is the same for valid text: the valid runs through the reference, each maximal
run of invalid bytes as one piece merged by rank (tiktoken's _encode_single_piece), since the
pre-tokenizer regex never matches invalid bytes.

and the fuzz seeds tests/fuzz/corpus/fuzz_tiktoken/* (small tiktoken files, one with a
tokenizer_config.json after a NUL) and tests/fuzz/corpus/fuzz_tokenizer_json/bytelevel_*.json.

Usage: tools/make_bpe_golden.py [--shared DIR] [--out DIR] [--bench]
       --bench: HF tokenizers' and tiktoken's speed on the corpora (tokens/s, one thread, line by line)
"""
import argparse
import os
import struct
import sys
import time

import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tokenizers import Tokenizer

from golden_util import corpus_lines, fnv1a64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = ["tinyshakespeare", "wikitext-2-test"]
BLOCK = 64
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")




def hard_cases():
    """(name, bytes): the issue's list and the places where regex engines and BPEs tend to differ."""
    t = [
        ("empty", ""), ("space", " "), ("spaces_2", "  "), ("spaces_16", " " * 16), ("spaces_300", " " * 300),
        ("space_runs", "a  b   c    d     e"), ("trailing_spaces", "end   "), ("leading_spaces", "   start"),
        ("spaces_then_newline", "a   \n  b"), ("crlf", "one\r\ntwo\r\n\r\nthree\r\n"), ("cr_only", "a\rb\r\r c"),
        ("newlines", "\n\n\n"), ("tabs", "\tx\t\ty \t z\t"), ("mixed_ws", " \t \n \r\n\t\x0b\x0c end"),
        ("unicode_spaces", "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u0085g\u200bh\u180ei\ufeffj"),
        ("punct", "Hello, world!!! (really?) -- yes... #1 @me $5 %x ^_^ &amp; *ok* ~/path/to/file.txt"),
        ("code", "def f(x):\n    return x**2  # comment\n\tif a<=b: print(\"{}\".format(a))\n"),
        ("url", "https://example.com/a/b?c=d&e=f#g"),
    ]
    for k in range(1, 8):
        t.append(("digits_%d" % k, "".join(str((i * 7 + 3) % 10) for i in range(k))))
    t += [("digit_mix", "12 345 6789 01234 x1y22z333 3.14159 1,000,000 2024-01-02 ١٢٣٤ ٤٥ ⅧⅨ ²³ ①②"),
          ("contractions_lower", "it's I'm you're we've he'll she'd don't can't"),
          ("contractions_upper", "IT'S I'M YOU'RE WE'VE HE'LL SHE'D DON'T CAN'T"),
          ("contractions_mixed", "It'S i'M You'Re wE'vE He'Ll ShE'd DoN'T 's 'T 'RE 'Ve 'LL 'd 'x '"),
          ("contraction_long_s", "it\u017f x\u212a 'ſ"),  # ſ folds to s; the Kelvin sign to k
          ("quotes", "\u2019s \u2018t ''s '''' \"'s\""),
          ("accents", "café naïve résumé Ærøskøbing Œuvre ça déjà vu Ünïcödé"),
          ("combining", "cafe\u0301 n\u0303 a\u0308\u0304 \u0915\u094d\u0937 e\u0301\u0301\u0301"),
          ("cjk", "中文字符测试，日本語のテキスト。한국어 텍스트입니다"),
          ("scripts", "Ελληνικά Русский текст עברית العربية हिन्दी ไทย ქართული"),
          ("emoji", "😀 😃😄 👍🏽 🇫🇷🇩🇪 ❤️ ✨"),
          ("emoji_zwj", "👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🧑‍🤝‍🧑 👁️‍🗨️"),
          ("specials", "<|begin_of_text|>Hi<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nx<|eom_id|>"),
          ("special_partial", "<|eot_id <|eot_id|| |<|eot_id|>| <|reserved_special_token_250|> <|begin_of_text|"),
          ("special_adjacent", "a<|eot_id|><|eot_id|>b <|end_of_text|>"),
          ("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis" * 20),
          ("control_bytes", "a\x00b\x01c\x1f\x7f"),
          ("math", "∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x| ∑ᵢ aᵢ ≈ π"),
          ]
    out = [(name, s.encode("utf-8")) for name, s in t]
    out += [("invalid_lone", b"\xff"), ("invalid_mix", b"ab\xff\xfe cd\x80 \xc3 x"),
            ("invalid_truncated", b"caf\xc3 \xe4\xb8 \xf0\x9f\x98 end"), ("invalid_overlong", b"\xc0\xaf\xe0\x80\xaf"),
            ("invalid_surrogate", b"\xed\xa0\x80 z"), ("invalid_spaces", b"  \xff  \xfe\n\xfd"),
            ("invalid_special", b"\xff<|eot_id|>\xfe"), ("invalid_run", bytes(range(0x80, 0x100)))]
    return out


def big_unit():
    """One unit of the 1 MB line: mixed scripts, digits, spaces and a special token, no newline."""
    return ("The quick brown fox's 12345 jumps   over\tthe lazy dog. 中文 😀👍🏽 café "
            "<|eot_id|> it'S        done!!! ").encode("utf-8")


class References:
    def __init__(self, shared):
        d = os.path.join(shared, "models", "llama3-tokenizer")
        self.hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        ranks = load_tiktoken_bpe(os.path.join(d, "tokenizer.model"))
        specials = {}
        for tok in self.hf.get_added_tokens_decoder().values():
            specials[tok.content] = self.hf.token_to_id(tok.content)
        self.tt = tiktoken.Encoding("llama3", pat_str=LLAMA3_REGEX, mergeable_ranks=ranks, special_tokens=specials)

    def encode_str(self, s):
        a = self.hf.encode(s, add_special_tokens=False).ids
        b = self.tt.encode(s, allowed_special="all")
        if a != b:
            sys.exit("tokenizers and tiktoken disagree on %r:\n  %s\n  %s" % (s[:200], a[:40], b[:40]))
        return a

    def encode_bytes(self, data):
        """Valid runs through the references, maximal invalid runs as single pieces (see the header)."""
        ids, i = [], 0
        while i < len(data):
            j = i
            while j < len(data):  # the longest valid prefix from i
                try:
                    data[i:j + 1].decode("utf-8")
                    j += 1
                except UnicodeDecodeError as e:
                    if e.reason == "unexpected end of data" and j + 1 < len(data):
                        j += 1  # an incomplete character may complete with the next byte
                        continue
                    break
            valid_end = i
            for k in range(j, i, -1):
                try:
                    data[i:k].decode("utf-8")
                    valid_end = k
                    break
                except UnicodeDecodeError:
                    pass
            if valid_end > i:
                ids += self.encode_str(data[i:valid_end].decode("utf-8"))
                i = valid_end
                continue
            k = i + 1  # an invalid run: until a valid character starts
            while k < len(data) and not starts_valid(data, k):
                k += 1
            ids += self.tt._encode_single_piece(data[i:k])
            i = k
        return ids


def starts_valid(data, k):
    for n in range(1, 5):
        try:
            data[k:k + n].decode("utf-8")
            return True
        except UnicodeDecodeError:
            pass
    return False


def write_corpus(ref, path, lines):
    n_ids = 0
    with open(path, "w") as f:
        for b in range(0, len(lines), BLOCK):
            block = lines[b:b + BLOCK]
            h, count = 0xCBF29CE484222325, 0
            for line in block:
                ids = ref.encode_bytes(line)
                h = fnv1a64(ids + [-1], h)
                count += len(ids)
            f.write("%d %d %016x\n" % (len(block), count, h))
            n_ids += count
    return n_ids


def bench(ref, shared):
    for name in CORPORA:
        lines = [l.decode("utf-8") for l in corpus_lines(os.path.join(shared, "corpus", name + ".txt"))]
        for label, fn in [("tokenizers", lambda s: ref.hf.encode(s, add_special_tokens=False).ids),
                          ("tiktoken", lambda s: ref.tt.encode(s, allowed_special="all"))]:
            t0 = time.perf_counter()
            n = sum(len(fn(s)) for s in lines)
            dt = time.perf_counter() - t0
            print("%-16s %-10s %8d tokens %7.3f s %10.0f tokens/s" % (name, label, n, dt, n / dt))


def write_fuzz_seeds():
    """Small byte-level tokenizers: the 256 bytes plus a few merges, in both fuzzed formats."""
    import base64
    import json
    fuzz = os.path.join(ROOT, "tests", "fuzz", "corpus")
    words = [b"ab", b"abc", b" t", b" th", b" the", b"in", b"'s", b"12"]
    tiktoken_lines = [b"%s %d" % (base64.b64encode(bytes([b])), b) for b in range(256)]
    tiktoken_lines += [b"%s %d" % (base64.b64encode(w), 256 + i) for i, w in enumerate(words)]
    d = os.path.join(fuzz, "fuzz_tiktoken")
    os.makedirs(d, exist_ok=True)
    text = b"\n".join(tiktoken_lines) + b"\n"
    with open(os.path.join(d, "tiny.model"), "wb") as f:
        f.write(text)
    with open(os.path.join(d, "tiny_config.model"), "wb") as f:
        f.write(text + b"\0" + json.dumps({"added_tokens_decoder": {"264": {"content": "<|bos|>"}}}).encode())
    with open(os.path.join(d, "bad_base64.model"), "wb") as f:
        f.write(text + b"Y*I= 300\n")
    bl = {b: c for b, c in zip(range(256), [byte_level(b) for b in range(256)])}
    vocab = {bl[b]: b for b in range(256)}
    merges = []
    for i, w in enumerate(words):
        vocab["".join(bl[b] for b in w)] = 256 + i
        merges.append("%s %s" % ("".join(bl[b] for b in w[:-1]), bl[w[-1]]))
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    doc = {"added_tokens": [{"id": 264, "content": "<|eot_id|>", "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True}],
           "normalizer": None, "pre_tokenizer": pre,
           "model": {"type": "BPE", "ignore_merges": True, "vocab": vocab, "merges": merges}}
    d = os.path.join(fuzz, "fuzz_tokenizer_json")
    with open(os.path.join(d, "bytelevel_llama3.json"), "w") as f:
        json.dump(doc, f)
    doc["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False}
    with open(os.path.join(d, "bytelevel_gpt2.json"), "w") as f:
        json.dump(doc, f)


def byte_level(b):
    """GPT-2's character for byte b."""
    printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE
    return chr(b if printable else 256 + b if b <= 0x20 else 256 + 33 + b - 0x7F if b <= 0xA0 else 256 + 67)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "bpe"))
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args()
    ref = References(args.shared)
    if args.bench:
        return bench(ref, args.shared)
    os.makedirs(args.out, exist_ok=True)
    write_fuzz_seeds()
    for name in CORPORA:
        lines = corpus_lines(os.path.join(args.shared, "corpus", name + ".txt"))
        n = write_corpus(ref, os.path.join(args.out, "llama3_corpus_%s.txt" % name), lines)
        print("%s: %d lines, %d ids" % (name, len(lines), n))
    with open(os.path.join(args.out, "llama3_hard.txt"), "w") as f:
        f.write("# name<TAB>input bytes as hex<TAB>ids (no BOS), written by tools/make_bpe_golden.py "
                "(tokenizers %s, tiktoken %s)\n" % (__import__("tokenizers").__version__, tiktoken.__version__))
        cases = hard_cases()
        for name, data in cases:
            f.write("%s\t%s\t%s\n" % (name, data.hex(), " ".join(map(str, ref.encode_bytes(data)))))
    unit = big_unit()
    repeat = -(-(1 << 20) // len(unit))
    ids = ref.encode_str((unit * repeat).decode("utf-8"))
    with open(os.path.join(args.out, "llama3_big.txt"), "w") as f:
        f.write("%d %d %016x\n%s\n" % (repeat, len(ids), fnv1a64(ids), unit.hex()))
    print("hard cases: %d; the 1 MB line: %d bytes, %d ids" % (len(cases), len(unit) * repeat, len(ids)))


if __name__ == "__main__":
    main()
