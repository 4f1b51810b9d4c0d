#!/usr/bin/env python3
"""Writes Flux.1 dev's four parts with random weights at real shapes, as ComfyUI users have
them, for timing on the GPU machine (no checkpoints there):

  flux1-dev-fp8.safetensors   the DiT, ComfyUI scaled fp8: 2-D block weights float8_e4m3fn
                              with a per-tensor scale_weight, the rest bf16, a scaled_fp8
                              marker, keys under model.diffusion_model.
  t5xxl_fp16.safetensors      T5-XXL v1.1 encoder (HF names, fp16) with a `spiece_model`
                              tensor (the tiny test SentencePiece model: ids stay < 32128)
  clip_l.safetensors          CLIP-L text model (HF names, fp16) with the tiny CLIP tokenizer
                              as clip_tokenizer.vocab_json / merges_txt tensors
  ae.safetensors              the Flux VAE (official names, bf16)

    python3 bench/make_random_flux_parts.py --out /tmp/flux
Names and shapes follow src/models/flux/flux_config.cpp, HF T5EncoderModel / CLIPTextModel
and src/models/vae/flux_vae_config.cpp; the engine checks every tensor when it loads them.
"""
import argparse
import os

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures")


DEV = "cuda" if torch.cuda.is_available() else "cpu"  # the GPU draws 20 GB of noise in seconds


def rnd(shape, dtype, fan_in=None, offset=0.0, scale=0.02):
    t = torch.randn(shape, dtype=torch.float32, device=DEV)
    t = t * (1.0 / fan_in ** 0.5 if fan_in else scale) + offset
    return t.to(dtype).cpu()


def dit_tensors(hidden=3072, mlp=12288, depth=19, single=38, ctx=4096, vec=768):
    t = []
    lin = lambda n, i, o: t.extend([(n + ".weight", (o, i)), (n + ".bias", (o,))])
    emb = lambda n, i: (lin(n + ".in_layer", i, hidden), lin(n + ".out_layer", hidden, hidden))
    qk = lambda n: t.extend([(n + ".query_norm.scale", (128,)), (n + ".key_norm.scale", (128,))])
    lin("img_in", 64, hidden); emb("time_in", 256); emb("vector_in", vec); emb("guidance_in", 256)
    lin("txt_in", ctx, hidden)
    for i in range(depth):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}"
            lin(p + "_mod.lin", hidden, 6 * hidden); lin(p + "_attn.qkv", hidden, 3 * hidden); qk(p + "_attn.norm")
            lin(p + "_attn.proj", hidden, hidden); lin(p + "_mlp.0", hidden, mlp); lin(p + "_mlp.2", mlp, hidden)
    for i in range(single):
        b = f"single_blocks.{i}."
        lin(b + "linear1", hidden, 3 * hidden + mlp); lin(b + "linear2", hidden + mlp, hidden); qk(b + "norm")
        lin(b + "modulation.lin", hidden, 3 * hidden)
    lin("final_layer.linear", hidden, 64); lin("final_layer.adaLN_modulation.1", hidden, 2 * hidden)
    return t


def write_dit(path):
    out = {"scaled_fp8": torch.zeros(2, dtype=torch.float8_e4m3fn)}
    for name, shape in dit_tensors():
        key = "model.diffusion_model." + name
        block = name.startswith(("double_blocks.", "single_blocks.")) and name.endswith(".weight") and len(shape) == 2
        if block:
            w = torch.randn(shape, device=DEV) / shape[1] ** 0.5
            s = w.abs().max() / 448.0
            out[key] = (w / s).to(torch.float8_e4m3fn).cpu()
            out[key[:-len("weight")] + "scale_weight"] = s.reshape(1).float().cpu()
        elif name.endswith(".scale"):
            out[key] = rnd(shape, torch.bfloat16, offset=1.0, scale=0.1)
        elif len(shape) == 2:
            out[key] = rnd(shape, torch.bfloat16, fan_in=shape[1])
        else:
            out[key] = rnd(shape, torch.bfloat16)
    save_file(out, path)


def bytes_tensor(path):
    return torch.from_numpy(np.frombuffer(open(path, "rb").read(), dtype=np.uint8).copy())


def write_named(shapes, path, extra):
    out = {}
    for name, shape in shapes:
        if "norm" in name and name.endswith("weight"):
            out[name] = rnd(shape, torch.float16, offset=1.0, scale=0.1)
        elif "embed" in name or name == "shared.weight":
            out[name] = rnd(shape, torch.float16, scale=0.5)
        elif len(shape) == 2 and "relative" not in name:
            out[name] = rnd(shape, torch.float16, fan_in=shape[1])
        else:
            out[name] = rnd(shape, torch.float16, scale=0.02)
    out.update(extra)
    save_file(out, path)


