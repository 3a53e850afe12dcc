"""GPT-3's learned quality filter: hashed word n-grams, logistic regression, Pareto keep rule.

Positives are high-quality reference text, negatives are raw documents (GPT-3 used
WebText, Wikipedia and books against unfiltered Common Crawl). A document is kept iff
``pareto(alpha) > 1 - score`` with alpha = 9, so P(keep) = (2 - score)^-9: high scores are
almost always kept and some low-scored documents still survive. The draw is seeded by the
document id, so reruns keep the same documents.

The model is saved as ``classifier.json`` (settings, metrics) plus ``classifier.npz``
(weights): no pickle anywhere.

A model trained at the start of a run takes its negatives from the run's own input, so those
documents are later scored by the classifier they trained. That score is in-sample, and an
in-sample logistic regression on hashed n-grams all but memorises its negatives: they are
dropped because they were negatives, not because they look worse. So the run's model is
cross-fitted: each training negative is scored by the fold model that did not see it.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import xxhash

from gptlab.console import log, progress_task
from gptlab.data.documents import Document
from gptlab.data.readers import discover, read_input
from gptlab.data.steps import Step, StepParams
from gptlab.errors import InputError
from gptlab.manifest import Stage, atomic_path, atomic_write_json, stage_key
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
    cross_fit: "CrossFit | None" = None

    def score(self, texts: list[str]) -> np.ndarray:
        """P(high quality) for each text."""
        X = _vectorizer(self.n_features, self.ngram_max).transform(texts)
        return _sigmoid(X @ self.coef + self.intercept)

    def score_doc(self, doc: Document) -> tuple[float, int | None]:
        """(score, fold): a document the model was trained on is scored by the fold model
        fitted without it (fold is then its number), any other by the full model."""
        k = self.cross_fit.fold_of.get(id_key(doc.id)) if self.cross_fit is not None else None
        if k is None:
            return float(self.score([doc.text])[0]), None
        X = _vectorizer(self.n_features, self.ngram_max).transform([doc.text])
        return float(_sigmoid(X @ self.cross_fit.coef[k] + self.cross_fit.intercept[k])[0]), k

    def fingerprint(self) -> str:
        h = xxhash.xxh3_64(self.coef.tobytes())
        if self.cross_fit is not None:
            h.update(self.cross_fit.coef.tobytes())
        return h.hexdigest()

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        arrays: dict[str, np.ndarray] = {"coef": self.coef.astype(np.float32), "intercept": np.float64(self.intercept)}
        if self.cross_fit is not None:
            keys = np.array(sorted(self.cross_fit.fold_of), dtype=np.uint64)
            arrays.update(fold_coef=self.cross_fit.coef.astype(np.float32), fold_intercept=self.cross_fit.intercept,
                          fold_ids=keys, fold_of=np.array([self.cross_fit.fold_of[int(k)] for k in keys], dtype=np.int16))
        with atomic_path(folder / MODEL_NPZ) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        atomic_write_json(folder / MODEL_JSON, {"n_features": self.n_features, "ngram_max": self.ngram_max,
                                                **self.info})

    @classmethod
    def load(cls, folder: str | Path) -> "QualityModel":
        folder = Path(folder)
        if not (folder / MODEL_JSON).exists():
            raise FileNotFoundError(f"{folder}: no {MODEL_JSON} (run `gptlab data classifier train`)")
        info = json.loads((folder / MODEL_JSON).read_text())
        cf = None
        try:
            with np.load(folder / MODEL_NPZ, allow_pickle=False) as z:
                coef, intercept = z["coef"], float(z["intercept"])
                if "fold_coef" in z:
                    cf = CrossFit(coef=z["fold_coef"], intercept=z["fold_intercept"],
                                  fold_of=dict(zip(map(int, z["fold_ids"]), map(int, z["fold_of"]))))
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
            # A damaged or foreign file (object arrays are refused: they would unpickle).
            if isinstance(e, FileNotFoundError):
                raise
            raise InputError(f"{folder / MODEL_NPZ}: not a classifier model gptlab can read "
                             f"({' '.join(str(e).split())}); train one with `gptlab data classifier train`") from None
        return cls(coef=coef, intercept=intercept, n_features=info.pop("n_features"),
                   ngram_max=info.pop("ngram_max"), info=info, cross_fit=cf)


def _fit(X, y: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    clf = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced")
    clf.fit(X, y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _precision_recall(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    tp = int(((pred == 1) & (y == 1)).sum())
    return round(tp / max(1, int((pred == 1).sum())), 4), round(tp / max(1, int((y == 1).sum())), 4)


def _check_sizes(positives: list, negatives: list, at_least: int = 2) -> None:
    if len(positives) < at_least or len(negatives) < at_least:
        raise InputError(f"classifier: need at least {at_least} positives and {at_least} negatives, "
                         f"got {len(positives)} and {len(negatives)}")


def train_quality_model(positives: list[str], negatives: list[str], *, n_features: int = 2**18,
                        ngram_max: int = 2, heldout_fraction: float = 0.2, seed: int = 0,
                        max_chars: int = 20_000) -> QualityModel:
    """Fit on (1 - heldout_fraction) of each class; report precision/recall on the rest."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    _check_sizes(positives, negatives)
    texts = [t[:max_chars] for t in positives] + [t[:max_chars] for t in negatives]
    y = np.array([1] * len(positives) + [0] * len(negatives))
    Xtr, Xte, ytr, yte = train_test_split(texts, y, test_size=heldout_fraction, random_state=seed, stratify=y)
    vec = _vectorizer(n_features, ngram_max)
    coef, intercept = _fit(vec.transform(Xtr), ytr)
    precision, recall = _precision_recall(yte, (vec.transform(Xte) @ coef + intercept > 0).astype(int))
    info = {"positives": len(positives), "negatives": len(negatives), "heldout_docs": len(yte),
            "precision": precision, "recall": recall,
            "features": f"hashed word 1..{ngram_max}-grams, {n_features} buckets"}
    return QualityModel(coef=coef, intercept=intercept, n_features=n_features, ngram_max=ngram_max, info=info)


