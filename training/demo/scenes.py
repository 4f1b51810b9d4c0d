"""Procedural video scenes and their captions: the demo model's whole training set.

A scene is one shape of one colour, moving in one way over a static background of one
colour and style; its caption comes from a small grammar,

    a|an <colour> <shape> <motion> on a|an <colour> [<style>] background
    e.g. "a red circle moving left on a blue striped background",

so every prompt the grammar makes names a scene the model has seen the like of. Rendering
is vectorised torch over a batch (runs on the GPU during training): shapes are
anti-aliased distance fields on a pixel grid, so a batch of 17-frame 128x128 clips takes
milliseconds. A clip is CLIP_FRAMES frames (the demo's length, 9 = 3 latent frames): a
shape crosses about 40% of the frame, grows from small to large, or bounces once.

VOCABULARY is the single source of the words: the exporter writes it into the demo DiT's
metadata, and the engine reads it from there for `--help` and the out-of-vocabulary note.
"""

import math

import torch

CLIP_FRAMES = 9

# Colours in linear [0, 1] RGB. Object and background colours are drawn from the same list
# and always differ.
COLOURS = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.88, 0.10),
    "orange": (1.00, 0.55, 0.05),
    "purple": (0.55, 0.20, 0.80),
    "white": (0.96, 0.96, 0.96),
    "black": (0.06, 0.06, 0.06),
}
SHAPES = ["circle", "square", "triangle", "star"]
MOTIONS = ["moving left", "moving right", "moving up", "moving down", "growing", "shrinking",
           "bouncing"]
# Background styles: "" is a plain colour.
STYLES = ["", "gradient", "striped", "checkered", "dotted"]
# Every word a grammar prompt can hold.
FILLER = ["a", "an", "on", "background"]

# The layout src/models/model_card.h reads ("raylight.vocabulary" metadata).
VOCABULARY = {
    "grammar": "a|an <colour> <shape> <motion> on a|an <colour> [<style>] background",
    "words": {"colour": list(COLOURS), "shape": SHAPES, "motion": MOTIONS,
              "style": [s for s in STYLES if s]},
    "fillers": FILLER,
    "example": "a white circle growing on a purple gradient background",
}


def caption(colour, shape, motion, bg, style):
    def art(word):
        return "an" if word[0] in "aeiou" else "a"
    bg_words = f"{bg} {style}" if style else bg
    return f"{art(colour)} {colour} {SHAPES[shape]} {MOTIONS[motion]} on {art(bg)} {bg_words} background"


def all_captions():
    """Every caption of the grammar, in a fixed order (index = caption id)."""
    names = list(COLOURS)
    out = []
    for c in names:
        for s in range(len(SHAPES)):
            for m in range(len(MOTIONS)):
                for b in names:
                    if b == c:
                        continue
                    for st in STYLES:
                        out.append((c, s, m, b, st))
    return out


CAPTIONS = all_captions()
CAPTION_TEXT = [caption(*c) for c in CAPTIONS]


# Caption attributes as integers: colour, shape, motion, background colour, style.
ATTRIBUTES = torch.tensor([[list(COLOURS).index(c), s, m, list(COLOURS).index(b), STYLES.index(st)]
                           for c, s, m, b, st in CAPTIONS])
PALETTE = torch.tensor(list(COLOURS.values()))


def _texture_colour(rgb):
    """The second colour of a textured background: lighter for dark colours, darker for light."""
    luma = (rgb * torch.tensor([0.3, 0.59, 0.11], device=rgb.device)).sum(-1, keepdim=True)
    light = rgb + 0.45 * (1 - rgb)
    dark = rgb * 0.55
    return torch.where(luma > 0.55, dark, light)


