"""Starting `raylight serve` when none is running, and keeping track of the one started.

The node pack talks to a server at a URL (RAYLIGHT_URL, default http://127.0.0.1:8690)
when a raylight server answers there. Otherwise it uses the server the pack started - its
own, or one found through the state file - or starts one: the `raylight` binary
(RAYLIGHT_BINARY, else the repository's build/raylight next to this pack, else `raylight`
on PATH) with the requested ranks, on a free loopback port (--listen 127.0.0.1:0 and a port
file), with a random token, and waits for it to answer with a deadline.

A started server is tied to the process that started it (--parent-pid): when ComfyUI ends,
however it ends - SIGTERM and SIGKILL skip Python's atexit - the server shuts down by
itself instead of keeping the model loaded on a port nobody knows. Its port, token, pid
and log live in a private state folder (RAYLIGHT_STATE_DIR, else $XDG_RUNTIME_DIR/raylight,
else ~/.cache/raylight; mode 700); a pack in another process reuses a running server found
there rather than start a second one, and the files of a server that died are removed by
whoever finds it dead (after showing the end of its log).
"""

import atexit
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from .client import RaylightClient, RaylightError

DEFAULT_URL = "http://127.0.0.1:8690"
STATE_FILE = "pack-server.json"
LOG_TAIL = 3000  # characters of a dead server's log shown to the user
_started = None  # the ServerHandle this process uses (started here or found in the state file)

log = logging.getLogger("raylight")


def state_dir():
    """The private folder holding the pack server's state and files (created 700)."""
    path = os.environ.get("RAYLIGHT_STATE_DIR")
    if not path:
        base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "raylight")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RaylightError(0, "the state folder %s must belong to you and be private (chmod 700): it holds "
                               "the pack server's token" % path)
    return path


def _start_time(pid):
    """The process's start time in clock ticks (from /proc), None when it is not running."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


class ServerHandle:
    """A `raylight serve` the pack started (``process`` set) or found in the state file."""

    def __init__(self, state, client, process=None):
        self.state = state
        self.client = client
        self.process = process

    @property
    def url(self):
        return self.client.url

    @property
    def pid(self):
        return self.state["pid"]

    @property
    def workdir(self):
        return self.state["workdir"]

    @property
    def args(self):
        return self.state["args"]

    def owned(self):
        """Whether this process started it (its life is tied to ours)."""
        return self.state.get("parent") == os.getpid()

    def running(self):
        if self.process is not None:
            return self.process.poll() is None
        return _start_time(self.pid) == self.state.get("start_time")

    def log(self):
        try:
            with open(os.path.join(self.workdir, "serve.log"), "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            if self.process is not None:
                try:
                    self.process.wait(0.1)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.1)
        return not self.running()

    def _signal(self, sig):
        if self.running():
            try:
                os.kill(self.pid, sig)
            except OSError:
                pass

    def stop(self, timeout=30.0):
        """Asks the server to shut down, then terminates and kills it if it does not; removes
        its files. Returns the exit code when this process started it."""
        if self.running():
            try:
                self.client.shutdown()
            except (OSError, RaylightError, ValueError):
                pass
            if not self._wait_gone(timeout):
                self._signal(signal.SIGTERM)
                if not self._wait_gone(10):
                    self._signal(signal.SIGKILL)
                    self._wait_gone(10)
        self.cleanup()
        return self.process.returncode if self.process is not None else None

    def cleanup(self):
        """Removes the server's files and its state file entry (only once it is gone)."""
        if self.running():
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        path = os.path.join(state_dir(), STATE_FILE)
        current = _read_state(path)
        if current is not None and current.get("pid") == self.pid and current.get("workdir") == self.workdir:
            try:
                os.remove(path)
            except OSError:
                pass

    def death_report(self):
        """What to tell the user about a server that ended on its own: its exit and the end of its log."""
        code = self.process.returncode if self.process is not None else None
        text = self.log().strip()
        if len(text) > LOG_TAIL:
            text = "..." + text[-LOG_TAIL:]
        return "the raylight server (pid %s) ended%s; the end of its log:\n%s" % (
            self.pid, "" if code is None else " with exit code %s" % code, text or "(empty)")


