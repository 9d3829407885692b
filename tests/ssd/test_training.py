"""Training our target/draft pair on the tiny corpus: loss goes down, exports reload in transformers exactly,
training resumes bit-identically from a checkpoint, configs compose and bad values fail clearly."""

import json
import shutil

import numpy as np
import pytest
import torch

from common.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from common.config import ConfigError, compose
from ssd.training.hf_checkpoint import build_llama, load_hf
from ssd.training.objectives import distillation_loss, greedy_agreement
from ssd.training.train_pair import TrainPairConfig, train_pair
from ssd.training.windows import eval_windows, train_batch

TINY = ["logger=jsonl", "logger.progress=false", "seq_len=32", "context_length=64", "eval_tokens=640",
        "eval_every=0", "eval_batch_size=20", "cpu_threads=1",
        "target.hidden_size=32", "target.num_layers=2", "target.num_heads=2", "target.num_kv_heads=1",
        "target.intermediate_size=64", "target.steps=40", "target.batch_size=8", "target.lr=1e-2",
        "target.warmup_steps=5",
        "draft.hidden_size=16", "draft.num_layers=1", "draft.num_heads=2", "draft.num_kv_heads=1",
        "draft.intermediate_size=32", "draft.steps=30", "draft.batch_size=8", "draft.lr=1e-2",
        "draft.warmup_steps=5", "draft.distill_weight=0.5"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from common.data.text import build_tiny_corpus

    path = tmp_path_factory.mktemp("corpus")
    build_tiny_corpus(path)
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    cfg = compose("ssd", "train_pair", TrainPairConfig,
                  [*TINY, f"corpus_dir={corpus}", f"out_dir={root / 'out'}", f"results_root={root}",
                   "checkpoint_every=20", "keep_last=3"])
    metrics = train_pair(cfg, root / "run")
    return cfg, metrics, root


def test_training_lowers_validation_loss_and_writes_results(trained):
    cfg, metrics, root = trained
    assert metrics["target_val_loss"] < metrics["target_val_loss_init"] - 1.5  # from ~ln(512) = 6.2
    assert metrics["draft_val_loss"] < metrics["draft_val_loss_init"] - 1.0
    assert metrics["target_steps"] == 40 and metrics["draft_steps"] == 30
    assert 0.05 < metrics["greedy_agreement"] <= 1.0  # chance would be ~1/512
    record = json.loads((root / "experiments/ssd/results/pair_cpu.json").read_text())
    assert record["metrics"]["target_val_loss"] == pytest.approx(metrics["target_val_loss"])
    assert record["scale"] == "cpu" and record["paper"]


def test_exports_reload_in_transformers_with_identical_logits(trained, corpus):
    cfg, metrics, _ = trained
    from transformers import AutoTokenizer

    for name in ("target", "draft"):
        model_dir = f"{cfg.out_dir}/{name}"
        reloaded = load_hf(model_dir)
        spec = getattr(cfg, name)
        _, state = load_checkpoint(latest_checkpoint(f"{cfg.out_dir}/checkpoints/{name}-" +
                                                     _fingerprint_of(cfg.out_dir, name)))
        fresh = build_llama(reloaded.config.vocab_size, spec.hidden_size, spec.num_layers, spec.num_heads,
                            spec.num_kv_heads, spec.intermediate_size, cfg.context_length, cfg.rope_theta,
                            spec.tie_word_embeddings, 0, None)
        fresh.load_state_dict(state["model"])
        x = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(reloaded(input_ids=x).logits, fresh.eval()(input_ids=x).logits)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        assert tokenizer.eos_token == "<|endoftext|>" and reloaded.config.eos_token_id == tokenizer.eos_token_id
    # the reloaded target reproduces the reported validation loss
    from common.data.text import load_split

    inputs, targets = eval_windows(load_split(corpus, "val"), cfg.seq_len, cfg.eval_tokens)
    with torch.no_grad():
        logits = load_hf(f"{cfg.out_dir}/target")(input_ids=torch.from_numpy(inputs)).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1))
    assert loss.item() == pytest.approx(metrics["target_val_loss"], abs=1e-4)


