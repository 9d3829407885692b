"""Tensor-parallel target, alone and with the draft on a rank of its own: CPU processes over gloo give what one
device gives (fp32: logits within 1e-5, identical greedy tokens for AR / SD / SSD, identical sampled tokens for the
same seed), every target rank emits the same tokens, and the shards are slices of the checkpoint's tensors."""

import json

import pytest
import torch
import torch.multiprocessing as mp

from ssd.engine.llm import LLM
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams
from ssd.engine.tensor_parallel import (
    TensorParallelError,
    TensorParallelGroup,
    load_tensor_parallel,
    shard_config,
    take_shard,
    tensor_shard,
)
from ssd.models.llama import LlamaConfig
from ssd.models.loading import load_model
from ssd.models.tiny import make_tiny_pair

PROMPTS = [[5, 6, 7], [100, 3]]
GREEDY = {"temperature": 0.0, "max_new_tokens": 16, "ignore_eos": True}
SAMPLED = {"temperature": 1.0, "max_new_tokens": 16, "ignore_eos": True}
LOGIT_TOKENS = [[5, 9, 17, 33, 2], [100, 3, 7, 7, 250]]
MAX_LEN = 96
SSD = {"budget": 8}
# modules the rank processes need, imported once by the fork server (torch._dynamo: the first meta-device model
# imports it, ~4 s per process on a shared 2-core CPU)
PRELOAD = ["torch", "torch._dynamo", "safetensors.torch", "ssd.engine.distributed"]


def run_ranks(fn, args, nprocs):
    """fn(rank, *args) in `nprocs` fresh processes forked from one server that has imported PRELOAD (like mp.spawn,
    without every process importing torch again)."""
    mp.set_forkserver_preload(PRELOAD)
    mp.start_processes(fn, args=args, nprocs=nprocs, join=True, start_method="forkserver")


def _init(rank, world, init_file):
    torch.set_num_threads(1)
    from ssd.engine.distributed import init_process_group

    init_process_group("cpu", init_method=f"file://{init_file}", rank=rank, world_size=world)


def _logits(model):
    runner = ModelRunner(model, 2, MAX_LEN, "cpu")
    tokens = torch.tensor(LOGIT_TOKENS)
    positions = torch.arange(tokens.shape[1]).expand_as(tokens)
    with torch.inference_mode():
        return runner.forward(tokens, positions, torch.tensor([0, 1])), runner.cache.k[0].shape[1]


def _tensor_parallel_worker(rank, world, init_file, out_dir, llama, qwen3):
    """Every rank: its shard's logits, then AR / SD / SSD (greedy) and SSD (sampled) with the draft shared."""
    _init(rank, world, init_file)
    import torch.distributed as dist

    from ssd.engine.distributed import DistributedEngine, make_layout

    layout = make_layout(world, draft_own_device=False)
    result = {}
    for name, (target, _) in (("llama", llama), ("qwen3", qwen3)):
        logits, result[f"kv_heads_{name}"] = _logits(load_tensor_parallel(target, layout.tp, max_len=MAX_LEN))
        if rank == 0:
            torch.save(logits, f"{out_dir}/logits_{name}.pt")
    target = load_tensor_parallel(llama[0], layout.tp, max_len=MAX_LEN)
    draft = load_model(llama[1], max_len=MAX_LEN)
    for key, strategy, params in (("ar", "ar", GREEDY), ("sd", "sd", GREEDY), ("ssd", "ssd", GREEDY),
                                  ("ssd_sampled", "ssd", SAMPLED)):
        engine = DistributedEngine(layout, strategy, target, draft, [], k=3, max_batch_size=2, max_len=MAX_LEN,
                                   **(SSD if strategy == "ssd" else {}))
        seqs, telemetry = engine.generate(PROMPTS, SamplingParams(**params))
        result[key] = [s.output_ids for s in seqs]
        result[f"{key}_generated"] = telemetry["generated_tokens"]
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def _single_device(target, draft, strategy, params, seed=0):
    llm = LLM(target, draft if strategy != "ar" else None, strategy=strategy, k=3, device="cpu", max_len=MAX_LEN,
              max_batch_size=2, seed=seed, **(SSD if strategy == "ssd" else {}))
    return [o.token_ids for o in llm.generate(PROMPTS, SamplingParams(**params))]


