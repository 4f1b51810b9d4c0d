#!/usr/bin/env python3
"""PyTorch eager reference for `raylight bench`: the Wan 2.1 T2V DiT forward written
directly in PyTorch (bf16 weights and activations, F.scaled_dot_product_attention, which
picks PyTorch's fastest attention kernel), at the same shapes, with random weights.
Prints the median forward time (CUDA events, after warm-up), peak allocated memory, and
the attention kernel alone for each SDPA backend PyTorch offers on this GPU.

  python3 bench/torch_wan_bench.py --model wan-1.3b --frames 81 --height 480 --width 832
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# (dim, heads, ffn, layers, latent channels, VAE spatial stride)
CONFIGS = {"wan-1.3b": (1536, 12, 8960, 30, 16, 8), "wan-14b": (5120, 40, 13824, 40, 16, 8),
           "wan2.2-ti2v-5b": (3072, 24, 14336, 30, 48, 16)}
DT = torch.bfloat16


def rope_cos_sin(f, h, w, head_dim, theta=10000.0):
    """cos/sin [L, 1, head_dim/2] with Wan's split of head_dim over frame/height/width."""
    hw = 2 * (head_dim // 6)
    axes = [(head_dim - 2 * hw, f), (hw, h), (hw, w)]
    grids = torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij")
    angles = []
    for (ch, _), pos in zip(axes, grids):
        inv = theta ** (-torch.arange(0, ch, 2, dtype=torch.float64) / ch)
        angles.append(pos.reshape(-1, 1).double() * inv)
    a = torch.cat(angles, dim=1)
    return a.cos().float().unsqueeze(1).cuda(), a.sin().float().unsqueeze(1).cuda()


def rope(x, cos, sin):  # x [L, H, D], pairs (2i, 2i+1) rotated
    xf = x.float().unflatten(-1, (-1, 2))
    re, im = xf[..., 0], xf[..., 1]
    out = torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


def attention(q, k, v):  # [L, H, D] -> [L, H*D]
    o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None])
    return o[0].transpose(0, 1).flatten(1)


