"""`python -m ssd.generate model=tiny prompt="Once upon a time" decoding.strategy=ssd` - stream one generation.

Tokens are printed as they are accepted (one round at a time for SD/SSD); the run's telemetry (tokens/s,
acceptance per position, cache hit rate, time split) is printed at the end and logged to the run directory.
`model=path model.path=DIR model.draft_path=DIR` runs any local Hugging Face Llama/Qwen3 checkpoints.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from common.config import ConfigError, LoggerConfig, as_dict, check_range, hydra_app, run_dir
from common.logging import RunLogger
from common.seed import seed_everything
from ssd.config import DecodingConfig, ModelConfig, RuntimeConfig, SamplingConfig, resolve_model_paths


@dataclass
class GenerateConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    prompt: str = "Once upon a time"
    prompt_ids: list[int] | None = None
    seed: int = 0
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_range("seed", self.seed, 0)
        if self.prompt_ids is not None:
            if not self.prompt_ids:
                raise ConfigError("prompt_ids=[] is empty; expected at least one token id, or null to use prompt")
            for token in self.prompt_ids:
                check_range("prompt_ids[]", token, 0)


def run(cfg: GenerateConfig, out=sys.stdout) -> dict:
    """Generate for `cfg.prompt` (or `cfg.prompt_ids`), streaming to `out`; return {"text", "token_ids", telemetry}."""
    import torch

    from ssd.engine.llm import LLM
    from ssd.engine.sampler import SamplingParams

    seed_everything(cfg.seed)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    target, draft = resolve_model_paths(cfg.model)
    if cfg.runtime.layout == "distributed":
        return run_distributed(cfg, target, draft, out)
    strategy = cfg.decoding.strategy
    llm = LLM(target, draft if strategy != "ar" else None, strategy=strategy, k=cfg.decoding.k,
              device=cfg.runtime.device, dtype=cfg.runtime.dtype, max_len=cfg.runtime.max_len,
              max_batch_size=cfg.runtime.max_batch_size, cuda_graphs=cfg.runtime.cuda_graphs,
              triton_kernels=cfg.runtime.triton_kernels, seed=cfg.seed,
              **cfg.decoding.ssd_options())
    params = SamplingParams(cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens,
                            ignore_eos=cfg.sampling.ignore_eos)
    streamed: list[int] = []

    def stream(_seq, tokens: list[int]) -> None:
        if llm.tokenizer is None:
            out.write(" ".join(map(str, tokens)) + " ")
        else:  # decode the whole output each time so multi-token characters print correctly
            before = llm.decode(streamed)
            streamed.extend(tokens)
            out.write(llm.decode(streamed)[len(before):])
        out.flush()

    prompt = cfg.prompt_ids if cfg.prompt_ids is not None else cfg.prompt
    result = llm.generate([prompt], params, on_tokens=stream)[0]
    out.write("\n")
    return {"text": result.text, "token_ids": result.token_ids, "finish_reason": result.finish_reason,
            "telemetry": result.telemetry}


def run_distributed(cfg: GenerateConfig, target, draft, out=sys.stdout) -> dict:
    """SSD with the draft in a second process (rank 1); rank 0 streams and returns the result."""
    from common.device import choose_device, choose_dtype, torch_dtype
    from ssd.engine.distributed import generate_distributed, init_process_group
    from ssd.engine.llm import load_tokenizer
    from ssd.engine.sampler import SamplingParams

    if cfg.decoding.strategy != "ssd" or draft is None:
        raise ValueError("runtime.layout=distributed runs SSD: set decoding.strategy=ssd and a draft model")
    device = choose_device(cfg.runtime.device)
    rank = init_process_group(device)
    tokenizer = load_tokenizer(target)
    prompt = cfg.prompt_ids if cfg.prompt_ids is not None else tokenizer.encode(cfg.prompt)
    params = SamplingParams(cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens,
                            ignore_eos=cfg.sampling.ignore_eos)

    def stream(_seq, tokens: list[int]) -> None:
        out.write(tokenizer.decode(tokens) if tokenizer is not None else " ".join(map(str, tokens)) + " ")
        out.flush()

    got = generate_distributed(target, draft, [prompt], params, k=cfg.decoding.k, device=device,
                               dtype=torch_dtype(choose_dtype(cfg.runtime.dtype, device)),
                               max_len=cfg.runtime.max_len, seed=cfg.seed, on_tokens=stream,
                               triton_kernels=cfg.runtime.triton_kernels, cuda_graphs=cfg.runtime.cuda_graphs,
                               **cfg.decoding.ssd_options())
    if rank != 0:
        return {}
    seqs, telemetry = got
    out.write("\n")
    ids = seqs[0].output_ids
    return {"text": tokenizer.decode(ids) if tokenizer is not None else None, "token_ids": ids,
            "finish_reason": seqs[0].finish_reason, "telemetry": telemetry}


@hydra_app("ssd", "generate", GenerateConfig)
def main(cfg: GenerateConfig) -> dict:
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name="generate") as log:
        result = run(cfg)
        if not result:  # the draft process of the distributed layout
            return result
        tel = result["telemetry"]
        log.summary({k: v for k, v in tel.items() if isinstance(v, int | float)})
        print(json.dumps(tel, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
