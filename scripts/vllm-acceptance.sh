#!/usr/bin/env bash
# On the GPU machine, once scripts/vllm-unpack.sh has put vLLM in /tmp/vllm-site and .pybundle
# travelled: every run the vLLM connector's figures come from, back to back on one machine, then
# the tables. Results: $OUT/vllm.tgz (one file: the device tool brings back only a few).
#   scripts/vllm-acceptance.sh [perf] [greedy] [disk]      (default: all three)
# perf: prefix caching, the floor, vLLM's offloading and kvbm (layer by layer, and asynchronous)
# on the multi-turn workload; greedy: 16 tokens a turn with and without kvbm in verify mode, with
# a host tier that holds the first turns (layer-by-layer loads) and a disk that serves the rest;
# disk: kvbm with 4 GiB of host memory and a 24 GiB disk. About 6 minutes in all on an H100.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
out=${OUT:-/tmp/kvbm-out}
export RUN_TIMEOUT=${RUN_TIMEOUT:-150}
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(perf greedy disk)
greedy="--first 1024 --per-turn 256 --turns 4 --max-tokens 16 --gpu-blocks 256 --max-model-len 4096"
for part in "${parts[@]}"; do
  case $part in
    perf)
      scripts/vllm-run.sh kvbm kvbm --host-gib 16
      scripts/vllm-run.sh floor floor
      scripts/vllm-run.sh native native --host-gib 16
      scripts/vllm-run.sh kvbm-async kvbm --host-gib 16 --loads async
      scripts/vllm-run.sh prefix prefix ;;
    greedy)
      # shellcheck disable=SC2086
      scripts/vllm-run.sh greedy-prefix prefix $greedy
      # shellcheck disable=SC2086
      scripts/vllm-run.sh greedy-kvbm kvbm $greedy --host-gib 2 --disk-gib 8 --disk-reads always --verify ;;
    disk) scripts/vllm-run.sh kvbm-disk kvbm --host-gib 4 --disk-gib 24 ;;
    *) echo "vllm-acceptance: unknown part $part (perf, greedy, disk)"; exit 2 ;;
  esac
done
cd "$out" || exit 1
shopt -s nullglob
results=(*.json)
[ ${#results[@]} -gt 0 ] || exit 1
perf_files=$(for n in prefix floor native kvbm-async kvbm kvbm-disk; do [ -f "$n.json" ] && echo "$n.json"; done)
# shellcheck disable=SC2086
[ -n "$perf_files" ] && /opt/torch/.venv/bin/python "$root/bench/vllm/report.py" perf $perf_files | tee report.md
[ -f greedy-prefix.json ] && [ -f greedy-kvbm.json ] &&
  /opt/torch/.venv/bin/python "$root/bench/vllm/report.py" tokens greedy-prefix.json greedy-kvbm.json | tee -a report.md
tar czf vllm.tgz ./*.json ./*.log report.md && rm -f ./*.json ./*.log
echo "vllm-acceptance: ${results[*]} -> $out/vllm.tgz"