def render(ids, frames, size, gen, device, with_alpha=False):
    """Clips for caption ids [B] (on `device`): float tensor [B, 3, frames, size, size] in [-1, 1]
    (and, with `with_alpha`, the object's coverage [B, frames, size, size] in [0, 1]).

    Random per clip (from `gen`, a generator on `device`): start position, size, speed,
    colour jitter, texture phase.
    """
    B = ids.shape[0]
    attr = ATTRIBUTES.to(device)[ids]
    palette = PALETTE.to(device)
    obj, bg = palette[attr[:, 0]], palette[attr[:, 3]]
    shape, motion, style = attr[:, 1], attr[:, 2], attr[:, 4]

    def rand(*shape_):
        return torch.rand(*shape_, generator=gen, device=device)

    # Small colour jitter so the model learns colour names, not eight exact values.
    obj = (obj + 0.05 * (rand(B, 3) - 0.5)).clamp(0, 1)
    bg = (bg + 0.05 * (rand(B, 3) - 0.5)).clamp(0, 1)

    S = float(size)
    t = torch.arange(frames, device=device, dtype=torch.float32)[None, :]  # [1, T]
    radius0 = S * (0.10 + 0.06 * rand(B, 1))              # 13..20 px at 128
    steps = CLIP_FRAMES - 1
    speed = S * (0.040 + 0.015 * rand(B, 1))              # 5.1..7.0 px per frame at 128
    travel = speed * steps
    margin = radius0 + 2
    # Start so that the whole path stays inside the frame.
    lo, hi = margin, S - margin - travel
    start = lo + (hi - lo).clamp(min=0) * rand(B, 1)
    across = margin + (S - 2 * margin) * rand(B, 1)      # the fixed coordinate
    cx = across.expand(B, frames).clone()
    cy = (margin + (S - 2 * margin) * rand(B, 1)).expand(B, frames).clone()
    r = radius0.expand(B, frames).clone()

    m = motion[:, None]
    right = start + speed * t
    left = S - right
    cx = torch.where(m == 0, left, torch.where(m == 1, right, cx))
    cy = torch.where(m == 2, left, torch.where(m == 3, right, cy))
    # Growing: radius from ~6% to ~30% of the frame over a clip; shrinking reverses it.
    small, large = S * (0.05 + 0.03 * rand(B, 1)), S * (0.26 + 0.06 * rand(B, 1))
    grow = small + (large - small) * (t / steps)
    shrink = large - (large - small) * (t / steps)
    r = torch.where(m == 4, grow, torch.where(m == 5, shrink, r))
    centre = S / 2 + (S * 0.12) * (rand(B, 2) - 0.5)
    cx = torch.where((m == 4) | (m == 5), centre[:, :1].expand(B, frames), cx)
    cy = torch.where((m == 4) | (m == 5), centre[:, 1:].expand(B, frames), cy)
    # Bouncing: a ball on a floor, one |sin| arc per clip.
    floor = S - radius0 - 3
    height = S * (0.35 + 0.15 * rand(B, 1))
    phase = rand(B, 1) * math.pi
    bounce = floor - height * torch.sin(math.pi * t / steps + phase).abs()
    cy = torch.where(m == 6, bounce, cy)

    # Pixel grid, [1, 1, H, W].
    coords = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    py = coords[None, None, :, None]
    px = coords[None, None, None, :]
    dx = px - cx[:, :, None, None]
    dy = py - cy[:, :, None, None]
    rr = r[:, :, None, None]
    dist = torch.sqrt(dx * dx + dy * dy + 1e-6)
    d_circle = dist - rr
    d_square = torch.maximum(dx.abs(), dy.abs()) - rr * 0.85
    # Equilateral triangle pointing up, circumradius ~1.15 r.
    k = math.sqrt(3.0)
    R = rr * 1.15
    d_tri = torch.maximum(torch.maximum((k * dx - dy) / 2, (-k * dx - dy) / 2), dy) - R / 2
    # Five-pointed star, one point up, straight edges: fold the angle into the half
    # sector [0, pi/5] between a point (angle 0) and an inner corner, then take the signed
    # distance to the edge joining them.
    theta = torch.atan2(dx, -dy)                                     # 0 at "up"
    sector = 2 * math.pi / 5
    phi = (theta.remainder(sector) - sector / 2).abs()               # 0 at a corner
    phi = sector / 2 - phi                                           # 0 at a point
    R_out, R_in = rr * 1.35, rr * 1.35 * 0.45
    ax, ay = R_out, torch.zeros_like(R_out)
    bx, by = R_in * math.cos(sector / 2), R_in * math.sin(sector / 2)
    qx, qy = dist * torch.cos(phi), dist * torch.sin(phi)
    ex, ey = bx - ax, by - ay
    d_star = ((qx - ax) * ey - (qy - ay) * ex) / torch.sqrt(ex * ex + ey * ey)
    sh = shape[:, None, None, None]
    d = torch.where(sh == 0, d_circle, torch.where(sh == 1, d_square,
                                                    torch.where(sh == 2, d_tri, d_star)))
    alpha = (0.5 - d).clamp(0, 1)                                    # [B, T, H, W]

    # Background [B, 3, H, W], static.
    st = style[:, None, None, None]
    tex = _texture_colour(bg)
    yy = py[0] / S                                                   # [1, H, 1]
    xx = px[0]
    yy_px = py[0]
    ph = rand(B, 2) * 16
    gx = xx + ph[:, :1, None]                                        # [B, 1, W]
    gy = yy_px + ph[:, 1:, None]                                     # [B, H, 1]
    stripes = ((gx + gy) / 12.0).floor().remainder(2)                # diagonal, 8.5 px wide
    checks = ((gx / 16.0).floor() + (gy / 16.0).floor()).remainder(2)
    cxd = gx.remainder(16) - 8
    cyd = gy.remainder(16) - 8
    dots = (3.5 - torch.sqrt(cxd * cxd + cyd * cyd)).clamp(0, 1)
    grad = yy.expand(1, size, size)                                   # 0 top .. 1 bottom
    w_tex = torch.where(st == 2, stripes[:, None], torch.where(
        st == 3, checks[:, None], torch.where(st == 4, dots[:, None], torch.zeros_like(dots[:, None]))))
    bgc = bg[:, :, None, None]
    texc = tex[:, :, None, None]
    background = bgc + (texc - bgc) * w_tex
    # Gradient: the colour at the top, a quarter of it at the bottom.
    background = torch.where(st[:, :, :, :] == 1, bgc * (1 - 0.75 * grad[None]), background)

    video = background[:, :, None] + (obj[:, :, None, None, None] - background[:, :, None]) * alpha[:, None]
    video = video.clamp(0, 1) * 2 - 1
    return (video, alpha) if with_alpha else video


