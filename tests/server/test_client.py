"""The node pack's client transport (standard library only) against the real server it
starts: health, loading, sampling compared byte for byte with `raylight sample`, caller
noise, progress callbacks, cancellation, two clients at once, errors, generate, and the
launcher starting and stopping servers without leaving processes behind."""

import glob
import json
import http.server
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import support  # noqa: F401  (sets the import path)
from raylight_client import (RawTensor, RaylightCancelled, RaylightClient, RaylightError, decode, encode,
                             ensure_server, start_server)
from raylight_client import launcher, safetensors_io, schedules

SMALL = {"width": 64, "height": 64, "frames": 5, "steps": 4}
SMALL_FLAGS = ["--width", "64", "--height", "64", "--frames", "5", "--steps", "4"]
server = None
tmp = None


def setUpModule():
    global server, tmp
    support.binary()
    tmp = tempfile.mkdtemp(prefix="raylight_pytest_")
    server = start_server(extra_args=["--model", "tiny"])
    deadline = time.monotonic() + 60
    while server.client.model() is None and time.monotonic() < deadline:
        time.sleep(0.1)


def tearDownModule():
    pid = server.process.pid
    kids = support.descendants(pid)
    assert server.stop() == 0, server.log()
    assert not [p for p in kids if support.alive(p)], "a server process outlived the test"
    shutil.rmtree(tmp, ignore_errors=True)


