#!/usr/bin/env python3
"""GPU numerics against the official Wan 2.1 model code (issue 24).

`make` writes, for one config, a random-weight bf16 checkpoint in the official key layout,
a latent and a text context (for `mid`, weights and inputs from the engine's documented noise
generator, as tests/cuda's numerics test makes them, and --fixture writes the reference and
the official bf16 error for that test), and runs the official model code (wan/modules/model.py from
Wan-Video/Wan2.1, passed with --official) twice on the GPU: in fp32 (weights widened,
attention in fp32: the reference) and as its users run it (bf16 weights under
autocast(bf16), its attention in bf16). `compare` prints the relative L2 error of each
`raylight forward` output given against the fp32 reference, beside the official code's own
bf16 error.

The official file imports diffusers (for ConfigMixin / ModelMixin only) and flash-attn; both
are replaced here by stand-ins that change no arithmetic: a config mixin that stores
nothing, and scaled-dot-product attention with the official wrapper's dtype handling
(q/k/v cast to bf16 unless the reference run asks for fp32).

  python3 bench/wan_numerics.py make --official DIR --config mid --out WORK
  raylight forward --model WORK/model.safetensors --latent WORK/latent.safetensors \
      --context WORK/context.safetensors --timestep 500 --out WORK/raylight.safetensors
  python3 bench/wan_numerics.py compare --work WORK raylight=WORK/raylight.safetensors
"""
import argparse
import importlib.util
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

# name: (dim, heads, ffn, layers, latent [C, F, H, W])
CONFIGS = {
    "mid": (512, 4, 2048, 3, (16, 10, 26, 54)),            # 3,510 tokens
    "wan-1.3b": (1536, 12, 8960, 30, (16, 21, 60, 104)),   # 480x832x81, 32,760 tokens
    "wan-14b": (5120, 40, 13824, 40, (16, 9, 60, 104)),    # 480x832x33, 14,040 tokens
}
TIMESTEP = 500.0
# Seeds of the mid config's inputs in the engine's generator (tests/cuda/test_cuda_numerics.cpp).
ENGINE_LATENT_SEED, ENGINE_CONTEXT_SEED = 0x6E750001, 0x6E750002
ATTENTION_FP32 = {"on": False}
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU only to try the script


def flash_attention_standin(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None,
                            causal=False, window_size=(-1, -1), deterministic=False, dtype=torch.bfloat16,
                            version=None):
    """The official wrapper's contract: q [B, Lq, N, D], k/v [B, Lk, N, D]; inputs cast to
    `dtype` (bf16) unless already half precision; output in q's dtype."""
    # One item, no padding: lengths, where given, are the full lengths (nothing masked).
    assert q_lens is None or bool((q_lens == q.shape[1]).all())
    assert k_lens is None or bool((k_lens == k.shape[1]).all())
    assert not causal and tuple(window_size) == (-1, -1)
    out_dtype = q.dtype
    half = (torch.float16, torch.bfloat16)
    cast = (lambda x: x.float()) if ATTENTION_FP32["on"] else (lambda x: x if x.dtype in half else x.to(dtype))
    if q_scale is not None:
        q = q * q_scale
    o = F.scaled_dot_product_attention(cast(q).transpose(1, 2), cast(k).transpose(1, 2), cast(v).transpose(1, 2),
                                       scale=softmax_scale)
    return o.transpose(1, 2).contiguous().to(out_dtype)


