"""Which corpus each visitor uses: one engine per corpus, shared, bounded, never substituted.

A web session holds a `CorpusRef` (the corpus's fingerprint and the name this session gave
it), not an engine. `EngineRegistry` keeps one `RetrievalEngine` per corpus for all the
sessions that use it. The bundled corpus is always kept; an uploaded one is dropped when the
last session using it ends, or, least recently used first, when more than `max_uploads`
are held. A session whose corpus was dropped is told so and asked to upload it again: it is
never answered from another corpus.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from .engine import RetrievalEngine, default_bundles
from .errors import CorpusUnavailableError
from .retrieval.corpus import Corpus, load_bundled_corpus

MAX_UPLOADS = 4  # uploaded corpora held at once; each is at most 20,000 passages (see the README)
FORGET_AFTER = 1024  # how many reasons for dropped corpora are remembered


@dataclass(frozen=True)
class CorpusRef:
    """What a session holds: the corpus (by fingerprint), its name for this session, its size."""

    key: str
    name: str
    size: int


class EngineRegistry:
    """One engine per corpus fingerprint, shared by the sessions using it; thread-safe."""

    def __init__(
        self,
        bundled: Corpus,
        make_engine: Callable[[Corpus], RetrievalEngine] = RetrievalEngine,
        max_uploads: int = MAX_UPLOADS,
        bundled_engine: RetrievalEngine | None = None,
    ):
        """`bundled_engine` is the engine of the bundled corpus when it needs settings of its own
        (prebuilt indexes); by default `make_engine(bundled)`."""
        self._make_engine = make_engine
        self.max_uploads = max_uploads
        self._lock = threading.Lock()
        self._engines: OrderedDict[str, RetrievalEngine] = OrderedDict()  # uploads, least recently used first
        self._holders: dict[str, set[str]] = {}  # corpus key -> sessions using it
        self._session_key: dict[str, str] = {}  # session -> the uploaded corpus it uses
        self._dropped: OrderedDict[str, str] = OrderedDict()  # corpus key -> why it was dropped
        self.bundled = bundled_engine if bundled_engine is not None else make_engine(bundled)
        self.bundled_ref = CorpusRef(bundled.fingerprint, bundled.name, len(bundled))

    def register(self, corpus: Corpus, session: str | None = None, name: str | None = None) -> CorpusRef:
        """Hold `corpus` for `session` (replacing the corpus that session used before) and
        return the reference the session keeps."""
        key = corpus.fingerprint
        ref = CorpusRef(key, name or corpus.name, len(corpus))
        if key == self.bundled_ref.key:
            self.release(session)
            return ref
        dropped: list[RetrievalEngine] = []
        with self._lock:
            if session is not None:
                dropped += self._release_locked(session, keep=key)
                self._session_key[session] = key
                self._holders.setdefault(key, set()).add(session)
            if key not in self._engines:
                self._engines[key] = self._make_engine(corpus)
            self._engines.move_to_end(key)
            self._dropped.pop(key, None)
            while len(self._engines) > self.max_uploads:
                old, engine = self._engines.popitem(last=False)
                self._forget(
                    old,
                    f"it was unloaded to make room for newer uploads (this server keeps {self.max_uploads} at a time)",
                )
                dropped.append(engine)
        for engine in dropped:
            engine.close()
        return ref

    def engine(self, ref: CorpusRef) -> RetrievalEngine:
        """The engine of the session's corpus; CorpusUnavailableError if it was dropped."""
        if ref.key == self.bundled_ref.key:
            return self.bundled
        with self._lock:
            engine = self._engines.get(ref.key)
            if engine is not None:
                self._engines.move_to_end(ref.key)
                return engine
            why = self._dropped.get(ref.key, "this server no longer holds it (it may have restarted)")
        raise CorpusUnavailableError(
            f"Your corpus {ref.name!r} is not loaded any more: {why}. Upload it again, or switch to the bundled corpus."
        )

    def release(self, session: str | None) -> None:
        """The session ended (or switched corpus): drop the uploads nobody else uses."""
        if session is None:
            return
        with self._lock:
            dropped = self._release_locked(session)
        for engine in dropped:
            engine.close()

    def held(self) -> list[RetrievalEngine]:
        """The engines held now: the bundled one first, then uploads, most recently used last."""
        with self._lock:
            return [self.bundled, *self._engines.values()]

    def _release_locked(self, session: str, keep: str | None = None) -> list[RetrievalEngine]:
        key = self._session_key.pop(session, None)
        if key is None or key == keep:
            return []
        holders = self._holders.get(key, set())
        holders.discard(session)
        if holders or key not in self._engines:
            return []
        self._holders.pop(key, None)
        self._forget(key, "every session that used it has ended")
        return [self._engines.pop(key)]

    def _forget(self, key: str, why: str) -> None:
        self._holders.pop(key, None)
        self._dropped[key] = why
        while len(self._dropped) > FORGET_AFTER:
            self._dropped.popitem(last=False)


_default: EngineRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> EngineRegistry:
    """The process-wide registry over the bundled corpus (the app's); created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            corpus = load_bundled_corpus()
            _default = EngineRegistry(corpus, bundled_engine=RetrievalEngine(corpus, bundles=default_bundles()))
        return _default
