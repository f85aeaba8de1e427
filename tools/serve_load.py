#!/usr/bin/env python3
"""serve_load.py: a load generator for `transit serve` on loopback (docs/serve.md).

  bench   total generated tokens/s with 1, 2, 4, 8 ... concurrent clients, each sending completion
          requests back to back (bounded: --requests per client and --seconds per level). With
          --transit BIN -m MODEL it starts the server itself (--parallel = the most clients).
  chaos   N clients for S seconds, mixing well-formed requests (checked against expected texts at
          temperature 0), malformed JSON, wrong types, oversized bodies, and streams dropped
          mid-way; reports what came back. tests/test_serve.py runs a short one.

Only the standard library: what it measures is the server, not a client library.
"""
import argparse
import http.client
import json
import random
import re
import socket
import subprocess
import threading
import time
import urllib.parse


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def post(url, path, body, key=None, timeout=120):
    """status, parsed JSON (or None) of one POST"""
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        c.request("POST", path, data, headers)
        r = c.getresponse()
        text = r.read()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, None
    finally:
        c.close()


def bench(url, key, model, clients, requests, seconds, max_tokens, prompt):
    """generated tokens per second over all clients, and the requests answered"""
    tokens, done, errors = [0], [0], [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(i):
        for _ in range(requests):
            if time.monotonic() > stop_at:
                return
            st, j = post(url, "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": max_tokens,
                                                  "temperature": 0.8, "seed": i}, key)
            with lock:
                if st == 200:
                    tokens[0] += j["usage"]["completion_tokens"]
                    done[0] += 1
                else:
                    errors[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    return {"clients": clients, "requests": done[0], "errors": errors[0], "tokens": tokens[0], "seconds": dt,
            "tokens_per_s": tokens[0] / dt if dt > 0 else 0.0}


def chaos(url, key, model, clients, seconds, expected):
    """clients mixing good and bad requests for `seconds`; counts of each kind and of wrong answers"""
    u = urllib.parse.urlparse(url)
    report = {"good": 0, "wrong": 0, "malformed": 0, "oversized": 0, "dropped": 0, "busy": 0, "unexpected": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    prompts = list(expected.items())

    def count(k):
        with lock:
            report[k] += 1

    def client(i):
        rng = random.Random(i)
        while time.monotonic() < stop_at:
            kind = rng.choice(["good", "good", "good", "malformed", "type", "oversized", "drop"])
            if kind == "good":
                p, want = rng.choice(prompts)
                st, j = post(url, "/v1/completions", {"model": model, "prompt": p, "max_tokens": 32,
                                                      "temperature": 0}, key)
                if st == 503:
                    count("busy")
                elif st != 200 or j["choices"][0]["text"] != want:
                    count("wrong")
                else:
                    count("good")
            elif kind in ("malformed", "type"):
                body = b'{"model": "' + model.encode() + b'", "prompt": [1, 2' if kind == "malformed" else \
                    {"model": model, "prompt": "x", "max_tokens": {"no": 1}}
                st, j = post(url, "/v1/completions", body, key)
                count("malformed" if st == 400 and j and "error" in j else "unexpected")
            elif kind == "oversized":
                st, _ = post(url, "/v1/completions", b'{"prompt": "' + b"z" * (2 << 20) + b'"}', key)
                count("oversized" if st == 413 else "unexpected")
            else:  # a stream dropped after its first event
                s = socket.create_connection((u.hostname, u.port), timeout=30)
                body = json.dumps({"model": model, "prompt": prompts[0][0], "max_tokens": 64, "stream": True}).encode()
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + (key or "").encode()
                          + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                          b"\r\n\r\n" + body)
                try:
                    got = b""
                    while b"data:" not in got:  # the headers may come alone first
                        more = s.recv(4096)
                        if not more:
                            break
                        got += more
                finally:
                    s.close()
                count("dropped")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return report


def start_server(transit, model_path, parallel, extra):
    proc = subprocess.Popen([transit, "serve", "-m", model_path, "--port", "0", "--parallel", str(parallel), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit("the server did not start: " + line)
    m2 = re.search(r"model '([^']+)'", line)
    proc.log = []  # the rest of its stderr, drained so that a full pipe never stalls it

    def drain():
        for rest in proc.stderr:
            proc.log.append(rest)
    threading.Thread(target=drain, daemon=True).start()
    return proc, f"http://127.0.0.1:{m.group(1)}", m2.group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["bench", "chaos"])
    ap.add_argument("--url", help="a running server (else --transit and -m start one)")
    ap.add_argument("--transit", help="the transit binary, to start a server")
    ap.add_argument("-m", "--model-path", help="the model for the server it starts")
    ap.add_argument("--server-args", default="", help="more options for that server")
    ap.add_argument("--model", default=None, help="the model name in requests (the server's)")
    ap.add_argument("--key", default=None)
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--requests", type=int, default=4, help="requests per client (bench)")
    ap.add_argument("--seconds", type=float, default=60, help="time limit per level (bench) or in all (chaos)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Once upon a time")
    a = ap.parse_args()
    levels = [int(x) for x in a.clients.split(",")]
    proc, url, model = None, a.url, a.model
    if not url:
        proc, url, model_id = start_server(a.transit, a.model_path, max(levels), a.server_args.split())
        model = model or model_id
    try:
        if a.mode == "bench":
            base = None
            for n in levels:
                r = bench(url, a.key, model, n, a.requests, a.seconds, a.max_tokens, a.prompt)
                base = base or r["tokens_per_s"]
                print(f"{n:3d} clients: {r['requests']:4d} requests, {r['tokens']:6d} tokens in {r['seconds']:6.1f} s:"
                      f" {r['tokens_per_s']:8.1f} tokens/s, {r['tokens_per_s'] / base:5.2f}x one client"
                      f"{'  (' + str(r['errors']) + ' errors)' if r['errors'] else ''}", flush=True)
        else:
            st, j = post(url, "/v1/completions", {"model": model, "prompt": a.prompt, "max_tokens": 32,
                                                  "temperature": 0}, a.key)
            want = j["choices"][0]["text"] if st == 200 else None
            pid = proc.pid if proc else None
            before = rss_kb(pid) if pid else None
            r = chaos(url, a.key, model, levels[-1], a.seconds, {a.prompt: want})
            print(r)
            if pid:
                time.sleep(1)
                print(f"RSS {before} kB before, {rss_kb(pid)} kB after")
    finally:
        if proc:
            proc.terminate()
            rc = proc.wait(60)
            time.sleep(0.5)
            bad = [x for x in proc.log if "Sanitizer" in x or "runtime error" in x]
            print(f"server exit status {rc} after SIGTERM; sanitizer reports: {len(bad)}")
            for x in bad[:20]:
                print("  " + x.rstrip())


if __name__ == "__main__":
    main()
