"""vLLM's real scheduler with kvbm's connector in both roles, and a stand-in for the model runner
on CPU tensors: each step it starts the step's loads, runs a "forward pass" that waits for each
layer's load as vLLM's attention does and then checks that layer of every block loaded in the
step, writes every block the step computes with bytes derived from the block's hash (what a
forward pass would write), and checks every block an asynchronous load brought back against
those bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from itertools import count

import torch
from vllm import SamplingParams
from vllm.config import CacheConfig, DeviceConfig, KVTransferConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole
from vllm.utils.hashing import sha256
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec, KVCacheTensor
from vllm.v1.outputs import KVConnectorOutput, ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from kvbm.vllm import KvbmConnector
from kvbm.vllm.connector import engine_endpoint
from kvbm.vllm.options import ConnectorOptions
from kvbm.vllm.worker import KvbmWorkerSide

BLOCK = 16
LAYERS = 2
HEADS = 2
HEAD_SIZE = 8
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HEADS * HEAD_SIZE * 2,
    "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": LAYERS, "num_key_value_heads": HEADS,
    "head_dim": HEAD_SIZE, "vocab_size": 1000, "max_position_embeddings": 4096, "torch_dtype": "float16",
    "rms_norm_eps": 1e-5,
}
_ids = count(1)
init_none_hash(sha256)


def make_config(model_dir: str, extra: dict, max_batched: int = 256, kv_role: str = "kv_both") -> VllmConfig:
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(TINY_LLAMA, f)
    model = ModelConfig(model=model_dir, skip_tokenizer_init=True, dtype="float16", seed=0)
    return VllmConfig(
        model_config=model,
        scheduler_config=SchedulerConfig(
            max_num_seqs=16, max_num_batched_tokens=max_batched, max_model_len=4096, enable_chunked_prefill=True,
            is_encoder_decoder=False,
        ),
        cache_config=CacheConfig(block_size=BLOCK, enable_prefix_caching=True),
        kv_transfer_config=KVTransferConfig(
            kv_connector="KvbmConnector", kv_connector_module_path="kvbm.vllm", kv_role=kv_role,
            kv_connector_extra_config=extra,
        ),
        device_config=DeviceConfig("cpu"),
    )


def kv_cache_config(num_blocks: int) -> KVCacheConfig:
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=HEADS, head_size=HEAD_SIZE, dtype=torch.float16)
    layers = [f"model.layers.{i}.self_attn.attn" for i in range(LAYERS)]
    return KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[KVCacheTensor(size=spec.page_size_bytes * num_blocks, shared_by=[n]) for n in layers],
        kv_cache_groups=[KVCacheGroupSpec(layers, spec)],
    )


def block_bytes_for(key: bytes, nbytes: int, rank: int = 0) -> torch.Tensor:
    """What the forward pass writes into a rank's shard of a block with this hash."""
    seed = int.from_bytes(hashlib.blake2b(key + bytes([rank]), digest_size=8).digest(), "little") & ((1 << 62) - 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (nbytes,), dtype=torch.uint8, generator=generator)


