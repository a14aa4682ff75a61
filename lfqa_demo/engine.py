"""The retrieval engine: one corpus, several retrievers, side-by-side comparison.

`RetrievalEngine` is what the UI holds; `lfqa_demo.compare()` calls a default engine over the
bundled corpus. Dense retrievers and their indexes load lazily on first use; a retriever that
cannot load (say, offline with nothing cached) reports its error in its column and the
others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .bm25 import BM25Index
from .builds import IndexBuild
from .corpus import Corpus, Passage, load_bundled_corpus
from .errors import IndexNotReady, InvalidInputError, InvalidTypeError, LfqaError
from .indexes import APPROXIMATE_ABOVE, DenseIndex, build_index
from .answers import ReadResult
from .inputs import check_passages, check_text, check_texts
from .loading import load_reader, load_retriever
from .retrievers import DEFAULT_RETRIEVERS, RetrieverSpec

DEFAULT_COMPARE = ("retribert", "dpr", "realm", "bm25")
MAX_K = 100
RBO_P = 0.9  # rank-biased overlap persistence: the top 10 carry ~86% of the weight
POLL_SECONDS = 0.25  # how often a request waiting for an index reports its progress
# How long a web request waits for dense indexes before it returns what is ready and lets the
# builds go on in the background: long enough for a small upload on a 2-core CPU, short
# enough that nobody stares at a spinner (see "Limits" in the README).
REQUEST_BUDGET_S = 60.0
# Characters of each passage the readers read in one request: bounds their work (a passage is
# read in overlapping windows of ~350 word pieces) whatever a visitor uploads or pastes.
MAX_READ_CHARS = 2000
BACKGROUND_NOTE = "; it goes on in the background: try again shortly"

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
    pending: str | None = None  # where its index build stands while it is not ready yet


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


INTERNAL_ERROR = "internal error (the details are in the server's log)"


def failure_message(exc: BaseException) -> str:
    """What a result says about an exception: the message of one of ours (written for the user),
    else a short "internal error" after the traceback went to the log."""
    if isinstance(exc, LfqaError):
        return str(exc)
    log.error("unexpected error", exc_info=exc)
    return INTERNAL_ERROR


class RetrievalEngine:
    """Holds a corpus, the BM25 index and the dense indexes over it, and compares retrievers.

    `retrievers` maps display names to "bm25", a default family name ("retribert", "dpr",
    "realm", "minilm") or a RetrieverSpec. Thread-safe: indexes build once.
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
    ):
        self.corpus = corpus if corpus is not None else load_bundled_corpus()
        self.specs: dict[str, str | RetrieverSpec] = dict(retrievers or {n: n for n in (*DEFAULT_RETRIEVERS, "bm25")})
        self.cache_dir = cache_dir
        self.device, self.dtype = device, dtype
        self.index_kind, self.approximate_above, self.batch_size = index_kind, approximate_above, batch_size
        self._lock = threading.RLock()
        self._bm25: dict[str, BM25Index] = {}
        self._indexes: dict[tuple[str, str], DenseIndex] = {}  # ready-made, from set_index
        self._builds: dict[tuple[str, str], IndexBuild] = {}

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    # -- corpus and indexes --------------------------------------------------------------------------
    def set_corpus(self, corpus: Corpus) -> None:
        """Switch to another corpus; its indexes are built (or read from the cache) on first use.
        A comparison already running finishes on the corpus it started with."""
        if not isinstance(corpus, Corpus) or not len(corpus):
            raise InvalidInputError("the new corpus must be a non-empty Corpus")
        with self._lock:
            self.corpus, self._bm25, self._indexes = corpus, {}, {}
        self.close()

    def _spec(self, name: str) -> str | RetrieverSpec:
        if name not in self.specs:
            raise InvalidInputError(f"unknown retriever {name!r}; this engine has {self.names}")
        return self.specs[name]

    def bm25(self, corpus: Corpus | None = None) -> BM25Index:
        """The BM25 index of `corpus` (default: the current one)."""
        with self._lock:
            corpus = corpus or self.corpus
            if corpus.fingerprint not in self._bm25:
                self._bm25 = {corpus.fingerprint: BM25Index(corpus)}
            return self._bm25[corpus.fingerprint]

    def retriever(self, name: str):
        """The loaded dense retriever behind `name` (loads it on first use)."""
        spec = self._spec(name)
        if spec == "bm25":
            raise InvalidInputError("bm25 is a sparse index, not a dense retriever")
        return load_retriever(spec, device=self.device, dtype=self.dtype)

    def start_index(self, name: str, corpus: Corpus | None = None) -> IndexBuild:
        """The build of `name`'s dense index over `corpus` (default: the current one): the running
        or finished one, else a new one started in the background (read from the cache when a
        valid entry exists). A failed or cancelled build is replaced by a new attempt."""
        spec = self._spec(name)
        if spec == "bm25":
            raise InvalidInputError("bm25 is a sparse index, not a dense retriever")
        with self._lock:
            corpus = corpus or self.corpus
            key = (name, corpus.fingerprint)
            build = self._builds.get(key)
            if build is not None and not (build.finished and build.state != "ready"):
                return build

            def run(progress: Callable[[int, int], None]) -> DenseIndex:
                return build_index(
                    self.retriever(name), corpus, kind=self.index_kind, cache_dir=self.cache_dir, batch_size=self.batch_size,
                    progress=progress, approximate_above=self.approximate_above,
                )

            build = self._builds[key] = IndexBuild(name, run, len(corpus)).start()
            return build

    def index(
        self,
        name: str,
        progress: Callable[[int, int], None] | None = None,
        corpus: Corpus | None = None,
        timeout: float | None = None,
    ) -> DenseIndex:
        """The dense index of `name` over `corpus` (default: the current one), built or read from
        the cache once, in the background; other retrievers stay usable while it builds.

        Waits at most `timeout` seconds (None: until it is ready), calling `progress(done, total)`
        meanwhile; past the timeout it raises IndexNotReady and the build goes on by itself.
        """
        with self._lock:
            ready = self._indexes.get((name, (corpus or self.corpus).fingerprint))
        if ready is not None:
            return ready
        build = self.start_index(name, corpus)
        build.join_waiters()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not build.wait(POLL_SECONDS):
                if progress is not None:
                    progress(build.done, build.total)
                if deadline is not None and time.monotonic() >= deadline:
                    build.keep_in_background()
                    raise IndexNotReady(f"{build.describe()}; it goes on in the background, try again shortly")
            index = build.outcome()
            if progress is not None:
                progress(build.total, build.total)
            return index
        finally:
            build.leave_waiters()

    def index_states(self) -> dict[str, str]:
        """Each dense index of the current corpus this engine has started: "ready", "indexing
        120/552 passages, about 40 s left", "failed: why"... (for a status panel)."""
        with self._lock:
            fp = self.corpus.fingerprint
            states = {name: build.describe() for (name, f), build in self._builds.items() if f == fp}
            states.update({name: "ready" for name, f in self._indexes if f == fp})
        for name in states:
            index = self.built_index(name)
            if index is not None and index.persist_error:
                states[name] = f"ready, in memory only ({index.persist_error})"
        return states

    def close(self) -> None:
        """Stop every unfinished build (the engine is being dropped)."""
        with self._lock:
            builds = list(self._builds.values())
        for build in builds:
            build.cancel()

    def built_index(self, name: str) -> DenseIndex | None:
        """The index of `name` over the current corpus if it is built already, else None."""
        with self._lock:
            key = (name, self.corpus.fingerprint)
            build = self._builds.get(key)
            if build is not None and build.state == "ready":
                return build.result
            return self._indexes.get(key)

    def set_index(self, name: str, index: DenseIndex) -> None:
        """Use a ready index for `name` over the current corpus (e.g. from precomputed embeddings)."""
        self._spec(name)
        if len(index) != len(self.corpus):
            raise InvalidInputError(f"the index holds {len(index)} vectors but the corpus has {len(self.corpus)} passages")
        with self._lock:
            self._indexes[(name, self.corpus.fingerprint)] = index

    def build_indexes(
        self,
        names: Sequence[str] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        timeout: float | None = None,
    ) -> dict[str, DenseIndex | str]:
        """Build every dense index ahead of time; returns each index, or the error that stopped it
        (with a `timeout`, an index still building past it reports where it stands and goes on)."""
        out: dict[str, DenseIndex | str] = {}
        for name in names or self.names:
            if self._spec(name) == "bm25":
                self.bm25()
                continue
            try:
                out[name] = self.index(name, None if progress is None else (lambda d, t, n=name: progress(n, d, t)), timeout=timeout)
            except Exception as exc:  # one index failing never stops the others
                out[name] = failure_message(exc)
        return out

    # -- comparison ----------------------------------------------------------------------------------
    def search(
        self, name: str, questions: list[str], k: int, corpus: Corpus | None = None, timeout: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(scores [n, k'], indices [n, k'], encode seconds, search seconds) for one retriever;
        waits at most `timeout` seconds for a dense index still building (IndexNotReady)."""
        corpus = corpus or self.corpus
        if self._spec(name) == "bm25":
            index = self.bm25(corpus)
            started = time.perf_counter()
            scores, ids = index.search(questions, k)
            return scores, ids, 0.0, time.perf_counter() - started  # tokenising is part of the search
        index = self.index(name, corpus=corpus, timeout=timeout)
        started = time.perf_counter()
        vectors = self.retriever(name).encode_questions(questions)
        encoded = time.perf_counter()
        scores, ids = index.search(vectors, k)
        return scores, ids, encoded - started, time.perf_counter() - encoded

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
        per_name: dict[str, RetrieverResult | tuple] = {}
        for name in names:
            try:
                per_name[name] = self.search(name, questions, k, corpus, timeout)
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
                scores, ids, enc_s, search_s = got
                hits = [
                    Hit(rank + 1, corpus[j].id, corpus[j].title, corpus[j].text, float(s),
                        None if not gold[row] else contains_answer(corpus[j].text, gold[row]))
                    for rank, (s, j) in enumerate(zip(scores[row], ids[row])) if j >= 0
                ]
                results[name] = RetrieverResult(name, hits, 1000 * enc_s / n, 1000 * search_s / n)
            comparisons.append(Comparison(question, k, results, self._agreement(results, k), gold[row] or None))
        return comparisons

    def _names(self, retrievers: Sequence[str] | None) -> list[str]:
        names = list(retrievers) if retrievers is not None else [n for n in DEFAULT_COMPARE if n in self.specs]
        if not names:
            raise InvalidInputError("choose at least one retriever")
        for name in names:
            self._spec(name)
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
        for builds, over in self._watch(names, budget_s):
            failed = {n: b for n, b in builds.items() if b.finished and b.state != "ready"}
            pending = {n: b for n, b in builds.items() if not b.finished}
            ready = [n for n in names if n not in pending and n not in failed]
            if ready != done:  # search again only when another column became ready
                done = ready
                base = self.compare(question, ready, k, gold_answer) if ready else Comparison(question, k, {}, [], gold_answer)
            results = {}
            for n in names:
                if n in failed:
                    results[n] = RetrieverResult(n, [], 0.0, 0.0, error=failure_message(failed[n].error))
                elif n in pending:
                    results[n] = RetrieverResult(n, [], 0.0, 0.0, pending=pending[n].describe() + (BACKGROUND_NOTE if over else ""))
                else:
                    results[n] = base.results[n]
            yield Comparison(question, base.k, results, base.agreement, base.gold_answer)

    def wait_for_indexes(self, names: Sequence[str] | None = None, budget_s: float = REQUEST_BUDGET_S) -> Iterator[dict[str, str]]:
        """Start the dense indexes of `names` and yield where each stands ("ready", "indexing
        120/552 passages, about 40 s left", "failed: why") about once a second until all are over
        or `budget_s` passed; builds still running then go on in the background. Closing the
        generator early stops the builds that no other request is waiting for."""
        dense = [n for n in self._names(names) if self.specs[n] != "bm25"]
        for builds, over in self._watch(dense, budget_s):
            states = {n: "ready" for n in dense}
            for n, b in builds.items():
                states[n] = b.describe() + (BACKGROUND_NOTE if over and not b.finished else "")
            yield states

    def _watch(self, names: list[str], budget_s: float) -> Iterator[tuple[dict[str, IndexBuild], bool]]:
        """Start the dense builds `names` need and yield (builds, over) about once a second and at
        each finished build, until none is running or `budget_s` passed (over=True: the builds
        left are handed to the background). This request counts as waiting on each build."""
        builds = {n: self.start_index(n) for n in names if self.specs[n] != "bm25" and self.built_index(n) is None}
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
        with each reader. REALM adds relevance scores as it was trained to: its own embedder's
        dot products (from the REALM retriever when that retrieved, else computed for these
        passages; 0 if the REALM embedder cannot load)."""
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
            hits = [Hit(i + 1, str(p.get("id", f"pasted-{i + 1}")), t, x, 0.0) for i, (p, (t, x)) in enumerate(zip(passages, pairs))]
            retriever = None
            if len(hits) > k:  # k bounds the reading work for pasted text too
                hits = _top_k_by_bm25(question, hits, k)
                notes.append(f"Read the {k} of {len(pairs)} given passages that BM25 ranks highest for the question.")
        if any(len(h.text) > MAX_READ_CHARS for h in hits):
            notes.append(f"Passages longer than {MAX_READ_CHARS:,} characters were read up to that point.")
        to_read = [{"title": h.title, "text": h.text[:MAX_READ_CHARS]} for h in hits]  # a prefix: offsets stay valid
        answers: dict[str, ReadResult] = {}
        for name in readers:
            try:
                reader = load_reader(name, device=self.device, dtype=self.dtype, checkpoint=(reader_checkpoints or {}).get(name))
                relevance = None
                if name == "realm" and to_read:
                    started = time.perf_counter()
                    relevance = self._realm_relevance(question, to_read, hits, retriever, errors)
                    timings["realm_relevance"] = 1000 * (time.perf_counter() - started)
                started = time.perf_counter()
                answers[name] = reader.read(question, to_read, top_k, max_answer_tokens, relevance)
                timings[f"read_{name}"] = 1000 * (time.perf_counter() - started)
            except Exception as exc:  # one reader failing never takes the other down
                errors[f"{name} reader"] = failure_message(exc)
        return AnswerReport(question, retriever, hits, answers, errors, timings, notes)

    def _realm_relevance(self, question: str, passages: list[dict], hits: list[Hit], retriever: str | None, errors: dict) -> list[float] | None:
        if retriever is not None and self.specs.get(retriever) == "realm":
            return [h.score for h in hits]
        try:
            embedder = load_retriever("realm", device=self.device, dtype=self.dtype)
        except LfqaError as exc:
            errors["realm relevance"] = f"REALM read without relevance scores: {exc}"
            return None
        q = embedder.encode_questions([question])[0]
        return (embedder.encode_passages(passages) @ q).tolist()

    @staticmethod
    def _agreement(results: dict[str, RetrieverResult], k: int) -> list[Agreement]:
        ok = [r for r in results.values() if r.error is None]
        out = []
        for a, b in combinations(ok, 2):
            ids_a, ids_b = [h.passage_id for h in a.hits], [h.passage_id for h in b.hits]
            depth = min(k, len(ids_a), len(ids_b))
            out.append(Agreement(a.retriever, b.retriever, overlap_at_k(ids_a, ids_b, depth), rank_biased_overlap(ids_a, ids_b)))
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


_default_engine: RetrievalEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> RetrievalEngine:
    """The process-wide engine over the bundled corpus (created on first use)."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = RetrievalEngine()
        return _default_engine


def compare(question: str, retrievers: Sequence[str] | None = None, k: int = 10, gold_answer: str | None = None) -> Comparison:
    """`RetrievalEngine.compare` on the default engine (bundled corpus)."""
    return default_engine().compare(question, retrievers, k, gold_answer)


def answer(question: str, retriever: str = "dpr", readers: Sequence[str] = ("dpr", "realm"), k: int = 10, top_k: int = 5,
           passages: Sequence[dict] | None = None) -> AnswerReport:
    """`RetrievalEngine.answer` on the default engine (bundled corpus)."""
    return default_engine().answer(question, retriever, readers, k, top_k, passages)


def compare_batch(questions: Sequence[str], retrievers: Sequence[str] | None = None, k: int = 10, gold_answers=None) -> list[Comparison]:
    """`RetrievalEngine.compare_batch` on the default engine (bundled corpus)."""
    return default_engine().compare_batch(questions, retrievers, k, gold_answers)
