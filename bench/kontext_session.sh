#!/usr/bin/env bash
# One device call for issue 15 (Flux Kontext), random Flux.1 dev weights at real shapes (the
# GPU machine has no checkpoints). Steps (all by default; name some to run only those):
#   check    the Kontext golden on CUDA: `forward` of the tiny dev model with two references
#            (tests/fixtures/kontext_tiny_case.safetensors) against the float64 golden
#   steps    per-step time at 1024x1024 (4096 noisy + 512 text tokens) without and with one
#            1024x1024 reference (+4096 tokens), same DiT, same call: `raylight sample`
#            --steps 8, the "step time" line of each and their ratio
#   generate `raylight generate --image` (a 1024x1024 PNG: read, Kontext-resized, VAE-encoded
#            on the GPU) when the full random parts of bench/flux_e2e_session.sh exist
# Random parts: reuses /tmp/flux-comfy (flux_e2e_session.sh) when there, else writes only the
# DiT (ComfyUI scaled fp8) and VAE with bench/make_random_flux_parts.py (about a minute).
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu). Results: $OUT
# (summary.txt). Meant to finish in under 3 minutes on one H200.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/kontext}; mkdir -p "$out"
build=${RAYLIGHT_BUILD:-build-gpu}
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
steps=${*:-check steps generate}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
work=/tmp/kontext-work; mkdir -p $work

if want check; then
  python3 - "$work" <<'PY' >"$out/check_prep.log" 2>&1
import sys
from safetensors.torch import load_file, save_file
c = load_file("tests/fixtures/kontext_tiny_case.safetensors")
save_file({"latent": c["latent"], "reference.0": c["two.reference.0"], "reference.1": c["two.reference.1"]},
          sys.argv[1] + "/two_latent.safetensors")
PY
  timeout 120 "$build/raylight" forward --device cuda --model tests/fixtures/flux_tiny_dev.safetensors \
    --latent $work/two_latent.safetensors --context tests/fixtures/kontext_tiny_case.safetensors --timestep 700 \
    --guidance 2.5 --out $work/two_velocity.safetensors >"$out/check.log" 2>&1
  rc=$?
  err=$(python3 -c "
from safetensors.torch import load_file
v = load_file('$work/two_velocity.safetensors')['velocity']
g = load_file('tests/fixtures/kontext_tiny_case.safetensors')['two.velocity']
print('%.3e' % (v - g).abs().max().item())" 2>&1 | tail -1)
  note "check: CUDA forward with two references (exit $rc) vs float64 golden: max abs err $err (CPU: < 5e-5; GPU bf16 activations: expect ~1e-2)"
fi

comfy=/tmp/flux-comfy/models
if [ -f $comfy/diffusion_models/flux1-dev-fp8.safetensors ]; then
  dit=$comfy/diffusion_models/flux1-dev-fp8.safetensors; vae=$comfy/vae/ae.safetensors
else
  dit=$work/flux1-dev-fp8.safetensors; vae=$work/ae.safetensors
  if want steps && [ ! -f $dit ]; then
    t0=$(date +%s)
    timeout 400 python3 bench/make_random_flux_parts.py --out $work --parts dit,vae >"$out/make_parts.log" 2>&1 \
      || note "make_random_flux_parts failed: $(tail -2 "$out/make_parts.log")"
    note "random DiT + VAE written in $(( $(date +%s) - t0 )) s"
  fi
fi

if want steps; then
  python3 - "$work" <<'PY' >"$out/steps_prep.log" 2>&1
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
ctx = {"context": torch.randn(512, 4096, generator=g), "pooled": torch.randn(768, generator=g)}
save_file(ctx, sys.argv[1] + "/ctx.safetensors")
ctx["reference.0"] = torch.randn(16, 128, 128, generator=g)  # a 1024x1024 picture's latent
save_file(ctx, sys.argv[1] + "/ctx_ref.safetensors")
PY
  for kind in plain ref; do
    c=$work/ctx.safetensors; [ $kind = ref ] && c=$work/ctx_ref.safetensors
    timeout 240 "$build/raylight" sample --model $dit --context $c --width 1024 --height 1024 --steps 8 \
      --out $work/$kind.safetensors >"$out/steps_$kind.log" 2>&1
    note "sample 1024x1024 8 steps, $kind: exit $? $(grep -E '^step time' "$out/steps_$kind.log")"
  done
  python3 - "$out" <<'PY' | tee -a "$out/summary.txt"
import re, sys
t = {}
for k in ("plain", "ref"):
    m = re.search(r"then ([0-9.]+) s per step", open(f"{sys.argv[1]}/steps_{k}.log").read())
    t[k] = float(m.group(1)) if m else None
if None not in t.values():
    print(f"per step: plain Flux {t['plain']:.3f} s (4608 tokens), Kontext {t['ref']:.3f} s (8704 tokens): "
          f"x{t['ref'] / t['plain']:.2f}")
else:
    print("per step: a step-time line is missing", t)
PY
fi

if want generate; then
  if [ -f $comfy/text_encoders/t5xxl_fp16.safetensors ]; then
    python3 -c "
from PIL import Image
import numpy as np
x = np.linspace(0, 255, 1024).astype(np.uint8)
Image.fromarray(np.stack([np.tile(x, (1024, 1)), np.tile(x[:, None], (1, 1024)), np.full((1024, 1024), 90, np.uint8)], -1)).save('$work/in.png')"
    timeout 240 "$build/raylight" generate --comfyui-dir /tmp/flux-comfy --model $dit --image $work/in.png --steps 20 \
      --prompt "make the sky purple" --out "$out/kontext_1024.png" >"$out/generate.log" 2>&1
    note "generate --image 1024x1024 20 steps: exit $?"
    grep -E "^model:|^timing:|error|peak" "$out/generate.log" | tee -a "$out/summary.txt"
  else
    note "generate: skipped (no T5/CLIP: run bench/flux_e2e_session.sh first in the same call)"
  fi
fi
