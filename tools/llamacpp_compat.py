#!/usr/bin/env python3
"""Checks that `transit convert` writes, for LLaMA checkpoints, the GGUF file llama.cpp's own converter
writes, and that llama.cpp loads it and generates what transit generates.

For each Hugging Face LLaMA directory given, and each --type (f32, f16, and bf16 where llama.cpp's
convert_hf_to_gguf.py offers it):

  1. convert  llama.cpp's convert_hf_to_gguf.py --outtype TYPE writes ref.gguf, and
              `transit convert -m DIR -o tr.gguf --type TYPE` writes tr.gguf (both in a temp dir).
  2. tensors  with the `gguf` reader of llama.cpp's own gguf-py: the tensor names, each tensor's shape
              and ggml type, and its data (bit-exact equality expected; the max abs diff and the
              largest distance in units of the type's last place are reported otherwise).
  3. metadata every key and value, with its GGUF type: keys only in one file, values that differ; the
              tokenizer arrays (tokens, scores, token_type) element by element.
  4. generate llama.cpp's llama-simple (greedy) on tr.gguf against `transit run -m tr.gguf -p PROMPT
              -n N --temp 0`: the continuations must be the same text.
  5. tokenize llama.cpp's llama-tokenize on tr.gguf against `transit tokenize -m tr.gguf -p TEXT` for a
              few texts (skipped when llama-tokenize was not built).

Differences that are expected are listed below (ONLY_REF_OK, ONLY_TRANSIT_OK, VALUE_DIFF_OK), each with
its reason; anything else is a failure and the exit status is 1. Rows marked INFO are not checks:
they show, for comparison, llama.cpp and transit on llama.cpp's own file, and the directory's
tokenizer.json run by Hugging Face's `tokenizers` (with --python) on the same texts.

Nothing of llama.cpp is part of transit. Get its current source and build the two tools once, e.g.:

  pip download --no-binary :all: --no-deps llama-cpp-python -d dl && tar xzf dl/llama_cpp_python-*.tar.gz
  SRC=$PWD/llama_cpp_python-*/vendor/llama.cpp
  cmake -S $SRC -B llama.cpp-build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release
  cmake --build llama.cpp-build -j2 --target llama-simple llama-tokenize

and a Python with the converter's requirements (torch, transformers, sentencepiece, safetensors, numpy;
llama.cpp's gguf-py is taken from the source tree). Then:

  python3 tools/llamacpp_compat.py --llama-src $SRC --llama-build llama.cpp-build \\
      --python venv/bin/python --transit build/transit \\
      ../shared/models/stories260K/hf ../shared/models/aidreams260K/hf

--llama-src, --llama-build and --transit default to $LLAMACPP_SRC, $LLAMACPP_BUILD (else SRC/build)
and build/transit. This script itself needs numpy (it imports gguf-py from --llama-src).
"""
import argparse
import fnmatch
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TYPES = ("f32", "f16", "bf16")
PROMPT = "Once upon a time"
TEXTS = [
    "Once upon a time",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space and  two spaces",
    "Lily and Ben went to the park. They saw a big red ball!",
    "line one\nline two\n",
    "numbers 12345 and 3.14",
    "café naïve 日本",
]

# Keys llama.cpp's converter writes and transit need not (fnmatch patterns), with the reason.
ONLY_REF_OK = {
    "general.type": "provenance: llama.cpp's converter always writes 'model'; llama.cpp does not read it",
    "general.size_label": "provenance: a label ('260K') llama.cpp's converter computes from the parameter "
                          "count; llama.cpp does not read it",
    "general.basename": "provenance: from the directory name or model card",
    "general.finetune": "provenance: from the directory name or model card",
    "general.version": "provenance: from the directory name or model card",
    "general.license*": "provenance: from the model card (README.md front matter)",
    "general.tags": "provenance: from the model card",
    "general.languages": "provenance: from the model card",
    "general.datasets": "provenance: from the model card",
    "general.dataset.*": "provenance: from the model card",
    "general.base_model.*": "provenance: from the model card",
    "general.organization": "provenance: from the model card",
    "general.author": "provenance: from the model card",
    "general.url": "provenance: from the model card",
    "general.repo_url": "provenance: from the model card",
    "general.description": "provenance: from the model card",
    "general.source.*": "provenance: from the model card",
}
# Keys transit writes and llama.cpp's converter does not: pattern -> (reason, predicate(value)). Only the
# value llama.cpp assumes when the key is absent (llama-vocab.cpp, SentencePiece vocabularies) passes.
_SPM_DEFAULT = "llama.cpp writes it only when tokenizer.json's post-processor or tokenizer_config.json " \
               "says so; transit writes llama.cpp's own default for an absent key"
