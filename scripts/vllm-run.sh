#!/usr/bin/env bash
# On the GPU machine, once scripts/vllm-unpack.sh has put vLLM in /tmp/vllm-site and the
# Python module's bundle (.pybundle, see scripts/vllm-pybundle.sh) travelled:
#   scripts/vllm-run.sh NAME [multiturn.py arguments...]
# runs bench/vllm/multiturn.py in vLLM's environment with kvbm importable; its JSON goes to
# $OUT/NAME.json and its log to $OUT/NAME.log.
set -uo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
out=${OUT:-/tmp/kvbm-out}
mkdir -p "$out"
source .pybundle/env.sh
export PYTHONPATH=$PWD/.pybundle/python:/tmp/vllm-site
export PYTHONUNBUFFERED=1
# Without flashinfer (left out of the bundle), vLLM's sampler must not look for it.
export VLLM_USE_FLASHINFER_SAMPLER=0
# The engine in this process, so the bench can read the connector's totals at the end.
export VLLM_ENABLE_V1_MULTIPROCESSING=0
export KVBM_LOG=${KVBM_LOG:-warn}
timeout "${RUN_TIMEOUT:-300}" /opt/torch/.venv/bin/python bench/vllm/multiturn.py "$@" --label "$name" \
  --json "$out/$name.json" > "$out/$name.log" 2>&1
status=$?
grep -E '^turn |^\{|Error|error:|Traceback' "$out/$name.log" | tail -12
echo "$name: exit $status"
exit $status
