"""What the engine returns: hits, each retriever's result, comparisons with their agreement,
answer reports; and the measures they use (overlap@k, rank-biased overlap; answer matching is
answer_match.py's).
Plain data: nothing here searches or reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import InvalidInputError, InvalidTypeError
from .reading.answers import ReadResult
from .retrieval.indexes import DenseIndex
from .status import Status

if TYPE_CHECKING:
    from .calibration import RetrievalCalibration

MAX_K = 100
RBO_P = 0.9  # rank-biased overlap persistence: the top 10 carry ~86% of the weight


@dataclass
class Hit:
    rank: int  # 1-based
    passage_id: str
    title: str
    text: str
    score: float
    contains_answer: bool | None = None  # by answer_match.has_answer; None when no gold answer was given


@dataclass
class RetrieverResult:
    retriever: str
    hits: list[Hit]
    encode_ms: float
    search_ms: float
    error: str | None = None  # why the retriever could not run; hits are then empty
    pending: Status | None = None  # where its index build stands while it is not ready yet
    score_kind: str = ""  # what its scores mean ("dot product of ...", "BM25 score ...")


@dataclass
class IndexResult:
    """One dense index that `build_indexes` was asked for: the index, or why there is none."""

    retriever: str
    index: DenseIndex | None
    error: str | None = None


@dataclass
class Agreement:
    a: str
    b: str
    overlap: float  # |top-k(a) ∩ top-k(b)| / k
    rbo: float  # rank-biased overlap (extrapolated), 1 for identical rankings


@dataclass
class Comparison:
    question: str
    k: int
    results: dict[str, RetrieverResult]
    agreement: list[Agreement] = field(default_factory=list)
    gold_answer: str | None = None
    # Per retriever, where its scores sit on this corpus's QA set (weak match, score position);
    # only retrievers with a calibration are here (the bundled corpus's, once computed).
    calibrations: dict[str, RetrievalCalibration] = field(default_factory=dict)

    def found_by(self) -> dict[str, list[str]]:
        """passage id -> the retrievers that returned it (to mark passages found by several)."""
        found: dict[str, list[str]] = {}
        for name, result in self.results.items():
            for hit in result.hits:
                found.setdefault(hit.passage_id, []).append(name)
        return found


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int) -> float:
    if k <= 0:
        return 0.0
    return len(set(a[:k]) & set(b[:k])) / k


def rank_biased_overlap(a: Sequence[str], b: Sequence[str], p: float = RBO_P) -> float:
    """Extrapolated RBO of two rankings of equal depth (Webber, Moffat and Zobel, 2010, eq. 32)."""
    depth = min(len(a), len(b))
    if depth == 0:
        return 0.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    common = 0
    total = 0.0
    for d in range(1, depth + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            common += 1
        else:
            common += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += (common / d) * p**d
    return float((common / depth) * p**depth + (1 - p) / p * total)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidTypeError(f"k must be an integer, not {type(k).__name__}")
    if not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}")
    return int(k)


def agreement(results: dict[str, RetrieverResult], k: int) -> list[Agreement]:
    """Overlap@k and rank-biased overlap of every pair of retrievers that ran."""
    ok = [r for r in results.values() if r.error is None]
    out = []
    for a, b in combinations(ok, 2):
        ids_a, ids_b = [h.passage_id for h in a.hits], [h.passage_id for h in b.hits]
        depth = min(k, len(ids_a), len(ids_b))
        out.append(
            Agreement(a.retriever, b.retriever, overlap_at_k(ids_a, ids_b, depth), rank_biased_overlap(ids_a, ids_b))
        )
    return out


@dataclass
class AnswerReport:
    """What `RetrievalEngine.answer` found: the passages read, each reader's answers (or why it
    could not run), and the time of each stage in ms."""

    question: str
    retriever: str | None  # None when the passages were given
    passages: list[Hit]
    answers: dict[str, ReadResult]
    timings_ms: dict[str, float] = field(default_factory=dict)
    retriever_error: str | None = None  # why the retriever found nothing
    reader_errors: dict[str, str] = field(default_factory=dict)  # reader -> why it could not read
    relevance_errors: dict[str, str] = field(default_factory=dict)  # reader -> why it read without relevance
    given: int | None = None  # how many passages the caller gave (None: retrieved); the k best by BM25 are read
    calibration: RetrievalCalibration | None = None  # the retriever's, when the readers' verdicts used it
    clipped_at: int | None = None  # passages longer than this many characters were read up to it
