"""`make report`: README status tables rendered from claims + results JSON, one-line failures, stable output."""

import json
import shutil
from pathlib import Path

import pytest

from common import report
from common.claims import BEGIN, END, ClaimError, current_block, load_claims, lookup, render_package_block
from common.paths import PACKAGES, repo_root
from common.plotting import new_figure, save_figure
from common.results import write_result

ROOT = repo_root()


def test_readmes_match_what_make_report_writes():
    rendered = report.render_readmes(ROOT)
    assert {p.relative_to(ROOT).as_posix() for p in rendered} >= {"README.md", *(f"{p}/README.md" for p in PACKAGES)}
    stale = [path.relative_to(ROOT).as_posix() for path, text in rendered.items()
             if current_block(path.read_text()) != current_block(text)]
    assert not stale, f"status tables differ from claims + results JSON in {stale}: run `make report`"


def test_report_md_matches_results():
    assert (ROOT / "experiments" / "REPORT.md").read_text() == report.render_report(ROOT), "run `make report`"


def test_rendering_does_not_depend_on_the_checkout_path(tmp_path):
    copy = tmp_path / "elsewhere" / "checkout"
    for package in PACKAGES:
        for sub in ("results", "figures"):
            src = ROOT / "experiments" / package / sub
            if src.exists():
                shutil.copytree(src, copy / "experiments" / package / sub)
        for name in ("claims.yaml", "README.md"):
            (copy / "experiments" / package).mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "experiments" / package / name, copy / "experiments" / package / name)
        (copy / package).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / package / "README.md", copy / package / "README.md")
    shutil.copy(ROOT / "README.md", copy / "README.md")
    here = {p.relative_to(ROOT): t for p, t in report.render_readmes(ROOT).items()}
    there = {p.relative_to(copy): t for p, t in report.render_readmes(copy).items()}
    assert here == there
    assert report.render_report(copy) == report.render_report(ROOT)


def test_committed_figure_sidecars_name_repo_relative_sources():
    for sidecar in sorted(ROOT.glob("experiments/*/figures/*.json")):
        for source in json.loads(sidecar.read_text())["sources"]:
            assert not Path(source).is_absolute(), f"{sidecar}: {source}"
            assert (ROOT / source).is_file(), f"{sidecar}: {source} does not exist"


def test_save_figure_writes_sources_relative_to_the_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig, _ = new_figure()
    absolute = ROOT / "experiments" / "ssd" / "results" / "speedup_cpu.json"
    path = save_figure(fig, tmp_path / "fig.png", source=[absolute, "not/in/the/repo.json"])
    assert json.loads(path.with_suffix(".json").read_text())["sources"] == [
        "experiments/ssd/results/speedup_cpu.json", "not/in/the/repo.json"]


# ------------------------------------------------------------------------------------ a small synthetic repo


def _repo(tmp_path: Path, claims: str) -> Path:
    write_result("ssd", "speedup", "cpu", {"sd": {"tokens_per_s": 412.6, "ratio_vs_ar": 1.5712},
                                          "hit": [0.75, 0.9375, 1.0], "identical": True, "missing": None,
                                          "rows": [{"n": 128, "x": 3.42}, {"n": 512, "x": 69.8}]},
                 device="cpu (2 cores)", root=tmp_path)
    write_result("ssd", "pair", "gpu", {"params": 175137792}, device="cpu (2 cores)", root=tmp_path)
    write_result("ssd", "bench", "gpu", {"tokens_per_s": 901.2}, device="NVIDIA H100 80GB HBM3", root=tmp_path)
    (tmp_path / "experiments" / "ssd" / "claims.yaml").write_text(claims)
    (tmp_path / "ssd").mkdir()
    (tmp_path / "ssd" / "README.md").write_text(f"# ssd\n\nintro\n\n{BEGIN}\nold\n{END}\n\ntail\n")
    (tmp_path / "experiments" / "ssd" / "README.md").write_text(f"# results\n{BEGIN}\n{END}\n")
    (tmp_path / "README.md").write_text(f"# top\n\n{BEGIN}\n{END}\nafter\n")
    return tmp_path


CLAIMS = """
citation: "SSD"
sections:
  - rows:
      - claim: "SD speed-up"
        paper: "1.7x"
        value: "speedup_cpu:sd.ratio_vs_ar"
        format: ".2f"
        command: "make reproduce-ssd"
        top: true
      - claim: "hit rate | vs budget"
        paper: "80-90%"
        values: {hit: "speedup_cpu:hit", last: "speedup_cpu:hit[-1]", same: "speedup_cpu:identical"}
        ours: "{hit:.0%} (last {last:.1%}); identical: {same}"
        join: " -> "
        command: "make reproduce-ssd"
      - claim: "sweep and misc"
        paper: "-"
        values: {x: "speedup_cpu:rows[*].x", n: "speedup_cpu:rows[0:1][*].n", m: "speedup_cpu:missing",
                 p: "pair_gpu:params", tps: "bench_gpu:tokens_per_s"}
        ours: "{x:.0f} at {n}; {m}; {p:.0fM} params; {tps} tok/s"
        command: "make bench-ssd"
        top: {claim: "short", ours: "{p:.1fM}"}
      - claim: "lossless"
        paper: "exact"
        ours: "token-identical"
        scale: "cpu tests"
        command: "pytest tests/ssd/test_greedy_lossless.py"
  - title: "Detail"
    note: "only in the experiments README"
    readmes: [experiments]
    rows:
      - claim: "tokens per second"
        paper: "-"
        value: "speedup_cpu:sd.tokens_per_s"
        command: "make reproduce-ssd"
not_backed:
  - "an earlier run"
"""


