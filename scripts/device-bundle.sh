#!/usr/bin/env bash
# Packs kvbm and its GPU test programs (built here) with the libraries the GPU machine lacks
# into .bundle/, for the device tool to carry. Then, there: scripts/device-run.sh STEP...
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target kvbm kvbm_gpu_tests kvbm_multi_tests kvbm_nccl_tests kvbm_control_bench kvbm_gpu_phases kvbm_nccl_bench kvbm_remote_tests kvbm_worker_bench >/dev/null
rm -rf .bundle
../shared/tools/device-bundle .bundle build/kvbm build/tests/kvbm_gpu_tests build/tests/kvbm_multi_tests build/tests/kvbm_nccl_tests build/bench/kvbm_control_bench build/bench/kvbm_gpu_phases build/bench/kvbm_nccl_bench build/bench/kvbm_worker_bench build/tests/kvbm_remote_tests /usr/bin/ucx_perftest
# The Python module, when build-py312 holds one built for the GPU machine's Python 3.12
# (cmake -S . -B build-py312 -DPython_EXECUTABLE=<python3.12> -DKVBM_PYTHON=ON; ninja -C build-py312 _kvbm):
# its libraries join the bundle's, the package goes to .bundle/python.
module=$(ls build-py312/python/kvbm/_kvbm.cpython-312-*.so 2>/dev/null | head -1)
if [ -n "$module" ]; then
  ../shared/tools/device-bundle .bundle "$module" >/dev/null
  rm .bundle/bin/"$(basename "$module")"
  mkdir -p .bundle/python/kvbm
  cp -r python/kvbm/. .bundle/python/kvbm/ && cp "$module" .bundle/python/kvbm/
  find .bundle/python -name __pycache__ -prune -exec rm -rf {} +
fi
strip --strip-debug .bundle/bin/*
