"""Retrieval evaluation on a QA set: where each retriever ranks each question's answer and gold
passage, and from those ranks recall@k and MRR.

One path computes every figure, so the command line and the app cannot disagree:
`evaluate_retriever` finds the ranks (cached in memory), `RetrieverEvaluation` turns them into
recall@k curves and MRR, and `score_columns` / `score_row` pick the figures a table shows. The
app's evaluation view (`evaluation_report`, ui/evaluation_view.py) and the command line's table
(`format_table`) both read those. Every figure is named for what it ranks: "answer" (the first
passage holding a gold answer, by DPR's rule: answer_match.py) or "gold passage" (the question's
own passage), as in "R@5, answer" and "MRR@20, gold passage"."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

from .answer_match import has_answer
from .engine import RetrievalEngine
from .errors import InvalidInputError, failure_message
from .results import check_k
from .retrieval.corpus import QAItem
from .retrieval.indexes import choose_kind
from .retrieval.searchers import DenseSearch

MAX_EVAL_K = 20  # the curves' last k: a reader reads at most 20 passages (the answer tab's limit)
EVAL_BATCH = 64  # questions a retriever encodes at once; also how often progress is reported
# Cached evaluations, one per (corpus, QA set, retriever identity, depth): each holds two ranks a
# question (about 32 KB for 2,000 questions), so this bounds memory to about 2 MB while keeping a
# dozen full evaluations of five retrievers.
CACHE_ENTRIES = 64

ProgressFn = Callable[[int, int], None]  # (questions done, questions in all)


@dataclass(frozen=True)
class RetrieverEvaluation:
    """One retriever on one QA set over one corpus: where it ranked each question's answer.

    Ranks are 1-based and per question in QA-set order; None means not in the top `max_k`.
    Frozen (tuples): cached evaluations are shared by every request that asks again."""

    retriever: str
    max_k: int
    answer_ranks: tuple[int | None, ...]  # the first passage holding a gold answer (answer_match.has_answer)
    passage_ranks: tuple[int | None, ...] | None  # the gold passage; None when the QA set names none
    seconds: float = 0.0  # how long the evaluation took (not the time of a cache hit)
    error: str | None = None  # why the retriever could not run; the ranks are then empty

    @property
    def recall_answer(self) -> tuple[float, ...]:
        """recall@k for k = 1..max_k (index k - 1): share of questions with a gold answer in the top k."""
        return _recall_curve(self.answer_ranks, self.max_k)

    @property
    def recall_passage(self) -> tuple[float, ...] | None:
        """recall@k for k = 1..max_k by gold passage; None when the QA set names no gold passages."""
        return None if self.passage_ranks is None else _recall_curve(self.passage_ranks, self.max_k)

    @property
    def mrr_answer(self) -> float:
        """Mean reciprocal rank of the first passage with a gold answer, 0 past max_k (MRR@max_k)."""
        return _mrr(self.answer_ranks)

    @property
    def mrr_passage(self) -> float | None:
        """MRR@max_k of the gold passage; None when the QA set names no gold passages."""
        return None if self.passage_ranks is None else _mrr(self.passage_ranks)


def _recall_curve(ranks: Sequence[int | None], max_k: int) -> tuple[float, ...]:
    n = max(len(ranks), 1)
    found_at = [0] * (max_k + 1)
    for r in ranks:
        if r is not None and r <= max_k:
            found_at[r] += 1
    curve, total = [], 0
    for k in range(1, max_k + 1):
        total += found_at[k]
        curve.append(total / n)
    return tuple(curve)


def _mrr(ranks: Sequence[int | None]) -> float:
    return sum(1.0 / r for r in ranks if r is not None) / max(len(ranks), 1)


# What a figure ranks, as every table names it: the two differ (BM25 on the bundled QA set: MRR@20
# 0.877 by answer, 0.858 by gold passage), so an MRR or a recall without one of these is ambiguous.
ANSWER = "answer"  # the first passage holding a gold answer, by DPR's rule (answer_match.py)
GOLD_PASSAGE = "gold passage"  # the question's own passage


def score_columns(ks: Sequence[int], max_k: int, by_passage: bool) -> list[str]:
    """The names of the figures `score_row` gives, in its order: "R@k, answer" for each of `ks` and
    "MRR@max_k, answer", then (with `by_passage`) the same by gold passage. The command line's
    table and the app's summary are both headed with these."""
    groups = [ANSWER, GOLD_PASSAGE] if by_passage else [ANSWER]
    return [name for by in groups for name in [f"R@{k}, {by}" for k in ks] + [f"MRR@{max_k}, {by}"]]


