"""DDP (torchrun's environment, gloo on the CPU): two ranks with half the batch each match one process."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from data_constrained.train import train_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, cfg, out: str, queue) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    _, summary = train_run(cfg, out)
    queue.put((rank, summary["val_loss"]))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_rank_ddp_matches_single_process(tiny_cfg, tmp_path):
    steps = ["max_steps=4", "save_final=false"]
    _, single = train_run(tiny_cfg("batch_size=8", *steps), tmp_path / "single")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    cfg = tiny_cfg("batch_size=4", *steps)
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, cfg, str(tmp_path / "ddp"), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert results[0] == pytest.approx(single["val_loss"], abs=1e-4)
    assert results[1] == pytest.approx(results[0], abs=1e-6)
