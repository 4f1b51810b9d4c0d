"""fp8 attention's error on a trained model's own activations (PyTorch, float64, CPU): the
demo DiT (src/models/demo: Wan 2.1's architecture, 3 heads of 64, trained on procedural
scenes) run at a timestep with its self-attention as exact attention, as bf16 inputs, and as
the fp8 emulation (fp8_error_model.py's arithmetic: per-tensor e4m3, k and v smoothed, P and
the output e4m3) without and with the per-head q/k rotation that --attention fp8 applies.
Prints, per block, how far q and k's largest channel stands out (max over channels of the
channel's rms / the mean channel rms) and each call's rel L2 against exact attention on the
same inputs, then the whole forward's rel L2 against the exact forward.

    python3 bench/attention_lab/fp8_on_demo_model.py [--size 128] [--frames 9] [--timestep 700]
"""
import argparse
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "training", "demo"))
from fp8_error_model import attend, quant, rel  # noqa: E402
from wan_dit import WanDiT  # noqa: E402

F64 = torch.float64


def load_demo():
    path = os.path.join(REPO, "src", "models", "demo", "demo_dit.safetensors")
    with safe_open(path, "pt") as f:
        heads = int(f.metadata()["raylight.num_heads"])
    t = load_file(path)
    m = WanDiT(dim=t["patch_embedding.weight"].shape[0], num_heads=heads, ffn_dim=t["blocks.0.ffn.0.weight"].shape[0],
               num_layers=len({k.split(".")[1] for k in t if k.startswith("blocks.")}),
               text_dim=t["text_embedding.0.weight"].shape[1])
    m.table.load({k: v.float() for k, v in t.items()})
    return m.to(F64)


def fp8_attention(q, k, v, rotate):
    """[L, H, D] float64 -> [L, H, D]: the emulation of --attention fp8 (rotate: as now)."""
    n = k.shape[0]
    v8, vm, vs = quant(v, n, True)
    return attend(quant(q, q.shape[0], False, rotate)[0], quant(k, n, True, rotate)[0], v8, True, vs, vm)


def spread(x):
    """How far the largest channel stands out: max channel rms / mean channel rms, per head."""
    rms = x.pow(2).mean(0).sqrt()  # [H, D]
    return (rms.amax(-1) / rms.mean(-1)).max().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--timestep", type=float, default=700.0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_demo()
    context = load_file(os.path.join(REPO, "tests", "fixtures", "demo_case.safetensors"))["text_0"].to(F64)[None]
    lat = torch.randn(1, 16, (a.frames - 1) // 4 + 1, a.size // 8, a.size // 8, generator=torch.Generator().manual_seed(3),
                      dtype=F64)
    exact_attention = WanDiT.attention
    modes = {"exact": None, "bf16 inputs": "bf16", "fp8, unrotated (before)": False, "fp8, rotated (--attention fp8)": True}
    outputs, calls = {}, {}
    for name, mode in modes.items():
        log = calls[name] = []

        def attention(self, q, k, v, bias=None, mode=mode, log=log):
            if bias is not None or k.shape[1] != q.shape[1] or mode is None:  # cross-attention stays exact
                return exact_attention(self, q, k, v, bias)
            q0, k0, v0 = q[0], k[0], v[0]
            exact = attend(q0, k0, v0)
            if mode == "bf16":
                o = attend(*(t.bfloat16().double() for t in (q0, k0, v0)))
            else:
                o = fp8_attention(*(t.bfloat16().double() for t in (q0, k0, v0)), mode)
            log.append((spread(q0), spread(k0 - k0.mean(0)), rel(o, exact)))
            return o.reshape(1, q.shape[1], -1)

        WanDiT.attention = attention
        with torch.no_grad():
            outputs[name] = model(lat, torch.tensor([a.timestep], dtype=F64), context)
        WanDiT.attention = exact_attention
    L = lat.shape[2] * lat.shape[3] * lat.shape[4] // 4
    print(f"demo DiT ({model.num_layers} blocks, {model.num_heads} heads x {model.head_dim}), "
          f"{a.size}x{a.size}x{a.frames}: {L} tokens, timestep {a.timestep:g}")
    for name in list(modes)[1:]:
        per_call = " ".join(f"{e:.2e}" for _, _, e in calls[name])
        print(f"  {name:32s} per call (blocks 0..): {per_call}; forward rel L2 {rel(outputs[name], outputs['exact']):.3e}")
    print("  largest channel rms / mean channel rms, per block (q; k after smoothing): "
          + " ".join(f"{sq:.1f}/{sk:.1f}" for sq, sk, _ in calls["bf16 inputs"]))


if __name__ == "__main__":
    main()
