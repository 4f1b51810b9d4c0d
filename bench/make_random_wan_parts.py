"""Writes the parts around a Wan 2.1 DiT with random weights at real shapes, into a ComfyUI
models folder, so `raylight generate --comfyui-dir ROOT` runs prompt -> video on the GPU
machine (which has no real checkpoints):

    models/text_encoders/umt5_xxl_fp16.safetensors   umT5-XXL encoder, HF names (11 GB), with
                                                     the test SentencePiece model as its
                                                     `spiece_model` tensor, as ComfyUI's file has
    models/vae/wan_2.1_vae.safetensors               the Wan 2.1 VAE, official names
    models/clip_vision/clip_vision_h.safetensors      CLIP ViT-H/14 vision tower (--clip-vision)

The DiT itself comes from make_random_wan_checkpoint.py. Random values are small (std 1/sqrt
fan-in, norms near 1) so activations stay finite; the numbers mean nothing, the shapes and
times do.

    python3 bench/make_random_wan_parts.py --root /tmp/wan-comfy [--clip-vision]
"""
import argparse
import os

import numpy as np
import torch
from safetensors.torch import save_file


def umt5_xxl(d=4096, layers=24, heads=64, ff=10240, vocab=256384, buckets=32):
    t = {"shared.weight": (vocab, d), "encoder.final_layer_norm.weight": (d,)}
    for i in range(layers):
        b = f"encoder.block.{i}.layer."
        for p in "qkvo":
            t[b + f"0.SelfAttention.{p}.weight"] = (d, d) if p != "o" else (d, heads * 64)
        t[b + "0.SelfAttention.relative_attention_bias.weight"] = (buckets, heads)
        t[b + "0.layer_norm.weight"] = (d,)
        t[b + "1.DenseReluDense.wi_0.weight"] = (ff, d)
        t[b + "1.DenseReluDense.wi_1.weight"] = (ff, d)
        t[b + "1.DenseReluDense.wo.weight"] = (d, ff)
        t[b + "1.layer_norm.weight"] = (d,)
    return t