def write_t5(path, d=4096, heads=64, ff=10240, layers=24, vocab=32128):
    """HF T5EncoderModel names (ComfyUI's t5xxl_fp16.safetensors)."""
    t = [("shared.weight", (vocab, d)), ("encoder.final_layer_norm.weight", (d,)),
         ("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (32, heads))]
    for i in range(layers):
        b = f"encoder.block.{i}.layer."
        t += [(b + "0.SelfAttention." + m + ".weight", (d, d)) for m in "qkvo"]
        t += [(b + "0.layer_norm.weight", (d,)), (b + "1.layer_norm.weight", (d,)),
              (b + "1.DenseReluDense.wi_0.weight", (ff, d)), (b + "1.DenseReluDense.wi_1.weight", (ff, d)),
              (b + "1.DenseReluDense.wo.weight", (d, ff))]
    write_named(t, path, {"spiece_model": bytes_tensor(os.path.join(FIX, "umt5_tiny_spiece.model"))})


def write_clip(path, d=768, mlp=3072, layers=12, vocab=49408, positions=77):
    """HF CLIPTextModel names (ComfyUI's clip_l.safetensors)."""
    p = "text_model."
    t = [(p + "embeddings.token_embedding.weight", (vocab, d)), (p + "embeddings.position_embedding.weight", (positions, d)),
         (p + "final_layer_norm.weight", (d,)), (p + "final_layer_norm.bias", (d,))]
    for i in range(layers):
        b = f"{p}encoder.layers.{i}."
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t += [(b + "self_attn." + m + ".weight", (d, d)), (b + "self_attn." + m + ".bias", (d,))]
        for n in ("layer_norm1", "layer_norm2"):
            t += [(b + n + ".weight", (d,)), (b + n + ".bias", (d,))]
        t += [(b + "mlp.fc1.weight", (mlp, d)), (b + "mlp.fc1.bias", (mlp,)),
              (b + "mlp.fc2.weight", (d, mlp)), (b + "mlp.fc2.bias", (d,))]
    tok = os.path.join(FIX, "clip_tiny_tokenizer")
    write_named(t, path, {"clip_tokenizer.vocab_json": bytes_tensor(os.path.join(tok, "vocab.json")),
                          "clip_tokenizer.merges_txt": bytes_tensor(os.path.join(tok, "merges.txt"))})


def vae_tensors(ch=128, mult=(1, 2, 4, 4), res=2, z=16):
    t = []
    conv = lambda n, s: t.extend([(n + ".weight", s), (n + ".bias", (s[0],))])
    norm = lambda n, c: t.extend([(n + ".weight", (c,)), (n + ".bias", (c,))])

    def resnet(p, i, o):
        norm(p + "norm1", i); conv(p + "conv1", (o, i, 3, 3)); norm(p + "norm2", o); conv(p + "conv2", (o, o, 3, 3))
        if i != o:
            conv(p + "nin_shortcut", (o, i, 1, 1))

    def mid(p, c):
        resnet(p + "mid.block_1.", c, c); norm(p + "mid.attn_1.norm", c)
        for m in ("q", "k", "v", "proj_out"):
            conv(p + "mid.attn_1." + m, (c, c, 1, 1))
        resnet(p + "mid.block_2.", c, c)

    top = ch * mult[-1]
    conv("encoder.conv_in", (ch, 3, 3, 3)); cin = ch
    for i, m in enumerate(mult):
        for j in range(res):
            resnet(f"encoder.down.{i}.block.{j}.", cin, ch * m); cin = ch * m
        if i + 1 != len(mult):
            conv(f"encoder.down.{i}.downsample.conv", (cin, cin, 3, 3))
    mid("encoder.", top); norm("encoder.norm_out", top); conv("encoder.conv_out", (2 * z, top, 3, 3))
    conv("decoder.conv_in", (top, z, 3, 3)); mid("decoder.", top); cin = top
    for k in reversed(range(len(mult))):
        for j in range(res + 1):
            resnet(f"decoder.up.{k}.block.{j}.", cin, ch * mult[k]); cin = ch * mult[k]
        if k != 0:
            conv(f"decoder.up.{k}.upsample.conv", (cin, cin, 3, 3))
    norm("decoder.norm_out", cin); conv("decoder.conv_out", (3, cin, 3, 3))
    return t


def vae_weights(dtype=torch.bfloat16):
    out = {}
    for name, shape in vae_tensors():
        if len(shape) == 4:
            out[name] = rnd(shape, dtype, fan_in=int(np.prod(shape[1:])))
        elif "norm" in name and name.endswith(".weight"):
            out[name] = rnd(shape, dtype, offset=1.0, scale=0.1)
        else:
            out[name] = rnd(shape, dtype, scale=0.1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", default="dit,t5,clip,vae")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    parts = a.parts.split(",")
    if "vae" in parts:
        save_file(vae_weights(), os.path.join(a.out, "ae.safetensors"))
    if "clip" in parts:
        write_clip(os.path.join(a.out, "clip_l.safetensors"))
    if "t5" in parts:
        write_t5(os.path.join(a.out, "t5xxl_fp16.safetensors"))
    if "dit" in parts:
        write_dit(os.path.join(a.out, "flux1-dev-fp8.safetensors"))


if __name__ == "__main__":
    main()
