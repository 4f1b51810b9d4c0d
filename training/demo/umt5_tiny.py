"""The engine's embedded tiny umT5 text encoder, reproduced in PyTorch.

The demo DiT is conditioned on exactly what `raylight generate` computes, so the encoder is
not a copy of some weights file: its weights are regenerated here from the same documented
generator the engine uses (src/sampling/noise.h: SplitMix64 + Box-Muller, one stream per
tensor name via FNV-1a; scaled as in src/models/t5/umt5_tiny.cpp), and the tokenizer is the
SentencePiece model compiled into the binary (src/models/t5/tiny_spiece_model.inc).
The uniforms, logarithms and trigonometry go through Python's `math` (the C library), the
same functions the engine calls, so the weights are bit-identical; the test
DemoModel.TextEncoderMatchesTraining checks the encoder outputs against the engine's.

The forward pass is the umT5 encoder (the architecture tests/fixtures/make_umt5_golden.py
writes out): per layer an RMS-normed self-attention with an own relative position bias and
unscaled scores, then a gated tanh-GELU feed-forward; a final RMS norm. Prompts are encoded
unpadded; batches use a key mask, which gives the same rows.
"""

import math
import os
import re
import struct

import numpy as np
import sentencepiece as spm
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INC_PATH = os.path.join(REPO, "src", "models", "t5", "tiny_spiece_model.inc")

