"""`python -m common.verify_results` (`make verify-results`): results JSON to look at twice before leaning on it.

Every `experiments/<package>/results/*.json` is checked four ways; each finding is one row of the printed table:
- `dirty`: `provenance.git_dirty` is true (the code that ran differed from the recorded commit);
- `device`: the scale is `gpu` / `multi_gpu` but `provenance.device` names a CPU: a gpu-sized config that ran on
  the CPU (the status tables say "gpu config, ran on cpu" for such a file; the file itself is left as it is);
- `uncited`: no figure sidecar (`experiments/*/figures/*.json`, "sources") and no claims row
  (`experiments/<package>/claims.yaml`) cites the file, nor the "sources" of a cited summary results file;
- `stale`: the package's code - `<package>/` without its Markdown, plus `configs/<package>/` - changed in a commit
  that the recorded `provenance.git_commit` does not contain (`git merge-base --is-ancestor`), or that commit is
  not in this repository.
It is a report: the exit status is 0, or with `--strict` 1 when anything is listed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.claims import ClaimError, device_is_cpu, load_claims
from common.paths import PACKAGES, repo_root
from common.results import ResultError, read_result


@dataclass(frozen=True)
class Finding:
    """One thing to look at: `path` is repo-relative, `issue` one of dirty / device / uncited / stale."""

    path: str
    issue: str
    detail: str


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=repo_root(), help="repository root")
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything is listed")
    args = parser.parse_args(argv)
    try:
        findings, checked = verify(args.root)
    except (ClaimError, ResultError) as err:
        raise SystemExit(f"[verify-results] {err}") from None
    print(render_table(findings, checked))
    return 1 if args.strict and findings else 0


def verify(root: Path) -> tuple[list[Finding], int]:
    """(findings sorted by file and issue, number of results files checked)."""
    paths = sorted((root / "experiments").glob("*/results/*.json"))
    records = {path.relative_to(root).as_posix(): read_result(path) for path in paths}
    cited = _with_sources(_cited_by_figures(root) | _cited_by_claims(root), records)
    git = _Git(root)
    findings: list[Finding] = []
    for rel, record in records.items():
        package = rel.split("/")[1]
        findings += _check(rel, package, record, rel in cited, git)
    return findings, len(paths)


def _with_sources(cited: set[str], records: dict[str, dict[str, Any]]) -> set[str]:
    """`cited` and, transitively, the "sources" of every cited results file (a summary cites what it read)."""
    todo, seen = list(cited), set(cited)
    while todo:
        for source in records.get(todo.pop(), {}).get("sources", []):
            if source not in seen:
                seen.add(source)
                todo.append(source)
    return seen


def render_table(findings: list[Finding], checked: int) -> str:
    """A Markdown table of the findings and a one-line summary."""
    counts = {issue: sum(f.issue == issue for f in findings) for issue in ("dirty", "device", "uncited", "stale")}
    files = len({f.path for f in findings})
    summary = (f"{checked} results files checked, {files} listed ("
               + ", ".join(f"{issue} {n}" for issue, n in counts.items()) + ")")
    if not findings:
        return f"{summary}: nothing to look at."
    lines = ["| results file | issue | detail |", "|---|---|---|"]
    lines += [f"| {f.path} | {f.issue} | {f.detail} |" for f in findings]
    return "\n".join(lines + ["", summary])


def _check(rel: str, package: str, record: dict[str, Any], cited: bool, git: _Git) -> list[Finding]:
    prov = record.get("provenance", {})
    commit = str(prov.get("git_commit", "unknown"))
    found = []
    if prov.get("git_dirty"):
        found.append(Finding(rel, "dirty", f"recorded at {commit[:10]} with uncommitted code changes"))
    device = str(prov.get("device", ""))
    if record.get("scale") in ("gpu", "multi_gpu") and device_is_cpu(device):
        found.append(Finding(rel, "device", f"scale {record['scale']} but ran on {device}"))
    if not cited:
        found.append(Finding(rel, "uncited", "no figure sidecar and no claims row cites it"))
    stale = git.staleness(package, commit)
    if stale:
        found.append(Finding(rel, "stale", stale))
    return found


def _cited_by_figures(root: Path) -> set[str]:
    """Repo-relative results paths named in any figure sidecar's "sources" (absolute paths are mapped back)."""
    cited = set()
    for sidecar in sorted((root / "experiments").glob("*/figures/*.json")):
        for source in json.loads(sidecar.read_text()).get("sources", []):
            cited.add(_relative(root, source))
    return cited


def _cited_by_claims(root: Path) -> set[str]:
    cited = set()
    for package in PACKAGES:
        claims = load_claims(root, package)
        if claims is not None:
            cited |= {f"experiments/{package}/results/{stem}.json" for stem in claims.cited}
    return cited


def _relative(root: Path, source: str) -> str:
    path = Path(source)
    if not path.is_absolute():
        return path.as_posix()
    parts = path.parts
    if "experiments" in parts:  # written in another checkout: keep the part from experiments/ on
        return Path(*parts[len(parts) - parts[::-1].index("experiments") - 1:]).as_posix()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


class _Git:
    """The few git questions `stale` asks, read-only, answered once each."""

    def __init__(self, root: Path):
        self.root = root
        self._last: dict[str, str | None] = {}
        self._answers: dict[tuple[str, str], str] = {}

    def staleness(self, package: str, commit: str) -> str:
        """'' when `commit` contains the package's last code change, else why not."""
        last = self.last_code_commit(package)
        if last is None:
            return ""
        key = (package, commit)
        if key not in self._answers:
            self._answers[key] = self._stale(package, commit, last)
        return self._answers[key]

    def last_code_commit(self, package: str) -> str | None:
        if package not in self._last:
            out = self._run("log", "-1", "--format=%H", "--", f"{package}/", f":(exclude,glob){package}/**/*.md",
                            f"configs/{package}/")
            self._last[package] = (out or "").strip() or None
        return self._last[package]

    def _stale(self, package: str, commit: str, last: str) -> str:
        if commit == "unknown" or self._run("cat-file", "-e", f"{commit}^{{commit}}") is None:
            return f"recorded commit {commit[:10]} is not in this repository"
        if self._run("merge-base", "--is-ancestor", last, commit) is not None:
            return ""
        date = (self._run("log", "-1", "--format=%cs", last) or "").strip()
        return f"recorded at {commit[:10]}; {package} code changed since, last in {last[:10]} ({date})"

    def _run(self, *args: str) -> str | None:
        """stdout of a read-only git command, None when it fails (or git is missing)."""
        try:
            done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True)
        except OSError:
            return None
        return done.stdout if done.returncode == 0 else None


if __name__ == "__main__":
    raise SystemExit(main())
