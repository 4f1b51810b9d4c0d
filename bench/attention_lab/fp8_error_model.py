"""Where fp8 attention's error comes from, on paper (PyTorch, float64, CPU): exact attention
against the same with one stage quantised at a time - q/k as e4m3 (per tensor, k smoothed),
P as e4m3 (exp(s - max) x 448, before the row sum divides it, as cuDNN's flash kernel does),
v as e4m3 (smoothed), the output as e4m3 (cuDNN's fp8 attention on Hopper writes fp8 only) -
and the ways to cut it: q and k rotated per head by the signed Hadamard transform
(backend/fp8_rotation.h, FlashAttention-3's incoherent processing; what --attention fp8 does
now), one q/k scale per head instead of per tensor, a bf16 output, and SageAttention's split
(q/k as int8 with a scale per block of tokens and head, P and v as e4m3).

Inputs: N(0, 1); channels 3 and 65 of q and k 4x and 16x (outlier channels, with a
per-channel offset on k and v that smoothing removes); FlashAttention-3's test (N(0, 1) plus
N(0, 100) with probability 0.001 on q, k, v); heads of different scale (0.25 to 4: a peaked
softmax on the large heads). Prints relative L2 errors against exact attention.

    python3 fp8_error_model.py [--queries 256] [--keys 2048]
"""
import argparse
import math

import torch


def e4m3(x):
    return x.clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.float64)


def flips(d):  # backend/fp8_rotation.h's fp8_rotation_flips
    h = ((d + 1) * 0x6554BA47) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    return (h >> 31) & 1


def rotation(D):
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < D:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    signs = torch.tensor([-1.0 if flips(d) else 1.0 for d in range(D)], dtype=torch.float64)
    return h * signs[None, :] / math.sqrt(D)  # x -> H S x / sqrt(D) as y = x @ R.T


def quant(x, n, smooth, rotate=False, per_head=False):
    """e4m3 with one scale per tensor (or per head) over rows [0, n); returns the dequantised
    values (mean still subtracted), the mean and the scale."""
    x = x.double()
    if rotate:
        x = x @ rotation(x.shape[2]).T
    mean = x[:n].mean(0, keepdim=True) if smooth else torch.zeros_like(x[:1])
    y = x - mean
    amax = y[:n].abs().amax(dim=(0, 2), keepdim=True) if per_head else y[:n].abs().max()
    scale = 448 / amax
    return e4m3(y * scale) / scale, mean, scale


def int8_blocks(x, block, smooth_n=None):
    x = x.double()
    if smooth_n:
        x = x - x[:smooth_n].mean(0, keepdim=True)
    out = torch.empty_like(x)
    for s in range(0, x.shape[0], block):
        b = x[s:s + block]
        a = b.abs().amax(dim=(0, 2), keepdim=True).clamp_min(1e-30)  # one scale per block and head
        out[s:s + block] = torch.round(b / a * 127).clamp(-127, 127) * a / 127
    return out


def attend(q, k, v, p8=False, o_scale=None, v_mean=0.0):
    s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[2])
    e = torch.exp(s - s.amax(-1, keepdim=True))
    total = e.sum(-1, keepdim=True)
    if p8:
        e = e4m3(e * 448) / 448
    o = torch.einsum("hqk,khd->qhd", e / total, v)
    if o_scale is not None:
        o = e4m3(o * o_scale) / o_scale
    return o + v_mean


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def inputs(kind, Lq, Lk, H, D):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(n, H, D, generator=g) for n in (Lq, Lk, Lk))
    if kind.startswith("outlier"):
        f = float(kind[len("outlier"):])
        for t in (q, k):
            t[..., 3] *= f
            t[..., D // 2 + 1] *= f
        offset = 0.25 * (torch.arange(D) % 7) - 0.5
        k += offset
        v += offset
    elif kind == "fa3":
        for t in (q, k, v):
            t += (torch.rand(t.shape, generator=g) < 1e-3) * torch.randn(t.shape, generator=g) * 10
    elif kind == "heads":
        s = torch.logspace(math.log10(0.25), math.log10(4), H).view(1, H, 1)
        q *= s
        k *= s
    return tuple(t.bfloat16().double() for t in (q, k, v))  # what the kernels are given


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--keys", type=int, default=2048)
    a = ap.parse_args()
    H, D, Lq, Lk = 4, 128, a.queries, a.keys
    names = {"random": "random N(0, 1)", "outlier4": "outlier channels 4x", "outlier16": "outlier channels 16x",
             "fa3": "FlashAttention-3's (N(0,100) w.p. 0.001)", "heads": "heads scaled 0.25 .. 4"}
    for kind, title in names.items():
        q, k, v = inputs(kind, Lq, Lk, H, D)
        exact = attend(q, k, v)
        v8, vm, vs = quant(v, Lk, True)
        rows = {}
        for label, kw in (("per tensor, unrotated (before)", {}), ("per tensor, rotated (--attention fp8)",
                          {"rotate": True}), ("per-head q/k scales, unrotated", {"per_head": True})):
            q8 = quant(q, Lq, False, **kw)[0]
            k8 = quant(k, Lk, True, **kw)[0]
            rows["cuDNN fp8 on Hopper, " + label] = attend(q8, k8, v8, True, vs, vm)
            if kw.get("rotate"):
                rows["  the same with a bf16 output (Blackwell)"] = attend(q8, k8, v8, True, None, vm)
        rows["only q/k e4m3, unrotated"] = attend(quant(q, Lq, False)[0], quant(k, Lk, True)[0], v)
        rows["only q/k e4m3, rotated"] = attend(quant(q, Lq, False, True)[0], quant(k, Lk, True, True)[0], v)
        rows["only P e4m3"] = attend(q, k, v, p8=True)
        rows["only v e4m3"] = attend(q, k, v8, v_mean=vm)
        rows["only the output e4m3"] = attend(q, k, v - vm, o_scale=vs, v_mean=vm)
        rows["SageAttention split (int8 q/k blocks, e4m3 P v, bf16 out)"] = attend(
            int8_blocks(q, 128), int8_blocks(k, 64, Lk), v8, True, None, vm)
        print(f"inputs: {title}, q {Lq} x k {Lk}, {H} heads x {D}")
        for name, o in rows.items():
            print(f"  {name:60s} rel L2 {rel(o, exact):.3e}")


if __name__ == "__main__":
    main()