VOCAB, D_MODEL, NUM_LAYERS, NUM_HEADS, D_KV, D_FF = 500, 64, 2, 4, 16, 96
NUM_BUCKETS, MAX_DISTANCE, EPS, MAX_LEN = 32, 128, 1e-6, 512

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(state):
    z = (state + _GOLDEN) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def gaussian_noise(n, seed):
    """Elements 0..n-1 of the engine's noise stream for `seed`, as float64 values of the
    float32 the engine stores (noise.h gives the formula)."""
    out = np.empty(n, dtype=np.float64)
    inv = 1.0 / 9007199254740992.0
    for p in range((n + 1) // 2):
        a = splitmix64((seed + (2 * p) * _GOLDEN) & _M64)
        b = splitmix64((seed + (2 * p + 1) * _GOLDEN) & _M64)
        u1 = float((a >> 11) + 1) * inv
        u2 = float(b >> 11) * inv
        r = math.sqrt(-2.0 * math.log(u1))
        t = 6.283185307179586 * u2
        out[2 * p] = r * math.cos(t)
        if 2 * p + 1 < n:
            out[2 * p + 1] = r * math.sin(t)
    return out.astype(np.float32).astype(np.float64)


def name_seed(name):
    h = 1469598103934665603
    for ch in name.encode():
        h = ((h ^ ch) * 1099511628211) & _M64
    return h


def expected_tensors():
    """(name, shape) in the engine's order (umt5_expected_tensors, HF names)."""
    t = [("shared.weight", (VOCAB, D_MODEL))]
    inner = NUM_HEADS * D_KV
    for i in range(NUM_LAYERS):
        b = f"encoder.block.{i}.layer."
        for p in "qkv":
            t.append((f"{b}0.SelfAttention.{p}.weight", (inner, D_MODEL)))
        t.append((f"{b}0.SelfAttention.o.weight", (D_MODEL, inner)))
        t.append((f"{b}0.SelfAttention.relative_attention_bias.weight", (NUM_BUCKETS, NUM_HEADS)))
        t.append((f"{b}0.layer_norm.weight", (D_MODEL,)))
        t.append((f"{b}1.DenseReluDense.wi_0.weight", (D_FF, D_MODEL)))
        t.append((f"{b}1.DenseReluDense.wi_1.weight", (D_FF, D_MODEL)))
        t.append((f"{b}1.DenseReluDense.wo.weight", (D_MODEL, D_FF)))
        t.append((f"{b}1.layer_norm.weight", (D_MODEL,)))
    t.append(("encoder.final_layer_norm.weight", (D_MODEL,)))
    return t


def tiny_weights():
    """name -> float32 tensor, bit-identical to umt5_tiny_weights() in the engine."""
    w = {}
    for name, shape in expected_tensors():
        noise = gaussian_noise(int(np.prod(shape)), name_seed(name))
        scale, offset = 1.0, 0.0
        if "norm" in name:
            scale, offset = 0.1, 1.0
        elif ".q." in name:
            scale = 1.0 / math.sqrt(D_MODEL * D_KV)
        elif "relative_attention_bias" not in name and name != "shared.weight":
            scale = 1.0 / math.sqrt(shape[1])
        w[name] = torch.from_numpy((offset + scale * noise).astype(np.float32).reshape(shape))
    return w


def spiece_bytes():
    with open(INC_PATH) as f:
        return bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", f.read()))


class Tokenizer:
    """SentencePiece ids plus EOS, cut to 511 + EOS (Wan's text_len), as the engine does."""

    def __init__(self):
        self.sp = spm.SentencePieceProcessor(model_proto=spiece_bytes())

    def __call__(self, text):
        return self.sp.encode(text)[: MAX_LEN - 1] + [self.sp.eos_id()]


def _bucket(rel):
    """T5's bidirectional relative position bucket of (key - query)."""
    nb = NUM_BUCKETS // 2
    out = (rel > 0).long() * nb
    rel = rel.abs()
    exact = nb // 2
    large = exact + (torch.log(rel.float() / exact) / math.log(MAX_DISTANCE / exact)
                     * (nb - exact)).long()
    large = torch.clamp(large, max=nb - 1)
    return out + torch.where(rel < exact, rel, large)


class TinyUMT5(torch.nn.Module):
    """Frozen encoder; forward(ids [B, L], lengths [B]) -> [B, L, 64] (rows past a
    prompt's length are garbage: callers keep the first `length` rows)."""

    def __init__(self):
        super().__init__()
        for name, t in tiny_weights().items():
            self.register_buffer(name.replace(".", "__"), t)

    def w(self, name):
        return getattr(self, name.replace(".", "__"))

    def forward(self, ids, lengths):
        B, L = ids.shape
        dtype = self.w("shared.weight").dtype
        x = self.w("shared.weight")[ids]
        pos = torch.arange(L, device=ids.device)
        buckets = _bucket(pos[None, :] - pos[:, None])  # [Lq, Lk]
        key_ok = pos[None, :] < lengths[:, None]       # [B, Lk]
        mask = torch.zeros(B, 1, 1, L, dtype=dtype, device=ids.device)
        mask.masked_fill_(~key_ok[:, None, None, :], float("-inf"))

        def rms(t, g):
            return g * t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + EPS)

        for i in range(NUM_LAYERS):
            b = f"encoder.block.{i}.layer."
            a = b + "0.SelfAttention."
            h = rms(x, self.w(b + "0.layer_norm.weight"))
            q, k, v = ((h @ self.w(a + p + ".weight").T).view(B, L, NUM_HEADS, D_KV).transpose(1, 2)
                       for p in "qkv")
            bias = self.w(a + "relative_attention_bias.weight")[buckets].permute(2, 0, 1)
            s = q @ k.transpose(-1, -2) + bias[None] + mask
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, L, NUM_HEADS * D_KV)
            x = x + o @ self.w(a + "o.weight").T
            h = rms(x, self.w(b + "1.layer_norm.weight"))
            f = b + "1.DenseReluDense."
            act = torch.nn.functional.gelu(h @ self.w(f + "wi_0.weight").T, approximate="tanh")
            x = x + (act * (h @ self.w(f + "wi_1.weight").T)) @ self.w(f + "wo.weight").T
        return rms(x, self.w("encoder.final_layer_norm.weight"))


def encode_prompts(prompts, device="cpu", dtype=torch.float32):
    """[(tokens, 64) float32 tensor] per prompt, computed like the engine (unpadded)."""
    tok = Tokenizer()
    enc = TinyUMT5().to(device=device, dtype=dtype)
    ids = [tok(p) for p in prompts]
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), 256):
            chunk = ids[start:start + 256]
            L = max(len(c) for c in chunk)
            t = torch.zeros(len(chunk), L, dtype=torch.long)
            for j, c in enumerate(chunk):
                t[j, :len(c)] = torch.tensor(c)
            lengths = torch.tensor([len(c) for c in chunk])
            y = enc(t.to(device), lengths.to(device)).float().cpu()
            out.extend(y[j, :len(c)].clone() for j, c in enumerate(chunk))
    return out


if __name__ == "__main__":
    # Prints a digest to compare with the engine by hand.
    w = tiny_weights()
    print({k: float(v.double().sum()) for k, v in list(w.items())[:3]})
    e = encode_prompts(["a red circle moving left on a blue background"])[0]
    print(e.shape, e[:2, :6])
