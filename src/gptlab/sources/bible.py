"""Public-domain Bibles shipped in the ``pythonbible-*`` wheels: one document per chapter and translation."""
from __future__ import annotations

import importlib
import re
from typing import Iterator

import xxhash

from gptlab.data.documents import Document

# ----------------------------------------------------------------------------- Bibles

# Public-domain translations shipped by the pythonbible-* wheels (gptlab dependencies).
# Chapter by chapter they form a ladder of near-duplicates of the KJV.
BIBLES = ("kjv", "akjv", "asv", "web")
_VERSE_NUM = re.compile(r"^\s*\d+\.\s*")


def _bible_chapters(code: str) -> list[tuple[str, str, str]]:
    """[(chapter key, title, text)] for one translation, or [] when its wheel is absent."""
    try:
        mod = importlib.import_module(f"pythonbible_{code}.plain_text_bible")
    except ImportError:
        return []
    bible = mod.bible
    content = bible.scripture_content
    chapters: dict[int, list[str]] = {}
    for vid, start in bible.verse_start_indices.items():
        end = bible.verse_end_indices[vid]
        verse = _VERSE_NUM.sub("", content[start:end]).strip()
        chapters.setdefault(vid // 1000, []).append(verse)
    titles = {b.value: t for b, t in bible.short_titles.items()}
    out = []
    for ch in sorted(chapters):
        book, num = divmod(ch, 1000)
        title = f"{titles.get(book, book)} {num}"
        out.append((f"{book:02d}{num:03d}", title, " ".join(chapters[ch])))
    return out


def bible_documents(max_docs: int) -> Iterator[Document]:
    """The same sample of chapters from each translation, so the near-dup ladder survives a cap."""
    per = max(1, max_docs // len(BIBLES))
    for code in BIBLES:
        chapters = _bible_chapters(code)
        chosen = sorted(chapters, key=lambda c: (xxhash.xxh64_intdigest(c[0].encode()), c[0]))[:per]
        for key, title, text in chosen:
            yield Document(id=f"bible-{code}:{key}", text=f"{title}\n\n{text}", source=f"bible-{code}",
                           domain="bible", meta={"translation": code.upper(), "chapter": title,
                                                 "group": f"bible:{key}", "lang": "en"})


