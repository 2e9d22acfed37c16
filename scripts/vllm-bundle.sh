#!/usr/bin/env bash
# Packs vLLM 0.26.0 for the GPU machine, which has no network but has its torch (2.11, CUDA 13):
#   scripts/vllm-bundle.sh [OUT_DIR]     (default .vllm-bundle; add it to .git/info/exclude)
# downloads vLLM and the packages of its dependency closure that the GPU machine lacks
# (../shared/gpu-machine/vllm-0.26.0-missing.txt), leaves out what a dense model in eager mode
# never imports, unpacks them into one site/ folder, and writes it as xz parts under 55 MB, so
# that each device call carries one. On the GPU machine (two calls, back to back):
#   call 1 (carry OUT_DIR/part-aa):  scripts/vllm-unpack.sh OUT_DIR
#   call 2 (carry OUT_DIR/part-ab):  scripts/vllm-unpack.sh OUT_DIR && ... PYTHONPATH=/tmp/vllm-site
# Both parts stay in /tmp there until the machine is given back.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.vllm-bundle}
list=${VLLM_MISSING_LIST:-../shared/gpu-machine/vllm-0.26.0-missing.txt}
# Not imported by a dense model in eager mode (about 470 MB): see ../shared/VLLM-ON-GPU.md.
skip='^(tokenspeed-triton|tokenspeed-mla|nvidia-cutlass-dsl.*|nvidia-nvvm|nvidia-cuda-nvcc|nvidia-cuda-nvdisasm|nvidia-cuda-cccl|nvidia-cuda-crt|tilelang|pynvvideocodec|z3-solver|torchcodec|flashinfer-python|nvidia-cudnn-frontend|cuda-tile|kernels|quack-kernels|humming-kernels)=='
wheels=$out/wheels
mkdir -p "$wheels"
platforms=()
for n in $(seq 5 39); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform linux_x86_64 --platform any)
{ echo "vllm==0.26.0"; grep -vE "$skip" "$list"; } | grep -v '^\s*$' > "$out/requirements.txt"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$wheels" -r "$out/requirements.txt"
site=$out/site
rm -rf "$site" && mkdir -p "$site"
for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$site" >/dev/null; done
# A wheel's .data/purelib and .data/platlib belong at the top of site-packages.
for d in "$site"/*.data; do
  for sub in purelib platlib; do
    [ -d "$d/$sub" ] && cp -a "$d/$sub/." "$site/" && rm -rf "${d:?}/$sub"
  done
done
# Optional parts of vllm that a dense model on Hopper does not load.
rm -f "$site"/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so "$site"/vllm/_moe_C_stable_libtorch.abi3.so
rm -rf "$site"/vllm/third_party/deep_gemm "$site"/vllm_rs* "$site"/vllm/vllm-rs
find "$site" -name __pycache__ -type d -prune -exec rm -rf {} +
rm -f "$out"/part-*
tar -C "$out" -cf - site | xz -6 -T2 | split -b 55M - "$out/part-"
ls -la "$out"/part-*
