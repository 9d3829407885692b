"""Bad input to any entry point ends in ONE line on stderr naming the key and what was expected (issue #11).

`CASES` is the bad-input table: one or more cases for every `hydra_app` entry point, each with the substrings
its message must contain (the offending key, and the allowed range or options). They run through the real
entry points: a driver process (`DRIVER`) imports each entry module once and calls its `main()` with the case's
command line in `sys.argv`, exactly what `python -m <module> <args>` runs, so that ~70 cases cost one round of
imports (a few seconds of torch/jax per process on 2 cores) instead of one each. `PROCESS_CASES` run as
`python -m <module> <args>` itself, for what only a fresh interpreter shows: the exit status, `--help`,
`--cfg job`, `--info`, `-m` after the overrides, and the full traceback with PAPERCLUB_FULL_ERROR=1.

Everything runs under a scratch PAPERCLUB_ROOT (the real configs/ linked in, experiments/ holding copies of the
committed results files) with that root as working directory, so nothing committed can be touched; each case
asserts that no file under the scratch experiments/ changed, and the module asserts the same of the real one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
DRIVER_A = ("dmpc", "lejepa", "generalization")  # the packages of the first driver process; the rest: the second

# (entry module, command-line arguments, substrings the one-line message must contain)
CASES = [
    ("data_constrained.train", ["lr=0"], ["lr=0.0", "(0.0, inf]"]),
    ("data_constrained.train", ["batch_size=0"], ["batch_size=0", "[1, inf]"]),
    ("data_constrained.train", ["data.token_budget=1"], ["data.token_budget=1", "[2, inf]"]),
    ("data_constrained.train", ["model.rope_theta=0"], ["model.rope_theta=0.0", "(0.0, inf]"]),
    ("data_constrained.train", ["model=nope"], ["model='nope'", "'c32'", "'m300'"]),
    ("data_constrained.sweep", ["experiment=nope"], ["experiment='nope'", "'asymptote_cpu'", "'tune_gpu'"]),
    ("data_constrained.sweep", ["ensemble_members=0"], ["ensemble_members=0", "[1, inf]"]),
    ("data_constrained.sweep", ["tuned_epochs=[0]"], ["tuned_epochs[]=0.0", "(0.0, inf]"]),
    ("data_constrained.fit", ["n_boot=-1"], ["n_boot=-1", "[0, inf]"]),
    ("data_constrained.fit", ["scale=tpu"], ["scale='tpu'", "'cpu', 'gpu'"]),
    ("data_constrained.ensemble", ["members=0"], ["members=0", "[1, inf]"]),
    ("data_constrained.ensemble", ["recipe=nope"], ["recipe='nope'", "'default', 'tuned'"]),
    ("data_constrained.distill", ["temperature=0"], ["temperature=0.0", "(0.0, inf]"]),
    ("data_constrained.distill", ["teacher_model.norm_eps=0"], ["teacher_model.norm_eps=0.0", "(0.0, inf]"]),
    ("data_constrained.distill", ["model@teacher_model=nope"], ["model='nope'", "'c64'"]),
    ("dmpc.collect", ["scales.cpu.sac_steps=0"], ["scales.cpu.sac_steps=0", "[1, inf]"]),
    ("dmpc.collect", ["scales.cpu.start_steps=-1"], ["scales.cpu.start_steps=-1", "[0, 12000]"]),
    ("dmpc.collect", ["experiment=nope"], ["experiment='nope'", "'broken_ankle', 'data_factory', 'distill_eval', 'jump'"]),
    ("dmpc.train", ["gamma=1"], ["gamma=1.0", "[0.0, 1.0)"]),
    ("dmpc.train", ["scales.cpu.proposal.clip=0"], ["scales.cpu.proposal.clip=0.0", "(0.0, inf]"]),
    ("dmpc.train", ["scale=gpu", "scales.gpu.chunk=0"], ["scales.gpu.chunk=0", "[1, inf]"]),
    ("dmpc.train", ["dataset=nope"], ["dataset='nope'", "'medium-replay'"]),
    ("dmpc.train", ["datasets=[medium,medium]"], ["datasets=['medium', 'medium']", "at most once"]),
    ("dmpc.train", ["datasets=[medium,expert]", "model_dir=somewhere"], ["model_dir / finetune_from", "from scratch"]),
    ("dmpc.evaluate", ["mbop_beta=2"], ["mbop_beta=2.0", "[0.0, 1.0]"]),
    ("dmpc.evaluate", ["jump.height_weight=-1"], ["jump.height_weight=-1.0", "[0.0, inf]"]),
    ("dmpc.evaluate", ["methods=[dmpc,nope]"], ["methods[]='nope'", "'mbop'"]),
    ("dmpc.evaluate", ["experiment=nope"], ["experiment='nope'", "'broken_ankle', 'data_factory', 'distill_eval', 'jump'"]),
    ("dmpc.bench", ["tasks=[hopper,nope]"], ["tasks[]='nope'", "'walker2d'"]),
    ("dmpc.bench", ["tasks=[]"], ["tasks=[]", "at least one task"]),
    ("dmpc.distill", ["scales.cpu.rounds=-1"], ["scales.cpu.rounds=-1", "[0, inf]"]),
    ("dmpc.distill", ["scale=gpu", "scales.gpu.val_fraction=0.9"], ["scales.gpu.val_fraction=0.9", "(0.0, 0.5]"]),
    ("dmpc.distill", ["task=ant"], ["task='ant'", "'hopper'"]),
    ("generalization.run", ["experiment=nope"], ["experiment='nope'", "'polynomial'", "'bound_gpu'"]),
    ("generalization.run", ["polynomial.n_train=0"], ["polynomial.n_train=0", "[1, inf]"]),
    ("generalization.run", ["polynomial.seeds=-1"], ["polynomial.seeds=-1", "[1, inf]"]),
    ("generalization.run", ["benign.net.lr=0"], ["benign.net.lr=0.0", "(0, inf]"]),
    ("generalization.run", ["flatness.epsilon=0"], ["flatness.epsilon=0.0", "(0, inf]"]),
    ("generalization.run", ["polynomial.nn=1"], ["polynomial.nn", "expected a key of PolynomialConfig", "n_train"]),
    ("generalization.run", ["polynomial.n_train=abc"], ["polynomial.n_train=abc", "converted to Integer"]),
    ("generalization.run", ["logger=nope"], ["logger='nope'", "'jsonl', 'wandb_offline', 'wandb_online'"]),
    ("lejepa.pretrain", ["views=1"], ["views=1", "[2, inf]"]),
    ("lejepa.pretrain", ["encoder.patch_size=5"], ["encoder.image_size=28", "multiple of encoder.patch_size=5"]),
    ("lejepa.train", ["optim.grad_clip=0"], ["optim.grad_clip=0.0", "(0.0, inf]"]),
    ("lejepa.train", ["model.encoder.dropout=1"], ["model.encoder.dropout=1.0", "[0.0, 1.0)"]),
    ("lejepa.train", ["model.predictor.latent_dim=8"], ["model.predictor.latent_dim=8", "model.encoder.latent_dim=16"]),
    ("lejepa.train", ["+experiment=nope"], ["experiment='nope'", "'two_room_gpu'"]),
    ("lejepa.plan", [], ["ckpt is missing (???)", "ckpt=<value>"]),
    ("lejepa.plan", ["ckpt=x", "planner.min_std=2"], ["planner.min_std=2.0", "[0.0, 1.0]"]),
    ("lejepa.plan", ["ckpt=x", "planner.receding=9"], ["planner.receding=9", "[1, 5]"]),
    ("lejepa.surprise", ["ckpt=x", "steps=3"], ["steps=3", "[4, inf]"]),
    ("lejepa.surprise", ["ckpt=x", "events=[teleport,nope]"], ["events[]='nope'", "'teleport'"]),
    ("lejepa.collect", ["episodes=0"], ["episodes=0", "[1, inf]"]),
    ("lejepa.collect", ["env=nope"], ["env='nope'", "'two_room'"]),
    ("lejepa.collect", ["noise=-0.1"], ["noise=-0.1", "[0.0, inf]"]),
    ("ssd.bench", ["model=path", "model.path=/nonexistent/target"], ["model.path='/nonexistent/target' does not exist",
                                                                   "expected a Hugging Face checkpoint directory"]),
    ("ssd.bench", ["sweep_budgets=[2]"], ["sweep_budgets[]=2", "[4, 4096]"]),
    ("ssd.bench", ["repeats=0"], ["repeats=0", "[1, inf]"]),
    ("ssd.bench", ["sweep_k=[0]"], ["sweep_k[]=0", "[1, 64]"]),
    ("ssd.multigpu_bench", ["tensor_parallel=[0]"], ["tensor_parallel[]=0", "[1, inf]"]),
    ("ssd.multigpu_bench", ["strategies=[ar,nope]"], ["strategies[]='nope'", "'ssd'"]),
    ("ssd.bench", ["experiment=nope"], ["experiment='nope'", "'reproduce_cpu'", "'trained_cpu'"]),
    ("ssd.bench", ["model=nope"], ["model='nope'", "'path'", "'toy'"]),
    ("ssd.generate", ["decoding.fanout=[1,1]"], ["decoding.fanout=[1, 1]", "K+1=5"]),
    ("ssd.generate", ["sampling.top_p=0"], ["sampling.top_p=0.0", "(0, 1]"]),
    ("ssd.generate", ["prompt_ids=[]"], ["prompt_ids=[]", "at least one token id"]),
    ("ssd.make_tiny", ["model.hidden_size=12"], ["model.hidden_size=12", "multiple of 8"]),
    ("ssd.make_tiny", ["model.draft_layers=9"], ["model.draft_layers=9", "[1, 4]"]),
    ("ssd.plot", ["scale=nope"], ["scale='nope'", "'cpu', 'gpu', 'tiny'"]),
    ("ssd.plot", ["lrr=1"], ["lrr", "expected a key of PlotConfig", "results_root"]),
    ("ssd.training.train_pair", ["pair=nope"], ["pair='nope'", "'cpu', 'gpu'"]),
    ("ssd.training.train_pair", ["rope_theta=0"], ["rope_theta=0.0", "(0, inf]"]),
    ("ssd.training.train_pair", ["target.num_heads=5"], ["target.hidden_size=96", "target.num_heads=5"]),
    ("ssd.training.train_pair", ["seq_len=[1,"], ["cannot parse override 'seq_len=[1,'"]),
]

# Run as `python -m <module> <args>`: (id, module, args, extra environment)
PROCESS_CASES = {
    "experiment_nope": ("generalization.run", ["experiment=nope"], {}),
    "multirun_flag_last": ("lejepa.collect", ["seed=0", "episodes=0", "-m"], {}),
    "fit_range": ("data_constrained.fit", ["n_boot=-1"], {}),
    "cfg_job_last": ("ssd.plot", ["scale=gpu", "--cfg", "job"], {}),
    "help": ("ssd.plot", ["scale=gpu", "--help"], {}),
    "info_searchpath": ("ssd.plot", ["scale=gpu", "--info", "searchpath"], {}),
    "full_error": ("lejepa.collect", ["episodes=0"], {"PAPERCLUB_FULL_ERROR": "1"}),
}

DRIVER = '''
import contextlib, importlib, io, json, sys, traceback
from pathlib import Path
from tests_snapshot import snapshot

cases, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
results = []
for module_name, args in cases:
    module = importlib.import_module(module_name)
    before = snapshot()
    stdout, stderr = io.StringIO(), io.StringIO()
    sys.argv = [module.__file__, *args]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            module.main()
            code = 0
        except SystemExit as exit:
            code = exit.code
        except BaseException:
            traceback.print_exc()
            code = 1
    after = snapshot()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    results.append({"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "changed": changed})
out.write_text(json.dumps(results))
'''

SNAPSHOT = '''
import hashlib, os
from pathlib import Path


def snapshot():
    """{path: sha256} of every file under $PAPERCLUB_ROOT/experiments."""
    root = Path(os.environ["PAPERCLUB_ROOT"]) / "experiments"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
'''


def case_id(case: tuple) -> str:
    module, args, _ = case
    return f"{module.split('.')[-1]}:{' '.join(args) or '(none)'}"


def results_hashes(root: Path) -> dict[str, str]:
    """{path: sha256} of the results JSON files under `root`/experiments/*/results/."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "experiments").glob("*/results/*.json"))}


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory) -> Path:
    """A PAPERCLUB_ROOT with the real configs linked in and copies of the committed results files."""
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "configs").symlink_to(REPO / "configs")
    for results in (REPO / "experiments").glob("*/results"):
        shutil.copytree(results, root / "experiments" / results.parent.name / "results")
    (root / "data").mkdir()
    (root / "tests_snapshot.py").write_text(SNAPSHOT)
    (root / "driver.py").write_text(textwrap.dedent(DRIVER))
    return root


