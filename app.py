"""lfqa-demo: how neural retrievers and readers answer questions (Gradio app).

The page, its handlers and the server's start: every button calls one function of `lfqa_demo`
that scripts can call too (the handlers check what arrives, the backend does the work, `ui/`
makes the words). Models load on first use (on the GPU when there is one); the page comes up
without loading any weights.
Run `python app.py` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) or `gradio app.py`.
"""

from __future__ import annotations

import os
from pathlib import Path


def _persistent_storage(root: Path = Path("/data")) -> None:
    """On a Space with persistent storage (/data), keep hub downloads and the index cache there, so a
    restart finds them. Must run before gradio / huggingface_hub / datasets are imported: they read
    HF_HOME once, at import. Weights that `preload_from_hub` put into the image's own cache are still
    found there (lfqa_demo.models.hub.image_cache_dir)."""
    if root.is_dir() and os.access(root, os.W_OK):
        os.environ.setdefault("HF_HOME", str(root / ".huggingface"))
        os.environ.setdefault("LFQA_CACHE", str(root / "lfqa-demo"))


_persistent_storage()

import functools
import html
import inspect
import ipaddress
import json
import logging
import math
import re
import tempfile
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Callable

import gradio as gr
import pandas as pd
from starlette.middleware import Middleware

import lfqa_demo
from lfqa_demo.admission import Visitor, WorkLine
from lfqa_demo.embedding import embed_texts
from lfqa_demo.engine import REQUEST_BUDGET_S
from lfqa_demo.errors import InvalidInputError, LfqaError
from lfqa_demo.evaluation import MAX_EVAL_K, EvaluationReport, evaluate_retriever
from lfqa_demo.inputs import clean_text
from lfqa_demo.models import zerogpu
from lfqa_demo.retrieval.corpus import (
    MAX_QA_ANSWER_CHARS,
    MAX_QA_ANSWERS,
    MAX_UPLOAD_BYTES,
    QASet,
    corpus_from_file,
    corpus_from_hub,
    load_bundled_questions,
    qa_from_file,
)
from lfqa_demo.sessions import MAX_SESSION_CHARS, CorpusRef, default_registry
from lfqa_demo.warmup import WAITING, WarmUp, warmup_enabled
from ui import evaluation_view, render
from ui.request_limits import BoundedBodies, clip_console

log = logging.getLogger("lfqa_demo.app")

ASSETS = Path(__file__).parent / "assets"
# Fonts, colours and spacing, set once (Soft, indigo on slate, system fonts: nothing is fetched
# from a font CDN); assets/app.css builds on its CSS variables.
THEME = gr.Theme.load(str(ASSETS / "theme.json"))
MAX_QUESTION_CHARS = 2000
MAX_PASTED_CHARS = 50_000
MAX_EMBED_TEXTS = 10  # questions, and passages, per "Embed" click: bounds the work of one request
MAX_HUB_PASSAGES = 20_000
COMPARE_CHOICES = [
    ("RetriBERT", "retribert"),
    ("DPR", "dpr"),
    ("REALM", "realm"),
    ("BM25", "bm25"),
    ("MiniLM", "minilm"),
]
MAP_KINDS = {"corpus": "corpus passage", "question": "your question", "passage": "your passage"}  # legend wording
READER_CHOICES = [("DPR", "dpr"), ("REALM", "realm")]
# Two requests run at once (the machine has 2 cores); at most QUEUE_SIZE wait, past that a
# visitor is told the queue is full instead of waiting without end.
CONCURRENCY = 2
QUEUE_SIZE = int(os.environ.get("LFQA_QUEUE_SIZE", "64"))
# Heavy work has lines of its own (lfqa_demo/admission.py): never in Gradio's queue, so it can never
# fill it, and light requests (comparisons, answers, status) never wait behind it. Each waiting or
# running place holds one of Gradio's worker threads: MAX_THREADS leaves room for all of them.
EVALUATION_BUDGET_S = float(os.environ.get("LFQA_EVALUATION_BUDGET_S", "600"))
EVALUATIONS = WorkLine("evaluation", running=1, waiting=3, per_address=1, budget_s=EVALUATION_BUDGET_S)
INDEX_BUILDS = WorkLine("index build", running=4, waiting=8, per_address=3)
EMBEDS = WorkLine("embedding", running=2, waiting=10, per_address=3)
WORK_LINES = (EVALUATIONS, INDEX_BUILDS, EMBEDS)
MAX_THREADS = 40 + sum(line.capacity for line in WORK_LINES)  # Gradio's default (40) kept for the rest
# How long one request waits for dense indexes before builds go on in the background.
BUDGET_S = float(os.environ.get("LFQA_REQUEST_BUDGET_S", REQUEST_BUDGET_S))
EXPORT_DIR = Path(tempfile.gettempdir()) / "lfqa-demo-exports"  # embedding downloads, pruned as they age
EXPORT_KEEP_SECONDS = 600


