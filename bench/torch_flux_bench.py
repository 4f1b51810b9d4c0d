#!/usr/bin/env python3
"""PyTorch eager reference for `raylight bench --model flux-dev`: the Flux.1 dev DiT forward
written directly in PyTorch (bf16 weights and activations, F.scaled_dot_product_attention),
at the same shapes (1024x1024 -> 4096 image tokens + 512 text tokens), with random weights.
Prints the median forward time (CUDA events, after warm-up) and peak allocated memory.

  python3 bench/torch_flux_bench.py --height 1024 --width 1024
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

DT = torch.bfloat16
HIDDEN, HEADS, MLP, DEPTH, SINGLE = 3072, 24, 12288, 19, 38
AXES = (16, 56, 56)


def timestep_embedding(t, dim=256):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device="cuda") / half)
    args = t * freqs
    return torch.cat([torch.cos(args), torch.sin(args)])[None].to(DT)


def rope_angles(h, w, text):
    ids = torch.zeros(text + h * w, 3)
    ids[text:, 1] = torch.arange(h).repeat_interleave(w)
    ids[text:, 2] = torch.arange(w).repeat(h)
    parts = []
    for a, dim in enumerate(AXES):
        omega = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        parts.append(ids[:, a:a + 1].double() * omega)
    a = torch.cat(parts, dim=1)
    return a.cos().float()[:, None].cuda(), a.sin().float()[:, None].cuda()  # [L, 1, D/2]


def rope(x, cos, sin):  # x [L, H, D]
    xf = x.float().unflatten(-1, (-1, 2))
    re, im = xf[..., 0], xf[..., 1]
    return torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1).flatten(-2).to(x.dtype)


def attention(q, k, v, cos, sin):  # [L, H, D] -> [L, H*D]
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None])
    return o[0].transpose(0, 1).flatten(1)


def lin(i, o):
    return nn.Linear(i, o, dtype=DT)


class QKNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Parameter(torch.ones(HIDDEN // HEADS, dtype=DT))
        self.k = nn.Parameter(torch.ones(HIDDEN // HEADS, dtype=DT))

    def forward(self, q, k):
        return F.rms_norm(q, (q.shape[-1],), self.q, 1e-6), F.rms_norm(k, (k.shape[-1],), self.k, 1e-6)


def heads(t):
    return t.view(t.shape[0], HEADS, -1)


def modulate(x, shift, scale):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale) + shift


class Stream(nn.Module):
    def __init__(self):
        super().__init__()
        self.mod, self.qkv, self.norm = lin(HIDDEN, 6 * HIDDEN), lin(HIDDEN, 3 * HIDDEN), QKNorm()
        self.proj, self.mlp0, self.mlp2 = lin(HIDDEN, HIDDEN), lin(HIDDEN, MLP), lin(MLP, HIDDEN)

    def pre(self, x, vec):
        m = self.mod(F.silu(vec)).chunk(6, dim=-1)
        q, k, v = self.qkv(modulate(x, m[0], m[1])).chunk(3, dim=-1)
        q, k = self.norm(heads(q), heads(k))
        return m, q, k, heads(v)

    def post(self, x, a, m):
        x = x + m[2] * self.proj(a)
        return x + m[5] * self.mlp2(F.gelu(self.mlp0(modulate(x, m[3], m[4])), approximate="tanh"))


class Double(nn.Module):
    def __init__(self):
        super().__init__()
        self.img, self.txt = Stream(), Stream()

    def forward(self, img, txt, vec, cos, sin):
        im, iq, ik, iv = self.img.pre(img, vec)
        tm, tq, tk, tv = self.txt.pre(txt, vec)
        a = attention(torch.cat([tq, iq]), torch.cat([tk, ik]), torch.cat([tv, iv]), cos, sin)
        L = txt.shape[0]
        return self.img.post(img, a[L:], im), self.txt.post(txt, a[:L], tm)


class Single(nn.Module):
    def __init__(self):
        super().__init__()
        self.mod, self.l1, self.l2, self.norm = lin(HIDDEN, 3 * HIDDEN), lin(HIDDEN, 3 * HIDDEN + MLP), lin(HIDDEN + MLP, HIDDEN), QKNorm()

    def forward(self, x, vec, cos, sin):
        shift, scale, gate = self.mod(F.silu(vec)).chunk(3, dim=-1)
        qkv, mlp = torch.split(self.l1(modulate(x, shift, scale)), [3 * HIDDEN, MLP], dim=-1)
        q, k, v = qkv.chunk(3, dim=-1)
        q, k = self.norm(heads(q), heads(k))
        a = attention(q, k, heads(v), cos, sin)
        return x + gate * self.l2(torch.cat([a, F.gelu(mlp, approximate="tanh")], dim=-1))


class Flux(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_in, self.txt_in = lin(64, HIDDEN), lin(4096, HIDDEN)
        self.time = nn.Sequential(lin(256, HIDDEN), nn.SiLU(), lin(HIDDEN, HIDDEN))
        self.guid = nn.Sequential(lin(256, HIDDEN), nn.SiLU(), lin(HIDDEN, HIDDEN))
        self.vec = nn.Sequential(lin(768, HIDDEN), nn.SiLU(), lin(HIDDEN, HIDDEN))
        self.doubles = nn.ModuleList(Double() for _ in range(DEPTH))
        self.singles = nn.ModuleList(Single() for _ in range(SINGLE))
        self.final_mod, self.final = lin(HIDDEN, 2 * HIDDEN), lin(HIDDEN, 64)

    def forward(self, img, txt, pooled, t, g, cos, sin):
        img, txt = self.img_in(img), self.txt_in(txt)
        vec = self.time(timestep_embedding(t)) + self.guid(timestep_embedding(1000 * g)) + self.vec(pooled)
        for b in self.doubles:
            img, txt = b(img, txt, vec, cos, sin)
        x = torch.cat([txt, img])
        for b in self.singles:
            x = b(x, vec, cos, sin)
        shift, scale = self.final_mod(F.silu(vec)).chunk(2, dim=-1)
        return self.final(modulate(x[txt.shape[0]:], shift, scale))


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    h, w = a.height // 16, a.width // 16
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name()}, flux-dev, {h * w} image + 512 text tokens")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Flux().eval()
    img = torch.randn(h * w, 64, device="cuda", dtype=DT)
    txt = torch.randn(512, 4096, device="cuda", dtype=DT)
    pooled = torch.randn(1, 768, device="cuda", dtype=DT)
    cos, sin = rope_angles(h, w, 512)
    with torch.inference_mode():
        fwd = lambda: model(img, txt, pooled, 500.0, 3.5, cos, sin)
        fwd()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms = timed(fwd, a.runs, a.warmup)
    print(f"torch eager forward: median {ms:.1f} ms over {a.runs} runs; "
          f"peak allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