ONLY_TRANSIT_OK = {
    "tokenizer.ggml.add_bos_token": (_SPM_DEFAULT + " (true)", lambda v: v is True),
    "tokenizer.ggml.add_eos_token": (_SPM_DEFAULT + " (false)", lambda v: v is False),
    "tokenizer.ggml.add_sep_token": (_SPM_DEFAULT + " (false)", lambda v: v is False),
}

PLACEHOLDER_SCORE = -1000.0  # gguf-py's LlamaHfVocab.get_token_score(): the same for every token
TT_UNKNOWN, TT_CONTROL = 2, 3


def hf_vocab_path(ref):
    """llama.cpp's converter took the tokenizer.json path (LlamaHfVocab): every score is -1000.0."""
    s = ref.get("tokenizer.ggml.scores")
    return s is not None and len(s[1]) > 0 and all(x == PLACEHOLDER_SCORE for x in s[1])


def scores_ok(ref, tr, key):
    """Scores may differ only where llama.cpp wrote its placeholder (no tokenizer.model to read real
    ones from); transit writes scores from the merge ranks so that llama.cpp's SentencePiece tokenizer,
    which merges by score, reproduces the BPE merges. The tokenize check below verifies that."""
    return hf_vocab_path(ref)


def token_type_ok(ref, tr, key):
    """On the tokenizer.json path llama.cpp's converter marks every special token CONTROL, <unk>
    included; transit marks <unk> UNKNOWN, as llama.cpp's converter does from a tokenizer.model
    (SentencePiece's own types) and as llama.cpp's reference stories260K.gguf has it. Allowed: only at
    the unknown_token_id, only CONTROL vs UNKNOWN, only on that path."""
    if not hf_vocab_path(ref):
        return False
    unk = ref.get("tokenizer.ggml.unknown_token_id", (None, None))[1]
    a, b = ref[key][1], tr[key][1]
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return all(i == unk and a[i] == TT_CONTROL and b[i] == TT_UNKNOWN for i in diff)


# Keys on both sides whose values may differ: key -> (reason, predicate(ref, tr, key) or None = always).
VALUE_DIFF_OK = {
    "general.name": ("a display name: llama.cpp title-cases the directory name (or the model card's); "
                     "transit writes the directory name as is", None),
    "tokenizer.ggml.scores": ("llama.cpp's tokenizer.json path (LlamaHfVocab) writes the placeholder "
                              "-1000.0 for every token; transit derives scores from the BPE merge ranks "
                              "(checked by the tokenize rows)", scores_ok),
    "tokenizer.ggml.token_type": ("<unk>: CONTROL (llama.cpp's tokenizer.json path) vs UNKNOWN (transit, "
                                  "as SentencePiece and llama.cpp's reference GGUFs type it)", token_type_ok),
}


def allowed(table, key, value=None):
    """The reason a one-sided key is expected, or None. Entries are a reason, or (reason, predicate)."""
    for pat, rule in table.items():
        if fnmatch.fnmatchcase(key, pat):
            if isinstance(rule, tuple):
                return rule[0] if rule[1](value) else None
            return rule
    return None


# ---------------------------------------------------------------------------------------------------
class Report:
    def __init__(self):
        self.rows = []

    def add(self, model, typ, check, result, detail=""):
        self.rows.append((model, typ, check, result, detail))
        line = f"{model:<14} {typ:<5} {check:<24} {result:<8} "
        lines = str(detail).splitlines() or [""]
        print(line + lines[0], flush=True)
        for more in lines[1:]:
            print(" " * len(line) + more, flush=True)

    def failed(self):
        return [r for r in self.rows if r[3] == "FAIL"]


def run(cmd, env=None, stdin=None, timeout=900):
    p = subprocess.run(cmd, input=stdin, env=env, capture_output=True, timeout=timeout,
                       text=False)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def rc_text(rc):
    if rc < 0:
        try:
            import signal
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        hint = " (SIGILL: on CPUs that report AMX but trap it, rebuild llama.cpp with " \
               "-DCMAKE_C_FLAGS/-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16')" \
            if name == "SIGILL" else ""
        return f"killed by {name}{hint}"
    return f"exit status {rc}"