def environment(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PAPERCLUB_FULL_ERROR", "HYDRA_FULL_ERROR")}
    env.update(PAPERCLUB_ROOT=str(root), PAPERCLUB_DATA=str(root / "data"), WANDB_MODE="disabled",
               PYTHONPATH=os.pathsep.join([str(root), str(REPO)]), **(extra or {}))
    return env


@pytest.fixture(scope="module")
def outcomes(scratch_root) -> dict[str, dict]:
    """Every case's {code, stdout, stderr, changed}: the driver processes and `PROCESS_CASES`, all at once.

    The table is split by package over two drivers of about the same work, so both cores work.
    """
    real_before = results_hashes(REPO)
    groups = [[c for c in CASES if c[0].split(".")[0] in DRIVER_A], [c for c in CASES if c[0].split(".")[0] not in DRIVER_A]]

    def drive(index: int) -> list[dict]:
        cases_file, out_file = scratch_root / f"cases{index}.json", scratch_root / f"out{index}.json"
        cases_file.write_text(json.dumps([[module, args] for module, args, _ in groups[index]]))
        proc = subprocess.run([sys.executable, str(scratch_root / "driver.py"), str(cases_file), str(out_file)],
                              cwd=scratch_root, env=environment(scratch_root), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(out_file.read_text())

    def run_module(name: str) -> dict:
        module, args, extra = PROCESS_CASES[name]
        before = results_hashes(scratch_root)
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=scratch_root,
                              env=environment(scratch_root, extra), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        after = results_hashes(scratch_root)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "changed": changed}

    with ThreadPoolExecutor(max_workers=2 + len(PROCESS_CASES)) as pool:
        driven = [pool.submit(drive, i) for i in range(len(groups))]
        processes = {name: pool.submit(run_module, name) for name in PROCESS_CASES}
        found = {case_id(case): result for i, future in enumerate(driven)
                 for case, result in zip(groups[i], future.result(), strict=True)}
        found.update({name: future.result() for name, future in processes.items()})
    assert results_hashes(REPO) == real_before, "a committed results file under experiments/ changed"
    return found


def assert_one_line_error(result: dict, expected: list[str]) -> None:
    """Exit status 2, stderr exactly one line `error: ...` holding every `expected` substring, no traceback,
    no file changed under the scratch experiments/."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2, (result["code"], result["stderr"][-2000:])
    assert "Traceback" not in result["stderr"] + result["stdout"]
    assert len(lines) == 1, result["stderr"]
    assert lines[-1].startswith("error: "), lines[-1]
    for text in expected:
        assert text in lines[-1], f"{text!r} not in {lines[-1]!r}"
    assert result["changed"] == [], result["changed"]


def test_table_covers_every_entry_point():
    entry_points = {"data_constrained.train", "data_constrained.sweep", "data_constrained.fit",
                    "data_constrained.ensemble", "data_constrained.distill", "dmpc.collect", "dmpc.train",
                    "dmpc.evaluate", "dmpc.bench", "dmpc.distill",
                    "generalization.run", "lejepa.pretrain", "lejepa.train", "lejepa.plan",
                    "lejepa.surprise", "lejepa.collect", "ssd.bench", "ssd.multigpu_bench", "ssd.generate", "ssd.make_tiny", "ssd.plot",
                    "ssd.training.train_pair"}
    found = {str(p.relative_to(REPO).with_suffix("")).replace(os.sep, ".")
             for package in ("data_constrained", "dmpc", "generalization", "lejepa", "ssd")
             for p in (REPO / package).rglob("*.py") if "@hydra_app(" in p.read_text()}
    assert found == entry_points
    assert {module for module, _, _ in CASES} == entry_points
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_is_one_line(outcomes, case):
    assert_one_line_error(outcomes[case_id(case)], case[2])


def test_unknown_experiment_fails_as_a_process(outcomes):
    assert_one_line_error(outcomes["experiment_nope"], ["experiment='nope'", "'polynomial'", "'flatness_gpu'"])


def test_range_error_fails_as_a_process(outcomes):
    assert_one_line_error(outcomes["fit_range"], ["n_boot=-1", "[0, inf]"])


def test_multirun_flag_after_the_overrides(outcomes):
    result = outcomes["multirun_flag_last"]
    assert "Launching 1 jobs locally" in result["stdout"]  # -m was read as the multirun flag
    assert_one_line_error(result, ["episodes=0", "[1, inf]"])


def test_cfg_job_after_the_overrides(outcomes):
    result = outcomes["cfg_job_last"]
    assert result["code"] == 0, result["stderr"][-2000:]
    assert "scale: gpu" in result["stdout"].splitlines() and "hydra:" not in result["stdout"]
    assert "backend: jsonl" in result["stdout"]  # logger=jsonl from the shared configs/logger/ group


def test_help_lists_shared_groups(outcomes):
    result = outcomes["help"]
    assert result["code"] == 0, result["stderr"][-2000:]
    assert "logger: jsonl, wandb_offline, wandb_online" in result["stdout"]
    assert "launcher: local, ray, submitit_local, submitit_slurm" in result["stdout"]
    assert "scale: gpu" in result["stdout"]


def test_info_shows_shared_search_path(outcomes, scratch_root):
    result = outcomes["info_searchpath"]
    assert result["code"] == 0, result["stderr"][-2000:]
    assert f"file://{scratch_root / 'configs'}" in result["stdout"]
    assert "paperclub" in result["stdout"]


def test_full_error_shows_the_traceback(outcomes):
    result = outcomes["full_error"]
    assert result["code"] != 0 and result["code"] != 2
    assert "Traceback" in result["stderr"]
    assert "common.config.ConfigError: episodes=0 is out of range" in result["stderr"]
    assert result["changed"] == []
