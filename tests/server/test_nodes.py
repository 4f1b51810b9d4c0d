"""The ComfyUI nodes themselves, run without ComfyUI: small stand-ins for the ComfyUI
modules the nodes use (folder_paths, comfy.utils, comfy.model_management,
comfy.latent_formats) record what the nodes do. Needs torch, as ComfyUI does: CMake
registers this file only for an interpreter that has torch (test_client.py needs nothing)."""

import os
import shutil
import sys
import tempfile
import types
import unittest

import support

import torch

server = None


class Recorder:
    bars = []
    interrupt_after = None  # interrupt once a progress bar reached this step


def install_comfy_stubs(models_dir):
    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")

    class ProgressBar:
        def __init__(self, total):
            self.total, self.updates = total, []
            Recorder.bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            self.updates.append((value, total))

    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")

    class InterruptProcessingException(Exception):
        pass

    def interrupted():
        bar = Recorder.bars[-1] if Recorder.bars else None
        return (Recorder.interrupt_after is not None and bar is not None and bar.updates
                and bar.updates[-1][0] >= Recorder.interrupt_after)

    def throw_if_interrupted():
        if interrupted():
            raise InterruptProcessingException()

    mm.InterruptProcessingException = InterruptProcessingException
    mm.processing_interrupted = interrupted
    mm.throw_exception_if_processing_interrupted = throw_if_interrupted
    formats = types.ModuleType("comfy.latent_formats")

    class Wan21:  # a stand-in with an easy-to-check scaling
        def process_in(self, latent):
            return latent * 2.0

        def process_out(self, latent):
            return latent / 2.0

    formats.Wan21 = Wan21
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_filename_list = lambda kind: sorted(os.listdir(models_dir)) if kind == "diffusion_models" else []
    folder_paths.get_full_path_or_raise = lambda kind, name: os.path.join(models_dir, name)
    comfy.utils, comfy.model_management, comfy.latent_formats = utils, mm, formats
    sys.modules.update({"comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm,
                        "comfy.latent_formats": formats, "folder_paths": folder_paths})
    return mm


class NodesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        support.binary()
        cls.tmp = tempfile.mkdtemp(prefix="raylight_nodes_")
        cls.mm = install_comfy_stubs(cls.tmp)
        import comfyui  # the node pack, as ComfyUI imports it
        from comfyui import nodes
        from comfyui.raylight_client import launcher
        cls.nodes, cls.pack, cls.launcher = nodes, comfyui, launcher
        # No server runs at the address the pack tries first, so it starts its own.
        os.environ.pop("RAYLIGHT_URL", None)
        cls.launcher.DEFAULT_URL = "http://127.0.0.1:9"

    @classmethod
    def tearDownClass(cls):
        handle = cls.launcher.started_server()
        if handle is not None:
            kids = support.descendants(handle.process.pid)
            assert handle.stop() == 0, handle.log()
            cls.launcher._started = None
            assert not [p for p in kids if support.alive(p)]
        shutil.rmtree(cls.tmp, ignore_errors=True)
        for name in ("comfy", "comfy.utils", "comfy.model_management", "comfy.latent_formats", "folder_paths"):
            sys.modules.pop(name, None)

    def setUp(self):
        Recorder.bars.clear()
        Recorder.interrupt_after = None

    def graph(self, gpus="cpu:1", ulysses=1):
        (cluster,) = self.nodes.RaylightInitializer().initialize(gpus, ulysses, 1, False, False, False)
        (model,) = self.nodes.RaylightDiffusionModelLoader().load(cluster, "tiny")
        return model

    def inputs(self, batch=1):
        g = torch.Generator().manual_seed(1)
        pos = [[torch.randn(1, 7, 64, generator=g), {"pooled_output": None}]]
        neg = [[torch.randn(1, 3, 64, generator=g), {}]]
        latent = {"samples": torch.zeros(batch, 16, 2, 8, 8)}
        return pos, neg, latent

    def test_the_pack_registers_its_nodes(self):
        self.assertEqual(set(self.pack.NODE_CLASS_MAPPINGS),
                         {"RaylightInitializer", "RaylightDiffusionModelLoader", "RaylightKSampler"})
        self.assertIn("tiny", self.nodes.RaylightDiffusionModelLoader.INPUT_TYPES()["required"]["unet_name"][0])
        req = self.nodes.RaylightKSampler.INPUT_TYPES()["required"]
        self.assertEqual(list(req)[:4], ["model", "seed", "steps", "cfg"])
        for name in ("sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"):
            self.assertIn(name, req)

    def test_sampler_matches_the_client_and_moves_the_progress_bar(self):
        model = self.graph()
        pos, neg, latent = self.inputs()
        (out,) = self.nodes.RaylightKSampler().sample(model, 42, 4, 5.0, "uni_pc_bh2", "simple", pos, neg, latent, 1.0, 5.0)
        self.assertEqual(tuple(out["samples"].shape), (1, 16, 2, 8, 8))
        self.assertEqual(Recorder.bars[-1].updates[-1], (4, 4))
        # The same request by hand: ComfyUI's seeded noise, the simple schedule, latents out / 2.
        noise = torch.randn((1, 16, 2, 8, 8), generator=torch.manual_seed(42))
        st = sys.modules["comfyui.raylight_client.safetensors_io"]
        client = self.launcher.started_server().client
        direct = client.sample({"context": st.from_torch(pos[0][0][0]), "negative": st.from_torch(neg[0][0][0]),
                                "noise": st.from_torch(noise)},
                               {"sampler": "unipc", "cfg": 5.0, "steps": 4, "shift": 5.0})
        self.assertTrue(torch.equal(out["samples"], st.to_torch(direct["latent"]) / 2.0))

    def test_denoise_and_batches(self):
        model = self.graph()
        pos, neg, latent = self.inputs(batch=2)
        latent["samples"] = torch.ones(2, 16, 2, 8, 8)
        (out,) = self.nodes.RaylightKSampler().sample(model, 1, 4, 1.0, "euler", "normal", pos, neg, latent, 0.3, 5.0)
        self.assertEqual(tuple(out["samples"].shape), (2, 16, 2, 8, 8))
        self.assertTrue(torch.isfinite(out["samples"]).all())
        # Low denoise stays near the input latent.
        self.assertLess((out["samples"] - 1.0).abs().mean().item(), 1.0)

    def test_comfy_interrupt_cancels_the_job(self):
        model = self.graph()
        pos, neg, latent = self.inputs()
        Recorder.interrupt_after = 2
        with self.assertRaises(self.mm.InterruptProcessingException):
            self.nodes.RaylightKSampler().sample(model, 0, 900, 5.0, "euler", "simple", pos, neg, latent, 1.0, 5.0)
        self.assertLess(Recorder.bars[-1].updates[-1][0], 900)
        Recorder.interrupt_after = None
        (out,) = self.nodes.RaylightKSampler().sample(model, 0, 2, 5.0, "euler", "simple", pos, neg, latent, 1.0, 5.0)
        self.assertEqual(tuple(out["samples"].shape), (1, 16, 2, 8, 8))

    def test_a_lost_model_or_server_comes_back(self):
        model = self.graph()
        client = self.launcher.started_server().client
        client.unload()
        pos, neg, latent = self.inputs()
        (out,) = self.nodes.RaylightKSampler().sample(model, 0, 2, 5.0, "dpmpp_2m", "simple", pos, neg, latent, 1.0, 5.0)
        self.assertEqual(client.model()["model"], "tiny")
        self.assertEqual(tuple(out["samples"].shape), (1, 16, 2, 8, 8))
        # The server went away (stopped, or a rank died): the next run starts a new one.
        old = self.launcher.started_server()
        self.assertEqual(old.stop(), 0)
        (again,) = self.nodes.RaylightKSampler().sample(model, 0, 2, 5.0, "dpmpp_2m", "simple", pos, neg, latent, 1.0, 5.0)
        self.assertTrue(torch.equal(again["samples"], out["samples"]))
        self.assertIsNot(self.launcher.started_server(), old)
        self.assertTrue(self.launcher.started_server().running())

    def test_the_latent_format_follows_the_server(self):
        # The tiny model reports ComfyUI's Wan21 format: the stand-in class of that name is used.
        self.graph()
        info = self.launcher.started_server().client.model()
        self.assertEqual(info["latent_format"]["comfyui"], "Wan21")
        self.assertEqual(info["latent_format"]["item_dims"], 4)
        self.assertEqual([c["name"] for c in info["conditioning"]], ["context"])
        self.assertIsInstance(self.nodes.latent_format(info), sys.modules["comfy.latent_formats"].Wan21)
        # A format ComfyUI lacks converts with the reported numbers, per channel.
        unknown = dict(info, latent_format=dict(info["latent_format"], comfyui="NotInComfy"))
        fmt = self.nodes.latent_format(unknown)
        x = torch.randn(1, 16, 2, 3, 3, generator=torch.Generator().manual_seed(3))
        mean = torch.tensor(info["latent_format"]["mean"]).view(1, -1, 1, 1, 1)
        std = torch.tensor(info["latent_format"]["std"]).view(1, -1, 1, 1, 1)
        self.assertTrue(torch.allclose(fmt.process_in(x), (x - mean) / std))
        self.assertTrue(torch.allclose(fmt.process_out(fmt.process_in(x)), x, atol=1e-6))
        shifted = self.nodes.ReportedLatentFormat({"scale_factor": 0.5, "shift_factor": 0.25})
        self.assertTrue(torch.allclose(shifted.process_in(x), (x - 0.25) * 0.5))
        self.assertTrue(torch.allclose(shifted.process_out(shifted.process_in(x)), x, atol=1e-6))

    def test_an_image_family_samples_through_the_same_nodes(self):
        # Flux: 4-D latents, a pooled vector from the conditioning's options, FluxGuidance's
        # value, and a latent format ComfyUI's stand-in module lacks (the reported numbers).
        fixtures = os.path.join(os.path.dirname(__file__), "..", "fixtures")
        shutil.copy(os.path.join(fixtures, "flux_tiny_dev.safetensors"), os.path.join(self.tmp, "flux1-dev-tiny.safetensors"))
        (cluster,) = self.nodes.RaylightInitializer().initialize("cpu:1", 1, 1, False, False, False)
        (model,) = self.nodes.RaylightDiffusionModelLoader().load(cluster, "flux1-dev-tiny.safetensors")
        g = torch.Generator().manual_seed(4)
        ctx, pooled = torch.randn(1, 5, 32, generator=g), torch.randn(1, 24, generator=g)
        pos = [[ctx, {"pooled_output": pooled, "guidance": 2.5}]]
        latent = {"samples": torch.zeros(1, 16, 6, 8)}
        (out,) = self.nodes.RaylightKSampler().sample(model, 7, 4, 1.0, "euler", "simple", pos, [], latent, 1.0, 1.6)
        self.assertEqual(tuple(out["samples"].shape), (1, 16, 6, 8))
        st = sys.modules["comfyui.raylight_client.safetensors_io"]
        client = self.launcher.started_server().client
        info = client.model()
        self.assertEqual(info["family"], "Flux.1")
        self.assertEqual(info["latent_format"]["comfyui"], "Flux")
        noise = torch.randn((1, 16, 6, 8), generator=torch.manual_seed(7))
        direct = client.sample({"context": st.from_torch(ctx[0]), "pooled": st.from_torch(pooled[0]),
                                "noise": st.from_torch(noise)},
                               {"sampler": "euler", "cfg": 1.0, "steps": 4, "shift": 1.6, "guidance": 2.5})
        # Into ComfyUI's space: x / 0.3611 + 0.1159, the Flux format's process_out.
        want = st.to_torch(direct["latent"]) / 0.3611 + 0.1159
        self.assertTrue(torch.allclose(out["samples"], want, atol=1e-6), (out["samples"] - want).abs().max())
        with self.assertRaises(ValueError):  # a 5-D video latent for an image model
            self.nodes.RaylightKSampler().sample(model, 7, 2, 1.0, "euler", "simple", pos, [],
                                                 {"samples": torch.zeros(1, 16, 1, 6, 8)}, 1.0, 1.6)

    def test_bad_initializer_inputs_say_why(self):
        with self.assertRaises(ValueError):
            self.nodes.RaylightInitializer().initialize("0,0", 1, 1, False, False, False)
        with self.assertRaises(ValueError):
            self.nodes.RaylightInitializer().initialize("cpu:3", 2, 1, False, False, False)
        with self.assertRaises(ValueError):
            self.nodes.RaylightKSampler().sample(self.graph(), 0, 2, 5.0, "euler", "simple", *self.inputs()[:2],
                                                 {"samples": torch.zeros(1, 16, 8, 8)}, 1.0, 5.0)


if __name__ == "__main__":
    unittest.main()