def import_official(official_dir):
    """wan/modules/model.py as a module, with its two imports stood in."""
    diffusers = types.ModuleType("diffusers")
    cu = types.ModuleType("diffusers.configuration_utils")
    models = types.ModuleType("diffusers.models")
    mu = types.ModuleType("diffusers.models.modeling_utils")

    class ConfigMixin:
        pass

    cu.ConfigMixin = ConfigMixin
    cu.register_to_config = lambda f: f
    mu.ModelMixin = torch.nn.Module
    sys.modules.update({"diffusers": diffusers, "diffusers.configuration_utils": cu, "diffusers.models": models,
                        "diffusers.models.modeling_utils": mu})
    pkg = types.ModuleType("wan_official")
    pkg.__path__ = [official_dir]
    attention = types.ModuleType("wan_official.attention")
    attention.flash_attention = flash_attention_standin
    sys.modules.update({"wan_official": pkg, "wan_official.attention": attention})
    spec = importlib.util.spec_from_file_location("wan_official.model", os.path.join(official_dir, "model.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["wan_official.model"] = mod
    spec.loader.exec_module(mod)
    return mod


_G = 0x9E3779B97F4A7C15


def engine_noise(shape, seed):
    """src/sampling/noise.h's generator, vectorised: element i of the flattened tensor."""
    n = int(np.prod(shape))
    pairs = (n + 1) // 2
    with np.errstate(over="ignore"):
        idx = np.arange(2 * pairs, dtype=np.uint64)
        z = np.uint64(seed) + (idx + np.uint64(1)) * np.uint64(_G)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    a, b = z[0::2], z[1::2]
    u1 = ((a >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2.0 * np.log(u1))
    t = 6.283185307179586 * u2
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2], out[1::2] = r * np.cos(t), r * np.sin(t)
    return torch.from_numpy(out[:n].astype(np.float32)).reshape(shape)


def name_seed(name):
    h = 1469598103934665603
    for ch in name.encode():
        h = ((h ^ ch) * 1099511628211) & ((1 << 64) - 1)
    return h


def engine_weights(model):
    """src/models/wan/wan_tiny.cpp's wan_random_weights recipe, then bf16 like a checkpoint."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = engine_noise(tuple(p.shape), name_seed(name)).double()
            if name.endswith(".weight") and p.ndim >= 2:
                t = t / math.sqrt(p[0].numel())
            elif "norm" in name and name.endswith(".weight"):
                t = 1.0 + 0.1 * t
            else:
                t = 0.1 * t
            p.copy_(t.float().to(p.dtype))


def randomise(model, seed):
    """Weights at the scale trained ones have: products keep activations O(1)."""
    g = torch.Generator(device=DEV).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("modulation"):
                p.copy_(torch.randn(p.shape, generator=g, device=DEV) / math.sqrt(p.shape[-1]))
            elif p.ndim == 1 and ("norm" in name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g, device=DEV))
            elif p.ndim == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g, device=DEV))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g, device=DEV) / math.sqrt(fan_in))


def run(model, latent, context, autocast_bf16):
    seq_len = latent.shape[1] * latent.shape[2] * latent.shape[3] // 4
    t = torch.tensor([TIMESTEP], device=DEV)
    with torch.no_grad(), torch.autocast(DEV, dtype=torch.bfloat16, enabled=autocast_bf16):
        return model([latent], t, [context], seq_len)[0].float()


def make(args):
    official = import_official(args.official)
    dim, heads, ffn, layers, shape = CONFIGS[args.config]
    torch.manual_seed(0)
    with torch.device(DEV):
        model = official.WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=dim,
                                  ffn_dim=ffn, freq_dim=256, text_dim=4096, out_dim=16, num_heads=heads,
                                  num_layers=layers, window_size=(-1, -1), qk_norm=True, cross_attn_norm=True,
                                  eps=1e-6)
    model = model.to(torch.bfloat16).eval()
    os.makedirs(args.out, exist_ok=True)
    if args.config == "mid":
        engine_weights(model)
        latent = engine_noise(shape, ENGINE_LATENT_SEED).to(DEV)
        context = (0.2 * engine_noise((200, 4096), ENGINE_CONTEXT_SEED).double()).float().to(DEV)
    else:
        randomise(model, 1)
        g = torch.Generator(device=DEV).manual_seed(2)
        latent = torch.randn(shape, generator=g, device=DEV)
        context = 0.2 * torch.randn((200, 4096), generator=g, device=DEV)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
              os.path.join(args.out, "model.safetensors"))
    save_file({"latent": latent.cpu()}, os.path.join(args.out, "latent.safetensors"))
    save_file({"context": context.cpu()}, os.path.join(args.out, "context.safetensors"))

    ATTENTION_FP32["on"] = False
    # (The official code's float32 regions are CUDA autocast regions: on the CPU its bf16 run
    # is not the users' one, so a CPU try of this script skips it.)
    official_bf16 = run(model, latent, context, autocast_bf16=True) if DEV == "cuda" else None
    model = model.float()
    ATTENTION_FP32["on"] = True
    torch.backends.cuda.matmul.allow_tf32 = False  # an fp32 reference: no TF32 in products
    torch.backends.cudnn.allow_tf32 = False        # nor in the patch embedding's convolution
    reference = run(model, latent, context, autocast_bf16=False)
    save_file({"velocity": reference.cpu()}, os.path.join(args.out, "reference.safetensors"))
    if official_bf16 is None:
        official_bf16 = reference
    save_file({"velocity": official_bf16.cpu()}, os.path.join(args.out, "official_bf16.safetensors"))
    own = rel_l2(official_bf16.cpu(), reference.cpu())
    if args.fixture:
        save_file({"reference": reference.cpu().contiguous(), "official_bf16_rel_l2": torch.tensor([own])},
                  args.fixture, metadata={"made_by": "bench/wan_numerics.py make --config mid --fixture",
                                          "timestep": str(TIMESTEP)})
    print(json.dumps({"config": args.config, "tokens": shape[1] * shape[2] * shape[3] // 4, "official_bf16": own}))


def rel_l2(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def compare(args):
    ref = load_file(os.path.join(args.work, "reference.safetensors"))["velocity"]
    own = rel_l2(load_file(os.path.join(args.work, "official_bf16.safetensors"))["velocity"], ref)
    row = {"work": args.work, "official_bf16": own}
    for item in args.outputs:
        name, path = item.split("=", 1)
        out = load_file(path)["velocity"]
        if out.shape != ref.shape:
            raise SystemExit(f"{path}: velocity {tuple(out.shape)}, reference {tuple(ref.shape)}")
        err = rel_l2(out, ref)
        row[name] = err
        row[name + "/official_bf16"] = err / own if own > 0 else None
    print(json.dumps(row))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--official", required=True, help="folder holding the official wan/modules/model.py")
    m.add_argument("--config", choices=CONFIGS, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--fixture", help="mid only: write the test fixture (reference + official bf16 error) here")
    c = sub.add_parser("compare")
    c.add_argument("--work", required=True)
    c.add_argument("outputs", nargs="+", help="name=velocity.safetensors")
    args = ap.parse_args()
    make(args) if args.cmd == "make" else compare(args)


if __name__ == "__main__":
    main()
