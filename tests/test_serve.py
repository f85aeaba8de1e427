#!/usr/bin/env python3
"""test_serve.py: `transit serve` through the official `openai` client (PyPI) on the default model.

What a user of the OpenAI API relies on: completions and chat, streamed and not, give with
temperature 0 the text `transit run --temp 0` (and `run --chat`) gives; a seeded request gives the
same text alone and beside seven others; usage and finish_reason in every answer; errors are
OpenAI-style JSON with the right status (401 without the key, 400 naming the bad field, 413 for a
large body, 503 with Retry-After past the queue); a client that leaves mid-stream frees its
sequence; SIGTERM ends the server with status 0. Then a short version of the robustness run
(tools/serve_load.py --chaos): 16 clients mixing good, malformed, oversized and disconnecting
requests; the server stays up, every good request is answered correctly, and its memory comes back.

usage: test_serve.py TRANSIT_BINARY   (exit 77 = skipped: the openai package is not installed)
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

try:
    import openai
except ImportError:
    print("test_serve: SKIPPED: the openai package is not installed (pip install openai)")
    sys.exit(77)

import serve_load  # noqa: E402  (tools/serve_load.py: the load generator)

TRANSIT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "transit")
KEY = "test-key-1234"
failures = []
passed = 0
servers = []  # killed at the end whatever happens


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([TRANSIT, "serve", "--port", "0", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        servers.append(self)
        line = self.proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError("the server did not start: " + line + self.proc.stderr.read())
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.err = []
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def run_cli(*args):
    out = subprocess.run([TRANSIT, "run", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout  # run ends with a newline


def raw(url, body=None, headers=None, method=None):
    """status, headers, parsed JSON (or text) of one request, without the client's checks"""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, text = r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, dict(e.headers), e.read().decode()
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


