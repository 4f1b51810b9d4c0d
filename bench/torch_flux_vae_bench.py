#!/usr/bin/env python3
"""PyTorch eager reference for the Flux VAE decode: ae.safetensors (official names) decoded
at a latent of [16, H/8, W/8] in bf16 on CUDA, with diffusers' AutoencoderKL when it is
installed (the weights renamed to its layout), else the functional float implementation of
tests/fixtures/make_flux_vae_golden.py. Prints the median decode time (CUDA events, after
warm-up) and peak memory.

  python3 bench/torch_flux_vae_bench.py --vae /tmp/flux/models/vae/ae.safetensors --size 1024
"""
import argparse
import importlib.util
import os

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))


def golden_module():
    spec = importlib.util.spec_from_file_location(
        "flux_vae_golden", os.path.join(HERE, "..", "tests", "fixtures", "make_flux_vae_golden.py"))
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    g.CH, g.CH_MULT, g.NUM_RES, g.Z = 128, (1, 2, 4, 4), 2, 16  # the released VAE
    return g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    g = golden_module()
    dt = torch.bfloat16
    w = {k: v.to("cuda", dt) for k, v in load_file(a.vae).items()}
    z = torch.randn(1, 16, a.size // 8, a.size // 8, device="cuda", dtype=dt)
    try:
        if not hasattr(torch, "accelerator"):
            import types
            torch.accelerator = types.SimpleNamespace(is_available=lambda: True, current_accelerator=lambda: None)
        from diffusers import AutoencoderKL
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16,
                            use_quant_conv=False, use_post_quant_conv=False).to("cuda", dt).eval()
        vae.load_state_dict(g.to_diffusers(w), strict=True)
        decode, which = (lambda x: vae.decode(x).sample), "diffusers AutoencoderKL"
    except Exception as e:  # no diffusers on this host: the functional implementation
        print(f"diffusers unavailable ({type(e).__name__}: {e}); using the functional decoder")
        decode, which = (lambda x: g.decoder(w, x)), "functional PyTorch decoder"
    times = []
    with torch.no_grad():
        for i in range(a.runs + 1):
            torch.cuda.reset_peak_memory_stats()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            out = decode(z)
            e.record()
            torch.cuda.synchronize()
            if i:
                times.append(s.elapsed_time(e) / 1000)
    times.sort()
    print(f"TORCH_VAE {which} bf16 decode {a.size}x{a.size}: median {times[len(times) // 2]:.3f} s, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, out {tuple(out.shape)}")


if __name__ == "__main__":
    main()