def latent_bytes(tensors):
    return tensors["latent"].data


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.client = server.client

    def test_health_memory_and_model(self):
        h = self.client.health()
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["ranks"], 1)
        self.assertEqual(self.client.model()["model"], "tiny")
        ranks = self.client.memory()["ranks"]
        self.assertEqual(len(ranks), 1)
        self.assertEqual(ranks[0]["pid"], server.process.pid)

    def test_sample_matches_the_command_line(self):
        got = self.client.sample({}, dict(SMALL, seed=3))
        self.assertEqual(got["latent"].shape, (16, 2, 8, 8))
        cli, _ = decode(support.cli_sample(SMALL_FLAGS + ["--seed", "3"], os.path.join(tmp, "cli3.safetensors")))
        self.assertEqual(latent_bytes(got), cli["latent"].data)
        # ComfyUI's "simple" schedule for 4 steps is exactly Raylight's: same bytes.
        sig = schedules.flow_sigmas("simple", 4, 5.0)
        again = self.client.sample({}, {"width": 64, "height": 64, "frames": 5, "seed": 3, "sigmas": sig})
        self.assertEqual(latent_bytes(again), cli["latent"].data)

    def test_caller_noise_is_used_and_reproducible(self):
        rng = random.Random(7)
        shape = (1, 16, 2, 8, 8)
        noise = RawTensor.from_floats(shape, [rng.gauss(0, 1) for _ in range(safetensors_io.numel(shape))])
        a = self.client.sample({"noise": noise}, {"steps": 3})
        b = self.client.sample({"noise": noise}, {"steps": 3, "seed": 99})  # seed unused with noise
        self.assertEqual(a["latent"].shape, shape)
        self.assertEqual(latent_bytes(a), latent_bytes(b))
        c = self.client.sample({}, {"width": 64, "height": 64, "frames": 5, "steps": 3, "batch": 1})
        self.assertNotEqual(latent_bytes(a), latent_bytes(c))
        self.assertTrue(all(abs(v) < 1e6 for v in a["latent"].to_floats()))

    def test_progress_reaches_every_step(self):
        seen = []
        self.client.sample({}, dict(SMALL, steps=5), on_progress=lambda s, t: seen.append((s, t)))
        self.assertEqual(seen[-1], (5, 5))
        self.assertEqual(sorted(seen), seen)

    def test_cancel_from_the_callback(self):
        progress = []
        t0 = time.monotonic()
        with self.assertRaises(RaylightCancelled):
            self.client.sample({}, dict(SMALL, steps=5000), on_progress=lambda s, t: progress.append(s),
                               should_cancel=lambda: bool(progress) and progress[-1] >= 2)
        self.assertLess(time.monotonic() - t0, 60)
        self.assertLess(progress[-1], 5000)
        self.assertEqual(self.client.sample({}, SMALL)["latent"].shape, (16, 2, 8, 8))

    def test_two_clients_at_once(self):
        results, errors = {}, []

        def run(seed):
            try:
                results[seed] = latent_bytes(RaylightClient(server.url, token=server.client.token)
                                             .sample({}, dict(SMALL, seed=seed)))
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(s,)) for s in (21, 22)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        for seed in (21, 22):
            self.assertEqual(results[seed], latent_bytes(self.client.sample({}, dict(SMALL, seed=seed))))

    def test_errors_carry_the_servers_message(self):
        with self.assertRaises(RaylightError) as e:
            self.client.sample({}, dict(SMALL, sampler="heun"))
        self.assertEqual(e.exception.status, 400)
        self.assertIn("unknown sampler", e.exception.message)
        with self.assertRaises(RaylightError) as e:
            self.client.load("tiny", ulysses=2)
        self.assertIn("needs 2 ranks", e.exception.message)
        with self.assertRaises(RaylightError) as e:
            self.client.sample({"latent": RawTensor.from_floats((15, 1, 2, 2), [0.0] * 60)}, {})
        self.assertIn("tensor 'latent' has shape", e.exception.message)
        with self.assertRaises(RaylightError) as e:  # CPU ranks have no GPU memory to cap
            self.client.load("tiny", gpu_memory_limit_gib=12)
        self.assertIn("caps GPU memory", e.exception.message)
        self.assertEqual(self.client.model()["model"], "tiny")

    def test_generate_returns_a_video(self):
        kind, data = self.client.generate(dict(SMALL, prompt="a lighthouse at dusk"))
        self.assertEqual(kind, "video/mp4")
        self.assertEqual(data[4:8], b"ftyp")

    def test_loras_change_without_reloading_and_removing_restores_the_bytes(self):
        rng = random.Random(20)
        q = "diffusion_model.blocks.0.self_attn.q"
        lora = {q + ".lora_down.weight": RawTensor.from_floats((2, 128), [rng.gauss(0, 0.3) for _ in range(256)]),
                q + ".lora_up.weight": RawTensor.from_floats((128, 2), [rng.gauss(0, 0.3) for _ in range(256)])}
        path = os.path.join(tmp, "tiny_lora.safetensors")
        with open(path, "wb") as f:
            f.write(encode(lora))
        base = self.client.sample({}, dict(SMALL, seed=9))
        try:
            info = self.client.set_loras([{"path": path, "strength": 1.5}])
            self.assertEqual(info["loras"], [{"path": path, "strength": 1.5}])
            self.assertEqual(self.client.model()["loras"], info["loras"])
            self.assertEqual(self.client.memory()["ranks"][0]["pid"], server.process.pid)
            self.assertNotEqual(latent_bytes(self.client.sample({}, dict(SMALL, seed=9))), latent_bytes(base))
            # A file that does not fit is refused by name and changes nothing.
            extra = dict(lora)
            extra["diffusion_model.blocks.0.self_attn.qq.lora_up.weight"] = lora[q + ".lora_up.weight"]
            extra["diffusion_model.blocks.0.self_attn.qq.lora_down.weight"] = lora[q + ".lora_down.weight"]
            bad = os.path.join(tmp, "tiny_lora_extra.safetensors")
            with open(bad, "wb") as f:
                f.write(encode(extra))
            with self.assertRaises(RaylightError) as e:
                self.client.set_loras([{"path": bad}])
            self.assertEqual(e.exception.status, 400)
            self.assertIn("self_attn.qq", str(e.exception))
            self.assertEqual(self.client.model()["loras"], info["loras"])
            for body in ({"loras": "x"}, {"loras": [{"path": path, "strength": "1"}]}, {"loras": [{"file": path}]},
                         {"lora": []}, {"loras": [], "lora_merge": True}):
                status, _, data = self.client.request("POST", "/v1/models/loras", json.dumps(body).encode(),
                                                   "application/json")
                self.assertEqual(status, 400, (body, data))
        finally:
            self.client.set_loras([])
        self.assertEqual(self.client.model()["loras"], [])
        self.assertEqual(latent_bytes(self.client.sample({}, dict(SMALL, seed=9))), latent_bytes(base))

    def test_load_and_unload(self):
        info = self.client.load("tiny", fsdp=True)
        self.assertTrue(info["fsdp"])
        self.client.unload()
        self.assertIsNone(self.client.model())
        self.assertEqual(self.client.load("tiny")["model"], "tiny")


