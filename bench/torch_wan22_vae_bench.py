#!/usr/bin/env python3
"""PyTorch eager reference for the Wan 2.2 VAE decode (issue 17): the released decoder's
shapes (decoder width 256, 48 latent channels, 4x16x16 with its 2x2 patchify) with random
weights made on the GPU, a [48, 31, 44, 80] latent (704x1280x121), bf16, decoded as the
official vae2_2.py decodes: one latent frame at a time, each causal conv keeping its last
two input frames as the next chunk's history (its feat_cache), so memory stays that of a
chunk. The layers are the functional float64 ones of tests/fixtures/make_wan22_vae_golden.py
(whole-clip form, checked against the official code) run in bf16; only the chunking is
written here, and --check shows on the tiny weights in float64 on the CPU that it equals
the whole-clip decode. Prints the decode time (CUDA events; a 2-frame warm-up first) and
the peak allocated / reserved memory, for bench/wan22_vae_session.sh to put beside
raylight_wan22_vae_bench.

  python3 bench/torch_wan22_vae_bench.py [--frames 121 --height 704 --width 1280]
  python3 bench/torch_wan22_vae_bench.py --check
"""
import argparse
import importlib.util
import math
import os
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def golden_module():
    spec = importlib.util.spec_from_file_location(
        "wan22_vae_golden", os.path.join(HERE, "..", "tests", "fixtures", "make_wan22_vae_golden.py"))
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    return g


