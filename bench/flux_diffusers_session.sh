#!/usr/bin/env bash
# One device call for issue 14's diffusers-named Flux transformer (a few minutes, results in
# $OUT/summary.txt):
#   tiny   CUDA forwards of the committed diffusers fixtures (bf16 dev in 5 shards, fp8
#          schnell file) against their float64 goldens (max abs error; bf16 compute: ~1e-2);
#   real   a random Flux.1 dev transformer at real width (2 double + 4 single blocks, bf16
#          then fp8; bench/make_flux_diffusers_pair.py) as one official file and as a sharded
#          diffusers folder: CUDA forwards at 512x512 resident, --offload, and (2+ GPUs)
#          --gpus 0,1 --fsdp, each "max |official - diffusers|" (expected 0: same bytes) and
#          seconds per run (load included).
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu).
# Usage: bench/flux_diffusers_session.sh [tiny] [real]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/flux-diffusers}; mkdir -p "$out"
build=${RAYLIGHT_BUILD:-build-gpu}
[ -x "$build/raylight" ] || build=build-gpu/bin
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
steps=${*:-tiny real}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
maxdiff() {  # maxdiff A.safetensors B.safetensors [golden tensor name in B]
  python3 -c "
import sys; from safetensors.torch import load_file
a = load_file(sys.argv[1])['velocity'].float(); b = load_file(sys.argv[2])[sys.argv[3]].float()
print('%.3g' % (a - b).abs().max().item())" "$1" "$2" "${3:-velocity}"
}
fwd() {  # fwd MODEL CASE OUT [flags...]
  local model=$1 case=$2 o=$3; shift 3
  local t0=$SECONDS
  timeout 240 "$build/raylight" forward --device cuda --model "$model" --latent "$case" --context "$case" \
    --timestep 700 --out "$o" "$@" >>"$out/forward.log" 2>&1 || echo "forward $model $*: failed (see forward.log)" >&2
  echo $((SECONDS - t0))
}
if want tiny; then
  c=tests/fixtures/flux_diffusers_case.safetensors
  fwd tests/fixtures/flux_diffusers_dev $c "$out/dev.safetensors" >/dev/null
  note "tiny dev (bf16, 5 shards) vs float64 golden: $(maxdiff "$out/dev.safetensors" $c dev_velocity_f64)"
  fwd tests/fixtures/flux_diffusers_schnell $c "$out/schnell.safetensors" >/dev/null
  note "tiny schnell (fp8 file) vs float64 golden: $(maxdiff "$out/schnell.safetensors" $c schnell_velocity_f64)"
fi
if want real; then
  gpus=$(nvidia-smi -L | wc -l)
  for kind in bf16 fp8; do
    d=/tmp/flux-diffusers-$kind
    flag=; [ $kind = fp8 ] && flag=--fp8
    t0=$SECONDS
    timeout 300 python3 bench/make_flux_diffusers_pair.py --out $d $flag >"$out/make_$kind.log" 2>&1 \
      || { note "make pair $kind failed: $(tail -2 "$out/make_$kind.log")"; continue; }
    note "$kind pair written in $((SECONDS - t0)) s: $(tail -1 "$out/make_$kind.log")"
    layouts=("" "--offload"); [ "$gpus" -ge 2 ] && layouts+=("--gpus 0,1 --fsdp")
    for l in "${layouts[@]}"; do
      s1=$(fwd $d/official.safetensors $d/case.safetensors "$out/o.safetensors" $l)
      s2=$(fwd $d/transformer $d/case.safetensors "$out/d.safetensors" $l)
      note "real $kind ${l:-resident}: max |official - diffusers| $(maxdiff "$out/o.safetensors" "$out/d.safetensors"), official $s1 s, diffusers $s2 s"
    done
    rm -rf $d
  done
fi
