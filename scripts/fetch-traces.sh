#!/usr/bin/env bash
# Fetches the public request traces `kvbm replay --trace` reads into DIR (default traces/, not
# committed: they are megabytes each). Mooncake's FAST'25 traces (kvcache-ai/Mooncake,
# FAST25-release/traces: conversation, synthetic, toolagent; 512 tokens a block) always; Alibaba's
# Qwen-Bailian trace (alibaba-edu/qwen-bailian-usagetraces-anon; 16 tokens a block) when
# QWEN_BAILIAN_URL names its raw JSONL file. Then, for example:
#   kvbm replay --trace traces/conversation_trace.jsonl --sequential --policy all --host-blocks 1828 --disk-blocks 0
set -euo pipefail
dir=${1:-traces}
mkdir -p "$dir"
base=https://raw.githubusercontent.com/kvcache-ai/Mooncake/main/FAST25-release/traces
for name in conversation_trace synthetic_trace toolagent_trace; do
  if [ -s "$dir/$name.jsonl" ]; then echo "$dir/$name.jsonl: already here"; continue; fi
  curl -fL --retry 3 -o "$dir/$name.jsonl.part" "$base/$name.jsonl" && mv "$dir/$name.jsonl.part" "$dir/$name.jsonl"
  echo "$dir/$name.jsonl: $(wc -l < "$dir/$name.jsonl") requests"
done
if [ -n "${QWEN_BAILIAN_URL:-}" ]; then
  curl -fL --retry 3 -o "$dir/qwen_bailian.jsonl.part" "$QWEN_BAILIAN_URL" && mv "$dir/qwen_bailian.jsonl.part" "$dir/qwen_bailian.jsonl"
  echo "$dir/qwen_bailian.jsonl: $(wc -l < "$dir/qwen_bailian.jsonl") requests"
fi
