"""/usr/share/doc: Debian packages' copyright files, changelogs and READMEs."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from gptlab.sources.candidates import Candidate, _order

# ----------------------------------------------------------------------------- /usr/share/doc

DOC_ROOT = Path("/usr/share/doc")


def _doc_files(pattern: str) -> list[Path]:
    if not DOC_ROOT.is_dir():
        return []
    out = []
    for pkg in sorted(DOC_ROOT.iterdir()):
        if pkg.is_dir() and not pkg.is_symlink():
            out.extend(p for p in pkg.glob(pattern) if p.is_file())
    return out


def debian_copyright() -> Iterator[Candidate]:
    for p in _order(_doc_files("copyright"), DOC_ROOT):
        rel = p.relative_to(DOC_ROOT).as_posix()
        yield Candidate(p, f"debian-copyright:{rel}", "license", "debian-copyright", {"path": rel})


def debian_changelog() -> Iterator[Candidate]:
    for p in _order(_doc_files("changelog*"), DOC_ROOT):
        rel = p.relative_to(DOC_ROOT).as_posix()
        yield Candidate(p, f"debian-changelog:{rel}", "changelog", "debian-changelog", {"path": rel})


def debian_readme() -> Iterator[Candidate]:
    files = [p for p in _doc_files("README*") if p.suffix in ("", ".gz", ".md", ".txt", ".rst")]
    for p in _order(files, DOC_ROOT):
        rel = p.relative_to(DOC_ROOT).as_posix()
        yield Candidate(p, f"debian-readme:{rel}", "docs", "debian-readme", {"path": rel})


