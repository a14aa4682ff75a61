"""Warm-up: load the models and the bundled corpus's indexes in the background, right after launch.

On a freshly started Space the first visitor would otherwise wait for three question encoders,
two readers and, worst of all, three indexes of 552 passages each (minutes on a CPU without
native bf16). `WarmUp` does that work ahead of them in one daemon thread: first every model
(the question encoders, then the readers; a separate passage encoder, DPR's, loads when the
first passage is embedded), then each dense index of the engine's corpus, cheapest first, read
from prebuilt bundles or the cache when they fit, else built.

It never blocks anything: the page and BM25 need none of it, and an index build it started is
the engine's ordinary shared build, so a visitor asking for that index waits for the same
build (it never starts a second one) and sees its progress.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Sequence

from .engine import RetrievalEngine
from .errors import failure_message
from .reading.loading import load_reader
from .status import ModelKey

log = logging.getLogger(__name__)


def warmup_enabled(environ: dict[str, str] | None = None) -> bool:
    """LFQA_WARMUP=1/0 decides; unset, the warm-up runs on Hugging Face Spaces (SPACE_ID is set)."""
    env = os.environ if environ is None else environ
    flag = env.get("LFQA_WARMUP", "").strip().lower()
    if flag:
        return flag in ("1", "true", "yes", "on")
    return bool(env.get("SPACE_ID"))


def embedding_cost(engine: RetrievalEngine, name: str) -> int:
    """A relative cost of indexing with `name`: encoder layers x max passage length (RetriBERT's
    8 x 128 is about a third of DPR's 12 x 256 or REALM's 12 x 288)."""
    from .models.checkpoint_io import read_config  # imports torch: not at import of the package

    retriever = engine.retriever(name)
    layers = read_config(retriever.checkpoints[-1]).get("num_hidden_layers", 12)
    return int(layers) * retriever.max_passage_length


class WarmUp:
    """The warm-up of one engine: `start()` runs it in a daemon thread; `pending()` says what it
    has not reached yet (for a status panel), `finished` whether it is over."""

    def __init__(self, engine: RetrievalEngine, retrievers: Sequence[str], readers: Sequence[str] = ("dpr", "realm")):
        self.engine = engine
        self.retrievers = engine.dense_names(list(retrievers))
        self.readers = list(readers)
        self.failures: dict[object, str] = {}  # step -> why it failed (the rest of the warm-up goes on)
        # The steps: a model by its ModelKey, an index as ("index", retriever).
        self._pending: set[object] = {ModelKey.retriever(n) for n in self.retrievers}
        self._pending |= {ModelKey.reader(n) for n in self.readers} | {("index", n) for n in self.retrievers}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="warm-up", daemon=True)
        self._done = threading.Event()
        self.started = False

    def start(self) -> "WarmUp":
        self.started = True
        self._thread.start()
        return self

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def pending(self) -> set[object]:
        """The steps not started yet: ModelKeys, and ("index", name) for indexes."""
        with self._lock:
            return set(self._pending)

    def _step(self, step: object, work) -> None:
        with self._lock:
            self._pending.discard(step)
        try:
            work()
        except Exception as exc:  # one model or index failing never stops the others
            self.failures[step] = failure_message(exc)
            log.warning("warm-up: %s failed: %s", step, self.failures[step])

    def _run(self) -> None:
        try:
            for name in self.retrievers:
                self._step(ModelKey.retriever(name), lambda n=name: self.engine.retriever(n))
            for name in self.readers:
                self._step(
                    ModelKey.reader(name),
                    lambda n=name: load_reader(n, device=self.engine.device, dtype=self.engine.dtype),
                )
            for name in sorted(self.retrievers, key=self._cost):
                self._step(("index", name), lambda n=name: self._index(n))
        finally:
            with self._lock:
                self._pending.clear()
            self._done.set()
            log.info("warm-up finished%s", f" ({len(self.failures)} failed)" if self.failures else "")

    def _cost(self, name: str) -> int:
        try:
            return embedding_cost(self.engine, name)
        except Exception:  # the model failed to load: its index fails at once, order does not matter
            return 0

    def _index(self, name: str) -> None:
        """Start (or join) the engine's build of `name` and wait for it; requests share it."""
        if self.engine.built_index(name) is not None:
            return
        build = self.engine.start_index(name)
        build.keep_in_background()  # no request owns it: it must not stop when a visitor leaves
        build.wait()
        build.outcome()  # raises the build's error, for the log