def id_key(doc_id: str) -> int:
    """A document id as the 64-bit key that cross-fitted folds are stored under."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8", "surrogatepass"))


@dataclass
class CrossFit:
    """Fold models for the run's own training negatives: ``fold_of[id_key(doc.id)]`` names the
    model (of ``coef[k]``, ``intercept[k]``) that was fitted without that document."""
    coef: np.ndarray          # (folds, n_features) float32
    intercept: np.ndarray     # (folds,)
    fold_of: dict[int, int]


def cross_fit_quality_model(positives: list[str], negatives: list[str], negative_ids: list[str], *,
                            folds: int = 5, n_features: int = 2**18, ngram_max: int = 2, seed: int = 0,
                            max_chars: int = 20_000) -> tuple[QualityModel, CrossFit, np.ndarray]:
    """The run's classifier: one model on every training document (it scores all other
    documents), plus ``folds`` models each fitted without one fold, which give every training
    document an out-of-fold score. Precision and recall are those of the out-of-fold scores,
    i.e. cross-validated. Returns (model, fold models, out-of-fold scores of the negatives)."""
    _check_sizes(positives, negatives, at_least=folds)
    texts = [t[:max_chars] for t in positives] + [t[:max_chars] for t in negatives]
    y = np.array([1] * len(positives) + [0] * len(negatives))
    # Folds by a seeded hash of each document's rank within its class: stratified, deterministic.
    rank = np.concatenate([np.arange(len(positives)), np.arange(len(negatives))])
    fold = np.array([xxhash.xxh64_intdigest(f"{seed}:{c}:{r}".encode()) % folds for c, r in zip(y, rank)])
    for k in range(folds):  # every fold needs both classes outside it
        if len(set(y[fold != k])) < 2:
            fold = np.array([r % folds for r in rank])
            break
    X = _vectorizer(n_features, ngram_max).transform(texts)
    fold_coef = np.zeros((folds, n_features), dtype=np.float32)
    fold_intercept = np.zeros(folds)
    oof = np.zeros(len(y))
    # One fit per fold plus the full model: seconds each on a real reference set, so a bar.
    with progress_task("classifier fit", folds + 1) as advance:
        coef, intercept = _fit(X, y)
        advance(1, info=f"full model, {len(y):,} docs")
        for k in range(folds):
            fold_coef[k], fold_intercept[k] = _fit(X[fold != k], y[fold != k])
            oof[fold == k] = _sigmoid(X[fold == k] @ fold_coef[k] + fold_intercept[k])
            advance(1, info=f"fold {k + 1}/{folds}")
    precision, recall = _precision_recall(y, (oof > 0.5).astype(int))
    info = {"positives": len(positives), "negatives": len(negatives), "heldout_docs": len(y),
            "precision": precision, "recall": recall, "validation": f"{folds}-fold cross-fitting",
            "features": f"hashed word 1..{ngram_max}-grams, {n_features} buckets"}
    neg_fold = fold[len(positives):]
    cf = CrossFit(coef=fold_coef, intercept=fold_intercept,
                  fold_of={id_key(i): int(k) for i, k in zip(negative_ids, neg_fold)})
    model = QualityModel(coef=coef, intercept=intercept, n_features=n_features, ngram_max=ngram_max, info=info)
    return model, cf, oof[len(positives):]


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
    # Where the model comes from: a saved model folder (`gptlab data classifier train`), or one
    # trained at the start of the run from a reference set the user names: files of curated
    # text (``positives``), or sources of the input (reference = "input"). "embedded" (the
    # Bibles and the stdlib's prose gptlab can read on any machine) is the demo's stand-in.
    # With none of these the step is skipped, with a notice: a classifier trained on an
    # arbitrary reference set drops whatever does not look like it (docs/data.md).
    model: str = ""
    positives: list[str] = field(default_factory=list)
    reference: Literal["none", "input", "embedded"] = "none"
    reference_sources: list[str] = field(default_factory=lambda: ["bible", "stdlib-prose"])
    max_train_docs: int = bounded(10, 10_000_000, default=4000)
    n_features: int = bounded(2**10, 2**24, default=2**18)
    ngram_max: int = bounded(1, 3, default=2)
    # The run's raw training documents are scored out of fold (module docstring).
    folds: int = bounded(2, 20, default=5)

    def check(self) -> None:
        if self.positives and self.reference != "none":
            raise ValueError(f"positives and reference = {self.reference!r} both name a reference set; keep one")
        if self.model and (self.positives or self.reference != "none"):
            raise ValueError("model is a trained classifier; it takes no positives or reference")

    def reference_given(self) -> bool:
        return bool(self.model or self.positives or self.reference != "none")


SKIPPED_NOTICE = ("classifier skipped: no reference set given (set positives = [files of curated text], "
                  "reference = \"input\" with reference_sources, or model = DIR)")


class QualityClassifier(Step):
    Params = ClassifierParams

    def __init__(self, name: str, params: ClassifierParams):
        super().__init__(name, params)
        self.model: QualityModel | None = None
        self.skipped: str | None = None
        if not params.model and params.reference == "input":
            # The reference set is curated text; GPT-3 filtered only the raw crawl.
            self._skip |= set(params.reference_sources)

    def bind(self, model_dir: str | Path) -> None:
        info = json.loads((Path(model_dir) / MODEL_JSON).read_text()) if (Path(model_dir) / MODEL_JSON).exists() else {}
        if info.get("skipped"):
            self.skipped = info["skipped"]
            return
        self.model = QualityModel.load(model_dir)

    def __call__(self, doc: Document) -> str | None:
        if self.skipped:
            return None  # every document passes; the run's classifier info carries the notice
        return super().__call__(doc)

    def score_inputs(self) -> str:
        # Scores from another model are not this model's scores.
        assert self.model is not None
        return self.model.fingerprint()

    def scores(self, doc: Document) -> dict[str, Any]:
        assert self.model is not None, "classifier step used before its model was bound"
        score, fold = self.model.score_doc(doc)
        out: dict[str, Any] = {"score": round(score, 4)}
        if fold is not None:
            out["fold"] = fold  # a training document, scored by the model that did not see it
        return out

    def decide(self, doc: Document, s: dict[str, Any]) -> str | None:
        if self.on("quality_classifier") and not pareto_keep(s["score"], doc.id, self.p.alpha, self.p.seed):
            return "quality_classifier"
        return None


def keep_rates(funnel: dict[str, Any], step: str = "classifier") -> dict[str, float]:
    """The share of each source's documents that ``step`` kept, from a curate funnel (the
    summary's ``funnel``): what the classifier did to each source, in one number."""
    for st in funnel.get("steps", []):
        if st["name"] == step:
            return {src: round(c.get("out_docs", 0) / c["in_docs"], 4)
                    for src, c in sorted(st["sources"].items()) if c.get("in_docs")}
    return {}


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


