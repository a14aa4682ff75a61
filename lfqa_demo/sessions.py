"""Which corpus each visitor uses: one engine per corpus, shared, bounded, never substituted.

A web session holds a `CorpusRef` (the corpus's fingerprint and the name this session gave
it), not an engine. `EngineRegistry` keeps one `RetrievalEngine` per corpus for all the
sessions that use it. The bundled corpus is always kept; an uploaded one is dropped when the
last session using it ends, or, least recently used first, when more than `max_uploads`
are held. A session whose corpus was dropped is told so and asked to upload it again: it is
never answered from another corpus.

That holds across a restart too: with a `state_file`, the registry writes which session uses
which upload (session id, corpus fingerprint and name; nothing else) and reads it back when the
server starts again. A session whose upload was lost with the restart (its page still names the
file; its state fell back to the bundled corpus) is told so until it uploads again or switches
to the bundled corpus, instead of being answered from the bundled corpus.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .engine import RetrievalEngine, default_bundles
from .errors import CorpusError, CorpusUnavailableError, InvalidInputError, LfqaError, failure_message
from .retrieval.corpus import Corpus, load_bundled_corpus
from .retrieval.indexes import default_cache_dir
from .status import Phase, Status

if TYPE_CHECKING:
    from .retrieval.bundle_downloads import BundleDownload

log = logging.getLogger(__name__)

MAX_UPLOADS = 4  # uploaded corpora held at once; each is at most 20,000 passages (see the README)
FORGET_AFTER = 1024  # how many reasons for dropped corpora (and sessions with lost uploads) are remembered
MAX_STATE_BYTES = 1024 * 1024
MAX_SESSION_CHARS = 64  # Gradio's own session ids have 11-12 characters


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
        state_file: str | Path | None = None,
        standing: Sequence[RetrievalEngine] = (),
        refused: Mapping[str, str] | None = None,
    ):
        """`bundled_engine` is the engine of the bundled corpus when it needs settings of its own
        (prebuilt indexes); by default `make_engine(bundled)`. `state_file` keeps which session
        uses which upload across restarts (see the module docstring); None: not kept. `standing`
        are the engines of corpus bundles offered to everyone (the first is the default corpus),
        `refused` the bundles that could not be opened, with why."""
        refused = refused or {}
        self._make_engine = make_engine
        self.max_uploads = max_uploads
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one writer of the sessions file at a time
        self._engines: OrderedDict[str, RetrievalEngine] = OrderedDict()  # uploads, least recently used first
        self._holders: dict[str, set[str]] = {}  # corpus key -> sessions using it
        self._session_key: dict[str, str] = {}  # session -> the uploaded corpus it uses
        self._dropped: OrderedDict[str, str] = OrderedDict()  # corpus key -> why it was dropped
        self.bundled = bundled_engine if bundled_engine is not None else make_engine(bundled)
        self.bundled_ref = CorpusRef(bundled.fingerprint, bundled.name, len(bundled))
        # The corpora every session may choose, always held: the corpus bundles named by
        # LFQA_CORPORA in their order, then the bundled corpus. The first is where a session starts.
        self.standing: dict[str, RetrievalEngine] = {}
        self.standing_refs: list[CorpusRef] = []
        for engine in [*standing, self.bundled]:
            ref = CorpusRef(engine.corpus.fingerprint, engine.corpus.name, len(engine.corpus))
            if ref.key not in self.standing:
                self.standing[ref.key] = engine
                self.standing_refs.append(ref)
        self.default_ref = self.standing_refs[0]
        self.default = self.standing[self.default_ref.key]
        self.refused = dict(refused)  # corpus bundles named but not opened: {spec: why}
        self.downloads: dict[str, BundleDownload] = {}  # hub corpus bundles on their way: {spec: download}
        self._names: dict[str, str] = {}  # session -> the name it gave its upload
        self._state_file = Path(state_file) if state_file else None
        self._lost: dict[str, str] = self._read_state()  # session -> its upload's name, before the restart

    def register(self, corpus: Corpus, session: str | None = None, name: str | None = None) -> CorpusRef:
        """Hold `corpus` for `session` (replacing the corpus that session used before) and
        return the reference the session keeps."""
        key = corpus.fingerprint
        ref = CorpusRef(key, name or corpus.name, len(corpus))
        if key in self.standing:
            self.release(session)
            return ref
        dropped: list[RetrievalEngine] = []
        with self._lock:
            if session is not None:
                dropped += self._release_locked(session, keep=key)
                self._session_key[session] = key
                self._names[session] = ref.name
                self._lost.pop(session, None)
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
        self._save_state()
        return ref

    def engine(self, ref: CorpusRef) -> RetrievalEngine:
        """The engine of the session's corpus; CorpusUnavailableError if it was dropped."""
        if ref.key in self.standing:
            return self.standing[ref.key]
        with self._lock:
            engine = self._engines.get(ref.key)
            if engine is not None:
                self._engines.move_to_end(ref.key)
                return engine
            why = self._dropped.get(ref.key, "this server no longer holds it (it may have restarted)")
        raise CorpusUnavailableError(
            f"Your corpus {ref.name!r} is not loaded any more: {why}. Upload it again, or switch to the bundled corpus."
        )

    def session_ref(self, session: str | None) -> CorpusRef:
        """The corpus `session` uses, as the registry knows it (the bundled one if it chose no
        other); CorpusUnavailableError if its upload was dropped or lost in a restart."""
        with self._lock:
            key = self._session_key.get(session) if session is not None else None
            engine = self._engines.get(key) if key is not None else None
            name = self._names.get(session) if session is not None else None
        if key is None:
            self.check_not_lost(session)
            return self.default_ref
        ref = CorpusRef(key, name or "your upload", len(engine.corpus) if engine is not None else 0)
        self.engine(ref)  # raises, saying why, if it was dropped
        return ref

    def add_standing(self, engine: RetrievalEngine) -> CorpusRef:
        """Offer one more corpus to every session (a hub bundle whose download finished), last."""
        ref = CorpusRef(engine.corpus.fingerprint, engine.corpus.name, len(engine.corpus))
        with self._lock:
            if ref.key not in self.standing and all(r.name != ref.name for r in self.standing_refs):
                self.standing[ref.key] = engine
                self.standing_refs = [*self.standing_refs, ref]
        return ref

    def corpus_states(self) -> dict[str, Status]:
        """The corpus bundles named in LFQA_CORPORA that are not offered (yet): downloading, or failed and why."""
        states = {spec: Status(Phase.FAILED, note=why) for spec, why in self.refused.items()}
        states |= {spec: d.status() for spec, d in self.downloads.items() if d.status().phase is not Phase.READY}
        return states

    def use_standing(self, name: str, session: str | None) -> CorpusRef:
        """Switch `session` to the standing corpus named `name` (dropping its upload if nobody else
        uses it); InvalidInputError naming the choices when there is no such corpus."""
        for ref in self.standing_refs:
            if ref.name == name:
                self.release(session)
                return ref
        names = ", ".join(repr(r.name) for r in self.standing_refs)
        raise InvalidInputError(f"There is no corpus named {str(name)[:80]!r} here; the corpora are {names}.")

    def release(self, session: str | None) -> None:
        """The session ended (or switched corpus): drop the uploads nobody else uses."""
        if session is None:
            return
        with self._lock:
            dropped = self._release_locked(session)
            lost = self._lost.pop(session, None)
        for engine in dropped:
            engine.close()
        if dropped or lost:
            self._save_state()

    def check_not_lost(self, session: str | None) -> None:
        """CorpusUnavailableError if `session` used an upload that this server lost in a restart
        (the session's state then names the bundled corpus, but its visitor chose another)."""
        with self._lock:
            name = self._lost.get(session) if session is not None else None
        if name is not None:
            raise CorpusUnavailableError(
                f"Your corpus {name!r} is not loaded any more: the server restarted since you uploaded it. "
                "Upload it again, or switch to the bundled corpus (Corpus tab)."
            )

    def _release_locked(self, session: str, keep: str | None = None) -> list[RetrievalEngine]:
        if keep is None:
            self._names.pop(session, None)
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

    def _read_state(self) -> dict[str, str]:
        """The sessions that held uploads when the last process stopped: {session: name}."""
        if self._state_file is None:
            return {}
        try:
            if self._state_file.stat().st_size > MAX_STATE_BYTES:
                raise ValueError("too large")
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
            held = data["uploads"] if isinstance(data, dict) else None
            if not isinstance(held, dict):
                raise ValueError("not a map of sessions")
            lost = {
                s: n[:200]
                for s, n in held.items()
                if isinstance(s, str) and isinstance(n, str) and len(s) <= MAX_SESSION_CHARS
            }
            return dict(list(lost.items())[-FORGET_AFTER:])
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("the sessions file %s is not used: %s", self._state_file.name, type(exc).__name__)
            return {}

    def _save_state(self) -> None:
        """Write the sessions holding uploads (and those still told of a lost one), atomically;
        outside the registry's lock, so that no request waits for the disk. A session id is the
        client's to choose: one longer than MAX_SESSION_CHARS is not written (it would make the
        file grow by what a client sends)."""
        if self._state_file is None:
            return
        with self._save_lock:  # the snapshot too: a later one is never overwritten by an earlier one
            with self._lock:
                held = {**self._lost, **{s: self._names.get(s, "your upload") for s in self._session_key}}
            held = {s: n[:200] for s, n in held.items() if len(s) <= MAX_SESSION_CHARS}
            held = dict(list(held.items())[-FORGET_AFTER:])
            try:
                self._state_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._state_file.with_name(f".{self._state_file.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"uploads": held}), encoding="utf-8")
                os.replace(tmp, self._state_file)
            except OSError as exc:  # a read-only or full cache: only the restart notice is lost
                log.warning("the sessions file cannot be written: %s", exc.strerror or type(exc).__name__)

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
            specs = [s.strip() for s in os.environ.get("LFQA_CORPORA", "").split(",") if s.strip()]
            opened, refused, pending = open_standing_corpora(specs)
            _default = EngineRegistry(
                corpus,
                bundled_engine=RetrievalEngine(corpus, bundles=default_bundles()),
                state_file=default_cache_dir() / "sessions.json",
                standing=opened,
                refused=refused,
            )
            registry = _default
            for spec in pending:  # hub bundles not here yet: fetched in the background, offered when complete
                try:
                    download = fetch_later(spec, registry)
                    if download is not None:
                        registry.downloads[spec] = download
                except Exception as exc:  # ours (offline...) or a bug: the app starts without it
                    log.error("LFQA_CORPORA: %s is not offered: %s", spec, exc)
                    registry.refused[spec] = failure_message(exc, logged=True)
        return _default


def open_standing_corpora(specs: Sequence[str]) -> tuple[list[RetrievalEngine], dict[str, str], list[str]]:
    """The corpus bundles of LFQA_CORPORA (directories, or hub:org/name[@rev]) that open now, in
    order (a hub bundle whose folder is complete opens at once, offline too); those that could
    not be opened, with why (logged: the app starts without them); and the hub bundles still to
    fetch."""
    from .retrieval.bundle_downloads import HUB, complete, download_folder, parse_hub_spec
    from .retrieval.corpus_bundles import open_corpus_bundle

    engines, refused, pending = [], {}, []
    for spec in specs:
        try:
            if spec.startswith(HUB):
                folder = download_folder(parse_hub_spec(spec)[0])
                if not complete(folder):
                    pending.append(spec)
                    continue
                spec_dir = folder
            else:
                spec_dir = Path(spec).expanduser()
            engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(spec_dir))
            if any(e.corpus.name == engine.corpus.name for e in engines):  # chosen by name: one of each
                raise CorpusError(f"another corpus listed before it is named {engine.corpus.name!r}")
            engines.append(engine)
        except LfqaError as exc:
            log.error("LFQA_CORPORA: %s is not offered: %s", spec, exc)
            refused[spec] = str(exc)
        except Exception as exc:  # a check that broke on operator input (a bug): the app still starts
            log.exception("LFQA_CORPORA: %s could not be opened", spec)
            refused[spec] = f"it could not be opened ({type(exc).__name__})"
    return engines, refused, pending


def fetch_later(spec: str, registry: EngineRegistry):
    """Start fetching the hub bundle `spec`; when it is complete and checked, `registry` offers it."""
    from .retrieval.bundle_downloads import fetch_or_open

    def ready(bundle) -> None:
        registry.add_standing(RetrievalEngine(corpus_bundle=bundle))

    fetched = fetch_or_open(spec, ready)
    if not hasattr(fetched, "status"):  # complete after all (another process finished it): offer it now
        ready(fetched)
        return None
    return fetched
