"""The node pack inside a real ComfyUI: ComfyUI's own server, prompt executor, progress hook
(which raises InterruptProcessingException when the user interrupts) and /interrupt run
the Raylight nodes, as a user's ComfyUI does - no stand-ins. Needs a ComfyUI checkout with
its requirements installed (torch included) in RAYLIGHT_COMFYUI_DIR; CMake registers this
file only where one is found (see tests/server/CMakeLists.txt and docs/server.md).

ComfyUI is started as `python main.py --cpu --base-directory BASE` with the pack linked into
BASE/custom_nodes (the first install layout of comfyui/README.md), beside a test-only pack
that makes conditioning for the tiny model (tests/server/comfyui_test_nodes). Prompts go
through ComfyUI's HTTP API; the pack's own server is found through its state file. At the
end ComfyUI is terminated with SIGTERM (its atexit never runs), and a second ComfyUI, with
the whole repository as the custom node (the second layout), starts clean."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import support
from raylight_client import RaylightClient, launcher

import torch
from safetensors.torch import load_file

COMFYUI = os.environ.get("RAYLIGHT_COMFYUI_DIR", "")
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def workflow(steps=4, seed=42, gpus="cpu:1", batch=1, denoise=1.0, cfg=5.0, sampler="euler", prefix="raylight"):
    """A prompt in ComfyUI's API format: Raylight's three nodes, ComfyUI's Wan latent and
    SaveLatent, and the test pack's conditioning."""
    return {
        "1": {"class_type": "RaylightInitializer",
              "inputs": {"gpus": gpus, "ulysses_degree": 1, "ring_degree": 1, "cfg_parallel": False,
                         "fsdp": False, "offload": False}},
        "2": {"class_type": "RaylightDiffusionModelLoader", "inputs": {"cluster": ["1", 0], "unet_name": "tiny"}},
        "3": {"class_type": "RaylightTestConditioning", "inputs": {"seed": 1, "tokens": 7, "dim": 64}},
        "4": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": {"width": 64, "height": 64, "length": 5, "batch_size": batch}},
        "5": {"class_type": "RaylightKSampler",
              "inputs": {"model": ["2", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler,
                         "scheduler": "simple", "positive": ["3", 0], "negative": ["3", 1],
                         "latent_image": ["4", 0], "denoise": denoise, "shift": 5.0}},
        "6": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": prefix}},
    }


class ComfyUI:
    """A ComfyUI process with its own base directory; `pack` is what custom_nodes/raylight is."""

    def __init__(self, base, pack):
        self.base = base
        nodes = os.path.join(base, "custom_nodes")
        os.makedirs(nodes, exist_ok=True)
        for name, target in (("raylight", pack), ("raylight_test_nodes", os.path.join(HERE, "comfyui_test_nodes"))):
            link = os.path.join(nodes, name)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(target, link)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(base, "comfyui-%d.log" % self.port)
        env = dict(os.environ)
        env.pop("RAYLIGHT_URL", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                 "--base-directory", base, "--disable-auto-launch"],
                cwd=COMFYUI, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def api(self, method, path, payload=None, timeout=30):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
                return r.status, json.loads(body) if body else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def wait_ready(self, timeout=300):
        def ready():
            if self.process.poll() is not None:
                raise AssertionError("ComfyUI exited:\n" + self.log()[-5000:])
            try:
                return self.api("GET", "/api/system_stats", timeout=5)[0] == 200
            except OSError:
                return False
        if not wait_for(ready, timeout, 0.5):
            raise AssertionError("ComfyUI did not answer:\n" + self.log()[-5000:])

    def submit(self, graph):
        status, body = self.api("POST", "/api/prompt", {"prompt": graph, "client_id": "raylight-tests"})
        assert status == 200, body
        return body["prompt_id"]

    def wait(self, prompt_id, timeout=180):
        def done():
            status, body = self.api("GET", "/api/history/" + prompt_id)
            entry = body.get(prompt_id) if status == 200 and body else None
            return entry if entry and entry.get("status", {}).get("completed") is not None and \
                (entry["status"]["completed"] or entry["status"].get("status_str") == "error") else None
        entry = wait_for(done, timeout, 0.2)
        assert entry, "prompt %s did not end within %s s:\n%s" % (prompt_id, timeout, self.log()[-5000:])
        return entry

    def run(self, graph, timeout=180):
        return self.wait(self.submit(graph), timeout)

    def terminate(self):
        """SIGTERM, as a service manager or a closed terminal sends it: Python's atexit does not run."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def messages(entry):
    return [m[0] for m in entry["status"].get("messages", [])]


def error_text(entry):
    return " ".join(json.dumps(m[1]) for m in entry["status"].get("messages", []) if m[0] == "execution_error")


def pack_server():
    """(state, client) of the server the pack in ComfyUI started (its state file)."""
    with open(os.path.join(support.STATE_DIR, launcher.STATE_FILE)) as f:
        state = json.load(f)
    return state, RaylightClient(state["url"], token=state["token"])


def server_tree(state):
    return [state["pid"]] + support.descendants(state["pid"])


class RealComfyUITest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(os.path.join(COMFYUI, "main.py")):
            raise RuntimeError("set RAYLIGHT_COMFYUI_DIR to a ComfyUI checkout with its requirements installed "
                               "(CMake registers this test only where it finds one)")
        support.binary()
        cls.base = tempfile.mkdtemp(prefix="raylight_comfyui_")
        cls.comfy = ComfyUI(cls.base, os.path.join(support.ROOT, "comfyui"))
        cls.comfy.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.comfy.terminate()
        # Whatever a failed test left: no server of the pack's may outlive the tests.
        try:
            state, _ = pack_server()
            for pid in server_tree(state):
                if support.alive(pid):
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
        shutil.rmtree(cls.base, ignore_errors=True)

    def saved_latent(self, entry):
        files = entry["outputs"]["6"]["latents"]
        self.assertEqual(len(files), 1)
        path = os.path.join(self.base, "output", files[0]["subfolder"], files[0]["filename"])
        return load_file(path)["latent_tensor"]

    def test_1_a_workflow_samples_on_the_ranks_with_comfyuis_noise(self):
        entry = self.comfy.run(workflow(steps=4, seed=42))
        self.assertEqual(entry["status"]["status_str"], "success", entry["status"])
        got = self.saved_latent(entry)
        self.assertEqual(tuple(got.shape), (1, 16, 2, 8, 8))
        # The same request made by hand: ComfyUI's seeded noise and conditioning, the "simple"
        # schedule, latents out through Wan 2.1's format. ComfyUI computes the schedule in
        # float32 where Raylight's is double, so the two agree to ~1e-5, not bit for bit; a
        # wrong noise, conditioning or format would be off by O(1).
        from raylight_client import safetensors_io as st
        g = torch.Generator().manual_seed(1)
        pos, neg = torch.randn(1, 7, 64, generator=g), torch.randn(1, 3, 64, generator=g)
        noise = torch.randn((1, 16, 2, 8, 8), generator=torch.manual_seed(42))
        state, client = pack_server()
        direct = client.sample({"context": st.from_torch(pos[0]), "negative": st.from_torch(neg[0]),
                                "noise": st.from_torch(noise)},
                               {"sampler": "euler", "cfg": 5.0, "steps": 4, "shift": 5.0})
        sys.path.insert(0, COMFYUI)
        try:
            import comfy.latent_formats
        finally:
            sys.path.remove(COMFYUI)
        want = comfy.latent_formats.Wan21().process_out(st.to_torch(direct["latent"]))
        self.assertLess((got - want).abs().max().item(), 1e-3)
        other = self.saved_latent(self.comfy.run(workflow(steps=4, seed=43)))
        self.assertGreater((other - want).abs().max().item(), 0.1)

    def test_2_interrupt_cancels_the_job_on_the_ranks(self):
        self.comfy.run(workflow(steps=2, seed=5))  # the server is up and the model loaded
        _, client = pack_server()
        prompt = self.comfy.submit(workflow(steps=900, seed=6))

        def running():
            jobs = [j for j in client.jobs() if j.get("total") == 900]
            return jobs[0] if jobs and jobs[0]["state"] == "running" and jobs[0]["step"] >= 2 else None

        self.assertTrue(wait_for(running, 60, 0.05), "the 900-step job never ran")
        t0 = time.monotonic()
        self.assertEqual(self.comfy.api("POST", "/api/interrupt", {})[0], 200)
        entry = self.comfy.wait(prompt, 60)
        self.assertIn("execution_interrupted", messages(entry))

        def ended():
            jobs = [j for j in client.jobs() if j.get("total") == 900]
            return jobs[0] if jobs[0]["state"] not in ("queued", "running") else None

        job = wait_for(ended, 20)
        self.assertIsNotNone(job, "Interrupt left the job running on the ranks")
        self.assertEqual(job["state"], "cancelled")
        self.assertLess(job["step"], 900)
        self.assertLess(time.monotonic() - t0, 20)
        # The next prompt does not wait behind the interrupted one.
        t1 = time.monotonic()
        entry = self.comfy.run(workflow(steps=2, seed=7), timeout=60)
        self.assertEqual(entry["status"]["status_str"], "success", entry["status"])
        self.assertLess(time.monotonic() - t1, 30)

    def test_3_a_lost_model_or_server_comes_back(self):
        state, client = pack_server()
        client.unload()
        entry = self.comfy.run(workflow(steps=2, seed=9))
        self.assertEqual(entry["status"]["status_str"], "success", entry["status"])
        self.assertEqual(client.model()["model"], "tiny")
        # The server goes away (stopped by hand here; a crash is the same to the pack).
        tree = server_tree(state)
        client.shutdown()
        self.assertTrue(wait_for(lambda: not any(support.alive(p) for p in tree), 60))
        entry = self.comfy.run(workflow(steps=2, seed=10))
        self.assertEqual(entry["status"]["status_str"], "success", entry["status"])
        new_state, new_client = pack_server()
        self.assertNotEqual(new_state["pid"], state["pid"])
        self.assertEqual(new_client.model()["model"], "tiny")
        self.assertFalse(os.path.exists(state["workdir"]), "the dead server's files were left behind")

    def test_4_bad_inputs_say_why(self):
        entry = self.comfy.run(workflow(gpus="0,0", seed=11))
        self.assertEqual(entry["status"]["status_str"], "error")
        self.assertIn("distinct", error_text(entry))

    def test_5_the_example_workflow_is_offered_as_a_template(self):
        status, templates = self.comfy.api("GET", "/api/workflow_templates")
        self.assertEqual(status, 200)
        self.assertIn("wan_t2v_raylight", templates.get("raylight", []), templates)
        status, wf = self.comfy.api("GET", "/api/workflow_templates/raylight/wan_t2v_raylight.json")
        self.assertEqual(status, 200)
        self.assertIn("RaylightKSampler", {n["type"] for n in wf["nodes"]})
        # The Wan 2.2 A14B split: two Raylight KSampler (Advanced) nodes on the pair loader's two
        # outputs, whose widgets are the nodes' inputs in ComfyUI's order.
        self.assertIn("wan22_t2v_a14b_raylight", templates.get("raylight", []), templates)
        status, wf = self.comfy.api("GET", "/api/workflow_templates/raylight/wan22_t2v_a14b_raylight.json")
        self.assertEqual(status, 200)
        advanced = [n for n in wf["nodes"] if n["type"] == "RaylightKSamplerAdvanced"]
        self.assertEqual(len(advanced), 2)
        status, info = self.comfy.api("GET", "/api/object_info/RaylightKSamplerAdvanced")
        self.assertEqual(status, 200)
        spec = info["RaylightKSamplerAdvanced"]["input"]
        widgets = [k for part in ("required", "optional") for k, v in spec.get(part, {}).items()
                   if isinstance(v[0], list) or v[0] in ("INT", "FLOAT", "BOOLEAN", "STRING")]
        for node in advanced:  # noise_seed's control_after_generate takes a widget slot of its own
            self.assertEqual(len(node["widgets_values"]), len(widgets) + 1, widgets)
        self.assertEqual([n["widgets_values"][0] for n in advanced], ["enable", "disable"])
        pair = next(n for n in wf["nodes"] if n["type"] == "RaylightDiffusionModelPairLoader")
        self.assertEqual([o["name"] for o in pair["outputs"]], ["high_noise_model", "low_noise_model"])

    def test_7_the_example_workflows_defaults_run_on_this_build(self):
        # The example's Initializer, as the user gets it (gpus "auto", ulysses 0): the ranks
        # this build can use - CPU ranks on a CPU-only build - with the layout the server picks.
        with open(os.path.join(support.ROOT, "comfyui", "example_workflows", "wan_t2v_raylight.json")) as f:
            example = json.load(f)
        node = next(n for n in example["nodes"] if n["type"] == "RaylightInitializer")
        names = ["gpus", "ulysses_degree", "ring_degree", "cfg_parallel", "fsdp", "offload", "server_url", "token",
                 "gpu_memory_limit_gb"]
        graph = workflow(steps=2, seed=14)
        graph["1"]["inputs"] = dict(zip(names, node["widgets_values"]))
        self.assertEqual(graph["1"]["inputs"]["gpus"], "auto")
        entry = self.comfy.run(graph)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])
        self.assertEqual(tuple(self.saved_latent(entry).shape), (1, 16, 2, 8, 8))

    def test_6_the_latent_format_follows_the_server(self):
        # The tiny model reports ComfyUI's Wan21 format: ComfyUI's own class of that name is used.
        _, client = pack_server()
        info = client.model()
        self.assertEqual(info["latent_format"]["comfyui"], "Wan21")
        self.assertEqual(info["latent_format"]["item_dims"], 4)
        self.assertEqual([c["name"] for c in info["conditioning"]], ["context"])
        sys.path.insert(0, COMFYUI)
        try:
            import comfy.latent_formats
            from comfyui import nodes
            self.assertIsInstance(nodes.latent_format(info), comfy.latent_formats.Wan21)
        finally:
            sys.path.remove(COMFYUI)
        # A format ComfyUI lacks converts with the reported numbers, per channel.
        unknown = dict(info, latent_format=dict(info["latent_format"], comfyui="NotInComfy"))
        fmt = nodes.latent_format(unknown)
        x = torch.randn(1, 16, 2, 3, 3, generator=torch.Generator().manual_seed(3))
        mean = torch.tensor(info["latent_format"]["mean"]).view(1, -1, 1, 1, 1)
        std = torch.tensor(info["latent_format"]["std"]).view(1, -1, 1, 1, 1)
        self.assertTrue(torch.allclose(fmt.process_in(x), (x - mean) / std))
        self.assertTrue(torch.allclose(fmt.process_out(fmt.process_in(x)), x, atol=1e-6))
        shifted = nodes.ReportedLatentFormat({"scale_factor": 0.5, "shift_factor": 0.25})
        self.assertTrue(torch.allclose(shifted.process_in(x), (x - 0.25) * 0.5))
        self.assertTrue(torch.allclose(shifted.process_out(shifted.process_in(x)), x, atol=1e-6))

    def test_8_b_wan_image_to_video_conditioning_is_comfyuis(self):
        # Issue 16: WanImageToVideo's conditioning (concat_latent_image, concat_mask,
        # clip_vision_output) becomes y and clip_fea exactly as ComfyUI's WAN21.concat_cond
        # and extra_conds make them (that code itself runs here, on a stand-in model object).
        from raylight_client import safetensors_io as st
        sys.path.insert(0, COMFYUI)
        try:
            import comfy.cli_args
            comfy.cli_args.args.cpu = True  # model_base asks for a device on import
            import comfy.latent_formats
            import comfy.model_base
            from comfyui import nodes

            class Stub:
                pass
            fmt = comfy.latent_formats.Wan21()
            model = Stub()
            model.latent_format, model.process_latent_in, model.image_to_video = fmt, fmt.process_in, True
            model.diffusion_model = Stub()
            model.diffusion_model.patch_embedding = Stub()
            model.diffusion_model.patch_embedding.weight = torch.zeros(8, 36, 1, 2, 2)
            info = {"conditioning": [{"name": "context", "per_prompt": True, "required": True},
                                     {"name": "clip_fea", "per_prompt": False, "required": True},
                                     {"name": "y", "per_prompt": False, "required": True}]}
            g = torch.Generator().manual_seed(9)
            noise = torch.randn(1, 16, 3, 4, 6, generator=g)
            image = torch.randn(1, 16, 3, 4, 6, generator=g)
            for kept in ([0], [0, 2]):  # the start frame; a first and a last latent frame
                mask = torch.ones(1, 1, 3, 4, 6)
                for f in kept:
                    mask[:, :, f] = 0.0
                want = comfy.model_base.WAN21.concat_cond(model, noise=noise, concat_latent_image=image.clone(),
                                                          concat_mask=mask, device="cpu")
                clip = Stub()
                clip.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=g)
                cond = [[torch.zeros(1, 4, 4096), {"concat_latent_image": image, "concat_mask": mask,
                                                   "clip_vision_output": clip}]]
                got = nodes.image_tensors(info, cond, noise, fmt)
                self.assertTrue(torch.allclose(st.to_torch(got["y"]), want[0], atol=1e-6), kept)
                self.assertTrue(torch.equal(st.to_torch(got["clip_fea"]), clip.penultimate_hidden_states[0]))
            # Without WanImageToVideo before it, the sampler says what is missing.
            with self.assertRaises(ValueError) as e:
                nodes.image_tensors(info, [[torch.zeros(1, 4, 4096), {}]], noise, fmt)
            self.assertIn("start frame", str(e.exception))
        finally:
            sys.path.remove(COMFYUI)

    def test_8_an_image_family_samples_through_the_same_nodes(self):
        # Flux: 4-D latents from ComfyUI's SD3/Flux empty latent, a pooled vector from the
        # conditioning's options, FluxGuidance's value, ComfyUI's own Flux latent format.
        models = os.path.join(self.base, "models", "diffusion_models")
        os.makedirs(models, exist_ok=True)
        shutil.copy(os.path.join(support.ROOT, "tests", "fixtures", "flux_tiny_dev.safetensors"),
                    os.path.join(models, "flux1-dev-tiny.safetensors"))
        graph = workflow(steps=4, seed=7, cfg=1.0)
        graph["2"]["inputs"]["unet_name"] = "flux1-dev-tiny.safetensors"
        graph["3"]["inputs"].update({"seed": 4, "tokens": 5, "dim": 32, "pooled": 24, "guidance": 2.5})
        graph["4"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}}
        graph["5"]["inputs"]["shift"] = 1.6
        entry = self.comfy.run(graph)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])
        got = self.saved_latent(entry)
        self.assertEqual(tuple(got.shape), (1, 16, 6, 8))
        _, client = pack_server()
        info = client.model()
        self.assertEqual(info["family"], "Flux.1")
        self.assertEqual(info["latent_format"]["comfyui"], "Flux")
        from raylight_client import safetensors_io as st
        g = torch.Generator().manual_seed(4)
        ctx, pooled = torch.randn(1, 5, 32, generator=g), torch.randn(1, 24, generator=g)
        noise = torch.randn((1, 16, 6, 8), generator=torch.manual_seed(7))
        direct = client.sample({"context": st.from_torch(ctx[0]), "pooled": st.from_torch(pooled[0]),
                                "noise": st.from_torch(noise)},
                               {"sampler": "euler", "cfg": 1.0, "steps": 4, "shift": 1.6, "guidance": 2.5})
        # Into ComfyUI's space: x / 0.3611 + 0.1159, the Flux format's process_out (the
        # schedule in float32 against double, as in test_1).
        want = st.to_torch(direct["latent"]) / 0.3611 + 0.1159
        self.assertLess((got - want).abs().max().item(), 1e-3)
        # A 5-D video latent for an image model says why.
        graph["4"] = {"class_type": "EmptyHunyuanLatentVideo",
                      "inputs": {"width": 64, "height": 48, "length": 5, "batch_size": 1}}
        entry = self.comfy.run(graph)
        self.assertEqual(entry["status"]["status_str"], "error")
        self.assertIn("latents of 4 dimensions", error_text(entry))

    def test_10_a_lora_through_the_loader_node_is_the_servers_lora_and_removing_restores(self):
        # A kohya-style LoRA on the tiny model's first query projection, in ComfyUI's loras folder.
        loras = os.path.join(self.base, "models", "loras")
        os.makedirs(loras, exist_ok=True)
        g = torch.Generator().manual_seed(20)
        q = "diffusion_model.blocks.0.self_attn.q"
        from safetensors.torch import save_file
        save_file({q + ".lora_down.weight": torch.randn(2, 128, generator=g) * 0.3,
                   q + ".lora_up.weight": torch.randn(128, 2, generator=g) * 0.3},
                  os.path.join(loras, "tiny_query.safetensors"))
        base_graph = workflow(steps=4, seed=21, prefix="lora_base")
        lora_graph = workflow(steps=4, seed=21, prefix="lora_on")
        lora_graph["7"] = {"class_type": "RaylightLoraLoader",
                           "inputs": {"model": ["2", 0], "lora_name": "tiny_query.safetensors", "strength_model": 1.5}}
        lora_graph["5"]["inputs"]["model"] = ["7", 0]
        base = self.saved_latent(self.comfy.run(base_graph))
        entry = self.comfy.run(lora_graph)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])
        with_lora = self.saved_latent(entry)
        self.assertGreater((with_lora - base).abs().max().item(), 1e-2, "the LoRA changed nothing")
        # The same LoRA applied on the server by hand gives the node's result (the schedule in
        # float32 against double, as in test_1).
        from raylight_client import safetensors_io as st
        state, client = pack_server()
        lora_path = client.model()["loras"][0]["path"]
        self.assertEqual(os.path.realpath(lora_path), os.path.realpath(os.path.join(loras, "tiny_query.safetensors")))
        gen = torch.Generator().manual_seed(1)
        pos, neg = torch.randn(1, 7, 64, generator=gen), torch.randn(1, 3, 64, generator=gen)
        noise = torch.randn((1, 16, 2, 8, 8), generator=torch.manual_seed(21))
        direct = client.sample({"context": st.from_torch(pos[0]), "negative": st.from_torch(neg[0]),
                                "noise": st.from_torch(noise)},
                               {"sampler": "euler", "cfg": 5.0, "steps": 4, "shift": 5.0})
        sys.path.insert(0, COMFYUI)
        try:
            import comfy.latent_formats
        finally:
            sys.path.remove(COMFYUI)
        want = comfy.latent_formats.Wan21().process_out(st.to_torch(direct["latent"]))
        self.assertLess((with_lora - want).abs().max().item(), 1e-3)
        # Without the loader node again: the server drops the LoRA and the result is the
        # first one, bit for bit.
        again = self.saved_latent(self.comfy.run(workflow(steps=4, seed=21, prefix="lora_off")))
        self.assertTrue(torch.equal(again, base))
        self.assertEqual(client.model().get("loras", []), [])

    def test_11_text_and_vae_nodes_run_on_the_server_and_mix_with_comfyuis_own(self):
        vaes = os.path.join(self.base, "models", "vae")
        os.makedirs(vaes, exist_ok=True)
        shutil.copy(os.path.join(support.ROOT, "tests", "fixtures", "wan_vae_tiny.safetensors"),
                    os.path.join(vaes, "wan_vae_tiny.safetensors"))
        graph = workflow(steps=4, seed=31, prefix="parts")
        graph["3"] = {"class_type": "RaylightTextEncode",
                      "inputs": {"model": ["2", 0], "text": "a red fox in the snow", "text_encoder": "default"}}
        graph["8"] = {"class_type": "RaylightTextEncode",
                      "inputs": {"model": ["2", 0], "text": "", "text_encoder": "default"}}
        graph["5"]["inputs"]["positive"] = ["3", 0]
        graph["5"]["inputs"]["negative"] = ["8", 0]
        # Ours and ComfyUI's own decoder on the same latent; ComfyUI's encoder on our pictures
        # into our decoder; our encoder on them beside ComfyUI's.
        graph["10"] = {"class_type": "RaylightVAEDecode",
                       "inputs": {"model": ["2", 0], "samples": ["5", 0], "vae_name": "wan_vae_tiny.safetensors"}}
        graph["11"] = {"class_type": "VAELoader", "inputs": {"vae_name": "wan_vae_tiny.safetensors"}}
        graph["12"] = {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["11", 0]}}
        graph["13"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["11", 0]}}
        graph["14"] = {"class_type": "RaylightVAEDecode",
                       "inputs": {"model": ["2", 0], "samples": ["13", 0], "vae_name": "wan_vae_tiny.safetensors"}}
        graph["15"] = {"class_type": "RaylightVAEEncode",
                       "inputs": {"model": ["2", 0], "pixels": ["10", 0], "vae_name": "wan_vae_tiny.safetensors"}}
        graph["16"] = {"class_type": "VAEDecode", "inputs": {"samples": ["15", 0], "vae": ["11", 0]}}
        for node, source in (("20", ["10", 0]), ("21", ["12", 0]), ("22", ["14", 0]), ("23", ["16", 0])):
            graph[node] = {"class_type": "RaylightTestSaveTensors", "inputs": {"filename": "img" + node, "image": source}}
        graph["24"] = {"class_type": "RaylightTestSaveTensors",
                       "inputs": {"filename": "cond", "conditioning": ["3", 0]}}
        t0 = time.monotonic()
        entry = self.comfy.run(graph)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])

        def saved(name, key="image"):
            return load_file(os.path.join(self.base, "output", name + ".safetensors"))[key]

        ours, theirs = saved("img20"), saved("img21")
        self.assertEqual(tuple(ours.shape), (5, 64, 64, 3))  # ComfyUI's IMAGE: frames, H, W, RGB in [0, 1]
        self.assertEqual(ours.shape, theirs.shape)
        self.assertLess((ours - theirs).abs().max().item(), 2e-2, "our decode differs from ComfyUI's")
        # Round trips through either encoder and the other decoder land near the pictures.
        self.assertEqual(saved("img22").shape, ours.shape)
        self.assertEqual(saved("img23").shape, ours.shape)
        # Our conditioning is the server's text encoding, and sampling with it is /v1/sample's.
        from raylight_client import safetensors_io as st
        _, client = pack_server()
        context = st.to_torch(client.text_encode("a red fox in the snow")["context"])
        self.assertTrue(torch.equal(saved("cond", "context")[0], context))
        negative = st.to_torch(client.text_encode("")["context"])
        noise = torch.randn((1, 16, 2, 8, 8), generator=torch.manual_seed(31))
        direct = client.sample({"context": st.from_torch(context), "negative": st.from_torch(negative),
                                "noise": st.from_torch(noise)},
                               {"sampler": "euler", "cfg": 5.0, "steps": 4, "shift": 5.0})
        sys.path.insert(0, COMFYUI)
        try:
            import comfy.latent_formats
        finally:
            sys.path.remove(COMFYUI)
        want = comfy.latent_formats.Wan21().process_out(st.to_torch(direct["latent"]))
        self.assertLess((self.saved_latent(entry) - want).abs().max().item(), 1e-3)
        print("\n  parts workflow: %.1f s" % (time.monotonic() - t0))

    def test_12_reference_latents_reach_the_model_as_kontext_references(self):
        # ComfyUI's own ReferenceLatent puts a latent into the conditioning (as Kontext
        # workflows do); the sampler sends it as reference.0 in the model's space.
        models = os.path.join(self.base, "models", "diffusion_models")
        os.makedirs(models, exist_ok=True)
        shutil.copy(os.path.join(support.ROOT, "tests", "fixtures", "flux_tiny_dev.safetensors"),
                    os.path.join(models, "flux1-kontext-dev-tiny.safetensors"))
        graph = workflow(steps=4, seed=7, cfg=1.0)  # 4: ComfyUI's simple schedule = ours
        graph["2"]["inputs"]["unet_name"] = "flux1-kontext-dev-tiny.safetensors"
        graph["3"]["inputs"].update({"seed": 4, "tokens": 5, "dim": 32, "pooled": 24, "guidance": 2.5})
        graph["4"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}}
        graph["9"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 48, "height": 32, "batch_size": 1}}
        graph["10"] = {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["3", 0], "latent": ["9", 0]}}
        graph["5"]["inputs"]["positive"] = ["10", 0]
        graph["5"]["inputs"]["shift"] = 1.6
        entry = self.comfy.run(graph)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])
        got = self.saved_latent(entry)
        _, client = pack_server()
        from raylight_client import safetensors_io as st
        g = torch.Generator().manual_seed(4)
        ctx, pooled = torch.randn(1, 5, 32, generator=g), torch.randn(1, 24, generator=g)
        noise = torch.randn((1, 16, 6, 8), generator=torch.manual_seed(7))
        ref = (torch.zeros(16, 4, 6) - 0.1159) * 0.3611  # the empty latent in the model's space
        params = {"sampler": "euler", "cfg": 1.0, "steps": 4, "shift": 1.6, "guidance": 2.5}
        inputs = {"context": st.from_torch(ctx[0]), "pooled": st.from_torch(pooled[0]), "noise": st.from_torch(noise)}
        plain = st.to_torch(client.sample(dict(inputs), params)["latent"]) / 0.3611 + 0.1159
        inputs["reference.0"] = st.from_torch(ref)
        want = st.to_torch(client.sample(inputs, params)["latent"]) / 0.3611 + 0.1159
        self.assertLess((got - want).abs().max().item(), 1e-3)
        self.assertGreater((plain - want).abs().max().item(), 1e-3)  # the reference mattered

    def test_9_sigterm_ends_the_server_and_the_next_comfyui_starts_clean(self):
        self.comfy.run(workflow(steps=2, seed=12))
        state, _ = pack_server()
        tree = server_tree(state)
        self.assertGreaterEqual(len(tree), 1)
        self.comfy.terminate()
        self.assertTrue(wait_for(lambda: not any(support.alive(p) for p in tree), 60),
                        "the pack's server outlived ComfyUI")
        # The next ComfyUI - the repository itself as the custom node this time, the README's
        # other layout - removes what the old server left and starts its own.
        type(self).comfy = ComfyUI(self.base, support.ROOT)
        self.comfy.wait_ready()
        entry = self.comfy.run(workflow(steps=2, seed=13))
        self.assertEqual(entry["status"]["status_str"], "success", entry["status"])
        # The example workflow is offered in this layout too.
        self.test_5_the_example_workflow_is_offered_as_a_template()
        new_state, client = pack_server()
        self.assertNotEqual(new_state["pid"], state["pid"])
        self.assertFalse(os.path.exists(state["workdir"]))
        self.assertEqual(sorted(os.listdir(support.STATE_DIR)),
                         sorted([launcher.STATE_FILE, os.path.basename(new_state["workdir"])]))
        self.assertEqual(client.health()["ranks"], 1)

    def test_13_wan_image_to_video_on_the_ranks_is_comfyuis(self):
        # Our node encodes the start frame with the server's VAE; ComfyUI's WanImageToVideo
        # with its own VAE loader: the same conditioning, and the empty latent.
        vaes = os.path.join(self.base, "models", "vae")
        os.makedirs(vaes, exist_ok=True)
        shutil.copy(os.path.join(support.ROOT, "tests", "fixtures", "wan_vae_tiny.safetensors"),
                    os.path.join(vaes, "wan_vae_tiny.safetensors"))
        base = workflow()
        size = {"width": 64, "height": 48, "length": 5, "batch_size": 1}
        graph = {k: base[k] for k in ("1", "2", "3")}
        graph["30"] = {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 40, "batch_size": 1,
                                                              "color": 0x3366AA}}
        graph["31"] = {"class_type": "VAELoader", "inputs": {"vae_name": "wan_vae_tiny.safetensors"}}
        graph["32"] = {"class_type": "WanImageToVideo",
                       "inputs": dict(size, positive=["3", 0], negative=["3", 1], vae=["31", 0], start_image=["30", 0])}
        graph["33"] = {"class_type": "RaylightWanImageToVideo",
                       "inputs": dict(size, model=["2", 0], positive=["3", 0], negative=["3", 1],
                                      vae_name="wan_vae_tiny.safetensors", start_image=["30", 0])}
        for node, source, name in (("34", ["32", 0], "wi2v_comfy"), ("35", ["33", 0], "wi2v_ours"),
                                   ("36", ["33", 1], "wi2v_ours_negative")):
            graph[node] = {"class_type": "RaylightTestSaveTensors", "inputs": {"filename": name, "conditioning": source}}
        entry = self.comfy.run(graph)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])
        theirs = load_file(os.path.join(self.base, "output", "wi2v_comfy.safetensors"))
        ours = load_file(os.path.join(self.base, "output", "wi2v_ours.safetensors"))
        negative = load_file(os.path.join(self.base, "output", "wi2v_ours_negative.safetensors"))
        self.assertEqual(tuple(ours["concat_latent_image"].shape), (1, 16, 2, 6, 8))
        self.assertEqual(ours["concat_latent_image"].shape, theirs["concat_latent_image"].shape)
        self.assertLess((ours["concat_latent_image"] - theirs["concat_latent_image"]).abs().max().item(), 2e-2)
        self.assertTrue(torch.equal(ours["concat_mask"], theirs["concat_mask"]))
        self.assertTrue(torch.equal(negative["concat_latent_image"], ours["concat_latent_image"]))

    def test_14_ksampler_advanced_splits_a_pair_as_comfyuis_own_and_as_one_run(self):
        # A tiny two-expert Wan pair ComfyUI can load too (head_dim 128, text width 4096):
        # ComfyUI's own UNETLoader + ModelSamplingSD3 + two KSamplerAdvanced nodes, beside our
        # pair loader + two Raylight KSampler (Advanced) nodes, on the same conditioning (padded
        # to Wan's 512 text tokens, as our model pads it) and ComfyUI's seeded noise.
        models = os.path.join(self.base, "models", "diffusion_models")
        os.makedirs(models, exist_ok=True)
        names = write_tiny_pair(models, boundary=875)
        steps, split, shift, seed = 6, 3, 5.0, 42
        common = {"noise_seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
                  "positive": ["3", 0], "negative": ["3", 1]}
        high = dict(common, add_noise="enable", start_at_step=0, end_at_step=split, return_with_leftover_noise="enable",
                    latent_image=["4", 0])
        low = dict(common, add_noise="disable", start_at_step=split, end_at_step=10000,
                   return_with_leftover_noise="disable")
        graph = workflow()
        graph = {k: graph[k] for k in ("1", "4")}
        graph["3"] = {"class_type": "RaylightTestConditioning",
                      "inputs": {"seed": 1, "tokens": 7, "dim": 4096, "pad_to": 512}}
        graph["60"] = {"class_type": "RaylightDiffusionModelPairLoader",
                       "inputs": {"cluster": ["1", 0], "high_noise_unet_name": names[0],
                                  "low_noise_unet_name": names[1]}}
        graph["61"] = {"class_type": "RaylightKSamplerAdvanced", "inputs": dict(high, model=["60", 0], shift=shift)}
        graph["62"] = {"class_type": "RaylightKSamplerAdvanced",
                       "inputs": dict(low, model=["60", 1], latent_image=["61", 0], shift=shift)}
        for node, name in (("70", names[0]), ("71", names[1])):
            graph[node] = {"class_type": "UNETLoader", "inputs": {"unet_name": name, "weight_dtype": "default"}}
            graph[str(int(node) + 2)] = {"class_type": "ModelSamplingSD3", "inputs": {"model": [node, 0], "shift": shift}}
        graph["74"] = {"class_type": "KSamplerAdvanced", "inputs": dict(high, model=["72", 0])}
        graph["75"] = {"class_type": "KSamplerAdvanced", "inputs": dict(low, model=["73", 0], latent_image=["74", 0])}
        for node, source, prefix in (("6", "62", "adv_ours"), ("63", "61", "adv_ours_high"),
                                     ("76", "75", "adv_comfy"), ("77", "74", "adv_comfy_high")):
            graph[node] = {"class_type": "SaveLatent", "inputs": {"samples": [source, 0], "filename_prefix": prefix}}
        entry = self.comfy.run(graph, timeout=600)
        self.assertEqual(entry["status"]["status_str"], "success", error_text(entry) or entry["status"])

        def saved(node):
            files = entry["outputs"][node]["latents"]
            return load_file(os.path.join(self.base, "output", files[0]["subfolder"], files[0]["filename"]))[
                "latent_tensor"]

        ours, theirs = saved("6"), saved("76")
        ours_high, theirs_high = saved("63"), saved("77")
        self.assertEqual(tuple(ours.shape), (1, 16, 2, 8, 8))
        # ComfyUI's own math (its sigmas cut at the split, the leftover-noise LATENT it hands
        # on, the low expert continuing without noise), its own Wan forward in fp32: the same
        # latents to fp32 rounding of two implementations.
        scale = theirs.abs().max().item()
        print("\n  KSamplerAdvanced split, ours vs ComfyUI's own: final max abs %.2e (values up to %.1f), leftover "
              "LATENT %.2e (up to %.1f)" % ((ours - theirs).abs().max().item(), scale,
                                            (ours_high - theirs_high).abs().max().item(),
                                            theirs_high.abs().max().item()))
        self.assertLess((ours_high - theirs_high).abs().max().item(), 1e-4 * theirs_high.abs().max().item())
        self.assertLess((ours - theirs).abs().max().item(), 1e-4 * scale)
        # The two nodes equal one request of the pair switching at its boundary (which falls
        # at the split: 1000 sigma >= 875 for steps 0..2): the same sigmas and noise.
        from raylight_client import safetensors_io as st
        sys.path.insert(0, COMFYUI)
        try:
            import comfy.cli_args
            comfy.cli_args.args.cpu = True
            import comfy.latent_formats
            from comfyui import nodes
            sigmas = nodes.schedule("simple", steps, shift, 1.0)
        finally:
            sys.path.remove(COMFYUI)
        self.assertEqual(sum(1000 * s >= 875 for s in sigmas[:-1]), split)
        _, client = pack_server()
        self.assertEqual(os.path.basename(client.model()["model_low"]), names[1])
        g = torch.Generator().manual_seed(1)
        pos = torch.cat([torch.randn(7, 4096, generator=g), torch.zeros(505, 4096)])
        neg = torch.cat([torch.randn(1, 3, 4096, generator=g)[0], torch.zeros(509, 4096)])
        noise = torch.randn((1, 16, 2, 8, 8), generator=torch.manual_seed(seed))
        inputs = {"context": st.from_torch(pos), "negative": st.from_torch(neg)}
        params = {"sampler": "euler", "cfg": 5.0, "sigmas": sigmas}
        full = st.to_torch(client.sample(dict(inputs, noise=st.from_torch(noise)), params)["latent"])
        fmt = comfy.latent_formats.Wan21()
        self.assertLess((ours - fmt.process_out(full)).abs().max().item(), 1e-5 * scale)
        # On the server the split is the full run bit for bit: the first part's sample with its
        # leftover noise is where the full run stands after step 3.
        first = client.sample(dict(inputs, noise=st.from_torch(noise)),
                              dict(params, end_step=split, return_with_leftover_noise=True, expert="high"))["latent"]
        second = client.sample(dict(inputs, latent=first),
                               dict(params, start_step=split, add_noise=False, expert="low"))["latent"]
        self.assertTrue(torch.equal(st.to_torch(second), full))
        # Each part ran the expert it named: the low expert on the first part differs.
        wrong = client.sample(dict(inputs, noise=st.from_torch(noise)),
                              dict(params, end_step=split, return_with_leftover_noise=True, expert="low"))["latent"]
        self.assertGreater((st.to_torch(wrong) - st.to_torch(first)).abs().max().item(), 1e-3)
        # ComfyUI's LATENT between the nodes is the sample divided by 1 - sigma (its flow
        # inverse_noise_scaling).
        self.assertLess((ours_high - fmt.process_out(st.to_torch(first) / (1.0 - sigmas[split]))).abs().max().item(),
                        1e-5 * ours_high.abs().max().item())


def write_tiny_pair(folder, boundary):
    """A high- and a low-noise Wan expert small enough for a test, in the official names, that
    both ComfyUI (heads = dim / 128, text width 4096) and Raylight (raylight.expert metadata
    naming the pair and its boundary) load. Returns the two file names."""
    import math
    from safetensors.torch import save_file
    dim, ffn, freq, text, ch = 128, 256, 256, 4096, 16
    shapes = {"patch_embedding.weight": (dim, ch, 1, 2, 2), "patch_embedding.bias": (dim,),
              "text_embedding.0.weight": (dim, text), "text_embedding.0.bias": (dim,),
              "text_embedding.2.weight": (dim, dim), "text_embedding.2.bias": (dim,),
              "time_embedding.0.weight": (dim, freq), "time_embedding.0.bias": (dim,),
              "time_embedding.2.weight": (dim, dim), "time_embedding.2.bias": (dim,),
              "time_projection.1.weight": (6 * dim, dim), "time_projection.1.bias": (6 * dim,),
              "head.head.weight": (ch * 4, dim), "head.head.bias": (ch * 4,), "head.modulation": (1, 2, dim)}
    for i in range(2):
        b = "blocks.%d." % i
        for attn in ("self_attn.", "cross_attn."):
            for p in "qkvo":
                shapes[b + attn + p + ".weight"] = (dim, dim)
                shapes[b + attn + p + ".bias"] = (dim,)
            shapes[b + attn + "norm_q.weight"] = shapes[b + attn + "norm_k.weight"] = (dim,)
        shapes.update({b + "norm3.weight": (dim,), b + "norm3.bias": (dim,), b + "ffn.0.weight": (ffn, dim),
                       b + "ffn.0.bias": (ffn,), b + "ffn.2.weight": (dim, ffn), b + "ffn.2.bias": (dim,),
                       b + "modulation": (1, 6, dim)})
    g = torch.Generator().manual_seed(17)
    base = {}
    for name, shape in sorted(shapes.items()):
        n = torch.randn(shape, generator=g)
        if name.endswith(".weight") and len(shape) >= 2:
            base[name] = n / math.sqrt(math.prod(shape[1:]))
        elif "norm" in name and name.endswith(".weight"):
            base[name] = 1.0 + 0.1 * n
        else:
            base[name] = 0.1 * n
    names = []
    for role in ("high", "low"):
        tensors = {k: (v if role == "high" else v + 0.05 * v.std() * torch.randn(v.shape, generator=g)).contiguous()
                   for k, v in base.items()}
        card = {"role": role, "pair": "tiny comfy pair", "boundary": boundary, "cfg_high": 5.0, "cfg_low": 5.0}
        name = "tiny_pair_%s_noise.safetensors" % role
        save_file(tensors, os.path.join(folder, name), metadata={"raylight.expert": json.dumps(card)})
        names.append(name)
    return names


if __name__ == "__main__":
    unittest.main()