def score_row(evaluation: RetrieverEvaluation, ks: Sequence[int], by_passage: bool) -> list[float | None]:
    """`evaluation`'s figures under `score_columns(ks, evaluation.max_k, by_passage)`; the
    gold-passage ones are None when its QA set names no gold passages."""
    check_cut_offs(ks, evaluation.max_k)
    row: list[float | None] = [evaluation.recall_answer[k - 1] for k in ks] + [evaluation.mrr_answer]
    if by_passage:
        passage = evaluation.recall_passage
        row += [None] * (len(ks) + 1) if passage is None else [passage[k - 1] for k in ks] + [evaluation.mrr_passage]
    return row


def check_cut_offs(ks: Sequence[int], max_k: int) -> None:
    """Refuse a cut-off the ranks cannot answer (a rank past max_k was not kept)."""
    if not ks or any(not 1 <= k <= max_k for k in ks):
        raise InvalidInputError(f"cut-offs must be between 1 and {max_k}, got {list(ks)}")


@dataclass(frozen=True)
class EvaluationReport:
    """Several retrievers on one QA set over one corpus (see `evaluation_report`)."""

    corpus: str  # the corpus's name
    items: tuple[QAItem, ...]
    max_k: int
    retrievers: dict[str, RetrieverEvaluation]  # in the order asked for

    @property
    def by_passage(self) -> bool:
        """Whether the QA set names every question's gold passage (as `evaluate_retriever` decides)."""
        return all(item.passage_id for item in self.items)

    def ranks(self, i: int) -> dict[str, int | None]:
        """Question i's answer rank for each retriever that ran."""
        return {name: r.answer_ranks[i] for name, r in self.retrievers.items() if r.error is None}

    def disagreement_order(self) -> list[int]:
        """Question indices, the most telling disagreements first: the widest gap between the best
        and the worst retriever (a miss counts as rank max_k + 1, so "first for one, missed by
        another" leads), then the most misses (questions every retriever missed come before those
        all found at once), then QA-set order."""

        def key(i: int) -> tuple[int, int, int]:
            ranks = [self.max_k + 1 if r is None else r for r in self.ranks(i).values()]
            if not ranks:
                return (0, 0, i)
            return (-(max(ranks) - min(ranks)), -sum(r > self.max_k for r in ranks), i)

        return sorted(range(len(self.items)), key=key)


class _EvaluationCache:
    """A small thread-safe LRU of finished evaluations. Two requests computing the same entry at
    once both compute it; the first stored wins, so every caller gets one shared object."""

    def __init__(self, size: int = CACHE_ENTRIES):
        self.size = size
        self._entries: OrderedDict[str, RetrieverEvaluation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> RetrieverEvaluation | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, value: RetrieverEvaluation) -> RetrieverEvaluation:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _EvaluationCache()


def clear_evaluation_cache() -> None:
    """Forget every cached evaluation (tests; after changing checkpoints in place)."""
    _cache.clear()


