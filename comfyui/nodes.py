"""ComfyUI nodes that hand sampling to `raylight serve`.

They mirror the original Raylight's nodes: an initializer (GPUs, Ulysses and Ring
degrees, CFG parallel, FSDP, offload), a diffusion-model loader reading ComfyUI's model
folders, and a sampler with KSampler's inputs that takes ComfyUI's latent and
conditioning and returns a latent. The model stays loaded on the server's ranks between
runs; ComfyUI keeps only a handle. Noise is made by ComfyUI's own seeded generator and
sent along, so a seed gives the same start as ComfyUI's KSampler; sigmas come from
ComfyUI's schedulers; latents cross in the model's normalised space. Nothing here knows a
model family: the server describes the loaded model (its ComfyUI latent format and the
conversion numbers, the rank of its latents, the conditioning tensors it takes), and the
sampler converts and sends accordingly.
"""

import logging

from .raylight_client import RaylightCancelled, RaylightError, ensure_server, launcher
from .raylight_client import safetensors_io as st
from .raylight_client import schedules

log = logging.getLogger("raylight")


def _comfy(name):
    """A ComfyUI module, or None outside ComfyUI."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


def parse_gpus(text):
    """"0,1,2" -> ([0, 1, 2], None); "cpu:4" -> (None, 4); "auto" -> every GPU the raylight
    build can use here, or one CPU rank when it can use none (a CPU-only build)."""
    text = (text or "").strip().lower()
    if text == "auto":
        n = launcher.usable_gpus()
        return (list(range(n)), None) if n > 0 else (None, 1)
    if text.startswith("cpu"):
        n = text.split(":", 1)[1] if ":" in text else "1"
        if not n.strip().isdigit() or int(n) < 1:
            raise ValueError("write CPU ranks as cpu:N, got %r" % text)
        return None, int(n)
    try:
        gpus = [int(g) for g in text.split(",") if g.strip() != ""]
    except ValueError:
        raise ValueError("GPUs must be a list like 0,1,2,3 (or cpu:N), got %r" % text)
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError("GPUs must be a list of distinct GPU numbers like 0,1, got %r" % text)
    return gpus, None


def plan_cluster(gpus_text, ulysses, ring, cfg_parallel, fsdp, offload, server_url="", token="",
                 gpu_memory_limit_gb=0.0):
    """Ranks and layout. ulysses 0 lets the server split the sequence over every rank CFG
    parallel leaves (Ulysses as far as the model's heads allow, Ring for the rest)."""
    gpus, cpu_ranks = parse_gpus(gpus_text)
    world = len(gpus) if gpus else cpu_ranks
    cfg = 2 if cfg_parallel else 1
    if ulysses == 0:
        if ring != 1:
            raise ValueError("ulysses_degree 0 (auto) chooses Ring too; set ulysses_degree to give ring_degree %d" % ring)
        if world % cfg:
            raise ValueError("%d ranks cannot hold CFG parallel (2 ranks)" % world)
        ulysses = ring = None  # the server splits what CFG parallel leaves
        dp = 1
    else:
        group = ulysses * ring * cfg
        if world % group:
            raise ValueError("%d ranks cannot hold Ulysses %d x Ring %d x CFG %d; the product must divide the ranks"
                             % (world, ulysses, ring, cfg))
        dp = world // group
    return {"gpus": gpus, "ranks": world, "device": "cpu" if cpu_ranks else None,
            "server_url": server_url or None, "token": token or None,
            "layout": {"ulysses": ulysses, "ring": ring, "cfg_parallel": bool(cfg_parallel),
                       "dp": dp, "fsdp": bool(fsdp), "offload": bool(offload),
                       "gpu_memory_limit_gib": float(gpu_memory_limit_gb) if gpu_memory_limit_gb else None}}


def model_folders():
    """ComfyUI's folders of the files the server reads: a server the pack starts reads only there."""
    folder_paths = _comfy("folder_paths")
    if folder_paths is None:
        return []
    dirs = []
    for kind in ("diffusion_models", "text_encoders", "vae", "loras"):
        try:
            dirs += folder_paths.get_folder_paths(kind)
        except (KeyError, AttributeError):
            pass
    return dirs


def cluster_client(cluster):
    return ensure_server(url=cluster["server_url"], token=cluster["token"], gpus=cluster["gpus"],
                         ranks=cluster["ranks"], device=cluster["device"], models_dirs=model_folders())


def ensure_model(handle):
    """The client, with the handle's model loaded (again, if the server restarted or changed)."""
    client = cluster_client(handle["cluster"])
    loaded = client.model()
    want = handle["cluster"]["layout"]
    if not (loaded and loaded.get("model") == handle["path"] and loaded.get("model_low") == handle.get("path_low")
            and all(loaded["layout"].get(k) == want[k] for k in ("ulysses", "ring", "cfg_parallel", "dp")
                    if want[k] is not None)
            and all(loaded.get(k) == want.get(k) for k in ("fsdp", "offload", "gpu_memory_limit_gib"))):
        loaded = client.load(handle["path"], model_low=handle.get("path_low"), **want)
    # LoRAs change without loading the model again; the server re-reads the base weights.
    want_loras = [{"path": l["path"], "strength": float(l["strength"])} for l in handle.get("loras", [])]
    have_loras = [{"path": l["path"], "strength": float(l["strength"])} for l in (loaded or {}).get("loras", [])]
    if want_loras != have_loras:
        client.set_loras(want_loras)
    return client


def conditioning_tensor(cond, what):
    """ComfyUI CONDITIONING ([[tensor [1, tokens, dim], {...}], ...]) -> RawTensor [tokens, dim]."""
    if not cond:
        raise ValueError("%s conditioning is empty" % what)
    if len(cond) > 1:
        log.warning("raylight: %s conditioning has %d entries; only the first is used", what, len(cond))
    t = cond[0][0]
    if t.dim() == 3:
        if t.shape[0] != 1:
            log.warning("raylight: %s conditioning has a batch of %d; only the first is used", what, t.shape[0])
        t = t[0]
    return st.from_torch(t)


def prepare_noise(latent, seed, batch_index=None):
    """ComfyUI's seeded noise for a latent (comfy.sample.prepare_noise when available)."""
    sample = _comfy("comfy.sample")
    if sample is not None:
        return sample.prepare_noise(latent, seed, batch_index)
    import torch
    generator = torch.manual_seed(seed)
    return torch.randn(latent.size(), dtype=torch.float32, layout=latent.layout, generator=generator, device="cpu")


def flow_sampling(shift):
    """ComfyUI's flow model sampling with `shift` (None outside ComfyUI)."""
    model_sampling = _comfy("comfy.model_sampling")
    if model_sampling is None:
        return None

    class FlowSampling(model_sampling.ModelSamplingDiscreteFlow, model_sampling.CONST):
        pass

    ms = FlowSampling(None)
    ms.set_parameters(shift=shift, multiplier=1000)
    return ms


def leftover_in(latent, sigma, shift):
    """A LATENT that an earlier KSamplerAdvanced returned with leftover noise -> the sample at
    `sigma`, as ComfyUI's sampler makes it with add_noise disabled: noise_scaling(sigma, 0,
    latent) = (1 - sigma) latent for a flow model (ComfyUI's LATENT holds x / (1 - sigma))."""
    ms = flow_sampling(shift)
    if ms is not None:
        import torch
        return ms.noise_scaling(torch.tensor([sigma], dtype=latent.dtype), torch.zeros_like(latent), latent)
    return latent * (1.0 - sigma)


def leftover_out(sample, sigma, shift):
    """The sample at `sigma` -> ComfyUI's LATENT (inverse_noise_scaling: x / (1 - sigma) for a
    flow model; the identity at sigma 0, or on a ComfyUI without it)."""
    ms = flow_sampling(shift)
    if ms is not None:
        if not hasattr(ms, "inverse_noise_scaling"):
            return sample
        import torch
        return ms.inverse_noise_scaling(torch.tensor([sigma], dtype=sample.dtype), sample)
    return sample / (1.0 - sigma) if sigma > 0 else sample


def schedule(scheduler, steps, shift, denoise):
    """Sigmas for ComfyUI's scheduler on a flow model with `shift` (ComfyUI's own when present)."""
    samplers = _comfy("comfy.samplers")
    ms = flow_sampling(shift)
    if samplers is not None and ms is not None:
        def sigmas_for(n):
            return [float(s) for s in samplers.calculate_sigmas(ms, scheduler, n)]
    else:
        def sigmas_for(n):
            return schedules.flow_sigmas(scheduler, n, shift)
    return schedules.denoised_sigmas(sigmas_for, steps, denoise)


class ReportedLatentFormat:
    """The conversion the server reports for a family ComfyUI has no latent format class for:
    in = (x - mean) * scale / std per channel, or (x - shift) * scale."""

    def __init__(self, fmt):
        self.scale = float(fmt.get("scale_factor", 1.0))
        self.shift = float(fmt.get("shift_factor", 0.0))
        self.mean, self.std = fmt.get("mean"), fmt.get("std")

    def _stats(self, latent):
        import torch
        shape = [1, -1] + [1] * (latent.dim() - 2)
        mean = torch.tensor(self.mean, dtype=latent.dtype, device=latent.device).view(shape)
        std = torch.tensor(self.std, dtype=latent.dtype, device=latent.device).view(shape)
        return mean, std

    def process_in(self, latent):
        if self.mean is None:
            return (latent - self.shift) * self.scale
        mean, std = self._stats(latent)
        return (latent - mean) * self.scale / std

    def process_out(self, latent):
        if self.mean is None:
            return latent / self.scale + self.shift
        mean, std = self._stats(latent)
        return latent * std / self.scale + mean


def latent_format(info):
    """ComfyUI's own latent format class for the loaded model when it has one (so latents
    convert exactly as its KSampler does), else the server's numbers."""
    fmt = (info or {}).get("latent_format") or {}
    formats = _comfy("comfy.latent_formats")
    name = fmt.get("comfyui")
    if formats is not None and name and hasattr(formats, name):
        return getattr(formats, name)()
    if not fmt:
        raise RuntimeError("the server did not describe the loaded model's latent format")
    return ReportedLatentFormat(fmt)


# Where a conditioning input of the loaded model comes from in ComfyUI's CONDITIONING:
# the token tensor itself, or an entry of its options dict.
CONDITIONING_SOURCES = {"context": None, "pooled": "pooled_output"}


def distilled_guidance(info, cond):
    """FluxGuidance's value from the positive conditioning, for models with a guidance
    input (None: the model has none, or the server's default applies)."""
    names = [inp["name"] for inp in (info or {}).get("conditioning", [])]
    if "guidance" not in names or not cond:
        return None
    value = cond[0][1].get("guidance")
    return float(value) if value is not None else None


def prompt_tensors(info, cond, what, negative):
    """The per-prompt inputs the loaded model takes, read from a CONDITIONING, under the
    names the server expects (the input's name, or its negative name)."""
    tensors = {}
    for inp in (info or {}).get("conditioning", [{"name": "context", "per_prompt": True, "required": True,
                                                   "negative_name": "negative"}]):
        if not inp.get("per_prompt"):
            continue
        name = inp["negative_name"] if negative else inp["name"]
        if inp["name"] not in CONDITIONING_SOURCES:
            if inp.get("required"):
                raise ValueError("the loaded model needs %r, which Raylight's sampler cannot read from ComfyUI's "
                                 "conditioning yet" % inp["name"])
            continue
        key = CONDITIONING_SOURCES[inp["name"]]
        if key is None:
            tensors[name] = conditioning_tensor(cond, what)
        elif cond and key in cond[0][1] and cond[0][1][key] is not None:
            tensors[name] = st.from_torch(cond[0][1][key])
        elif inp.get("required"):
            raise ValueError("%s conditioning has no %s, which the loaded model needs" % (what, key))
    return tensors


def reference_tensors(info, cond, fmt):
    """ComfyUI's reference latents (set by ReferenceLatent, as Flux Kontext workflows do) from
    the positive conditioning, as the loaded model's shared inputs reference.0 ..
    reference.N-1: in the model's latent space (process_in, as ComfyUI's Flux model converts
    them) and with odd sides padded to even circularly, as ComfyUI's patching pads them. The
    server uses them for both prompts."""
    refs = (cond[0][1].get("reference_latents") if cond else None) or []
    if not refs:
        return {}
    names = [inp["name"] for inp in (info or {}).get("conditioning", []) if inp["name"].startswith("reference.")]
    if not names:
        raise ValueError("the conditioning has reference latents (ReferenceLatent), but the loaded %s model takes "
                         "none" % (info or {}).get("variant", "Raylight"))
    if len(refs) > len(names):
        raise ValueError("the conditioning has %d reference latents; the loaded model takes at most %d"
                         % (len(refs), len(names)))
    import torch.nn.functional as F
    tensors = {}
    for i, ref in enumerate(refs):
        if ref.dim() != 4 or ref.shape[0] != 1:
            raise ValueError("reference latent %d has shape %s; one picture's latent [1, channels, height, width] "
                             "is expected" % (i, tuple(ref.shape)))
        x = fmt.process_in(ref.float())
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="circular")
        tensors["reference.%d" % i] = st.from_torch(x[0])
    return tensors


