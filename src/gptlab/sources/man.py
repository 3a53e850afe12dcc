"""Man pages: a small roff reader that keeps the prose and drops the markup."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from gptlab.sources.candidates import Candidate, _order

# ----------------------------------------------------------------------------- man pages

MAN_ROOT = Path("/usr/share/man")
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),       # font changes
    (re.compile(r"\\s[+-]?\d"), ""),                    # size changes
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),       # string registers
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\(bu"), "•"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^%:]|\\c$"), ""),
    (re.compile(r"\\ "), " "),
]
_TEXT_MACROS = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB", "Nm", "Ar", "Fl", "Pa", "Dv", "Va", "Xr", "Em", "Sy"}
_HEAD_MACROS = {"SH", "SS", "Sh", "Ss"}
_BREAK_MACROS = {"PP", "LP", "P", "TP", "IP", "HP", "sp", "br", "RS", "RE", "Pp", "Bl", "El", "It", "nf", "fi", "EX", "EE"}


def _unescape(s: str) -> str:
    for rx, rep in _ESCAPES:
        s = rx.sub(rep, s)
    return s


def roff_to_text(src: str) -> str:
    """Turn man(7)/mdoc(7) source into readable plain text (enough for language modelling)."""
    out: list[str] = []
    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            macro, arg = parts[0], (parts[1] if len(parts) > 1 else "")
            arg = arg.replace('"', "")
            if macro in _HEAD_MACROS:
                out.extend(["", _unescape(arg).strip().upper(), ""])
            elif macro in _TEXT_MACROS:
                out.append(_unescape(arg))
            elif macro in _BREAK_MACROS:
                out.append("")
                if macro in ("IP", "It") and arg:
                    out.append(_unescape(arg.split()[0]) if macro == "IP" else _unescape(arg))
            elif macro == "TH" or macro == "Dt":
                out.append(_unescape(arg.split()[0]) if arg else "")
            continue
        out.append(_unescape(line))
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def man_pages() -> Iterator[Candidate]:
    if not MAN_ROOT.is_dir():
        return
    files = [p for p in MAN_ROOT.rglob("*") if p.is_file() and not p.is_symlink()
             and re.match(r"^man\w*$", p.parent.name)]
    for p in _order(files, MAN_ROOT):
        rel = p.relative_to(MAN_ROOT).as_posix()
        lang = rel.split("/")[0] if not rel.startswith("man") else "en"
        yield Candidate(p, f"man:{rel}", "man", "man", {"path": rel, "lang": lang}, transform=roff_to_text)


