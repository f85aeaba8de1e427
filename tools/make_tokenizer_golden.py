#!/usr/bin/env python3
"""make_tokenizer_golden.py: writes the tokenizer golden data under tests/golden/tokenizer/ and the seed
corpora of the tokenizer fuzzers, using the reference libraries (pip: sentencepiece, tokenizers).

What it writes (all text; tests/test_tokenizer.c reads it):
  llama2_corpus_<name>.txt   for every line of shared/corpus/<name>.txt (split on b"\\n", the empty
                             piece after the final newline dropped): "<count> <fnv64>", the number of
                             ids sentencepiece gives for the line (no BOS) and the 64-bit FNV-1a hash of
                             those ids, each as 4 little-endian bytes; an empty line is just "0".
  llama2_hard.txt            hard cases with full ids: "<name>\\t<input as hex>\\t<ids>" (hex keeps
                             malformed UTF-8 intact).
  stories260K_hf.txt,        the same format, from the `tokenizers` package on the two tokenizer.json
  aidreams260K_hf.txt        files (encode_special_tokens=True, no BOS): valid-UTF-8 hard cases plus a
                             sample of corpus lines.
  stories260K_metaspace_hf.txt  the same for stories260K's vocabulary with a Metaspace pre-tokenizer
                             in place of its normalizer (transformers' legacy=false conversion).
  spm_<variant>.model +      small hand-built SentencePiece BPE models exercising what LLaMA's model
  spm_<variant>.txt          does not: UNUSED pieces (merged, then split again), USER_DEFINED pieces,
                             no byte fallback (runs of <unk>), other normalizer flags.
and the fuzz seeds tests/fuzz/corpus/fuzz_spm/* and tests/fuzz/corpus/fuzz_tokenizer_json/*.

Usage: tools/make_tokenizer_golden.py [--shared DIR] [--out DIR]
       tools/make_tokenizer_golden.py --show CORPUS LINE   (reference ids and pieces of one corpus line,
                                                            1-based, for debugging a test failure)
"""
import argparse
import io
import json
import os
import random
import struct
import sys

import sentencepiece as spm
from tokenizers import Tokenizer

from golden_util import corpus_lines, fnv1a64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = ["tinyshakespeare", "wikitext-2-test"]
HF_MODELS = ["stories260K", "aidreams260K"]
# transformers' non-legacy LLaMA conversion: no normalizer, this pre-tokenizer (tests/test_tokenizer.c
# builds the same variant of stories260K's tokenizer.json)
METASPACE = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}




