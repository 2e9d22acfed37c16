#!/usr/bin/env bash
# Packs the Python module built for the GPU machine's Python 3.12 with the libraries it loads
# that the GPU machine lacks into .pybundle/ (about 14 MB, small enough to travel beside one part
# of the vLLM bundle). Builds it first in build-py312 when needed.
set -euo pipefail
cd "$(dirname "$0")/.."
python312=${PYTHON312:-$(command -v python3.12 || ls /root/.pyenv/versions/3.12*/bin/python3.12 | head -1)}
if [ ! -d build-py312 ]; then
  "$python312" -m pip install -q nanobind scikit-build-core
  cmake -S . -B build-py312 -G Ninja -DPython_EXECUTABLE="$python312" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C build-py312 _kvbm >/dev/null
module=$(ls build-py312/python/kvbm/_kvbm.cpython-312-*.so | head -1)
rm -rf .pybundle
../shared/tools/device-bundle .pybundle "$module" >/dev/null
rm .pybundle/bin/"$(basename "$module")"
mkdir -p .pybundle/python/kvbm
cp -r python/kvbm/. .pybundle/python/kvbm/
cp "$module" .pybundle/python/kvbm/
find .pybundle -name __pycache__ -prune -exec rm -rf {} +
strip --strip-debug .pybundle/python/kvbm/*.so
du -sh .pybundle