def test_two_rank_target_matches_one_device(llama_pair, qwen3_pair, tmp_path):
    run_ranks(_tensor_parallel_worker, (2, str(tmp_path / "pg"), str(tmp_path), tuple(map(str, llama_pair)),
                                        tuple(map(str, qwen3_pair))), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]  # lock step: both ranks emitted the same tokens
    got = ranks[0]
    for name, (target, _) in (("llama", llama_pair), ("qwen3", qwen3_pair)):
        reference, kv_heads = _logits(load_model(target, max_len=MAX_LEN))
        sharded = torch.load(tmp_path / f"logits_{name}.pt")
        assert sharded.shape == reference.shape
        assert (sharded - reference).abs().max().item() < 1e-5
        assert got[f"kv_heads_{name}"] * 2 == kv_heads  # each rank caches Hkv / 2 heads
    target, draft = llama_pair
    ar = _single_device(target, draft, "ar", GREEDY)
    assert got["ar"] == ar and got["sd"] == ar and got["ssd"] == ar
    assert got["ssd_sampled"] == _single_device(target, draft, "ssd", SAMPLED)
    assert got["ar_generated"] == got["ssd_sampled_generated"] == 2 * SAMPLED["max_new_tokens"]


@pytest.fixture(scope="module")
def mha_pair(tmp_path_factory):
    """(target, draft) with 4 query and 4 KV heads (TP4 divides them) and a vocabulary of 322 (TP4 pads it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return make_tiny_pair(tmp_path_factory.mktemp("mha"), vocab_size=322, num_heads=4, num_kv_heads=4,
                              target_layers=3, with_tokenizer=False, seed=4)
    finally:
        torch.set_num_threads(before)


def _own_draft_worker(rank, world, init_file, out_dir, target, draft):
    """TP (world - 1) target ranks: the shard's logits; then + the draft rank: SSD and SD greedy, SSD sampled."""
    _init(rank, world, init_file)
    import torch.distributed as dist

    from ssd.engine.distributed import generate_distributed, make_layout

    result = {}
    layout = make_layout(world - 1, draft_own_device=False)  # the last rank idles
    if layout.role == "target":
        logits, result["kv_heads"] = _logits(load_tensor_parallel(target, layout.tp, max_len=MAX_LEN))
        if rank == 0:
            torch.save(logits, f"{out_dir}/logits.pt")
    for key, strategy, params in (("ssd", "ssd", GREEDY), ("sd", "sd", GREEDY), ("ssd_sampled", "ssd", SAMPLED)):
        got = generate_distributed(target, draft, PROMPTS, SamplingParams(**params), strategy=strategy, k=3,
                                   max_len=MAX_LEN, **(SSD if strategy == "ssd" else {}))
        if got is not None:
            seqs, telemetry = got
            result[key] = [s.output_ids for s in seqs]
            result[f"{key}_lookups"] = telemetry.get("cache_lookups", 0)
    if result:
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


def test_four_rank_target_and_draft_rank_match_one_device(mha_pair, tmp_path):
    target, draft = map(str, mha_pair)
    world = 5  # the paper's --gpus 5: TP4 target + the draft on a device of its own
    run_ranks(_own_draft_worker, (world, str(tmp_path / "pg"), str(tmp_path), target, draft), nprocs=world)
    assert not (tmp_path / f"rank{world - 1}.json").exists()  # the draft rank returns nothing
    reference, kv_heads = _logits(load_model(target, max_len=MAX_LEN))
    sharded = torch.load(tmp_path / "logits.pt")  # vocabulary 322 over 4 ranks: the last shard is padded
    assert sharded.shape == reference.shape and (sharded - reference).abs().max().item() < 1e-5
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world - 1)]
    assert all(r["kv_heads"] * 4 == kv_heads for r in ranks)
    outputs = [{key: value for key, value in r.items() if not key.endswith("_lookups")} for r in ranks]
    assert all(o == outputs[0] for o in outputs)  # every target rank emitted the same tokens, sampled ones too
    ar = _single_device(target, None, "ar", GREEDY)
    assert ranks[0]["ssd"] == ar and ranks[0]["sd"] == ar
    assert ranks[0]["ssd_lookups"] > 0 and ranks[0]["ssd_sampled_lookups"] > 0  # the host got the draft's counts
    assert all(len(row) == SAMPLED["max_new_tokens"] for row in ranks[0]["ssd_sampled"])


# ----------------------------------------------------------------------------------------- in one process


def _config(**overrides):
    base = {"vocab_size": 10, "hidden_size": 8, "intermediate_size": 12, "num_layers": 1, "num_heads": 4,
            "num_kv_heads": 2, "head_dim": 2}
    return LlamaConfig(**{**base, **overrides})


