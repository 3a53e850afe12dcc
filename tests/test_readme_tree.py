"""The README's architecture section names every package and module of the tree."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _architecture_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    return section


def test_every_module_of_the_tree_is_in_the_readme():
    block = _architecture_block()
    pkg = ROOT / "src" / "gptlab"
    missing = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if path.name == "__init__.py" and len(rel.parts) > 1:
            name = rel.parts[-2] + "/"
            if not re.search(rf"(^|\s){re.escape(name)}", block, re.M):
                missing.append(str(rel.parent) + "/")
        elif not re.search(rf"\b{re.escape(path.name)}\b", block):
            missing.append(str(rel))
    assert not missing, f"README architecture section lacks: {missing}"


def test_the_readme_names_no_module_that_is_gone():
    block = _architecture_block()
    pkg = ROOT / "src" / "gptlab"
    existing = {p.name for p in pkg.rglob("*.py")}
    named = {n for n in re.findall(r"\b([a-z_0-9]+\.py)\b", block) if not n.startswith("test_")}
    assert not named - existing, f"README names modules that do not exist: {sorted(named - existing)}"