def _tame_malloc(arenas: int = 2, trim_every_s: float = 30.0) -> None:
    """Keep the server's memory flat under load (glibc only; elsewhere a no-op).

    With one malloc arena per worker thread, memory that requests free stays fragmented across
    arenas and the RSS of a 3-minute soak kept growing (+22%); capping the arenas (what
    MALLOC_ARENA_MAX=2 does) and handing free pages back to the OS now and then keeps it level."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX; before any worker thread exists
    except (OSError, AttributeError):
        return

    def trim() -> None:
        while True:
            time.sleep(trim_every_s)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


_tame_malloc()

# On ZeroGPU: import `spaces` now (main thread, before any CUDA use) and register its GPU function
# before launch; the backend then runs every model call in short, sized GPU calls. Elsewhere a no-op.
zerogpu.setup()

registry = default_registry()  # one engine per corpus (index cache: $LFQA_CACHE), shared by sessions
DENSE_CHOICES = [c for c in COMPARE_CHOICES if c[1] in registry.bundled.dense_names()]
EXAMPLES = load_bundled_questions()
# Started after launch when LFQA_WARMUP=1 (the default on a Space): models, then the bundled
# corpus's indexes, in the background (lfqa_demo/warmup.py).
WARMUP = WarmUp(registry.bundled, ["retribert", "dpr", "realm"], [name for _, name in READER_CHOICES])
STATUS_MODELS = [(f"retriever {name}", f"{shown} encoders") for shown, name in DENSE_CHOICES] + [
    (f"reader {name}", f"{shown} reader") for shown, name in READER_CHOICES
]


# -- the error boundary ---------------------------------------------------------------------------
def _shown(message: str) -> gr.Error:
    """A toast with `message` as plain text: escaped (toasts render HTML) and with no server path."""
    return gr.Error(html.escape(render.public_message(message), quote=False), print_exception=False)


def user_errors(fn):
    """Turn the project's own errors (written for the visitor) into a message in the page; any
    other exception is a bug: its traceback goes to the log and the visitor sees "internal error"."""

    def convert(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, LfqaError):
            return _shown(str(exc))
        log.exception("internal error in %s", fn.__name__)
        return gr.Error(
            "Internal error: something went wrong on the server (it is logged). Try again, or try other input.",
            print_exception=False,
        )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise convert(exc) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise convert(exc) from exc

    return wrapper


# -- checking what arrives: handlers take raw payloads (preprocess=False), so any JSON can ------------
def _text(value: object, what: str, limit: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInputError(f"The {what} must be text.")
    value = _CONTROL.sub("", clean_text(value)).strip()
    if required and not value:
        raise InvalidInputError(f"Type a {what} first.")
    if len(value) > limit:
        raise InvalidInputError(f"The {what} has {len(value):,} characters; the limit is {limit:,}.")
    return value


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab and line breaks, and DEL


def _question(value: object) -> str:
    return _text(value, "question", MAX_QUESTION_CHARS, required=True)


def _whole_number(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidInputError(f"The {what} must be a whole number from {low} to {high}.") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise InvalidInputError(f"The {what} must be a whole number from {low} to {high}.")
    if not low <= value <= high:
        shown = f"; it was {int(value)}" if abs(value) < 1e6 else ""
        raise InvalidInputError(f"The {what} must be from {low} to {high}{shown}.")
    return int(value)


def _chosen(value: object, choices: list[tuple[str, str]], what: str, *, at_least_one: bool = True) -> list[str]:
    allowed = [v for _, v in choices]
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(v not in allowed for v in value):
        raise InvalidInputError(f"Choose {what} from: {', '.join(allowed)}.")
    if at_least_one and not value:
        raise InvalidInputError(f"Choose at least one of the {what}.")
    return list(dict.fromkeys(value))


def _engine(ref: object, request: gr.Request | None = None):
    """The engine of the session's corpus (never another corpus's: a dropped upload is an error)."""
    return registry.engine(_ref(ref, request))


def _ref(ref: object, request: gr.Request | None = None) -> CorpusRef:
    """The session's corpus; CorpusUnavailableError if its upload was lost when the server
    restarted (its state then fell back to the bundled corpus, which it did not choose)."""
    if isinstance(ref, CorpusRef) and ref.key != registry.bundled_ref.key:
        return ref
    registry.check_not_lost(_session(request))
    return registry.bundled_ref


def _display_name(name: object) -> str:
    """A visitor's file name fit to show: text, no control or direction-override characters
    (U+202E could disguise an extension), at most 200 characters."""
    if not isinstance(name, str):
        return ""
    return "".join(ch for ch in clean_text(name) if unicodedata.category(ch) not in ("Cc", "Cf"))[:200]


def _session(request: gr.Request | None) -> str | None:
    """The request's session id; None for one Gradio would not make (the client chooses it: a
    1 MB id must not be kept per upload, written to the sessions file, or compared per request)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return session if isinstance(session, str) and 0 < len(session) <= MAX_SESSION_CHARS else None


# -- handlers: thin calls into lfqa_demo ------------------------------------------------------------
@user_errors
def embed_questions(
    questions: str, passages: str, models: list[str], map_model: str, corpus_ref: CorpusRef, request: gr.Request = None
):
    """Word pieces, vectors, similarities and a 2-D map of the questions for each model (one embedding
    at a time per visitor, in the embeddings' own line: see lfqa_demo/admission.py)."""
    text = _text(questions, "questions", MAX_EMBED_TEXTS * (MAX_QUESTION_CHARS + 1))
    lines = [q.strip() for q in text.splitlines() if q.strip()]
    if not lines:
        raise InvalidInputError("Type at least one question (one per line).")
    if len(lines) > MAX_EMBED_TEXTS:
        raise InvalidInputError(f"Embed at most {MAX_EMBED_TEXTS} questions at a time; there are {len(lines)}.")
    if any(len(q) > MAX_QUESTION_CHARS for q in lines):
        raise InvalidInputError(f"A question is longer than {MAX_QUESTION_CHARS:,} characters.")
    pasted = lfqa_demo.passages_from_text(_text(passages, "passages", MAX_PASTED_CHARS))
    if len(pasted) > MAX_EMBED_TEXTS:
        raise InvalidInputError(f"Embed at most {MAX_EMBED_TEXTS} passages at a time; the text makes {len(pasted)}.")
    models = _chosen(models, DENSE_CHOICES, "models")
    map_model = (_chosen(map_model, DENSE_CHOICES, "map model", at_least_one=False) or [None])[0]
    engine = _engine(corpus_ref, request)
    pending = lambda note: (f"<div class='pending'>{render.esc(note)}</div>", *[gr.skip()] * 4)  # noqa: E731
    with (yield from _take_place(EMBEDS, request, pending)):
        for model in engine.load_models(retrievers=models):
            yield _loading_note(model), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        report = embed_texts(engine, lines, pasted, models)
        pieces, heatmaps, vector_rows, export = [], [], [], {"texts": report.texts, "kinds": report.kinds, "models": {}}
        for name, m in report.models.items():
            title = f"<h4>{render.esc(render.label(name))}</h4>"
            if m.error:
                pieces.append(
                    f"{title}<div class='error'>Unavailable: {render.esc(render.public_message(m.error))}</div>"
                )
                continue
            pieces.append(title + render.render_pieces(m.pieces, report.texts, m.norms, m.dim))
            heatmaps.append(
                render.render_heatmap(
                    report.texts, m.similarity, f"{render.label(name)}: dot product (the retrieval score)"
                )
            )
            export["models"][name] = {"dim": m.dim, "vectors": m.vectors.round(6).tolist(), "pieces": m.pieces}
        chosen = report.models.get(map_model) or next((m for m in report.models.values() if not m.error), None)
        # One model's vector: vectors of 128, 384 and 768 dimensions overlaid in one chart mean nothing.
        if chosen is not None and not chosen.error:
            label = f"{render.label(chosen.model)} ({chosen.dim}-d)"
            vector_rows = [{"dimension": d, "value": float(v), "model": label} for d, v in enumerate(chosen.vectors[0])]
        shown = [
            {**p, "kind": MAP_KINDS[p["kind"]]} for p in (chosen.map_points if chosen and not chosen.error else [])
        ]
        points = pd.DataFrame(shown, columns=["x", "y", "kind", "label"])
        vectors = pd.DataFrame(vector_rows, columns=["dimension", "value", "model"])
        yield (
            "".join(pieces),
            vectors,
            "".join(heatmaps) or "<div>No model could embed.</div>",
            points,
            str(_export(export)),
        )


