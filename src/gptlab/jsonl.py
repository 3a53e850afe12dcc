"""Reading a user's small JSONL file (tasks, labelled sets) with errors that name file and line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def jsonl_objects(path: str | Path, error: type[Exception], what: str = "file") -> Iterator[tuple[str, dict]]:
    """Yield ``("FILE:LINE", object)`` for each non-blank line; anything that is not a JSON
    object raises ``error`` naming the file and line. A missing file is a FileNotFoundError."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: {what} not found") from None
    except UnicodeDecodeError as e:
        raise error(f"{p}: not UTF-8 text ({e})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{p}:{lineno}: not JSON ({e.msg})") from None
        except RecursionError:
            raise error(f"{p}:{lineno}: not JSON (nested too deeply)") from None
        except ValueError as e:   # an integer of more digits than Python converts
            raise error(f"{p}:{lineno}: not JSON ({str(e).split(';')[0]})") from None
        if not isinstance(obj, dict):
            raise error(f"{p}:{lineno}: expected a JSON object")
        yield f"{p}:{lineno}", obj
