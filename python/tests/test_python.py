"""The Python package against the `transit` command and the library's own counters.

Run from the repository (pytest python/tests) with the package installed (pip install ./python) and
the command built (build/transit, or TRANSIT_BIN). The models come from the repository
(models/default) and ../shared/models (stories260K).
"""
import gc
import os
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import transit

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
DEFAULT = REPO / "models" / "default"
STORIES = SHARED / "models" / "stories260K" / "stories260K.gguf"
TRANSIT = Path(os.environ.get("TRANSIT_BIN", REPO / "build" / "transit"))
THREADS = 2


def cli(*args):
    if not TRANSIT.exists():
        pytest.skip(f"{TRANSIT} not built")
    r = subprocess.run([str(TRANSIT), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def read_ids(path):
    return [int(x) for x in Path(path).read_text().split()]


# the transition touches prompts of 400 tokens or more: its golden prompts (tests/golden/transition)
CASES = [
    (DEFAULT, None, False),
    (DEFAULT, None, True),
    (STORIES, REPO / "tests/golden/transition/stories260K.n401.ids", False),
    (STORIES, REPO / "tests/golden/transition/stories260K.n401.ids", True),
]


@pytest.mark.parametrize("model_path,ids_file,transition", CASES)
def test_eval_equals_cli_bit_for_bit(tmp_path, model_path, ids_file, transition):
    with transit.Model(str(model_path), threads=THREADS) as m:
        if ids_file is None:  # a prompt long enough for the transition, from the model's own text
            text = (REPO / "models/default/README.md").read_text()[:6000]
            ids = m.tokenize(text)[:450]
        else:
            ids = read_ids(ids_file)
        assert len(ids) >= 400
        ids_path, out = tmp_path / "ids.txt", tmp_path / "logits.npy"
        ids_path.write_text(" ".join(map(str, ids)))
        cli("eval", "-m", model_path, "--ids", ids_path, "--logits", out, "-t", THREADS,
            *(["--transition"] if transition else []))
        want = np.load(out)
        with transit.Context(m, n_ctx=len(ids), transition=transition) as c:
            got = c.eval(ids)
            assert got.dtype == np.float32 and got.shape == (len(ids), m.n_vocab)
            assert np.array_equal(got, want), f"max diff {np.abs(got - want).max()}"
            if transition:  # and the transition did something: plain attention differs
                with transit.Context(m, n_ctx=len(ids)) as plain:
                    assert not np.array_equal(plain.eval(ids), want)


@pytest.mark.parametrize("seed,temp", [(7, None), (123, 1.0), (0, 0.0)])
def test_generate_equals_cli(seed, temp):
    args = ["run", "-m", DEFAULT, "-p", "First Citizen:", "-n", 32, "-t", THREADS, "--seed", seed]
    if temp is not None:
        args += ["--temp", temp]
    want = cli(*args)
    assert want.endswith("\n")
    want = want[:-1]  # the command ends its output with one newline of its own
    with transit.Model(str(DEFAULT), threads=THREADS) as m, transit.Context(m) as c:
        got = c.generate("First Citizen:", max_tokens=32, seed=seed, temperature=temp)
        assert got == want
        pieces = list(c.generate("First Citizen:", max_tokens=32, seed=seed, temperature=temp, stream=True))
        assert len(pieces) > 1 and "".join(pieces) == want


def test_tokenize_roundtrip_and_info():
    with transit.Model(str(STORIES)) as m:
        ids = m.tokenize("Once upon a time, there was a girl.")
        assert ids[0] == m.info["bos_id"]
        assert m.detokenize(ids[1:]).strip() == "Once upon a time, there was a girl."
        assert m.info["arch"] == "llama" and m.info["n_layers"] == 5 and m.n_vocab == 512


def test_variants_change_logits_and_sinks_never_run_out():
    with transit.Model(str(DEFAULT), threads=THREADS) as m:
        ids = m.tokenize((REPO / "models/default/README.md").read_text()[:6000])[:300]
        with transit.Context(m, sinks=4, window=60) as c:
            for i in range(0, len(ids), 50):  # 300 tokens through a cache that keeps 64
                last = c.eval(ids[i:i + 50], all_logits=False)
            assert c.n_past == 300 and np.isfinite(last).all()


def test_errors_carry_the_library_message(tmp_path):
    with pytest.raises(transit.TransitError, match="nosuch.gguf"):
        transit.Model(str(tmp_path / "nosuch.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(transit.TransitError, match="bad.gguf"):
        transit.Model(str(bad))
    with pytest.raises(transit.TransitError, match="unknown backend 'nosuch'"):
        transit.Model(str(STORIES), backend="nosuch")
    with transit.Model(str(STORIES)) as m:
        with pytest.raises(transit.TransitError, match="n_ctx"):
            transit.Context(m, n_ctx=-1)
        with pytest.raises(transit.TransitError, match="window"):
            transit.Context(m, sinks=4, window=2)
        with transit.Context(m, n_ctx=8) as c:
            with pytest.raises(transit.TransitError) as e:
                c.eval(list(range(20)))
            assert e.value.status < 0 and "8" in str(e.value)
            with pytest.raises(transit.TransitError, match="seed"):
                c.generate("x", seed=-1)
            with pytest.raises(transit.TransitError, match="top_p"):
                c.generate("x", top_p=2.0)
    assert transit.live_objects() == {"models": 0, "contexts": 0, "samplers": 0}


def test_parity_api():
    r = transit.parity(str(STORIES), "Once upon a time", backends=["cpu"], n_greedy=8)
    assert r["cpu"]["nmse"] < 1e-6 and r["cpu"]["greedy_agree"] == 8


def test_no_leak_over_1000_cycles():
    def cycle():
        with transit.Model(str(STORIES), threads=1) as m, transit.Context(m, n_ctx=16) as c:
            c.eval([1, 403, 407])
            c.generate([1, 403], max_tokens=2, temperature=0)

    for _ in range(20):  # warm up: allocator pools, ctypes caches
        cycle()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rss_before = rss_kb()
    for _ in range(1000):
        cycle()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert transit.live_objects() == {"models": 0, "contexts": 0, "samplers": 0}
    assert grown < 64 * 1024, f"Python memory grew by {grown} bytes over 1000 cycles"
    assert rss_kb() - rss_before < 32 * 1024, f"RSS grew from {rss_before} to {rss_kb()} kB"


def rss_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_backend_modules_in_the_package():
    """The GPU backends the wheel was built with travel in transit/transit-backends/ and are opened
    from there on demand (the same logits as the CPU's); those left out say so by name."""
    pkg = Path(transit.__file__).resolve().parent / "transit-backends"
    built = {p.name[len("libtransit-"):-len(".so")] for p in pkg.glob("libtransit-*.so")}
    ids = [1, 403, 407, 261, 378]
    with transit.Model(str(STORIES), backend="cpu", threads=THREADS) as m, transit.Context(m, n_ctx=16) as c:
        want = c.eval(ids).copy()
    for name in ("vulkan", "opencl", "cuda"):
        if name not in built:
            with pytest.raises(transit.TransitError, match=f"backend '{name}': not built: no .*libtransit-{name}.so"):
                transit.Model(str(STORIES), backend=name)
            continue
        try:
            m = transit.Model(str(STORIES), backend=name, threads=THREADS)
        except transit.TransitError as e:  # built, but no device or runtime on this machine
            assert "no device" in str(e) or "cannot load its module" in str(e) or "no OpenCL" in str(e), str(e)
            continue
        with m, transit.Context(m, n_ctx=16) as c:
            got = c.eval(ids)
        nmse = float(((got - want) ** 2).sum() / (want ** 2).sum())
        assert nmse < 1e-6, (name, nmse)