def _read_texts(paths: list[str], max_docs: int) -> list[str]:
    """Texts of ``paths`` (files or folders), read with the curation readers."""
    out: list[str] = []
    for shard in discover(paths):
        for rec in read_input(shard, 20_000_000):
            if len(out) >= max_docs:
                return out
            if isinstance(rec, Document):
                out.append(rec.text)
    return out


def fit_for_run(params: ClassifierParams, sample_docs: Iterable[Document], out_dir: Path, seed: int) -> dict:
    """Train the run's classifier: the reference set vs raw documents of the input, cross-fitted
    so that those raw documents are scored out of sample; or, with no reference set given,
    record that the step is skipped. Returns the info saved in ``classifier.json``."""
    if not params.reference_given():
        info = {"skipped": SKIPPED_NOTICE, "positives": 0, "negatives": 0, "heldout_docs": 0,
                "precision": 0.0, "recall": 0.0, "reference_set": "none", "negatives_from": "none"}
        log(f"curate: {SKIPPED_NOTICE}")
        atomic_write_json(Path(out_dir) / MODEL_JSON, info)
        return info
    ref = set(params.reference_sources)
    positives: list[str] = []
    negatives: list[Document] = []
    half = max(1, params.max_train_docs // 2)
    for d in sample_docs:
        # The input's copies of the reference sources are never negatives (positives files
        # name no input source, so there every document is raw).
        is_ref = params.reference != "none" and (d.source in ref or d.domain in ref)
        if is_ref:
            if params.reference == "input" and len(positives) < half:
                positives.append(d.text)
        elif len(negatives) < half:
            negatives.append(d)
    if params.positives:
        positives = _read_texts(params.positives, half)
        described = "files " + ", ".join(params.positives)
        if len(positives) < 2:
            raise ConfigError(f"classifier.positives: {len(positives)} documents in {params.positives}; need at least 2")
    elif params.reference == "embedded":
        # Balanced classes; harvesting reference text costs ~20 ms a document, so take no more than needed.
        positives, described = embedded_reference(min(half, max(200, len(negatives))))
    else:
        described = f"input sources {', '.join(sorted(ref))}"
        if len(positives) < 2:
            raise ConfigError(f"classifier.reference_sources: the input has {len(positives)} documents from "
                              f"{sorted(ref)}; need at least 2")
    if len(negatives) < 2:
        raise ConfigError(f"classifier: the input has {len(negatives)} raw documents to train on; need at least 2")
    folds = min(params.folds, len(positives), len(negatives))  # a tiny input gets fewer folds
    model, cf, oof = cross_fit_quality_model(positives, [d.text for d in negatives], [d.id for d in negatives],
                                             folds=folds, n_features=params.n_features,
                                             ngram_max=params.ngram_max, seed=seed)
    model.cross_fit = cf
    # The keep rate the Pareto rule gives each source's raw documents, from their out-of-fold
    # scores: P(keep) = (2 - s)^-alpha, before the run applies it.
    by_source: dict[str, list[float]] = {}
    for d, sc in zip(negatives, oof):
        by_source.setdefault(d.source, []).append(keep_probability(float(sc), params.alpha))
    model.info.update({"reference_set": described, "negatives_from": "raw documents of the input (scored out of fold)",
                       "expected_keep_rate_by_source": {k: round(float(np.mean(v)), 4) for k, v in sorted(by_source.items())}})
    model.save(out_dir)
    return model.info


def train_from_paths(positives: list[str], negatives: list[str], out_dir: str | Path, max_docs: int = 20000,
                     seed: int = 0, *, force: bool = False) -> dict:
    """`gptlab data classifier train`: read both sets with the curation readers, train, save.
    A stage like the others: it refuses a folder it did not make (unless ``force``)."""
    key = stage_key({"positives": list(map(str, positives)), "negatives": list(map(str, negatives)),
                     "max_docs": max_docs, "seed": seed})
    with Stage(out_dir, "classifier", key, force=force) as st:
        if st.complete:
            return st.summary
        model = train_quality_model(_read_texts(positives, max_docs), _read_texts(negatives, max_docs), seed=seed)
        model.info.update({"reference_set": ", ".join(map(str, positives)),
                           "negatives_from": ", ".join(map(str, negatives))})
        model.save(st.dir)
        st.done([MODEL_JSON, MODEL_NPZ], model.info)
    i = model.info
    log(f"classifier: {i['positives']} positives vs {i['negatives']} negatives; on {i['heldout_docs']} held-out "
        f"docs precision {i['precision']:.3f}, recall {i['recall']:.3f} → {out_dir}")
    return i
