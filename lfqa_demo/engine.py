"""The retrieval engine: one corpus, several retrievers (BM25 and dense, one interface), their
indexes, and the verbs over them: compare (comparison.py) and answer (answering.py).

`RetrievalEngine` is the backend's public API: each verb checks its input once here and hands
typed values on. Dense retrievers and their indexes load lazily on first use; a retriever that
cannot load (say, offline with nothing cached) reports its error in its column and the others
go on. The app keeps one engine per corpus in `lfqa_demo.sessions.EngineRegistry`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from . import answering, comparison
from .errors import InvalidInputError, failure_message
from .inputs import check_passages, check_question, check_text, check_texts
from .models.registry import model_states
from .models.retrievers import BUNDLE_RETRIEVERS, DEFAULT_RETRIEVERS, NAMED_RETRIEVERS, DenseRetriever, RetrieverSpec
from .reading.loading import load_reader
from .results import AnswerReport, Comparison, IndexResult, check_k
from .retrieval.builds import IndexBuild
from .retrieval.corpus import Corpus, load_bundled_corpus
from .retrieval.corpus_bundles import CorpusBundle
from .retrieval.indexes import APPROXIMATE_ABOVE, DenseIndex
from .retrieval.searchers import SPARSE_SEARCHERS, BM25Search, DenseSearch, IndexSettings, Searcher
from .status import ModelKey, Status

DEFAULT_COMPARE = ("retribert", "dpr", "realm", "bm25")
# How long a web request waits for dense indexes before it returns what is ready and lets the
# builds go on in the background: long enough for a small upload on a 2-core CPU, short
# enough that nobody stares at a spinner (see docs/safety.md).
REQUEST_BUDGET_S = 60.0


def default_names(corpus_bundle: CorpusBundle | None = None) -> list[str]:
    """An engine's retrievers when none are named: the default ones and BM25, and those of
    BUNDLE_RETRIEVERS (REALM open-QA) that `corpus_bundle` holds an index of."""
    held = corpus_bundle.retrievers if corpus_bundle is not None else []
    return [*DEFAULT_RETRIEVERS, *(n for n in BUNDLE_RETRIEVERS if n in held), "bm25"]


def make_searcher(
    name: str, spec: str | RetrieverSpec, corpus: Corpus, settings: IndexSettings, device=None, dtype=None
) -> Searcher:
    """The searcher behind a name: "bm25", a default retriever ("retribert", "dpr", "realm",
    "minilm") or a RetrieverSpec."""
    if isinstance(spec, str) and spec in SPARSE_SEARCHERS:
        bundle = settings.corpus_bundle
        return SPARSE_SEARCHERS[spec](name, corpus, bundle.bm25 if bundle is not None else None)
    if isinstance(spec, str):
        if spec not in NAMED_RETRIEVERS:
            raise InvalidInputError(
                f"unknown retriever {spec!r}; use bm25, one of {sorted(NAMED_RETRIEVERS)} or a RetrieverSpec"
            )
        return DenseSearch(name, NAMED_RETRIEVERS[spec], corpus, settings, device, dtype, load_as=spec)
    return DenseSearch(name, spec, corpus, settings, device, dtype)


class RetrievalEngine:
    """One corpus and the searchers over it (BM25 and dense retrievers, one interface); compares them.

    `retrievers` maps names to "bm25", a default retriever ("retribert", "dpr", "realm",
    "minilm") or a RetrieverSpec (default: all of those). Thread-safe: each index builds once,
    in the background. The corpus never changes: another corpus gets another engine.
    `bundles` names prebuilt indexes (a directory or "hub:org/name", see retrieval/bundles.py):
    a dense index is loaded from there when its bundle fits, else built (and the status says why).
    A `corpus_bundle` (retrieval/corpus_bundles.py) brings the corpus and every index over it:
    a retriever it has no index for says so and is never built on a click.
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
        corpus_bundle: CorpusBundle | None = None,
    ):
        if corpus_bundle is not None:
            corpus = corpus_bundle.corpus
        self.corpus = corpus if corpus is not None else load_bundled_corpus()
        self.corpus_bundle = corpus_bundle
        self.device, self.dtype = device, dtype
        settings = IndexSettings(cache_dir, index_kind, approximate_above, batch_size, bundles, corpus_bundle)
        wanted = retrievers or {n: n for n in default_names(corpus_bundle)}
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
        questions = [check_question(q, f"questions[{i}]") for i, q in enumerate(check_texts(questions, "questions"))]
        gold = list(gold_answers) if gold_answers is not None else [None] * len(questions)
        if len(gold) != len(questions):
            raise InvalidInputError("gold_answers must have one entry per question")
        gold = [None if g is None else check_text(g, f"gold_answers[{i}]") for i, g in enumerate(gold)]
        return comparison.rank(self, questions, self._names(retrievers), check_k(k), gold, timeout)

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
        question = check_question(question)
        gold = None if gold_answer is None else check_text(gold_answer, "gold_answer")
        return comparison.rank(self, [question], self._names(retrievers), check_k(k), [gold], timeout)[0]

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
        status in `pending`. After `budget_s` seconds the builds still running are left to finish
        in the background. Closing the generator early (the visitor left) stops the builds that
        no other request is waiting for."""
        question = check_question(question)
        gold = None if gold_answer is None else check_text(gold_answer, "gold_answer")
        return comparison.live(self, question, self._names(retrievers), check_k(k), gold, budget_s)

    def _names(self, retrievers: Sequence[str] | None) -> list[str]:
        names = list(retrievers) if retrievers is not None else [n for n in DEFAULT_COMPARE if n in self.searchers]
        if not names:
            raise InvalidInputError("choose at least one retriever")
        for name in names:
            self._searcher(name)
        return names

    def wait_for_indexes(
        self, names: Sequence[str] | None = None, budget_s: float = REQUEST_BUDGET_S
    ) -> Iterator[dict[str, Status]]:
        """Start the dense indexes of `names` and yield where each stands about once a second until
        all are over or `budget_s` passed; builds still running then go on in the background (their
        status says so). Closing the generator early stops the builds that no other request is
        waiting for."""
        dense = self.dense_names(self._names(names))
        for _ in self.watch_builds(dense, budget_s):
            yield {n: self._dense(n).status() for n in dense}

    def watch_builds(self, names: list[str], budget_s: float) -> Iterator[tuple[dict[str, IndexBuild], bool]]:
        """Start the dense builds `names` need and yield (builds, over) about once a second and at
        each finished build, until none is running or `budget_s` passed (over=True: the builds
        left are handed to the background). The caller counts as waiting on each build."""
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
        passages: Sequence[Mapping] | None = None,
        max_answer_tokens: int | None = None,
        reader_checkpoints: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> AnswerReport:
        """Retrieve `k` passages with `retriever` (or read the given `passages`, {"title", "text"}
        each; when there are more than `k`, the `k` that BM25 ranks highest), then read them with
        each reader. A reader that adds passage relevance to its span scores (REALM) gets it."""
        question = check_question(question)
        k = check_k(k)
        given = None
        if passages is None:
            self._names([retriever])
        else:
            pairs = check_passages(passages)
            given = [(str(p.get("id", f"pasted-{i + 1}")), t, x) for i, (p, (t, x)) in enumerate(zip(passages, pairs))]
        return answering.answer(
            self,
            question,
            retriever,
            list(readers),
            k,
            top_k,
            given,
            max_answer_tokens,
            reader_checkpoints or {},
            timeout,
        )


def default_bundles() -> str | None:
    """Where prebuilt indexes of the bundled corpus come from: $LFQA_INDEXES (a directory or
    "hub:org/name"), else None (build them)."""
    return os.environ.get("LFQA_INDEXES", "").strip() or None