def main():
    srv = Server("--parallel", "8", "--chat-template", "llama2", "--api-key", KEY, "-c", "256",
                 "--max-body", "65536")
    auth = {"Authorization": "Bearer " + KEY}
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
    model = "default"

    # completions, plain and streamed, against `transit run --temp 0`
    prompt = "First Citizen:"
    want = run_cli("-p", prompt, "-n", "32", "--temp", "0")
    r = client.completions.create(model=model, prompt=prompt, max_tokens=32, temperature=0)
    check(r.choices[0].text == want, f"completion at temperature 0 differs from run:\n{r.choices[0].text!r}\n{want!r}")
    check(r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 32 and
          r.usage.total_tokens == r.usage.prompt_tokens + 32, f"usage {r.usage}")
    check(r.choices[0].finish_reason == "length", f"finish_reason {r.choices[0].finish_reason}")
    parts, last = [], None
    for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=32, temperature=0, stream=True):
        parts.append(chunk.choices[0].text)
        last = chunk
    check("".join(parts) == want, "streamed completion differs from run")
    check(last.choices[0].finish_reason == "length" and last.usage and last.usage.completion_tokens == 32,
          f"last chunk {last}")

    # chat, plain and streamed, against `transit run --chat --temp 0`
    user = "Who art thou?"
    want_chat = run_cli("--chat", "--chat-template", "llama2", "-p", user, "-n", "24", "--temp", "0")
    msgs = [{"role": "user", "content": user}]
    r = client.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0)
    check(r.choices[0].message.content == want_chat and r.choices[0].message.role == "assistant",
          f"chat at temperature 0 differs from run --chat:\n{r.choices[0].message.content!r}\n{want_chat!r}")
    check(r.choices[0].finish_reason in ("stop", "length") and r.usage.total_tokens > 0, f"chat answer {r}")
    parts, last = [], None
    for chunk in client.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0,
                                                stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        last = chunk
    check("".join(parts) == want_chat, "streamed chat differs from run --chat")
    check(last.choices[0].finish_reason in ("stop", "length") and last.usage is not None, f"last chat chunk {last}")

    # stop strings cut the text before them
    r = client.completions.create(model=model, prompt=prompt, max_tokens=32, temperature=0, stop=["not"])
    check("not" in want and r.choices[0].text == want[:want.index("not")] and r.choices[0].finish_reason == "stop",
          f"stop string: {r.choices[0].text!r}")

    # a seed gives the same text alone and beside seven others
    seeded = dict(model=model, prompt="ROMEO:", max_tokens=40, temperature=0.9, top_p=0.95, seed=4242)
    alone = client.completions.create(**seeded).choices[0].text
    results = {}

    def one(i):
        req = dict(seeded) if i == 0 else dict(seeded, seed=1000 + i, prompt=["JULIET:", "Tell me", "KING:"][i % 3])
        results[i] = client.completions.create(**req).choices[0].text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(results.get(0) == alone, f"seed 4242 beside seven others: {results.get(0)!r} vs alone {alone!r}")
    check(len(set(results.values())) > 1, "eight requests with different seeds gave one text")

    # the API's errors
    models = client.models.list()
    check([m.id for m in models.data] == [model], f"models {models}")
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
    try:
        bad.completions.create(model=model, prompt="x", max_tokens=1)
        check(False, "a wrong key was accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, f"wrong key: {e}")
    for body, field in [({"model": "gpt-4", "prompt": "x"}, "model"),
                        ({"model": model, "prompt": "x", "max_tokens": "many"}, "max_tokens"),
                        ({"model": model, "prompt": "x", "temperature": 7}, "temperature"),
                        ({"model": model, "prompt": "x", "n": 2}, "'n'"),
                        ({"model": model}, "prompt"),
                        ({"model": model, "prompt": "x", "stop": [1]}, "stop"),
                        ({"model": model, "prompt": "x" * 4000}, "context")]:
        status, _, j = raw(srv.url + "/v1/completions", body, auth)
        check(status == 400 and field in j["error"]["message"] and j["error"]["type"] == "invalid_request_error",
              f"{body}: {status} {j}")
    status, _, j = raw(srv.url + "/v1/chat/completions", {"model": model}, auth)
    check(status == 400 and "messages" in j["error"]["message"], f"chat without messages: {status} {j}")
    status, _, j = raw(srv.url + "/v1/completions", b"{not json", auth)
    check(status == 400 and "JSON" in j["error"]["message"], f"invalid JSON: {status} {j}")
    status, _, j = raw(srv.url + "/v1/completions", b'{"prompt":"' + b"a" * 70000 + b'"}', auth)
    check(status == 413, f"a large body: {status}")
    status, _, j = raw(srv.url + "/health")
    check(status == 200 and j["status"] == "ok", f"health without a key: {status} {j}")
    status, _, j = raw(srv.url + "/metrics")
    check(status == 401, f"metrics without a key: {status}")
    status, _, j = raw(srv.url + "/v2/nothing", None, auth)
    check(status == 404, f"unknown route: {status}")
    status, _, j = raw(srv.url + "/v1/completions", None, auth, method="GET")
    check(status == 405, f"GET a completion: {status}")

    # a client that leaves mid-stream frees its sequence
    s = socket.create_connection(("127.0.0.1", srv.port))
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 200, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    s.settimeout(30)
    while b"data:" not in got:  # the headers may come alone first
        more = s.recv(4096)
        if not more:
            break
        got += more
    check(b"data:" in got, f"no first event: {got!r}")
    s.close()
    freed = False
    for _ in range(100):
        _, _, text = raw(srv.url + "/metrics", None, auth)
        if "transit_sequences_active 0" in text and 'outcome="cancelled"} 1' in text:
            freed = True
            break
        time.sleep(0.1)
    check(freed, "the sequence of a client that left is still active")

    # the short robustness run: 16 clients, good, malformed, oversized and disconnecting requests
    idle = serve_load.rss_kb(srv.proc.pid)
    report = serve_load.chaos(srv.url, KEY, model, clients=16, seconds=8, expected={prompt: want})
    print(f"chaos: {report}")
    check(report["wrong"] == 0 and report["good"] > 0, f"chaos run: {report}")
    check(srv.proc.poll() is None, "the server died under load")
    time.sleep(0.5)
    after = serve_load.rss_kb(srv.proc.pid)
    print(f"RSS idle {idle} kB, after the load {after} kB")
    _, _, text = raw(srv.url + "/metrics", None, auth)
    check("transit_sequences_active 0" in text and "transit_sequences_queued 0" in text, "sequences left running")
    check(after <= idle * 1.25 + 32 * 1024, f"memory did not come back: {idle} kB idle, {after} kB after")

    rc = srv.stop(signal.SIGTERM)
    check(rc == 0, f"SIGTERM: exit status {rc}\n{''.join(srv.err)}")

    # past the queue: 503 with Retry-After
    small = Server("--parallel", "1", "--queue", "1", "-c", "256")
    statuses, retry = [], []

    def hit(_):
        st, h, _ = raw(small.url + "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": 100})
        statuses.append(st)
        if st == 503:
            retry.append(h.get("Retry-After"))

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(200 in statuses and 503 in statuses and all(r == "1" for r in retry), f"queue bound: {statuses} {retry}")
    check(small.stop(signal.SIGINT) == 0, "SIGINT: exit status")

    print(f"test_serve: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for srv in servers:
            if srv.proc.poll() is None:
                srv.proc.kill()