def hard_cases():
    """(name, bytes) pairs: whitespace, scripts, emoji, malformed UTF-8, control bytes, long words."""
    text = [
        ("empty", ""), ("space", " "), ("two_spaces", "  "), ("five_spaces", "     "),
        ("space_runs", "a  b   c    d"), ("leading_space", " hello"), ("leading_spaces", "   hello"),
        ("trailing_space", "hello "), ("trailing_spaces", "hello   "), ("both_spaces", "  hi  "),
        ("newline", "\n"), ("newlines", "a\n\nb\n"), ("tab", "\t"), ("tabs_mixed", "a\tb \t c"),
        ("crlf", "line\r\nnext"), ("words", "Hello world"), ("once", "Once upon a time"),
        ("punct", "Hello, world! How's it going? (Fine.) -- \"quotes\" 'single' ..."),
        ("digits", "3.14159 2024-01-01 1,000,000 0x1F"), ("composed", "caf\u00e9 na\u00efve r\u00e9sum\u00e9"),
        ("decomposed", "cafe\u0301 nai\u0308ve"), ("angstrom", "\u00c5ngstr\u00f6m \u212b \u00df"),
        ("cjk", "\u4e2d\u6587\u5b57\u7b26 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8"),
        ("hangul", "\ud55c\uad6d\uc5b4"), ("cyrillic", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440"),
        ("arabic", "\u0645\u0631\u062d\u0628\u0627"), ("hebrew", "\u05e9\u05dc\u05d5\u05dd"),
        ("devanagari", "\u0939\u093f\u0928\u094d\u0926\u0940"), ("thai", "\u0e44\u0e17\u0e22"),
        ("emoji", "\U0001F600"), ("emoji_text", "I \u2764\ufe0f you \U0001F44D\U0001F3FD"),
        ("zwj_family", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"),
        ("flag", "\U0001F1EB\U0001F1F7"), ("zalgo", "Z\u0324\u0354\u0367\u0311\u0313"),
        ("nbsp_zwsp", "a\u00a0b\u200bc"), ("bom", "\ufeffhello"), ("replacement_char", "a\ufffdb"),
        ("u2581", "\u2581x \u2581\u2581y"), ("literal_bos", "<s>"), ("literal_specials", "hello <s> world </s> <unk>"),
        ("literal_byte_piece", "<0x41> <0x0A>"), ("control_chars", "\x00\x01\x02\x1f\x7f"),
        ("escape_seq", "\x1b[31mred\x1b[0m"), ("code", "def f(x):\n    return x**2  # square\n"),
        ("long_a", "a" * 1000), ("long_word", "supercalifragilisticexpialidocious" * 20),
        ("long_digits", "1234567890" * 50), ("long_spaces", " " * 300), ("private_use", "\ue000\U000F0000"),
        ("max_codepoint", "\U0010FFFF"), ("mixed", "The \u4e2d café 😀 ok\tend"),
    ]
    cases = [(name, s.encode("utf-8")) for name, s in text]
    cases += [
        ("lone_continuation", b"\x80"), ("cont_in_word", b"a\x80b"), ("byte_ff", b"\xff"), ("fe_ff", b"\xfe\xff"),
        ("truncated_2", b"\xc3"), ("truncated_3", b"\xe4\xb8"), ("truncated_4", b"\xf0\x9f\x98"),
        ("truncated_mid", b"ab\xe4\xb8cd"), ("overlong_slash", b"\xc0\xaf"), ("overlong_3", b"\xe0\x80\xaf"),
        ("overlong_4", b"\xf0\x80\x80\xaf"), ("surrogate", b"\xed\xa0\x80"), ("above_max", b"\xf4\x90\x80\x80"),
        ("five_byte", b"\xf8\x88\x80\x80\x80"), ("invalid_mix", b"abc\xff def \xc3\xa9\xc3 \x80\x80x"),
        ("latin1", "caf\u00e9 na\u00efve".encode("latin-1")), ("invalid_then_space", b"\xff \xfe  "),
    ]
    return cases


def hex_of(b):
    return b.hex()


def write_cases(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for name, data, ids in rows:
            f.write("%s\t%s\t%s\n" % (name, hex_of(data), " ".join(map(str, ids))))


# ---- a minimal protobuf writer, for hand-built SentencePiece models --------------------------------

def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    return varint((num << 3) | 2) + varint(len(b)) + b


def field_float(num, x):
    return varint((num << 3) | 5) + struct.pack("<f", x)


NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def spm_model(pieces, byte_fallback=True, model_type=2, add_dummy_prefix=True, remove_extra=False,
              escape=True, extra_trainer=b""):
    """pieces: (text, score, type). Byte pieces are added after the control pieces if byte_fallback."""
    out = bytearray()
    specials = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
    bytes_ = [("<0x%02X>" % b, 0.0, BYTE) for b in range(256)] if byte_fallback else []
    for text, score, typ in specials + bytes_ + pieces:
        body = field_bytes(1, text.encode("utf-8")) + field_float(2, score)
        if typ != NORMAL:
            body += field_varint(3, typ)
        out += field_bytes(1, body)
    trainer = field_varint(3, model_type) + field_varint(35, int(byte_fallback)) + field_varint(40, 0)
    trainer += field_varint(41, 1) + field_varint(42, 2) + field_varint(43, -1) + extra_trainer
    out += field_bytes(2, trainer)
    norm = field_bytes(1, b"identity") + field_varint(3, int(add_dummy_prefix))
    norm += field_varint(4, int(remove_extra)) + field_varint(5, int(escape))
    out += field_bytes(3, norm)
    return bytes(out)


def handmade_models():
    """Small models for the rules LLaMA's model never reaches. Scores decide merge order."""
    sp = "\u2581"
    common = [
        (sp, -1.0, NORMAL), ("a", -2.0, NORMAL), ("b", -2.0, NORMAL), ("c", -2.0, NORMAL), ("d", -2.0, NORMAL),
        ("e", -2.0, NORMAL), ("x", -3.0, NORMAL), (sp + "a", 1.0, NORMAL), ("ab", 5.0, UNUSED),
        ("abc", 4.0, NORMAL), ("bc", 3.0, NORMAL), ("cd", 2.5, NORMAL), (sp + "ab", 6.0, UNUSED),
        (sp + "abc", 3.5, NORMAL), ("de", 2.0, NORMAL), ("ee", 2.0, NORMAL), ("eee", 2.2, NORMAL),
        (sp + sp, 0.5, NORMAL), ("<sep>", 0.0, USER_DEFINED), ("xx", 0.0, USER_DEFINED), ("dd", 1.0, NORMAL),
        ("cc", 1.0, UNUSED), ("ccc", 4.5, NORMAL), ("\u00e9", -2.0, NORMAL), (sp + "\u00e9", 0.7, NORMAL),
    ]
    return {
        "unused_bytes": spm_model(common, byte_fallback=True),
        "no_byte_fallback": spm_model(common, byte_fallback=False),
        "squeeze_spaces": spm_model(common, byte_fallback=True, remove_extra=True),
        "no_prefix_no_escape": spm_model([(t.replace(sp, " "), s, k) for t, s, k in common], byte_fallback=False,
                                         add_dummy_prefix=False, escape=False),
    }


def random_texts(rng, n):
    alphabet = ["a", "b", "c", "d", "e", "x", " ", " ", "\u00e9", "<sep>", "xx", "z", "\u4e2d", "\xff", "\n"]
    out = [b"", b" ", b"  ", b"abc", b" abc", b"abcabc", b"cccc", b"a<sep>b", b"xxx", b"zz zz", b"  a  b  "]
    while len(out) < n:
        parts = [rng.choice(alphabet) for _ in range(rng.randint(1, 14))]
        out.append("".join(parts).encode("utf-8").replace("\xff".encode("utf-8"), b"\xff"))
    return out


# ---- fuzz seeds --------------------------------------------------------------------------------------

def trained_model(text_lines, **kw):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text_lines), model_writer=buf, minloglevel=2, **kw)
    return buf.getvalue()


def tiny_hf_json(byte_fallback=True, merges_as_pairs=False, metaspace=False):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    if byte_fallback:
        for b in range(256):
            vocab["<0x%02X>" % b] = len(vocab)
    for p in ["\u2581", "a", "b", "c", "t", "h", "e", "\u2581t", "he", "\u2581the", "ab", "\u2581a", "\u2581th"]:
        vocab[p] = len(vocab)
    merges = [("\u2581", "t"), ("h", "e"), ("\u2581t", "he"), ("a", "b"), ("\u2581", "a"), ("\u2581t", "h")]
    return json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": i, "content": c, "special": True, "normalized": False}
                         for i, c in enumerate(["<unk>", "<s>", "</s>"])],
        "normalizer": None if metaspace else {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": METASPACE if metaspace else None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True,
                  "byte_fallback": byte_fallback, "vocab": vocab,
                  "merges": [list(m) for m in merges] if merges_as_pairs else [" ".join(m) for m in merges]},
    }, ensure_ascii=False).encode("utf-8")


