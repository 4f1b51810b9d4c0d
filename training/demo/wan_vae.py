"""A trainable Wan 2.1 video VAE in PyTorch, parameters named like the official state dict.

The architecture is the released one (z_dim 16, dim_mult [1, 2, 4, 4], 2 residual blocks
per encoder level and 3 per decoder level, time halved at the 2nd and 3rd level, one
single-head attention block in the middle), only narrower (base width 8 instead of 96).
The forward pass is the whole-clip form that tests/fixtures/make_wan_vae_golden.py writes
out and checks against the official chunked code: every causal conv sees the clip with
kt - 1 zero frames in front; the decoder's temporal upsampler passes frame 0 through and
turns each later frame into two with its (3,1,1) conv; the encoder's downsampler passes
frame 0 through and convolves frames 2j-2..2j with stride 2. Batched: clips [B, C, T, H, W].

Latents at the interface are normalised like the engine's: the DiT sees (mu - mean) / std
with the released model's 16 means and stds (src/models/vae/wan_vae_config.cpp).
`fold_latent_scale` rewrites conv1/conv2 so that these normalised latents of the training
data have zero mean and unit variance per channel, without changing what the VAE computes.
"""

import math

import torch
import torch.nn.functional as F

from wan_dit import Table

LATENT_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENT_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
Z = 16


def encoder_layout(dim, mult=(1, 2, 4, 4), blocks=2, down=(False, True, True)):
    dims = [dim * u for u in (1,) + tuple(mult)]
    out, k = [], 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(blocks):
            out.append(("res", k, cin, cout))
            k += 1
            cin = cout
        if i != len(mult) - 1:
            out.append(("down", k, cout, down[i]))
            k += 1
    return out, dims[-1]


def decoder_layout(dim, mult=(1, 2, 4, 4), blocks=2, down=(False, True, True)):
    up = down[::-1]
    dims = [dim * u for u in (mult[-1],) + tuple(mult[::-1])]
    out, k = [], 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        if i > 0:
            cin = cin // 2
        for _ in range(blocks + 1):
            out.append(("res", k, cin, cout))
            k += 1
            cin = cout
        if i != len(mult) - 1:
            out.append(("up", k, cout, up[i]))
            k += 1
    return out, dims[0], dims[-1]


