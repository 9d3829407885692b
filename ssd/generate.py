"""`python -m ssd.generate model=tiny prompt="Once upon a time" decoding.strategy=ssd` - stream one generation.

Tokens are printed as they are accepted (one round at a time for SD/SSD); the run's telemetry (tokens/s,
acceptance per position, cache hit rate, time split) is printed at the end and logged to the run directory.
`model=path model.path=DIR model.draft_path=DIR` runs any local Hugging Face Llama/Qwen3 checkpoints.

Several GPUs (`runtime.layout=distributed`, one process per GPU, `ssd.engine.distributed`):

    torchrun --nproc_per_node=2 -m ssd.generate runtime.layout=distributed          # target GPU 0, draft GPU 1
    torchrun --nproc_per_node=5 -m ssd.generate runtime.layout=distributed parallel.tensor_parallel=4  # TP4 + draft
    torchrun --nproc_per_node=4 -m ssd.generate runtime.layout=distributed parallel.draft=shared \
        decoding.strategy=sd                                          # TP4 target, a draft copy on every rank
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.logging import RunLogger
from common.seed import seed_everything
from ssd.config import DecodingConfig, ModelConfig, RuntimeConfig, SamplingConfig, resolve_model_paths


@dataclass
class ParallelConfig:
    """How `runtime.layout=distributed` shares the work among torchrun's processes (one per GPU)."""

    tensor_parallel: int = 0  # target ranks (column/row-parallel shards); 0: every process but the draft's
    draft: str = "own"  # own: the draft on the last rank, a GPU of its own (sd/ssd); shared: a copy on every target rank

    def __post_init__(self) -> None:
        check_range("parallel.tensor_parallel", self.tensor_parallel, 0)
        check_choice("parallel.draft", self.draft, ("own", "shared"))


@dataclass
class GenerateConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
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
    if cfg.runtime.layout == "distributed":
        return run_distributed(cfg, out)
    target, draft = resolve_model_paths(cfg.model)
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


def run_distributed(cfg: GenerateConfig, out=sys.stdout) -> dict:
    """One generation over torchrun's processes (`cfg.parallel`); rank 0 streams and returns the result, the other
    ranks return {}. Rank 0 makes the tiny pair if it is missing while the others wait."""
    import torch.distributed as dist

    from common.device import choose_device, choose_dtype, torch_dtype
    from ssd.engine.distributed import generate_distributed, init_process_group
    from ssd.engine.llm import load_tokenizer
    from ssd.engine.sampler import SamplingParams

    strategy, own = cfg.decoding.strategy, cfg.parallel.draft == "own"
    if own and strategy == "ar":
        raise ConfigError("parallel.draft=own puts the draft on a rank of its own; decoding.strategy=ar has no "
                          "draft: set parallel.draft=shared (or decoding.strategy=sd/ssd)")
    device = choose_device(cfg.runtime.device)
    rank = init_process_group(device)
    if rank == 0:
        resolve_model_paths(cfg.model)
    dist.barrier()
    target, draft = resolve_model_paths(cfg.model)
    if strategy != "ar" and draft is None:
        raise ConfigError(f"decoding.strategy={strategy} needs a draft model (model.draft_path)")
    tokenizer = load_tokenizer(target)
    if cfg.prompt_ids is None and tokenizer is None:
        raise ConfigError(f"{target} has no tokenizer: pass prompt_ids=[...] instead of prompt")
    prompt = cfg.prompt_ids if cfg.prompt_ids is not None else tokenizer.encode(cfg.prompt)
    params = SamplingParams(cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens,
                            ignore_eos=cfg.sampling.ignore_eos)
    streamed: list[int] = []

    def stream(_seq, tokens: list[int]) -> None:
        if tokenizer is None:
            out.write(" ".join(map(str, tokens)) + " ")
        else:  # decode the whole output each time so multi-token characters print correctly
            before = tokenizer.decode(streamed)
            streamed.extend(tokens)
            out.write(tokenizer.decode(streamed)[len(before):])
        out.flush()

    got = generate_distributed(target, draft, [prompt], params, strategy=strategy,
                               tensor_parallel=cfg.parallel.tensor_parallel or None, draft_own_device=own,
                               k=cfg.decoding.k, device=device,
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
