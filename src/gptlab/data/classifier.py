"""GPT-3's learned quality filter: hashed word n-grams, logistic regression, Pareto keep rule.

Positives are high-quality reference text, negatives are raw documents (GPT-3 used
WebText, Wikipedia and books against unfiltered Common Crawl). A document is kept iff
``pareto(alpha) > 1 - score`` with alpha = 9, so P(keep) = (2 - score)^-9: high scores are
almost always kept and some low-scored documents still survive. The draw is seeded by the
document id, so reruns keep the same documents.

The model is saved as ``classifier.json`` (settings, metrics) plus ``classifier.npz``
(weights): no pickle anywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import xxhash

from gptlab.console import log
from gptlab.data.documents import Document
from gptlab.data.readers import discover, read_input
from gptlab.data.steps import Step, StepParams
from gptlab.manifest import atomic_path, atomic_write_json
from gptlab.schema import ConfigError, bounded
from gptlab.sources.harvest import HarvestStats, harvest_source

MODEL_JSON, MODEL_NPZ = "classifier.json", "classifier.npz"


def _vectorizer(n_features: int, ngram_max: int):
    from sklearn.feature_extraction.text import HashingVectorizer  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    # Stateless (murmurhash of each n-gram), so it needs no vocabulary to save or load.
    return HashingVectorizer(n_features=n_features, ngram_range=(1, ngram_max), alternate_sign=False,
                             lowercase=True, norm="l2", dtype=np.float32)


@dataclass
class QualityModel:
    coef: np.ndarray
    intercept: float
    n_features: int
    ngram_max: int
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, texts: list[str]) -> np.ndarray:
        """P(high quality) for each text."""
        X = _vectorizer(self.n_features, self.ngram_max).transform(texts)
        z = X @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        with atomic_path(folder / MODEL_NPZ) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, coef=self.coef.astype(np.float32), intercept=np.float64(self.intercept))
        atomic_write_json(folder / MODEL_JSON, {"n_features": self.n_features, "ngram_max": self.ngram_max,
                                                **self.info})

    @classmethod
    def load(cls, folder: str | Path) -> "QualityModel":
        folder = Path(folder)
        if not (folder / MODEL_JSON).exists():
            raise FileNotFoundError(f"{folder}: no {MODEL_JSON} (run `gptlab data classifier train`)")
        info = json.loads((folder / MODEL_JSON).read_text())
        with np.load(folder / MODEL_NPZ, allow_pickle=False) as z:
            coef, intercept = z["coef"], float(z["intercept"])
        return cls(coef=coef, intercept=intercept, n_features=info.pop("n_features"),
                   ngram_max=info.pop("ngram_max"), info=info)


def train_quality_model(positives: list[str], negatives: list[str], *, n_features: int = 2**18,
                        ngram_max: int = 2, heldout_fraction: float = 0.2, seed: int = 0,
                        max_chars: int = 20_000) -> QualityModel:
    """Fit on (1 - heldout_fraction) of each class; report precision/recall on the rest."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    from sklearn.metrics import precision_score, recall_score  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    from sklearn.model_selection import train_test_split  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    if len(positives) < 2 or len(negatives) < 2:
        raise ValueError(f"classifier: need at least 2 positives and 2 negatives, got {len(positives)} and {len(negatives)}")
    texts = [t[:max_chars] for t in positives] + [t[:max_chars] for t in negatives]
    y = np.array([1] * len(positives) + [0] * len(negatives))
    Xtr, Xte, ytr, yte = train_test_split(texts, y, test_size=heldout_fraction, random_state=seed, stratify=y)
    vec = _vectorizer(n_features, ngram_max)
    clf = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced")
    clf.fit(vec.transform(Xtr), ytr)
    pred = clf.predict(vec.transform(Xte))
    info = {"positives": len(positives), "negatives": len(negatives), "heldout_docs": len(yte),
            "precision": round(float(precision_score(yte, pred, zero_division=0)), 4),
            "recall": round(float(recall_score(yte, pred, zero_division=0)), 4),
            "features": f"hashed word 1..{ngram_max}-grams, {n_features} buckets"}
    return QualityModel(coef=clf.coef_[0].astype(np.float32), intercept=float(clf.intercept_[0]),
                        n_features=n_features, ngram_max=ngram_max, info=info)


def pareto_keep(score: float, doc_id: str, alpha: float, seed: int) -> bool:
    """GPT-3's rule ``np.random.pareto(alpha) > 1 - score``, with the draw seeded by the id."""
    draw = np.random.default_rng(xxhash.xxh64_intdigest(f"{seed}:{doc_id}".encode())).pareto(alpha)
    return bool(draw > 1.0 - score)


def keep_probability(score: float, alpha: float = 9.0) -> float:
    """P(pareto(alpha) > 1 - s) = (2 - s)^-alpha for a Lomax draw."""
    return float((2.0 - score) ** -alpha)


