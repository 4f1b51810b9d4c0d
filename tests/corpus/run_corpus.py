#!/usr/bin/env python3
"""Runs the bad-input corpus (bad_inputs.py) against the `raylight` binary.

For every case it checks, besides the case's own expected outcome:
  - the process ended by itself, not by a signal (a crash) and not by our timeout (a hang),
    and never with exit 3 (an internal error is a bug, whatever the input);
  - an error says "error:" or prints the usage, and names what the case says it must;
  - no non-regular file in the work folder was replaced or changed (the "sentinels": a
    device node, FIFO, socket, folders and symbolic links made before the first case);
  - no "*.tmp-<pid>" temporary survived anywhere under the work folder (TMPDIR points into
    it, so temporaries made for pipe outputs are seen too).

usage: run_corpus.py --binary build/raylight [--keep DIR] [--only SUBSTRING] [--list]
Exit status 0 when every case holds; the failures are listed otherwise.
"""

import argparse
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bad_inputs  # noqa: E402

SENTINEL_BASES = ["sentinel_node", "sentinel_dir", "sentinel_fifo", "sentinel_dangling",
                  "sentinel_socket", "sentinel_link", "sentinel_link_to_node"]
EXTENSIONS = ["", ".mp4", ".webp", ".png"]


def make_sentinels(work):
    """Makes the non-regular files the cases aim at; returns their names."""
    made, keep = [], []
    can_mknod = os.geteuid() == 0
    with open(os.path.join(work, "sentinel_target"), "w") as f:
        f.write("the link's target\n")
    for ext in EXTENSIONS:
        p = lambda base: os.path.join(work, base + ext)
        if can_mknod:
            os.mknod(p("sentinel_node"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            made.append("sentinel_node" + ext)
            os.symlink("sentinel_node" + ext, p("sentinel_link_to_node"))
            made.append("sentinel_link_to_node" + ext)
        os.mkdir(p("sentinel_dir"))
        os.mkfifo(p("sentinel_fifo"))
        os.symlink("nowhere_target" + ext, p("sentinel_dangling"))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(p("sentinel_socket"))
        keep.append(s)
        os.symlink("sentinel_target", p("sentinel_link"))
        made += ["sentinel_dir" + ext, "sentinel_fifo" + ext, "sentinel_dangling" + ext,
                 "sentinel_socket" + ext, "sentinel_link" + ext]
    os.mkdir(os.path.join(work, "sentinel_full_dir"))
    with open(os.path.join(work, "sentinel_full_dir", "notes.txt"), "w") as f:
        f.write("the user's own file\n")
    made.append("sentinel_full_dir")
    return made, keep, can_mknod


def snapshot(work, names):
    """What must not change: type, inode, link target, folder contents."""
    out = {}
    for n in names:
        p = os.path.join(work, n)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            out[n] = ("missing",)
            continue
        link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
        listing = tuple(sorted(os.listdir(p))) if stat.S_ISDIR(st.st_mode) else None
        out[n] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_rdev, link, listing)
    notes = os.path.join(work, "sentinel_full_dir", "notes.txt")
    out["notes.txt"] = open(notes).read() if os.path.exists(notes) else None
    return out


def temporaries(work):
    found = []
    for root, dirs, files in os.walk(work):
        for n in dirs + files:
            if ".tmp-" in n:
                found.append(os.path.relpath(os.path.join(root, n), work))
    return found


def dead_pid():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


class FifoReader(threading.Thread):
    """Reads everything written into a FIFO (or, for a stall, opens it and never reads)."""

    def __init__(self, path, stall=False):
        super().__init__(daemon=True)
        self.path, self.stall, self.data, self.fd = path, stall, b"", None
        if stall:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def run(self):
        if self.stall:
            return
        with open(self.path, "rb") as f:
            self.data = f.read()

    def finish(self):
        if self.stall:
            os.close(self.fd)
            return
        if self.is_alive():  # nobody opened the pipe: let the reader's open() return
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self.join(10)


def run_case(case, binary, work, env):
    for s in case.stale:
        p = os.path.join(work, s.format(dead=dead_pid()))
        if p.endswith("/"):
            os.makedirs(p, exist_ok=True)
            open(os.path.join(p, "frame_00000.png"), "w").close()
        else:
            open(p, "w").write("left behind by a killed run\n")
    reader = None
    if case.reader or case.stall:
        fifo = os.path.join(work, case.reader or case.stall)
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        reader = FifoReader(fifo, stall=bool(case.stall))
        reader.start()
    proc = subprocess.Popen([binary] + case.args, cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    err_chunks = []
    drain = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    drain.start()
    problems = []
    deadline = time.monotonic() + case.timeout
    if case.interrupt:
        # Once the output is staged (a temporary exists), interrupt the run.
        while proc.poll() is None and time.monotonic() < deadline and not temporaries(work):
            time.sleep(0.02)
        if proc.poll() is None and temporaries(work):
            proc.send_signal(case.interrupt)
        else:
            problems.append("no temporary appeared to interrupt")
    try:
        proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        problems.append("hung: no exit within %g s" % case.timeout)
    drain.join(10)
    if reader:
        reader.finish()
    err = (err_chunks[0] if err_chunks else b"").decode("utf-8", "replace")
    rc = proc.returncode
    if not problems:
        if case.expect == "signal":
            if rc != -case.interrupt:
                problems.append("expected to end by signal %d, got %s" % (case.interrupt, rc))
        elif rc < 0:
            problems.append("crashed: killed by signal %d (%s)" % (-rc, signal.Signals(-rc).name))
        elif rc == 3 or "internal error" in err:
            problems.append("internal error (exit %d)" % rc)
        elif case.expect == "ok" and rc != 0:
            problems.append("expected success, got exit %d" % rc)
        elif case.expect == "error" and rc != 2:
            problems.append("expected exit 2, got %d" % rc)
        elif case.expect == "any" and rc not in (0, 2):
            problems.append("expected exit 0 or 2, got %d" % rc)
        if rc == 2 and "error:" not in err and "usage:" not in err:
            problems.append("exit 2 without an error message")
        if case.expect == "error" and case.says and case.says not in err:
            problems.append("the message does not say %r" % case.says)
    if case.reader and rc == 0 and not reader.data:
        problems.append("nothing arrived through the pipe")
    return problems, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--keep", help="use (and keep) this work folder")
    ap.add_argument("--only", help="run cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    work = a.keep or tempfile.mkdtemp(prefix="raylight_corpus_")
    os.makedirs(work, exist_ok=True)
    work = os.path.abspath(work)
    cases = bad_inputs.build(os.path.join(work, "inputs"))
    if a.only:
        cases = [c for c in cases if a.only in c.name]
    if a.list:
        for c in cases:
            print("%-55s %-6s %s" % (c.name, c.expect, c.why))
        return 0
    sentinels, keep_sockets, can_mknod = make_sentinels(work)
    env = dict(os.environ, TMPDIR=os.path.join(work, "tmp"))
    os.makedirs(env["TMPDIR"], exist_ok=True)
    before = snapshot(work, sentinels)
    failures, skipped, start = [], 0, time.monotonic()
    for case in cases:
        if not can_mknod and any("node" in x for x in case.args):
            skipped += 1
            continue
        t0 = time.monotonic()
        problems, err = run_case(case, binary, work, env)
        after = snapshot(work, sentinels)
        for n in sentinels + ["notes.txt"]:
            if after[n] != before[n]:
                problems.append("%s was changed: %s -> %s" % (n, before[n], after[n]))
        left = temporaries(work)
        if left:
            problems.append("temporaries left: %s" % ", ".join(left))
            for p in left:  # so the next case is judged on its own
                subprocess.run(["rm", "-rf", os.path.join(work, p)])
        before = after if not problems else snapshot(work, sentinels)
        status = "FAIL" if problems else "ok"
        print("%-4s %-55s %5.2f s" % (status, case.name, time.monotonic() - t0), flush=True)
        if problems:
            last = err.strip().splitlines()[-1] if err.strip() else "(no stderr)"
            failures.append((case, problems, last))
    print("\n%d cases, %d failed, %d skipped (no mknod), %.1f s" %
          (len(cases), len(failures), skipped, time.monotonic() - start))
    for case, problems, last in failures:
        print("\nFAIL %s: raylight %s" % (case.name, " ".join(case.args)))
        if case.why:
            print("  guards: %s" % case.why)
        for p in problems:
            print("  - %s" % p)
        print("  stderr: %s" % last)
    for s in keep_sockets:
        s.close()
    if not a.keep:
        subprocess.run(["rm", "-rf", work])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
