"""progress_pty.py TRANSIT SHARED: a prefill longer than 2 s shows its progress on a terminal, and
only there (issue 18). `transit run` on the reference kernels (slow on purpose) with a prompt of
about 1,200 tokens, under a pseudo-terminal (stdlib pty) and then with stderr a pipe: the terminal
gets a progress line rewritten in place (carriage return, erase-line) after chunks, which is cleared
before the speed summary; the pipe gets none; the text on stdout is the same."""
import os
import pty
import subprocess
import sys
import tempfile

transit, shared = sys.argv[1], sys.argv[2]
with open(os.path.join(shared, "corpus", "tinyshakespeare.txt"), encoding="utf-8") as f:
    prompt = f.read(3600)
with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    f.write(prompt)
    path = f.name
args = [transit, "run", "--backend", "cpu-ref", "-f", path, "-n", "4", "--temp", "0", "-b", "256"]

# stderr a terminal (stdout a pipe: what was generated, separately)
master, slave = pty.openpty()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
os.close(slave)
tty = b""
while True:
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    tty += data
text_tty = p.stdout.read()
assert p.wait() == 0, tty[-400:]
piped = subprocess.run(args, capture_output=True)
os.unlink(path)
assert piped.returncode == 0, piped.stderr[-400:]

lines = [l for l in tty.split(b"\r\x1b[K") if l.startswith(b"transit: prefill ")]
assert lines, "no progress line on the terminal: %r" % tty[-400:]
print("terminal: %d progress updates, the last: %s" % (len(lines), lines[-1].decode()))
assert b" tokens/s, " in lines[-1] and b" s left" in lines[-1], lines[-1]
# cleared before the summary line, which starts at the line's beginning
assert b"\r\x1b[Ktransit: load " in tty, tty[-300:]
assert b"prefill" not in piped.stderr, "progress on a pipe: %r" % piped.stderr[-300:]
assert text_tty == piped.stdout and text_tty, (text_tty, piped.stdout)
print("pipe: no progress line; the same text on both")
print("progress_pty: passed")
