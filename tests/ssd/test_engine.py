"""Engine pieces: sampler, sequence stop rules, KV-cache slots, the LLM API's errors, streaming and telemetry."""

import pytest
import torch

from ssd.engine.kv_cache import SlotPool
from ssd.engine.llm import LLM, GenerationError
from ssd.engine.sampler import SamplingParams, processed_probs, sample_from
from ssd.engine.sequence import Sequence
from ssd.engine.telemetry import Telemetry


def test_processed_probs_temperature_top_p_and_greedy():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    p = processed_probs(logits, 0.5, 1.0)
    assert torch.allclose(p, torch.softmax(logits / 0.5, -1))
    full = torch.softmax(logits, -1)[0]
    nucleus = processed_probs(logits, 1.0, 0.8)[0]  # smallest prefix with mass >= 0.8: tokens 0 and 1
    assert full[:2].sum() >= 0.8 > full[0]
    assert torch.allclose(nucleus, torch.cat([full[:2] / full[:2].sum(), torch.zeros(2)]))
    assert processed_probs(logits, 0.0).tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_sample_from_is_inverse_cdf():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3]).expand(5, -1)
    u = torch.tensor([0.0, 0.0999, 0.1001, 0.6999, 0.7001])
    assert sample_from(probs, u).tolist() == [0, 0, 2, 2, 3]


def test_sequence_stops_at_stop_token_and_length():
    seq = Sequence(0, [1, 2], max_new_tokens=5, stop_token_ids=frozenset({9}))
    assert seq.append([3, 9, 4]) == [3, 9] and seq.finish_reason == "stop"
    seq = Sequence(1, [1], max_new_tokens=3)
    assert seq.append([4, 5]) == [4, 5] and not seq.finished
    assert seq.append([6, 7, 8]) == [6] and seq.finish_reason == "length" and seq.output_ids == [4, 5, 6]


def test_slot_pool_exhaustion_is_clear():
    pool = SlotPool(2)
    a, b = pool.take(), pool.take()
    assert {a, b} == {0, 1}
    with pytest.raises(RuntimeError, match="all 2 KV-cache slots are in use"):
        pool.take()
    pool.give(a)
    assert pool.take() == a


def test_telemetry_acceptance_per_position():
    tel = Telemetry(strategy="sd", k=3)
    tel.record_acceptance([0, 3, 1, 2])
    # position 0 tested 4 times, accepted 3; position 1 tested 3 times (n>=1), accepted 2; position 2: 2 and 1
    assert tel.reached == [4, 3, 2] and tel.accepted_at == [3, 2, 1]
    tel.loop_s = 1.0
    assert tel.summary()["mean_accepted"] == 1.5


def test_llm_bad_inputs_are_clear_errors(llama_pair, tmp_path):
    target, draft = llama_pair
    llm = LLM(target, draft, strategy="sd", k=3, device="cpu", max_len=64)
    with pytest.raises(GenerationError, match="empty prompt"):
        llm.generate([[]], SamplingParams(max_new_tokens=4))
    with pytest.raises(GenerationError, match="empty prompt"):
        llm.generate("", SamplingParams(max_new_tokens=4))
    with pytest.raises(GenerationError, match="exceeds the context max_len=64"):
        llm.generate([list(range(60))], SamplingParams(max_new_tokens=4))
    with pytest.raises(GenerationError, match="outside the vocabulary"):
        llm.generate([[1, 10_000]], SamplingParams(max_new_tokens=4))
    with pytest.raises(ValueError, match="needs draft_path"):
        LLM(target, strategy="ssd", device="cpu")
    from ssd.models.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="does not exist"):
        LLM(tmp_path / "missing", device="cpu")


def test_streaming_text_stop_tokens_and_batches(llama_pair):
    target, draft = llama_pair
    llm = LLM(target, draft, strategy="ssd", k=3, budget=8, device="cpu", max_len=128, max_batch_size=2)
    streamed: dict[int, list[int]] = {}
    prompts = ["Once upon a time", "def add(a, b):", "The quick brown fox"]  # 3 prompts, batches of 2
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_new_tokens=12, ignore_eos=True),
                        on_tokens=lambda seq, toks: streamed.setdefault(seq.seq_id, []).extend(toks))
    assert [streamed[i] for i in range(3)] == [o.token_ids for o in outs]
    assert all(len(o.token_ids) == 12 and o.finish_reason == "length" for o in outs)
    assert outs[0].text == llm.tokenizer.decode(outs[0].token_ids, skip_special_tokens=True)
    assert outs[0].prompt_ids == llm.tokenizer.encode(prompts[0])
    stop = outs[0].token_ids[4]
    again = llm.generate(prompts[:1], SamplingParams(temperature=0, max_new_tokens=12, stop_token_ids=[stop]))
    cut = outs[0].token_ids.index(stop) + 1
    assert again[0].token_ids == outs[0].token_ids[:cut] and again[0].finish_reason == "stop"
    tel = outs[0].telemetry
    assert tel["generated_tokens"] == 24 and 0 <= tel["cache_hit_rate"] <= 1
    assert set(tel["time_s"]) == {"draft", "verify", "overhead", "total"}
    assert len(tel["acceptance_per_position"]) == 3


def test_same_seed_same_samples(llama_pair):
    target, draft = llama_pair
    params = SamplingParams(temperature=1.0, max_new_tokens=10, ignore_eos=True)
    runs = [LLM(target, draft, strategy="ssd", k=2, budget=6, device="cpu", max_len=64, seed=5, saguaro_c=0.5)
            .generate([[1, 2, 3]], params)[0].token_ids for _ in range(2)]
    assert runs[0] == runs[1]
