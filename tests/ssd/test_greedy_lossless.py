"""Greedy (temperature 0): AR, SD and SSD emit exactly the target-alone tokens (HF `generate`), in fp32."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from ssd.engine.llm import LLM
from ssd.engine.sampler import SamplingParams

PROMPTS = [[5], [17, 42, 7, 99, 3], [200, 1, 1, 1], list(range(30, 60))]
NEW = 24


def _hf_greedy(path, prompts, new=NEW):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        outs = []
        for prompt in prompts:
            ids = torch.tensor([prompt])
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                     min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0)
            outs.append(out[0, len(prompt):].tolist())
    finally:
        torch.set_num_threads(threads)
    return outs


@pytest.fixture(scope="module")
def llama_reference(llama_pair):
    return _hf_greedy(llama_pair[0], PROMPTS)


CASES = [
    ("ar", {}, 4),
    ("sd", {"k": 1}, 4),
    ("sd", {"k": 4}, 2),
    ("ssd", {"k": 3, "budget": 10}, 4),
    ("ssd", {"k": 5, "budget": 20, "saguaro_c": 0.5}, 1),
    ("ssd", {"k": 2, "budget": 3}, 4),  # one guess per outcome: many forced cache misses (neural backup)
    ("ssd", {"k": 3, "budget": 4, "backup": "random"}, 4),  # misses served by random-token proposals
    ("ssd", {"k": 2, "fanout": [2, 1, 3], "backup": "auto", "neural_backup_max_batch": 1}, 3),
]


@pytest.mark.parametrize(("strategy", "options", "batch"), CASES)
def test_greedy_matches_target_alone(llama_pair, llama_reference, strategy, options, batch):
    target, draft = llama_pair
    llm = LLM(target, draft, strategy=strategy, device="cpu", max_len=128, max_batch_size=batch, **options)
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=NEW, ignore_eos=True))
    assert [o.token_ids for o in outs] == llama_reference
    tel = outs[0].telemetry  # the first batch (full size)
    if strategy == "ssd":
        assert tel["cache_lookups"] > 0
        if options.get("budget") == 3 or options.get("backup") == "random":
            assert tel["cache_hit_rate"] < 1.0  # the miss path really ran
        if options.get("backup") == "random":
            assert tel["backup_random"] > 0 and tel["backup_neural"] == 0
        if options.get("neural_backup_max_batch") == 1:
            assert tel["backup_random"] > 0  # batch 3 > 1: the switch chose the random backup


def test_qwen3_greedy_sd_and_ssd(qwen3_pair):
    target, draft = qwen3_pair
    prompts = PROMPTS[:2]
    reference = _hf_greedy(target, prompts, new=16)
    for strategy in ("sd", "ssd"):
        llm = LLM(target, draft, strategy=strategy, k=3, device="cpu", max_len=96, max_batch_size=2, budget=8)
        outs = llm.generate(prompts, SamplingParams(temperature=0, max_new_tokens=16, ignore_eos=True))
        assert [o.token_ids for o in outs] == reference
