#!/usr/bin/env python3
"""Measures what the engine's demo model shows for prompts of the grammar, from the frames.

For each prompt, `raylight generate --out DIR/` writes PNG frames; the measure (the same
rules as tests/unit/demo_frames.cpp, which the C++ tests use) says:

  background  the prompt's background colour is the most common colour of the clip, a
              pixel belonging to the colour whose looks it is nearest: the colour, its
              texture colour (stripes, checks, dots) and its gradient (0.25..1 of it; that
              look pays 0.005 so an exact look wins a tie)
  object      the object's colour covers at least 0.5% of the clip (pixels of the object's
              colour, within 0.15 of it and nearer to it than to the background's looks)
  trend       growing: the object's area in the last three frames is at least 1.5 times
              that of the first three; shrinking: the reverse
  motion      the object centre's displacement over the clip (a line fitted through the
              frames where it covers 0.2% of the frame, times frames - 1), along the
              direction the prompt names and across it; a shape of the training set moves
              41-56 px, so 15 px along is the bar

--check-renderer first applies the measure to clips the renderer draws (scenes.py): every
clip must pass, or the measure is wrong, not the model.

Usage: python3 training/demo/evaluate.py [--binary build/raylight] [--per 8] [--seed 0]
           [--configs "--steps 10 --cfg 4" ...] [--check-renderer 400] [--json FILE]
Prompts: --per prompts of each motion, drawn from the grammar with --seed. Needs numpy and
Pillow; --check-renderer needs torch.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

COLOURS = {  # scenes.COLOURS, repeated so the measure needs no torch
    "red": (0.90, 0.10, 0.10), "green": (0.10, 0.70, 0.20), "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.88, 0.10), "orange": (1.00, 0.55, 0.05), "purple": (0.55, 0.20, 0.80),
    "white": (0.96, 0.96, 0.96), "black": (0.06, 0.06, 0.06)}
NAMES = list(COLOURS)
BASE = np.array(list(COLOURS.values()))
MOTIONS = ["moving left", "moving right", "moving up", "moving down", "growing", "shrinking", "bouncing"]
DIRECTIONS = {"moving left": (-1, 0), "moving right": (1, 0), "moving up": (0, -1), "moving down": (0, 1)}


def texture_of(rgb):
    luma = (rgb * np.array([0.3, 0.59, 0.11])).sum(-1, keepdims=True)
    return np.where(luma > 0.55, rgb * 0.55, rgb + 0.45 * (1 - rgb))


TEXTURE = texture_of(BASE)


def look_dist(v):
    """[..., 3] pixels -> [..., 8] squared distance to each colour's nearest look."""
    out = []
    for c in range(len(NAMES)):
        b = BASE[c]
        s = np.clip((v * b).sum(-1) / (b * b).sum(), 0.25, 1.0)
        out.append(np.minimum(np.minimum(((v - b) ** 2).sum(-1), ((v - TEXTURE[c]) ** 2).sum(-1)),
                              ((v - s[..., None] * b) ** 2).sum(-1) + 0.005))
    return np.stack(out, -1)


def parse(prompt):
    w = prompt.split()
    motion, rest = (" ".join(w[3:5]), w[5:]) if w[3] == "moving" else (w[3], w[4:])
    return {"object": w[1], "shape": w[2], "motion": motion, "background": rest[2],
            "style": rest[3] if len(rest) == 5 else ""}


def displacement(c, area):
    f = np.arange(len(c))
    ok = (area >= 0.002) & ~np.isnan(c)
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(f[ok], c[ok], 1)[0] * (len(c) - 1))


def measure(video, prompt):
    """video [F, H, W, 3] in [0, 1] -> the measures of one clip."""
    p = parse(prompt)
    F, H, W, _ = video.shape
    o, b = NAMES.index(p["object"]), NAMES.index(p["background"])
    d = look_dist(video)
    near = d.argmin(-1)
    counts = np.bincount(near.ravel(), minlength=len(NAMES))
    d_o = ((video - BASE[o]) ** 2).sum(-1)
    obj = (near == o) & (d_o < 0.15) & (d_o < d[..., b])
    area = obj.reshape(F, -1).mean(1)
    ys, xs = np.mgrid[0:H, 0:W]
    cx = np.array([xs[m].mean() if m.any() else np.nan for m in obj])
    cy = np.array([ys[m].mean() if m.any() else np.nan for m in obj])
    r = {"prompt": prompt, "background": bool(counts.argmax() == b),
         "background_share": round(float(counts[b] / near.size), 3),
         "object_share": round(float(obj.mean()), 4), "object": bool(obj.mean() >= 0.005),
         "area": [round(float(a), 3) for a in area]}
    if p["motion"] == "growing":
        r["trend"] = bool(area[-3:].mean() >= 1.5 * area[:3].mean())
    if p["motion"] == "shrinking":
        r["trend"] = bool(area[:3].mean() >= 1.5 * area[-3:].mean())
    if p["motion"] in DIRECTIONS:
        wx, wy = DIRECTIONS[p["motion"]]
        dx, dy = displacement(cx, area), displacement(cy, area)
        r.update(dx=round(dx, 1), dy=round(dy, 1), along=round(dx * wx + dy * wy, 1),
                 across=round(abs(dx * wy) + abs(dy * wx), 1))
    return r