def scheduler_names():
    samplers = _comfy("comfy.samplers")
    return list(samplers.KSampler.SCHEDULERS) if samplers is not None else list(schedules.SCHEDULERS)


def model_names():
    folder_paths = _comfy("folder_paths")
    names = folder_paths.get_filename_list("diffusion_models") if folder_paths is not None else []
    return ["tiny"] + list(names)


def model_path(name):
    if name == "tiny":
        return "tiny"
    folder_paths = _comfy("folder_paths")
    if hasattr(folder_paths, "get_full_path_or_raise"):
        return folder_paths.get_full_path_or_raise("diffusion_models", name)
    path = folder_paths.get_full_path("diffusion_models", name)
    if not path:
        raise FileNotFoundError("diffusion model %r not found in ComfyUI's diffusion_models folders" % name)
    return path


class RaylightInitializer:
    """Where the ranks run and how a model is split over them."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "gpus": ("STRING", {"default": "auto", "tooltip": "GPU numbers, one rank each (cpu:N for N CPU ranks; "
                                                               "auto: every GPU this build can use, else a CPU rank)"}),
            "ulysses_degree": ("INT", {"default": 0, "min": 0, "max": 64,
                                       "tooltip": "0: split the sequence over the ranks automatically"}),
            "ring_degree": ("INT", {"default": 1, "min": 1, "max": 64}),
            "cfg_parallel": ("BOOLEAN", {"default": False}),
            "fsdp": ("BOOLEAN", {"default": False}),
            "offload": ("BOOLEAN", {"default": False}),
        }, "optional": {
            "server_url": ("STRING", {"default": "", "tooltip": "a running raylight serve; empty: start one"}),
            "token": ("STRING", {"default": ""}),
            "gpu_memory_limit_gb": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1024.0, "step": 0.5,
                                              "tooltip": "cap on each GPU's memory in GiB (0: none)"}),
        }}

    RETURN_TYPES = ("RAYLIGHT_CLUSTER",)
    FUNCTION = "initialize"
    CATEGORY = "Raylight"

    def initialize(self, gpus, ulysses_degree, ring_degree, cfg_parallel, fsdp, offload, server_url="", token="",
                   gpu_memory_limit_gb=0.0):
        cluster = plan_cluster(gpus, ulysses_degree, ring_degree, cfg_parallel, fsdp, offload, server_url, token,
                               gpu_memory_limit_gb)
        health = cluster_client(cluster).health()
        log.info("raylight: server with %s ranks ready", health.get("ranks"))
        return (cluster,)


class RaylightDiffusionModelLoader:
    """Loads a diffusion model (any family the server knows) from ComfyUI's diffusion_models
    folders onto the ranks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"cluster": ("RAYLIGHT_CLUSTER",), "unet_name": (model_names(),)}}

    RETURN_TYPES = ("RAYLIGHT_MODEL",)
    FUNCTION = "load"
    CATEGORY = "Raylight"

    def load(self, cluster, unet_name):
        handle = {"cluster": cluster, "path": model_path(unet_name)}
        ensure_model(handle)
        return (handle,)