def write_fuzz_seeds(shared):
    spm_dir = os.path.join(ROOT, "tests/fuzz/corpus/fuzz_spm")
    json_dir = os.path.join(ROOT, "tests/fuzz/corpus/fuzz_tokenizer_json")
    os.makedirs(spm_dir, exist_ok=True)
    os.makedirs(json_dir, exist_ok=True)
    lines = [l.decode() for l in corpus_lines(os.path.join(shared, "corpus/tinyshakespeare.txt"))[:3000] if l]
    seeds = {
        "trained_bpe_no_fallback": trained_model(lines, model_type="bpe", vocab_size=90, character_coverage=1.0,
                                                 normalization_rule_name="identity"),
        "trained_unigram": trained_model(lines[:400], model_type="unigram", vocab_size=60,
                                         normalization_rule_name="identity"),
        "hand_unused_bytes": handmade_models()["unused_bytes"],
        "hand_no_prefix": handmade_models()["no_prefix_no_escape"],
    }
    for name, data in seeds.items():
        with open(os.path.join(spm_dir, name), "wb") as f:
            f.write(data)
    jseeds = {
        "tiny_bytes.json": tiny_hf_json(True),
        "tiny_pairs_no_bytes.json": tiny_hf_json(False, merges_as_pairs=True),
        "tiny_metaspace.json": tiny_hf_json(False, metaspace=True),
        "not_bpe.json": b'{"model": {"type": "WordPiece", "vocab": {"a": 0}}}',
        "broken.json": b'{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": ["a b"]',
    }
    for name, data in jseeds.items():
        with open(os.path.join(json_dir, name), "wb") as f:
            f.write(data)


