"""Writes a random rank-R LoRA (kohya/ComfyUI names: diffusion_model.<layer>.lora_down/up
.weight + alpha, bf16) for every 2-D block matrix of a Wan checkpoint, at the checkpoint's
shapes: what a distillation LoRA looks like to the engine, for timing on the GPU machine.

    python3 bench/make_random_lora.py --model /tmp/wan14b_fp8.safetensors --rank 64 --out /tmp/lora64.safetensors
"""
import argparse

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(64)
    out = {}
    with safe_open(a.model, "pt") as f:
        for k in f.keys():
            shape = f.get_slice(k).get_shape()
            if ".blocks." not in "." + k or not k.endswith(".weight") or len(shape) != 2:
                continue
            stem = "diffusion_model." + k.split("diffusion_model.")[-1][: -len(".weight")]
            out[stem + ".lora_down.weight"] = (torch.randn(a.rank, shape[1], generator=g) * 0.02).bfloat16()
            out[stem + ".lora_up.weight"] = (torch.randn(shape[0], a.rank, generator=g) * 0.02).bfloat16()
            out[stem + ".alpha"] = torch.tensor(float(a.rank))
    save_file(out, a.out)
    print("wrote %d adapters of rank %d to %s" % (len(out) // 3, a.rank, a.out))


if __name__ == "__main__":
    main()
