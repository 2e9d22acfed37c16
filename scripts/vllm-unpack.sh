#!/usr/bin/env bash
# On the GPU machine: keeps each carried part of the vLLM bundle (scripts/vllm-bundle.sh) in
# /tmp/vllm-parts, and once all of them are there unpacks them into /tmp/vllm-site (once).
#   scripts/vllm-unpack.sh BUNDLE_DIR [PARTS]     (PARTS: how many parts make the bundle, 2)
# Exit status 0 once /tmp/vllm-site holds vLLM, 3 while parts are still missing.
set -euo pipefail
bundle=${1:-.vllm-bundle}
parts=${2:-2}
mkdir -p /tmp/vllm-parts
cp -n "$bundle"/part-* /tmp/vllm-parts/ 2>/dev/null || true
if [ -f /tmp/vllm-site/vllm/__init__.py ]; then exit 0; fi
have=$(ls /tmp/vllm-parts | wc -l)
if [ "$have" -lt "$parts" ]; then
  echo "vllm-unpack: $have of $parts parts in /tmp/vllm-parts"
  exit 3
fi
rm -rf /tmp/vllm-unpack && mkdir -p /tmp/vllm-unpack
cat /tmp/vllm-parts/part-* | xz -dc -T8 | tar -C /tmp/vllm-unpack -x
mv /tmp/vllm-unpack/site /tmp/vllm-site
echo "vllm-unpack: vLLM in /tmp/vllm-site"
