"""kvbm as vLLM's KV connector: pinned host memory and disk below vLLM's GPU cache.

Load it with ``--kv-transfer-config '{"kv_connector": "KvbmConnector",
"kv_connector_module_path": "kvbm.vllm", "kv_role": "kv_both", "kv_connector_extra_config":
{"host_bytes": ..., "disk_dir": ..., "disk_bytes": ...}}'`` (see the README, "Using kvbm with vLLM").
"""

from .connector import KvbmConnector

__all__ = ["KvbmConnector"]