def wan_vae(base=96, mult=(1, 2, 4, 4), res=2, temporal=(False, True, True), z=16):
    """The official Wan2.1_VAE names (as src/models/vae/wan_vae_config.cpp lists them)."""
    t = {}

    def conv(name, shape):
        t[name + ".weight"] = shape
        t[name + ".bias"] = (shape[0],)

    def residual(p, i, o):
        t[p + "residual.0.gamma"] = (i, 1, 1, 1)
        conv(p + "residual.2", (o, i, 3, 3, 3))
        t[p + "residual.3.gamma"] = (o, 1, 1, 1)
        conv(p + "residual.6", (o, o, 3, 3, 3))
        if i != o:
            conv(p + "shortcut", (o, i, 1, 1, 1))

    def middle(p, d):
        residual(p + "middle.0.", d, d)
        t[p + "middle.1.norm.gamma"] = (d, 1, 1)
        conv(p + "middle.1.to_qkv", (3 * d, d, 1, 1))
        conv(p + "middle.1.proj", (d, d, 1, 1))
        residual(p + "middle.2.", d, d)

    mid = base * mult[-1]
    conv("encoder.conv1", (base, 3, 3, 3, 3))
    k, i_dim = 0, base
    for lvl, m in enumerate(mult):
        dim = base * m
        for _ in range(res):
            residual(f"encoder.downsamples.{k}.", i_dim, dim)
            i_dim, k = dim, k + 1
        if lvl + 1 != len(mult):
            conv(f"encoder.downsamples.{k}.resample.1", (dim, dim, 3, 3))
            if temporal[lvl]:
                conv(f"encoder.downsamples.{k}.time_conv", (dim, dim, 3, 1, 1))
            k += 1
    middle("encoder.", mid)
    t["encoder.head.0.gamma"] = (mid, 1, 1, 1)
    conv("encoder.head.2", (2 * z, mid, 3, 3, 3))
    conv("conv1", (2 * z, 2 * z, 1, 1, 1))
    conv("conv2", (z, z, 1, 1, 1))
    conv("decoder.conv1", (mid, z, 3, 3, 3))
    middle("decoder.", mid)
    k, i_dim = 0, mid
    for lvl in range(len(mult)):
        dim = base * mult[len(mult) - 1 - lvl]
        for _ in range(res + 1):
            residual(f"decoder.upsamples.{k}.", i_dim, dim)
            i_dim, k = dim, k + 1
        if lvl + 1 != len(mult):
            conv(f"decoder.upsamples.{k}.resample.1", (dim // 2, dim, 3, 3))
            if temporal[len(mult) - 2 - lvl]:
                conv(f"decoder.upsamples.{k}.time_conv", (2 * dim, dim, 3, 1, 1))
            i_dim, k = dim // 2, k + 1
    t["decoder.head.0.gamma"] = (base * mult[0], 1, 1, 1)
    conv("decoder.head.2", (3, base * mult[0], 3, 3, 3))
    return t


def clip_vision_h(d=1280, layers=32, mlp=5120, patch=14, positions=257):
    p = "vision_model."
    t = {p + "embeddings.patch_embedding.weight": (d, 3, patch, patch), p + "embeddings.class_embedding": (d,),
         p + "embeddings.position_embedding.weight": (positions, d), p + "pre_layrnorm.weight": (d,),
         p + "pre_layrnorm.bias": (d,), p + "post_layernorm.weight": (d,), p + "post_layernorm.bias": (d,)}
    for i in range(layers):
        b = f"{p}encoder.layers.{i}."
        for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[b + f"self_attn.{q}.weight"] = (d, d)
            t[b + f"self_attn.{q}.bias"] = (d,)
        for n in ("layer_norm1", "layer_norm2"):
            t[b + n + ".weight"] = (d,)
            t[b + n + ".bias"] = (d,)
        t[b + "mlp.fc1.weight"] = (mlp, d)
        t[b + "mlp.fc1.bias"] = (mlp,)
        t[b + "mlp.fc2.weight"] = (d, mlp)
        t[b + "mlp.fc2.bias"] = (d,)
    return t


FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def bytes_tensor(path):
    return torch.from_numpy(np.frombuffer(open(path, "rb").read(), dtype=np.uint8).copy())


def write(shapes, path, dtype, g, dev, extra=None):
    out = dict(extra or {})
    for name, shape in shapes.items():
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        norm = "norm" in name or name.endswith(".gamma")
        if norm and not name.endswith(".bias"):
            w = 1.0 + 0.05 * torch.randn(shape, generator=g, device=dev)
        elif len(shape) >= 2:
            w = torch.randn(shape, generator=g, device=dev) / max(fan_in, 1) ** 0.5
        else:
            w = 0.02 * torch.randn(shape, generator=g, device=dev)
        out[name] = w.to(dtype).cpu()
        del w
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path)
    print(f"wrote {path}: {len(out)} tensors")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="ComfyUI base folder (models/ goes under it)")
    ap.add_argument("--clip-vision", action="store_true", help="also write clip_vision_h (I2V)")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(1)
    m = os.path.join(args.root, "models")
    write(umt5_xxl(), os.path.join(m, "text_encoders", "umt5_xxl_fp16.safetensors"), torch.float16, g, dev,
          {"spiece_model": bytes_tensor(os.path.join(FIX, "umt5_tiny_spiece.model"))})
    write(wan_vae(), os.path.join(m, "vae", "wan_2.1_vae.safetensors"), torch.bfloat16, g, dev)
    if args.clip_vision:
        write(clip_vision_h(), os.path.join(m, "clip_vision", "clip_vision_h.safetensors"), torch.float16, g, dev)


if __name__ == "__main__":
    main()
