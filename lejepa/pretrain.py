"""LeJEPA image self-supervised pretraining with an online linear probe: `python -m lejepa.pretrain`.

    loss = (1 - lambda) * invariance(views) + lambda * SIGReg(projections)     (MINIMAL.md form)

on Fashion-MNIST (Debian `dataset-fashion-mnist`) or scikit-learn digits (`data.source=digits`, tests). A linear
probe (LayerNorm + Linear) on the detached CLS features trains alongside with cross-entropy. At the end: test
probe accuracy, numerical/effective rank of the test embeddings (projector output and CLS), their SIGReg value.
lambda = 0 drops the regulariser: the invariance term alone is minimised by a constant embedding (collapse).
Writes `experiments/lejepa/results/<experiment>_<scale>.json`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, choose_dtype, describe_device, torch_dtype
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from lejepa.augment import random_views
from lejepa.data.fashion_mnist import DEFAULT_DIR, load_digits_images, load_fashion_mnist
from lejepa.losses import embedding_rank, invariance_loss
from lejepa.models.encoder import EncoderConfig, ViTEncoder, count_parameters
from lejepa.sigreg import SIGReg, random_directions, sigreg
from lejepa.train import check_encoder

PAPER = {"imagenet1k_vith14_linear_probe_top1": 0.79, "imagenette_vits8_linear_probe_top1": 0.907,
         "note": "LeJEPA paper (ImageNet-1k, ViT-H/14) and MINIMAL.md (Imagenette, ViT-S/8, 800 epochs); "
                 "no Fashion-MNIST number is reported"}


@dataclass
class ImageDataConfig:
    source: str = "fashion_mnist"
    dir: str = DEFAULT_DIR
    train_size: int = 10000  # 0: all
    test_size: int = 2000


@dataclass
class PretrainConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    scale: str = "cpu"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        image_size=28, channels=1, patch_size=7, width=64, depth=2, heads=4, mlp_ratio=2.0,
        projector_hidden=256, latent_dim=16))
    sigreg_lambda: float = 0.05
    sigreg_directions: int = 128
    sigreg_knots: int = 17
    views: int = 2
    crop_min_scale: float = 0.5
    batch_size: int = 128
    steps: int = 500
    lr: float = 2e-3
    weight_decay: float = 0.05
    probe_lr: float = 1e-2
    result_name: str = "pretrain"
    write_results: bool = True

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_range("seed", self.seed, 0)
        check_choice("data.source", self.data.source, ("fashion_mnist", "digits"))
        check_range("data.train_size", self.data.train_size, 0)
        check_range("data.test_size", self.data.test_size, 0)
        check_encoder("encoder", self.encoder)
        check_range("sigreg_lambda", self.sigreg_lambda, 0.0, 1.0)
        check_range("sigreg_directions", self.sigreg_directions, 1)
        check_range("sigreg_knots", self.sigreg_knots, 2)
        check_range("views", self.views, 2)
        check_range("crop_min_scale", self.crop_min_scale, 0.0, 1.0, low_open=True)
        check_range("batch_size", self.batch_size, 2)
        check_range("steps", self.steps, 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("probe_lr", self.probe_lr, 0.0, low_open=True)


def load_images(cfg: ImageDataConfig, image_size: int) -> tuple[np.ndarray, ...]:
    """(train images, train labels, test images, test labels), uint8 (N, H, W)."""
    if cfg.source == "digits":
        images, labels = load_digits_images(image_size)
        n_test = min(cfg.test_size, len(images) // 4)
        return images[n_test:], labels[n_test:], images[:n_test], labels[:n_test]
    xtr, ytr = load_fashion_mnist(cfg.dir, "train")
    xte, yte = load_fashion_mnist(cfg.dir, "test")
    ntr = cfg.train_size or len(xtr)
    nte = cfg.test_size or len(xte)
    return xtr[:ntr], ytr[:ntr], xte[:nte], yte[:nte]


def pretrain(cfg: PretrainConfig, out_dir=None) -> dict:
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    dtype = torch_dtype(choose_dtype(cfg.dtype, device))
    xtr, ytr, xte, yte = load_images(cfg.data, cfg.encoder.image_size)
    train_x = torch.from_numpy(xtr).float().div(255.0).unsqueeze(1)
    train_y = torch.from_numpy(ytr)
    net = ViTEncoder(cfg.encoder).to(device)
    probe = nn.Sequential(nn.LayerNorm(cfg.encoder.width), nn.Linear(cfg.encoder.width, 10)).to(device)
    reg = SIGReg(cfg.sigreg_directions, cfg.sigreg_knots)
    opt = torch.optim.AdamW([{"params": net.parameters(), "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                             {"params": probe.parameters(), "lr": cfg.probe_lr, "weight_decay": 1e-7}])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.probe_lr], total_steps=cfg.steps,
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    with RunLogger(cfg.logger, out_dir or run_dir(), config=as_dict(cfg),
                   name=f"pretrain-lambda{cfg.sigreg_lambda}") as log:
        net.train()
        for step in log.progress(range(cfg.steps), total=cfg.steps, desc=f"lejepa lambda={cfg.sigreg_lambda}"):
            idx = torch.randint(len(train_x), (cfg.batch_size,), generator=gen)
            views = random_views(train_x[idx], cfg.views, gen, min_scale=cfg.crop_min_scale).to(device)
            y = train_y[idx].to(device).repeat(cfg.views)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                cls, proj = net(views.flatten(0, 1))
                proj = proj.view(cfg.views, cfg.batch_size, -1)
                inv = invariance_loss(proj.float())
                sig = reg(proj, gen).float()
                probe_loss = F.cross_entropy(probe(cls.detach()).float(), y)
                loss = (1 - cfg.sigreg_lambda) * inv + cfg.sigreg_lambda * sig + probe_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0 or step == cfg.steps - 1:
                rec = {"inv": inv.item(), "sigreg": sig.item(), "probe_ce": probe_loss.item()}
                history.append({"step": step, **rec})
                log.log(rec, step=step)
        metrics = evaluate(net, probe, xte, yte, device, cfg)
        metrics.update(history=history, params=count_parameters(net), sigreg_lambda=cfg.sigreg_lambda,
                       wall_s=time.perf_counter() - start)
        log.summary({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    if cfg.write_results:
        write_result("lejepa", cfg.result_name, cfg.scale, metrics, paper=PAPER, config=as_dict(cfg),
                     device=describe_device(device), wall_s=metrics["wall_s"])
    return metrics


@torch.no_grad()
def evaluate(net: ViTEncoder, probe: nn.Module, x: np.ndarray, y: np.ndarray, device: str,
             cfg: PretrainConfig) -> dict:
    """Online-probe accuracy and embedding statistics on held-out images (eval mode)."""
    net.eval()
    images = torch.from_numpy(x).float().div(255.0).unsqueeze(1)
    cls, proj = zip(*(net(images[i: i + 500].to(device)) for i in range(0, len(images), 500)), strict=True)
    cls, proj = torch.cat(cls).float().cpu(), torch.cat(proj).float().cpu()
    acc = (probe(cls.to(device)).argmax(1).cpu() == torch.from_numpy(y)).float().mean()
    rank, erank = embedding_rank(proj)
    cls_rank, cls_erank = embedding_rank(cls)
    dirs = random_directions(proj.shape[1], 256, torch.Generator().manual_seed(123))
    standardized = (proj - proj.mean(0)) / proj.std(0).clamp_min(1e-8)
    return {"probe_accuracy": float(acc), "embedding_rank": rank, "embedding_effective_rank": erank,
            "embedding_dim": proj.shape[1], "cls_rank": cls_rank, "cls_effective_rank": cls_erank,
            "embedding_std_mean": float(proj.std(0).mean()), "test_sigreg": float(sigreg(proj, dirs)),
            "test_sigreg_standardized": float(sigreg(standardized, dirs)), "test_images": len(x)}


@hydra_app("lejepa", "pretrain", PretrainConfig)
def main(cfg: PretrainConfig) -> dict:
    metrics = pretrain(cfg)
    print(f"lambda={cfg.sigreg_lambda}: probe accuracy {metrics['probe_accuracy']:.3f}, "
          f"embedding rank {metrics['embedding_rank']}/{metrics['embedding_dim']}")
    return metrics


if __name__ == "__main__":
    main()