def test_resume_from_checkpoint_is_bit_identical(trained):
    cfg, metrics, root = trained
    target_dir = f"{cfg.out_dir}/target"
    ckpt_dir = f"{cfg.out_dir}/checkpoints/target-{_fingerprint_of(cfg.out_dir, 'target')}"
    _, final = load_checkpoint(latest_checkpoint(ckpt_dir))
    steps = [int(p.stem.split("_")[1]) for p in list_checkpoints(ckpt_dir)]
    assert steps == [20, 40]
    # lose the export and the final checkpoint: the next run resumes at step 20 and must land on the same weights
    shutil.rmtree(target_dir)
    latest_checkpoint(ckpt_dir).unlink()
    again = train_pair(cfg, root / "run2")
    _, resumed = load_checkpoint(latest_checkpoint(ckpt_dir))
    flat_a, flat_b = final["model"], resumed["model"]
    assert flat_a.keys() == flat_b.keys()
    assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a)
    assert again["target_val_loss"] == pytest.approx(metrics["target_val_loss"], abs=1e-6)
    # the draft's export (same fingerprint) was reused, not retrained
    assert again["draft_train_s"] == metrics["draft_train_s"]


def _fingerprint_of(out_dir, name):
    return json.loads((__import__("pathlib").Path(out_dir) / name / "training.json").read_text())["fingerprint"]


@pytest.mark.parametrize("pair", ["cpu", "gpu"], ids=["pair_cpu", "pair_gpu"])
def test_both_scales_compose(pair):
    cfg = compose("ssd", "train_pair", TrainPairConfig, [f"pair={pair}", "logger=jsonl"])
    assert cfg.scale == pair
    if pair == "gpu":
        params = _llama_params(cfg.target, 16384)
        draft = _llama_params(cfg.draft, 16384)
        assert 500e6 <= params <= 1.5e9 and 20e6 <= draft <= 60e6  # issue #12: a pair worth speculating with
        assert cfg.max_train_tokens * 2 <= 32 * 2**20  # uint16: the first shard alone, which a device call carries


def _llama_params(spec, vocab):
    head = spec.hidden_size // spec.num_heads
    attn = 2 * spec.hidden_size**2 + 2 * spec.hidden_size * head * spec.num_kv_heads
    layer = attn + 3 * spec.hidden_size * spec.intermediate_size + 2 * spec.hidden_size
    return spec.num_layers * layer + vocab * spec.hidden_size * (1 if spec.tie_word_embeddings else 2)


@pytest.mark.parametrize("override, key", [("target.num_heads=3", "target.hidden_size"),
                                           ("draft.distill_weight=1.5", "draft.distill_weight"),
                                           ("context_length=16", "context_length"),
                                           ("scale=tpu", "scale")])
def test_bad_config_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        compose("ssd", "train_pair", TrainPairConfig, ["logger=jsonl", override])


def test_missing_corpus_is_a_clear_error(tmp_path):
    cfg = compose("ssd", "train_pair", TrainPairConfig,
                  ["logger=jsonl", "corpus=english", f"corpus_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match="corpus_dir=.*nowhere.*make corpus"):
        train_pair(cfg, tmp_path / "run")


def test_windows_are_shifted_and_deterministic():
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = train_batch(tokens, 4, 16, seed=1, step=7)
    x2, _ = train_batch(tokens, 4, 16, seed=1, step=7)
    assert x.shape == (4, 16) and np.array_equal(y, x + 1) and np.array_equal(x, x2)
    assert not np.array_equal(x, train_batch(tokens, 4, 16, seed=1, step=8)[0])
    ex, ey = eval_windows(tokens, 16, 100)
    assert ex.shape == (6, 16) and np.array_equal(ex.ravel(), np.arange(96)) and np.array_equal(ey, ex + 1)


def test_distillation_loss_is_the_kl_divergence():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    p, q = t.double().softmax(-1), s.double().softmax(-1)
    expected = (p * (p.log() - q.log())).sum(-1).mean()
    assert distillation_loss(s, t).item() == pytest.approx(expected.item(), rel=1e-5)
    assert distillation_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert greedy_agreement(t, t).item() == 1.0


@pytest.mark.gpu
def test_tiny_pair_trains_on_gpu_with_bf16_autocast(corpus, tmp_path):
    cfg = compose("ssd", "train_pair", TrainPairConfig,
                  [*TINY, f"corpus_dir={corpus}", f"out_dir={tmp_path / 'out'}", f"results_root={tmp_path}",
                   "device=cuda", "dtype=bfloat16", "export_dtype=bfloat16"])
    metrics = train_pair(cfg, tmp_path / "run")
    assert metrics["target_val_loss"] < metrics["target_val_loss_init"] - 1.5
    reloaded = load_hf(tmp_path / "out" / "target", device="cuda")
    assert reloaded.config.vocab_size == metrics["vocab_size"]