def wait_for(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def job_with_total(client, total):
    """The newest job whose status says it has `total` steps."""
    jobs = [j for j in client.jobs() if j.get("total") == total]
    return max(jobs, key=lambda j: j["created"]) if jobs else None


class InterruptTest(unittest.TestCase):
    """Whatever ends the wait for a job ends the job: ComfyUI's Interrupt arrives as an
    exception raised by its progress hook inside on_progress, not through should_cancel."""

    def setUp(self):
        self.client = server.client

    def final_state(self, total):
        def done():
            j = job_with_total(self.client, total)
            return j if j and j["state"] not in ("queued", "running") else None
        return wait_for(done, 30)

    def test_an_exception_in_on_progress_cancels_the_job(self):
        class Interrupted(Exception):
            pass

        def progress(step, total):
            if step >= 2:
                raise Interrupted()

        with self.assertRaises(Interrupted):
            self.client.sample({}, dict(SMALL, steps=4001), on_progress=progress)
        job = self.final_state(4001)
        self.assertIsNotNone(job, "the job ran on after its caller gave up")
        self.assertEqual(job["state"], "cancelled")
        self.assertLess(job["step"], 4001)
        t0 = time.monotonic()
        self.assertEqual(self.client.sample({}, SMALL)["latent"].shape, (16, 2, 8, 8))
        self.assertLess(time.monotonic() - t0, 30)

    def test_keyboard_interrupt_cancels_the_job_too(self):
        def progress(step, total):
            if step >= 1:
                raise KeyboardInterrupt()

        with self.assertRaises(KeyboardInterrupt):
            self.client.sample({}, dict(SMALL, steps=4002), on_progress=progress)
        self.assertEqual(self.final_state(4002)["state"], "cancelled")

    def test_a_queued_job_is_cancelled_while_it_waits(self):
        # A long job runs; ours waits behind it and is given up 1.5 s later, before it starts.
        blocker = self.client.submit_sample({}, dict(SMALL, steps=4003))
        asked = time.monotonic() + 1.5
        t0 = time.monotonic()
        with self.assertRaises(RaylightCancelled):
            self.client.sample({}, dict(SMALL, steps=4004), should_cancel=lambda: time.monotonic() > asked)
        self.assertLess(time.monotonic() - t0, 10, "the cancel waited for the job ahead to finish")
        self.assertEqual(self.client.job(blocker)["state"], "running")
        self.client.cancel(blocker)
        self.assertEqual(self.final_state(4003)["state"], "cancelled")


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_and_refusals(self):
        t = RawTensor.from_floats((2, 3), [1, 2, 3, 4, 5, 6])
        h = RawTensor("F16", (2,), b"\x00\x3c\x00\x40")
        body = encode({"t": t, "h": h}, {"request": "{}"})
        tensors, meta = decode(body)
        self.assertEqual(tensors["t"].to_floats(), [1, 2, 3, 4, 5, 6])
        self.assertEqual(tensors["h"].to_floats(), [1.0, 2.0])
        self.assertEqual(meta, {"request": "{}"})
        for bad in (b"abc", body[:-1], body + b"x", b"\x04\x00\x00\x00\x00\x00\x00\x00[1] ",
                    b"\xff" * 8 + b"{}"):
            with self.assertRaises(safetensors_io.SafetensorsError):
                decode(bad)
        with self.assertRaises(safetensors_io.SafetensorsError):
            RawTensor("F32", (3,), b"\x00" * 8)

    def test_schedules(self):
        self.assertEqual(schedules.flow_sigmas("simple", 4, 1.0), [1.0, 0.75, 0.5, 0.25, 0.0])
        full = schedules.flow_sigmas("simple", 8, 3.0)
        self.assertEqual(schedules.denoised_sigmas(lambda n: schedules.flow_sigmas("simple", n, 3.0), 4, 0.5), full[-5:])
        normal = schedules.flow_sigmas("normal", 10, 5.0)
        self.assertEqual(len(normal), 11)
        self.assertTrue(all(a > b for a, b in zip(normal, normal[1:])))
        with self.assertRaises(ValueError):
            schedules.flow_sigmas("karras", 10, 5.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LauncherTest(unittest.TestCase):
    def test_starts_two_ranks_and_leaves_nothing_behind(self):
        handle = start_server(ranks=2)
        try:
            self.assertEqual(handle.client.health()["ranks"], 2)
            self.assertEqual(handle.client.load("tiny", ulysses=2)["layout"]["ulysses"], 2)
            cli, _ = decode(support.cli_sample(SMALL_FLAGS + ["--seed", "4"], os.path.join(tmp, "cli4.safetensors")))
            self.assertEqual(latent_bytes(handle.client.sample({}, dict(SMALL, seed=4))), cli["latent"].data)
            kids = support.descendants(handle.process.pid)
            self.assertGreaterEqual(len(kids), 2)
        finally:
            rc = handle.stop()
        self.assertEqual(rc, 0, handle.log())
        self.assertEqual([p for p in kids if support.alive(p)], [])

    def test_ensure_server_uses_what_answers(self):
        self.assertEqual(ensure_server(url=server.url, token=server.client.token).url, server.url)
        with self.assertRaises(RaylightError):
            ensure_server(url=server.url, token=server.client.token, ranks=3)  # the running server has 1 rank
        with self.assertRaises(RaylightError) as e:  # the pack's server has a token of its own
            ensure_server(url=server.url)
        self.assertEqual(e.exception.status, 401)
        with self.assertRaises(RaylightError):
            ensure_server(url="http://127.0.0.1:%d" % free_port())  # explicit URL, nothing there

    def test_a_server_that_cannot_start_says_why(self):
        with self.assertRaises(RaylightError) as e:
            start_server(extra_args=["--model", "/no/such/model.safetensors"])
        self.assertIn("does not exist", e.exception.message)


class PackServerTest(unittest.TestCase):
    """The server the pack starts for itself: tied to the process that started it, found
    again through the state file while it lives, cleaned up after, and its death explained."""

    def setUp(self):
        self.default = launcher.DEFAULT_URL
        launcher.DEFAULT_URL = "http://127.0.0.1:%d" % free_port()  # nothing answers there
        os.environ.pop("RAYLIGHT_URL", None)
        self.files_before = set(os.listdir(support.STATE_DIR))  # the module's server has a folder there

    def new_files(self):
        return sorted(set(os.listdir(support.STATE_DIR)) - self.files_before)

    def tearDown(self):
        handle = launcher.started_server()
        if handle is not None and handle.owned():
            handle.stop()
        launcher._started = None
        launcher.DEFAULT_URL = self.default

    def test_it_ends_with_comfyui_and_is_found_again_while_it_lives(self):
        script = ("import sys, time\nsys.path.insert(0, %r)\nfrom raylight_client import launcher\n"
                  "launcher.DEFAULT_URL = %r\nclient = launcher.ensure_server(ranks=2)\n"
                  "print(launcher.started_server().pid, client.url, flush=True)\ntime.sleep(600)\n"
                  % (os.path.join(support.ROOT, "comfyui"), launcher.DEFAULT_URL))
        comfy = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            pid, url = comfy.stdout.readline().split()
            tree = [int(pid)] + support.descendants(int(pid))
            self.assertGreaterEqual(len(tree), 3)  # mpirun and two ranks
            # Another process (this one) finds it through the state file: no second server.
            client = ensure_server(ranks=2)
            self.assertEqual(client.url, url)
            self.assertEqual(launcher.started_server().pid, int(pid))
            self.assertFalse(launcher.started_server().owned())
            self.assertEqual(client.load("tiny", ulysses=2)["model"], "tiny")
            # ComfyUI is terminated: no atexit runs, and the server ends by itself.
            comfy.send_signal(signal.SIGTERM)
            comfy.wait(30)
            self.assertTrue(wait_for(lambda: not any(support.alive(p) for p in tree), 60),
                            "the server outlived the process that started it")
        finally:
            if comfy.poll() is None:
                comfy.kill()
                comfy.wait()
            comfy.stdout.close()
        # The next user removes what it left and starts a fresh server. (Its port may be the old
        # one again: the kernel can hand a freed ephemeral port straight back, so the process
        # tells them apart, not the URL.)
        launcher._started = None
        client = ensure_server(ranks=2)
        handle = launcher.started_server()
        self.assertNotEqual(handle.pid, int(pid))
        self.assertTrue(handle.owned())
        self.assertEqual(client.load("tiny", ulysses=2)["model"], "tiny")
        self.assertEqual(self.new_files(), sorted([launcher.STATE_FILE, os.path.basename(handle.workdir)]))
        self.assertEqual(handle.stop(), 0, handle.log())
        self.assertEqual(self.new_files(), [])

    def test_a_server_that_dies_says_why_and_leaves_nothing(self):
        tmp_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "raylight_serve_*")))
        client = ensure_server(ranks=2)
        workdir = launcher.started_server().workdir
        client.load("tiny", ulysses=2)
        victim = client.memory()["ranks"][1]["pid"]

        def progress(step, total):
            if step == 1:
                os.kill(victim, signal.SIGKILL)

        with self.assertRaises(RaylightError) as e:
            client.sample({}, dict(SMALL, steps=4000), on_progress=progress)
        explained = launcher.explain(e.exception)
        self.assertIn("the end of its log", explained.message)
        self.assertIn("listening on http://127.0.0.1:", explained.message)
        # The next use starts a new server and removes the dead one's files.
        self.assertNotEqual(ensure_server(ranks=2).url, client.url)
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(launcher.started_server().stop(), 0)
        self.assertEqual(self.new_files(), [])
        self.assertEqual(set(glob.glob(os.path.join(tempfile.gettempdir(), "raylight_serve_*"))), tmp_before)

    def test_a_foreign_service_on_the_port_is_not_taken_for_a_server(self):
        class NotUs(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"<!DOCTYPE HTML><html><body>Not Found</body></html>"
                self.send_response(404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.HTTPServer(("127.0.0.1", 0), NotUs)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        foreign = "http://127.0.0.1:%d" % httpd.server_address[1]
        try:
            with self.assertRaises(RaylightError) as e:
                ensure_server(url=foreign)
            self.assertIn("is not a raylight server", e.exception.message)
            self.assertNotIn("DOCTYPE", e.exception.message)
            with self.assertRaises(RaylightError) as e:
                RaylightClient(foreign).health()
            self.assertIn("another service", e.exception.message)
            self.assertNotIn("DOCTYPE", e.exception.message)
            # At the default address it is stepped around: the pack starts its own server.
            launcher.DEFAULT_URL = foreign
            client = ensure_server(ranks=1)
            self.assertNotEqual(client.url, foreign)
            self.assertEqual(client.health()["service"], "raylight")
        finally:
            httpd.shutdown()
            httpd.server_close()


class WorkflowTest(unittest.TestCase):
    """The example workflow is consistent: links join existing sockets of matching types, and
    the Raylight nodes' widget values fit their inputs (ComfyUI fills widgets in order)."""

    def test_example_workflow(self):
        import json
        import comfyui  # the node pack; importing it needs neither ComfyUI nor torch
        path = os.path.join(support.ROOT, "comfyui", "example_workflows", "wan_t2v_raylight.json")
        with open(path) as f:
            wf = json.load(f)
        nodes = {n["id"]: n for n in wf["nodes"]}
        self.assertEqual(len(nodes), len(wf["nodes"]))
        for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
            self.assertEqual(nodes[src]["outputs"][src_slot]["type"], kind)
            self.assertIn(link_id, nodes[src]["outputs"][src_slot]["links"])
            self.assertEqual(nodes[dst]["inputs"][dst_slot]["type"], kind)
            self.assertEqual(nodes[dst]["inputs"][dst_slot]["link"], link_id)
        self.assertEqual(wf["last_link_id"], max(l[0] for l in wf["links"]))
        self.assertEqual(wf["last_node_id"], max(nodes))
        widget_types = ("INT", "FLOAT", "STRING", "BOOLEAN")
        for n in wf["nodes"]:
            cls = comfyui.NODE_CLASS_MAPPINGS.get(n["type"])
            if cls is None:
                continue  # a ComfyUI core node
            spec = cls.INPUT_TYPES()
            inputs = list(spec["required"].items()) + list(spec.get("optional", {}).items())
            sockets = [k for k, v in inputs if not (isinstance(v[0], list) or v[0] in widget_types)]
            widgets = [k for k, v in inputs if k not in sockets]
            extra = sum(1 for k, v in inputs if len(v) > 1 and v[1].get("control_after_generate"))
            self.assertEqual([i["name"] for i in n["inputs"]], sockets, n["type"])
            self.assertEqual(len(n["widgets_values"]), len(widgets) + extra, n["type"])
            self.assertEqual([o["type"] for o in n["outputs"]], list(cls.RETURN_TYPES))
        types = {n["type"] for n in wf["nodes"]}
        self.assertTrue({"RaylightInitializer", "RaylightDiffusionModelLoader", "RaylightKSampler"} <= types)

    def test_the_examples_initializer_fits_this_build(self):
        # gpus "auto" and ulysses 0: every GPU the build can use (none on a CPU-only build:
        # one CPU rank), the sequence split left to the server.
        import json
        from comfyui import nodes
        path = os.path.join(support.ROOT, "comfyui", "example_workflows", "wan_t2v_raylight.json")
        with open(path) as f:
            node = next(n for n in json.load(f)["nodes"] if n["type"] == "RaylightInitializer")
        cluster = nodes.plan_cluster(*node["widgets_values"])
        gpus = launcher.usable_gpus()
        if gpus:
            self.assertEqual((cluster["gpus"], cluster["device"]), (list(range(gpus)), None))
        else:
            self.assertEqual((cluster["ranks"], cluster["device"]), (1, "cpu"))
        self.assertIsNone(cluster["layout"]["ulysses"])
        self.assertEqual(cluster["layout"]["dp"], 1)
        self.assertEqual(nodes.plan_cluster("cpu:4", 0, 1, True, False, False)["layout"]["cfg_parallel"], True)
        with self.assertRaises(ValueError):
            nodes.plan_cluster("cpu:2", 0, 2, False, False, False)  # auto picks Ring too
        with self.assertRaises(ValueError):
            nodes.plan_cluster("cpu:3", 0, 1, True, False, False)
        # The repository cloned as a custom node offers the same example workflows.
        self.assertEqual(sorted(os.listdir(os.path.join(support.ROOT, "example_workflows"))),
                         sorted(os.listdir(os.path.join(support.ROOT, "comfyui", "example_workflows"))))


if __name__ == "__main__":
    unittest.main()