def _read_state(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    keys = ("pid", "start_time", "url", "token", "workdir", "ranks", "args")
    return state if isinstance(state, dict) and all(k in state for k in keys) else None


def _write_state(state):
    path = os.path.join(state_dir(), STATE_FILE)
    tmp = path + ".%d.tmp" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def find_binary():
    env = os.environ.get("RAYLIGHT_BINARY")
    if env:
        return env
    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # comfyui/, links resolved
    for candidate in (os.path.join(here, "..", "build", "raylight"), os.path.join(here, "raylight")):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    found = shutil.which("raylight")
    if found:
        return found
    raise RaylightError(0, "cannot find the raylight binary: build it (./run.sh) or set RAYLIGHT_BINARY")


def usable_gpus(binary=None):
    """How many GPUs a server started here could use (0: a CPU-only build, or no GPU visible)."""
    try:
        out = subprocess.run([binary or find_binary(), "serve", "--devices"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return int(json.loads(out)["gpus"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        raise RaylightError(0, "cannot ask the raylight binary which devices it can use: %s" % e)


def start_server(gpus=None, ranks=None, device=None, token=None, extra_args=(), timeout=180.0, binary=None,
                 models_dirs=()):
    """Starts `raylight serve` on a free loopback port, tied to this process, and waits until
    it answers. Without ``token`` it gets a random one (in the state file, mode 600)."""
    workdir = tempfile.mkdtemp(prefix="serve-", dir=state_dir())
    port_file = os.path.join(workdir, "port")
    args = [binary or find_binary(), "serve", "--listen", "127.0.0.1:0", "--port-file", port_file,
            "--parent-pid", str(os.getpid())]
    if gpus:
        args += ["--gpus", ",".join(str(g) for g in gpus)]
    elif ranks and int(ranks) > 1:
        args += ["--ranks", str(int(ranks))]
    if device:
        args += ["--device", device]
    dirs = [d for d in models_dirs if d and ":" not in d]  # (":" separates them; such a folder cannot be named)
    if dirs:
        args += ["--models-dir", ":".join(dirs)]
    args += list(extra_args)
    token = token or secrets.token_urlsafe(24)
    env = dict(os.environ, RAYLIGHT_TOKEN=token, TMPDIR=workdir)  # its temporary files go with it
    with open(os.path.join(workdir, "serve.log"), "wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env=env, close_fds=True)
    state = {"pid": process.pid, "start_time": _start_time(process.pid), "url": None, "token": token,
             "workdir": workdir, "ranks": len(gpus) if gpus else int(ranks or 1), "gpus": list(gpus or []),
             "device": device, "args": args, "parent": os.getpid()}
    handle = ServerHandle(state, RaylightClient("http://127.0.0.1:1", token=token), process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            report = handle.death_report()
            handle.cleanup()
            raise RaylightError(0, "raylight serve could not start: " + report)
        try:
            with open(port_file) as f:
                content = f.read()
        except OSError:
            content = ""
        if content.endswith("\n"):
            client = RaylightClient("http://127.0.0.1:%d" % int(content), token=token)
            if client.alive():
                handle.client = client
                state["url"] = client.url
                return handle
        time.sleep(0.1)
    handle.stop(5)
    raise RaylightError(0, "raylight serve did not answer within %.0f s" % timeout)


def _recorded_server():
    """The server of the state file when it still runs; a dead one's files are removed and it
    is reported (returned with running() False)."""
    state = _read_state(os.path.join(state_dir(), STATE_FILE))
    if state is None or not state.get("url"):
        return None
    return ServerHandle(state, RaylightClient(state["url"], token=state["token"]))


def _fits(handle, wanted, device):
    if handle.state.get("device") != device:
        return False
    try:
        health = handle.client.health()
    except (OSError, RaylightError, ValueError):
        return False
    return health.get("status") == "ok" and (wanted is None or health.get("ranks") == wanted)


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, TypeError, ValueError):
        return True  # another user's process, or not a pid we can judge: assume alive
    return True


def _forget_dead(handle):
    """Removes what a dead server left; when it died on its own - not stopped by the pack,
    not ended with the ComfyUI that started it - tells the user why, from its log."""
    if os.path.isdir(handle.workdir) and (handle.owned() or _pid_alive(handle.state.get("parent"))):
        log.error("raylight: %s", handle.death_report())
    handle.cleanup()


def ensure_server(url=None, token=None, gpus=None, ranks=None, device=None, extra_args=(), start=True,
                  models_dirs=()):
    """A client for a running server with the wanted rank count, starting one if needed.

    A server at ``url`` (or RAYLIGHT_URL) is used when given; otherwise the pack's own server
    (started by this process or found in the state file) when it fits, else a raylight server
    answering at the default address, else (with ``start``) a new one of the pack's own.
    """
    global _started
    wanted = len(gpus) if gpus else (int(ranks) if ranks else None)
    explicit = url or os.environ.get("RAYLIGHT_URL")
    token = token or os.environ.get("RAYLIGHT_TOKEN") or None
    if not explicit:
        handle = _started if _started is not None else _recorded_server()
        if handle is not None:
            if not handle.running():
                _forget_dead(handle)
            elif _fits(handle, wanted, device):
                _started = handle
                return handle.client
            elif handle.owned() or not _pid_alive(handle.state.get("parent")):
                handle.stop()  # ours with another layout, or shutting down with its parent: let it go first
            _started = None
    client = RaylightClient(explicit or DEFAULT_URL, token=token)
    try:
        kind, info = client.probe()
    except RaylightError as e:
        raise RaylightError(e.status, "server at %s: %s" % (client.url, e.message))
    if kind == "raylight":
        if info.get("status") != "ok":
            raise RaylightError(503, "the server at %s is %s" % (client.url, info.get("status")))
        if wanted is not None and info.get("ranks") != wanted:
            raise RaylightError(0, "the server at %s runs %s ranks but %s were asked for; stop it or ask for %s"
                                % (client.url, info.get("ranks"), wanted, info.get("ranks")))
        return client
    if kind == "foreign":
        if explicit:
            raise RaylightError(0, "the service at %s is not a raylight server (%s)" % (client.url, info))
        log.warning("raylight: %s answers but is not a raylight server (%s); starting the pack's own server",
                    client.url, info)
    if explicit or not start:
        raise RaylightError(0, "no raylight server answers at %s" % client.url)
    _started = start_server(gpus=gpus, ranks=ranks, device=device, token=token, extra_args=extra_args,
                            models_dirs=models_dirs)
    _write_state(_started.state)  # for other processes, and for whoever finds it dead
    return _started.client


def started_server():
    return _started


def explain(error):
    """``error`` with the end of the server's log added when the pack's server has died (a
    rank crashed, the system killed it): the user sees why, not only that it went away."""
    handle = _started
    if handle is None or (error.status == 0 and not handle._wait_gone(10)) or handle.running():
        return error  # (status 0: the connection broke; a dying server takes a moment to exit)
    report = handle.death_report()
    return RaylightError(error.status, "%s\n%s" % (error.message, report))


@atexit.register
def _stop_started():
    global _started
    if _started is not None and _started.owned():
        _started.stop()
    _started = None
