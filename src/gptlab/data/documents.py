"""The Document record and its shard readers/writers.

A document is ``{id, text, source, domain, meta}``. Ids are unique and stable across
runs on the same inputs. Shards are zstd-compressed JSON lines, written atomically.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import zstandard

from gptlab.errors import InputError
from gptlab.manifest import atomic_path


@dataclass
class Document:
    id: str
    text: str
    source: str
    domain: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return len(self.text.encode("utf-8", errors="surrogatepass"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


class ShardFormatError(InputError):
    """A shard line that is not a valid document (or a file that is no shard); the message
    names file and line. An InputError, so the CLI prints it as one line."""


def write_shard(path: str | Path, docs: Iterable[Document], level: int = 3) -> int:
    """Write documents as JSONL.zst atomically; returns the count written."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw:
            cctx = zstandard.ZstdCompressor(level=level)
            with cctx.stream_writer(raw, closefd=False) as zw:
                for d in docs:
                    zw.write(d.to_json().encode("utf-8", errors="surrogatepass") + b"\n")
                    n += 1
    return n


def read_shard(path: str | Path, quarantine: "Counter | None" = None) -> Iterator[Document]:
    """Read one shard. A malformed line raises ShardFormatError naming file and line, or,
    when a ``quarantine`` counter is given, is counted under a reason and skipped."""
    path = Path(path)
    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        text = io.TextIOWrapper(reader, encoding="utf-8")
        lines = enumerate(text, 1)
        while True:
            try:
                lineno, line = next(lines)
            except StopIteration:
                return
            except (zstandard.ZstdError, UnicodeDecodeError, EOFError) as e:
                if quarantine is None:
                    raise ShardFormatError(f"{path}: unreadable shard ({e})") from None
                quarantine["unreadable-shard-tail"] += 1
                return
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                yield Document(id=d["id"], text=d["text"], source=d["source"], domain=d["domain"],
                               meta=d.get("meta") or {})
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                if quarantine is not None:
                    quarantine["malformed-line"] += 1
                    continue
                raise ShardFormatError(f"{path}:{lineno}: not a document ({e})") from None


def read_shards(paths: Iterable[str | Path]) -> Iterator[Document]:
    for p in paths:
        yield from read_shard(p)


def shard_paths(folder: str | Path, pattern: str = "*.jsonl.zst") -> list[Path]:
    return sorted(Path(folder).glob(pattern))
