"""What each model makes of a question: word pieces, vectors, similarities and a 2-D map.

`embed_texts` backs the app's "Question embedding" tab; scripts can call it the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .engine import RetrievalEngine
from .errors import InvalidInputError, LfqaError
from .inputs import check_passages, check_texts

MAP_PASSAGES = 200  # corpus passages drawn on the 2-D map (an even sample of the corpus)...
# ...when the model's index is built (its vectors are at hand); else this many are embedded, once
# per model and corpus: 4 full-size models x 48 passages stay well inside a request's budget on
# a 2-core CPU in fp32 (200 took ~90 s there).
MAP_PASSAGES_UNINDEXED = 48


@dataclass
class ModelEmbedding:
    """One model's view of the entered texts (questions first, then passages)."""

    model: str
    dim: int = 0
    pieces: list[list[str]] = field(default_factory=list)  # word pieces per text, special tokens included
    vectors: np.ndarray | None = None  # float32 [n, dim]
    norms: np.ndarray | None = None  # [n]
    similarity: np.ndarray | None = None  # [n, n] dot products: the score this model retrieves by
    map_points: list[dict] = field(
        default_factory=list
    )  # {"x", "y", "kind" ("corpus", "question", "passage"), "label"}: PCA of the corpus sample and the texts
    error: str | None = None


@dataclass
class EmbeddingReport:
    texts: list[str]
    kinds: list[str]  # "question" or "passage", per text
    models: dict[str, ModelEmbedding]


def pca_2d(reference: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project `reference` [m, d] and `others` [n, d] on the reference's first two principal axes."""
    mean = reference.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    axes = vt[:2].T  # (d, 2)
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    return (reference - mean) @ axes, (others - mean) @ axes


def embed_texts(
    engine: RetrievalEngine,
    questions: Sequence[str],
    passages: Sequence[dict] = (),
    models: Sequence[str] | None = None,
    map_passages: int = MAP_PASSAGES,
) -> EmbeddingReport:
    """Embed questions (and optional passages) with each dense model of `engine`.

    A model that cannot load reports its error; the others go on. The map places the texts
    among an even sample of the engine's corpus (its cached index vectors when built).
    """
    questions = check_texts(questions, "questions")
    pairs = check_passages(passages)
    if not any(q.strip() for q in questions):
        raise InvalidInputError("type at least one question")
    questions = [q for q in questions if q.strip()]
    texts = questions + [f"{t}: {x}" if t else x for t, x in pairs]
    kinds = ["question"] * len(questions) + ["passage"] * len(pairs)
    names = engine.dense_names(models)
    report = EmbeddingReport(texts, kinds, {})
    for name in names:
        item = ModelEmbedding(name)
        report.models[name] = item
        try:
            retriever = engine.retriever(name)
        except LfqaError as exc:
            item.error = str(exc)
            continue
        q_rows = retriever.tokenize_questions(questions)
        p_rows = retriever.tokenize_passages([{"title": t, "text": x} for t, x in pairs])
        item.pieces = [retriever.question_tokenizer.pieces(ids) for ids, _ in q_rows] + [
            retriever.passage_tokenizer.pieces(ids) for ids, _ in p_rows
        ]
        parts = [retriever.encode_questions(questions)]
        if pairs:
            parts.append(retriever.encode_passages([{"title": t, "text": x} for t, x in pairs]))
        vectors = np.concatenate(parts)
        item.dim, item.vectors = retriever.dim, vectors
        item.norms = np.linalg.norm(vectors, axis=1)
        item.similarity = vectors @ vectors.T
        item.map_points = _map(engine, name, retriever, vectors, texts, kinds, map_passages)
    return report


_samples: dict[tuple, np.ndarray] = {}  # (retriever, corpus fingerprint, size) -> sample vectors
_samples_lock = threading.Lock()


def _corpus_sample(engine, name, retriever, pick: np.ndarray) -> np.ndarray:
    """Vectors of the corpus sample: from a built index, else embedded once and remembered, so
    that each click on "Embed" does not embed the same 200 passages again."""
    index = engine.built_index(name)
    if index is not None:
        return index.vectors_at(pick)
    key = (id(retriever), engine.corpus.fingerprint, len(pick))
    with _samples_lock:
        if key in _samples:
            return _samples[key]
    sample = retriever.encode_passages([engine.corpus[int(i)].as_dict() for i in pick])
    with _samples_lock:
        if len(_samples) >= 16:
            _samples.clear()
        _samples[key] = sample
    return sample


def _map(engine, name, retriever, vectors, texts, kinds, limit) -> list[dict]:
    corpus = engine.corpus
    if engine.built_index(name) is None:
        limit = min(limit, MAP_PASSAGES_UNINDEXED)
    pick = np.unique(np.linspace(0, len(corpus) - 1, num=min(limit, len(corpus))).astype(int))
    ref, mine = pca_2d(_corpus_sample(engine, name, retriever, pick), vectors)
    points = [
        {"x": float(x), "y": float(y), "kind": "corpus", "label": corpus[int(i)].title} for (x, y), i in zip(ref, pick)
    ]
    points += [{"x": float(x), "y": float(y), "kind": k, "label": t[:80]} for (x, y), k, t in zip(mine, kinds, texts)]
    return points
