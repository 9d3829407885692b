"""`torchrun --nproc_per_node=<GPUs> -m ssd.multigpu_bench` - AR / SD / SSD on several GPUs: the draft on a GPU
of its own, the target tensor-parallel. `make bench-ssd-multigpu` runs it on every GPU of the machine (and exits 0
with a message when there are fewer than 2) and writes `experiments/ssd/results/multigpu_<scale>.json`.

One process per GPU; each measurement uses the first ranks it needs while the others wait:

    models           our trained pair (`model`), and per TP the largest random-weight Llama shape that fits
                     (`random_target.shapes`, largest first; timing only: its draft is its own first layer(s), the
                     deeper layers' output projections scaled down so the two agree often, `RandomTensors`)
    tensor_parallel  each TP of `tensor_parallel` the world holds; the own-GPU draft needs one rank more (rank TP)
    strategies       ar (TP target alone), sd / ssd (a draft copy on every target GPU; ssd builds its cache on a
                     second CUDA stream), sd_own / ssd_own (the draft on GPU TP: `ssd.engine.distributed`)
    batches          `strategies` at batch 1, `sweep_strategies` at each of `batch_sizes` (the random target:
                     `random_target.batch_sizes`); prompts repeated to fill a batch; best of `repeats` after a warm-up
    steps            per (model, TP, batch): the target's decode step (T=1), its verify (T=K+1) and the draft's step,
                     CUDA-graph replays timed with events; `verify_over_draft` = verify ms / draft step ms

Headline keys (our pair at the smallest TP that leaves a GPU for the draft, batch 1): `ssd_speedup_vs_sd_own_gpu`
= ssd_own / sd tokens/s (SSD with the draft on its own GPU against the SD a user would run, the draft on the
target's GPUs), `ssd_speedup_vs_ar_own_gpu` = ssd_own / ar, `ssd_own_speedup_vs_sd_own` (both drafts on their own
GPU), `ssd_own_speedup_vs_ssd_one_gpu` (what the draft's own GPU buys SSD); the same with a `random_` prefix for the
random target at the largest TP with a draft GPU. `gain_vs_latency_ratio` lists, per (model, TP, batch), the
measured verify/draft latency ratio beside SSD's gains: the data of the figure.

Every choice the ranks must agree on (what fits in memory, the time budget, a missing pair) is made on rank 0 and
broadcast, so all ranks take the same collectives. Rank 0 writes the results file after every run, so a crash or
the time budget keeps what was measured (`complete`, `skipped`, `errors`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.logging import RunLogger
from ssd.bandwidth import LLAMA_SHAPES
from ssd.config import DecodingConfig, ModelConfig, RuntimeConfig, SamplingConfig

STRATEGIES = ("ar", "sd", "ssd", "sd_own", "ssd_own")
DEFAULT_PROMPTS = ["Once upon a time", "The history of the city begins", "The quick brown fox",
                   "In the first chapter of the book,"]
# public Llama-3.1-70B architecture (config.json), beside ssd.bandwidth's 1B / 3B / 8B; `toy` for the CPU smoke run
RANDOM_SHAPES: dict[str, dict[str, Any]] = {
    **LLAMA_SHAPES,
    "70b": {**LLAMA_SHAPES["8b"], "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
            "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128},
    "toy": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": False, "vocab_size": 512,
            "max_position_embeddings": 1024, "architectures": ["LlamaForCausalLM"], "model_type": "llama"},
}
PAPER = {
    "source": "Kumar, Dao, May (ICLR 2026) / github tanishqkumar/ssd README figure",
    "setup": "Llama-3.1-70B target (TP4) + Llama-3.2-1B draft on a 5th H100 (--gpus 5), batch 1, temperature 0",
    "tokens_per_s": {"ar": 65, "sd_vllm": 110, "sd_sglang": 170, "ssd": 262},
    "ssd_vs_sd_up_to": 2.0, "ssd_vs_ar_up_to": 5.0,
}
TARGETS = {"ssd_speedup_vs_sd_own_gpu": 1.5, "ssd_speedup_vs_ar_own_gpu": 3.0}  # issue #17, our pair, batch 1


@dataclass
class RandomTargetConfig:
    """The random-weight target (timing only) and its self-draft."""

    shapes: list[str] = field(default_factory=lambda: ["70b", "8b"])  # candidates, largest first
    draft_layers: int = 1  # the draft: the target's embeddings, head and first layers
    layer_scale: float = 0.1  # o / down projections of the deeper layers scaled by this (agreement with the draft)
    std: float = 0.02
    prompt_len: int = 32
    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 16])

    def __post_init__(self) -> None:
        for shape in self.shapes:
            check_choice("random_target.shapes[]", shape, RANDOM_SHAPES)
        check_range("random_target.draft_layers", self.draft_layers, 1)
        check_range("random_target.layer_scale", self.layer_scale, 0)
        check_range("random_target.std", self.std, 0, low_open=True)
        check_range("random_target.prompt_len", self.prompt_len, 1)
        for batch in self.batch_sizes:
            check_range("random_target.batch_sizes[]", batch, 1)


@dataclass
class MultiGPUBenchConfig:
    scale: str = "gpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    decoding: DecodingConfig = field(default_factory=lambda: DecodingConfig(k=7, budget=24))
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=128, ignore_eos=True))
    runtime: RuntimeConfig = field(default_factory=lambda: RuntimeConfig(device="cuda", dtype="bfloat16",
                                                                         max_len=512))
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    pair: bool = True  # measure our trained pair (`model`)
    random_target: RandomTargetConfig | None = field(default_factory=RandomTargetConfig)  # null: no random target
    tensor_parallel: list[int] = field(default_factory=lambda: [1, 2, 4])
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # at batch 1
    sweep_strategies: list[str] = field(default_factory=lambda: ["ar", "sd", "ssd_own"])  # at every batch size
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    repeats: int = 1  # timed runs after a warm-up (the best is kept)
    step_context: int = 128  # cached positions before a timed forward (`steps`)
    step_repeats: int = 20  # replays per step timing
    memory_fraction: float = 0.85  # a model (+ caches) must fit in this fraction of one GPU's memory
    time_budget_s: float = 540.0  # no new run starts after this (measured on rank 0)
    collective_timeout_s: float = 300.0  # a rank that never joins a collective fails the run after this
    results_name: str = "multigpu"
    results_root: str | None = None  # None: the repository's experiments/
    seed: int = 0
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("cpu", "gpu"))
        for s in self.strategies + self.sweep_strategies:
            check_choice("strategies[]", s, STRATEGIES)
        for tp in self.tensor_parallel:
            check_range("tensor_parallel[]", tp, 1)
        for batch in self.batch_sizes:
            check_range("batch_sizes[]", batch, 1)
        if not self.pair and self.random_target is None:
            raise ConfigError("pair=false and random_target=null leave nothing to measure")
        check_range("repeats", self.repeats, 1)
        check_range("step_context", self.step_context, 0, self.runtime.max_len - self.decoding.k - 2)
        check_range("step_repeats", self.step_repeats, 1)
        check_range("memory_fraction", self.memory_fraction, 0, 1, low_open=True)
        check_range("time_budget_s", self.time_budget_s, 0)
        check_range("collective_timeout_s", self.collective_timeout_s, 1)
        if not self.results_name.isidentifier():
            raise ConfigError(f"results_name={self.results_name!r} must be a plain name such as 'multigpu'")


@hydra_app("ssd", "multigpu_bench", MultiGPUBenchConfig)
def main(cfg: MultiGPUBenchConfig) -> Path | None:
    return run_multigpu_bench(cfg)


def run_multigpu_bench(cfg: MultiGPUBenchConfig, log_dir: Path | None = None) -> Path | None:
    """Every rank: join the group (torchrun's env://, unless already joined), run the blocks of `block_order`;
    rank 0 logs to `log_dir` (default: the Hydra run dir) and returns the results path."""
    import torch
    import torch.distributed as dist

    from common.device import choose_device
    from common.seed import seed_everything
    from ssd.engine.distributed import init_process_group, rank_device

    device = choose_device(cfg.runtime.device)
    if device.startswith("cuda") and torch.cuda.device_count() < 2:
        print(f"ssd.multigpu_bench: {torch.cuda.device_count()} CUDA device(s); the draft-on-its-own-GPU layout "
              "needs >= 2, nothing measured")
        return None
    rank = init_process_group(device, timeout_s=cfg.collective_timeout_s)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    seed_everything(cfg.seed)
    log = None
    if rank == 0:
        log = RunLogger(cfg.logger, log_dir or run_dir(), config=as_dict(cfg), name=f"multigpu_{cfg.scale}")
    try:
        return MultiGPUBench(cfg, rank_device(device), log).run()
    finally:
        if log is not None:
            log.close()
        dist.destroy_process_group()


def block_order(tps: list[int], world: int, pair: bool, random: bool) -> list[tuple[str, int]]:
    """(model, TP) blocks: the headline blocks first (our pair at the smallest TP that leaves a GPU for the
    draft, the random target at the largest), then every other TP; TPs the world cannot hold are left out."""
    tps = sorted(tp for tp in set(tps) if tp <= world)
    own = [tp for tp in tps if tp + 1 <= world] or tps
    models = (["pair"] if pair else []) + (["random"] if random else [])
    first = [(m, own[0] if m == "pair" else own[-1]) for m in models if tps]
    return first + [(m, tp) for m in models for tp in tps if (m, tp) not in first]


def shard_bytes(hf_config: dict[str, Any], tp: int, element_size: int) -> int:
    """Bytes of one rank's weights for a TP shard of this HF config (embeddings replicated, head vocab-parallel)."""
    from ssd.models.llama import LlamaConfig

    c = LlamaConfig.from_hf(hf_config)
    q, kv = c.num_heads * c.head_dim // tp, c.num_kv_heads * c.head_dim // tp
    layer = c.hidden_size * (2 * q + 2 * kv + 3 * c.intermediate_size // tp) + 2 * c.hidden_size
    head = 0 if c.tie_word_embeddings and tp == 1 else -(-c.vocab_size // tp) * c.hidden_size
    return element_size * (c.num_layers * layer + c.vocab_size * c.hidden_size + head + c.hidden_size)


def kv_bytes(hf_config: dict[str, Any], tp: int, slots: int, max_len: int, element_size: int) -> int:
    """Bytes of a KV cache of `slots` slots of `max_len` positions for one rank's shard."""
    from ssd.models.llama import LlamaConfig

    c = LlamaConfig.from_hf(hf_config)
    return 2 * c.num_layers * (c.num_kv_heads // tp) * c.head_dim * max_len * (slots + 1) * element_size


# ------------------------------------------------------------------------------------------------- the bench


class MultiGPUBench:
    """The ranks' shared plan and rank 0's results."""

    def __init__(self, cfg: MultiGPUBenchConfig, device: str, log: Any = None) -> None:
        import torch.distributed as dist

        from common.device import describe_device
        from ssd.engine.distributed import make_layout

        self.cfg, self.device, self.log = cfg, device, log
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.cuda = device.startswith("cuda")
        self.start = time.perf_counter()
        self.layouts: dict[int, dict[str, Any]] = {}
        for tp in sorted(tp for tp in set(cfg.tensor_parallel) if tp <= self.world):  # same order on every rank
            shared = make_layout(tp, draft_own_device=False)
            own = make_layout(tp, True, tp_group=shared.tp_group) if tp + 1 <= self.world else None
            self.layouts[tp] = {"shared": shared, "own": own}
        self.runs: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.models: dict[str, Any] = {}
        self.device_name = describe_device(device)
        self.path: Path | None = None

    # ---- agreement and results (rank 0) ------------------------------------------------------------------
    def agree(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank (a broadcast of a small Python object over the world)."""
        import torch.distributed as dist

        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def out_of_time(self) -> bool:
        return self.agree(time.perf_counter() - self.start > self.cfg.time_budget_s)

    def write(self, complete: bool = False) -> Path | None:
        if self.rank != 0:
            return None
        from common.results import write_result

        metrics = {**headline(self.runs, self.steps), "complete": complete and not self.errors,
                   "world_size": self.world, "skipped": dict(self.skipped), "errors": dict(self.errors),
                   "models": self.models, "steps": self.steps,
                   "runs": [{key: value for key, value in r.items() if key != "outputs"} for r in self.runs],
                   "setup": {"k": self.cfg.decoding.k, "budget": self.cfg.decoding.budget,
                             "max_new_tokens": self.cfg.sampling.max_new_tokens,
                             "temperature": self.cfg.sampling.temperature, "dtype": self.cfg.runtime.dtype,
                             "prompts": len(self.cfg.prompts)}}
        paper = {**PAPER, "issue_17_targets": TARGETS,
                 "issue_17_targets_note": "issue #17's goals for this benchmark, not numbers from the paper"}
        root = Path(self.cfg.results_root) if self.cfg.results_root else None
        self.path = write_result("ssd", "multigpu", self.cfg.scale, metrics, paper=paper, config=as_dict(self.cfg),
                                 device=f"{self.world} x {self.device_name}", wall_s=time.perf_counter() - self.start,
                                 root=root, name=f"{self.cfg.results_name}_{self.cfg.scale}")
        return self.path

    def freeze_imports(self) -> None:
        """Leave the objects of the imported modules out of every later garbage collection (`release` collects
        after each engine; with torch's lazy imports in the heap a full collection costs ~1 s of CPU)."""
        import torch

        with torch.device("meta"):
            torch.empty(1).normal_()  # the lazy imports the first meta-device model pulls in (torch._dynamo, ...)
        gc.collect()
        gc.freeze()

    def release(self) -> None:
        """Free what the last engine or block held (its CUDA graphs sit in reference cycles)."""
        gc.collect()
        if self.cuda:
            import torch

            torch.cuda.empty_cache()

    # ---- the plan ------------------------------------------------------------------------------------------
    def run(self) -> Path | None:
        cfg = self.cfg
        self.freeze_imports()
        for tp in cfg.tensor_parallel:
            if tp > self.world:
                self.skipped[f"tp{tp}"] = f"tensor_parallel={tp} needs {tp} GPUs; the world has {self.world}"
            elif tp + 1 > self.world:
                self.skipped[f"tp{tp}.own"] = (f"the own-GPU draft at tensor_parallel={tp} needs {tp + 1} GPUs; the "
                                               f"world has {self.world}: sd_own / ssd_own not measured")
        for model, tp in block_order(cfg.tensor_parallel, self.world, cfg.pair, cfg.random_target is not None):
            if self.out_of_time():
                self.skipped[f"{model}.tp{tp}"] = f"time budget of {cfg.time_budget_s:g} s spent"
                continue
            try:
                self.block(model, tp)
            except Exception as err:  # recorded; the other blocks still run (a one-rank failure ends in the timeout)
                traceback.print_exc()
                self.errors[f"{model}.tp{tp}"] = f"{type(err).__name__}: {err}"
            finally:
                self.release()
            self.write()
        path = self.write(complete=True)
        if self.rank == 0:
            head = headline(self.runs, self.steps)
            if self.log is not None:
                self.log.summary({key: value for key, value in head.items() if isinstance(value, int | float)})
            print_targets(head)
        return path

    def block(self, model: str, tp: int) -> None:
        """Load `model` for TP `tp` on the ranks that hold it, time its steps, run every strategy and batch."""
        cfg = self.cfg
        layouts = self.layouts[tp]
        spec = self.agree(self.model_spec(model, tp) if self.rank == 0 else None)
        if "skip" in spec:
            self.skipped[f"{model}.tp{tp}"] = spec["skip"]
            return
        self.models.setdefault(spec["label"], spec["about"])
        target, draft = self.load(spec, layouts)
        prompts = self.agree(self.prompts(spec) if self.rank == 0 else None)
        batches = cfg.batch_sizes if model == "pair" else cfg.random_target.batch_sizes
        batches = sorted(set(batches) | ({1} if cfg.strategies else set()))
        self.time_steps(spec["label"], tp, layouts["shared"], target, draft, batches)
        for strategy in dict.fromkeys(cfg.strategies + cfg.sweep_strategies):
            layout = layouts["own" if strategy.endswith("_own") else "shared"]
            sizes = [b for b in batches if strategy in cfg.sweep_strategies or (b == 1 and strategy in cfg.strategies)]
            if layout is None or not sizes:
                continue
            self.run_strategy(spec, tp, layout, strategy, target, draft, prompts, sizes)
            self.release()
            self.write()
        del target, draft

    def model_spec(self, model: str, tp: int) -> dict[str, Any]:
        """Rank 0: what to load for this block (paths or a random shape), or {"skip": why}."""
        cfg = self.cfg
        if model == "pair":
            from ssd.config import resolve_model_paths

            try:
                target, draft = resolve_model_paths(cfg.model)
            except ConfigError as err:
                return {"skip": f"our pair is missing: {err} (make ssd-models SCALE={cfg.scale})"}
            hf = json.loads((target / "config.json").read_text())
            about = {"target": str(target), "draft": str(draft)}
            return {"kind": "pair", "label": "pair", "target": str(target), "draft": str(draft), "hf": hf,
                    "about": about, **self.fit(hf, None, tp)}
        rt = cfg.random_target
        reasons = []
        for shape in rt.shapes:
            hf = dict(RANDOM_SHAPES[shape])
            draft_hf = {**hf, "num_hidden_layers": rt.draft_layers}
            fit = self.fit(hf, draft_hf, tp)
            if "skip" not in fit:
                about = {"shape": shape, "timing_only": True, "draft": f"the target's first {rt.draft_layers} "
                         f"layer(s) + embeddings + head; deeper o/down projections x {rt.layer_scale:g}"}
                return {"kind": "random", "label": f"random_{shape}", "shape": shape, "hf": hf, "draft_hf": draft_hf,
                        "about": about}
            reasons.append(f"{shape}: {fit['skip']}")
        return {"skip": f"no random shape fits at tensor_parallel={tp}: {'; '.join(reasons)}"}

    def fit(self, hf: dict[str, Any], draft_hf: dict[str, Any] | None, tp: int) -> dict[str, Any]:
        """{} if this target shard + a draft copy + their caches fit one GPU, else {"skip": why}."""
        import torch

        from ssd.engine.tensor_parallel import TensorParallelError, shard_config
        from ssd.models.llama import LlamaConfig

        try:
            shard_config(LlamaConfig.from_hf(hf), tp)
        except TensorParallelError as err:
            return {"skip": str(err)}
        if not self.cuda:
            return {}
        element, cfg = 2, self.cfg
        rows = max([1, *cfg.batch_sizes, *(cfg.random_target.batch_sizes if cfg.random_target else [])])
        need = shard_bytes(hf, tp, element) + kv_bytes(hf, tp, rows, cfg.runtime.max_len, element)
        if draft_hf is not None:
            branches = rows * (1 + cfg.decoding.budget)
            need += shard_bytes(draft_hf, 1, element) + kv_bytes(draft_hf, 1, branches, cfg.runtime.max_len, element)
            need += branches * (cfg.decoding.k + 1) * hf["vocab_size"] * element  # the speculation cache's logits
        need += 4 * 2**30  # activations, graphs, workspace
        have = cfg.memory_fraction * torch.cuda.get_device_properties(self.device).total_memory
        if need > have:
            return {"skip": f"needs ~{need / 2**30:.0f} GiB per GPU, {cfg.memory_fraction:g} of one GPU is "
                            f"{have / 2**30:.0f} GiB"}
        return {}

    def load(self, spec: dict[str, Any], layouts: dict[str, Any]) -> tuple[Any, Any]:
        """This rank's (target shard, draft) for the block: target ranks both, the own-GPU draft rank the draft."""
        from common.device import choose_dtype, torch_dtype
        from ssd.engine.tensor_parallel import RandomTensors, load_tensor_parallel, random_model
        from ssd.models.loading import load_model

        cfg, shared, own = self.cfg, layouts["shared"], layouts["own"]
        dtype = torch_dtype(choose_dtype(cfg.runtime.dtype, self.device))
        triton = cfg.runtime.triton_kernels if cfg.runtime.triton_kernels is not None else self.cuda
        is_target = shared.role == "target"
        is_draft = is_target or (own is not None and own.role == "draft")
        max_len = cfg.runtime.max_len
        target = draft = None
        if spec["kind"] == "pair":
            if is_target:
                target = load_tensor_parallel(spec["target"], shared.tp, dtype, self.device, max_len)
            if is_draft:
                draft = load_model(spec["draft"], dtype, self.device, max_len)
        else:
            rt = cfg.random_target
            source = RandomTensors(seed=cfg.seed, std=rt.std, scaled_from=rt.draft_layers, layer_scale=rt.layer_scale)
            if is_target:
                target = random_model(spec["hf"], shared.tp, dtype, self.device, max_len, source)
            if is_draft:
                draft = random_model(spec["draft_hf"], None, dtype, self.device, max_len, source)
        for m in (target, draft):
            if m is not None:
                m.use_triton_kernels(triton)
        return target, draft

    def prompts(self, spec: dict[str, Any]) -> list[list[int]]:
        """Token ids of the prompts (our pair: its tokenizer; random target: seeded random ids)."""
        import torch

        if spec["kind"] == "pair":
            from ssd.engine.llm import load_tokenizer

            tokenizer = load_tokenizer(Path(spec["target"]))
            if tokenizer is None:
                raise ConfigError(f"{spec['target']} has no tokenizer to encode the prompts with")
            return [tokenizer.encode(p, add_special_tokens=True) for p in self.cfg.prompts]
        g = torch.Generator().manual_seed(self.cfg.seed)
        n = self.cfg.random_target.prompt_len
        return torch.randint(0, spec["hf"]["vocab_size"], (len(self.cfg.prompts), n), generator=g).tolist()

    # ---- measurements --------------------------------------------------------------------------------------
    def time_steps(self, label: str, tp: int, layout: Any, target: Any, draft: Any, batches: list[int]) -> None:
        """Target ranks: the target's decode and verify steps; rank 0 also the draft's step (every batch)."""
        import torch

        from ssd.engine.model_runner import ModelRunner

        if self.out_of_time() or layout.role != "target":
            return
        cfg, k = self.cfg, self.cfg.decoding.k
        with torch.inference_mode():
            for batch in batches:
                runner = ModelRunner(target, batch, cfg.runtime.max_len, self.device)
                row = {"model": label, "tensor_parallel": tp, "batch": batch,
                       "target_step_ms": self.forward_ms(runner, batch, 1),
                       "target_verify_ms": self.forward_ms(runner, batch, k + 1)}
                del runner
                if layout.host:
                    runner = ModelRunner(draft, batch, cfg.runtime.max_len, self.device)
                    row["draft_step_ms"] = self.forward_ms(runner, batch, 1)
                    row["verify_over_draft"] = row["target_verify_ms"] / row["draft_step_ms"]
                    row["step_over_draft"] = row["target_step_ms"] / row["draft_step_ms"]
                    self.steps.append(row)
                    del runner

    def forward_ms(self, runner: Any, batch: int, t: int) -> float:
        """Milliseconds per forward of `t` tokens for `batch` rows at position `step_context` (a CUDA graph
        replayed `step_repeats` times, timed with events; wall clock on the CPU)."""
        import torch

        from ssd.engine.round_graph import RoundGraph

        cfg = self.cfg
        device = runner.device
        tokens = torch.zeros((batch, t), dtype=torch.long, device=device)
        positions = (cfg.step_context + torch.arange(t, device=device)).expand(batch, t).contiguous()
        slots = torch.arange(batch, device=device)
        graph = RoundGraph(lambda: runner.forward(tokens, positions, slots), device, capture=True)
        graph()  # warm-up (and capture on CUDA)
        if not self.cuda:
            start = time.perf_counter()
            for _ in range(cfg.step_repeats):
                graph()
            return (time.perf_counter() - start) * 1e3 / cfg.step_repeats
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(cfg.step_repeats):
            graph()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / cfg.step_repeats

    def run_strategy(self, spec: dict[str, Any], tp: int, layout: Any, strategy: str, target: Any, draft: Any,
                     prompts: list[list[int]], batches: list[int]) -> None:
        """One engine for `strategy` on this layout; a warm-up and `repeats` timed runs per batch size."""
        from ssd.engine.distributed import DistributedEngine
        from ssd.engine.sampler import SamplingParams

        cfg = self.cfg
        base = strategy.removesuffix("_own")
        role = layout.role
        model_target = target if role == "target" else None
        model_draft = draft if (role == "draft" or (role == "target" and layout.draft_rank is None)) else None
        options = dataclasses.replace(cfg.decoding, strategy="ssd").ssd_options() if base == "ssd" else {}
        engine = DistributedEngine(layout, base, model_target, model_draft, [], k=cfg.decoding.k,
                                   max_batch_size=max(batches), max_len=cfg.runtime.max_len, seed=cfg.seed,
                                   cuda_graphs=cfg.runtime.cuda_graphs, **options)
        params = SamplingParams(cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens,
                                ignore_eos=True)
        for batch in batches:
            if self.out_of_time():
                self.skipped[f"{spec['label']}.tp{tp}.{strategy}.b{batch}"] = "time budget spent"
                continue
            rows = [prompts[i % len(prompts)] for i in range(batch)]
            engine.generate(rows, params)  # warm-up: graphs captured, Triton compiled
            best = None
            for _ in range(cfg.repeats):
                got = engine.generate(rows, params)
                if got is not None and (best is None or got[1]["tokens_per_s"] > best[1]["tokens_per_s"]):
                    best = got
            if self.rank == 0:
                self.runs.append(self.run_row(spec["label"], tp, strategy, batch, *best))
                if self.log is not None:
                    row, name = self.runs[-1], f"{spec['label']}/tp{tp}/{strategy}/b{batch}"
                    self.log.log({f"{name}/{key}": row[key] for key in ("tokens_per_s", "mean_accepted",
                                                                         "cache_hit_rate") if key in row},
                                 step=len(self.runs))
        del engine

    def run_row(self, label: str, tp: int, strategy: str, batch: int, seqs: list, tel: dict) -> dict[str, Any]:
        outputs = [s.output_ids for s in seqs]
        own = strategy.endswith("_own")
        row = {"model": label, "tensor_parallel": tp, "gpus": tp + int(own), "strategy": strategy, "batch": batch,
               "tokens_per_s": tel["tokens_per_s"], "rounds": tel["rounds"], "outputs": outputs}
        for key in ("mean_accepted", "cache_hit_rate"):
            if key in tel:
                row[key] = tel[key]
        ar = next((r for r in self.runs if (r["model"], r["tensor_parallel"], r["strategy"], r["batch"])
                   == (label, tp, "ar", batch)), None)
        if ar is not None and self.cfg.sampling.temperature == 0 and strategy != "ar":
            row["fraction_identical_to_ar"] = sum(a == b for a, b in zip(outputs, ar["outputs"], strict=True)) / batch
        return row


# ------------------------------------------------------------------------------------------------- headline


def headline(runs: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The flat headline keys (module docstring) from the runs and step timings measured so far."""
    def tok(model: str, tp: int, strategy: str, batch: int = 1) -> float | None:
        return next((r["tokens_per_s"] for r in runs if (r["model"], r["tensor_parallel"], r["strategy"], r["batch"])
                     == (model, tp, strategy, batch)), None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    out: dict[str, Any] = {}
    for prefix, models in (("", ["pair"]), ("random_", sorted({r["model"] for r in runs} - {"pair"}))):
        own_tps = sorted({r["tensor_parallel"] for r in runs if r["model"] in models and r["strategy"] == "ssd_own"
                          and r["batch"] == 1})
        if not own_tps:
            continue
        tp = own_tps[0] if prefix == "" else own_tps[-1]
        model = next(r["model"] for r in runs if r["model"] in models and r["tensor_parallel"] == tp
                     and r["strategy"] == "ssd_own")
        values = {s: tok(model, tp, s) for s in STRATEGIES}
        out[f"{prefix}headline_model"] = model
        out[f"{prefix}headline_tensor_parallel"] = tp
        out.update({f"{prefix}{s}_tok_s": v for s, v in values.items() if v is not None})
        out[f"{prefix}ssd_speedup_vs_sd_own_gpu"] = ratio(values["ssd_own"], values["sd"])
        out[f"{prefix}ssd_speedup_vs_ar_own_gpu"] = ratio(values["ssd_own"], values["ar"])
        out[f"{prefix}ssd_own_speedup_vs_sd_own"] = ratio(values["ssd_own"], values["sd_own"])
        out[f"{prefix}ssd_own_speedup_vs_ssd_one_gpu"] = ratio(values["ssd_own"], values["ssd"])
        ssd_row = next(r for r in runs if (r["model"], r["tensor_parallel"], r["strategy"], r["batch"])
                       == (model, tp, "ssd_own", 1))
        for key in ("cache_hit_rate", "mean_accepted"):
            if key in ssd_row:
                out[f"{prefix}{key}_ssd_own"] = ssd_row[key]
        step = next((s for s in steps if (s["model"], s["tensor_parallel"], s["batch"]) == (model, tp, 1)), None)
        if step is not None:
            out[f"{prefix}verify_over_draft"] = step["verify_over_draft"]
    out["gain_vs_latency_ratio"] = [
        {"model": s["model"], "tensor_parallel": s["tensor_parallel"], "batch": s["batch"],
         "verify_over_draft": s["verify_over_draft"],
         "ssd_own_vs_sd": ratio(tok(s["model"], s["tensor_parallel"], "ssd_own", s["batch"]),
                                tok(s["model"], s["tensor_parallel"], "sd", s["batch"])),
         "ssd_own_vs_ar": ratio(tok(s["model"], s["tensor_parallel"], "ssd_own", s["batch"]),
                                tok(s["model"], s["tensor_parallel"], "ar", s["batch"]))}
        for s in steps if tok(s["model"], s["tensor_parallel"], "ssd_own", s["batch"]) is not None]
    return {key: value for key, value in out.items() if value is not None}


def print_targets(head: dict[str, Any], file=sys.stdout) -> None:
    """The headline keys against issue #17's targets (a table on stdout)."""
    print("ssd multi-GPU benchmark (issue #17 targets: our pair, batch 1, the draft on its own GPU)", file=file)
    for key, target in TARGETS.items():
        value = head.get(key)
        status = "missing" if value is None else ("met" if value >= target else "not met")
        shown = "-" if value is None else f"{value:.2f}"
        print(f"  {key:<32} {shown:>8}  target >= {target:g}  {status}", file=file)


if __name__ == "__main__":
    main()
