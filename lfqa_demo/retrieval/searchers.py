"""What an engine searches with: BM25 and the dense retrievers, behind one interface.

Every searcher has a `name` (the engine's key), a `label` and a `score_kind` (what its scores
mean), and answers `search(questions, k, timeout) -> Ranking`. A `DenseSearch` also owns the
build of its index over the engine's corpus (see builds.py): started once, shared by every
request, cancellable; `BM25Search` builds its index on first use, in well under a second for
the corpora the app accepts, or opens a corpus bundle's, memory-mapped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..errors import IndexNotReady, LfqaError
from ..models.families import BM25_SCORE, RETRIEVER_FAMILIES
from ..models.loading import load_retriever
from ..models.retrievers import DenseRetriever, RetrieverSpec
from ..status import Origin, Phase, Status
from .bm25 import BM25Index
from .builds import IndexBuild
from .bundles import BundleSource, load_bundle
from .corpus import Corpus
from .corpus_bundles import CorpusBundle
from .indexes import APPROXIMATE_ABOVE, DenseIndex, build_index, choose_kind

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25  # how often a caller waiting for an index reports its progress


@dataclass
class Ranking:
    """The top k of each question: scores and corpus positions [n, k'] (k' = min(k, corpus size))."""

    scores: np.ndarray
    ids: np.ndarray
    encode_seconds: float
    search_seconds: float


class Searcher(Protocol):
    name: str
    label: str
    score_kind: str
    dense: bool

    def search(self, questions: list[str], k: int, timeout: float | None = None) -> Ranking: ...


class BM25Search:
    """Okapi BM25 over the corpus (see bm25.py); its index is built on first use."""

    label = "BM25"
    score_kind = BM25_SCORE
    dense = False

    def __init__(self, name: str, corpus: Corpus, opener: Callable[[], BM25Index] | None = None):
        """`opener`, when given, opens a prebuilt index (a corpus bundle's) instead of building one."""
        self.name, self.corpus = name, corpus
        self._opener = opener
        self._index: BM25Index | None = None
        self._refused: LfqaError | None = None  # why a prebuilt index cannot be opened: said again, not retried
        self._lock = threading.Lock()

    def index(self) -> BM25Index:
        with self._lock:
            if self._refused is not None:
                raise self._refused
            if self._index is None:
                try:
                    self._index = self._opener() if self._opener is not None else BM25Index(self.corpus)
                except LfqaError as exc:  # a bundle's files do not change while it is served
                    self._refused = exc
                    raise
            return self._index

    def search(self, questions: list[str], k: int, timeout: float | None = None) -> Ranking:
        index = self.index()
        started = time.perf_counter()
        scores, ids = index.search(questions, k)
        # A passage sharing no term with the question scores 0: it was not found, so it is no hit.
        ids = np.where(scores > 0, ids, -1)
        return Ranking(scores, ids, 0.0, time.perf_counter() - started)  # tokenising is part of the search


SPARSE_SEARCHERS = {"bm25": BM25Search}  # by the name an engine's `retrievers` gives them


@dataclass(frozen=True)
class IndexSettings:
    """How an engine builds its dense indexes (see indexes.py)."""

    cache_dir: str | Path | None = None
    kind: str = "auto"
    approximate_above: int = APPROXIMATE_ABOVE
    batch_size: int = 32
    bundles: str | None = None  # prebuilt indexes: a directory or "hub:org/name" (see bundles.py)
    # A corpus bundle (corpus_bundles.py): its indexes are the only ones; nothing is built on a click.
    corpus_bundle: CorpusBundle | None = None


class DenseSearch:
    """A dense retriever over the corpus: its model (loaded on first use) and its index, built
    once in the background, or set ready-made."""

    dense = True

    def __init__(
        self,
        name: str,
        spec: RetrieverSpec,
        corpus: Corpus,
        settings: IndexSettings,
        device=None,
        dtype=None,
        load_as: str | RetrieverSpec | None = None,
    ):
        self.name, self.spec, self.corpus, self.settings = name, spec, corpus, settings
        self.load_as = load_as or spec  # a default's name ("minilm") names its model in model_states()
        self.device, self.dtype = device, dtype
        self.label = RETRIEVER_FAMILIES[spec.family].label if name == spec.family else name
        self.score_kind = RETRIEVER_FAMILIES[spec.family].score
        self._lock = threading.Lock()
        self._build: IndexBuild | None = None
        self._ready: DenseIndex | None = None  # set ready-made (set_index)

    def model(self) -> DenseRetriever:
        """The loaded retriever (loads it on first use)."""
        return load_retriever(self.load_as, device=self.device, dtype=self.dtype)

    def start(self) -> IndexBuild:
        """The running or finished build; a new one if none, or the last failed or was cancelled."""
        with self._lock:
            build = self._build
            if build is not None and not (build.finished and build.state != Phase.READY):
                return build

            def prepare() -> DenseIndex | None:
                """Outside the build slot: the question side of the model, then a prebuilt index if
                one fits (the passage encoder loads only if passages are embedded)."""
                bundle = self.settings.corpus_bundle
                if bundle is not None:  # its index, or the reason there is none (before loading a model)
                    bundle.entry(self.name)
                model = self.model()
                if bundle is not None:
                    return bundle.dense_index(self.name, model)
                return self._prebuilt(model, build) if self.settings.bundles else None

            def run(progress: Callable[[int, int], None]) -> DenseIndex:
                s = self.settings
                progress(0, len(self.corpus))  # the model is loaded: embedding starts
                index = build_index(
                    self.model(),
                    self.corpus,
                    kind=s.kind,
                    cache_dir=s.cache_dir,
                    batch_size=s.batch_size,
                    progress=progress,
                    approximate_above=s.approximate_above,
                )
                index.refused = build.refused  # a refused bundle stays visible once the index is ready
                return index

            build = IndexBuild(self.name, run, len(self.corpus), prepare)
            self._build = build.start()
            return build

    def _prebuilt(self, model: DenseRetriever, build: IndexBuild) -> DenseIndex | None:
        """The index from the prebuilt bundles when one fits; else None, and the build says why."""
        try:
            s = self.settings
            directory = BundleSource(s.bundles).directory() / self.name
            return load_bundle(
                directory, model, self.corpus, choose_kind(s.kind, len(self.corpus), s.approximate_above)
            )
        except LfqaError as exc:  # refused, damaged, or the hub repo unavailable: build it here instead
            log.warning("%s: not using the prebuilt index: %s", self.name, exc)
            build.refused = str(exc)
            return None
        except Exception as exc:  # a check that broke on operator input (a bug): the retriever still works
            log.exception("%s: the prebuilt index could not be checked", self.name)
            build.refused = f"it could not be checked ({type(exc).__name__})"
            return None

    def built(self) -> DenseIndex | None:
        """The index if it is ready, else None (never starts a build)."""
        with self._lock:
            if self._ready is not None:
                return self._ready
            build = self._build
        return build.result if build is not None and build.state == Phase.READY else None

    def set_index(self, index: DenseIndex) -> None:
        with self._lock:
            self._ready = index

    def index(self, progress: Callable[[int, int], None] | None = None, timeout: float | None = None) -> DenseIndex:
        """The index, waiting at most `timeout` seconds (None: until it is ready) and calling
        `progress(done, total)` meanwhile; past the timeout IndexNotReady, and the build goes on."""
        ready = self.built()
        if ready is not None:
            return ready
        build = self.start()
        build.join_waiters()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not build.wait(POLL_SECONDS):
                if progress is not None:
                    progress(build.done, build.total)
                if deadline is not None and time.monotonic() >= deadline:
                    build.keep_in_background()
                    raise IndexNotReady(self.label, build.status())
            index = build.outcome()
            if progress is not None:
                progress(build.total, build.total)
            return index
        finally:
            build.leave_waiters()

    def building(self) -> bool:
        """Whether its index is being built now (started and not finished)."""
        with self._lock:
            build = self._build
        return self._ready is None and build is not None and not build.finished

    def status(self) -> Status | None:
        """Where the index stands; None if nothing was asked of it yet."""
        index = self.built()
        if index is not None:
            return index_status(index)
        with self._lock:
            build = self._build
        return build.status() if build is not None else None

    def close(self) -> None:
        """Stop the build if it is still running (the engine is being dropped)."""
        with self._lock:
            build = self._build
        if build is not None:
            build.cancel()

    def search(self, questions: list[str], k: int, timeout: float | None = None) -> Ranking:
        index = self.index(timeout=timeout)
        started = time.perf_counter()
        vectors = self.model().encode_questions(questions)
        encoded = time.perf_counter()
        scores, ids = index.search(vectors, k)
        return Ranking(scores, ids, encoded - started, time.perf_counter() - encoded)


def index_status(index: DenseIndex) -> Status:
    """A ready index's status: where it came from, and what to know about it (a bundle refused
    before it was rebuilt, a cache that could not be written, a prebuilt index in another dtype)."""
    if index.origin == "prebuilt":
        origin = Origin.PREBUILT
    elif index.persist_error:
        origin = Origin.MEMORY_ONLY
    elif index.refused:
        origin = Origin.REBUILT if index.origin == "built" else Origin.CACHED
    else:
        origin = Origin.CACHED if index.origin == "cache" else Origin.BUILT
    notes = [n for n in (index.persist_error, index.refused, index.note) if n]
    return Status(Phase.READY, len(index), len(index), note="; ".join(notes) or None, origin=origin)
