"""Writes a Wan 2.1 DiT checkpoint with random weights at real shapes, laid out like
ComfyUI's fp8 files (keys under model.diffusion_model., a scaled_fp8 marker, 2-D linear
weights as float8_e4m3fn with a per-tensor scale_weight, the rest bf16), plus a random
text context. For memory and speed runs on the GPU machine, where no real checkpoint exists.

    python3 bench/make_random_wan_checkpoint.py --model wan-14b --out /tmp/wan14b_fp8.safetensors
"""
import argparse

import torch
from safetensors.torch import save_file

SHAPES = {"wan-1.3b": (1536, 8960, 30), "wan-14b": (5120, 13824, 40)}


def tensors(dim, ffn, layers, text_dim=4096, freq_dim=256, in_dim=16, out_dim=16):
    t = {"patch_embedding.weight": (dim, in_dim, 1, 2, 2), "patch_embedding.bias": (dim,),
         "text_embedding.0.weight": (dim, text_dim), "text_embedding.0.bias": (dim,),
         "text_embedding.2.weight": (dim, dim), "text_embedding.2.bias": (dim,),
         "time_embedding.0.weight": (dim, freq_dim), "time_embedding.0.bias": (dim,),
         "time_embedding.2.weight": (dim, dim), "time_embedding.2.bias": (dim,),
         "time_projection.1.weight": (6 * dim, dim), "time_projection.1.bias": (6 * dim,),
         "head.head.weight": (out_dim * 4, dim), "head.head.bias": (out_dim * 4,),
         "head.modulation": (1, 2, dim)}
    for i in range(layers):
        b = f"blocks.{i}."
        for attn in ("self_attn.", "cross_attn."):
            for l in "qkvo":
                t[b + attn + l + ".weight"] = (dim, dim)
                t[b + attn + l + ".bias"] = (dim,)
            t[b + attn + "norm_q.weight"] = (dim,)
            t[b + attn + "norm_k.weight"] = (dim,)
        t[b + "norm3.weight"] = (dim,)
        t[b + "norm3.bias"] = (dim,)
        t[b + "ffn.0.weight"] = (ffn, dim)
        t[b + "ffn.0.bias"] = (ffn,)
        t[b + "ffn.2.weight"] = (dim, ffn)
        t[b + "ffn.2.bias"] = (dim,)
        t[b + "modulation"] = (1, 6, dim)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=SHAPES, default="wan-14b")
    ap.add_argument("--out", required=True)
    ap.add_argument("--context", default=None, help="also write a random text context here")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    out = {"model.diffusion_model.scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}
    for name, shape in tensors(*SHAPES[args.model]).items():
        key = "model.diffusion_model." + name
        matrix = len(shape) == 2 and name.endswith(".weight")
        std = (1.0 / (shape[1] ** 0.5)) if matrix else 0.1
        w = torch.randn(shape, generator=g, device=dev) * std
        if "norm" in name and name.endswith(".weight"):
            w += 1.0
        if matrix:
            scale = w.abs().max() / 448.0
            out[key] = (w / scale).to(torch.float8_e4m3fn).cpu()
            out[key[:-len(".weight")] + ".scale_weight"] = scale.float().reshape(1).cpu()
        else:
            out[key] = w.to(torch.bfloat16).cpu()
    save_file(out, args.out)
    if args.context:
        save_file({"context": torch.randn(20, 4096, generator=g, device=dev).cpu()}, args.context)


if __name__ == "__main__":
    main()