def test_render_synthetic_claims(tmp_path):
    root = _repo(tmp_path, CLAIMS)
    texts = report.render_readmes(root)
    assert texts[root / "ssd" / "README.md"] == "\n".join([
        "# ssd", "", "intro", "", BEGIN,
        "<!-- rendered from experiments/ssd/claims.yaml and the results JSON: edit those, then run `make report` -->",
        "",
        "| claim | paper | ours | scale | command |",
        "|---|---|---|---|---|",
        "| SD speed-up | 1.7x | 1.57 | cpu | `make reproduce-ssd` |",
        "| hit rate \\| vs budget | 80-90% | 75% -> 94% -> 100% (last 100.0%); identical: yes | cpu "
        "| `make reproduce-ssd` |",
        "| sweep and misc | - | 3, 70 at 128; n/a; 175M params; 901.2 tok/s "
        "| cpu / gpu config, ran on cpu / gpu (H100) | `make bench-ssd` |",
        "| lossless | exact | token-identical | cpu tests | `pytest tests/ssd/test_greedy_lossless.py` |",
        "",
        "Not in the table, since no results file backs them: an earlier run.",
        END, "", "tail", ""])
    experiments = texts[root / "experiments" / "ssd" / "README.md"]
    assert "| SD speed-up | 1.7x | 1.57 | cpu | [speedup_cpu](results/speedup_cpu.json) |" in experiments
    assert "| lossless | exact | token-identical | cpu tests | `pytest tests/ssd/test_greedy_lossless.py` |" in experiments
    assert "### Detail\n\nonly in the experiments README\n\n| claim |" in experiments
    assert "| tokens per second | - | 412.6 | cpu |" in experiments
    assert texts[root / "README.md"].splitlines()[5:9] == [
        "| paper | claim | paper's number | ours | scale |",
        "|---|---|---|---|---|",
        "| SSD | SD speed-up | 1.7x | 1.57 | cpu |",
        "| SSD | short | - | 175.1M | gpu config, ran on cpu |"]
    claims = load_claims(root, "ssd")
    assert claims.cited == {"speedup_cpu", "pair_gpu", "bench_gpu"}
    assert render_package_block(claims) in texts[root / "ssd" / "README.md"]


def test_missing_claim_key_fails_with_one_line(tmp_path, capsys):
    root = _repo(tmp_path, CLAIMS.replace("speedup_cpu:hit[-1]", "speedup_cpu:hit[7]"))
    before = (root / "ssd" / "README.md").read_text()
    with pytest.raises(SystemExit) as err:
        report.main(["--root", str(root), "--no-plots"])
    message = str(err.value)
    assert "\n" not in message
    assert message == ("[report] experiments/ssd/claims.yaml: section 1 row 2 ('hit rate | vs budget'): results key "
                       "speedup_cpu:hit[7] is missing (index 7 out of range for metrics.hit (3 items) in "
                       "experiments/ssd/results/speedup_cpu.json)")
    assert (root / "ssd" / "README.md").read_text() == before  # nothing written
    assert not (root / "experiments" / "REPORT.md").exists()


@pytest.mark.parametrize(("edit", "expected"), [
    (("sd.ratio_vs_ar", "sd.ratio"), "results key speedup_cpu:sd.ratio is missing (no key 'ratio' under metrics.sd"),
    (("speedup_cpu:sd.ratio_vs_ar", "nofile_cpu:x"), "results file experiments/ssd/results/nofile_cpu.json does not"),
    (("{hit:.0%} (last", "{hot:.0%} (last"), "template field {hot} names no value"),
    (('paper: "1.7x"', "paper: 1.7"), "'paper' must be text, got 1.7 (quote it in the YAML)"),
    (('command: "make bench-ssd"', 'command: "make bench-ssd"\n        colour: red'), "unknown key(s) ['colour']"),
    (('scale: "cpu tests"', 'scale: "cpu tests"\n        value: "speedup_cpu:hit"'), "'scale' comes from the"),
])
def test_bad_claims_name_the_row(tmp_path, edit, expected):
    root = _repo(tmp_path, CLAIMS.replace(*edit))
    with pytest.raises(ClaimError, match=r"^experiments/ssd/claims.yaml: ") as err:
        report.render_readmes(root)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_readme_without_markers_is_an_error(tmp_path):
    root = _repo(tmp_path, CLAIMS)
    (root / "ssd" / "README.md").write_text("# ssd\n| a table typed by hand |\n")
    with pytest.raises(ClaimError, match=r"^ssd/README.md: needs exactly one"):
        report.render_readmes(root)


def test_report_writes_readmes_and_is_idempotent(tmp_path):
    root = _repo(tmp_path, CLAIMS)
    report.main(["--root", str(root), "--no-plots"])
    first = {p: p.read_bytes() for p in sorted(root.rglob("*.md"))}
    report.main(["--root", str(root), "--no-plots"])
    assert {p: p.read_bytes() for p in sorted(root.rglob("*.md"))} == first
    assert "| SSD | SD speed-up | 1.7x | 1.57 | cpu |" in (root / "README.md").read_text()


def test_lookup_paths():
    metrics = {"a": {"b": [1, 2, {"c": 3}]}, "rows": [{"x": 1}, {"x": 2}], "7": {"k": 0}}
    assert lookup(metrics, "a.b[2].c") == 3
    assert lookup(metrics, "a.b[-2]") == 2
    assert lookup(metrics, "rows[*].x") == [1, 2]
    assert lookup(metrics, "a.b[0:2]") == [1, 2]
    assert lookup(metrics, "7.k") == 0
    for bad, reason in (("a.c", "no key 'c' under metrics.a"), ("a.b[x]", "bad index"), ("a[0]", "not a list"),
                        ("a..b", "cannot parse")):
        with pytest.raises(KeyError, match=reason):
            lookup(metrics, bad)
