"""Python's own text: the standard library (code, docstrings, comments) and installed packages' READMEs and licences."""
from __future__ import annotations

import ast
import re
import site
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

from gptlab.sources.candidates import Candidate, _order

# ----------------------------------------------------------------------------- stdlib

def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files() -> tuple[Path, list[Path]]:
    root = _stdlib_dir()
    files = [p for p in root.rglob("*.py") if "site-packages" not in p.parts and "dist-packages" not in p.parts]
    return root, files


def stdlib_code() -> Iterator[Candidate]:
    root, files = _stdlib_files()
    for p in _order(files, root):
        rel = p.relative_to(root).as_posix()
        yield Candidate(p, f"stdlib-code:{rel}", "code", "stdlib-code", {"path": rel, "lang": "python"})


_COMMENT = re.compile(r"^\s*#+(.*)$")


def extract_prose(source: str) -> str:
    """Docstrings (via ast) and comments (via tokenize) of one Python module, in order."""
    parts: list[tuple[int, str]] = []
    try:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    parts.append((getattr(node, "lineno", 0), doc.strip()))
    except (SyntaxError, ValueError):
        pass  # not parseable by this Python (e.g. lib2to3 test data): keep the comments only
    # Full-line comments, consecutive lines joined into one paragraph. (A regex over
    # lines is ~20x faster than the tokenize module and misses only trailing comments.)
    block: list[str] = []
    start = 0
    for lineno, line in enumerate(source.splitlines(), 1):
        m = _COMMENT.match(line)
        body = m.group(1).strip() if m else ""
        if m and body and not body.startswith("!"):
            if not block:
                start = lineno
            block.append(body)
            continue
        if block:
            parts.append((start, " ".join(block)))
            block = []
    if block:
        parts.append((start, " ".join(block)))
    parts.sort(key=lambda x: x[0])
    return "\n\n".join(text for _, text in parts)


def stdlib_prose() -> Iterator[Candidate]:
    root, files = _stdlib_files()
    for p in _order(files, root):
        rel = p.relative_to(root).as_posix()
        yield Candidate(p, f"stdlib-prose:{rel}", "prose", "stdlib-prose", {"path": rel, "lang": "en"},
                        transform=extract_prose)


# ----------------------------------------------------------------------------- installed packages

def _site_dirs() -> list[Path]:
    """Every site-packages we can see: this environment's and the base interpreter's."""
    dirs = {Path(p) for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)}
    try:
        dirs.update(Path(p) for p in site.getsitepackages())
    except AttributeError:
        pass
    base = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    dirs.add(base)
    dirs.add(Path("/usr/lib/python3/dist-packages"))
    return sorted(d for d in dirs if d.is_dir())


def _dist_infos() -> list[Path]:
    out = []
    for d in _site_dirs():
        out.extend(p for p in d.glob("*.dist-info") if p.is_dir())
    return sorted({p.resolve() for p in out})


def _long_description(text: str) -> str:
    """The body of a METADATA file (after the header block), or its Description field."""
    head, sep, body = text.partition("\n\n")
    if body.strip():
        return body
    msg_lines = [ln[len("Description: "):] for ln in head.splitlines() if ln.startswith("Description: ")]
    return "\n".join(msg_lines)


def pkg_readme() -> Iterator[Candidate]:
    infos = _dist_infos()
    for p in _order(infos, Path("/")):
        meta = p / "METADATA"
        if meta.is_file():
            yield Candidate(meta, f"pkg-readme:{p.parent.name}/{p.name}", "docs", "pkg-readme",
                            {"package": p.name.removesuffix(".dist-info"), "lang": "en"},
                            transform=_long_description)


_LICENSE_RE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS|COPYRIGHT)", re.I)


def pkg_license() -> Iterator[Candidate]:
    files = []
    for info in _dist_infos():
        for p in info.rglob("*"):
            if p.is_file() and _LICENSE_RE.match(p.name):
                files.append(p)
    for p in _order(files, Path("/")):
        rel = "/".join(p.parts[-3:])
        yield Candidate(p, f"pkg-license:{rel}", "license", "pkg-license", {"path": rel})


