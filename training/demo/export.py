#!/usr/bin/env python3
"""Turns a training run's dit.safetensors and vae.safetensors into the shipped demo model
and the fixture that proves the engine computes what PyTorch trained.

Writes:
  src/models/demo/demo_dit.safetensors   bf16, official Wan key names; metadata: the head
                                         count, "raylight.embedded": "demo", the model card
                                         (sampling defaults, prompt vocabulary: see
                                         src/models/model_card.h) and where it came from
  src/models/demo/demo_vae.safetensors   bf16, official Wan 2.1 VAE key names
  tests/fixtures/demo_case.safetensors   inputs and float64 PyTorch outputs of the shipped
                                         weights: prompt ids and tiny-umT5 embeddings, a DiT
                                         velocity, a VAE decode and encode

The outputs are the PyTorch modules of this folder run in float64 on the bf16 weights (the
DiT with its plain 512-row cross-attention, as the engine runs it); tests/unit/
test_demo_model.cpp compares the engine's fp32 CPU results with them.

Usage: python3 training/demo/export.py --dit RUN/dit.safetensors --vae RUN/vae.safetensors
           [--steps 10 --cfg 3 --shift 3 --sampler unipc --fps 8]
Deterministic on the CPU (one thread): the same inputs give the same bytes.
"""

import argparse
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
from umt5_tiny import TinyUMT5, Tokenizer  # noqa: E402
from wan_dit import WanDiT  # noqa: E402
from wan_vae import WanVAE  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEMO_DIR = os.path.join(REPO, "src", "models", "demo")
FIXTURES = os.path.join(REPO, "tests", "fixtures")
F64 = torch.float64
PROMPTS = ["a red circle moving right on a blue background",
           "A green square moving left on a white striped background.",
           "a red fox running through fresh snow"]  # outside the vocabulary: still encoded


def dit_from(tensors, heads):
    dim = tensors["patch_embedding.weight"].shape[0]
    ffn = tensors["blocks.0.ffn.0.weight"].shape[0]
    layers = len({k.split(".")[1] for k in tensors if k.startswith("blocks.")})
    text_dim = tensors["text_embedding.0.weight"].shape[1]
    m = WanDiT(dim=dim, num_heads=heads, ffn_dim=ffn, num_layers=layers, text_dim=text_dim)
    m.table.load({k: v.float() for k, v in tensors.items()})
    return m


def vae_from(tensors):
    m = WanVAE(dim=tensors["decoder.head.2.weight"].shape[1])
    m.table.load({k: v.float() for k, v in tensors.items()})
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dit", required=True)
    ap.add_argument("--vae", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--shift", type=float, default=3.0)
    ap.add_argument("--sampler", default="unipc")
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--note", default="", help="where the weights came from (run, seed, time)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with safe_open(args.dit, "pt") as f:
        heads = int(f.metadata()["raylight.num_heads"])
    dit_t = {k: v.bfloat16().contiguous() for k, v in load_file(args.dit).items()}
    vae_t = {k: v.bfloat16().contiguous() for k, v in load_file(args.vae).items()}
    size = 128
    defaults = {"width": size, "height": size, "frames": scenes.CLIP_FRAMES, "steps": args.steps,
                "cfg": args.cfg, "shift": args.shift, "sampler": args.sampler, "fps": args.fps}
    meta = {"raylight.num_heads": str(heads), "raylight.embedded": "demo",
            "raylight.model": "Raylight demo: Wan 2.1 T2V architecture trained on procedural scenes",
            "raylight.defaults": json.dumps(defaults),
            "raylight.vocabulary": json.dumps(scenes.VOCABULARY),
            "raylight.source": "training/demo/train.py (seed 22) " + args.note}
    os.makedirs(DEMO_DIR, exist_ok=True)
    save_file(dit_t, os.path.join(DEMO_DIR, "demo_dit.safetensors"), metadata=meta)
    save_file(vae_t, os.path.join(DEMO_DIR, "demo_vae.safetensors"),
              metadata={"raylight.model": "Raylight demo: Wan 2.1 VAE architecture, base width "
                        + str(vae_t["decoder.head.2.weight"].shape[1])})

    # The fixture, in float64 from the shipped (bf16) weights.
    case = {}
    tok = Tokenizer()
    enc = TinyUMT5().to(F64)
    texts = []
    for n, p in enumerate(PROMPTS):
        ids = tok(p)
        with torch.no_grad():
            out = enc(torch.tensor([ids]), torch.tensor([len(ids)]))[0]
        case[f"ids_{n}"] = torch.tensor(ids, dtype=torch.int32)
        case[f"text_{n}"] = out.float()
        texts.append(out)
    g = torch.Generator().manual_seed(22)
    dit = dit_from(dit_t, heads).to(F64)
    latent = torch.randn(16, 3, 6, 8, generator=g, dtype=F64)
    with torch.no_grad():
        v = dit(latent[None], torch.tensor([700.0], dtype=F64), texts[0][None])[0]
    case.update({"dit_latent": latent.float(), "dit_timestep": torch.tensor([700.0]),
                 "dit_velocity": v.float()})
    vae = vae_from(vae_t).to(F64)
    z = torch.randn(16, 2, 4, 4, generator=g, dtype=F64)
    clip = scenes.render(torch.tensor([scenes.CAPTION_TEXT.index(PROMPTS[0])]), 5, 32,
                         torch.Generator().manual_seed(22), "cpu")[0].to(F64)
    with torch.no_grad():
        video = vae.decode(z[None])[0]
        mu = vae.encode(clip[None])[0]
    case.update({"vae_latent": z.float(), "vae_video": video.float(), "vae_input": clip.float(),
                 "vae_mu": mu.float()})
    save_file({k: v.contiguous() for k, v in case.items()}, os.path.join(FIXTURES, "demo_case.safetensors"))
    for path in (os.path.join(DEMO_DIR, "demo_dit.safetensors"), os.path.join(DEMO_DIR, "demo_vae.safetensors"),
                 os.path.join(FIXTURES, "demo_case.safetensors")):
        os.chmod(path, 0o644)
        print(f"wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path)} bytes)")
    print(f"velocity max {v.abs().max().item():.3f}, video max {video.abs().max().item():.3f}, "
          f"mu max {mu.abs().max().item():.3f}")


if __name__ == "__main__":
    main()
