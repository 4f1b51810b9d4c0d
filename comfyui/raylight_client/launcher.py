"""Starting `raylight serve` when none is running.

The node pack talks to a server at a URL (RAYLIGHT_URL, default http://127.0.0.1:8690).
When nothing answers there it starts one itself: the `raylight` binary (RAYLIGHT_BINARY,
else the repository's build/raylight next to this pack, else `raylight` on PATH) with the
requested ranks, on a free loopback port chosen by the system (--listen 127.0.0.1:0 and a
port file), and waits for it to answer with a deadline. A server the pack started is
stopped when Python exits, or when a different rank count is asked for.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import time

from .client import RaylightClient, RaylightError

DEFAULT_URL = "http://127.0.0.1:8690"
_started = None  # the ServerHandle this process started, if any


class ServerHandle:
    def __init__(self, process, client, workdir, args):
        self.process = process
        self.client = client
        self.workdir = workdir
        self.args = args

    @property
    def url(self):
        return self.client.url

    def running(self):
        return self.process.poll() is None

    def log(self):
        try:
            with open(os.path.join(self.workdir, "serve.log"), "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout=30.0):
        """Asks the server to shut down, then terminates and kills it if it does not."""
        if self.running():
            try:
                self.client.shutdown()
            except (OSError, RaylightError, ValueError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode


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


def start_server(gpus=None, ranks=None, device=None, token=None, extra_args=(), timeout=180.0, binary=None):
    """Starts `raylight serve` on a free loopback port and waits until it answers."""
    workdir = tempfile.mkdtemp(prefix="raylight_serve_")
    port_file = os.path.join(workdir, "port")
    args = [binary or find_binary(), "serve", "--listen", "127.0.0.1:0", "--port-file", port_file]
    if gpus:
        args += ["--gpus", ",".join(str(g) for g in gpus)]
    elif ranks and int(ranks) > 1:
        args += ["--ranks", str(int(ranks))]
    if device:
        args += ["--device", device]
    args += list(extra_args)
    env = dict(os.environ)
    if token:
        env["RAYLIGHT_TOKEN"] = token
    log = open(os.path.join(workdir, "serve.log"), "wb")
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, close_fds=True)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    handle = ServerHandle(process, None, workdir, args)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = handle.log()
            shutil.rmtree(workdir, ignore_errors=True)
            raise RaylightError(0, "raylight serve exited with %s: %s" % (process.returncode, text.strip()[-2000:]))
        try:
            with open(port_file) as f:
                content = f.read()
        except OSError:
            content = ""
        if content.endswith("\n"):
            client = RaylightClient("http://127.0.0.1:%d" % int(content), token=token)
            if client.alive():
                handle.client = client
                return handle
        time.sleep(0.1)
    handle.client = RaylightClient("http://127.0.0.1:1", token=token)
    handle.stop(5)
    raise RaylightError(0, "raylight serve did not answer within %.0f s" % timeout)


def ensure_server(url=None, token=None, gpus=None, ranks=None, device=None, extra_args=(), start=True):
    """A client for a running server with the wanted rank count, starting one if needed.

    A server at ``url`` (or RAYLIGHT_URL, or the default address) is used when it answers;
    otherwise (and only when no URL was given explicitly) the pack starts its own.
    """
    global _started
    wanted = len(gpus) if gpus else (int(ranks) if ranks else None)
    explicit = url or os.environ.get("RAYLIGHT_URL")
    token = token or os.environ.get("RAYLIGHT_TOKEN") or None
    if _started is not None and _started.running() and not explicit:
        if wanted is None or _started.client.health()["ranks"] == wanted:
            return _started.client
        _started.stop()
        _started = None
    client = RaylightClient(explicit or DEFAULT_URL, token=token)
    try:
        health = client.health()
    except (OSError, ValueError):
        health = None
    except RaylightError as e:
        raise RaylightError(e.status, "server at %s: %s" % (client.url, e.message))
    if health is not None:
        if wanted is not None and health.get("ranks") != wanted:
            raise RaylightError(0, "the server at %s runs %s ranks but %s were asked for; stop it or ask for %s"
                                % (client.url, health.get("ranks"), wanted, health.get("ranks")))
        return client
    if explicit or not start:
        raise RaylightError(0, "no raylight server answers at %s" % client.url)
    _started = start_server(gpus=gpus, ranks=ranks, device=device, token=token, extra_args=extra_args)
    return _started.client


def started_server():
    return _started


@atexit.register
def _stop_started():
    global _started
    if _started is not None:
        _started.stop()
        _started = None