# ----------------------------------------------------------------------------- the step

@dataclass
class ClassifierParams(StepParams):
    alpha: float = bounded(0.1, 1000, default=9.0)
    seed: int = bounded(0, 2**31 - 1, default=0)
    # Where the model comes from: a saved model folder, or trained at the start of the run
    # from a reference set, either sources of the input ("input") or the curated texts
    # gptlab can read on any machine ("embedded": the Bibles and the stdlib's prose).
    model: str = ""
    reference: Literal["input", "embedded"] = "embedded"
    reference_sources: list[str] = field(default_factory=lambda: ["bible", "stdlib-prose"])
    max_train_docs: int = bounded(10, 10_000_000, default=4000)
    n_features: int = bounded(2**10, 2**24, default=2**18)
    ngram_max: int = bounded(1, 3, default=2)


class QualityClassifier(Step):
    Params = ClassifierParams

    def __init__(self, name: str, params: ClassifierParams):
        super().__init__(name, params)
        self.model: QualityModel | None = None
        if not params.model and params.reference == "input":
            # The reference set is curated text; GPT-3 filtered only the raw crawl.
            self._skip |= set(params.reference_sources)

    def bind(self, model_dir: str | Path) -> None:
        self.model = QualityModel.load(model_dir)

    def score_inputs(self) -> str:
        # Scores from another model are not this model's scores.
        assert self.model is not None
        return xxhash.xxh3_64_hexdigest(self.model.coef.tobytes())

    def scores(self, doc: Document) -> dict[str, Any]:
        assert self.model is not None, "classifier step used before its model was bound"
        return {"score": round(float(self.model.score([doc.text])[0]), 4)}

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        if self.on("quality_classifier") and not pareto_keep(s["score"], doc.id, self.p.alpha, self.p.seed):
            return "quality_classifier"
        return None


def _take(docs: Iterable[Document], n: int) -> list[str]:
    out = []
    for d in docs:
        if len(out) >= n:
            break
        out.append(d.text)
    return out


def embedded_reference(max_docs: int) -> tuple[list[str], str]:
    """Curated text that ships with gptlab's own dependencies: Bible chapters and the
    standard library's documentation prose, harvested from this machine."""
    half = max(1, max_docs // 2)
    texts = []
    for name in ("bible", "stdlib-prose"):
        texts += _take(harvest_source(name, half, 10**9, 200_000, HarvestStats()), half)
    return texts, "embedded: Bible chapters (pythonbible wheels) + Python standard-library documentation prose"


def fit_for_run(params: ClassifierParams, sample_docs: Iterable[Document], out_dir: Path, seed: int) -> dict:
    """Train the run's classifier: reference set vs raw documents of the input."""
    ref = set(params.reference_sources)
    positives: list[str] = []
    negatives: list[str] = []
    half = max(1, params.max_train_docs // 2)
    for d in sample_docs:
        is_ref = d.source in ref or d.domain in ref
        if params.reference == "input" and is_ref:
            if len(positives) < half:
                positives.append(d.text)
        elif not is_ref and len(negatives) < half:
            negatives.append(d.text)
    if params.reference == "embedded":
        # Balanced classes; harvesting reference text costs ~20 ms a document, so take no more than needed.
        positives, described = embedded_reference(min(half, max(200, len(negatives))))
    else:
        described = f"input sources {', '.join(sorted(ref))}"
        if len(positives) < 2:
            raise ConfigError(f"classifier.reference_sources: the input has no documents from {sorted(ref)}")
    model = train_quality_model(positives, negatives, n_features=params.n_features, ngram_max=params.ngram_max,
                                seed=seed)
    model.info.update({"reference_set": described, "negatives_from": "raw documents of the input"})
    model.save(out_dir)
    return model.info


def train_from_paths(positives: list[str], negatives: list[str], out_dir: str | Path, max_docs: int = 20000,
                     seed: int = 0) -> dict:
    """`gptlab data classifier train`: read both sets with the curation readers, train, save."""

    def texts(paths: list[str]) -> list[str]:
        out: list[str] = []
        for shard in discover(paths):
            for rec in read_input(shard, 20_000_000):
                if len(out) >= max_docs:
                    return out
                if isinstance(rec, Document):
                    out.append(rec.text)
        return out

    model = train_quality_model(texts(positives), texts(negatives), seed=seed)
    model.info.update({"reference_set": ", ".join(map(str, positives)), "negatives_from": ", ".join(map(str, negatives))})
    model.save(out_dir)
    i = model.info
    log(f"classifier: {i['positives']} positives vs {i['negatives']} negatives; on {i['heldout_docs']} held-out "
        f"docs precision {i['precision']:.3f}, recall {i['recall']:.3f} → {out_dir}")
    return i
