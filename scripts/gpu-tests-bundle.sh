#!/usr/bin/env bash
# Packs kvbm_gpu_tests alone, with its libraries, xz-compressed into .gpu-tests/ (about 2.3 MB):
# small enough to travel beside a part of the vLLM bundle (scripts/vllm-bundle.sh), so that one
# device call unpacks vLLM and runs the GPU tests. There:
#   tar -xJf .gpu-tests/gpubundle.tar.xz && BUNDLE=.gpubundle scripts/device-run.sh tests sanitize
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target kvbm_gpu_tests >/dev/null
rm -rf .gpubundle .gpu-tests && mkdir -p .gpu-tests
../shared/tools/device-bundle .gpubundle build/tests/kvbm_gpu_tests >/dev/null
strip --strip-debug .gpubundle/bin/*
tar -cf - .gpubundle | xz -9 -T0 > .gpu-tests/gpubundle.tar.xz
du -sh .gpu-tests
