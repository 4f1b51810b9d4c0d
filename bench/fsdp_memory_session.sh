#!/usr/bin/env bash
# FSDP / offload memory on the GPU machine (issue 5), in one device call: a random Wan 14B
# checkpoint in ComfyUI's scaled-fp8 layout is written to local disk, then sampled at
# Raylight's reference size (480x832x33) under each weight placement, every rank printing
# its peak GPU memory; a 12 GiB cap stands in for a 12 GB card.
# Expects .gpurun/ (raylight built with -DRAYLIGHT_VIDEO_IO=OFF) carried with the call.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_pml=ob1 OMPI_MCA_mca_component_show_load_errors=0
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=$PWD/.gpurun/raylight
ck=/tmp/wan14b_fp8.safetensors ctx=/tmp/wan_ctx.safetensors
nvidia-smi -L | tee "$out/device.txt"
time python3 bench/make_random_wan_checkpoint.py --model wan-14b --out $ck --context $ctx
$R inspect $ck | head -8
job="sample --model $ck --context $ctx --negative $ctx --width 832 --height 480 --frames 33 --steps ${STEPS:-2}"
run() {  # name, flags
  echo "== $1: $2"
  timeout 240 $R $job $2 --out "$out/$1.safetensors" 2>&1 | grep -E "rank [0-9]:|error|wrote|step time" | head -6
}
{
  run resident_1gpu "--gpus 0"
  run ulysses_2gpu "--gpus 0,1 --ulysses 2"
  run fsdp_2gpu_cap12 "--gpus 0,1 --fsdp --cfg-parallel --gpu-memory-limit 12"
  run ulysses_fsdp_2gpu_cap12 "--gpus 0,1 --ulysses 2 --fsdp --gpu-memory-limit 12"
  run offload_1gpu_cap12 "--gpus 0 --offload --gpu-memory-limit 12"
  run fsdp_offload_2gpu_cap12 "--gpus 0,1 --fsdp --offload --cfg-parallel --gpu-memory-limit 12"
  if [ "$(nvidia-smi -L | wc -l)" -ge 4 ]; then
    run ulysses_4gpu "--gpus 0,1,2,3 --ulysses 4"
    run ulysses_fsdp_4gpu_cap12 "--gpus 0,1,2,3 --ulysses 4 --fsdp --gpu-memory-limit 12"
    run cfg_ulysses_fsdp_4gpu_cap12 "--gpus 0,1,2,3 --cfg-parallel --ulysses 2 --fsdp --gpu-memory-limit 12"
  fi
  run resident_1gpu_cap12 "--gpus 0 --gpu-memory-limit 12"
} 2>&1 | tee "$out/memory.log"
python3 - "$out" <<'PY'
import sys, os, numpy as np
from safetensors.numpy import load_file
d = sys.argv[1]; ref = load_file(os.path.join(d, "resident_1gpu.safetensors"))["latent"].astype(np.float32)
for n in ["ulysses_2gpu", "fsdp_2gpu_cap12", "ulysses_fsdp_2gpu_cap12", "offload_1gpu_cap12",
          "fsdp_offload_2gpu_cap12", "ulysses_4gpu", "ulysses_fsdp_4gpu_cap12", "cfg_ulysses_fsdp_4gpu_cap12"]:
    p = os.path.join(d, n + ".safetensors")
    if os.path.exists(p):
        x = load_file(p)["latent"].astype(np.float32); print(n, "max|diff| to resident %.3g" % np.abs(x - ref).max())
PY