class ChunkedDecoder:
    """The Wan 2.2 decoder over latent frames one at a time (vae2_2.py's decode loop): a
    causal conv of temporal size k sees the k - 1 input frames it saw last (zeros at the
    start); a temporal upsample passes the first chunk and runs its time_conv from the
    second on (zero history then); the DupUp3D shortcut drops the clip's first frame only."""

    def __init__(self, g, w):
        self.g, self.w, self.cache = g, w, {}

    def cconv(self, n, x, pad):
        k = self.w[n + ".weight"]
        kt = k.shape[2]
        if kt > 1:
            prev = self.cache.get(n)
            if prev is None:
                prev = x.new_zeros((x.shape[0], kt - 1) + tuple(x.shape[2:]))
            x = torch.cat([prev, x], 1)
            self.cache[n] = x[:, -(kt - 1):]
        if pad:
            x = F.pad(x, (pad, pad, pad, pad))
        return F.conv3d(x[None], k, self.w[n + ".bias"])[0]

    def res(self, p, x):
        g = self.g
        h = self.cconv(p + "shortcut", x, 0) if p + "shortcut.weight" in self.w else x
        r = self.cconv(p + "residual.2", g.silu(g.rms(x, self.w[p + "residual.0.gamma"])), 1)
        r = self.cconv(p + "residual.6", g.silu(g.rms(r, self.w[p + "residual.3.gamma"])), 1)
        return r + h

    def up(self, p, x, temporal, first):
        if temporal and not first:
            C = x.shape[0]
            y = self.cconv(p + "time_conv", x, 0)
            x = torch.stack([y[:C], y[C:]], 2).reshape(C, 2 * x.shape[1], *x.shape[2:])
        x = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
        return self.g.conv2d_frames(self.w, p + "resample.1", x, (1, 1, 1, 1), 1)

    def chunk(self, z, first):
        g, w = self.g, self.w
        x = self.cconv("conv2", z, 0)
        x = self.cconv("decoder.conv1", x, 1)
        x = self.res("decoder.middle.2.", g.attn(w, "decoder.middle.1.", self.res("decoder.middle.0.", x)))
        dd = [g.DEC_DIM * u for u in [g.MULT[-1]] + g.MULT[::-1]]
        for i, (a, b) in enumerate(zip(dd[:-1], dd[1:])):
            p = f"decoder.upsamples.{i}.upsamples."
            h = x
            for j in range(g.NRES + 1):
                h = self.res(f"{p}{j}.", h)
            if i != len(g.MULT) - 1:
                h = self.up(f"{p}{g.NRES + 1}.", h, g.T_UP[i], first)
                x = h + self.dup_up(x, b, 2 if g.T_UP[i] else 1, first)
            else:
                x = h
        x = self.cconv("decoder.head.2", g.silu(g.rms(x, w["decoder.head.0.gamma"])), 1)
        return g.unpatchify(x).clamp(-1, 1)

    @staticmethod
    def dup_up(x, cout, ft, first):
        """DupUp3D (as make_wan22_vae_golden.dup_up): channels spread over ft frames and 2x2
        pixels; the ft - 1 leading frames are dropped on the clip's first chunk only."""
        C, T, H, W = x.shape
        y = x.repeat_interleave(cout * ft * 4 // C, 0).reshape(cout, ft, 2, 2, T, H, W).permute(0, 4, 1, 5, 2, 6, 3)
        y = y.reshape(cout, T * ft, 2 * H, 2 * W)
        return y[:, ft - 1:] if first else y

    def decode(self, latent):
        """latent [48, T, h, w] normalised -> video [3, 1 + 4 (T - 1), 16 h, 16 w] in [-1, 1]."""
        g = self.g
        m = torch.tensor(g.MEAN, dtype=latent.dtype, device=latent.device).reshape(-1, 1, 1, 1)
        s = torch.tensor(g.STD, dtype=latent.dtype, device=latent.device).reshape(-1, 1, 1, 1)
        z = latent * s + m
        self.cache = {}
        return torch.cat([self.chunk(z[:, i:i + 1], i == 0) for i in range(z.shape[1])], 1)


def check(g):
    """Chunked against the whole-clip decode, tiny weights, float64, 4 latent frames."""
    torch.set_num_threads(2)
    w = g.tiny_weights()
    latent = torch.randn(48, 4, 2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        whole = g.decode(w, latent)
        chunked = ChunkedDecoder(g, w).decode(latent)
    err = (whole - chunked).abs().max().item()
    print(f"chunked vs whole-clip decode (tiny, float64): {tuple(chunked.shape)}, max abs difference {err:.3e}")
    return err < 1e-10


def random_weights(g, device, dtype):
    """Released shapes; gammas 1 + 0.1 n, weights n / sqrt(fan_in), biases 0.1 n (as the C++ bench)."""
    gen = torch.Generator(device=device).manual_seed(1)
    w = {}
    for name, shape in g.tensor_list():
        if not (name.startswith("decoder.") or name.startswith("conv2.")):
            continue
        n = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
        if name.endswith(".gamma"):
            n = 1.0 + 0.1 * n
        elif name.endswith(".weight"):
            n = n / math.sqrt(math.prod(shape[1:]))
        else:
            n = 0.1 * n
        w[name] = n.to(dtype)
    return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--check", action="store_true", help="chunked vs whole-clip on the tiny weights (CPU)")
    a = ap.parse_args()
    g = golden_module()
    if a.check:
        raise SystemExit(0 if check(g) else 1)
    g.Z, g.ENC_DIM, g.DEC_DIM = 48, 160, 256  # the released Wan 2.2 VAE
    dt, dev = torch.bfloat16, "cuda"
    t0 = time.time()
    w = random_weights(g, dev, dt)
    print(f"random Wan 2.2 VAE decoder weights made in {time.time() - t0:.1f} s "
          f"({sum(v.numel() for v in w.values()) / 1e6:.0f} M parameters, bf16)")
    torch.backends.cudnn.benchmark = False
    dec = ChunkedDecoder(g, w)
    shape = (48, 1 + (a.frames - 1) // 4, a.height // 16, a.width // 16)
    gen = torch.Generator(device=dev).manual_seed(7)
    with torch.no_grad():
        dec.decode(torch.randn((48, 2) + shape[2:], generator=gen, device=dev, dtype=dt))  # warm-up
        torch.cuda.synchronize()
        z = torch.randn(shape, generator=gen, device=dev, dtype=dt)
        torch.cuda.reset_peak_memory_stats()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        video = dec.decode(z)
        e.record()
        torch.cuda.synchronize()
    gib = 1024.0 ** 3
    print(f"BENCH torch eager bf16 chunked decode latent {list(shape)} -> video {list(video.shape)}: "
          f"{s.elapsed_time(e) / 1000:.2f} s, peak allocated {torch.cuda.max_memory_allocated() / gib:.2f} GiB, "
          f"peak reserved {torch.cuda.max_memory_reserved() / gib:.2f} GiB")


if __name__ == "__main__":
    main()