def qa_fingerprint(qa: Sequence[QAItem]) -> str:
    """sha256 over every question, its answers and gold passage: equal fingerprints, equal QA sets."""
    h = hashlib.sha256()
    for item in qa:
        h.update(json.dumps([item.question, list(item.answers), item.passage_id]).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def retriever_identity(engine: RetrievalEngine, name: str) -> str:
    """What decides a retriever's rankings besides the corpus: for a dense one, its family,
    checkpoints and their revisions, max lengths, dtype and index kind (as the index cache names
    it, see indexes.cache_key); loads the model. For a sparse one, its kind: its settings are
    constants in the code, and the cache lives no longer than the process."""
    searcher = engine.searchers.get(name)
    if searcher is None:
        raise InvalidInputError(f"unknown retriever {name!r}; this engine has {engine.names}")
    if not isinstance(searcher, DenseSearch):
        return json.dumps({"kind": type(searcher).__name__})
    model = searcher.model()
    settings = searcher.settings
    return json.dumps(
        {
            "family": model.family,
            "checkpoints": [[f.source, f.revision] for f in model.checkpoints],
            "max_lengths": [model.max_question_length, model.max_passage_length],
            "dtype": str(model.dtype),
            # Approximate indexes (IVF, HNSW) can rank differently from exact search.
            "index": choose_kind(settings.kind, len(engine.corpus), settings.approximate_above),
        },
        sort_keys=True,
    )


def evaluate_retriever(
    engine: RetrievalEngine,
    qa: Sequence[QAItem],
    name: str,
    max_k: int = MAX_EVAL_K,
    *,
    batch: int = EVAL_BATCH,
    progress: ProgressFn | None = None,
    timeout: float | None = None,
    check: Callable[[], None] | None = None,
) -> RetrieverEvaluation:
    """Where retriever `name` ranks each question's answer (and gold passage) in its top `max_k`
    over the engine's corpus, the questions in batches of `batch`.

    Cached in memory by corpus fingerprint, QA-set fingerprint, the retriever's identity
    (`retriever_identity`) and `max_k`: asking again returns the same object without searching.
    A retriever that cannot run (its model fails to load, its index is not ready within
    `timeout` seconds; None waits) comes back with `error` set and is not cached. `progress(done,
    total)` is called before the first batch and after each; `check()` before each batch may
    raise to stop the evaluation part way (its visitor left, its time ran out: see admission.py),
    and a stopped evaluation is not cached."""
    qa = list(qa)
    if not qa:
        raise InvalidInputError("the QA set has no questions")
    max_k = check_k(max_k)
    if name not in engine.searchers:
        raise InvalidInputError(f"unknown retriever {name!r}; this engine has {engine.names}")
    try:
        identity = retriever_identity(engine, name)
    except Exception as exc:  # one retriever failing never stops the others (see evaluation_report)
        return RetrieverEvaluation(name, max_k, (), None, error=failure_message(exc))
    key = hashlib.sha256(
        json.dumps([engine.corpus.fingerprint, len(engine.corpus), qa_fingerprint(qa), identity, max_k]).encode()
    ).hexdigest()
    cached = _cache.get(key)
    if cached is not None:
        if progress is not None:
            progress(len(qa), len(qa))
        return cached
    started = time.perf_counter()
    by_passage = all(item.passage_id for item in qa)
    answer_ranks: list[int | None] = []
    passage_ranks: list[int | None] = []
    for start in range(0, len(qa), batch):
        if check is not None:
            check()
        if progress is not None:
            progress(start, len(qa))
        chunk = qa[start : start + batch]
        comparisons = engine.compare_batch([item.question for item in chunk], [name], k=max_k, timeout=timeout)
        for item, comparison in zip(chunk, comparisons):
            result = comparison.results[name]
            if result.error:
                return RetrieverEvaluation(name, max_k, (), None, error=result.error)
            answer_ranks.append(next((h.rank for h in result.hits if has_answer(h.text, item.answers)), None))
            passage_ranks.append(next((h.rank for h in result.hits if h.passage_id == item.passage_id), None))
    if progress is not None:
        progress(len(qa), len(qa))
    evaluation = RetrieverEvaluation(
        name,
        max_k,
        tuple(answer_ranks),
        tuple(passage_ranks) if by_passage else None,
        time.perf_counter() - started,
    )
    return _cache.put(key, evaluation)


def evaluation_report(
    engine: RetrievalEngine,
    qa: Sequence[QAItem],
    retrievers: Sequence[str],
    max_k: int = MAX_EVAL_K,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    batch: int = EVAL_BATCH,
    timeout: float | None = None,
) -> EvaluationReport:
    """recall@k curves (k = 1..max_k), MRR@max_k (both by answer and by gold passage) and
    per-question ranks for each of `retrievers` on `qa` over the engine's corpus;
    `progress(retriever, done, total)` as each goes. Each retriever's evaluation is cached (see
    `evaluate_retriever`); one that cannot run carries its error and the others go on."""
    results = {}
    for name in dict.fromkeys(retrievers):
        report = None if progress is None else (lambda done, total, n=name: progress(n, done, total))
        results[name] = evaluate_retriever(engine, qa, name, max_k, batch=batch, progress=report, timeout=timeout)
    return EvaluationReport(engine.corpus.name, tuple(qa), check_k(max_k), results)


# -- the command line's table ------------------------------------------------------------------------
def format_table(report: EvaluationReport, ks: Sequence[int]) -> str:
    """`report` as a plain-text table, one row per retriever, its figures at the cut-offs `ks` under
    `score_columns` (the names the app's summary shows). A retriever that could not run gets a
    short row and, below the table, its whole error on one line: the error often ends with what
    to do (such as the `hf download ...` command), so it must not be cut."""
    ks = sorted(set(ks))
    check_cut_offs(ks, report.max_k)
    head = ["retriever"] + score_columns(ks, report.max_k, report.by_passage)
    evaluations = report.retrievers.values()
    rows = {
        e.retriever: [e.retriever] + ["-" if v is None else f"{v:.3f}" for v in score_row(e, ks, report.by_passage)]
        for e in evaluations
        if e.error is None
    }
    widths = [max(len(r[i]) for r in [head, *rows.values()]) for i in range(len(head))]
    widths[0] = max([widths[0]] + [len(e.retriever) for e in evaluations])
    lines = [_table_line(head, widths)]
    for e in evaluations:
        lines.append(
            f"{e.retriever.ljust(widths[0])}  unavailable (error below)"
            if e.error
            else _table_line(rows[e.retriever], widths)
        )
    failures = [f"{e.retriever}: unavailable: {one_line(e.error)}" for e in evaluations if e.error]
    return "\n".join(lines + ([""] + failures if failures else []))


def one_line(text: str) -> str:
    """`text` with its line breaks turned into spaces (one line per failed retriever)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells padded to their column widths, two spaces apart (a name holds single spaces only)."""
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