class Block(nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.heads = heads
        lin = lambda i, o: nn.Linear(i, o, dtype=DT)
        self.q, self.k, self.v, self.o = lin(dim, dim), lin(dim, dim), lin(dim, dim), lin(dim, dim)
        self.cq, self.ck, self.cv, self.co = lin(dim, dim), lin(dim, dim), lin(dim, dim), lin(dim, dim)
        self.nq, self.nk, self.cnq, self.cnk = (nn.Parameter(torch.ones(dim, dtype=DT)) for _ in range(4))
        self.norm3 = nn.LayerNorm(dim, eps=1e-6, dtype=DT)
        self.ffn0, self.ffn2 = lin(dim, ffn), lin(ffn, dim)
        self.modulation = nn.Parameter(0.1 * torch.randn(6, dim, dtype=DT))

    def forward(self, x, e, ctx, cos, sin):
        L, dim = x.shape
        split = lambda t: t.view(t.shape[0], self.heads, -1)
        m = (self.modulation + e).unbind(0)
        h = F.layer_norm(x, (dim,), eps=1e-6) * (1 + m[1]) + m[0]
        q = rope(split(F.rms_norm(self.q(h), (dim,), self.nq, 1e-6)), cos, sin)
        k = rope(split(F.rms_norm(self.k(h), (dim,), self.nk, 1e-6)), cos, sin)
        x = x + self.o(attention(q, k, split(self.v(h)))) * m[2]
        n = self.norm3(x)
        q = split(F.rms_norm(self.cq(n), (dim,), self.cnq, 1e-6))
        k = split(F.rms_norm(self.ck(ctx), (dim,), self.cnk, 1e-6))
        x = x + self.co(attention(q, k, split(self.cv(ctx))))
        h = F.layer_norm(x, (dim,), eps=1e-6) * (1 + m[4]) + m[3]
        return x + self.ffn2(F.gelu(self.ffn0(h), approximate="tanh")) * m[5]


class Wan(nn.Module):
    def __init__(self, dim, heads, ffn, layers, channels=16, text_dim=4096, freq_dim=256):
        super().__init__()
        self.dim, self.freq_dim, self.c = dim, freq_dim, channels
        self.patch = nn.Conv3d(channels, dim, (1, 2, 2), stride=(1, 2, 2), dtype=DT)
        self.text0, self.text2 = nn.Linear(text_dim, dim, dtype=DT), nn.Linear(dim, dim, dtype=DT)
        self.time0, self.time2 = nn.Linear(freq_dim, dim, dtype=DT), nn.Linear(dim, dim, dtype=DT)
        self.proj = nn.Linear(dim, 6 * dim, dtype=DT)
        self.blocks = nn.ModuleList(Block(dim, heads, ffn) for _ in range(layers))
        self.head = nn.Linear(dim, channels * 4, dtype=DT)
        self.head_mod = nn.Parameter(0.1 * torch.randn(2, dim, dtype=DT))

    def forward(self, latent, t, context, cos, sin):
        x = self.patch(latent[None])[0]  # [dim, f, h, w]
        f, h, w = x.shape[1:]
        x = x.flatten(1).T.contiguous()
        half = self.freq_dim // 2
        ang = t * torch.pow(10000.0, -torch.arange(half, device=x.device, dtype=torch.float64) / half)
        sinus = torch.cat([ang.cos(), ang.sin()])[None].to(DT)
        e = self.time2(F.silu(self.time0(sinus)))
        e0 = self.proj(F.silu(e)).view(6, self.dim)
        ctx = self.text2(F.gelu(self.text0(context), approximate="tanh"))
        for b in self.blocks:
            x = b(x, e0, ctx, cos, sin)
        m = (self.head_mod + e).unbind(0)
        x = self.head(F.layer_norm(x, (self.dim,), eps=1e-6) * (1 + m[1]) + m[0])
        x = x.view(f, h, w, 1, 2, 2, self.c).permute(6, 0, 3, 1, 4, 2, 5)
        return x.reshape(self.c, f, h * 2, w * 2)


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def bench_attention(L, Lk, heads, d):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q = torch.randn(1, heads, L, d, device="cuda", dtype=DT)
    k, v = (torch.randn(1, heads, Lk, d, device="cuda", dtype=DT) for _ in range(2))
    flops = 4.0 * L * Lk * heads * d
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
        try:
            with sdpa_kernel(getattr(SDPBackend, name)):
                ms = timed(lambda: F.scaled_dot_product_attention(q, k, v), 10, 3)
            print(f"torch attention {name}: q {L} x k {Lk}, {heads} heads x {d}: {ms:.3f} ms, {flops / ms / 1e9:.1f} TFLOP/s")
        except Exception as ex:  # a backend PyTorch cannot run here
            print(f"torch attention {name}: unavailable ({str(ex).splitlines()[0][:80]})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="wan-1.3b", choices=sorted(CONFIGS))
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--attention-only", action="store_true")
    a = ap.parse_args()
    dim, heads, ffn, layers, channels, stride = CONFIGS[a.model]
    lf, lh, lw = (a.frames - 1) // 4 + 1, a.height // stride, a.width // stride
    tokens = lf * (lh // 2) * (lw // 2)
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name()}, {a.model}, {tokens} tokens")
    if a.attention_only:
        bench_attention(tokens, tokens, heads, dim // heads)
        bench_attention(tokens, 512, heads, dim // heads)
        return
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Wan(dim, heads, ffn, layers, channels).eval()
    latent = torch.randn(channels, lf, lh, lw, device="cuda", dtype=DT)
    context = torch.randn(512, 4096, device="cuda", dtype=DT)
    cos, sin = rope_cos_sin(lf, lh // 2, lw // 2, dim // heads)
    with torch.inference_mode():
        fwd = lambda: model(latent, 500.0, context, cos, sin)
        fwd()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms = timed(fwd, a.runs, a.warmup)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"torch eager forward: median {ms:.1f} ms over {a.runs} runs; peak allocated {peak:.2f} GiB")


if __name__ == "__main__":
    main()
