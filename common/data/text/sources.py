"""Where documents come from: the Debian packages of each corpus (or local files), and reading one as clean text.

A `Source` names a package and a regex over the files it installed (from dpkg's file lists), or a local
file/folder. `enumerate_documents` lists a source's candidate documents in a stable order; `read_document`
turns one into normalised text, or None when it is too small, mostly links, or not UTF-8.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.data.text.cleaning import html_to_text, normalise, roff_to_text
from common.data.text.errors import CorpusError

APT_LIST = "tools/apt-packages.txt"
MAX_LINK_FRACTION = 0.5


@dataclass(frozen=True)
class Source:
    """Where documents come from: a Debian package's files (filtered by regex) or a local file/folder.

    `reader` is how one file becomes text: "html", "man" (roff), "kjv" (the `bible` program) or "text".
    """

    name: str
    reader: str
    package: str | None = None
    include: str = ""
    exclude: str = ""
    licence: str = "unknown"
    path: str | None = None


_SPHINX_JUNK = r"/(genindex[^/]*|search|py-modindex|modindex)\.html$|/_static/|/_sources/|/_images/|/_modules/"


def _html_docs(name: str, package: str, root: str, licence: str) -> Source:
    """A package's HTML pages under `root` (Sphinx index/search/source pages excluded)."""
    return Source(name, "html", package, rf"^{re.escape(root)}/.+\.html$", _SPHINX_JUNK, licence)


_MAN_PAGES = r"^/usr/share/man/man\d/.+\.\d\w*\.gz$"
_MAN_LICENCE = "GPL-2+, BSD and other free licences"
ENGLISH_SOURCES: tuple[Source, ...] = (
    _html_docs("linux-doc", "linux-doc-6.1", "/usr/share/doc/linux-doc-6.1/html", "GPL-2"),
    _html_docs("python-doc", "python3.11-doc", "/usr/share/doc/python3.11/html", "PSF-2.0"),
    _html_docs("postgresql-doc", "postgresql-doc-15", "/usr/share/doc/postgresql-doc-15/html", "PostgreSQL"),
    _html_docs("django-doc", "python-django-doc", "/usr/share/doc/python-django-doc/html", "BSD-3-Clause"),
    _html_docs("git-doc", "git-doc", "/usr/share/doc/git-doc", "GPL-2"),
    _html_docs("debian-handbook", "debian-handbook", "/usr/share/doc/debian-handbook/html/en-US",
               "GPL-2.0+ or CC-BY-SA-3.0"),
    Source("debian-reference", "html", "debian-reference-en", r"^/usr/share/debian-reference/.+\.en\.html$", "",
           "GPL-2+"),
    _html_docs("pandas-doc", "python-pandas-doc", "/usr/share/doc/python-pandas-doc/html", "BSD-3-Clause"),
    _html_docs("scipy-doc", "python-scipy-doc", "/usr/share/doc/python-scipy-doc/html", "BSD-3-Clause"),
    _html_docs("sklearn-doc", "python-sklearn-doc", "/usr/share/doc/python-sklearn-doc/html", "BSD-3-Clause"),
    _html_docs("sqlalchemy-doc", "python-sqlalchemy-doc", "/usr/share/doc/python-sqlalchemy-doc/html", "MIT"),
    _html_docs("sqlite-doc", "sqlite3-doc", "/usr/share/doc/sqlite3", "public domain"),
    _html_docs("nodejs-doc", "nodejs-doc", "/usr/share/doc/nodejs/api", "MIT"),
    _html_docs("sphinx-doc", "sphinx-doc", "/usr/share/doc/sphinx-doc/html", "BSD-2-Clause"),
    _html_docs("flask-doc", "python-flask-doc", "/usr/share/doc/python-flask-doc/html", "BSD-3-Clause"),
    _html_docs("scrapy-doc", "python-scrapy-doc", "/usr/share/doc/python-scrapy-doc/html", "BSD-3-Clause"),
    Source("vim-doc", "text", "vim-runtime", r"^/usr/share/vim/vim90/doc/.+\.txt(\.gz)?$", "", "Vim"),
    Source("manpages", "man", "manpages", _MAN_PAGES, "", _MAN_LICENCE),
    Source("manpages-dev", "man", "manpages-dev", _MAN_PAGES, "", _MAN_LICENCE),
    Source("kjv-bible", "kjv", "bible-kjv-text", licence="public domain"),
)
_STDLIB_PY = r"^/usr/lib/python3\.11/.+\.py$"
CODE_SOURCES: tuple[Source, ...] = tuple(
    Source(f"python-stdlib:{package}", "text", package, _STDLIB_PY, r"-packages/", "PSF-2.0")
    for package in ("libpython3.11-minimal", "libpython3.11-stdlib", "python3-distutils", "python3-lib2to3")
)
CORPORA = {"english": ENGLISH_SOURCES, "code": CODE_SOURCES}


