#!/usr/bin/env bash
# Multi-GPU validation in one device call (issue 7): every layout over NCCL against one GPU
# on the tiny model, then Ulysses/Ring/USP scaling of one Wan forward with random weights.
# Expects .gpurun/ (raylight built with -DRAYLIGHT_VIDEO_IO=OFF plus the shared libraries the
# GPU host lacks) and .devmpi/ (Debian's OpenMPI, relocated with OPAL_PREFIX) to be carried.
# Usage: bench/multi_gpu_session.sh [equivalence] [scaling13] [scaling14] [scaling14_480]
#        [ring14_720] [fp8_14]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
steps=${*:-equivalence scaling13}
want() { [[ " $steps " == *" $1 "* ]]; }
# The host's own OpenMPI when it has one (same ABI, libmpi.so.40); else the carried copy.
export LD_LIBRARY_PATH=$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if ! command -v mpirun >/dev/null 2>&1; then
  export OPAL_PREFIX=$PWD/.devmpi/usr PATH=$PWD/.devmpi/usr/bin:$PATH
  export PMIX_INSTALL_PREFIX=$PWD/.devmpi/usr/lib/x86_64-linux-gnu/pmix2
  export LD_LIBRARY_PATH=$PWD/.devmpi/lib:$LD_LIBRARY_PATH
fi
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_pml=ob1 OMPI_MCA_mca_component_show_load_errors=0
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=$PWD/.gpurun/raylight
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi -L | tee "$out/device.txt"
echo "mpirun: $(command -v mpirun)"

if want equivalence; then
  size="--width 256 --height 256 --frames 9 --steps 4"
  timeout 120 $R sample --device cuda $size --out "$out/ref.safetensors" 2>&1 | tail -3
  timeout 120 $R sample --device cuda $size --seed 1 --out "$out/ref_seed1.safetensors" 2>&1 | tail -1
  layouts=("--gpus 0,1 --ulysses 2" "--gpus 0,1 --ring 2" "--gpus 0,1 --cfg-parallel"
           "--gpus 0,1 --fsdp --ulysses 2" "--gpus 0,1 --offload --ring 2" "--gpus 0,1 --dp 2"
           "--gpus 0,1 --fsdp --cfg-parallel" "--gpus 0,1 --fsdp --offload --ulysses 2" "--gpus 0 --offload")
  if [ "$ngpu" -ge 4 ]; then
    layouts+=("--gpus 0,1,2,3 --ulysses 4" "--gpus 0,1,2,3 --ring 4" "--gpus 0,1,2,3 --ulysses 2 --ring 2"
              "--gpus 0,1,2,3 --cfg-parallel --ulysses 2" "--gpus 0,1,2,3 --fsdp --ulysses 2 --ring 2"
              "--gpus 0,1,2,3 --fsdp --ulysses 4" "--gpus 0,1,2,3 --fsdp --offload --dp 2 --ulysses 2")
  fi
  for l in "${layouts[@]}"; do
    echo "== $l"
    timeout 180 $R sample $size $l --out "$out/par.safetensors" 2>&1 | grep -E "error|rank 0:" | head -5
    python3 - "$out/ref.safetensors" "$out/par.safetensors" "$out/ref_seed1.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
ref = load_file(sys.argv[1])["latent"]; got = load_file(sys.argv[2])["latent"]
if got.ndim == ref.ndim + 1:  # dp: [2, ...] = seeds 0 and 1
    other = load_file(sys.argv[3])["latent"]
    print("  dp seed0 max|diff| %.3g, seed1 max|diff| %.3g" % (np.abs(got[0]-ref).max(), np.abs(got[1]-other).max()))
else:
    d = np.abs(got - ref); print("  max|diff| %.3g  mean|diff| %.3g  max|ref| %.3g" % (d.max(), d.mean(), np.abs(ref).max()))
PY
  done 2>&1 | tee "$out/equivalence.log"
fi

# One model per call keeps each call inside the device's 10-minute limit.
bench_layouts() {  # model args, then the sequence-parallel layouts to try at 2 and 4 GPUs
  local cfg=$1; shift
  for n in 1 2 4; do
    [ "$n" -gt "$ngpu" ] && continue
    gpus=$(seq -s, 0 $((n-1)))
    for sp in "--ulysses $n" "$@"; do
      sp=${sp//N/$n}
      [ "$n" -eq 1 ] && [ "$sp" != "--ulysses 1" ] && continue
      [ "$n" -lt 4 ] && [[ "$sp" == "--ulysses 2 --ring 2" ]] && continue
      echo "== bench --model $cfg --gpus $gpus $sp"
      timeout 300 $R bench --model $cfg --gpus $gpus $sp --runs ${RUNS:-2} --warmup 1 2>&1 | grep -E "forward:|peak device|layout|error" | head -4
    done
  done
}
bench_one() {  # model args, layout
  echo "== bench --model $1 $2"
  timeout 300 $R bench --model $1 $2 --runs ${RUNS:-2} --warmup 1 2>&1 | grep -E "forward:|peak device|layout|error" | head -4
}
q="0,1,2,3"
if want scaling14_480; then  # Wan 14B bf16 at 480p: Ulysses 1/2/4, Ring 4, USP 2x2
  for l in "--gpus 0" "--gpus 0,1 --ulysses 2" "--gpus $q --ulysses 4" "--gpus $q --ring 4" "--gpus $q --ulysses 2 --ring 2"; do
    bench_one "wan-14b --height 480 --width 832" "$l"
  done 2>&1 | tee "$out/scaling_14b_480.log"
fi
if want ring14_720; then  # Wan 14B bf16 at 720p: Ring and USP (Ulysses ran before)
  for l in "--gpus 0,1 --ring 2" "--gpus $q --ring 4" "--gpus $q --ulysses 2 --ring 2"; do
    bench_one "wan-14b --height 720 --width 1280" "$l"
  done 2>&1 | tee "$out/ring_14b_720.log"
fi
if want fp8_14; then  # Wan 14B fp8 weights: Ulysses 1/2/4 at 480p and 720p
  for size in "--height 480 --width 832" "--height 720 --width 1280"; do
    for l in "--gpus 0" "--gpus 0,1 --ulysses 2" "--gpus $q --ulysses 4"; do
      bench_one "wan-14b --dtype fp8 $size" "$l"
    done
  done 2>&1 | tee "$out/fp8_14b.log"
fi
if want scaling13; then
  bench_layouts "wan-1.3b --height 720 --width 1280" "--ring N" "--ulysses 2 --ring 2" 2>&1 | tee "$out/scaling_1.3b.log"
fi
if want scaling14; then
  bench_layouts "wan-14b --height 720 --width 1280" 2>&1 | tee "$out/scaling_14b.log"
fi
