"""Our Llama/Qwen3 forward equals transformers' on checkpoints saved to disk; loading errors are clear."""

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from ssd.engine.kv_cache import KVCache
from ssd.models.loading import ModelLoadError, load_model


def _logits(model, ids, max_len=128):
    cache = KVCache.for_model(model.config, ids.shape[0], max_len, torch.float32, "cpu")
    pos = torch.arange(ids.shape[1])[None].expand_as(ids)
    return model(ids, pos, cache, torch.arange(ids.shape[0]))


@pytest.mark.parametrize("pair", ["llama_pair", "qwen3_pair"])
def test_forward_matches_transformers(pair, request):
    target, _ = request.getfixturevalue(pair)
    ours = load_model(target, max_len=128)
    ref = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 90), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(ids).logits
    got = _logits(ours, ids)
    assert (got - expected).abs().max().item() < 1e-4
    # incremental decoding through the KV cache gives the same logits as the full forward
    cache = KVCache.for_model(ours.config, 3, 128, torch.float32, "cpu")
    steps = [ours(ids[:, i:i + 1], torch.full((2, 1), i), cache, torch.tensor([2, 0])) for i in range(90)]
    assert (torch.cat(steps, 1) - expected).abs().max().item() < 1e-4


def test_architecture_features_are_read(llama_pair, qwen3_pair):
    llama = load_model(llama_pair[0], max_len=64)
    qwen = load_model(qwen3_pair[0], max_len=64)
    assert llama.config.rope_scaling["rope_type"] == "llama3" and not llama.config.qk_norm
    assert llama.config.num_kv_heads == 2 and llama.config.num_heads == 4
    assert qwen.config.qk_norm and qwen.config.tie_word_embeddings
    assert qwen.lm_head.weight.data_ptr() == qwen.model.embed_tokens.weight.data_ptr()


def test_sharded_and_bf16_checkpoints_load(llama_pair, tmp_path):
    target, _ = llama_pair
    ref = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ids = torch.randint(0, ref.config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(1))
    whole = _logits(load_model(target, max_len=128), ids)
    sharded = _logits(load_model(tmp_path / "sharded", max_len=128), ids)
    assert torch.equal(whole, sharded)
    ref.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    from_bf16 = load_model(tmp_path / "bf16", dtype=torch.float32, max_len=128)
    assert from_bf16.model.embed_tokens.weight.dtype == torch.float32
    assert (_logits(from_bf16, ids) - whole).abs().max().item() < 0.5  # bf16 rounding of the weights only


def test_unknown_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path / "empty")


def test_corrupt_safetensors_is_a_clear_error(llama_pair, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(llama_pair[0], bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="corrupt or not a safetensors file"):
        load_model(bad)


def test_unsupported_architecture_and_missing_tensor(llama_pair, tmp_path):
    other = tmp_path / "gpt2"
    shutil.copytree(llama_pair[0], other)
    config = json.loads((other / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="unsupported architecture.*GPT2LMHeadModel"):
        load_model(other)
    deeper = tmp_path / "deeper"
    shutil.copytree(llama_pair[0], deeper)
    config = json.loads((deeper / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (deeper / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="missing .* tensor.*model.layers.4"):
        load_model(deeper)
