#!/usr/bin/env python3
"""chat_pty.py: `transit chat` driven through a pseudo-terminal, as a person would use it: wait for the
"> " prompt, type a line, read the streamed reply up to the next prompt.

The model is stories260K with Llama-2-chat's template (a temporary directory of links to ../shared
plus a tokenizer_config.json naming the template; stories260K has no template of its own). Greedy
sampling makes every reply a fixed function of the tokens before it, so:
  - the first reply equals `transit run --chat` on the same message;
  - the second turn starts where the first turn's reply and end-of-turn token left the cache, and
    its reply equals `transit run --ids` on the whole transcript evaluated at once (the cache kept
    across turns is the conversation, not a fresh prompt); it differs from the reply to the second
    message alone;
  - after /reset the first message gets the first reply again; /exit leaves with status 0.
And without a chat template, chat fails with a message naming --chat-template.

Usage: chat_pty.py TRANSIT_BINARY SHARED_DIR GOLDEN_DIR"""
import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)
    return cond


def make_model(shared, golden, tmp):
    src = os.path.join(shared, "models", "stories260K", "hf")
    d = os.path.join(tmp, "model")
    os.mkdir(d)
    for fn in ("config.json", "model.safetensors", "tokenizer.json"):
        os.symlink(os.path.join(src, fn), os.path.join(d, fn))
    with open(os.path.join(src, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(golden, "chat", "llama2.jinja")) as f:
        cfg["chat_template"] = f.read()
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return d


class Terminal:
    """transit chat on a pseudo-terminal; stderr to a file."""

    def __init__(self, argv, stderr_path):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(err, 2)
            os.execv(argv[0], argv)
        self.buf = b""

    def read_until(self, marker, timeout=60):
        end = time.time() + timeout
        while marker not in self.buf:
            left = end - time.time()
            if left <= 0:
                raise TimeoutError("no %r after %r" % (marker, self.buf[-200:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise EOFError("terminal closed; output so far %r" % self.buf[-200:])
                self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def turn(self, line):
        """Types a line; returns the reply printed before the next prompt."""
        os.write(self.fd, line.encode() + b"\n")
        out = self.read_until(b"\n> ").decode("utf-8", "replace").replace("\r\n", "\n")
        echo, _, rest = out.partition("\n")
        check(echo == line, "the terminal echoes the typed line (%r)" % echo)
        return rest[: -len("\n> ")]

    def finish(self, line):
        os.write(self.fd, line.encode() + b"\n")
        try:
            while True:
                self.read_until(b"\x00", timeout=30)
        except EOFError:
            pass
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def logged(stderr_text, what):
    """(position, ids) of each 'transit: <what>: N tokens at position P: ids' line."""
    out = []
    for m in re.finditer(r"transit: %s: (\d+) tokens at position (\d+):([ \d]*)" % what, stderr_text):
        out.append((int(m.group(2)), [int(x) for x in m.group(3).split()]))
    return out


def main():
    transit, shared, golden = sys.argv[1:4]
    sampling = ["--temp", "0", "-n", "24"]
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(shared, golden, tmp)
        first, second = "Once upon a time", "The little dog ran to the park"
        rc, want1, err = run([transit, "run", "--chat", "-m", model, "-p", first] + sampling)
        check(rc == 0, "run --chat: " + err)
        want1 = want1.rstrip("\n")
        rc, alone2, _ = run([transit, "run", "--chat", "-m", model, "-p", second] + sampling)
        alone2 = alone2.rstrip("\n")

        err_path = os.path.join(tmp, "stderr")
        term = Terminal([transit, "chat", "-m", model, "-v"] + sampling, err_path)
        term.read_until(b"> ")
        reply1 = term.turn(first)
        reply2 = term.turn(second)
        os.write(term.fd, b"/reset\n")
        term.read_until(b"\n> ")
        reply3 = term.turn(first)
        status = term.finish("/exit")
        with open(err_path) as f:
            log = f.read()

        check(status == 0, "chat exits with 0 after /exit (got %s)" % status)
        check(reply1 == want1, "first reply %r equals run --chat's %r" % (reply1, want1))
        check(reply3 == want1, "the reply after /reset %r equals the first %r" % (reply3, want1))
        check(reply2 != alone2, "the second reply depends on the first turn (%r)" % reply2)
        users, replies, ends = logged(log, "user turn"), logged(log, "reply"), logged(log, "end of turn")
        if check(len(users) == 3 and len(replies) == 3 and len(ends) == 3, "three turns logged:\n" + log):
            (p1, u1), (p2, u2), (p3, u3) = users
            (_, r1), (_, r2), _ = replies
            (pe, e1), _, _ = ends
            check(p1 == 0 and p3 == 0, "turns 1 and 3 (after /reset) start an empty cache")
            check(pe == len(u1) + len(r1), "the end of turn follows the reply")
            check(p2 == len(u1) + len(r1) + len(e1), "turn 2 continues the cache at %d (got %d)" %
                  (len(u1) + len(r1) + len(e1), p2))
            check(u3 == u1, "after /reset the first message has the same ids")
            # the whole transcript evaluated at once gives the second reply
            ids_path = os.path.join(tmp, "transcript.ids")
            with open(ids_path, "w") as f:
                f.write(" ".join(str(i) for i in u1 + r1 + e1 + u2))
            rc, whole2, err = run([transit, "run", "-m", model, "--ids", ids_path] + sampling)
            check(rc == 0, "run --ids: " + err)
            check(whole2.rstrip("\n") == reply2, "the second reply %r equals the transcript's %r" %
                  (reply2, whole2.rstrip("\n")))
            check(len(r2) > 0, "the second reply has tokens")

        # no template: a clear error that names the override
        rc, _, err = run([transit, "chat", "-m", os.path.join(shared, "models", "stories260K", "hf")])
        check(rc == 1 and "--chat-template" in err and "no chat template" in err, "no template: %r" % err)
        rc, _, err = run([transit, "run", "--chat", "-p", "hi", "--chat-template", "chatml", "-m", model])
        check(rc == 1 and "<|im_start|>" in err, "chatml without its tokens: %r" % err)
    print("chat_pty: %d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
