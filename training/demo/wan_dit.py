"""A trainable Wan 2.1 T2V DiT in PyTorch, parameters named like the official checkpoints.

The forward pass is the one tests/fixtures/make_wan_golden.py writes out (and checks
against Wan-Video/Wan2.1's model.py), batched and differentiable: patchify by a (1,2,2)
conv, sinusoidal time embedding (cos then sin) -> MLP -> six modulation vectors, the text
context zero-padded to 512 rows and embedded by Linear-GELU(tanh)-Linear, then blocks of
modulated self-attention (RMS-normed q/k, 3-D RoPE with adjacent channel pairs),
affine-LayerNorm cross-attention over all 512 context rows (no mask, as the engine), and a
modulated tanh-GELU feed-forward; the head is modulated by the time embedding.

Parameters live in one flat table under their checkpoint names ("blocks.0.self_attn.q.weight"),
so `state_dict()` of `WanDiT.table` is the export with no renaming.
"""

import math

import torch
import torch.nn.functional as F


def wide(t):
    """At least float32 (float64 stays float64, for the equivalence checks)."""
    return t if t.dtype == torch.float64 else t.float()


class Table(torch.nn.Module):
    """Parameters under checkpoint names ('.' is not allowed in module attribute names)."""

    def __init__(self):
        super().__init__()
        self._names = []

    def add(self, name, tensor):
        self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(tensor))
        self._names.append(name)

    def __getitem__(self, name):
        return getattr(self, name.replace(".", "__"))

    def export(self):
        return {n: self[n].detach() for n in self._names}

    def load(self, tensors):
        with torch.no_grad():
            for n in self._names:
                self[n].copy_(tensors[n])