class Engine:
    """The scheduler, the worker-side connector over CPU KV tensors, and a model runner stand-in."""

    def __init__(self, vllm_config: VllmConfig, num_gpu_blocks: int, cross_layer: bool = False, ranks: int = 1):
        """`ranks` > 1: tensor parallelism, one kvbm worker per rank in this process, each over
        its own shard of the KV tensors (the scheduler's leader waits for all of them)."""
        self.config = vllm_config
        self.kv_config = kv_cache_config(num_gpu_blocks)
        vllm_config.cache_config.num_gpu_blocks = num_gpu_blocks
        vllm_config.parallel_config.tensor_parallel_size = ranks
        if ranks == 1:
            self.workers = [KvbmConnector(vllm_config, KVConnectorRole.WORKER, self.kv_config)]
            sides = [self.workers[0]._worker]
        else:  # what KvbmConnector(WORKER) makes in each rank's process
            transfer = vllm_config.kv_transfer_config
            options = ConnectorOptions.parse(transfer.kv_connector_extra_config)
            endpoint = engine_endpoint(options, vllm_config)
            sides = [KvbmWorkerSide(options, self.kv_config, endpoint, r, ranks) for r in range(ranks)]
            self.workers = []
        spec = self.kv_config.kv_cache_groups[0].kv_cache_spec
        self.rank_layers: list[list[torch.Tensor]] = []
        for side in sides:
            if cross_layer:  # (blocks, layers, block_size, heads, 2 * head_size), as FlashAttention's NHD
                cross = torch.zeros(num_gpu_blocks, LAYERS, BLOCK, HEADS, 2 * HEAD_SIZE, dtype=torch.float16)
                side.register_cross_layers_kv_cache(cross)
                self.rank_layers.append([cross[:, i] for i in range(LAYERS)])
            else:  # per layer (blocks, heads, block_size, 2 * head_size) viewed from NHD memory
                raw = [torch.zeros(num_gpu_blocks, BLOCK, HEADS, 2 * HEAD_SIZE, dtype=torch.float16) for _ in range(LAYERS)]
                side.register_kv_caches({n: t.permute(0, 2, 1, 3) for n, t in zip(spec_names(self.kv_config), raw)})
                self.rank_layers.append(raw)
        self.sides = sides
        self.per_layer_bytes = spec.page_size_bytes
        self.scheduler = Scheduler(
            vllm_config=vllm_config, kv_cache_config=self.kv_config, log_stats=True,
            structured_output_manager=StructuredOutputManager(vllm_config), block_size=BLOCK,
        )
        self.leader = self.scheduler.connector._leader
        self.requests: dict[str, Request] = {}
        self.loaded_blocks_checked = 0  # by asynchronous loads
        self.layer_loaded_blocks = 0  # by layer-by-layer loads, each layer checked after its wait
        self.layer_mismatches: list[tuple[int, int, int]] = []  # (GPU block, layer, rank)
        self.invalid_blocks_seen: set[int] = set()

    def add(self, tokens: list[int], max_tokens: int = 1) -> Request:
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
        request = Request(
            request_id=f"r{next(_ids)}", prompt_token_ids=tokens, sampling_params=params, pooling_params=None,
            block_hasher=get_request_block_hasher(BLOCK, sha256),
        )
        self.requests[request.request_id] = request
        self.scheduler.add_request(request)
        return request

    def write_block(self, block: int, key: bytes) -> None:
        for rank, layers in enumerate(self.rank_layers):
            data = block_bytes_for(key, self.per_layer_bytes * LAYERS, rank).reshape(LAYERS, -1)
            for i, layer in enumerate(layers):  # each layer's block is one contiguous run
                layer[block].view(-1).copy_(data[i].view(torch.float16))

    def read_block(self, block: int, rank: int) -> torch.Tensor:
        return torch.cat([layer[block].reshape(-1).view(torch.uint8) for layer in self.rank_layers[rank]])

    def step(self) -> ModelRunnerOutput:
        output = self.scheduler.schedule()
        meta = output.kv_connector_metadata
        for side in self.sides:
            side.start_load_kv(meta)
        layer_keys = self._layer_load_keys(output, meta)
        mismatches = []
        for layer, name in enumerate(spec_names(self.kv_config)):  # the forward pass, as far as loads see it
            for side in self.sides:
                side.wait_for_layer_load(name)
            mismatches += self._check_layer(layer, layer_keys)
        for side in self.sides:
            side.wait_for_save()
        # Every rank reports the same (the leader saw each operation end on all of them).
        sending, recving = self.sides[0].get_finished(meta)
        invalid = set().union(*(side.failed_load_blocks(meta) for side in self.sides))
        for side in self.sides[1:]:
            assert side.get_finished(meta) == (sending, recving)
        self.invalid_blocks_seen |= invalid
        self.layer_loaded_blocks += len([b for b in layer_keys if b not in invalid])
        self.layer_mismatches += [m for m in mismatches if m[0] not in invalid]  # a failed load may hold anything
        for request_id in recving or ():
            self._check_loaded(request_id, invalid)
        sampled = []
        req_ids = []
        scheduled = [(n.req_id, n.num_computed_tokens, n.block_ids[0]) for n in output.scheduled_new_reqs]
        cached = output.scheduled_cached_reqs
        for i, rid in enumerate(cached.req_ids):
            scheduled.append((rid, cached.num_computed_tokens[i], None))
        for rid, computed, _ in scheduled:
            request = self.requests[rid]
            blocks = self.scheduler.kv_cache_manager.get_block_ids(rid)[0]
            end = computed + output.num_scheduled_tokens[rid]
            for index in range(computed // BLOCK, min(end // BLOCK, len(request.block_hashes))):
                self.write_block(blocks[index], request.block_hashes[index])
            req_ids.append(rid)
            sampled.append([7] if end >= request.num_tokens else [])
        worker_meta = self.sides[0].worker_metadata(meta)
        for side in self.sides[1:]:
            worker_meta = worker_meta.aggregate(side.worker_metadata(meta))
        runner_output = ModelRunnerOutput(
            req_ids=req_ids, req_id_to_index={r: i for i, r in enumerate(req_ids)}, sampled_token_ids=sampled,
            logprobs=None, prompt_logprobs_dict={}, pooler_output=[],
            kv_connector_output=KVConnectorOutput(
                finished_sending=sending, finished_recving=recving, invalid_block_ids=invalid,
                kv_connector_worker_meta=worker_meta,
            ),
        )
        self.scheduler.update_from_output(output, runner_output)
        return runner_output

    def _layer_load_keys(self, output, meta) -> dict[int, bytes]:
        """The block hash each GPU block loaded a layer at a time this step must hold."""
        if not meta.layer_loads:
            return {}
        key_of = {}
        for new in output.scheduled_new_reqs:
            request = self.requests[new.req_id]
            for index, block in enumerate(new.block_ids[0][: new.num_computed_tokens // BLOCK]):
                key_of[block] = request.block_hashes[index]
        loaded = {gpu for _, gpu in meta.layer_loads}
        assert loaded <= set(key_of), "a layer-by-layer load into a block of no request's computed prefix"
        return {block: key_of[block] for block in loaded}

    def _check_layer(self, layer: int, layer_keys: dict[int, bytes]) -> list[tuple[int, int, int]]:
        """Layer `layer` of every block loaded this step, once the forward pass waited for it:
        the (GPU block, layer, rank) that differ."""
        mismatches = []
        for block, key in layer_keys.items():
            for rank, layers in enumerate(self.rank_layers):
                expected = block_bytes_for(key, self.per_layer_bytes * LAYERS, rank).reshape(LAYERS, -1)[layer]
                actual = layers[layer][block].reshape(-1).view(torch.uint8)
                if not torch.equal(actual, expected):
                    mismatches.append((block, layer, rank))
        return mismatches

    def _check_loaded(self, request_id: str, invalid: set[int]) -> None:
        request = self.requests[request_id]
        blocks = self.scheduler.kv_cache_manager.get_block_ids(request_id)[0]
        computed = request.num_computed_tokens
        for index in range(computed // BLOCK):
            block = blocks[index]
            if block in invalid:
                continue
            for rank in range(len(self.rank_layers)):
                expected = block_bytes_for(request.block_hashes[index], self.per_layer_bytes * LAYERS, rank)
                actual = self.read_block(block, rank)
                assert torch.equal(actual, expected), (
                    f"request {request_id}: block {index} (GPU block {block}) differs on rank {rank}")
            self.loaded_blocks_checked += 1

    def run(self, max_steps: int = 10000) -> None:
        """Steps until every request finished and the connector has nothing in flight."""
        for _ in range(max_steps):
            if not self.scheduler.has_requests() and not self.leader.transfers.in_flight:
                return
            self.step()
        raise AssertionError(f"not idle after {max_steps} steps")

    def shutdown(self) -> None:
        self.scheduler.shutdown()
        for side in self.sides:
            side.shutdown()


def spec_names(kv_config: KVCacheConfig) -> list[str]:
    return list(kv_config.kv_cache_groups[0].layer_names)
