"""Random weights at real shapes for a Wan 2.1 I2V 14B generation on the GPU machine (which
has no checkpoints), in a ComfyUI models/ folder that `raylight generate --comfyui-dir` finds:

  diffusion_models/wan2.1_i2v_480p_14B_fp8_random.safetensors  (ComfyUI scaled fp8, 36 input
      channels, the CLIP branch; bench/make_random_wan_checkpoint.py's layout)
  text_encoders/umt5_xxl_random.safetensors   umT5-XXL (HF names, bf16; --t5-layers of 24,
      fewer to save minutes: the encode time then undercounts the text encoder)
  clip_vision/clip_vision_h.safetensors       CLIP ViT-H/14 vision tower (HF names, fp16)
  vae/wan_2.1_vae.safetensors                 the Wan 2.1 VAE (official names, bf16)

    python3 bench/make_random_wan_i2v_parts.py --root /tmp/wan-i2v-comfy [--t5-layers 24]
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import make_random_wan_checkpoint as wan  # noqa: E402
import make_wan_vae_golden as vae  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
GEN = torch.Generator(device=DEV).manual_seed(0)


def rnd(shape, dtype, matrix):
    fan_in = 1
    for n in shape[1:]:
        fan_in *= n
    std = (1.0 / fan_in ** 0.5) if matrix else 0.1
    return (torch.randn(shape, generator=GEN, device=DEV) * std).to(dtype)


def write(path, shapes, dtype, extra=None):
    out = {}
    for name, shape in shapes.items():
        matrix = len(shape) >= 2 and name.endswith(".weight")
        t = rnd(shape, torch.float32, matrix)
        if ("norm" in name or "gamma" in name) and len(shape) <= 4 and not matrix:
            t += 1.0
        out[name] = t.to(dtype).cpu()
    out.update(extra or {})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path)


def write_dit(path, dim=5120, ffn=13824, layers=40, clip=1280, text_dim=4096):
    shapes = wan.tensors(dim, ffn, layers, text_dim=text_dim, in_dim=36)
    shapes.update({"img_emb.proj.0.weight": (clip,), "img_emb.proj.0.bias": (clip,),
                   "img_emb.proj.1.weight": (clip, clip), "img_emb.proj.1.bias": (clip,),
                   "img_emb.proj.3.weight": (dim, clip), "img_emb.proj.3.bias": (dim,),
                   "img_emb.proj.4.weight": (dim,), "img_emb.proj.4.bias": (dim,)})
    for i in range(layers):
        b = f"blocks.{i}.cross_attn."
        shapes.update({b + "k_img.weight": (dim, dim), b + "k_img.bias": (dim,), b + "v_img.weight": (dim, dim),
                       b + "v_img.bias": (dim,), b + "norm_k_img.weight": (dim,)})
    out = {"model.diffusion_model.scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}
    for name, shape in shapes.items():
        key = "model.diffusion_model." + name
        matrix = len(shape) == 2 and name.endswith(".weight")
        w = rnd(shape, torch.float32, matrix)
        if "norm" in name and name.endswith(".weight") and not matrix:
            w += 1.0
        if matrix and name.startswith("blocks."):  # as ComfyUI's files: block linears in fp8
            scale = w.abs().max() / 448.0
            out[key] = (w / scale).to(torch.float8_e4m3fn).cpu()
            out[key.replace(".weight", ".scale_weight")] = scale.reshape(()).float().cpu()
        else:
            out[key] = w.to(torch.bfloat16).cpu()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path)


def write_umt5(path, layers, d=4096, heads=64, ff=10240, vocab=256384, buckets=32):
    s = {"shared.weight": (vocab, d), "encoder.final_layer_norm.weight": (d,)}
    for i in range(layers):
        b = f"encoder.block.{i}.layer."
        for p in "qkvo":
            s[b + f"0.SelfAttention.{p}.weight"] = (d, d)
        s[b + "0.SelfAttention.relative_attention_bias.weight"] = (buckets, heads)
        s[b + "0.layer_norm.weight"] = (d,)
        s[b + "1.DenseReluDense.wi_0.weight"] = (ff, d)
        s[b + "1.DenseReluDense.wi_1.weight"] = (ff, d)
        s[b + "1.DenseReluDense.wo.weight"] = (d, ff)
        s[b + "1.layer_norm.weight"] = (d,)
    spm = open(os.path.join(HERE, "..", "tests", "fixtures", "umt5_tiny_spiece.model"), "rb").read()
    write(path, s, torch.bfloat16, {"spiece_model": torch.frombuffer(bytearray(spm), dtype=torch.uint8)})


def write_clip_h(path, d=1280, layers=32, mlp=5120, patch=14, positions=257):
    p = "vision_model."
    s = {p + "embeddings.patch_embedding.weight": (d, 3, patch, patch), p + "embeddings.class_embedding": (d,),
         p + "embeddings.position_embedding.weight": (positions, d), p + "pre_layrnorm.weight": (d,),
         p + "pre_layrnorm.bias": (d,), p + "post_layernorm.weight": (d,), p + "post_layernorm.bias": (d,)}
    for i in range(layers):
        b = f"{p}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[b + f"self_attn.{n}.weight"] = (d, d)
            s[b + f"self_attn.{n}.bias"] = (d,)
        for n in ("layer_norm1", "layer_norm2"):
            s[b + f"{n}.weight"] = (d,)
            s[b + f"{n}.bias"] = (d,)
        s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"] = (mlp, d), (mlp,)
        s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"] = (d, mlp), (d,)
    write(path, s, torch.float16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--t5-layers", type=int, default=24)
    a = ap.parse_args()
    m = os.path.join(a.root, "models")
    jobs = [("diffusion_models/wan2.1_i2v_480p_14B_fp8_random.safetensors", write_dit),
            ("text_encoders/umt5_xxl_random.safetensors", lambda p: write_umt5(p, a.t5_layers)),
            ("clip_vision/clip_vision_h.safetensors", write_clip_h),
            ("vae/wan_2.1_vae.safetensors", lambda p: write(p, vae.tensor_shapes(vae.Config(dim=96)), torch.bfloat16))]
    for rel, fn in jobs:
        path = os.path.join(m, rel)
        if not os.path.exists(path):
            fn(path)
            print(f"wrote {path} ({os.path.getsize(path) / 2**30:.2f} GiB)", flush=True)


if __name__ == "__main__":
    main()