def prompts(per, seed):
    import itertools
    rng = np.random.default_rng(seed)
    styles = ["", "gradient", "striped", "checkered", "dotted"]
    shapes = ["circle", "square", "triangle", "star"]
    out = []
    for m in MOTIONS:
        combos = [(c, s, b, st) for c, s, b, st in itertools.product(NAMES, shapes, NAMES, styles) if c != b]
        for i in rng.choice(len(combos), per, replace=False):
            c, s, b, st = combos[i]
            art = lambda w: "an" if w[0] in "aeiou" else "a"  # noqa: E731
            out.append(f"{art(c)} {c} {s} {m} on {art(b)} {b + (' ' + st if st else '')} background")
    return out


def generate(binary, prompt, extra, folder):
    from PIL import Image  # only here: train.py uses the measure where Pillow may be missing
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [binary, "generate", "--prompt", prompt, "--out", folder + "/"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    names = sorted(os.listdir(folder))
    return np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"), dtype=np.float64) / 255
                     for n in names])


def summary(results):
    n = len(results)
    trend = [r["trend"] for r in results if "trend" in r]
    moving = [r for r in results if "along" in r]
    along = np.array([r["along"] for r in moving])
    s = {"prompts": n,
         "background": f"{sum(r['background'] for r in results)}/{n}",
         "object": f"{sum(r['object'] for r in results)}/{n}",
         "trend": f"{sum(trend)}/{len(trend)}"}
    if moving:
        s.update({"moving_right_way_15px": f"{int(np.sum(along > 15))}/{len(moving)}",
                  "moving_right_sign": f"{int(np.sum(along > 0))}/{len(moving)}",
                  "moving_lost": int(np.isnan(along).sum()),
                  "along_median": round(float(np.nanmedian(along)), 1),
                  "across_median": round(float(np.nanmedian([r["across"] for r in moving])), 1)})
        for m, (wx, wy) in DIRECTIONS.items():
            rs = [r for r in moving if parse(r["prompt"])["motion"] == m]
            if rs:
                s[m] = (round(float(np.nanmean([r["dx"] for r in rs])), 1),
                        round(float(np.nanmean([r["dy"] for r in rs])), 1))
    return s


def check_renderer(count):
    import torch
    import scenes
    ids = torch.randint(len(scenes.CAPTIONS), (count,), generator=torch.Generator().manual_seed(1))
    video = scenes.render(ids, scenes.CLIP_FRAMES, 128, torch.Generator().manual_seed(2), "cpu")
    video = ((video + 1) / 2).permute(0, 2, 3, 4, 1).numpy().astype(np.float64)
    results = [measure(video[k], scenes.CAPTION_TEXT[i]) for k, i in enumerate(ids.tolist())]
    s = summary(results)
    print("renderer:", json.dumps(s))
    bad = [r for r in results if not (r["background"] and r["object"] and r.get("trend", True)
                                      and r.get("along", 99) > 15)]
    if bad:
        raise SystemExit(f"the measure fails {len(bad)} rendered clips, e.g. {bad[0]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "raylight"))
    ap.add_argument("--per", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", nargs="+", default=[""], help="extra generate options, one string per run")
    ap.add_argument("--check-renderer", type=int, default=0, metavar="CLIPS")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.check_renderer:
        check_renderer(a.check_renderer)
    ps = prompts(a.per, a.seed)
    everything = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in a.configs:
            results = []
            for p in ps:
                results.append(measure(generate(a.binary, p, config.split(), os.path.join(tmp, "frames")), p))
                if a.verbose:
                    print(json.dumps(results[-1]), flush=True)
            everything[config] = results
            print(config or "(defaults)", json.dumps(summary(results)), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
