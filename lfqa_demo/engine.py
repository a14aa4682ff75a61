"""The retrieval engine: one corpus, several retrievers, side-by-side comparison.

`RetrievalEngine` is what the UI holds; `lfqa_demo.compare()` calls a default engine over the
bundled corpus. Dense retrievers and their indexes load lazily on first use; a retriever that
cannot load (say, offline with nothing cached) reports its error in its column and the
others go on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .errors import InvalidInputError, InvalidTypeError, LfqaError, failure_message
from .inputs import check_passages, check_text, check_texts
from .models.registry import model_states
from .models.retrievers import DEFAULT_RETRIEVERS, DenseRetriever, RetrieverSpec
from .reading.answers import ReadResult
from .reading.loading import load_reader, load_relevance_embedder
from .retrieval.bm25 import BM25Index
from .retrieval.builds import IndexBuild
from .retrieval.corpus import Corpus, Passage, load_bundled_corpus
from .retrieval.indexes import APPROXIMATE_ABOVE, DenseIndex
from .retrieval.searchers import SPARSE_SEARCHERS, BM25Search, DenseSearch, IndexSettings, Ranking, Searcher
from .status import ModelKey, Phase, Status

DEFAULT_COMPARE = ("retribert", "dpr", "realm", "bm25")
MAX_K = 100
RBO_P = 0.9  # rank-biased overlap persistence: the top 10 carry ~86% of the weight
# How long a web request waits for dense indexes before it returns what is ready and lets the
# builds go on in the background: long enough for a small upload on a 2-core CPU, short
# enough that nobody stares at a spinner (see "Limits" in the README).
REQUEST_BUDGET_S = 60.0
# Characters of each passage the readers read in one request: bounds their work (a passage is
# read in overlapping windows of ~350 word pieces) whatever a visitor uploads or pastes.
MAX_READ_CHARS = 2000

log = logging.getLogger(__name__)


@dataclass
class Hit:
    rank: int  # 1-based
    passage_id: str
    title: str
    text: str
    score: float
    contains_answer: bool | None = None  # None when no gold answer was given


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


def contains_answer(text: str, answer: str) -> bool:
    """Case- and whitespace-insensitive substring test."""
    norm = lambda s: " ".join(s.casefold().split())  # noqa: E731
    return bool(answer.strip()) and norm(answer) in norm(text)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidTypeError(f"k must be an integer, not {type(k).__name__}")
    if not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}")
    return int(k)


def make_searcher(
    name: str, spec: str | RetrieverSpec, corpus: Corpus, settings: IndexSettings, device=None, dtype=None
) -> Searcher:
    """The searcher behind a name: "bm25", a default retriever ("retribert", "dpr", "realm",
    "minilm") or a RetrieverSpec."""
    if isinstance(spec, str) and spec in SPARSE_SEARCHERS:
        return SPARSE_SEARCHERS[spec](name, corpus)
    if isinstance(spec, str):
        if spec not in DEFAULT_RETRIEVERS:
            raise InvalidInputError(
                f"unknown retriever {spec!r}; use bm25, one of {sorted(DEFAULT_RETRIEVERS)} or a RetrieverSpec"
            )
        return DenseSearch(name, DEFAULT_RETRIEVERS[spec], corpus, settings, device, dtype, load_as=spec)
    return DenseSearch(name, spec, corpus, settings, device, dtype)


class RetrievalEngine:
    """One corpus and the searchers over it (BM25 and dense retrievers, one interface); compares them.

    `retrievers` maps names to "bm25", a default retriever ("retribert", "dpr", "realm",
    "minilm") or a RetrieverSpec (default: all of those). Thread-safe: each index builds once,
    in the background. The corpus never changes: another corpus gets another engine.
    `bundles` names prebuilt indexes (a directory or "hub:org/name", see retrieval/bundles.py):
    a dense index is loaded from there when its bundle fits, else built (and the status says why).
    """

    def __init__(
        self,
        corpus: Corpus | None = None,
        *,
        retrievers: dict[str, str | RetrieverSpec] | None = None,
        cache_dir: str | Path | None = None,
        device=None,
        dtype=None,
        index_kind: str = "auto",
        approximate_above: int = APPROXIMATE_ABOVE,
        batch_size: int = 32,
        bundles: str | None = None,
    ):
        self.corpus = corpus if corpus is not None else load_bundled_corpus()
        self.device, self.dtype = device, dtype
        settings = IndexSettings(cache_dir, index_kind, approximate_above, batch_size, bundles)
        wanted = retrievers or {n: n for n in (*DEFAULT_RETRIEVERS, "bm25")}
        self.searchers: dict[str, Searcher] = {
            name: make_searcher(name, spec, self.corpus, settings, device, dtype) for name, spec in wanted.items()
        }

    @property
    def names(self) -> list[str]:
        return list(self.searchers)

    def _searcher(self, name: str) -> Searcher:
        if name not in self.searchers:
            raise InvalidInputError(f"unknown retriever {name!r}; this engine has {self.names}")
        return self.searchers[name]

    def _dense(self, name: str) -> DenseSearch:
        searcher = self._searcher(name)
        if not isinstance(searcher, DenseSearch):
            raise InvalidInputError(f"{name} is a sparse index, not a dense retriever")
        return searcher

    def dense_names(self, names: Sequence[str] | None = None) -> list[str]:
        """The dense retrievers among `names` (default: all of this engine's)."""
        return [n for n in (names or self.names) if self._searcher(n).dense]

    def retriever(self, name: str) -> DenseRetriever:
        """The loaded dense retriever behind `name` (loads it on first use)."""
        return self._dense(name).model()

    # -- indexes -------------------------------------------------------------------------------------
    def building_indexes(self, names: Sequence[str] | None = None) -> list[str]:
        """The dense retrievers among `names` whose index is being built now (never starts one)."""
        return [n for n in self.dense_names(self._names(names)) if self._dense(n).building()]

    def start_index(self, name: str) -> IndexBuild:
        """The build of `name`'s dense index: the running or finished one, else a new one started in
        the background (read from the cache when a valid entry exists)."""
        return self._dense(name).start()

    def index(
        self, name: str, progress: Callable[[int, int], None] | None = None, timeout: float | None = None
    ) -> DenseIndex:
        """The dense index of `name`, built or read from the cache once, in the background; waits at
        most `timeout` seconds (None: until ready), calling `progress(done, total)` meanwhile; past
        the timeout it raises IndexNotReady and the build goes on by itself."""
        return self._dense(name).index(progress, timeout)

    def built_index(self, name: str) -> DenseIndex | None:
        """The index of `name` if it is ready, else None."""
        return self._dense(name).built()

    def set_index(self, name: str, index: DenseIndex) -> None:
        """Use a ready index for `name` (e.g. from precomputed embeddings)."""
        if len(index) != len(self.corpus):
            raise InvalidInputError(
                f"the index holds {len(index)} vectors but the corpus has {len(self.corpus)} passages"
            )
        self._dense(name).set_index(index)

    def index_states(self) -> dict[str, Status]:
        """Each dense index asked for so far, and where it stands (for a status panel)."""
        states = {name: self.searchers[name].status() for name in self.dense_names()}
        return {name: state for name, state in states.items() if state is not None}

    def close(self) -> None:
        """Stop every unfinished build (the engine is being dropped)."""
        for name in self.dense_names():
            self.searchers[name].close()

    def build_indexes(
        self,
        names: Sequence[str] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        timeout: float | None = None,
    ) -> dict[str, IndexResult]:
        """Build every index ahead of time; returns, per dense retriever, its index or the error that
        stopped it (with a `timeout`, an index still building past it says where it stands and goes on)."""
        out: dict[str, IndexResult] = {}
        for name in names or self.names:
            searcher = self._searcher(name)
            if isinstance(searcher, BM25Search):
                searcher.index()
                continue
            try:
                report = None if progress is None else (lambda d, t, n=name: progress(n, d, t))
                out[name] = IndexResult(name, self.index(name, report, timeout))
            except Exception as exc:  # one index failing never stops the others
                out[name] = IndexResult(name, None, failure_message(exc))
        return out

    def load_models(self, retrievers: Sequence[str] = (), readers: Sequence[str] = ()) -> Iterator[ModelKey]:
        """Load the dense retrievers and readers named that are not loaded yet, one at a time, first
        yielding the key of what is about to load so that a page can say so. A model that fails
        to load is skipped here: the call that uses it reports why."""
        states = model_states()
        ready = {key for key, state in states.items() if state.ready}
        for name in self.dense_names(list(retrievers)) if retrievers else []:
            if ModelKey.retriever(name) not in ready:
                yield ModelKey.retriever(name)
                try:
                    self.retriever(name)
                except Exception:  # reported by the search or embedding that needs it
                    pass
        for name in readers:
            if ModelKey.reader(name) not in ready:
                yield ModelKey.reader(name)
                try:
                    load_reader(name, device=self.device, dtype=self.dtype)
                except Exception:  # reported by `answer`
                    pass

    # -- comparison ----------------------------------------------------------------------------------
    def compare_batch(
        self,
        questions: Sequence[str],
        retrievers: Sequence[str] | None = None,
        k: int = 10,
        gold_answers: Sequence[str | None] | None = None,
        timeout: float | None = None,
    ) -> list[Comparison]:
        """`compare` for many questions at once (each retriever encodes them in one batch);
        timings are per question (the batch's time divided evenly). A dense index not ready
        within `timeout` seconds (None: wait) gives its column an error saying where it stands."""
        questions = check_texts(questions, "questions")
        for i, q in enumerate(questions):
            if not q.strip():
                raise InvalidInputError(f"questions[{i}] is empty; type a question")
        k = check_k(k)
        names = self._names(retrievers)
        gold = list(gold_answers) if gold_answers is not None else [None] * len(questions)
        if len(gold) != len(questions):
            raise InvalidInputError("gold_answers must have one entry per question")
        corpus = self.corpus
        per_name: dict[str, RetrieverResult | Ranking] = {}
        for name in names:
            try:
                per_name[name] = self.searchers[name].search(questions, k, timeout)
            except Exception as exc:  # one retriever failing never takes the other columns down
                per_name[name] = RetrieverResult(name, [], 0.0, 0.0, error=failure_message(exc))
        comparisons = []
        n = max(len(questions), 1)
        for row, question in enumerate(questions):
            results = {}
            for name in names:
                got = per_name[name]
                if isinstance(got, RetrieverResult):
                    results[name] = got
                    continue
                scores, ids, enc_s, search_s = got.scores, got.ids, got.encode_seconds, got.search_seconds
                hits = [
                    Hit(
                        rank + 1,
                        corpus[j].id,
                        corpus[j].title,
                        corpus[j].text,
                        float(s),
                        None if not gold[row] else contains_answer(corpus[j].text, gold[row]),
                    )
                    for rank, (s, j) in enumerate(zip(scores[row], ids[row]))
                    if 0 <= j < len(corpus)  # -1: fewer hits; past the end: a hostile prebuilt faiss index
                ]
                results[name] = RetrieverResult(
                    name, hits, 1000 * enc_s / n, 1000 * search_s / n, score_kind=self.searchers[name].score_kind
                )
            comparisons.append(Comparison(question, k, results, self._agreement(results, k), gold[row] or None))
        return comparisons

    def _names(self, retrievers: Sequence[str] | None) -> list[str]:
        names = list(retrievers) if retrievers is not None else [n for n in DEFAULT_COMPARE if n in self.searchers]
        if not names:
            raise InvalidInputError("choose at least one retriever")
        for name in names:
            self._searcher(name)
        return names

    def compare(
        self,
        question: str,
        retrievers: Sequence[str] | None = None,
        k: int = 10,
        gold_answer: str | None = None,
        timeout: float | None = None,
    ) -> Comparison:
        """Rank the corpus for `question` with each retriever (default: RetriBERT, DPR, REALM, BM25):
        hits, encode and search times, pairwise agreement, and which hits contain `gold_answer`."""
        question = check_text(question, "question")
        if gold_answer is not None:
            check_text(gold_answer, "gold_answer")
        return self.compare_batch([question], retrievers, k, [gold_answer], timeout)[0]

    def compare_live(
        self,
        question: str,
        retrievers: Sequence[str] | None = None,
        k: int = 10,
        gold_answer: str | None = None,
        budget_s: float = REQUEST_BUDGET_S,
    ) -> Iterator[Comparison]:
        """`compare`, step by step, for a page: first every retriever whose index is ready (BM25 at
        once), then again each time another index is ready; a column still indexing carries its
        progress in `pending`. After `budget_s` seconds the builds still running are left to finish
        in the background and the last comparison says so. Closing the generator early (the
        visitor left) stops the builds that no other request is waiting for."""
        question = check_text(question, "question")
        names = self._names(retrievers)
        check_k(k)
        done: list[str] | None = None
        for builds, _ in self._watch(names, budget_s):
            failed = {n: b for n, b in builds.items() if b.finished and b.state != Phase.READY}
            pending = {n: b for n, b in builds.items() if not b.finished}
            ready = [n for n in names if n not in pending and n not in failed]
            if ready != done:  # search again only when another column became ready
                done = ready
                base = (
                    self.compare(question, ready, k, gold_answer)
                    if ready
                    else Comparison(question, k, {}, [], gold_answer)
                )
            results = {}
            for n in names:
                if n in failed:
                    results[n] = RetrieverResult(n, [], 0.0, 0.0, error=failure_message(failed[n].error))
                elif n in pending:
                    results[n] = RetrieverResult(n, [], 0.0, 0.0, pending=pending[n].status())
                else:
                    results[n] = base.results[n]
            yield Comparison(question, base.k, results, base.agreement, base.gold_answer)

    def wait_for_indexes(
        self, names: Sequence[str] | None = None, budget_s: float = REQUEST_BUDGET_S
    ) -> Iterator[dict[str, Status]]:
        """Start the dense indexes of `names` and yield where each stands about once a second until
        all are over or `budget_s` passed; builds still running then go on in the background (their
        status says so). Closing the generator early stops the builds that no other request is
        waiting for."""
        dense = self.dense_names(self._names(names))
        for _, _ in self._watch(dense, budget_s):
            yield {n: self._dense(n).status() for n in dense}

    def _watch(self, names: list[str], budget_s: float) -> Iterator[tuple[dict[str, IndexBuild], bool]]:
        """Start the dense builds `names` need and yield (builds, over) about once a second and at
        each finished build, until none is running or `budget_s` passed (over=True: the builds
        left are handed to the background). This request counts as waiting on each build."""
        builds = {n: self.start_index(n) for n in self.dense_names(names) if self.built_index(n) is None}
        for build in builds.values():
            build.join_waiters()
        try:
            deadline = time.monotonic() + budget_s
            while True:
                pending = [b for b in builds.values() if not b.finished]
                over = bool(pending) and time.monotonic() >= deadline
                if over:
                    for build in pending:
                        build.keep_in_background()
                yield builds, over
                if not pending or over:
                    return
                pending[0].wait(min(1.0, max(deadline - time.monotonic(), 0.01)))
        finally:
            for build in builds.values():
                build.leave_waiters()

    def answer(
        self,
        question: str,
        retriever: str = "dpr",
        readers: Sequence[str] = ("dpr", "realm"),
        k: int = 10,
        top_k: int = 5,
        passages: Sequence[dict] | None = None,
        max_answer_tokens: int | None = None,
        reader_checkpoints: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> AnswerReport:
        """Retrieve `k` passages with `retriever` (or read the given `passages`; when there are more
        than `k`, the `k` that BM25 ranks highest), then read them
        with each reader. A reader that adds passage relevance to its span scores (REALM) gets it
        from its own `prior_relevance`."""
        question = check_text(question, "question")
        if not question.strip():
            raise InvalidInputError("the question is empty; type a question")
        k = check_k(k)
        timings: dict[str, float] = {}
        errors: dict[str, str] = {}
        notes: list[str] = []
        if passages is None:
            comparison = self.compare(question, [retriever], k, timeout=timeout)
            result = comparison.results[retriever]
            if result.error:
                errors[f"{retriever} retriever"] = result.error
            hits = result.hits
            timings["retrieve_encode"], timings["retrieve_search"] = result.encode_ms, result.search_ms
        else:
            pairs = check_passages(passages)
            hits = [
                Hit(i + 1, str(p.get("id", f"pasted-{i + 1}")), t, x, 0.0)
                for i, (p, (t, x)) in enumerate(zip(passages, pairs))
            ]
            retriever = None
            notes.append(
                f"Read the given passages ({len(pairs)}), not retrieved ones: the retriever choice applies to "
                "retrieved passages only."
            )
            if len(hits) > k:  # k bounds the reading work for pasted text too
                hits = _top_k_by_bm25(question, hits, k)
                notes.append(f"Read the {k} of {len(pairs)} given passages that BM25 ranks highest for the question.")
        if any(len(h.text) > MAX_READ_CHARS for h in hits):
            notes.append(f"Passages longer than {MAX_READ_CHARS:,} characters were read up to that point.")
        to_read = [{"title": h.title, "text": h.text[:MAX_READ_CHARS]} for h in hits]  # a prefix: offsets stay valid
        answers: dict[str, ReadResult] = {}
        searcher = self.searchers.get(retriever) if retriever is not None else None
        retrieved_by = searcher.spec if isinstance(searcher, DenseSearch) else None
        for name in readers:
            try:
                reader = load_reader(
                    name, device=self.device, dtype=self.dtype, checkpoint=(reader_checkpoints or {}).get(name)
                )
                relevance = None
                if to_read:
                    started = time.perf_counter()
                    try:
                        embedder = load_relevance_embedder(reader, retrieved_by)  # REALM's, unless it retrieved these
                        scores = [h.score for h in hits]
                        relevance = reader.prior_relevance(question, to_read, retrieved_by, scores, embedder)
                    except LfqaError as exc:
                        errors[f"{name} relevance"] = f"read without relevance scores: {exc}"
                    if relevance is not None:
                        timings[f"{name}_relevance"] = 1000 * (time.perf_counter() - started)
                started = time.perf_counter()
                answers[name] = reader.read(question, to_read, top_k, max_answer_tokens, relevance)
                timings[f"read_{name}"] = 1000 * (time.perf_counter() - started)
            except Exception as exc:  # one reader failing never takes the other down
                errors[f"{name} reader"] = failure_message(exc)
        return AnswerReport(question, retriever, hits, answers, errors, timings, notes)

    @staticmethod
    def _agreement(results: dict[str, RetrieverResult], k: int) -> list[Agreement]:
        ok = [r for r in results.values() if r.error is None]
        out = []
        for a, b in combinations(ok, 2):
            ids_a, ids_b = [h.passage_id for h in a.hits], [h.passage_id for h in b.hits]
            depth = min(k, len(ids_a), len(ids_b))
            out.append(
                Agreement(
                    a.retriever, b.retriever, overlap_at_k(ids_a, ids_b, depth), rank_biased_overlap(ids_a, ids_b)
                )
            )
        return out


@dataclass
class AnswerReport:
    """What `RetrievalEngine.answer` found: the passages read, each reader's answers (or why
    it could not run), and the time of each stage in ms."""

    question: str
    retriever: str | None  # None when the passages were given
    passages: list[Hit]
    answers: dict[str, ReadResult]
    errors: dict[str, str]  # keyed by role: "dpr retriever", "dpr reader", "realm relevance"
    timings_ms: dict[str, float]
    notes: list[str] = field(default_factory=list)  # what was done that the caller did not ask for


def _top_k_by_bm25(question: str, hits: list[Hit], k: int) -> list[Hit]:
    """The `k` hits BM25 ranks highest for `question` (their original order among equals), re-ranked."""
    index = BM25Index(Corpus("given passages", [Passage(h.passage_id, h.title, h.text) for h in hits]))
    scores = index.scores(question)  # [len(hits)]
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))[:k]
    return [Hit(rank + 1, hits[i].passage_id, hits[i].title, hits[i].text, 0.0) for rank, i in enumerate(order)]


def default_bundles() -> str | None:
    """Where prebuilt indexes of the bundled corpus come from: $LFQA_INDEXES (a directory or
    "hub:org/name"), else None (build them)."""
    return os.environ.get("LFQA_INDEXES", "").strip() or None


_default_engine: RetrievalEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> RetrievalEngine:
    """The process-wide engine over the bundled corpus (created on first use)."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = RetrievalEngine(bundles=default_bundles())
        return _default_engine


def compare(*args, **kwargs) -> Comparison:
    """`RetrievalEngine.compare` on the default engine (bundled corpus); same arguments."""
    return default_engine().compare(*args, **kwargs)


def answer(*args, **kwargs) -> AnswerReport:
    """`RetrievalEngine.answer` on the default engine (bundled corpus); same arguments."""
    return default_engine().answer(*args, **kwargs)


def compare_batch(*args, **kwargs) -> list[Comparison]:
    """`RetrievalEngine.compare_batch` on the default engine (bundled corpus); same arguments."""
    return default_engine().compare_batch(*args, **kwargs)
