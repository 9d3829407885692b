"""Tiny random target/draft pairs in Hugging Face format, made with `transformers`, for CPU runs and tests.

The draft is the target's first `draft_layers` layers with the target's embeddings, final norm and LM head
(a layer-truncated self-draft), and the layers the draft lacks write into the residual stream with their output
projections scaled by `deep_layer_scale`, so the pair agrees about as often as a trained pair (greedy agreement
~0.5-0.8) and speculation has something to accept. `init_std` scales the random weights: larger gives peakier next-token
distributions. A small byte-level BPE tokenizer (trained here on a fixed paragraph) is saved beside each model
unless `with_tokenizer=False` (token-id-only models, e.g. a vocabulary of 12 for distribution tests).
"""

from __future__ import annotations

from pathlib import Path

TEXT = (
    "Speculative decoding lets a small draft model propose several tokens that a large target model checks in one "
    "forward pass. Speculative speculative decoding goes further: while the target verifies, the draft guesses "
    "the outcome of the verification and prepares the next speculation in advance, so drafting costs no time when "
    "the guess is right. The quick brown fox jumps over the lazy dog. def add(a, b): return a + b. "
    "Once upon a time there was a little model that wanted to generate text very quickly and exactly."
)


def make_tiny_pair(out_dir: str | Path, arch: str = "llama", vocab_size: int = 320, hidden_size: int = 64,
                   intermediate_size: int = 128, target_layers: int = 4, draft_layers: int = 1, num_heads: int = 4,
                   num_kv_heads: int = 2, max_position_embeddings: int = 512, init_std: float = 0.3,
                   tie_word_embeddings: bool = False, with_tokenizer: bool = True, seed: int = 0,
                   dtype: str = "float32", rope_scaling: dict | None = None,
                   deep_layer_scale: float = 0.15) -> tuple[Path, Path]:
    """Write `<out_dir>/target` and `<out_dir>/draft` (config.json, model.safetensors[, tokenizer]); return both."""
    import torch

    out_dir = Path(out_dir)
    tokenizer = _tokenizer(vocab_size) if with_tokenizer else None
    if tokenizer is not None:
        vocab_size = max(vocab_size, len(tokenizer))
    eos = tokenizer.eos_token_id if tokenizer is not None else None
    torch.manual_seed(seed)
    config = _hf_config(arch, vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                        num_hidden_layers=target_layers, num_attention_heads=num_heads,
                        num_key_value_heads=num_kv_heads, max_position_embeddings=max_position_embeddings,
                        initializer_range=init_std, tie_word_embeddings=tie_word_embeddings, eos_token_id=eos,
                        bos_token_id=None, rope_scaling=rope_scaling)
    target = _causal_lm(arch, config)
    with torch.no_grad():  # RMSNorm gains and biases are 1/0 at init; randomise the gains a little too
        for name, param in target.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.8, 1.2)
            elif name.startswith("model.layers.") and int(name.split(".")[2]) >= draft_layers \
                    and name.endswith(("o_proj.weight", "down_proj.weight")):
                param.mul_(deep_layer_scale)
    paths = []
    for name, layers in (("target", target_layers), ("draft", draft_layers)):
        path = out_dir / name
        model = target if name == "target" else _truncate(arch, target, layers)
        model.to(getattr(torch, dtype)).save_pretrained(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1]


def _hf_config(arch: str, rope_scaling: dict | None = None, **kwargs):
    from transformers import LlamaConfig, Qwen3Config

    if arch == "llama":
        if rope_scaling:
            kwargs["rope_scaling"] = rope_scaling
        return LlamaConfig(**kwargs)
    if arch == "qwen3":
        kwargs["head_dim"] = kwargs["hidden_size"] // kwargs["num_attention_heads"]
        return Qwen3Config(**kwargs)
    raise ValueError(f"arch={arch!r}; expected 'llama' or 'qwen3'")


def _causal_lm(arch: str, config):
    from transformers import LlamaForCausalLM, Qwen3ForCausalLM

    return (LlamaForCausalLM if arch == "llama" else Qwen3ForCausalLM)(config).eval()


def _truncate(arch: str, target, layers: int):
    import copy

    config = copy.deepcopy(target.config)
    config.num_hidden_layers = layers
    if hasattr(config, "layer_types") and config.layer_types is not None:
        config.layer_types = config.layer_types[:layers]
    draft = _causal_lm(arch, config)
    state = {k: v for k, v in target.state_dict().items()
             if not k.startswith("model.layers.") or int(k.split(".")[2]) < layers}
    draft.load_state_dict(state, strict=True)
    return draft


def _tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")
