"""`python -m ssd.make_tiny out=DIR model.arch=llama` - write a tiny random HF-format target/draft pair.

The pair (`DIR/target`, `DIR/draft`, each config.json + model.safetensors + tokenizer) loads with our engine and
with `transformers`; see `ssd.models.tiny` for how the draft relates to the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import LoggerConfig, hydra_app
from ssd.config import ModelConfig


@dataclass
class MakeTinyConfig:
    out: str = "data/ssd/tiny/custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@hydra_app("ssd", "make_tiny", MakeTinyConfig)
def main(cfg: MakeTinyConfig) -> None:
    from common.paths import repo_root
    from ssd.models.tiny import make_tiny_pair

    m = cfg.model
    out = repo_root() / cfg.out if not cfg.out.startswith("/") else cfg.out
    target, draft = make_tiny_pair(out, arch=m.arch, vocab_size=m.vocab_size, hidden_size=m.hidden_size,
                                   intermediate_size=2 * m.hidden_size, target_layers=m.target_layers,
                                   draft_layers=m.draft_layers, init_std=m.init_std,
                                   deep_layer_scale=m.deep_layer_scale, seed=m.seed)
    print(f"target: {target}\ndraft: {draft}")


if __name__ == "__main__":
    main()