# The caption a clip played backwards has: left <-> right, up <-> down, growing <->
# shrinking; bouncing stays bouncing. The background is static, so a reversed clip is a
# clip of the grammar (every start, speed and phase the renderer draws maps to one it also
# draws): a free twin that differs from its clip only in the motion word's meaning.
REVERSED_MOTION = [1, 0, 3, 2, 5, 4, 6]
_INDEX = {c: i for i, c in enumerate(CAPTIONS)}
# WITH_MOTION[id, m]: caption `id` with its motion word replaced by MOTIONS[m].
WITH_MOTION = torch.tensor([[_INDEX[(c, s, m2, b, st)] for m2 in range(len(MOTIONS))]
                            for c, s, m, b, st in CAPTIONS])
REVERSED_ID = WITH_MOTION[torch.arange(len(CAPTIONS)), torch.tensor(REVERSED_MOTION)[ATTRIBUTES[:, 2]]]


def sample_ids(batch, gen, device):
    return torch.randint(len(CAPTIONS), (batch,), generator=gen, device=device)


if __name__ == "__main__":
    # Writes a contact sheet of a few clips (first, middle, last frame) to /tmp.
    import numpy as np
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([CAPTIONS.index(("red", 0, 0, "blue", "")),
                        CAPTIONS.index(("green", 1, 2, "white", "striped")),
                        CAPTIONS.index(("yellow", 2, 4, "black", "checkered")),
                        CAPTIONS.index(("orange", 3, 6, "purple", "dotted")),
                        CAPTIONS.index(("white", 0, 5, "blue", "gradient")),
                        CAPTIONS.index(("black", 3, 1, "yellow", ""))])
    v = render(ids, CLIP_FRAMES, 128, g, "cpu")
    rows = []
    for b in range(v.shape[0]):
        rows.append(torch.cat([v[b, :, f] for f in range(0, CLIP_FRAMES, 2)], dim=2))
        print(CAPTION_TEXT[ids[b]])
    sheet = ((torch.cat(rows, dim=1).permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
    Image.fromarray(sheet).save("/tmp/scenes.png")
    print(len(CAPTIONS), "captions")