class WanDiT(torch.nn.Module):
    def __init__(self, dim=256, num_heads=4, ffn_dim=768, num_layers=4, text_dim=64,
                 in_dim=16, out_dim=16, freq_dim=256, text_len=512, seed=0):
        super().__init__()
        self.dim, self.num_heads, self.ffn_dim, self.num_layers = dim, num_heads, ffn_dim, num_layers
        self.text_dim, self.in_dim, self.out_dim = text_dim, in_dim, out_dim
        self.freq_dim, self.text_len = freq_dim, text_len
        self.head_dim = dim // num_heads
        self.eps = 1e-6
        g = torch.Generator().manual_seed(seed)
        t = self.table = Table()

        def randn(*shape):
            return torch.randn(*shape, generator=g)

        def linear(name, n_in, n_out, gain=1.0):
            t.add(name + ".weight", gain * randn(n_out, n_in) / math.sqrt(n_in))
            t.add(name + ".bias", torch.zeros(n_out))

        d = dim
        t.add("patch_embedding.weight", randn(d, in_dim, 1, 2, 2) / math.sqrt(in_dim * 4))
        t.add("patch_embedding.bias", torch.zeros(d))
        linear("text_embedding.0", text_dim, d)
        linear("text_embedding.2", d, d)
        linear("time_embedding.0", freq_dim, d)
        linear("time_embedding.2", d, d)
        # Modulations start near zero: each block starts close to the identity (adaLN-zero).
        linear("time_projection.1", d, 6 * d, gain=0.1)
        for i in range(num_layers):
            b = f"blocks.{i}."
            t.add(b + "modulation", randn(1, 6, d) / math.sqrt(d))
            for p in "qkvo":
                linear(b + "self_attn." + p, d, d)
            t.add(b + "self_attn.norm_q.weight", torch.ones(d))
            t.add(b + "self_attn.norm_k.weight", torch.ones(d))
            t.add(b + "norm3.weight", torch.ones(d))
            t.add(b + "norm3.bias", torch.zeros(d))
            for p in "qkvo":
                linear(b + "cross_attn." + p, d, d, gain=0.5 if p == "o" else 1.0)
            t.add(b + "cross_attn.norm_q.weight", torch.ones(d))
            t.add(b + "cross_attn.norm_k.weight", torch.ones(d))
            linear(b + "ffn.0", d, ffn_dim)
            linear(b + "ffn.2", ffn_dim, d)
        t.add("head.modulation", randn(1, 2, d) / math.sqrt(d))
        linear("head.head", d, out_dim * 4, gain=0.1)
        self._rope_cache = {}

    def parameter_count(self):
        return sum(p.numel() for p in self.parameters())

    # ---- pieces ------------------------------------------------------------------------
    def lin(self, x, name):
        return F.linear(x, self.table[name + ".weight"], self.table[name + ".bias"])

    def rms(self, x, name):
        x32 = wide(x)
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * wide(self.table[name + ".weight"])).to(x.dtype)

    def sinusoid(self, t):
        """[B] timesteps (1000 sigma) -> [B, freq_dim], cos then sin, in float64 -> float32."""
        half = self.freq_dim // 2
        k = torch.arange(half, dtype=torch.float64, device=t.device)
        ang = t.double()[:, None] * torch.pow(10000.0, -k / half)[None, :]
        return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1)

    def rope(self, f, h, w, device):
        """(cos, sin) [L, 1, head_dim/2] for the (f, h, w) grid: pairs split frame/height/width."""
        key = (f, h, w, str(device))
        if key not in self._rope_cache:
            c = self.head_dim // 2
            n_h = n_w = c // 3
            n_f = c - n_h - n_w
            parts = []
            for n_pairs, n_pos, shape in ((n_f, f, (f, 1, 1)), (n_h, h, (1, h, 1)), (n_w, w, (1, 1, w))):
                freqs = torch.pow(10000.0, -(2.0 * torch.arange(n_pairs, dtype=torch.float64)) / (2 * n_pairs))
                pos = torch.arange(n_pos, dtype=torch.float64)
                a = (pos[:, None] * freqs[None, :]).reshape(*shape, n_pairs).expand(f, h, w, n_pairs)
                parts.append(a)
            ang = torch.cat(parts, dim=-1).reshape(f * h * w, 1, c)
            self._rope_cache[key] = (torch.cos(ang).to(device), torch.sin(ang).to(device))
        return self._rope_cache[key]

    @staticmethod
    def apply_rope(x, cos, sin):
        """x [B, L, H, D]; channels (2i, 2i+1) rotate by the i-th angle."""
        B, L, H, D = x.shape
        xr = wide(x).reshape(B, L, H, D // 2, 2)
        a, b = xr[..., 0], xr[..., 1]
        cos, sin = cos.to(xr.dtype), sin.to(xr.dtype)
        out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
        return out.reshape(B, L, H, D).to(x.dtype)

    def attention(self, q, k, v, bias=None):
        """[B, L, H, D] each (bias: [B, 1, 1, Lk] fp32, added to the scores) -> [B, Lq, H*D].
        With a bias the few keys make a plain fp32 softmax cheap, and the bias stays exact
        (bf16 would round log(512 - length) by up to 0.016)."""
        if bias is None:
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        else:
            with torch.autocast(device_type=q.device.type, enabled=False):
                qf, kf, vf = (wide(t).transpose(1, 2) for t in (q, k, v))
                s = qf @ kf.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias.to(qf.dtype)
                o = (torch.softmax(s, -1) @ vf).to(v.dtype)
        return o.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)

    def embed_context(self, context):
        """context [B, <=512, text_dim] (zero rows past each prompt) -> [B, 512, dim]."""
        B, n, _ = context.shape
        if n < self.text_len:
            context = F.pad(context, (0, 0, 0, self.text_len - n))
        h = F.gelu(self.lin(context, "text_embedding.0"), approximate="tanh")
        return self.lin(h, "text_embedding.2")

    def compact_bias(self, lengths, rows, dtype):
        """Cross-attention over 512 context rows of which all past a prompt's length are the
        same (zero input rows embed to one vector) equals attention over the prompt's rows
        plus one padding row whose score counts (512 - length) times: an added log(512 -
        length). The training uses this exact rewrite (13x fewer keys); export and sampling
        use the plain 512 rows, as the engine does."""
        j = torch.arange(rows, device=lengths.device)[None, :]
        L = lengths[:, None]
        bias = torch.where(j < L, 0.0, torch.where(j == L, torch.log((self.text_len - L).float()),
                                                    float("-inf")))
        return bias[:, None, None, :].to(dtype)

    # ---- forward -----------------------------------------------------------------------
    def forward(self, x, timestep, context, lengths=None):
        """x [B, 16, F, H, W], timestep [B] (1000 sigma), context [B, n, text_dim] zero-padded
        rows -> velocity [B, 16, F, H, W]. With `lengths` [B] (tokens of each prompt, each
        < n), the context's padding is handled by compact_bias instead of 512 rows."""
        B, C, Fr, Hh, Ww = x.shape
        d, nh, hd = self.dim, self.num_heads, self.head_dim
        f, h, w = Fr, Hh // 2, Ww // 2
        tokens = F.conv3d(x, self.table["patch_embedding.weight"], self.table["patch_embedding.bias"],
                          stride=(1, 2, 2))
        xs = wide(tokens.flatten(2).transpose(1, 2))                   # [B, L, d], residual in fp32
        L = xs.shape[1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            pdt = self.table["time_embedding.0.weight"].dtype
            s = self.sinusoid(timestep).to(pdt)
            e = self.lin(F.silu(self.lin(s, "time_embedding.0")), "time_embedding.2")
            e0 = self.lin(F.silu(e), "time_projection.1").reshape(B, 6, d)
        if lengths is None:
            ctx, cbias = self.embed_context(context), None
        else:
            assert int(lengths.max()) < context.shape[1] <= self.text_len
            ctx = self.lin(F.gelu(self.lin(context, "text_embedding.0"), approximate="tanh"),
                           "text_embedding.2")
            cbias = self.compact_bias(lengths, context.shape[1], torch.float32)
        cos, sin = self.rope(f, h, w, x.device)

        def ln(t):
            return F.layer_norm(wide(t), (d,), eps=self.eps)

        for i in range(self.num_layers):
            b = f"blocks.{i}."
            m = wide(self.table[b + "modulation"]) + e0              # [B, 6, d]
            sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = (m[:, j:j + 1] for j in range(6))
            hmod = (ln(xs) * (1 + sc_msa) + sh_msa).to(xs.dtype)
            q = self.rms(self.lin(hmod, b + "self_attn.q"), b + "self_attn.norm_q").view(B, L, nh, hd)
            k = self.rms(self.lin(hmod, b + "self_attn.k"), b + "self_attn.norm_k").view(B, L, nh, hd)
            v = self.lin(hmod, b + "self_attn.v").view(B, L, nh, hd)
            q, k = self.apply_rope(q, cos, sin), self.apply_rope(k, cos, sin)
            if q.dtype != v.dtype:
                q, k = q.to(v.dtype), k.to(v.dtype)
            a = self.lin(self.attention(q, k, v), b + "self_attn.o")
            xs = xs + (wide(a) * g_msa).to(xs.dtype)

            hc = F.layer_norm(wide(xs), (d,), wide(self.table[b + "norm3.weight"]),
                              wide(self.table[b + "norm3.bias"]), self.eps).to(xs.dtype)
            q = self.rms(self.lin(hc, b + "cross_attn.q"), b + "cross_attn.norm_q").view(B, L, nh, hd)
            k = self.rms(self.lin(ctx, b + "cross_attn.k"), b + "cross_attn.norm_k").view(B, -1, nh, hd)
            v = self.lin(ctx, b + "cross_attn.v").view(B, -1, nh, hd)
            if q.dtype != v.dtype:
                q, k = q.to(v.dtype), k.to(v.dtype)
            xs = xs + self.lin(self.attention(q, k, v, cbias), b + "cross_attn.o")

            hm = (ln(xs) * (1 + sc_mlp) + sh_mlp).to(xs.dtype)
            ff = self.lin(F.gelu(self.lin(hm, b + "ffn.0"), approximate="tanh"), b + "ffn.2")
            xs = xs + (wide(ff) * g_mlp).to(xs.dtype)

        hmods = wide(self.table["head.modulation"]) + e[:, None, :]   # [B, 2, d]
        out = self.lin((ln(xs) * (1 + hmods[:, 1:2]) + hmods[:, 0:1]).to(xs.dtype), "head.head")
        # Unpatchify: token (f, h, w), channel ((p*2+q)*... ) -> [B, 16, F, 2h, 2w].
        u = wide(out).reshape(B, f, h, w, 1, 2, 2, self.out_dim).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return u.reshape(B, self.out_dim, f, 2 * h, 2 * w)
