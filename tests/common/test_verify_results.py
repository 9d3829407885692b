"""`make verify-results` on a throw-away git repository: dirty, device, uncited and stale results are listed."""

import json
import subprocess
from pathlib import Path

import pytest

from common.results import write_result
from common.verify_results import main, verify

CLAIMS = """
citation: "SSD"
sections:
  - rows:
      - claim: "a claim"
        paper: "-"
        value: "dirty_cpu:x"
        command: "make reproduce-ssd"
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout.strip()


def _commit(root: Path, path: str, text: str) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    _git(root, "add", path)
    _git(root, "commit", "-q", "-m", f"change {path}")
    return _git(root, "rev-parse", "HEAD")


def _result(root: Path, monkeypatch, name: str, commit: str, *, dirty: bool = False, scale: str = "cpu",
            device: str = "cpu (2 cores)") -> None:
    monkeypatch.setenv("PAPERCLUB_GIT_COMMIT", commit)
    monkeypatch.setenv("PAPERCLUB_GIT_DIRTY", "1" if dirty else "0")
    write_result("ssd", name, scale, {"x": 1.0}, device=device, name=name, root=root)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    code = _commit(root, "ssd/engine.py", "x = 1\n")
    _commit(root, "ssd/README.md", "docs only: not a code change\n")
    readme = _git(root, "rev-parse", "HEAD")
    _result(root, monkeypatch, "sidecar_cpu", readme)
    _result(root, monkeypatch, "dirty_cpu", readme, dirty=True)
    _result(root, monkeypatch, "polynomial_gpu", readme, scale="gpu")
    _result(root, monkeypatch, "bench_gpu", readme, scale="gpu", device="NVIDIA H100 80GB HBM3")
    _result(root, monkeypatch, "uncited_cpu", readme)
    _result(root, monkeypatch, "old_cpu", code)
    _result(root, monkeypatch, "lost_cpu", "0123456789abcdef0123456789abcdef01234567")
    config = _commit(root, "configs/ssd/model.yaml", "width: 2\n")  # a config change makes older results stale
    _result(root, monkeypatch, "new_cpu", config)
    figures = root / "experiments" / "ssd" / "figures"
    figures.mkdir()
    sources = ["/another/checkout/experiments/ssd/results/sidecar_cpu.json", "experiments/ssd/results/polynomial_gpu.json",
               "experiments/ssd/results/bench_gpu.json", "experiments/ssd/results/old_cpu.json",
               "experiments/ssd/results/lost_cpu.json", "experiments/ssd/results/new_cpu.json"]
    (figures / "f.json").write_text(json.dumps({"figure": "f.png", "sources": sources, "caption": ""}))
    (root / "experiments" / "ssd" / "claims.yaml").write_text(CLAIMS)
    return root, config


def test_verify_lists_each_kind(repo):
    root, config = repo
    findings, checked = verify(root)
    assert checked == 8
    stale = f"{config[:10]} ("
    got = {(f.path.rsplit("/", 1)[1], f.issue) for f in findings}
    assert got == {("dirty_cpu.json", "dirty"), ("dirty_cpu.json", "stale"),
                   ("polynomial_gpu.json", "device"), ("polynomial_gpu.json", "stale"),
                   ("bench_gpu.json", "stale"), ("sidecar_cpu.json", "stale"),
                   ("uncited_cpu.json", "uncited"), ("uncited_cpu.json", "stale"),
                   ("old_cpu.json", "stale"), ("lost_cpu.json", "stale")}
    by_key = {(f.path.rsplit("/", 1)[1], f.issue): f for f in findings}
    assert by_key[("polynomial_gpu.json", "device")].detail == "scale gpu but ran on cpu (2 cores)"
    assert stale in by_key[("old_cpu.json", "stale")].detail
    assert by_key[("lost_cpu.json", "stale")].detail == "recorded commit 0123456789 is not in this repository"
    assert all(f.path.startswith("experiments/ssd/results/") for f in findings)


def test_a_cited_summary_cites_its_sources(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    code = _commit(root, "ssd/engine.py", "x = 1\n")
    for name in ("run_s0_cpu", "run_s1_cpu", "orphan_cpu"):
        _result(root, monkeypatch, name, code)
    write_result("ssd", "summary", "cpu", {"x": 1.0}, name="dirty_cpu", root=root,
                 sources=["experiments/ssd/results/run_s0_cpu.json", "experiments/ssd/results/run_s1_cpu.json"])
    (root / "experiments" / "ssd" / "claims.yaml").write_text(CLAIMS)  # cites dirty_cpu, the summary
    findings, checked = verify(root)
    assert checked == 4
    assert [(f.path.rsplit("/", 1)[1], f.issue) for f in findings] == [("orphan_cpu.json", "uncited")]


def test_a_markdown_only_change_is_not_a_code_change(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    code = _commit(root, "ssd/engine.py", "x = 1\n")
    _result(root, monkeypatch, "run_cpu", code)
    _commit(root, "ssd/README.md", "docs\n")
    _commit(root, "dmpc/planner.py", "another package\n")
    (root / "experiments" / "ssd" / "claims.yaml").write_text(CLAIMS.replace("dirty_cpu", "run_cpu"))
    assert verify(root) == ([], 1)
    assert main(["--root", str(root), "--strict"]) == 0


def test_table_and_exit_status(repo, capsys):
    root, _ = repo
    assert main(["--root", str(root)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[:2] == ["| results file | issue | detail |", "|---|---|---|"]
    assert "| experiments/ssd/results/uncited_cpu.json | uncited | no figure sidecar and no claims row cites it |" in lines
    assert lines[-1] == "8 results files checked, 7 listed (dirty 1, device 1, uncited 1, stale 7)"
    assert main(["--root", str(root), "--strict"]) == 1
