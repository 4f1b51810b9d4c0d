"""One random Flux.1 dev transformer at real width written twice, for the GPU check of the
diffusers-named loader (issue 14): official names (one file) and diffusers' names (a sharded
`transformer/` folder with its index; no config.json, so heads are the default 128 wide),
plus forward inputs at 512x512 (1024 image + 512 text tokens).
Usage: python3 bench/make_flux_diffusers_pair.py --out DIR [--double 2] [--single 4] [--fp8] [--width 3072]
(--width: heads stay 128 wide, MLP 4x; a small width checks the script on a CPU.)
Writes DIR/official.safetensors, DIR/transformer/, DIR/case.safetensors.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

CTX, VEC = 4096, 768
H = MLP = 0  # set from --width


def official(double, single, fp8, g):
    w = {}

    def lin(name, i, o):
        w[name + ".weight"] = torch.randn(o, i, generator=g) / i ** 0.5
        w[name + ".bias"] = 0.02 * torch.randn(o, generator=g)

    def norms(name):
        w[name + ".query_norm.scale"] = 1 + 0.1 * torch.randn(128, generator=g)
        w[name + ".key_norm.scale"] = 1 + 0.1 * torch.randn(128, generator=g)

    lin("img_in", 64, H)
    for e, i in (("time_in", 256), ("vector_in", VEC), ("guidance_in", 256)):
        lin(e + ".in_layer", i, H)
        lin(e + ".out_layer", H, H)
    lin("txt_in", CTX, H)
    for b in range(double):
        for s in ("img", "txt"):
            p = f"double_blocks.{b}.{s}"
            lin(p + "_mod.lin", H, 6 * H)
            lin(p + "_attn.qkv", H, 3 * H)
            norms(p + "_attn.norm")
            lin(p + "_attn.proj", H, H)
            lin(p + "_mlp.0", H, MLP)
            lin(p + "_mlp.2", MLP, H)
    for b in range(single):
        p = f"single_blocks.{b}."
        lin(p + "linear1", H, 3 * H + MLP)
        lin(p + "linear2", H + MLP, H)
        norms(p + "norm")
        lin(p + "modulation.lin", H, 3 * H)
    lin("final_layer.linear", H, 64)
    lin("final_layer.adaLN_modulation.1", H, 2 * H)
    cast = lambda k, v: v.to(torch.float8_e4m3fn) if fp8 and v.ndim == 2 and "blocks." in k else v.to(torch.bfloat16)
    return {k: cast(k, v).contiguous() for k, v in w.items()}


def to_diffusers(w):
    """Split as diffusers' convert_flux_transformer_checkpoint_to_diffusers splits."""
    d = {}
    glob = {"img_in": "x_embedder", "txt_in": "context_embedder", "final_layer.linear": "proj_out",
            "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
            "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
            "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
            "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
            "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
            "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2"}
    dbl = {"img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear", "img_attn.proj": "attn.to_out.0",
           "txt_attn.proj": "attn.to_add_out", "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
           "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
           "img_attn.norm.query_norm": "attn.norm_q", "img_attn.norm.key_norm": "attn.norm_k",
           "txt_attn.norm.query_norm": "attn.norm_added_q", "txt_attn.norm.key_norm": "attn.norm_added_k"}
    sgl = {"linear2": "proj_out", "modulation.lin": "norm.linear", "norm.query_norm": "attn.norm_q",
           "norm.key_norm": "attn.norm_k"}
    for k, v in w.items():
        stem, suf = k.rsplit(".", 1)
        suf = "weight" if suf == "scale" else suf
        if stem in glob:
            d[f"{glob[stem]}.{suf}"] = v
        elif stem == "final_layer.adaLN_modulation.1":
            shift, scale = v.chunk(2, 0)
            d[f"norm_out.linear.{suf}"] = torch.cat([scale, shift], 0)
        else:
            kind, i, inner = stem.split(".", 2)
            blk = ("transformer_blocks." if kind == "double_blocks" else "single_transformer_blocks.") + i + "."
            if inner in ("img_attn.qkv", "txt_attn.qkv", "linear1"):
                names = ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"] if inner == "txt_attn.qkv" else \
                        ["attn.to_q", "attn.to_k", "attn.to_v"]
                sizes = [H, H, H] + ([MLP] if inner == "linear1" else [])
                for n, part in zip(names + ["proj_mlp"], torch.split(v, sizes, 0)):
                    d[f"{blk}{n}.{suf}"] = part.contiguous()
            else:
                d[f"{blk}{(dbl if kind == 'double_blocks' else sgl)[inner]}.{suf}"] = v
    return d


def save_sharded(d, folder, max_bytes=1 << 29):
    os.makedirs(folder, exist_ok=True)
    shards, cur, size = [], {}, 0
    for k, v in d.items():
        n = v.numel() * v.element_size()
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k], size = v, size + n
    shards.append(cur)
    weight_map = {}
    for i, s in enumerate(shards):
        name = "diffusion_pytorch_model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        save_file(s, os.path.join(folder, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in s})
    with open(os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return len(shards)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--double", type=int, default=2)
    ap.add_argument("--single", type=int, default=4)
    ap.add_argument("--fp8", action="store_true")
    ap.add_argument("--width", type=int, default=3072)
    a = ap.parse_args()
    global H, MLP
    H, MLP = a.width, 4 * a.width
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(14)
    w = official(a.double, a.single, a.fp8, g)
    save_file(w, os.path.join(a.out, "official.safetensors"))
    n = save_sharded(to_diffusers(w), os.path.join(a.out, "transformer"))
    case = {"latent": torch.randn(16, 64, 64, generator=g), "context": torch.randn(512, CTX, generator=g),
            "pooled": torch.randn(VEC, generator=g), "guidance": torch.tensor([3.5])}
    save_file(case, os.path.join(a.out, "case.safetensors"))
    print(f"wrote {len(w)} official tensors and {n} diffusers shards under {a.out}")


if __name__ == "__main__":
    main()
