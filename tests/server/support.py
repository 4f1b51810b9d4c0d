"""Shared set-up for the node pack's tests: the pack's import path, a private state folder
for the pack's server, the raylight binary (RAYLIGHT_BINARY, as CTest sets it, else the
repository's build/raylight) and process-tree checks, so no test leaves a server running."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)                            # `import comfyui` (the node pack)
sys.path.insert(0, os.path.join(ROOT, "comfyui"))   # `import raylight_client` (its transport)

# The pack's state folder (its server's port, token, log), private to this test run.
STATE_DIR = tempfile.mkdtemp(prefix="raylight_state_")
os.environ["RAYLIGHT_STATE_DIR"] = STATE_DIR
atexit.register(shutil.rmtree, STATE_DIR, True)


def binary():
    path = os.environ.get("RAYLIGHT_BINARY") or os.path.join(ROOT, "build", "raylight")
    if not os.access(path, os.X_OK):
        raise RuntimeError("set RAYLIGHT_BINARY to the raylight executable (looked for %s)" % path)
    os.environ["RAYLIGHT_BINARY"] = path
    return path


def descendants(pid):
    """pid's children, grandchildren, ... now (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cli_sample(args, out):
    subprocess.run([binary(), "sample"] + args + ["--out", out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out, "rb") as f:
        return f.read()