# ---- main --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/golden/tokenizer"))
    ap.add_argument("--show", nargs=2, metavar=("CORPUS", "LINE"))
    args = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.shared, "models/llama2-tokenizer/tokenizer.model"))

    if args.show:
        line = corpus_lines(os.path.join(args.shared, "corpus", args.show[0] + ".txt"))[int(args.show[1]) - 1]
        ids = sp.encode(line)
        print(repr(line))
        print(len(ids), "%016x" % fnv1a64(ids), ids)
        print([sp.id_to_piece(i) for i in ids])
        return

    os.makedirs(args.out, exist_ok=True)
    for name in CORPORA:
        with open(os.path.join(args.out, "llama2_corpus_%s.txt" % name), "w") as f:
            for line in corpus_lines(os.path.join(args.shared, "corpus", name + ".txt")):
                ids = sp.encode(line)
                f.write("%d %016x\n" % (len(ids), fnv1a64(ids)) if ids else "0\n")

    hard = hard_cases()
    header = ("# name<TAB>input bytes as hex<TAB>ids (no BOS), written by tools/make_tokenizer_golden.py "
              "with sentencepiece %s\n" % spm.__version__)
    write_cases(os.path.join(args.out, "llama2_hard.txt"), header, [(n, b, sp.encode(b)) for n, b in hard])

    sample = []
    for name, step in (("tinyshakespeare", 200), ("wikitext-2-test", 500)):
        lines = corpus_lines(os.path.join(args.shared, "corpus", name + ".txt"))
        sample += [("%s:%d" % (name, i + 1), lines[i]) for i in range(0, len(lines), step)]
    variants = [(m, os.path.join(args.shared, "models", m, "hf/tokenizer.json"), None) for m in HF_MODELS]
    variants.append(("stories260K_metaspace", variants[0][1], METASPACE))
    for model, path, pre_tokenizer in variants:
        if pre_tokenizer is None:
            tok = Tokenizer.from_file(path)
        else:  # the same vocabulary with transformers' legacy=false text rules
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            j["normalizer"] = None
            j["pre_tokenizer"] = pre_tokenizer
            tok = Tokenizer.from_str(json.dumps(j))
        tok.encode_special_tokens = True  # "<s>" in text is text, as in SentencePiece
        rows = []
        for n, b in hard + sample:
            try:
                s = b.decode("utf-8")
            except UnicodeDecodeError:
                continue  # `tokenizers` takes only valid text
            rows.append((n, b, tok.encode(s, add_special_tokens=False).ids))
        header = ("# name<TAB>input bytes as hex<TAB>ids (no BOS), written by tools/make_tokenizer_golden.py "
                  "with tokenizers %s (encode_special_tokens=True)\n" % __import__("tokenizers").__version__)
        write_cases(os.path.join(args.out, "%s_hf.txt" % model), header, rows)

    rng = random.Random(1234)
    texts = [(n, b) for n, b in hard if len(b) < 200]
    texts += [("random%d" % i, t) for i, t in enumerate(random_texts(rng, 150))]
    for variant, proto in handmade_models().items():
        with open(os.path.join(args.out, "spm_%s.model" % variant), "wb") as f:
            f.write(proto)
        ref = spm.SentencePieceProcessor(model_proto=proto)
        header = "# name<TAB>input hex<TAB>ids: hand-built model spm_%s.model, sentencepiece %s\n" % (
            variant, spm.__version__)
        write_cases(os.path.join(args.out, "spm_%s.txt" % variant), header, [(n, b, ref.encode(b)) for n, b in texts])

    write_fuzz_seeds(args.shared)


if __name__ == "__main__":
    sys.exit(main())
