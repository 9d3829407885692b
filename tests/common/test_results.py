"""Results JSON: round trip with provenance, atomic writes, clear errors."""

import json
import math

import pytest

from common.report import render_report
from common.results import REQUIRED_KEYS, ResultError, read_result, write_result


def test_round_trip_with_provenance(tmp_path):
    path = write_result("dmpc", "d4rl", "cpu", {"score": 51.5, "nan": math.nan, "curve": [1, 2]},
                        paper={"score": 60.0}, config={"seed": 0}, wall_s=1.23456, root=tmp_path)
    assert path == tmp_path / "experiments" / "dmpc" / "results" / "d4rl_cpu.json"
    record = read_result(path)
    assert set(REQUIRED_KEYS) <= set(record)
    assert record["metrics"] == {"score": 51.5, "nan": None, "curve": [1, 2]}
    assert record["paper"] == {"score": 60.0}
    prov = record["provenance"]
    assert len(prov["git_commit"]) == 40 or prov["git_commit"] == "unknown"
    assert isinstance(prov["git_dirty"], bool) and prov["wall_s"] == 1.235
    assert prov["date"].startswith("20") and prov["versions"]["python"]
    assert not list(path.parent.glob("*.tmp"))


def test_bad_arguments_and_files(tmp_path):
    with pytest.raises(ResultError, match="unknown package 'nope'"):
        write_result("nope", "x", "cpu", {"a": 1}, root=tmp_path)
    with pytest.raises(ResultError, match="scale must be one of"):
        write_result("ssd", "x", "huge", {"a": 1}, root=tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"package": "ssd"}))
    with pytest.raises(ResultError, match=r"lacks key\(s\) \['experiment'"):
        read_result(bad)
    bad.write_text("{not json")
    with pytest.raises(ResultError, match="not valid JSON"):
        read_result(bad)


def test_failed_write_leaves_no_partial_file(tmp_path):
    with pytest.raises(TypeError):
        write_result("ssd", "x", "cpu", {"a": object()}, root=tmp_path)
    assert not list((tmp_path / "experiments" / "ssd" / "results").glob("*"))


def test_report_lists_metrics_next_to_paper(tmp_path):
    write_result("ssd", "speedup", "gpu", {"ssd_over_ar": 3.1}, paper={"ssd_over_ar": 4.0}, root=tmp_path)
    text = render_report(tmp_path)
    assert "## ssd" in text and "### speedup - scale `gpu`" in text
    assert "| ssd_over_ar | 3.1 | 4 |" in text


def test_git_state_prefers_the_commit_a_tree_copy_states(monkeypatch, tmp_path):
    from common.results import git_state

    sha, _ = git_state()
    assert len(sha) == 40  # this checkout
    monkeypatch.setenv("PAPERCLUB_GIT_COMMIT", "f" * 40)
    monkeypatch.setenv("PAPERCLUB_GIT_DIRTY", "0")
    assert git_state() == ("f" * 40, False)  # wins over the (possibly stale) .git of a copied tree
    monkeypatch.delenv("PAPERCLUB_GIT_DIRTY")
    assert git_state(tmp_path) == ("f" * 40, True)  # dirty unless stated clean
    monkeypatch.delenv("PAPERCLUB_GIT_COMMIT")
    assert git_state(tmp_path) == ("unknown", True)  # no checkout, nothing stated


def test_the_command_is_recorded_as_typed_in_the_repository(tmp_path):
    from common.results import command_line

    root = tmp_path / "repo"
    (root / "ssd").mkdir(parents=True)
    (root / "common" / "data" / "text").mkdir(parents=True)
    assert command_line([str(root / "ssd" / "bench.py"), "experiment=bench_cpu", f"results_root={root}/out"],
                        root) == "python -m ssd.bench experiment=bench_cpu results_root=out"
    assert command_line([str(root / "common/data/text/__main__.py"), "verify"], root) == \
        "python -m common.data.text verify"
    assert command_line(["/usr/bin/tool", "x=1"], root) == "/usr/bin/tool x=1"  # outside the repo: as it was
    assert command_line([], root) == ""