class RaylightDiffusionModelPairLoader:
    """Loads a two-expert model (Wan 2.2 A14B: the high-noise and the low-noise file) onto the
    ranks as one pair; its two outputs name the expert a sampler given them runs with
    (KSamplerAdvanced splits: high noise first, then low noise). Both stay loaded."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"cluster": ("RAYLIGHT_CLUSTER",), "high_noise_unet_name": (model_names(),),
                             "low_noise_unet_name": (model_names(),)}}

    RETURN_TYPES = ("RAYLIGHT_MODEL", "RAYLIGHT_MODEL")
    RETURN_NAMES = ("high_noise_model", "low_noise_model")
    FUNCTION = "load"
    CATEGORY = "Raylight"

    def load(self, cluster, high_noise_unet_name, low_noise_unet_name):
        pair = {"cluster": cluster, "path": model_path(high_noise_unet_name),
                "path_low": model_path(low_noise_unet_name)}
        ensure_model(pair)
        return (dict(pair, expert="high"), dict(pair, expert="low"))


def image_tensors(info, cond, latent, fmt):
    """The shared image-to-video inputs (y, clip_fea) from WanImageToVideo's conditioning
    (its concat_latent_image, concat_mask and clip_vision_output options), made as ComfyUI's
    comfy/model_base.py WAN21 makes them: y = concat(1 - concat_mask repeated to 4 channels,
    the image latent in the model's space); clip_fea = the CLIP penultimate hidden states."""
    shared = {inp["name"]: inp for inp in (info or {}).get("conditioning", []) if not inp.get("per_prompt")}
    opts = cond[0][1] if cond else {}
    out = {}
    if "y" in shared:
        image = opts.get("concat_latent_image")
        if image is None:
            if shared["y"].get("required"):
                raise ValueError("the loaded model is image-to-video: its conditioning needs a start frame "
                                 "(WanImageToVideo with start_image, before the sampler)")
        else:
            image = image.float()
            if image.dim() == 4:
                image = image.unsqueeze(2)
            if tuple(image.shape[-3:]) != tuple(latent.shape[-3:]):
                raise ValueError("WanImageToVideo's image latent is %s but the sampled latent is %s: give both the "
                                 "same width, height and length" % (tuple(image.shape), tuple(latent.shape)))
            image = fmt.process_in(image[:1])
            mask = opts.get("concat_mask")
            if mask is None:
                mask = image.new_zeros((1, 4) + tuple(image.shape[2:]))
            else:
                mask = mask.float()[:1]
                if mask.dim() == 4:
                    mask = mask.unsqueeze(1)
                if mask.shape[1] != 4:
                    mask = mask.mean(dim=1, keepdim=True)
                mask = 1.0 - mask
                if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
                    raise ValueError("WanImageToVideo's mask is %s; the latent is %s" % (tuple(mask.shape),
                                                                                       tuple(image.shape)))
                if mask.shape[2] < image.shape[2]:
                    pad = mask.new_zeros(mask.shape[:2] + (image.shape[2] - mask.shape[2],) + tuple(mask.shape[3:]))
                    mask = torch_cat([mask, pad], 2)
                mask = mask[:, :, :image.shape[2]]
                if mask.shape[1] == 1:
                    mask = mask.repeat(1, 4, 1, 1, 1)
            out["y"] = st.from_torch(torch_cat([mask, image], 1)[0])
    if "clip_fea" in shared:
        clip = opts.get("clip_vision_output")
        if clip is None:
            if shared["clip_fea"].get("required"):
                raise ValueError("the loaded model reads CLIP vision features: connect a CLIPVisionEncode output "
                                 "to WanImageToVideo's clip_vision_output")
        else:
            fea = clip.penultimate_hidden_states.float()
            if fea.dim() == 3:
                fea = fea[0]
            out["clip_fea"] = st.from_torch(fea)
    return out


def torch_cat(tensors, dim):
    import torch
    return torch.cat(tensors, dim)


# The expert a node samples with: the one its model handle names (the pair loader's two
# outputs), the pair's own switch at its boundary, or one named here.
EXPERTS = {"model": None, "boundary": None, "high_noise": "high", "low_noise": "low"}


def model_space(fmt, latent):
    """A LATENT in the model's space, as ComfyUI's sampler takes it: an all-zero (empty) latent
    stays zero (comfy/samplers.py does not shift the empty latent)."""
    latent = latent.float()
    return fmt.process_in(latent) if bool((latent != 0).any()) else latent


def sample_on_server(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                     denoise=1.0, shift=5.0, add_noise=True, start_step=None, end_step=None, leftover_noise=False,
                     expert="model"):
    """common_ksampler on the ranks: ComfyUI's noise and sigmas, the part [start_step,
    end_step] of the schedule (KSamplerAdvanced), the latent converted in and out of the
    model's space (and, for parts that start or end with noise left, ComfyUI's flow scaling)."""
    if "noise_mask" in latent_image:
        raise ValueError("Raylight's sampler does not take noise masks (inpainting)")
    if expert not in EXPERTS:
        raise ValueError("expert must be one of %s, got %r" % (", ".join(EXPERTS), expert))
    which = model.get("expert") if expert == "model" else EXPERTS[expert]
    if which and not model.get("path_low"):
        raise ValueError("expert %r is for a two-expert model (Raylight Load Diffusion Model Pair); this model is "
                         "one file" % expert)
    latent = latent_image["samples"]
    client = ensure_model(model)
    info = client.model() or {}
    fmt_info = info.get("latent_format") or {}
    dims = fmt_info.get("item_dims", 4) + 1
    channels = fmt_info.get("channels")
    if latent.dim() != dims or (channels and latent.shape[1] != channels):
        raise ValueError("the loaded %s model takes latents of %d dimensions with %s channels "
                         "(batch, channels, ...); got %s" % (info.get("family", "Raylight"), dims, channels,
                                                           tuple(latent.shape)))
    if denoise <= 0:
        return (latent_image,)
    fmt = latent_format(info)
    sigmas = schedule(scheduler, steps, shift, denoise)
    advanced = start_step is not None or end_step is not None
    part = schedules.cut_sigmas(sigmas, start_step, end_step, leftover_noise) if advanced else sigmas
    if len(part) < 2:  # no step left: ComfyUI returns the latent as it came
        return (latent_image,)
    tensors = prompt_tensors(info, positive, "positive", False)
    tensors.update(image_tensors(info, positive, latent, fmt))
    if cfg != 1.0:
        tensors.update(prompt_tensors(info, negative, "negative", True))
    tensors.update(reference_tensors(info, positive, fmt))
    params = {"sampler": schedules.SAMPLERS[sampler_name], "cfg": float(cfg), "sigmas": sigmas}
    if add_noise:
        tensors["noise"] = st.from_torch(prepare_noise(latent, seed, latent_image.get("batch_index")))
        if part[0] < 1.0:
            tensors["latent"] = st.from_torch(model_space(fmt, latent))
    else:  # the latent carries its noise: the sample at the part's first sigma
        tensors["latent"] = st.from_torch(leftover_in(model_space(fmt, latent), part[0], shift))
        params["add_noise"] = False
    if advanced:
        params.update({"start_step": int(start_step or 0),
                       "end_step": min(int(end_step), 1000000) if end_step is not None else 1000000,
                       "return_with_leftover_noise": bool(leftover_noise)})
    if which:
        params["expert"] = which
    guidance = distilled_guidance(info, positive)
    if guidance is not None:
        params["guidance"] = guidance

    utils = _comfy("comfy.utils")
    mm = _comfy("comfy.model_management")
    bar = utils.ProgressBar(len(part) - 1) if utils is not None else None
    try:
        out = client.sample(tensors, params,
                            on_progress=(lambda s, t: bar.update_absolute(s, t)) if bar else None,
                            should_cancel=mm.processing_interrupted if mm is not None else None)
    except RaylightCancelled:
        if mm is not None:
            mm.throw_exception_if_processing_interrupted()
        raise
    except (RaylightError, OSError) as e:  # a server that died says why (its log)
        err = e if isinstance(e, RaylightError) else RaylightError(0, str(e))
        raise launcher.explain(err) from e
    samples = fmt.process_out(leftover_out(st.to_torch(out["latent"]), part[-1], shift))
    result = dict(latent_image)
    result["samples"] = samples
    return (result,)


class RaylightKSampler:
    """KSampler's inputs and outputs; the denoising runs on the Raylight ranks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("RAYLIGHT_MODEL",),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True}),
            "steps": ("INT", {"default": 30, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": (list(schedules.SAMPLERS),),
            "scheduler": (scheduler_names(),),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "latent_image": ("LATENT",),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            "shift": ("FLOAT", {"default": 5.0, "min": 0.01, "max": 100.0, "step": 0.01,
                                "tooltip": "flow shift (ModelSamplingSD3's shift)"}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "Raylight"

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
               denoise=1.0, shift=5.0):
        return sample_on_server(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                                denoise=denoise, shift=shift)


class RaylightKSamplerAdvanced:
    """KSamplerAdvanced on the Raylight ranks: a part [start_at_step, end_at_step] of a
    steps-long schedule, noise added or not, returned with its leftover noise or not, exactly
    as ComfyUI's (common_ksampler). Two of them run a Wan 2.2 A14B pair's experts: the
    high-noise one from step 0 to K with leftover noise, the low-noise one from K on without
    adding noise; the expert is the one the model input names (Raylight Load Diffusion Model
    Pair's outputs) unless `expert` says otherwise."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("RAYLIGHT_MODEL",),
            "add_noise": (["enable", "disable"],),
            "noise_seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": (list(schedules.SAMPLERS),),
            "scheduler": (scheduler_names(),),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "latent_image": ("LATENT",),
            "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
            "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
            "return_with_leftover_noise": (["disable", "enable"],),
            "shift": ("FLOAT", {"default": 5.0, "min": 0.01, "max": 100.0, "step": 0.01,
                                "tooltip": "flow shift (ModelSamplingSD3's shift)"}),
        }, "optional": {
            "expert": (list(EXPERTS), {"tooltip": "a two-expert model's expert: the one the model input names, the "
                                                  "pair's switch at its boundary, or one named here"}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "Raylight"

    def sample(self, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
               latent_image, start_at_step, end_at_step, return_with_leftover_noise, shift=5.0, expert="model"):
        return sample_on_server(model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                latent_image, shift=shift, add_noise=add_noise == "enable", start_step=start_at_step,
                                end_step=end_at_step, leftover_noise=return_with_leftover_noise == "enable",
                                expert=expert)


def lora_names():
    folder_paths = _comfy("folder_paths")
    return list(folder_paths.get_filename_list("loras")) if folder_paths is not None else []


def lora_path(name):
    folder_paths = _comfy("folder_paths")
    path = folder_paths.get_full_path("loras", name) if folder_paths is not None else None
    if not path:
        raise FileNotFoundError("LoRA %r not found in ComfyUI's loras folders" % name)
    return path


class RaylightLoraLoader:
    """Adds a LoRA (ComfyUI's loras folders: kohya, diffusers/PEFT, LyCORIS LoHa/LoKr, diff
    files) to a Raylight model; chain several. The server applies the list to the loaded
    model without loading it again (merged into bf16 weights, a side product on fp8 ones)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("RAYLIGHT_MODEL",), "lora_name": (lora_names(),),
                             "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01})}}

    RETURN_TYPES = ("RAYLIGHT_MODEL",)
    FUNCTION = "load_lora"
    CATEGORY = "Raylight"

    def load_lora(self, model, lora_name, strength_model):
        handle = dict(model)
        handle["loras"] = list(model.get("loras", [])) + [{"path": lora_path(lora_name), "strength": strength_model}]
        if strength_model == 0:
            handle["loras"].pop()
        ensure_model(handle)
        return (handle,)


def part_names(folder):
    """"default" (an embedded model's own part) and the files of one of ComfyUI's model folders."""
    folder_paths = _comfy("folder_paths")
    try:
        names = list(folder_paths.get_filename_list(folder)) if folder_paths is not None else []
    except KeyError:
        names = []
    return ["default"] + names


def part_path(folder, name):
    if not name or name == "default":
        return None
    folder_paths = _comfy("folder_paths")
    path = folder_paths.get_full_path(folder, name) if folder_paths is not None else None
    if not path:
        raise FileNotFoundError("%r not found in ComfyUI's %s folders" % (name, folder))
    return path


def run_on_server(call):
    """A part job on the server, ComfyUI's interrupt cancelling it, a dead server explained."""
    mm = _comfy("comfy.model_management")
    try:
        return call(mm.processing_interrupted if mm is not None else None)
    except RaylightCancelled:
        if mm is not None:
            mm.throw_exception_if_processing_interrupted()
        raise
    except (RaylightError, OSError) as e:
        err = e if isinstance(e, RaylightError) else RaylightError(0, str(e))
        raise launcher.explain(err) from e


def checked_latent(info, latent):
    fmt_info = info.get("latent_format") or {}
    dims = fmt_info.get("item_dims", 4) + 1
    channels = fmt_info.get("channels")
    if latent.dim() != dims or (channels and latent.shape[1] != channels):
        raise ValueError("the loaded %s model takes latents of %d dimensions with %s channels (batch, channels, ...); "
                         "got %s" % (info.get("family", "Raylight"), dims, channels, tuple(latent.shape)))
    return latent


# Conditioning the server makes -> where ComfyUI's CONDITIONING keeps it (CONDITIONING_SOURCES
# read the other way): the token tensor itself, or an entry of its options.
def conditioning_from_tensors(tensors):
    main, options = None, {}
    for name, raw in tensors.items():
        t = st.to_torch(raw).unsqueeze(0)  # ComfyUI's batch of one
        key = CONDITIONING_SOURCES.get(name, name)
        if key is None:
            main = t
        else:
            options[key] = t
    if main is None:
        raise RuntimeError("the server's text encoders made no token conditioning (got %s)" % sorted(tensors))
    return [[main, options]]


class RaylightTextEncode:
    """CLIPTextEncode on the server's ranks: the loaded model's text encoders (umT5-XXL for
    Wan, T5-XXL and CLIP-L for Flux) run there, so ComfyUI's process never holds them. The
    CONDITIONING works with Raylight's sampler and ComfyUI's conditioning nodes alike."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("RAYLIGHT_MODEL",), "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                             "text_encoder": (part_names("text_encoders"),
                                              {"tooltip": "default: the model's own (embedded models)"})},
                "optional": {"text_encoder_2": (part_names("text_encoders"),
                                                {"tooltip": "the second text encoder (Flux: CLIP-L)"})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "Raylight"

    def encode(self, model, text, text_encoder="default", text_encoder_2="default"):
        client = ensure_model(model)
        tensors = run_on_server(lambda cancel: client.text_encode(
            text, should_cancel=cancel, text_encoder=part_path("text_encoders", text_encoder),
            text_encoder_2=part_path("text_encoders", text_encoder_2)))
        return (conditioning_from_tensors(tensors),)


class RaylightVAEDecode:
    """VAEDecode on the server's ranks: the latent's tiles are spread over every rank (the
    same pixels as one rank decoding them); takes ComfyUI's LATENT from any node."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("RAYLIGHT_MODEL",), "samples": ("LATENT",),
                             "vae_name": (part_names("vae"), {"tooltip": "default: the model's own (embedded models)"})},
                "optional": {"tile_size": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                                   "tooltip": "tile side in pixels (0: as the server's memory needs)"}),
                             "spread": ("BOOLEAN", {"default": True, "tooltip": "decode the tiles on every rank"})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "Raylight"

    def decode(self, model, samples, vae_name="default", tile_size=0, spread=True):
        client = ensure_model(model)
        info = client.model() or {}
        latent = checked_latent(info, samples["samples"])
        fmt = latent_format(info)
        raw = run_on_server(lambda cancel: client.vae_decode(
            st.from_torch(fmt.process_in(latent.float())), vae=part_path("vae", vae_name),
            tile="%dx%d" % (tile_size, tile_size) if tile_size else None, spread=bool(spread), should_cancel=cancel))
        pixels = ((st.to_torch(raw) + 1.0) / 2.0).clamp(0.0, 1.0)  # [B, 3, (F,) H, W]
        if pixels.dim() == 5:  # a video's frames, one after another, as ComfyUI's VAEDecode gives them
            return (pixels.permute(0, 2, 3, 4, 1).reshape(-1, pixels.shape[3], pixels.shape[4], 3),)
        return (pixels.permute(0, 2, 3, 1).contiguous(),)


class RaylightVAEEncode:
    """VAEEncode on the server's ranks: ComfyUI's IMAGE (a video's frames for video
    models) -> LATENT, cropped as the model needs (sides to multiples of 16, 4k+1 frames)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("RAYLIGHT_MODEL",), "pixels": ("IMAGE",),
                             "vae_name": (part_names("vae"), {"tooltip": "default: the model's own (embedded models)"})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "Raylight"

    def encode(self, model, pixels, vae_name="default"):
        client = ensure_model(model)
        info = client.model() or {}
        fmt = latent_format(info)
        x = pixels[..., :3].float()  # [N, H, W, 3] in [0, 1]
        h, w = (x.shape[1] // 16) * 16, (x.shape[2] // 16) * 16
        if h == 0 or w == 0:
            raise ValueError("the image is %dx%d; the model needs at least 16x16 pixels" % (x.shape[2], x.shape[1]))
        top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2  # centred, as ComfyUI's VAEEncode crops
        x = x[:, top:top + h, left:left + w, :] * 2.0 - 1.0
        if (info.get("latent_format") or {}).get("item_dims", 4) == 4:
            frames = (x.shape[0] - 1) // 4 * 4 + 1  # the video models take 4k+1 frames
            if frames != x.shape[0]:
                log.warning("raylight: encoding the first %d of %d frames (4k+1)", frames, x.shape[0])
            x = x[:frames].permute(3, 0, 1, 2).unsqueeze(0)  # one video [1, 3, F, H, W]
        else:
            x = x.permute(0, 3, 1, 2)  # pictures [N, 3, H, W]
        raw = run_on_server(lambda cancel: client.vae_encode(st.from_torch(x), vae=part_path("vae", vae_name),
                                                             should_cancel=cancel))
        return ({"samples": fmt.process_out(st.to_torch(raw))},)


class RaylightWanImageToVideo:
    """WanImageToVideo with the start frame encoded on the server's ranks (the Wan VAE runs
    there, not in ComfyUI's process): the same conditioning (concat_latent_image, concat_mask
    and clip_vision_output on both prompts) and the same empty latent as ComfyUI's node, so
    the Raylight KSampler (or ComfyUI's own) samples from it alike."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("RAYLIGHT_MODEL",), "positive": ("CONDITIONING",),
                             "negative": ("CONDITIONING",),
                             "vae_name": (part_names("vae"), {"tooltip": "default: the model's own (embedded models)"}),
                             "width": ("INT", {"default": 832, "min": 16, "max": 8192, "step": 16}),
                             "height": ("INT", {"default": 480, "min": 16, "max": 8192, "step": 16}),
                             "length": ("INT", {"default": 81, "min": 1, "max": 8192, "step": 4}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})},
                "optional": {"clip_vision_output": ("CLIP_VISION_OUTPUT",), "start_image": ("IMAGE",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "execute"
    CATEGORY = "Raylight"

    def execute(self, model, positive, negative, vae_name, width, height, length, batch_size,
                start_image=None, clip_vision_output=None):
        import comfy.utils
        import node_helpers
        import torch
        latent = torch.zeros([batch_size, 16, ((length - 1) // 4) + 1, height // 8, width // 8])
        if start_image is not None:
            start = comfy.utils.common_upscale(start_image[:length].movedim(-1, 1), width, height, "bilinear",
                                               "center").movedim(1, -1)
            image = torch.ones((length, height, width, start.shape[-1]), dtype=start.dtype) * 0.5
            image[:start.shape[0]] = start
            concat = RaylightVAEEncode().encode(model, image[:, :, :, :3], vae_name)[0]["samples"]
            mask = torch.ones((1, 1, latent.shape[2], concat.shape[-2], concat.shape[-1]), dtype=start.dtype)
            mask[:, :, :((start.shape[0] - 1) // 4) + 1] = 0.0
            values = {"concat_latent_image": concat, "concat_mask": mask}
            positive = node_helpers.conditioning_set_values(positive, values)
            negative = node_helpers.conditioning_set_values(negative, values)
        if clip_vision_output is not None:
            positive = node_helpers.conditioning_set_values(positive, {"clip_vision_output": clip_vision_output})
            negative = node_helpers.conditioning_set_values(negative, {"clip_vision_output": clip_vision_output})
        return (positive, negative, {"samples": latent})


NODE_CLASS_MAPPINGS = {
    "RaylightInitializer": RaylightInitializer,
    "RaylightDiffusionModelLoader": RaylightDiffusionModelLoader,
    "RaylightKSampler": RaylightKSampler,
    "RaylightKSamplerAdvanced": RaylightKSamplerAdvanced,
    "RaylightDiffusionModelPairLoader": RaylightDiffusionModelPairLoader,
    "RaylightLoraLoader": RaylightLoraLoader,
    "RaylightTextEncode": RaylightTextEncode,
    "RaylightVAEDecode": RaylightVAEDecode,
    "RaylightVAEEncode": RaylightVAEEncode,
    "RaylightWanImageToVideo": RaylightWanImageToVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RaylightInitializer": "Raylight Initializer",
    "RaylightDiffusionModelLoader": "Raylight Load Diffusion Model",
    "RaylightKSampler": "Raylight KSampler",
    "RaylightKSamplerAdvanced": "Raylight KSampler (Advanced)",
    "RaylightDiffusionModelPairLoader": "Raylight Load Diffusion Model Pair",
    "RaylightLoraLoader": "Raylight Load LoRA",
    "RaylightTextEncode": "Raylight Text Encode",
    "RaylightVAEDecode": "Raylight VAE Decode",
    "RaylightVAEEncode": "Raylight VAE Encode",
    "RaylightWanImageToVideo": "Raylight Wan Image To Video",
}