def _export(data: dict) -> Path:
    """Write a download into EXPORT_DIR, after removing downloads older than EXPORT_KEEP_SECONDS
    (Gradio serves its own copy, so nothing accumulates in the temp folder)."""
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - EXPORT_KEEP_SECONDS
    for old in EXPORT_DIR.glob("embeddings-*.json"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another request removed it first
    path = EXPORT_DIR / f"embeddings-{uuid.uuid4().hex[:12]}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _comparison_outputs(c, ref: CorpusRef):
    agreement = pd.DataFrame(
        render.agreement_rows(c), columns=["retriever", "other", f"overlap@{c.k}", "rank-biased overlap"]
    )
    timings = pd.DataFrame(render.timing_rows(c), columns=TIMING_COLUMNS)
    return render.corpus_note(ref.name, ref.size) + render.render_comparison(c), agreement, timings


@user_errors
def compare_retrievers(
    question: str,
    k: float,
    retrievers: list[str],
    gold_answer: str,
    corpus_ref: CorpusRef,
    request: gr.Request = None,
):
    """Rank the corpus with each chosen retriever, side by side: the columns that are ready at
    once, each other one as soon as its index is (at most BUDGET_S; builds then go on)."""
    shown = _compare_request(question, k, retrievers, gold_answer)
    ref = _ref(corpus_ref, request)
    for c in _engine(ref).compare_live(
        shown["question"], shown["retrievers"], shown["k"], shown["gold"], budget_s=BUDGET_S
    ):
        yield _comparison_outputs(c, ref)


REFRESH_EVERY_S = 2.0  # how often a page with pending columns asks again (each ask is short)


def watch_comparison(question, k, retrievers, gold_answer, corpus_ref, request: gr.Request = None):
    """After a comparison: if some column's index is still being built, the request to repeat
    and the refresh timer switched on, so the page fills those columns by itself (a short
    request every REFRESH_EVERY_S, none of them waiting for the build); else nothing to do."""
    try:
        shown = _compare_request(question, k, retrievers, gold_answer)
        building = _engine(corpus_ref, request).building_indexes(shown["retrievers"])
    except LfqaError:
        building = []
    if not building:
        return None, gr.Timer(active=False)
    return shown, gr.Timer(active=True)


@user_errors
def refresh_comparison(
    shown: dict | None, question, k, retrievers, gold_answer, corpus_ref: CorpusRef, request: gr.Request = None
):
    """The comparison in `shown` again, without waiting for any index: the columns that became
    ready fill in, the others show their progress; the timer stops once none is pending, or
    once the form asks for another comparison (its own results must never be overwritten)."""
    try:
        current = _compare_request(question, k, retrievers, gold_answer)
    except LfqaError:
        current = None
    if not isinstance(shown, dict) or current != shown:
        return gr.skip(), gr.skip(), gr.skip(), None, gr.Timer(active=False)
    ref = _ref(corpus_ref, request)
    c = None
    for c in _engine(ref).compare_live(shown["question"], shown["retrievers"], shown["k"], shown["gold"], budget_s=0):
        pass
    pending = any(r.pending for r in c.results.values())
    return (*_comparison_outputs(c, ref), shown if pending else None, gr.Timer(active=pending))


def _compare_request(question, k, retrievers, gold_answer) -> dict:
    """A comparison's inputs, checked (InvalidInputError says what is wrong)."""
    return {
        "question": _question(question),
        "k": _whole_number(k, "k", 1, 50),
        "retrievers": _chosen(retrievers, COMPARE_CHOICES, "retrievers"),
        "gold": _text(gold_answer, "gold answer", MAX_QUESTION_CHARS) or None,
    }


@user_errors
def extract_answers(
    question: str,
    retriever: str,
    readers: list[str],
    k: float,
    pasted: str,
    corpus_ref: CorpusRef,
    request: gr.Request = None,
):
    """Retrieve passages (or use pasted ones, the k best by BM25) and read answers out of them."""
    question = _question(question)
    retriever = _chosen(retriever, COMPARE_CHOICES, "retrievers")[0]
    readers = _chosen(readers, READER_CHOICES, "readers")
    k = _whole_number(k, "number of passages to read", 1, 20)
    pasted = _text(pasted, "pasted text", MAX_PASTED_CHARS)
    ref = _ref(corpus_ref, request)
    engine = _engine(ref)
    passages = lfqa_demo.passages_from_text(pasted) if pasted else None
    if passages is None and retriever in engine.dense_names():
        # Ready is a fact of the engine, not a word in the state: a ready index's state may carry
        # a note ("ready (the prebuilt index was not used: ...)").
        for states in engine.wait_for_indexes([retriever], budget_s=BUDGET_S):
            if engine.built_index(retriever) is None:
                message = (
                    f"The {render.label(retriever)} index of this corpus: {render.public_message(states[retriever])}"
                )
                yield f"<div class='pending'>{render.esc(message)}</div>", ""
        if engine.built_index(retriever) is None:
            return  # the message above says why (still building in the background, or failed)
    for model in engine.load_models(readers=readers):
        yield _loading_note(model), ""
    report = engine.answer(question, retriever, readers, k, passages=passages, timeout=0)
    timings = " · ".join(f"{name.replace('_', ' ')} {ms:.0f} ms" for name, ms in report.timings_ms.items())
    note = (
        render.corpus_note("the pasted text", len(passages))
        if passages is not None
        else render.corpus_note(ref.name, ref.size)
    )
    yield note + render.render_answers(report), timings


def _loading_note(model: str) -> str:
    """What the page says while `model` ("reader dpr", "retriever realm") loads."""
    role, _, name = model.partition(" ")
    what = f"{render.label(name)} reader" if role == "reader" else f"{render.label(name)} encoders"
    return f"<div class='pending'>Loading the {render.esc(what)} (first use; this takes a few seconds)…</div>"


def _visitor(request: gr.Request | None) -> Visitor:
    """Who sends `request`: its session, and its client's address. Behind a proxy (the peer is a
    private or loopback address, as on a Space) the address is the last X-Forwarded-For entry: the
    one the nearest proxy saw, which a client cannot choose (it can only add entries before it).
    A client on this machine with no proxy in between (the operator's scripts, the tests, MCP's
    own client) has no address to limit: only its session is."""
    if request is None:
        return Visitor()
    host = getattr(getattr(request, "client", None), "host", None)
    forwarded = (request.headers.get("x-forwarded-for") or "") if getattr(request, "headers", None) else ""
    try:
        peer = ipaddress.ip_address(host) if host else None
    except ValueError:
        peer = None
    if peer is not None and peer.is_private and forwarded.strip():
        host = forwarded.split(",")[-1].strip()[:64] or host
    elif peer is not None and peer.is_loopback:
        host = None
    return Visitor(_session(request), host)


def _take_place(line: WorkLine, request: gr.Request | None, waiting: Callable[[str], object]):
    """Join `line` for the visitor of `request` (ServerBusyError at once if they already have a place
    or it is full), yielding `waiting(note)` while others go first; returns the place, running."""
    place = line.join(_visitor(request))
    try:
        while not place.wait(1.0):
            place.check()  # the page was closed while it waited
            yield waiting(render.waiting_note(line.what, place.ahead))
    except BaseException:
        place.leave()
        raise
    return place


def _corpus_info(ref: CorpusRef) -> str:
    corpus = _engine(ref).corpus
    titles = len({p.title for p in corpus})
    return (
        f"**In use:** {render.esc(ref.name)}: {len(corpus):,} passages, {titles:,} titles "
        f"(content id `{ref.key[:12]}`: the same file gives the same id, and the same indexes)"
    )


@user_errors
def use_bundled_corpus(request: gr.Request = None):
    """Switch this session back to the bundled corpus."""
    registry.release(_session(request))
    return registry.bundled_ref, _corpus_info(registry.bundled_ref)


@user_errors
def upload_corpus(file: dict | str | None, title_column: str, text_column: str, request: gr.Request = None):
    """Use an uploaded .jsonl/.json/.csv/.parquet/.txt/.md file as this session's corpus.

    Gradio already refuses paths a client names outside its upload folder; the check here
    keeps that true whatever Gradio version runs the app."""
    path = file.get("path") if isinstance(file, dict) else None
    if not path or not isinstance(path, str):
        raise InvalidInputError("Choose a file to upload first.")
    if (
        not Path(path).resolve().is_relative_to(Path(gr.utils.get_upload_folder()).resolve())
        or not Path(path).is_file()
    ):
        raise InvalidInputError("Only files uploaded through this page can be used as a corpus.")
    name = _display_name(file.get("orig_name")) or Path(path).name
    corpus = corpus_from_file(
        path,
        title_column=_text(title_column, "title column", 200) or None,
        text_column=_text(text_column, "text column", 200) or None,
        name=name,
    )
    ref = registry.register(corpus, _session(request), corpus.name)
    return ref, _corpus_info(ref)


@user_errors
def load_hub_dataset(dataset: str, config: str, split: str, max_passages: float, request: gr.Request = None):
    """Use a Hugging Face hub dataset (streamed, capped) as this session's corpus."""
    corpus = corpus_from_hub(
        _text(dataset, "dataset id", 200, required=True),
        _text(config, "config", 64) or None,
        _text(split, "split", 64) or "train",
        max_passages=_whole_number(max_passages, "maximum number of passages", 1, MAX_HUB_PASSAGES),
    )
    ref = registry.register(corpus, _session(request))
    return ref, _corpus_info(ref)


@user_errors
def build_indexes(retrievers: list[str], corpus_ref: CorpusRef, request: gr.Request = None):
    """Build (or read from the cache) the dense indexes of this session's corpus, showing their
    progress; past BUDGET_S they go on in the background (see the status panel). One such
    request at a time per visitor, in the index builds' own line (lfqa_demo/admission.py)."""
    names = _chosen(retrievers, DENSE_CHOICES, "indexes")
    engine = _engine(corpus_ref, request)

    def waiting(note: str) -> pd.DataFrame:
        return _index_table(engine, names, {name: note for name in names})

    with (yield from _take_place(INDEX_BUILDS, request, waiting)):
        for states in engine.wait_for_indexes(names, budget_s=BUDGET_S):
            yield _index_table(engine, names, states)


def _index_table(engine, names: list[str], states: dict[str, str]) -> pd.DataFrame:
    rows = []
    for name in names:
        index = engine.built_index(name)
        if index is None:
            rows.append([render.label(name), "-", "-", "-", "-", render.public_message(states.get(name, "waiting"))])
            continue
        status = "from cache" if index.from_cache else "built"
        if index.persist_error:
            status += f" (in memory only: {index.persist_error})"
        rows.append(
            [
                render.label(name),
                index.kind,
                f"{len(index):,} x {index.dim}",
                f"{index.nbytes / 1e6:.1f} MB",
                f"{index.build_seconds:.1f}",
                status,
            ]
        )
    return pd.DataFrame(rows, columns=["retriever", "index", "vectors", "size", "build s", "status"])


def model_status(corpus_ref: CorpusRef | None = None, request: gr.Request = None):
    """Each model's state (waiting for the warm-up, not loaded, loading, ready on device and dtype,
    failed and why) and each index of the session's corpus (waiting, loading the model, indexing
    n/N with the time left, ready, failed)."""
    states = lfqa_demo.model_states()
    waiting = WARMUP.pending() if WARMUP.started else set()
    rows = [
        [shown, render.public_message(states.get(key) or (WAITING if key in waiting else "not loaded"))]
        for key, shown in STATUS_MODELS
    ]
    try:
        ref = _ref(corpus_ref, request)
        engine = _engine(ref)
        indexes = engine.index_states()
        if engine is WARMUP.engine:  # the warm-up's plan, for the indexes it has not reached yet
            indexes |= {n: WAITING for n in WARMUP.retrievers if n not in indexes and f"index {n}" in waiting}
        for name, state in indexes.items():  # named as this session named its corpus
            rows.append([f"{render.label(name)} index of {ref.name}", render.public_message(state)])
    except LfqaError as exc:
        rows.append(["corpus", render.public_message(str(exc))])
    return pd.DataFrame(rows, columns=["model", "state"])


def release_session(request: gr.Request):
    """The visitor left: stop their heavy work, and drop their uploaded corpus (and stop its index
    builds) if nobody else uses it."""
    for line in WORK_LINES:
        line.cancel_session(_session(request))
    registry.release(_session(request))


# -- layout ---------------------------------------------------------------------------------------


def create_embedding_tab(corpus_ref) -> None:
    with gr.Tab("Question embedding", id="embed"):
        with gr.Row():
            questions_input = gr.Textbox(
                label="Questions (one per line)", lines=4, value="who led the normans?\nwhy is the sky blue?"
            )
            passages_input = gr.Textbox(label="Passages to compare with (optional; blank lines separate them)", lines=4)
        with gr.Row():
            models_input = gr.CheckboxGroup(DENSE_CHOICES, value=["retribert", "dpr", "realm"], label="Models")
            map_model_input = gr.Dropdown(DENSE_CHOICES, value="dpr", label="Model for the vector and the 2-D map")
            embed_button = gr.Button("Embed", variant="primary", elem_id="embed-button")
        gr.Examples([[q.question] for q in _example_items()], inputs=[questions_input], label="Example questions")
        pieces_output = gr.HTML(label="Word pieces")
        with gr.Row():
            # No fixed height: with one, Gradio 6.31 cuts the legend off when the data comes later.
            vector_plot = gr.LinePlot(
                x="dimension",
                y="value",
                color="model",
                label="The first question's vector (the map's model)",
            )
            map_plot = gr.ScatterPlot(
                x="x",
                y="y",
                color="kind",
                tooltip=["label"],
                label="PCA map: your texts among corpus passages",
                elem_id="embed-map",
            )
        heatmap_output = gr.HTML(label="Similarity")
        download_output = gr.File(label="Embeddings (JSON)")
        embed_button.click(
            embed_questions,
            [questions_input, passages_input, models_input, map_model_input, corpus_ref],
            [pieces_output, vector_plot, heatmap_output, map_plot, download_output],
            api_name="embed",
            preprocess=False,
            concurrency_id="embed",
            concurrency_limit=None,  # the EMBEDS line lets it in
        )


def _example_items(style: str | None = None, n: int = 6) -> list:
    """`n` bundled QA items (of one style, if given), spread over the set."""
    picked = [q for q in EXAMPLES if style is None or q.style == style]
    step = max(1, len(picked) // n)
    return picked[::step][:n]


COMPARE_EXAMPLES = _example_items("factoid") + _example_items("eli5", 3)


def fill_example(index: object):
    """The example question clicked (by its position) and its gold answer."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(COMPARE_EXAMPLES):
        return gr.skip(), gr.skip()
    item = COMPARE_EXAMPLES[index]
    return item.question, item.answers[0]


AGREEMENT_COLUMNS = ["retriever", "other", "overlap@k", "rank-biased overlap"]
TIMING_COLUMNS = ["retriever", "encode ms", "search ms", "passages", "status"]
# Results older than the question in the box are marked stale (the results carry their question).
MARK_STALE_JS = """(question) => {
  const shown = document.querySelector('#compare-results .results');
  if (shown) shown.classList.toggle('stale', (question || '').trim() !== shown.dataset.question);
  return [];
}"""
# The comparison's inputs go into the page's address, so that the link shows the same comparison.
REMEMBER_COMPARISON_JS = """(question, k, retrievers, gold) => {
  const url = new URL(window.location.href);
  const put = (name, value) => value ? url.searchParams.set(name, value) : url.searchParams.delete(name);
  put('q', (question || '').trim());
  put('k', String(k));
  put('r', (retrievers || []).join(','));
  put('gold', (gold || '').trim());
  url.searchParams.set('tab', 'compare');
  window.history.replaceState(null, '', url);
  return [];
}"""


@dataclass
class CompareTab:
    """The comparison tab's components that the page-level events need."""

    question: gr.Textbox
    k: gr.Slider
    retrievers: gr.CheckboxGroup
    gold: gr.Textbox
    outputs: list
    watch: list  # [the request to repeat, the refresh timer]: what watch_comparison sets


def _corpus_line(ref: object) -> str:
    ref = _ref(ref)
    return f"Corpus: **{render.esc(ref.name)}** · {ref.size:,} passages (choose another in the *Corpus* tab)"


def create_retrieval_tab(corpus_ref) -> CompareTab:
    with gr.Tab("Retrieval comparison", id="compare"):
        corpus_line = gr.Markdown(_corpus_line(registry.bundled_ref), elem_classes="corpus-note")
        with gr.Row():
            question_input = gr.Textbox(label="Question", scale=4, elem_id="compare-question")
            k_input = gr.Slider(1, 50, value=5, step=1, label="k (passages per retriever)", elem_id="compare-k")
        with gr.Row():
            retrievers_input = gr.CheckboxGroup(
                COMPARE_CHOICES,
                value=["retribert", "dpr", "realm", "bm25"],
                label="Retrievers",
                elem_id="compare-retrievers",
            )
            gold_input = gr.Textbox(
                label="Gold answer (optional: marks the passages that contain it)", elem_id="compare-gold"
            )
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
        # Questions of the bundled QA set: a click fills the question and its gold answer.
        examples = gr.Dataset(
            components=[question_input],
            samples=[[q.question] for q in COMPARE_EXAMPLES],
            label="Example questions (a click also fills in the gold answer)",
            type="index",
            elem_id="compare-examples",
        )
        results_output = gr.HTML(elem_id="compare-results")
        with gr.Accordion("Tables: agreement and time per retriever", open=False):
            agreement_output = gr.Dataframe(
                pd.DataFrame(columns=AGREEMENT_COLUMNS),
                label="Agreement between retrievers (1 = same ranking)",
                interactive=False,
            )
            timings_output = gr.Dataframe(
                pd.DataFrame(columns=TIMING_COLUMNS), label="Time per retriever", interactive=False
            )
        inputs = [question_input, k_input, retrievers_input, gold_input]
        outputs = [results_output, agreement_output, timings_output]
        # Columns still indexing when a comparison ends fill in by themselves: the page repeats the
        # comparison (without waiting) every REFRESH_EVERY_S until none is pending.
        shown_request = gr.State(None)
        refresh_timer = gr.Timer(REFRESH_EVERY_S, active=False)
        gr.on(
            [compare_button.click, question_input.submit],  # the button, or Enter in the question box
            compare_retrievers,
            [*inputs, corpus_ref],
            outputs,
            api_name="compare",
            preprocess=False,
        ).success(
            watch_comparison,
            [*inputs, corpus_ref],
            [shown_request, refresh_timer],
            api_visibility="private",
            preprocess=False,
            show_progress="hidden",
        )
        refresh_timer.tick(
            refresh_comparison,
            [shown_request, *inputs, corpus_ref],
            [*outputs, shown_request, refresh_timer],
            api_visibility="private",
            show_progress="hidden",
            concurrency_id="status",
            concurrency_limit=4,
        )
        gr.on([compare_button.click, question_input.submit], None, inputs, None, js=REMEMBER_COMPARISON_JS)
        question_input.change(None, question_input, None, js=MARK_STALE_JS)
        examples.click(
            fill_example, examples, [question_input, gold_input], api_visibility="private", show_progress="hidden"
        )
        corpus_ref.change(_corpus_line, corpus_ref, corpus_line, api_visibility="private", show_progress="hidden")
    return CompareTab(question_input, k_input, retrievers_input, gold_input, outputs, [shown_request, refresh_timer])


def create_answer_tab(corpus_ref) -> None:
    with gr.Tab("Answer extraction", id="answer"):
        with gr.Row():
            question_input = gr.Textbox(label="Question", scale=4, elem_id="answer-question")
            k_input = gr.Slider(1, 20, value=5, step=1, label="Passages to read")
        with gr.Row():
            retriever_input = gr.Dropdown(COMPARE_CHOICES, value="bm25", label="Retriever")
            readers_input = gr.CheckboxGroup(READER_CHOICES, value=["dpr", "realm"], label="Readers")
            answer_button = gr.Button("Answer", variant="primary", elem_id="answer-button")
        pasted_input = gr.Textbox(
            label="Or paste passages to read instead (blank lines separate them)", lines=3, elem_id="answer-pasted"
        )
        gr.Examples(
            [[q.question] for q in _example_items("factoid")], inputs=[question_input], label="Example questions"
        )
        timings_output = gr.Markdown()
        answers_output = gr.HTML(elem_id="answer-results")
        answer_button.click(
            extract_answers,
            [question_input, retriever_input, readers_input, k_input, pasted_input, corpus_ref],
            [answers_output, timings_output],
            api_name="answer",
            preprocess=False,
        )


def create_corpus_tab(corpus_ref) -> gr.Markdown:
    with gr.Tab("Corpus", id="corpus"):
        info_output = gr.Markdown(_corpus_info(registry.bundled_ref))
        with gr.Row():
            with gr.Column():
                gr.Markdown("**Bundled corpus**: 552 original passages on 60 subjects (CC BY-SA 4.0).")
                bundled_button = gr.Button("Use the bundled corpus")
            with gr.Column():
                file_input = gr.File(
                    label=f"Upload .jsonl, .json, .csv, .parquet, .txt or .md (up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                    file_types=[".jsonl", ".json", ".csv", ".parquet", ".txt", ".md"],
                    type="filepath",
                )
                title_col = gr.Textbox(label="Title column (optional)")
                text_col = gr.Textbox(label="Text column (optional)")
                upload_button = gr.Button("Use the uploaded file")
            with gr.Column():
                dataset_input = gr.Textbox(label="Hub dataset id", placeholder="org/name")
                config_input = gr.Textbox(label="Config (optional)")
                split_input = gr.Textbox(label="Split", value="train")
                cap_input = gr.Number(label=f"Max passages (up to {MAX_HUB_PASSAGES:,})", value=2000, precision=0)
                hub_button = gr.Button("Load the dataset")
        with gr.Row():
            index_models = gr.CheckboxGroup(
                DENSE_CHOICES, value=["retribert", "dpr", "realm"], label="Indexes to build"
            )
            index_button = gr.Button("Build indexes", variant="primary")
        index_output = gr.Dataframe(label="Indexes", interactive=False)
        # The corpus endpoints answer with the session's State, which an MCP tool call cannot carry
        # to the next call: gradio_client can call them, MCP clients do not see them.
        bundled_button.click(
            use_bundled_corpus,
            None,
            [corpus_ref, info_output],
            api_name="use_bundled_corpus",
            api_visibility="undocumented",
        )
        # preprocess=False here too: Gradio's own preprocessing would download a URL a client names.
        upload_button.click(
            upload_corpus,
            [file_input, title_col, text_col],
            [corpus_ref, info_output],
            api_name="upload_corpus",
            preprocess=False,
            api_visibility="undocumented",
        )
        hub_button.click(
            load_hub_dataset,
            [dataset_input, config_input, split_input, cap_input],
            [corpus_ref, info_output],
            api_name="load_hub_dataset",
            preprocess=False,
            api_visibility="undocumented",
        )
        index_button.click(
            build_indexes,
            [index_models, corpus_ref],
            index_output,
            api_name="build_indexes",
            preprocess=False,
            concurrency_id="build_indexes",
            concurrency_limit=None,  # the INDEX_BUILDS line lets it in
        )
    return info_output


# -- the evaluation tab ---------------------------------------------------------------------------
BUNDLED_QA = QASet("bundled QA set", tuple(EXAMPLES))


def _qa_set(file: object, ref: CorpusRef) -> QASet:
    """The QA set to evaluate on: the uploaded QA file, else the bundled one (only over the
    bundled corpus: its gold answers and passages are there)."""
    if file is None or file == "":
        if ref.key != registry.bundled_ref.key:
            raise InvalidInputError(
                f"The corpus in use, {ref.name!r}, has no QA set: upload a QA file (.jsonl, .json or .csv with a "
                "question column and an answer column) to evaluate on it, or use the bundled corpus (Corpus tab)."
            )
        return BUNDLED_QA
    # As in upload_corpus: only a file uploaded through the page, whatever Gradio version runs the app.
    path = file.get("path") if isinstance(file, dict) else None
    if (
        not path
        or not isinstance(path, str)
        or not Path(path).resolve().is_relative_to(Path(gr.utils.get_upload_folder()).resolve())
        or not Path(path).is_file()
    ):
        raise InvalidInputError("Only files uploaded through this page can be used as a QA set.")
    return qa_from_file(path, name=_display_name(file.get("orig_name")) or Path(path).name)


@user_errors
def evaluate_retrievers(
    retrievers: list[str],
    qa_file: dict | None = None,
    corpus_ref: CorpusRef | None = None,
    request: gr.Request = None,
):
    """Recall@k (k = 1 to 20) and MRR@20 of each chosen retriever on a QA set over this session's
    corpus (the bundled QA set, or an uploaded .jsonl/.json/.csv file with a question and an answer
    column), and per question the rank at which each retriever first found a gold answer.

    Evaluations have a line of their own (lfqa_demo/admission.py): one at a time per visitor (session
    and address), a few in line, the rest refused at once; each stops after EVALUATION_BUDGET_S
    or when its page is closed."""
    names = _chosen(retrievers, COMPARE_CHOICES, "retrievers")
    ref = _ref(corpus_ref, request)
    engine = _engine(ref)
    qa = _qa_set(qa_file, ref)
    states = {name: "waiting" for name in names}

    def progress():
        shown = evaluation_view.render_progress(states, ref.name, ref.size, qa)
        return gr.skip(), shown, gr.skip()

    def waiting(note: str):
        states.update({name: note for name in names})
        return progress()

    with (yield from _take_place(EVALUATIONS, request, waiting)) as place:
        states.update({name: "waiting" for name in names})
        loading = None
        for model in engine.load_models(retrievers=names):
            if loading:
                states[loading] = "model loaded"
            loading = model.partition(" ")[2]
            states[loading] = "loading the model (first use)"
            yield progress()
        if loading:
            states[loading] = "model loaded"
        if engine.dense_names(names):  # the dense indexes, within the request's budget (then in the background)
            for index_states in engine.wait_for_indexes(names, budget_s=BUDGET_S):
                states |= {name: f"index: {state}" for name, state in index_states.items()}
                yield progress()
        results = {}
        for name in names:
            place.check()
            states[name] = f"evaluating {len(qa.items):,} questions"
            yield progress()
            results[name] = evaluate_retriever(engine, qa.items, name, MAX_EVAL_K, timeout=0, check=place.check)
            states[name] = "done" if results[name].error is None else "unavailable (see below)"
    report = EvaluationReport(engine.corpus.name, qa.items, MAX_EVAL_K, results)
    yield (
        evaluation_view.curve_frame(report),
        evaluation_view.render_summary(report, qa, ref.name, ref.size),
        evaluation_view.question_table(report),
    )


RETRIEVER_NAMES = {shown: name for shown, name in COMPARE_CHOICES}  # the table's headers back to names
ANSWER_SEPARATOR = evaluation_view.ANSWER_SEPARATOR
MAX_GOLD_CELL_CHARS = MAX_QA_ANSWERS * (MAX_QA_ANSWER_CHARS + len(ANSWER_SEPARATOR))  # a table row's answers


@user_errors
def show_evaluated_question(table: dict | None, corpus_ref: CorpusRef, evt: gr.SelectData, request: gr.Request = None):
    """The question of the clicked table row: each evaluated retriever's passages side by side,
    those holding a gold answer marked. The row holds all that is needed (question, answers,
    ranks; the table shows cells cut short but holds them whole), so nothing is kept per session."""
    headers = table.get("headers") if isinstance(table, dict) else None
    row = evt.row_value
    if not isinstance(headers, list) or not isinstance(row, list) or len(row) != len(headers) or len(row) < 3:
        raise InvalidInputError("That row cannot be shown: click a row of the table the evaluation made.")
    # The table and the row come from the client: headers must be retriever names, each once.
    names = [RETRIEVER_NAMES.get(h) if isinstance(h, str) else None for h in headers[2:]]
    if None in names or len(set(names)) != len(names):
        raise InvalidInputError("That row cannot be shown: click a row of the table the evaluation made.")
    question = _question(row[0])
    # Bounded as a QA file's answers are: every passage shown is checked against every answer.
    gold = clean_text(str(row[1])) if isinstance(row[1], (str, int, float)) else ""
    answers = tuple(dict.fromkeys(a.strip() for a in gold[:MAX_GOLD_CELL_CHARS].split(ANSWER_SEPARATOR) if a.strip()))
    if len(gold) > MAX_GOLD_CELL_CHARS or len(answers) > MAX_QA_ANSWERS:
        raise InvalidInputError(
            f"A question has at most {MAX_QA_ANSWERS} gold answers of {MAX_QA_ANSWER_CHARS} characters."
        )
    # Deep enough to show every retriever's first passage with an answer, and at least 5 passages.
    ranks = [str(cell) for cell in row[2:]]
    k = min(MAX_EVAL_K, max([5, *(int(r) for r in ranks if r.isascii() and r.isdigit() and len(r) <= 3)]))
    ref = _ref(corpus_ref, request)
    comparison = evaluation_view.mark_gold(_engine(ref).compare(question, names, k, timeout=0), answers)
    return evaluation_view.render_question(question, answers, comparison, ref.name, ref.size)


def create_evaluation_tab(corpus_ref) -> None:
    with gr.Tab("Evaluation", id="evaluate"):
        gr.Markdown(
            "How often each retriever puts a passage with the gold answer in its top k, for k = 1 to 20, on the "
            "bundled QA set (168 questions) or a QA file of your own (.jsonl, .json or .csv with a `question` and "
            "an `answer` column; several answers as a list, or separated by `|` in a CSV). Computed on demand and "
            "kept for the next visitor. Click a row of the table to see that question's passages side by side."
        )
        with gr.Row():
            retrievers_input = gr.CheckboxGroup(
                COMPARE_CHOICES, value=["retribert", "dpr", "realm", "bm25"], label="Retrievers"
            )
            qa_input = gr.File(
                label="QA file (optional; the bundled QA set when empty)",
                file_types=[".jsonl", ".json", ".csv"],
                type="filepath",
            )
            evaluate_button = gr.Button("Evaluate", variant="primary", elem_id="eval-button")
        recall_plot = gr.LinePlot(
            x="k",
            y="recall",
            color="retriever",
            x_title="k (passages retrieved)",
            y_title="recall@k",
            x_lim=[1, MAX_EVAL_K],
            y_lim=[0, 1],
            x_axis_format="d",
            # No fixed height: with one, Gradio 6.31 cuts the legend off when the data arrives after load.
            label="Recall@k: the share of questions with a gold answer in the top k passages",
            elem_id="eval-plot",
        )
        summary_output = gr.HTML(
            label="Summary",
            elem_id="eval-summary",
            css_template=(ASSETS / "evaluation.css").read_text(encoding="utf-8"),
        )
        questions_output = gr.Dataframe(
            pd.DataFrame(columns=["question", "gold answer"]),
            label="Per question: rank of the first passage with a gold answer (-: not in the top 20)",
            interactive=False,
            wrap=True,
            max_height=480,
            show_search="search",
            max_chars=evaluation_view.SHOWN_CELL_CHARS,
            # In pixels: on a phone the table scrolls sideways inside itself instead of squeezing the
            # rank columns (one per retriever) into letters stacked one per line.
            column_widths=["240px", "150px"] + ["96px"] * len(COMPARE_CHOICES),
            elem_id="eval-table",
        )
        question_output = gr.HTML(elem_id="eval-question")
        # Never waits in Gradio's queue: the EVALUATIONS line lets it in (one at a time per visitor).
        evaluate_button.click(
            evaluate_retrievers,
            [retrievers_input, qa_input, corpus_ref],
            [recall_plot, summary_output, questions_output],
            api_name="evaluate",
            preprocess=False,
            concurrency_id="evaluate",
            concurrency_limit=None,
        )
        questions_output.select(
            show_evaluated_question,
            [questions_output, corpus_ref],
            question_output,
            api_visibility="private",
            preprocess=False,
        )


TAB_IDS = {
    "Retrieval comparison": "compare",
    "Answer extraction": "answer",
    "Question embedding": "embed",
    "Corpus": "corpus",
    "Evaluation": "evaluate",
    "About": "about",
}
REMEMBER_TAB_JS = """() => {
  const names = %s;
  setTimeout(() => {
    const tab = document.querySelector('#tabs [role=tab][aria-selected=true]');
    const id = tab && names[tab.innerText.trim()];
    if (!id) return;
    const url = new URL(window.location.href);
    url.searchParams.set('tab', id);
    window.history.replaceState(null, '', url);
  }, 0);
  return [];
}""" % json.dumps(TAB_IDS)


def restore_from_url(request: gr.Request):
    """The comparison a link names (?q=&k=&r=&gold=&tab=), each value checked as typed input is;
    a value that does not pass is left at its default."""
    params = request.query_params if request is not None else {}

    def checked(check, *args, default=None):
        try:
            return check(*args)
        except (InvalidInputError, TypeError, ValueError):
            return default

    question = checked(_question, params.get("q"), default="")
    k = checked(_whole_number, params.get("k", "5"), "k", 1, 50, default=5)
    retrievers = checked(
        _chosen, [r for r in params.get("r", "").split(",") if r], COMPARE_CHOICES, "retrievers", default=None
    )
    gold = checked(_text, params.get("gold"), "gold answer", MAX_QUESTION_CHARS, default="")
    tab = params.get("tab") if params.get("tab") in TAB_IDS.values() else ("compare" if question else None)
    return (
        question if question else gr.skip(),
        k,
        retrievers or gr.skip(),
        gold if question else gr.skip(),
        gr.Tabs(selected=tab) if tab else gr.skip(),
    )


def compare_if_asked(question, k, retrievers, gold, corpus_ref, request: gr.Request = None):
    """`compare_retrievers` when the page opened with a question in its link; else nothing."""
    if isinstance(question, str) and question.strip():
        yield from compare_retrievers(question, k, retrievers, gold, corpus_ref, request)


def build_demo() -> gr.Blocks:
    """The whole app; building it loads no model."""
    with gr.Blocks(title="lfqa-demo: retrievers and readers side by side", delete_cache=(600, 3600)) as demo:
        corpus_ref = gr.State(registry.bundled_ref)
        gr.Markdown((ASSETS / "header.md").read_text(encoding="utf-8"))
        with gr.Accordion("Model status", open=False):
            status_output = gr.Dataframe(model_status(), interactive=False, elem_id="model-status")
            refresh_button = gr.Button("Refresh", size="sm")
        with gr.Tabs(elem_id="tabs") as tabs:
            compare_tab = create_retrieval_tab(corpus_ref)
            create_answer_tab(corpus_ref)
            create_embedding_tab(corpus_ref)
            create_corpus_tab(corpus_ref)
            create_evaluation_tab(corpus_ref)
            with gr.Tab("About", id="about"):
                gr.Markdown((ASSETS / "about.md").read_text(encoding="utf-8"))
        tabs.select(None, None, None, js=REMEMBER_TAB_JS)
        # A link with ?q=...&k=...&r=...&gold=...&tab=... opens that comparison (or tab).
        c = compare_tab
        demo.load(restore_from_url, None, [c.question, c.k, c.retrievers, c.gold, tabs], api_visibility="private").then(
            compare_if_asked,
            [c.question, c.k, c.retrievers, c.gold, corpus_ref],
            c.outputs,
            api_visibility="private",
            preprocess=False,
        ).success(
            watch_comparison,
            [c.question, c.k, c.retrievers, c.gold, corpus_ref],
            c.watch,
            api_visibility="private",
            preprocess=False,
            show_progress="hidden",
        )
        # The status has a queue slot of its own: it must answer while comparisons wait for indexes.
        refresh_button.click(
            model_status,
            corpus_ref,
            status_output,
            api_name="model_status",
            concurrency_id="status",
            concurrency_limit=4,
        )
        gr.Timer(3).tick(
            model_status,
            corpus_ref,
            status_output,
            api_visibility="private",
            show_progress="hidden",
            concurrency_id="status",
            concurrency_limit=4,
        )
        demo.unload(release_session)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


demo = build_demo()

if __name__ == "__main__":
    clip_console()  # before logging takes its streams: no visitor's input becomes a giant log line
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo.launch(
        css_paths=[ASSETS / "app.css"],
        theme=THEME,
        max_file_size=MAX_UPLOAD_BYTES,
        app_kwargs={"middleware": [Middleware(BoundedBodies)]},
        mcp_server=os.environ.get("GRADIO_MCP_SERVER", "").lower() in ("1", "true"),
        max_threads=MAX_THREADS,
        prevent_thread_lock=True,  # the page is up when launch returns: only then does the warm-up start
    )
    if warmup_enabled():
        WARMUP.start()
    demo.block_thread()
