"""Hydra multiruns through the real launchers (configs/launcher/): a 2-job sweep of a real entry point,
`generalization.run experiment=polynomial` at a tiny size (no data files; a few seconds a job, mostly importing
torch), on a local one-node SLURM cluster (`launcher=submitit_slurm`, the `slurm_cluster` fixture in conftest.py)
and on a local Ray instance (`launcher=ray`). Each job writes its results JSON under a temporary
PAPERCLUB_ROOT (the real configs linked in), never under the committed experiments/.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from common.config import compose

REPO = Path(__file__).resolve().parents[2]
# the polynomial figure at a tiny size
TINY = ["experiment=polynomial", "logger=jsonl", "logger.progress=false", "polynomial.order=20",
        "polynomial.n_train=30", "polynomial.n_test=100", "polynomial.n_grid=50", "polynomial.seeds=1",
        "polynomial.gammas=[0.0,1.0]"]
# two jobs, each naming its results file after its seed
SEEDS = (0, 1)
SWEEP = ["seed=0,1", "tag=seed${seed}"]
RESULTS = {seed: f"polynomial_seed{seed}_cpu.json" for seed in SEEDS}


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A root for PAPERCLUB_ROOT: the repository's configs (a link) and an empty experiments/ for results."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    return root


def test_local_slurm_cluster_runs_a_job(slurm_cluster):
    proc = slurm_cluster.run("srun", f"--partition={slurm_cluster.partition}", "--ntasks=1", "bash", "-c",
                             "echo $SLURM_JOB_ID $SLURM_JOB_PARTITION $SLURMD_NODENAME", timeout=60)
    assert proc.returncode == 0, proc.stderr
    job_id, partition, node = proc.stdout.split()
    assert (partition, node) == (slurm_cluster.partition, slurm_cluster.node)
    assert slurm_cluster.finished_jobs([job_id])[job_id]["JobState"] == "COMPLETED"


@pytest.mark.slow
def test_submitit_slurm_multirun_runs_each_job_as_a_slurm_job(slurm_cluster, results_root):
    proc = multirun(results_root, slurm_cluster.environ(), [
        "launcher=submitit_slurm", f"hydra.launcher.partition={slurm_cluster.partition}",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0", "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=5"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_results_match_the_sweep(results_root)

    # SLURM's side: the sweep went out as one job array; each task has a submitit folder named by its SLURM id
    # (<array job>_<task>, from %j) whose log shows it ran as that SLURM job and wrote one seed's results, and
    # the controller recorded it as completed on our node.
    submitit = results_root / "multirun" / ".submitit"
    tasks = sorted(d.name for d in submitit.iterdir() if re.fullmatch(r"\d+_\d+", d.name))
    assert len(tasks) == 2, sorted(submitit.iterdir())
    finished = slurm_cluster.finished_jobs(tasks)
    results_dir = results_root / "experiments" / "generalization" / "results"
    seeds_written = []
    for task in tasks:
        log = (submitit / task / f"{task}_0_log.out").read_text()
        assert f"JobEnvironment(job_id={task}," in log, log[-2000:]
        seeds_written += [seed for seed, name in RESULTS.items() if f"-> {results_dir / name}" in log]
        job = finished.get(task, {})
        assert (job.get("JobState"), job.get("Partition"), job.get("NodeList")) == (
            "COMPLETED", slurm_cluster.partition, slurm_cluster.node), (task, finished)
    assert sorted(seeds_written) == list(SEEDS)


@pytest.mark.slow
def test_ray_multirun_runs_each_job_in_a_ray_worker(results_root):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher",
                        reason="launcher=ray needs the Ray launcher: pip install 'paperclub[ray]'")
    # Ray's session folder holds unix sockets, whose paths must stay under ~107 characters: a short one
    with tempfile.TemporaryDirectory(prefix="ray-") as ray_tmp:
        proc = multirun(results_root, dict(os.environ), [
            "launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false", f"+hydra.launcher.ray.init._temp_dir={ray_tmp}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = assert_results_match_the_sweep(results_root)
    for result in results.values():  # the job ran in a worker of the Ray instance the launcher started
        command = result["provenance"]["command"]
        assert "ray/_private/workers/default_worker.py" in command and f"--temp-dir={ray_tmp}" in command


def multirun(root: Path, env: dict[str, str], launcher: list[str]) -> subprocess.CompletedProcess:
    """`python -m generalization.run -m` of the tiny 2-job sweep under `root`, with the launcher overrides."""
    command = [sys.executable, "-m", "generalization.run", "-m", *TINY, *SWEEP,
               f"hydra.sweep.dir={root / 'multirun'}", *launcher]
    return subprocess.run(command, cwd=root, env={**env, "PAPERCLUB_ROOT": str(root)}, capture_output=True,
                          text=True, timeout=240)


def assert_results_match_the_sweep(root: Path) -> dict[int, dict]:
    """Both jobs wrote their results under `root`, not into the repository's experiments/, each with its own
    seed and the numbers the same config gives in this process."""
    from generalization.polynomial import run_panels
    from generalization.run import Schema

    folder = root / "experiments" / "generalization" / "results"
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(RESULTS.values())
    assert not [name for name in RESULTS.values() if (REPO / folder.relative_to(root) / name).exists()]
    results = {seed: json.loads((folder / name).read_text()) for seed, name in RESULTS.items()}
    for seed, result in results.items():
        cfg = compose("generalization", "run", Schema, [*TINY, f"seed={seed}", f"tag=seed{seed}"])
        assert (result["config"]["seed"], result["config"]["tag"]) == (seed, f"seed{seed}")
        p = cfg.polynomial
        expected = run_panels(p.order, p.n_train, p.n_test, p.noise, p.lam, p.gamma, list(p.low_orders),
                              list(p.gammas), p.n_grid, p.seeds, cfg.seed, p.lam_interpolate)
        for kind, panel in expected["panels"].items():
            for method, fit in panel["fits"].items():
                got = result["metrics"]["panels"][kind]["fits"][method]["test_mse_mean"]
                assert got == pytest.approx(fit["test_mse_mean"], rel=1e-9), (seed, kind, method)
    a, b = (results[s]["metrics"]["panels"]["simple"]["fits"]["penalised"]["test_mse_mean"] for s in SEEDS)
    assert a != b  # the two jobs really got different seeds
    return results

