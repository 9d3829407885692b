"""The configuration of `python -m ssd.bench` (its sections are `ssd.bench_sections.SECTIONS`, named here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError, LoggerConfig, check_choice, check_range
from ssd.config import DecodingConfig, ModelConfig, RuntimeConfig, SamplingConfig

# the keys of ssd.bench_sections.SECTIONS, in their order (a test holds the two equal)
SECTION_NAMES = ("pair", "speedup", "hf_assisted", "bound", "hf_peers", "temperature", "batch",
                 "cache_hit_vs_fanout", "saguaro_c", "backup", "speculation_k")

DEFAULT_PROMPTS = ["Once upon a time", "def add(a, b):", "The quick brown fox", "Speculative decoding lets"]
LEGACY_SECTIONS = ["speedup", "cache_hit_vs_fanout", "saguaro_c", "batch"]
SHAPES = ("1b", "3b", "8b")  # the keys of ssd.bandwidth.LLAMA_SHAPES


@dataclass
class BoundConfig:
    """`bound` and `hf_peers`: random-weight Llama shapes at batch 1 (`ssd.bandwidth`)."""

    shapes: list[str] = field(default_factory=lambda: ["1b", "3b"])
    prompt_len: int = 32
    new_tokens: int = 256
    hf_shape: str = "1b"
    hf_new_tokens: int = 128  # HF generate runs at ~15 tok/s: fewer tokens keep the section short
    hf_compiled: bool = True  # also HF generate with a static cache (torch.compile of the decoding step)

    def __post_init__(self) -> None:
        for shape in self.shapes:
            check_choice("bound.shapes[]", shape, SHAPES)
        check_choice("bound.hf_shape", self.hf_shape, SHAPES)
        check_range("bound.prompt_len", self.prompt_len, 1)
        check_range("bound.new_tokens", self.new_tokens, 1)
        check_range("bound.hf_new_tokens", self.hf_new_tokens, 1)


@dataclass
class HFAssistedConfig:
    """`hf_assisted`: transformers assisted generation with our pair."""

    repeats: int = 1
    plain_generate: bool = False  # also HF `generate` with our target alone (slow on a GPU: ~15-30 tok/s)

    def __post_init__(self) -> None:
        check_range("hf_assisted.repeats", self.repeats, 1)


@dataclass
class BenchConfig:
    scale: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=64, ignore_eos=True))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    strategies: list[str] = field(default_factory=lambda: ["ar", "sd", "ssd"])
    sections: list[str] = field(default_factory=lambda: list(LEGACY_SECTIONS))
    results_name: str | None = None  # one file <results_name>[_<tag>]_<scale>.json for all sections; None: one per section
    repeats: int = 2  # headline runs: best of `repeats` after a warm-up
    sweep_repeats: int = 0  # sweeps: repeats after a warm-up (0: `repeats`)
    timed_runs: bool = True  # `speedup`: one extra run per strategy with timing=True (round time split)
    temperatures: list[float] = field(default_factory=lambda: [0.0, 1.0])
    sweep_budgets: list[int] = field(default_factory=list)
    sweep_temperatures: list[float] = field(default_factory=lambda: [0.0, 1.0])
    sweep_uniform_fanout: bool = False
    sweep_saguaro_c: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    backup_batch_sizes: list[int] = field(default_factory=list)
    sweep_k: list[int] = field(default_factory=list)  # `speculation_k`: speculation lengths K (budget >= K + 1)
    step_time_context: int = 128  # cached positions before the timed forward (`pair`)
    step_time_repeats: int = 50  # forwards per timing (`pair`)
    pair_results: str | None = None  # results stem of the pair's training run (pair_gpu), read from results_root
    bound: BoundConfig = field(default_factory=BoundConfig)
    hf_assisted: HFAssistedConfig = field(default_factory=HFAssistedConfig)
    seed: int = 0
    tag: str = ""  # results file suffix, e.g. "trained" -> speedup_trained_cpu.json
    results_root: str | None = None  # None: the repository's experiments/ (tests pass a temporary folder)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("cpu", "gpu", "tiny"))
        for s in self.strategies:
            check_choice("strategies[]", s, ("ar", "sd", "ssd"))
        for s in self.sections:
            check_choice("sections[]", s, SECTION_NAMES)
        if len(set(self.sections)) != len(self.sections):
            raise ConfigError(f"sections={self.sections!r} lists a section twice")
        if self.results_name is not None and not self.results_name.isidentifier():
            raise ConfigError(f"results_name={self.results_name!r} must be a plain name such as 'bench'")
        if self.results_name is None and not set(self.sections) <= set(LEGACY_SECTIONS):
            raise ConfigError(f"sections={self.sections!r}: without results_name only {LEGACY_SECTIONS} have files "
                              "of their own (set results_name=bench to write every section into one file)")
        check_range("repeats", self.repeats, 1)
        check_range("sweep_repeats", self.sweep_repeats, 0)
        for t in self.temperatures + self.sweep_temperatures:
            check_range("temperatures[]", t, 0)
        for budget in self.sweep_budgets:
            check_range("sweep_budgets[]", budget, self.decoding.k + 1, 4096)
        for c in self.sweep_saguaro_c:
            check_range("sweep_saguaro_c[]", c, 0, 1, low_open=True)
        for k in self.sweep_k:
            check_range("sweep_k[]", k, 1, 64)
        for batch in self.batch_sizes + self.backup_batch_sizes:
            check_range("batch_sizes[]", batch, 1)
        if "pair" in self.sections:
            check_range("step_time_context", self.step_time_context, 0, self.runtime.max_len - self.decoding.k - 1)
        check_range("step_time_repeats", self.step_time_repeats, 1)
        check_range("seed", self.seed, 0)