def local_sources(paths: list[Path]) -> list[Source]:
    """Caller-given files/folders as Sources (licence "user-provided")."""
    specs = []
    for path in map(Path, paths):
        if not path.exists():
            raise CorpusError(f"source {path} does not exist")
        specs.append(Source(path.name, "auto", licence="user-provided", path=str(path.resolve())))
    return specs


_LOCAL_SUFFIXES = {".txt", ".md", ".rst", ".py", ".html", ".htm"}


def enumerate_documents(spec: Source) -> list[tuple[Source, str, str]]:
    """(source, doc id, locator) for every candidate document of `spec`, in a stable order."""
    if spec.path is not None:
        root = Path(spec.path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        files = [p for p in files if p.suffix in _LOCAL_SUFFIXES or (p.suffix == ".gz" and Path(p.stem).suffix in _LOCAL_SUFFIXES)]
        base = root if root.is_dir() else root.parent
        return [(spec, f"{spec.name}/{p.relative_to(base).as_posix()}", str(p)) for p in files]
    if spec.reader == "kjv":
        return [(spec, f"{spec.name}/{title}", title) for title in _kjv_chapters()]
    include, exclude = re.compile(spec.include), re.compile(spec.exclude) if spec.exclude else None
    files = [f for f in _dpkg_files(spec.package) if include.search(f) and not (exclude and exclude.search(f))]
    files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
    return [(spec, f"{spec.name}{f}", f) for f in files]


def source_info(spec: Source) -> dict[str, Any]:
    """Name, package, installed version and licence of a source (for the manifest)."""
    version = None
    if spec.package:
        run = subprocess.run(["dpkg-query", "-W", "-f=${Version}", spec.package], capture_output=True, text=True)
        version = run.stdout.strip() or None
    copyright_file = f"/usr/share/doc/{spec.package}/copyright" if spec.package else None
    return {"name": spec.name, "package": spec.package, "version": version, "licence": spec.licence,
            "copyright_file": copyright_file, "path": spec.path}


def read_document(item: tuple[Source, str, str], min_doc_bytes: int) -> str | None:
    """Read and clean one document (an `enumerate_documents` item); None when tiny, link-only or not UTF-8."""
    spec, _, locator = item
    reader = spec.reader
    if reader == "kjv":
        raw = _kjv_chapters()[locator]
    else:
        try:
            raw = _read_bytes(locator).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if reader == "auto":
        name = locator.removesuffix(".gz")
        reader = "html" if name.endswith((".html", ".htm")) else "text"
    if reader == "html":
        text, link_chars = html_to_text(raw)
        if link_chars > MAX_LINK_FRACTION * max(len(text), 1):
            return None
    elif reader == "man":
        text = roff_to_text(raw)
    else:
        text = raw
    text = normalise(text)
    return text if len(text.encode()) >= min_doc_bytes else None


def _dpkg_files(package: str) -> list[str]:
    """Paths installed by a Debian package (from dpkg's file list), or CorpusError naming the package."""
    info = Path("/var/lib/dpkg/info")
    lists = [info / f"{package}.list", *sorted(info.glob(f"{package}:*.list"))]
    found = [p for p in lists if p.exists()]
    if not found:
        raise CorpusError(_missing_packages(package))
    return sorted({line for p in found for line in p.read_text().splitlines() if line})


def _missing_packages(*packages: str) -> str:
    return (f"Debian package(s) {', '.join(packages)} not installed: run `apt-get install -y {' '.join(packages)}` "
            f"(all corpus packages are listed in {APT_LIST}), or pass --source DIR")


def _read_bytes(path: str) -> bytes:
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        return f.read()


@functools.cache
def _kjv_chapters() -> dict[str, str]:
    """King James Bible as {"Genesis 1": text, ...}: 1189 chapters, one verse per line (via `bible`)."""
    if shutil.which("bible") is None or not Path("/usr/lib/bible.data").exists():
        raise CorpusError(_missing_packages("bible-kjv", "bible-kjv-text"))
    out = subprocess.run(["bible", "gen1:1-rev22:21"], capture_output=True, text=True, check=True,
                         stdin=subprocess.DEVNULL).stdout
    parts = re.split(r"^(\S[^\n]* \d+)\n\n", out, flags=re.M)
    chapters = {}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        verses = re.split(r"^\s+\d+ ", body, flags=re.M)
        chapters[title] = "\n".join(" ".join(v.split()) for v in verses if v.strip())
    return chapters
