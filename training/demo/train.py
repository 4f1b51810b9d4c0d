#!/usr/bin/env python3
"""Trains Raylight's `demo` model: a tiny Wan 2.1 VAE and a tiny Wan 2.1 T2V DiT on the
procedural scenes of scenes.py, conditioned through the engine's embedded tiny umT5.

Phases, each bounded by wall-clock seconds so a run fits the GPU machine's 10-minute calls:
  1. text    every caption of the grammar (and its capitalised / full-stop variants, and
             the empty prompt used for classifier-free guidance) through the tiny umT5.
  2. vae     the VAE as an autoencoder (L1 + L2 + a small KL) on fresh 9-frame clips; then
             its conv1/conv2 are rewritten so the normalised latents of the data have zero
             mean and unit variance (the engine normalises with the released VAE's fixed
             statistics), and its weights are rounded to bf16, the shipped precision.
  3. encode  a fixed set of clips to latents with the shipped VAE.
  4. dit     flow matching, x = (1 - s) x0 + s noise, target noise - x0, timestep 1000 s,
             10% empty prompts, an EMA of the weights.

Everything is trained at the demo's size, 128x128x9 (latents 16x3x16x16): a causal VAE
trained on 9 frames decodes later frames badly (they are never seen), so the demo stays at
the length it was trained for (the first run, trained on 9 and 17 frames, showed it).
  5. export  dit.safetensors and vae.safetensors (bf16, official key names, metadata with
             the vocabulary), samples.png and metrics.json from a PyTorch Euler sampler.

Outputs go to --out; checkpoints are written there during training (atomic renames, each
file under 16 MiB), and --resume DIR continues from such a folder: a finished VAE is kept,
an unfinished one resumes with its optimiser, the DiT resumes from its bf16 weights and EMA
with a fresh optimiser. Everything random comes from --seed (22 for the shipped weights);
GPU kernels are not bit-reproducible, so a rerun gives other weights that pass the same tests.

Usage (the shipped weights: one H200, about 9 minutes):
  python3 training/demo/train.py --out OUT [--resume DIR]
CPU smoke test of every phase at toy sizes (a minute):
  python3 training/demo/train.py --out /tmp/demo-smoke --smoke
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402
from umt5_tiny import encode_prompts  # noqa: E402
from wan_dit import WanDiT  # noqa: E402
from wan_vae import WanVAE  # noqa: E402

SEED = 22
# 2.5 M parameters: samples 10 guided steps at 128x128x9 in about 3 s on two CPU cores.
DIT_CONFIG = dict(dim=192, num_heads=3, ffn_dim=768, num_layers=4, text_dim=64)
VAE_DIM = 8
SMOKE_DIT = dict(dim=64, num_heads=1, ffn_dim=64, num_layers=1, text_dim=64)


class Run:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        os.makedirs(self.out, exist_ok=True)
        self.device = torch.device(args.device)
        self.t0 = time.monotonic()
        self.logf = open(os.path.join(self.out, "log.txt"), "a")
        self.size = 32 if args.smoke else 128
        self.metrics = {}

    def log(self, *parts):
        line = f"[{time.monotonic() - self.t0:7.1f}s] " + " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.logf.write(line + "\n")
        self.logf.flush()

    def save(self, obj, name):
        path = os.path.join(self.out, name)
        tmp = path + ".tmp"
        torch.save(obj, tmp)
        os.replace(tmp, path)

    def save_st(self, tensors, name, metadata=None):
        path = os.path.join(self.out, name)
        tmp = path + ".tmp"
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)

    def resume_path(self, name):
        for d in (self.args.resume, self.out):
            if d and os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        return None

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                              enabled=self.device.type == "cuda")


# ----------------------------------------------------------------------------------------
# 1. text
# ----------------------------------------------------------------------------------------
def prompt_variants(text):
    cap = text[0].upper() + text[1:]
    return [text, cap, text + ".", cap + "."]


def phase_text(run):
    texts = []
    for t in scenes.CAPTION_TEXT:
        texts.extend(prompt_variants(t))
    texts.append("")
    embs = encode_prompts(texts, device=run.device)
    L = max(e.shape[0] for e in embs)
    # One zero row more than the longest prompt: WanDiT's compact cross-attention needs it.
    table = torch.zeros(len(embs), L + 1, 64)
    for i, e in enumerate(embs):
        table[i, :e.shape[0]] = e
    lengths = torch.tensor([e.shape[0] for e in embs])
    run.log(f"text: {len(texts)} prompts, up to {L} tokens")
    return table.to(run.device), lengths.to(run.device)


# ----------------------------------------------------------------------------------------
# 2. vae
# ----------------------------------------------------------------------------------------
def lr_at(base, step, frac, warmup):
    return base * min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(frac, 1.0))))


def phase_vae(run, gen):
    a = run.args
    vae = WanVAE(dim=VAE_DIM, seed=a.seed).to(run.device)
    final = run.resume_path("vae.safetensors")
    if final:
        vae.table.load(load_file(final))
        vae.to(run.device)
        run.log(f"vae: loaded finished weights from {final}")
        if not os.path.exists(os.path.join(run.out, "vae.safetensors")):
            export_vae(run, vae)  # the run's outputs hold everything export.py needs
        return vae
    with torch.no_grad():
        vae.table["conv1.bias"][16:] = -4.0  # start with small posterior noise
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    step = 0
    ck = run.resume_path("ckpt_vae.pt")
    if ck:
        state = torch.load(ck, map_location=run.device)
        vae.table.load(state["params"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        run.log(f"vae: resumed at step {step} from {ck}")
    frames = scenes.CLIP_FRAMES
    start, last_ck = time.monotonic(), time.monotonic()
    while True:
        frac = (time.monotonic() - start) / a.vae_seconds
        if frac >= 1.0 or (a.max_steps and step >= a.max_steps):
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(a.vae_lr, step, frac, 100)
        ids = scenes.sample_ids(a.vae_batch, gen, run.device)
        with torch.no_grad():
            x = scenes.render(ids, frames, run.size, gen, run.device)
        with run.autocast():
            mu, logvar = vae.encode_moments(x)
            logvar = logvar.float().clamp(-30, 20)
            mu = mu.float()
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            y = vae.decode_raw(z).float()
        rec = (y - x).abs().mean() + (y - x).pow(2).mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()
        loss = rec + a.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0 or step < 3:
            with torch.no_grad():
                psnr = -10 * math.log10(max(((y.clamp(-1, 1) - x) / 2).pow(2).mean().item(), 1e-10))
            run.log(f"vae step {step}: rec {rec.item():.4f} kl {kl.item():.3f} psnr {psnr:.1f} dB "
                    f"lr {opt.param_groups[0]['lr']:.2e}")
        if time.monotonic() - last_ck > a.checkpoint_seconds:
            run.save({"params": vae.table.export(), "opt": opt.state_dict(), "step": step}, "ckpt_vae.pt")
            last_ck = time.monotonic()
    run.save({"params": vae.table.export(), "opt": opt.state_dict(), "step": step}, "ckpt_vae.pt")
    run.metrics["vae_steps"] = step

    # Fold the latent statistics of the data into conv1/conv2, then round to bf16.
    vae.eval()
    with torch.no_grad():
        lat = []
        for _ in range(4):
            ids = scenes.sample_ids(a.vae_batch, gen, run.device)
            x = scenes.render(ids, frames, run.size, gen, run.device)
            with run.autocast():
                lat.append(vae.encode(x).float())
        lat = torch.cat(lat).transpose(0, 1).reshape(16, -1).double()
        m, s = lat.mean(1), lat.std(1)
        run.log("vae latent mean", [round(v, 2) for v in m.tolist()], "std", [round(v, 2) for v in s.tolist()])
        vae.double().fold_latent_scale(m, s)
        vae.float()
        for p in vae.parameters():
            p.copy_(p.bfloat16().float())
        x = scenes.render(scenes.sample_ids(8, gen, run.device), frames, run.size, gen, run.device)
        lat = vae.encode(x)
        y = vae.decode(lat)
        psnr = -10 * math.log10(((y - x) / 2).pow(2).mean().item())
        run.log(f"vae final (bf16, folded): latent std {lat.std().item():.3f} mean {lat.mean().item():.3f}, "
                f"psnr fp32 {psnr:.1f} dB")
        run.metrics["vae_psnr"] = psnr
    export_vae(run, vae)
    return vae


def export_vae(run, vae):
    meta = {"raylight.model": "wan2.1-vae-demo", "raylight.base_dim": str(VAE_DIM)}
    run.save_st({k: v.bfloat16().cpu() for k, v in vae.table.export().items()}, "vae.safetensors", meta)


def latent_mask(alpha):
    """Object coverage [B, F, H, W] -> where the object is in latent space [B, Fl, H/8, W/8]
    (uint8): the causal VAE's frame groups (frame 0, then fours), 8x8 pixel cells, any cover."""
    B, Fr, H, W = alpha.shape
    groups = [alpha[:, :1]] + [alpha[:, 1 + 4 * i:5 + 4 * i] for i in range((Fr - 1) // 4)]
    a = torch.stack([g.amax(1) for g in groups], 1)                     # [B, Fl, H, W]
    return (F.max_pool2d(a, 8) > 0.05).to(torch.uint8)


# ----------------------------------------------------------------------------------------
# 3. encode
# ----------------------------------------------------------------------------------------
def encode_clips(run, vae, ids, gen, twins):
    """Latents (bf16) and latent object masks of fresh clips of caption `ids`; with `twins`,
    each clip is followed by itself played backwards under its reversed caption."""
    x, alpha = scenes.render(ids, scenes.CLIP_FRAMES, run.size, gen, run.device, with_alpha=True)
    if twins:
        ids = torch.stack([ids, scenes.REVERSED_ID.to(ids.device)[ids]], 1).flatten()
        x = torch.stack([x, x.flip(2)], 1).flatten(0, 1)
        alpha = torch.stack([alpha, alpha.flip(1)], 1).flatten(0, 1)
    with run.autocast():
        lat = vae.encode(x)
    return ids, lat.bfloat16(), latent_mask(alpha)


def phase_encode(run, vae, gen):
    """The DiT's training set (clips and their time-reversed twins, see scenes.REVERSED_ID)
    and a held-out set of moving clips for the direction probe."""
    a = run.args
    ids_all, lat_all, mask_all = [], [], []
    start = time.monotonic()
    with torch.no_grad():
        moving = torch.nonzero(scenes.ATTRIBUTES[:, 2] < 4)[:, 0].to(run.device)
        pick = torch.randint(len(moving), (a.probe_clips,), generator=gen, device=run.device)
        probe = encode_clips(run, vae, moving[pick], gen, twins=False)
        batch = max(1, a.encode_batch // (2 if a.twins else 1))
        while not ids_all or (sum(len(i) for i in ids_all) < a.encode_clips
                              and time.monotonic() - start < a.encode_seconds):
            ids, lat, mask = encode_clips(run, vae, scenes.sample_ids(batch, gen, run.device), gen, a.twins)
            ids_all.append(ids)
            lat_all.append(lat)
            mask_all.append(mask)
    ids, lat, mask = torch.cat(ids_all), torch.cat(lat_all), torch.cat(mask_all)
    run.log(f"encode: {len(ids)} clips (twins {a.twins}) -> latents {tuple(lat.shape[1:])}, "
            f"std {lat.float().std().item():.3f}, object cells {mask.float().mean().item():.3f}, "
            f"probe {len(probe[0])} moving clips, in {time.monotonic() - start:.1f} s")
    return ids, lat, mask, probe


# ----------------------------------------------------------------------------------------
# 4. dit
# ----------------------------------------------------------------------------------------
def dit_meta(cfg):
    return {"raylight.num_heads": str(cfg["num_heads"]), "raylight.model": "wan2.1-t2v-demo",
            "raylight.vocabulary": json.dumps(scenes.VOCABULARY)}


def config_of(tensors, heads):
    return dict(dim=tensors["patch_embedding.weight"].shape[0], num_heads=heads,
                ffn_dim=tensors["blocks.0.ffn.0.weight"].shape[0],
                num_layers=len({k.split(".")[1] for k in tensors if k.startswith("blocks.")}),
                text_dim=tensors["text_embedding.0.weight"].shape[1])


def other_motion(ids, gen):
    """For each caption id, the same caption with a wrong motion word of the same kind: one
    of the three other directions for a moving clip, growing <-> shrinking, bouncing kept
    (-1: no contrast for that clip)."""
    attr = scenes.ATTRIBUTES.to(ids.device)[ids]
    m = attr[:, 2]
    k = torch.randint(1, 4, m.shape, generator=gen, device=ids.device)
    wrong = torch.where(m < 4, (m + k) % 4, torch.where(m == 4, 5, torch.where(m == 5, 4, m)))
    out = scenes.WITH_MOTION.to(ids.device)[ids, wrong]
    return torch.where(m == 6, torch.full_like(ids, -1), out)


def weighted_error(v, target, mask, fg_weight):
    """Per-clip mean squared error, cells covered by the object weighted 1 + fg_weight: the
    object is ~5% of the latent, so plain MSE hardly sees its shape or where it goes."""
    w = 1.0 + fg_weight * mask[:, None].float()
    return (w * (v.float() - target).pow(2)).flatten(1).mean(1)


@torch.no_grad()
def direction_probe(run, model, text, probe, gen):
    """Loss of `model` on held-out moving clips with the right caption, the opposite
    direction's and the empty prompt's, per noise level; the gap (opposite - right) / right
    says how much the model uses the direction word (shipped weights: 0-8%)."""
    ids, lat, mask = probe
    texts, text_lens = text
    g = torch.Generator(device=run.device).manual_seed(1234)  # the same noise every time
    out = {}
    for sig in (0.5, 0.8, 0.95):
        x0 = lat.float()
        noise = torch.randn(x0.shape, generator=g, device=run.device)
        xt, tgt = (1 - sig) * x0 + sig * noise, noise - x0
        t = torch.full((len(ids),), sig * 1000.0, device=run.device)
        row = {}
        for name, cap in (("right", ids * 4), ("opposite", scenes.REVERSED_ID.to(ids.device)[ids] * 4),
                          ("empty", torch.full_like(ids, texts.shape[0] - 1))):
            with run.autocast():
                v = model(xt, t, texts[cap], text_lens[cap])
            row[name] = (v.float() - tgt).pow(2).mean().item()
        out[sig] = {k: round(v, 4) for k, v in row.items()}
        out[sig]["gap"] = round((row["opposite"] - row["right"]) / row["right"], 4)
    return out


def phase_dit(run, text, data, gen):
    a = run.args
    cfg = SMOKE_DIT if a.smoke else DIT_CONFIG
    init = None
    if a.init_dit:
        with safe_open(a.init_dit, "pt") as f:
            heads = int(f.metadata()["raylight.num_heads"])
        init = {k: v.float() for k, v in load_file(a.init_dit).items()}
        cfg = config_of(init, heads)
    dit = WanDiT(**cfg, seed=a.seed).to(run.device)
    ema = WanDiT(**cfg, seed=a.seed).to(run.device)
    step = 0
    ck_m, ck_e = run.resume_path("dit_model.pt"), run.resume_path("dit_ema.pt")
    if ck_m and ck_e:
        state = torch.load(ck_m, map_location=run.device)
        dit.table.load({k: v.float() for k, v in state["params"].items()})
        ema.table.load({k: v.float() for k, v in torch.load(ck_e, map_location=run.device).items()})
        step = state["step"]
        run.log(f"dit: resumed at step {step} from {ck_m}")
    else:
        if init is not None:
            dit.table.load(init)
            run.log(f"dit: starting from the weights of {a.init_dit}")
        ema.load_state_dict(dit.state_dict())
    ema.requires_grad_(False)
    run.log(f"dit: {dit.parameter_count()} parameters, config {cfg}")
    opt = torch.optim.AdamW(dit.parameters(), lr=a.dit_lr, betas=(0.9, 0.99), weight_decay=0.01)
    ids, lat, mask, probe = data
    texts, text_lens = text
    probes = [{"step": step, "ema": direction_probe(run, ema, text, probe, gen)}]
    run.log("direction probe", probes[-1])
    n = len(ids)
    variants = 4
    start, last_ck, first_step = time.monotonic(), time.monotonic(), step
    ema_p, dit_p = list(ema.parameters()), list(dit.parameters())
    while True:
        frac = (time.monotonic() - start) / a.dit_seconds
        if frac >= 1.0 or (a.max_steps and step - first_step >= a.max_steps):
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(a.dit_lr, step - first_step, frac, 300)
        pick = torch.randint(n, (a.dit_batch,), generator=gen, device=run.device)
        x0 = lat[pick].float()
        variant = torch.randint(variants, (a.dit_batch,), generator=gen, device=run.device)
        cap = ids[pick] * variants + variant
        drop = torch.rand(a.dit_batch, generator=gen, device=run.device) < 0.1
        cap = torch.where(drop, torch.full_like(cap, texts.shape[0] - 1), cap)
        # Contrast: a fixed number of the noisy clips again under a wrong motion word, drawn
        # from those that kept their caption and have one (see other_motion); a fixed count
        # keeps the batch shape fixed (cudnn.benchmark tunes every new shape).
        wrong = other_motion(ids[pick], gen)
        ok = (wrong >= 0) & ~drop
        n_con = int(round(a.dit_batch * a.contrast_share)) if a.contrast > 0 else 0
        con = (torch.rand(a.dit_batch, generator=gen, device=run.device) + (~ok).float()).argsort()[:n_con]
        con_ok = ok[con].float()
        wrong_cap = torch.where(wrong[con] >= 0, wrong[con], ids[pick][con])
        cap_all = torch.cat([cap, wrong_cap * variants + variant[con]])
        ctx, lens = texts[cap_all], text_lens[cap_all]
        # sigma: logit-normal, with a quarter uniform so both ends are trained.
        u = torch.sigmoid(torch.randn(a.dit_batch, generator=gen, device=run.device))
        u = torch.where(torch.rand(a.dit_batch, generator=gen, device=run.device) < 0.25,
                        torch.rand(a.dit_batch, generator=gen, device=run.device), u)
        sigma = u.clamp(1e-4, 1.0)
        noise = torch.randn(x0.shape, generator=gen, device=run.device)
        s = sigma[:, None, None, None, None]
        xt = (1 - s) * x0 + s * noise
        target, m = noise - x0, mask[pick]
        with run.autocast():
            v = dit(torch.cat([xt, xt[con]]), torch.cat([sigma, sigma[con]]) * 1000.0, ctx, lens)
        err = weighted_error(v[:a.dit_batch], target, m, a.fg_weight)
        loss = err.mean()
        if len(con):
            # Hinge: the wrong word must predict worse by a margin (relative to the right
            # word's error); no pull once it does.
            err_wrong = weighted_error(v[a.dit_batch:], target[con], m[con], a.fg_weight)
            short = (1 + a.contrast_margin) * err[con] - err_wrong
            hinge = (short / err[con].detach()).clamp(min=0)
            loss = loss + a.contrast * (hinge * con_ok).sum() / con_ok.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(a.ema, (1 + step - first_step) / (10 + step - first_step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_p, dit_p, 1 - decay)
        if step % 200 == 0 or step - first_step < 3:
            run.log(f"dit step {step}: loss {loss.item():.4f} mse {err.mean().item():.4f} grad {gn.item():.2f} "
                    f"lr {opt.param_groups[0]['lr']:.2e}")
        if a.probe_every and step % a.probe_every == 0:
            probes.append({"step": step, "ema": direction_probe(run, ema, text, probe, gen)})
            run.log("direction probe", probes[-1])
        if time.monotonic() - last_ck > a.checkpoint_seconds:
            save_dit(run, dit, ema, step)
            last_ck = time.monotonic()
    save_dit(run, dit, ema, step)
    probes.append({"step": step, "ema": direction_probe(run, ema, text, probe, gen)})
    run.log("direction probe", probes[-1])
    run.metrics["direction_probe"] = probes
    run.metrics["dit_steps"] = step
    run.metrics["dit_final_loss"] = loss.item()
    for p in ema.parameters():
        p.data.copy_(p.data.bfloat16().float())
    run.save_st({k: v.bfloat16().cpu() for k, v in ema.table.export().items()}, "dit.safetensors",
                dit_meta(cfg))
    return ema


def save_dit(run, dit, ema, step):
    run.save({"params": {k: v.bfloat16().cpu() for k, v in dit.table.export().items()}, "step": step},
             "dit_model.pt")
    run.save({k: v.bfloat16().cpu() for k, v in ema.table.export().items()}, "dit_ema.pt")


# ----------------------------------------------------------------------------------------
# 5. samples
# ----------------------------------------------------------------------------------------
def shift_sigma(s, shift):
    return shift * s / (1 + (shift - 1) * s)


@torch.no_grad()
def sample(dit, ctx, neg, lat_shape, steps, cfg, shift, gen, device):
    x = torch.randn(lat_shape, generator=gen, device=device)
    sig = [shift_sigma(1 - i / steps, shift) for i in range(steps)] + [0.0]
    B = lat_shape[0]
    for i in range(steps):
        t = torch.full((B,), sig[i] * 1000.0, device=device)
        v = dit(x, t, ctx)
        if cfg != 1.0:
            u = dit(x, t, neg)
            v = u + cfg * (v - u)
        x = x + (sig[i + 1] - sig[i]) * v
    return x


def measure(video, obj, bg):
    """video [3, T, H, W] in [-1, 1]; returns (object pixel fraction per frame, centroid
    x/y per frame) for pixels nearer the object colour than the background colour."""
    rgb = (video + 1) / 2
    o = torch.tensor(scenes.COLOURS[obj], device=video.device)[:, None, None, None]
    b = torch.tensor(scenes.COLOURS[bg], device=video.device)[:, None, None, None]
    mask = ((rgb - o).pow(2).sum(0) < (rgb - b).pow(2).sum(0)).float()  # [T, H, W]
    T, H, W = mask.shape
    area = mask.flatten(1).mean(1)
    ys = torch.arange(H, device=video.device).float()[None, :, None]
    xs = torch.arange(W, device=video.device).float()[None, None, :]
    cnt = mask.sum((1, 2)).clamp(min=1)
    return area, (mask * xs).sum((1, 2)) / cnt, (mask * ys).sum((1, 2)) / cnt


def phase_samples(run, dit, vae, gen):
    a = run.args
    tests = [("red", 0, 1, "blue", ""), ("green", 1, 0, "white", ""), ("yellow", 2, 2, "black", ""),
             ("blue", 3, 3, "yellow", ""), ("white", 0, 4, "purple", "gradient"),
             ("orange", 1, 6, "green", "striped"), ("purple", 3, 5, "white", "checkered"),
             ("black", 2, 1, "orange", "dotted")]
    texts = [scenes.caption(*c) for c in tests] + [""]
    embs = encode_prompts(texts, device=run.device)
    L = max(e.shape[0] for e in embs)
    ctx = torch.zeros(len(tests), L, 64, device=run.device)
    for i, e in enumerate(embs[:-1]):
        ctx[i, :e.shape[0]] = e
    neg = torch.zeros(len(tests), L, 64, device=run.device)
    neg[:, :1] = embs[-1]
    lat_hw = run.size // 8
    dit.eval()
    rows, results = [], []
    for frames in (scenes.CLIP_FRAMES,):
        lf = 1 + (frames - 1) // 4
        with run.autocast():
            z = sample(dit, ctx, neg, (len(tests), 16, lf, lat_hw, lat_hw), 20, 4.0, 3.0, gen, run.device)
            video = vae.decode(z.float()).float()
        for i, c in enumerate(tests):
            area, cx, cy = measure(video[i], c[0], c[3])
            results.append({"prompt": texts[i], "frames": frames, "area": [round(v, 3) for v in area.tolist()],
                            "dx": round((cx[-1] - cx[0]).item(), 1), "dy": round((cy[-1] - cy[0]).item(), 1)})
            rows.append(torch.cat([video[i, :, f] for f in range(0, frames, 2)], dim=2))
    for r in results:
        run.log("sample", r)
    run.metrics["samples"] = results
    sheet = ((torch.cat(rows, dim=1).permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().cpu().numpy()
    try:
        from PIL import Image
        Image.fromarray(sheet).save(os.path.join(run.out, "samples.png"))
    except ImportError:
        torch.save(torch.from_numpy(sheet), os.path.join(run.out, "samples.pt"))


def phase_evaluate(run, dit, vae, gen):
    """evaluate.py's measure on PyTorch samples (Euler, 20 steps, cfg 4, shift 3) of its
    prompt walk (--per N --seed 1: N prompts of each motion), so a run says at once whether
    directions are followed; the engine's numbers come from evaluate.py on the exported model."""
    import evaluate
    per = 1 if run.args.smoke else run.args.eval_per
    prompts = evaluate.prompts(per, 1)
    embs = encode_prompts(prompts + [""], device=run.device)
    L = max(e.shape[0] for e in embs)
    lat_hw = run.size // 8
    lf = 1 + (scenes.CLIP_FRAMES - 1) // 4
    results = []
    for start in range(0, len(prompts), 64):
        chunk = embs[start:min(start + 64, len(prompts))]
        ctx = torch.zeros(len(chunk), L, 64, device=run.device)
        for i, e in enumerate(chunk):
            ctx[i, :e.shape[0]] = e
        neg = torch.zeros(len(chunk), L, 64, device=run.device)
        neg[:, :1] = embs[-1]
        with torch.no_grad(), run.autocast():
            z = sample(dit, ctx, neg, (len(chunk), 16, lf, lat_hw, lat_hw), 20, 4.0, 3.0, gen, run.device)
            video = vae.decode(z.float()).float()
        video = ((video.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).double().cpu().numpy()
        results.extend(evaluate.measure(video[i], prompts[start + i]) for i in range(len(chunk)))
    summary = evaluate.summary(results)
    run.log("evaluate (PyTorch samples):", json.dumps(summary))
    run.metrics["evaluate"] = summary
    run.metrics["evaluate_clips"] = results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", help="folder of an earlier run's outputs")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--smoke", action="store_true", help="toy sizes, a few steps (CPU test)")
    ap.add_argument("--vae-seconds", type=float, default=170)
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-lr", type=float, default=2e-3)
    ap.add_argument("--vae-kl", type=float, default=1e-4)
    ap.add_argument("--encode-clips", type=int, default=65536)
    ap.add_argument("--encode-seconds", type=float, default=20)
    ap.add_argument("--encode-batch", type=int, default=256)
    ap.add_argument("--dit-seconds", type=float, default=300)
    ap.add_argument("--dit-batch", type=int, default=256)
    ap.add_argument("--dit-lr", type=float, default=6e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--init-dit", help="start the DiT (and its EMA) from this dit.safetensors, e.g. "
                    "src/models/demo/demo_dit.safetensors (its config replaces the default)")
    ap.add_argument("--twins", type=int, default=1, help="also train on every clip played backwards "
                    "under its reversed caption (1) or not (0)")
    ap.add_argument("--fg-weight", type=float, default=4.0,
                    help="extra loss weight on latent cells the object covers")
    ap.add_argument("--contrast", type=float, default=0.5,
                    help="weight of the hinge that makes a wrong motion word predict worse (0: off)")
    ap.add_argument("--contrast-share", type=float, default=0.5,
                    help="share of the batch that also goes through under a wrong motion word")
    ap.add_argument("--contrast-margin", type=float, default=0.25,
                    help="how much worse (relative error) the wrong motion word must predict")
    ap.add_argument("--eval-per", type=int, default=10, help="evaluate.py prompts per motion at the end")
    ap.add_argument("--probe-clips", type=int, default=256, help="held-out moving clips of the direction probe")
    ap.add_argument("--probe-every", type=int, default=1000, help="steps between direction probes (0: ends only)")
    ap.add_argument("--checkpoint-seconds", type=float, default=60)
    ap.add_argument("--max-steps", type=int, default=0, help="stop each phase after N steps (0: time only)")
    args = ap.parse_args()
    if args.smoke:
        args.vae_batch, args.encode_batch, args.dit_batch = 2, 4, 4
        args.encode_clips = 16
        args.probe_clips, args.probe_every = 4, 2
        args.max_steps = args.max_steps or 3
    torch.manual_seed(args.seed)
    run = Run(args)
    run.log(f"device {run.device} ({torch.cuda.get_device_name() if run.device.type == 'cuda' else 'cpu'}), "
            f"torch {torch.__version__}, seed {args.seed}, args {vars(args)}")
    gen = torch.Generator(device=run.device).manual_seed(args.seed)
    texts = phase_text(run)  # in full fp32, like the engine's CPU reference
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    vae = phase_vae(run, gen)
    vae.requires_grad_(False)
    data = phase_encode(run, vae, gen)
    dit = phase_dit(run, texts, data, gen)
    phase_samples(run, dit, vae, gen)
    phase_evaluate(run, dit, vae, gen)
    run.metrics["seconds"] = round(time.monotonic() - run.t0, 1)
    with open(os.path.join(run.out, "metrics.json"), "w") as f:
        json.dump(run.metrics, f, indent=1)
    run.log("done")


if __name__ == "__main__":
    main()
