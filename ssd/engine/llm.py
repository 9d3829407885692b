"""The Python API: `LLM(model_path, draft_path=None, strategy=...).generate(prompts, SamplingParams)`.

    llm = LLM("ckpt/target", draft_path="ckpt/draft", strategy="ssd", k=4, budget=16)
    outs = llm.generate(["Once upon a time"], SamplingParams(temperature=0, max_new_tokens=64),
                        on_tokens=lambda seq, toks: print(llm.decode(toks), end=""))
    outs[0].text, outs[0].token_ids, outs[0].telemetry["tokens_per_s"]

`triton_kernels` (default: on with CUDA) runs the decode path with the Triton kernels of `ssd/kernels/`; rounds are
captured into CUDA graphs (`cuda_graphs`). `timing=True` in `generate` adds the draft / verify / cache-building
time split (CUDA events) to the telemetry.
Prompts are strings (needs a tokenizer in the checkpoint directory) or lists of token ids. Strategies: `ar`
(target alone), `sd` (speculative decoding), `ssd` (Saguaro). Stop tokens: the model's EOS ids (unless
`ignore_eos`) plus `SamplingParams.stop_token_ids`. Prompts beyond `max_batch_size` run in successive batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.device import choose_device, choose_dtype, torch_dtype
from common.errors import PaperclubError
from ssd.decoding.autoregressive import Autoregressive
from ssd.decoding.base import Strategy, TokenCallback
from ssd.decoding.saguaro import Saguaro
from ssd.decoding.speculative import SpeculativeDecoding
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams
from ssd.engine.sequence import Sequence
from ssd.models.loading import load_model

STRATEGIES = ("ar", "sd", "ssd")


class GenerationError(PaperclubError, ValueError):
    """A request cannot be served (empty prompt, too long for the context, text without a tokenizer...)."""


@dataclass
class RequestOutput:
    """One prompt's result; `telemetry` is the summary of the run (batch) it was generated in."""

    prompt_ids: list[int]
    token_ids: list[int]
    text: str | None
    finish_reason: str
    telemetry: dict[str, Any] = field(default_factory=dict)


class LLM:
    """Target (+ draft) models, their KV caches, a tokenizer and one decoding strategy."""

    def __init__(self, model_path: str | Path, draft_path: str | Path | None = None, strategy: str = "ar",
                 k: int = 4, device: str = "auto", dtype: str = "auto", max_len: int = 1024,
                 max_batch_size: int = 8, cuda_graphs: bool = True, triton_kernels: bool | None = None,
                 seed: int = 0, **ssd_options: Any) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if strategy != "ar" and draft_path is None:
            raise ValueError(f"strategy={strategy!r} needs draft_path")
        self.device = choose_device(device)
        self.dtype = torch_dtype(choose_dtype(dtype, self.device))
        if triton_kernels is None:
            triton_kernels = str(self.device).startswith("cuda")
        target = load_model(model_path, self.dtype, self.device, max_len)
        target.use_triton_kernels(triton_kernels)
        self.max_len = min(max_len, target.config.max_position_embeddings)
        self.config = target.config
        self.tokenizer = load_tokenizer(Path(model_path))
        self.target = ModelRunner(target, max_batch_size, self.max_len, self.device)
        self.max_batch_size = max_batch_size
        self.strategy: Strategy
        if strategy == "ar":
            self.strategy = Autoregressive(self.target, seed=seed, cuda_graphs=cuda_graphs)
            return
        draft = load_model(draft_path, self.dtype, self.device, self.max_len)
        draft.use_triton_kernels(triton_kernels)
        if draft.config.vocab_size != target.config.vocab_size:
            raise ValueError(f"draft {draft_path} has vocab {draft.config.vocab_size}, target "
                             f"{model_path} has {target.config.vocab_size}; they must share a tokenizer")
        if strategy == "sd":
            self.draft = ModelRunner(draft, max_batch_size, self.max_len, self.device)
            self.strategy = SpeculativeDecoding(self.target, self.draft, k=k, seed=seed, cuda_graphs=cuda_graphs)
        else:
            probe = Saguaro.branch_count(k, target.config.vocab_size, **ssd_options)
            self.draft = ModelRunner(draft, max_batch_size * (1 + probe), self.max_len, self.device)
            self.strategy = Saguaro(self.target, self.draft, k=k, seed=seed, cuda_graphs=cuda_graphs,
                                    **ssd_options)

    def generate(self, prompts: str | list[int] | list[str] | list[list[int]], params: SamplingParams | None = None,
                 on_tokens: TokenCallback | None = None, timing: bool = False) -> list[RequestOutput]:
        """Generate for each prompt; `on_tokens(seq, new_token_ids)` streams each round's tokens."""
        params = params or SamplingParams()
        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        if not prompts:
            raise GenerationError("no prompts given")
        encoded = [self.encode(p) for p in prompts]
        stop = set(params.stop_token_ids) | (set() if params.ignore_eos else set(self.config.eos_token_id))
        room = self.max_len - self.strategy.lookahead()
        for i, ids in enumerate(encoded):
            if len(ids) + params.max_new_tokens > room:
                raise GenerationError(
                    f"prompt {i} has {len(ids)} tokens; with max_new_tokens={params.max_new_tokens} and the "
                    f"strategy's look-ahead of {self.strategy.lookahead()} it exceeds the context max_len="
                    f"{self.max_len} (shorten the prompt or raise max_len, at most the model's "
                    f"{self.config.max_position_embeddings})")
        outputs: list[RequestOutput] = []
        for start in range(0, len(encoded), self.max_batch_size):
            seqs = [Sequence(start + i, ids, params.max_new_tokens, frozenset(stop))
                    for i, ids in enumerate(encoded[start:start + self.max_batch_size])]
            telemetry = self.strategy.generate(seqs, params, on_tokens, timing).summary()
            self.last_telemetry = telemetry
            outputs += [RequestOutput(s.prompt_ids, s.output_ids, self.decode(s.output_ids), s.finish_reason,
                                      telemetry) for s in seqs]
        return outputs

    def reseed(self, seed: int) -> None:
        """Restart the strategy's random stream (the same seed then gives the same samples)."""
        self.strategy.generator.manual_seed(seed)

    def encode(self, prompt: str | list[int]) -> list[int]:
        """Token ids of a prompt (checked: non-empty, ids inside the vocabulary)."""
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise GenerationError("this checkpoint has no tokenizer; pass prompts as lists of token ids")
            ids = self.tokenizer.encode(prompt, add_special_tokens=True)
        else:
            ids = [int(t) for t in prompt]
        if not ids:
            raise GenerationError("empty prompt: need at least one token")
        bad = [t for t in ids if not 0 <= t < self.config.vocab_size]
        if bad:
            raise GenerationError(f"token ids {bad[:5]} are outside the vocabulary [0, {self.config.vocab_size})")
        return ids

    def decode(self, token_ids: list[int]) -> str | None:
        """Text of token ids (None without a tokenizer)."""
        return None if self.tokenizer is None else self.tokenizer.decode(token_ids, skip_special_tokens=True)


def load_tokenizer(path: Path):
    """The tokenizer saved beside a checkpoint (tokenizer.json / tokenizer_config.json), or None."""
    if not ((path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