@pytest.mark.parametrize("size", [2, 4])
def test_shards_reassemble_every_tensor(size):
    config = _config(num_kv_heads=4) if size == 4 else _config()
    names = {"model.layers.0.self_attn.q_proj.weight": (8, 8), "model.layers.0.self_attn.k_proj.bias": (2 * config.num_kv_heads,),
             "model.layers.0.self_attn.o_proj.weight": (8, 8), "model.layers.0.self_attn.o_proj.bias": (8,),
             "model.layers.0.mlp.up_proj.weight": (12, 8), "model.layers.0.mlp.down_proj.weight": (8, 12),
             "lm_head.weight": (10, 8), "model.embed_tokens.weight": (10, 8), "model.norm.weight": (8,)}
    for name, shape in names.items():
        full = torch.randn(shape)
        shards = [tensor_shard(name, config, rank, size) for rank in range(size)]
        if shards[0] is None:  # replicated
            assert all(s is None for s in shards) and name.endswith(("embed_tokens.weight", "norm.weight"))
            continue
        parts = [take_shard(full, s) for s in shards]
        assert len({p.shape for p in parts}) == 1  # every rank's piece has the same shape (padded)
        if name.endswith("o_proj.bias"):  # added once: whole on rank 0, zeros elsewhere
            assert torch.equal(parts[0], full) and all(not p.any() for p in parts[1:])
            continue
        joined = torch.cat(parts, shards[0].dim).narrow(shards[0].dim, 0, full.shape[shards[0].dim])
        assert torch.equal(joined, full), name
    local = shard_config(config, size)
    assert (local.num_heads, local.num_kv_heads, local.intermediate_size) == (4 // size, config.num_kv_heads // size,
                                                                              12 // size)


def test_vocab_padding_and_kv_head_sharding():
    config = _config()
    head = [tensor_shard("lm_head.weight", config, rank, 4) for rank in range(4)]  # V = 10 over 4: 3, 3, 3, 1 + 2 pad
    assert [(s.start, s.stop, s.size) for s in head] == [(0, 3, 3), (3, 6, 3), (6, 9, 3), (9, 10, 3)]
    k = [tensor_shard("model.layers.0.self_attn.k_proj.weight", config, rank, 2) for rank in range(2)]
    assert [(s.start, s.stop) for s in k] == [(0, 2), (2, 4)]  # one KV head (head_dim 2) per rank


def test_undividable_heads_raise_one_clear_error(llama_pair):
    with pytest.raises(TensorParallelError, match="num_key_value_heads=2 is not divisible by tensor_parallel=4"):
        load_tensor_parallel(llama_pair[0], TensorParallelGroup(None, 0, 4))
    with pytest.raises(TensorParallelError, match="intermediate_size=12 is not divisible by tensor_parallel=8"):
        shard_config(_config(num_heads=8, num_kv_heads=8), 8)


# ------------------------------------------------------------------------------------------- NCCL (GPUs only)


GPU_PROMPTS = [[5, 6, 7], [9] * 10, [1]]


def _nccl_worker(rank, world, init_file, out_dir, target, draft, device="cuda"):
    """TP (world - 1) on GPUs 0.., the draft on the last GPU: CUDA graphs, Triton kernels, fp32, three rows (the
    batch is padded to four on both sides); every strategy twice (the second replays the captured graphs)."""
    from ssd.engine.distributed import DistributedEngine, init_process_group, load_rank_models, make_layout

    init_process_group(device, init_method=f"file://{init_file}", rank=rank, world_size=world)
    import torch.distributed as dist

    if device == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"
    shared = make_layout(world - 1, draft_own_device=False)
    own = make_layout(world - 1, True, tp_group=shared.tp_group)
    result = {}
    for name, layout, strategies in (("shared", shared, ("ar", "sd", "ssd")), ("own", own, ("sd", "ssd"))):
        target_model, draft_model = load_rank_models(layout, target, draft, torch.float32, device, MAX_LEN,
                                                     triton_kernels=device != "cpu")
        for strategy in strategies:
            engine = DistributedEngine(layout, strategy, target_model, draft_model, [], k=3, max_batch_size=3,
                                       max_len=MAX_LEN, **(SSD if strategy == "ssd" else {}))
            for repeat in range(2):
                got = engine.generate(GPU_PROMPTS, SamplingParams(**GREEDY))
                if got is not None:
                    result[f"{name}_{strategy}_{repeat}"] = [s.output_ids for s in got[0]]
    if result:
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 3, reason="needs 3 CUDA devices (a TP2 target + the draft's GPU)")
def test_nccl_layouts_keep_greedy_identity(llama_pair, tmp_path):
    target, draft = map(str, llama_pair)
    world = 3
    run_ranks(_nccl_worker, (world, str(tmp_path / "pg"), str(tmp_path), target, draft), nprocs=world)
    reference = [o.token_ids for o in LLM(target, strategy="ar", device="cuda", dtype="float32", max_len=MAX_LEN,
                                          max_batch_size=3, cuda_graphs=False, triton_kernels=False).generate(
        GPU_PROMPTS, SamplingParams(**GREEDY))]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world - 1)]
    assert ranks[0] == ranks[1]
    assert len(ranks[0]) == 10 and all(outputs == reference for outputs in ranks[0].values())