def tail(s, n=6):
    return "\n".join(s.strip().splitlines()[-n:])


def short(v, n=60):
    s = repr(v)
    return s if len(s) <= n else s[:n - 3] + "..."


# ---------------------------------------------------------------------------------------------------
def read_fields(gguf, path):
    """{key: (type signature, value)} without the GGUF.* header pseudo-fields."""
    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        sig = "/".join(t.name for t in f.types)
        out[k] = (sig, f.contents())
    return r, out


def same_value(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def compare_metadata(rep, model, typ, ref, tr):
    ok = True
    for k in sorted(set(ref) - set(tr)):
        reason = allowed(ONLY_REF_OK, k, ref[k][1])
        rep.add(model, typ, f"key only in llama.cpp", "EXPECTED" if reason else "FAIL",
                f"{k} [{ref[k][0]}] = {short(ref[k][1])}" + (f"\n  ({reason})" if reason else ""))
        ok &= bool(reason)
    for k in sorted(set(tr) - set(ref)):
        reason = allowed(ONLY_TRANSIT_OK, k, tr[k][1])
        rep.add(model, typ, f"key only in transit", "EXPECTED" if reason else "FAIL",
                f"{k} [{tr[k][0]}] = {short(tr[k][1])}" + (f"\n  ({reason})" if reason else ""))
        ok &= bool(reason)
    n_same = 0
    for k in sorted(set(ref) & set(tr)):
        (sa, va), (sb, vb) = ref[k], tr[k]
        if sa != sb:
            rep.add(model, typ, "key type differs", "FAIL", f"{k}: llama.cpp {sa}, transit {sb}")
            ok = False
            continue
        if isinstance(va, list):
            if len(va) == len(vb) and all(same_value(x, y) for x, y in zip(va, vb)):
                n_same += 1
                continue
            idx = [i for i in range(min(len(va), len(vb))) if not same_value(va[i], vb[i])]
            detail = f"{k} [{sa}]: {len(idx)} of {len(va)} entries differ"
            if len(va) != len(vb):
                detail += f"; lengths {len(va)} vs {len(vb)}"
            show = idx if len(idx) <= 6 else idx[:3] + [idx[len(idx) * k // 4] for k in (1, 2, 3)]
            for i in sorted(set(show)):
                detail += f"\n  [{i}] llama.cpp {short(va[i], 30)}  transit {short(vb[i], 30)}"
            if len(idx) > 6:
                detail += f"\n  ... ({len(idx) - len(set(show))} more)"
        else:
            if same_value(va, vb):
                n_same += 1
                continue
            detail = f"{k} [{sa}]: llama.cpp {short(va)}, transit {short(vb)}"
        rule = VALUE_DIFF_OK.get(k)
        good = rule is not None and (rule[1] is None or rule[1](ref, tr, k))
        if good:
            detail += f"\n  ({rule[0]})"
        rep.add(model, typ, "value differs", "EXPECTED" if good else "FAIL", detail)
        ok &= good
    rep.add(model, typ, "metadata", "OK" if ok else "FAIL",
            f"{len(ref)} keys in llama.cpp's file, {len(tr)} in transit's; {n_same} identical")
    return ok


def tensor_values(t):
    """(float64 values, unsigned-int bit patterns) of an unquantized tensor, in file order."""
    name = t.tensor_type.name
    raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
    if name == "F32":
        bits = raw.view(np.uint32)
        return bits.view(np.float32).astype(np.float64), bits
    if name == "F16":
        bits = raw.view(np.uint16)
        return bits.view(np.float16).astype(np.float64), bits
    if name == "BF16":
        bits = raw.view(np.uint16)
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64), bits
    raise ValueError(f"type {name} is not compared")


def ordered(bits):
    """Bit patterns mapped to integers that are ordered like the floats (for distances in ulps)."""
    nbits = bits.dtype.itemsize * 8
    b = bits.astype(np.int64)
    sign = np.int64(1) << (nbits - 1)
    return np.where(b & sign, sign - b, b + 0)  # negative: mirrored below zero


def compare_tensors(rep, model, typ, rref, rtr):
    ok = True
    tref = {t.name: t for t in rref.tensors}
    ttr = {t.name: t for t in rtr.tensors}
    for n in sorted(set(tref) - set(ttr)):
        rep.add(model, typ, "tensor only in llama.cpp", "FAIL", n)
        ok = False
    for n in sorted(set(ttr) - set(tref)):
        rep.add(model, typ, "tensor only in transit", "FAIL", n)
        ok = False
    n_exact = 0
    types = {}
    for n in sorted(set(tref) & set(ttr)):
        a, b = tref[n], ttr[n]
        sa, sb = [int(x) for x in a.shape], [int(x) for x in b.shape]
        types.setdefault(a.tensor_type.name, 0)
        types[a.tensor_type.name] += 1
        if a.tensor_type != b.tensor_type or sa != sb:
            rep.add(model, typ, "tensor type/shape", "FAIL",
                    f"{n}: llama.cpp {a.tensor_type.name} {sa}, transit {b.tensor_type.name} {sb}")
            ok = False
            continue
        va, ba = tensor_values(a)
        vb, bb = tensor_values(b)
        if np.array_equal(ba, bb):
            n_exact += 1
            continue
        diff = np.abs(va - vb)
        ulps = int(np.max(np.abs(ordered(ba) - ordered(bb))))
        nd = int(np.count_nonzero(ba != bb))
        rep.add(model, typ, "tensor data", "FAIL",
                f"{n} ({a.tensor_type.name}): {nd} of {ba.size} elements differ, max abs diff "
                f"{float(np.nanmax(diff)):.3g}, max {ulps} ulp")
        ok = False
    nboth = len(set(tref) & set(ttr))
    rep.add(model, typ, "tensors", "OK" if ok else "FAIL",
            f"{len(tref)} in llama.cpp's file, {len(ttr)} in transit's; {n_exact}/{nboth} bit-identical; "
            f"types {', '.join(f'{k}x{v}' for k, v in sorted(types.items()))}")
    return ok


# ---------------------------------------------------------------------------------------------------
def llama_simple(bin_simple, gguf_path, prompt, n):
    """The greedy continuation llama-simple prints after echoing the prompt's pieces."""
    rc, out, err = run([bin_simple, "-m", gguf_path, "-n", str(n), "-ngl", "0", prompt])
    if rc != 0:
        return None, f"llama-simple: {rc_text(rc)}\n{tail(err)}"
    if out.endswith("\n"):
        out = out[:-1]
    i = out.find(prompt)
    if i < 0:
        return None, f"llama-simple: the prompt is not in its output: {short(out, 120)}"
    return out[i + len(prompt):], None


def transit_run(transit, gguf_path, prompt, n):
    rc, out, err = run([transit, "run", "-m", gguf_path, "-p", prompt, "-n", str(n), "--temp", "0"])
    if rc != 0:
        return None, f"transit run: {rc_text(rc)}\n{tail(err)}"
    return (out[:-1] if out.endswith("\n") else out), None


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare_generation(rep, model, typ, args, bins, gguf_path, label, info=False):
    lt, e1 = llama_simple(bins["simple"], gguf_path, args.prompt, args.n_predict)
    tt, e2 = transit_run(args.transit, gguf_path, args.prompt, args.n_predict)
    check = f"generate ({label})"
    bad = "INFO" if info else "FAIL"
    if e1 or e2:
        rep.add(model, typ, check, bad, "\n".join(e for e in (e1, e2) if e))
        return info
    if lt == tt:
        rep.add(model, typ, check, "INFO" if info else "OK",
                f"same {len(tt)} chars: {short(args.prompt + tt, 100)}")
        return True
    i = first_diff(lt, tt)
    rep.add(model, typ, check, bad,
            f"differ at char {i}\n  llama.cpp: {short(lt, 100)}\n  transit:   {short(tt, 100)}")
    return info


def llama_tokenize(bin_tok, gguf_path, text):
    rc, out, err = run([bin_tok, "-m", gguf_path, "--stdin", "--no-escape", "--ids", "--log-disable"],
                       stdin=text.encode("utf-8"))
    if rc != 0:
        return None, f"llama-tokenize: {rc_text(rc)}\n{tail(err)}"
    m = re.search(r"\[([0-9, ]*)\]\s*$", out)
    if not m:
        return None, f"llama-tokenize: unexpected output {short(out)}"
    return [int(x) for x in m.group(1).replace(",", " ").split()], None


def transit_tokenize(transit, gguf_path, text):
    rc, out, err = run([transit, "tokenize", "-m", gguf_path, "-p", text])
    if rc != 0:
        return None, f"transit tokenize: {rc_text(rc)}\n{tail(err)}"
    return [int(x) for x in out.split()], None


def hf_tokenize(python, hf_dir, texts):
    """The directory's tokenizer.json run by Hugging Face's `tokenizers` library, for the INFO rows.
    (Not transformers' AutoTokenizer: transformers 5's LlamaTokenizer rebuilds its own Metaspace
    pre-tokenizer instead of the file's normalizer, and tokenizes a leading space differently.)"""
    import json
    if not (Path(hf_dir) / "tokenizer.json").is_file():
        return None
    code = ("import json,sys\nfrom tokenizers import Tokenizer\n"
            "t=Tokenizer.from_file(sys.argv[1])\n"
            "print(json.dumps([t.encode(x).ids for x in json.load(sys.stdin)]))\n")
    rc, out, err = run([python, "-c", code, str(Path(hf_dir) / "tokenizer.json")], stdin=json.dumps(texts).encode())
    if rc != 0:
        return None
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def compare_tokenize(rep, model, typ, args, bins, gguf_path, ref_path, hf_ids):
    ok = True
    mism, errors, ref_mism, hf_mism = [], [], [], []
    for j, text in enumerate(TEXTS):
        a, e1 = llama_tokenize(bins["tokenize"], gguf_path, text)
        b, e2 = transit_tokenize(args.transit, gguf_path, text)
        if e1 or e2:
            errors.append(e1 or e2)
            continue
        if a != b:
            mism.append(f"{text!r}\n    llama.cpp {a}\n    transit   {b}")
        if hf_ids is not None and hf_ids[j] != b:
            hf_mism.append(f"{text!r}: HF {hf_ids[j]}, transit {b}")
        c, e3 = llama_tokenize(bins["tokenize"], ref_path, text)
        if c is not None and c != b:
            ref_mism.append(f"{text!r}\n    llama.cpp on its own file {c}\n    transit on its file       {b}")
    if errors:
        rep.add(model, typ, "tokenize", "FAIL", "\n".join(errors[:3]))
        return False
    n = len(TEXTS)
    rep.add(model, typ, "tokenize (transit file)", "OK" if not mism else "FAIL",
            f"llama-tokenize = transit tokenize on {n - len(mism)}/{n} texts" +
            "".join("\n  " + m for m in mism))
    ok = not mism
    if hf_ids is not None:
        rep.add(model, typ, "tokenize vs HF", "INFO",
                f"transit = tokenizer.json (HF tokenizers) on {n - len(hf_mism)}/{n} texts" +
                "".join("\n  " + m for m in hf_mism))
    rep.add(model, typ, "tokenize (llama's file)", "INFO",
            f"llama.cpp on its own converter's file = transit on {n - len(ref_mism)}/{n} texts" +
            "".join("\n  " + m for m in ref_mism))
    return ok


# ---------------------------------------------------------------------------------------------------
def converter_types(python, convert, env):
    rc, out, err = run([python, str(convert), "--help"], env=env)
    m = re.search(r"--outtype \{([^}]*)\}", out)
    return set(m.group(1).split(",")) if m else {"f32", "f16"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("models", nargs="+", help="Hugging Face LLaMA directories")
    ap.add_argument("--llama-src", default=os.environ.get("LLAMACPP_SRC"),
                    help="llama.cpp source tree (convert_hf_to_gguf.py, gguf-py/); default $LLAMACPP_SRC")
    ap.add_argument("--llama-build", default=os.environ.get("LLAMACPP_BUILD"),
                    help="llama.cpp build dir with bin/llama-simple [bin/llama-tokenize]; "
                         "default $LLAMACPP_BUILD, else LLAMA_SRC/build")
    ap.add_argument("--transit", default=str(Path(__file__).resolve().parent.parent / "build" / "transit"),
                    help="the transit binary (default: build/transit)")
    ap.add_argument("--python", default=sys.executable,
                    help="Python that runs llama.cpp's converter (torch, transformers, sentencepiece)")
    ap.add_argument("--types", default=",".join(TYPES), help="comma-separated subset of f32,f16,bf16")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("-n", "--n-predict", type=int, default=32)
    ap.add_argument("--keep", metavar="DIR", help="write the converted files to DIR and keep them")
    args = ap.parse_args()

    if not args.llama_src:
        ap.error("give --llama-src (or set LLAMACPP_SRC) to llama.cpp's source tree")
    src = Path(args.llama_src).resolve()
    convert = src / "convert_hf_to_gguf.py"
    if not convert.is_file() or not (src / "gguf-py" / "gguf").is_dir():
        ap.error(f"{src}: no convert_hf_to_gguf.py and gguf-py/ there")
    build = Path(args.llama_build).resolve() if args.llama_build else src / "build"
    bins = {"simple": build / "bin" / "llama-simple", "tokenize": build / "bin" / "llama-tokenize"}
    if not bins["simple"].is_file():
        ap.error(f"{bins['simple']} not found: build llama.cpp's llama-simple target (see --help)")
    bins = {k: str(v) for k, v in bins.items() if v.is_file()}
    if not Path(args.transit).is_file():
        ap.error(f"{args.transit}: no transit binary (give --transit)")
    sys.path.insert(0, str(src / "gguf-py"))
    import gguf  # llama.cpp's own, the version its converter writes with

    env = dict(os.environ)
    env["PYTHONPATH"] = str(src / "gguf-py") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    offered = converter_types(args.python, convert, env)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    for t in types:
        if t not in TYPES:
            ap.error(f"--types: '{t}' is not one of {', '.join(TYPES)}")

    rep = Report()
    print(f"llama.cpp: {src}\n  build {build}; converter --outtype offers {', '.join(sorted(offered))}")
    print(f"transit:   {args.transit}\n")
    print(f"{'model':<14} {'type':<5} {'check':<24} {'result':<8} detail")
    print("-" * 100)
    tmp = tempfile.TemporaryDirectory(prefix="llamacpp_compat.")
    outdir = Path(args.keep) if args.keep else Path(tmp.name)
    outdir.mkdir(parents=True, exist_ok=True)
    for hf in args.models:
        hfp = Path(hf).resolve()
        model = hfp.name if hfp.name != "hf" else hfp.parent.name
        hf_ids = hf_tokenize(args.python, str(hfp), TEXTS)
        for typ in types:
            if typ not in offered:
                rep.add(model, typ, "convert", "SKIP", "llama.cpp's converter has no --outtype " + typ)
                continue
            ref = outdir / f"{model}.llamacpp.{typ}.gguf"
            tr = outdir / f"{model}.transit.{typ}.gguf"
            rc, out, err = run([args.python, str(convert), str(hfp), "--outtype", typ, "--outfile", str(ref)],
                               env=env)
            if rc != 0:
                rep.add(model, typ, "convert (llama.cpp)", "FAIL", f"{rc_text(rc)}\n{tail(err)}")
                continue
            rc, out, err = run([args.transit, "convert", "-m", str(hfp), "-o", str(tr), "--type", typ])
            if rc != 0:
                rep.add(model, typ, "convert (transit)", "FAIL", f"{rc_text(rc)}\n{tail(err)}")
                continue
            rref, fref = read_fields(gguf, str(ref))
            rtr, ftr = read_fields(gguf, str(tr))
            compare_tensors(rep, model, typ, rref, rtr)
            compare_metadata(rep, model, typ, fref, ftr)
            compare_generation(rep, model, typ, args, bins, str(tr), "transit file")
            compare_generation(rep, model, typ, args, bins, str(ref), "llama's file", info=True)
            if "tokenize" in bins:
                compare_tokenize(rep, model, typ, args, bins, str(tr), str(ref), hf_ids)
            else:
                rep.add(model, typ, "tokenize", "SKIP", "llama-tokenize not built")
    print("-" * 100)
    bad = rep.failed()
    counts = {}
    for r in rep.rows:
        counts[r[3]] = counts.get(r[3], 0) + 1
    print("summary: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if args.keep:
        print(f"converted files kept in {outdir}")
    if bad:
        print(f"FAILED: {len(bad)} unexpected difference(s)")
        return 1
    print("all checks passed (differences above marked EXPECTED are listed in this script with their reason)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