class WanVAE(torch.nn.Module):
    def __init__(self, dim=8, seed=0):
        super().__init__()
        self.dim = dim
        g = torch.Generator().manual_seed(seed)
        t = self.table = Table()

        def conv(name, shape, gain=1.0):
            fan_in = math.prod(shape[1:])
            t.add(name + ".weight", gain * torch.randn(*shape, generator=g) / math.sqrt(fan_in))
            t.add(name + ".bias", torch.zeros(shape[0]))

        def res(p, cin, cout):
            t.add(p + "residual.0.gamma", torch.ones(cin, 1, 1, 1))
            conv(p + "residual.2", (cout, cin, 3, 3, 3))
            t.add(p + "residual.3.gamma", torch.ones(cout, 1, 1, 1))
            conv(p + "residual.6", (cout, cout, 3, 3, 3), gain=0.3)
            if cin != cout:
                conv(p + "shortcut", (cout, cin, 1, 1, 1))

        def middle(p, c):
            res(p + "middle.0.", c, c)
            t.add(p + "middle.1.norm.gamma", torch.ones(c, 1, 1))
            conv(p + "middle.1.to_qkv", (3 * c, c, 1, 1))
            conv(p + "middle.1.proj", (c, c, 1, 1), gain=0.3)
            res(p + "middle.2.", c, c)

        conv("encoder.conv1", (dim, 3, 3, 3, 3))
        layout, top = encoder_layout(dim)
        for kind, k, c, x in layout:
            p = f"encoder.downsamples.{k}."
            if kind == "res":
                res(p, c, x)
            else:
                conv(p + "resample.1", (c, c, 3, 3))
                if x:
                    conv(p + "time_conv", (c, c, 3, 1, 1))
        middle("encoder.", top)
        t.add("encoder.head.0.gamma", torch.ones(top, 1, 1, 1))
        conv("encoder.head.2", (2 * Z, top, 3, 3, 3))
        conv("conv1", (2 * Z, 2 * Z, 1, 1, 1))
        conv("conv2", (Z, Z, 1, 1, 1))
        layout, d0, dl = decoder_layout(dim)
        conv("decoder.conv1", (d0, Z, 3, 3, 3))
        middle("decoder.", d0)
        for kind, k, c, x in layout:
            p = f"decoder.upsamples.{k}."
            if kind == "res":
                res(p, c, x)
            else:
                conv(p + "resample.1", (c // 2, c, 3, 3))
                if x:
                    conv(p + "time_conv", (2 * c, c, 3, 1, 1))
        t.add("decoder.head.0.gamma", torch.ones(dl, 1, 1, 1))
        conv("decoder.head.2", (3, dl, 3, 3, 3))
        self.register_buffer("mean", torch.tensor(LATENT_MEAN).reshape(1, Z, 1, 1, 1))
        self.register_buffer("std", torch.tensor(LATENT_STD).reshape(1, Z, 1, 1, 1))

    W = property(lambda self: self.table)

    # ---- ops, clips [B, C, T, H, W] ----------------------------------------------------
    def rms(self, x, name):
        g = self.table[name]
        c = x.shape[1]
        return F.normalize(x, dim=1) * math.sqrt(c) * g.reshape(1, c, *([1] * (x.dim() - 2))).to(x.dtype)

    def causal(self, x, name, pad):
        w = self.table[name + ".weight"]
        kt = w.shape[2]
        xp = F.pad(x, (pad, pad, pad, pad, kt - 1, 0))
        return F.conv3d(xp, w, self.table[name + ".bias"])

    def frame_conv2d(self, x, name, stride=1, pad=(1, 1, 1, 1)):
        B, C, T, H, W = x.shape
        y = x.transpose(1, 2).reshape(B * T, C, H, W)
        y = F.conv2d(F.pad(y, pad), self.table[name + ".weight"], self.table[name + ".bias"], stride=stride)
        return y.reshape(B, T, *y.shape[1:]).transpose(1, 2)

    def residual(self, x, p):
        h = self.causal(x, p + "shortcut", 0) if p + "shortcut.weight" in self.table._names else x
        r = F.silu(self.rms(x, p + "residual.0.gamma"))
        r = self.causal(r, p + "residual.2", 1)
        r = F.silu(self.rms(r, p + "residual.3.gamma"))
        r = self.causal(r, p + "residual.6", 1)
        return r + h

    def attention(self, x, p):
        B, C, T, H, W = x.shape
        n = self.rms(x, p + "norm.gamma")
        tok = n.transpose(1, 2).reshape(B * T, C, H * W)
        qkv = F.conv1d(tok, self.table[p + "to_qkv.weight"].reshape(3 * C, C, 1), self.table[p + "to_qkv.bias"])
        q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)                  # [BT, HW, C]
        o = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        o = F.conv1d(o.transpose(1, 2), self.table[p + "proj.weight"].reshape(C, C, 1), self.table[p + "proj.bias"])
        return o.reshape(B, T, C, H, W).transpose(1, 2) + x

    def up_time(self, x, p):
        B, C, T = x.shape[:3]
        if T == 1:
            return x
        y = self.causal(x[:, :, 1:], p + "time_conv", 0)                # [B, 2C, T-1, H, W]
        y = y.reshape(B, 2, C, T - 1, *x.shape[3:]).permute(0, 2, 3, 1, 4, 5)
        y = y.reshape(B, C, 2 * (T - 1), *x.shape[3:])
        return torch.cat([x[:, :, :1], y], dim=2)

    def down_time(self, x, p):
        if x.shape[2] == 1:
            return x
        y = F.conv3d(x, self.table[p + "time_conv.weight"], self.table[p + "time_conv.bias"], stride=(2, 1, 1))
        return torch.cat([x[:, :, :1], y], dim=2)

    # ---- the two halves --------------------------------------------------------------------
    def encode_moments(self, video):
        """video [B, 3, 1+4k, H, W] in [-1, 1] -> (mu, logvar) raw, [B, 16, 1+k, H/8, W/8]."""
        x = self.causal(video, "encoder.conv1", 1)
        layout, _ = encoder_layout(self.dim)
        for kind, k, c, mode in layout:
            p = f"encoder.downsamples.{k}."
            if kind == "res":
                x = self.residual(x, p)
                continue
            x = self.frame_conv2d(x, p + "resample.1", stride=2, pad=(0, 1, 0, 1))
            if mode:
                x = self.down_time(x, p)
        x = self.residual(x, "encoder.middle.0.")
        x = self.attention(x, "encoder.middle.1.")
        x = self.residual(x, "encoder.middle.2.")
        x = F.silu(self.rms(x, "encoder.head.0.gamma"))
        x = self.causal(x, "encoder.head.2", 1)
        x = self.causal(x, "conv1", 0)
        return x[:, :Z], x[:, Z:]

    def encode(self, video):
        """Normalised latent the DiT sees: (mu - mean) / std."""
        mu, _ = self.encode_moments(video)
        return (mu - self.mean) / self.std

    def decode_raw(self, z):
        x = self.causal(z, "conv2", 0)
        x = self.causal(x, "decoder.conv1", 1)
        x = self.residual(x, "decoder.middle.0.")
        x = self.attention(x, "decoder.middle.1.")
        x = self.residual(x, "decoder.middle.2.")
        layout, _, _ = decoder_layout(self.dim)
        for kind, k, c, mode in layout:
            p = f"decoder.upsamples.{k}."
            if kind == "res":
                x = self.residual(x, p)
                continue
            if mode:
                x = self.up_time(x, p)
            x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
            x = self.frame_conv2d(x, p + "resample.1")
        x = F.silu(self.rms(x, "decoder.head.0.gamma"))
        return self.causal(x, "decoder.head.2", 1)

    def decode(self, latent):
        """Normalised latent -> video in [-1, 1] (clamped, as the engine)."""
        return self.decode_raw(latent * self.std + self.mean).clamp(-1, 1)

    @torch.no_grad()
    def fold_latent_scale(self, m, s):
        """Given per-channel mean m and std s [16] of the normalised latents of the data,
        rewrite conv1 (mu rows) and conv2 so the new normalised latents are (old - m) / s,
        and decoding them gives the same video."""
        mean, std = self.mean.flatten(), self.std.flatten()
        # Encoder: mu' = mean + std * ((mu - mean) / std - m) / s = a * mu + c.
        a = 1.0 / s
        c = mean - mean / s - std * m / s
        w, b = self.table["conv1.weight"], self.table["conv1.bias"]
        w[:Z] *= a.reshape(Z, 1, 1, 1, 1)
        b[:Z] = a * b[:Z] + c
        # Decoder: conv2 gets mu' and must see mu = (mu' - c) / a = s * mu' - c / a.
        w2, b2 = self.table["conv2.weight"], self.table["conv2.bias"]
        shift = -c / a
        b2 += (w2[:, :, 0, 0, 0] * shift[None, :]).sum(1)
        w2 *= s.reshape(1, Z, 1, 1, 1)
