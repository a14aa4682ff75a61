"""The app's verbs as one typed service: compare, answer, embed, evaluate, build indexes, change
corpus, status.

The page (`ui/`) and scripts call these; each checks its raw input once, here, into a request
value (`CompareRequest`...), and passes typed values down. Long verbs are generators that yield
typed progress (`Loading`, `Waiting`, `IndexWait`, `EvaluationProgress`) and end with their
result; nothing here makes a sentence for the page or HTML: `ui/` words every value.
Heavy work (embeddings, index builds, evaluations) goes through the service's work lines
(lfqa_demo/admission.py): a visitor's place is taken here and left when the generator ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import answering, comparison
from .admission import Visitor, WorkLine
from .calibration import ReaderRules, RetrievalCalibration, calibrate_retrieval
from .embedding import EmbeddingReport, embed_texts
from .engine import RetrievalEngine
from .errors import InvalidInputError, LfqaError, failure_message
from .evaluation import MAX_EVAL_K, EvaluationReport, evaluate_retriever
from .inputs import chosen, display_name, form_text, whole_number
from .models.registry import model_states
from .models.retrievers import BUNDLE_RETRIEVERS
from .results import AnswerReport, Comparison, RetrieverResult, agreement
from .retrieval.corpus import (
    QAItem,
    QASet,
    corpus_from_file,
    corpus_from_hub,
    load_bundled_questions,
    passages_from_text,
    qa_from_file,
)
from .retrieval.corpus_bundles import describe
from .retrieval.indexes import DenseIndex, default_cache_dir
from .sessions import CorpusRef, EngineRegistry
from .status import NOT_LOADED, WAITING, ModelKey, Phase, Status

RETRIEVERS = ("retribert", "dpr", "realm", "realm-orqa", "bm25", "minilm")  # what a visitor may compare, in order
READERS = ("dpr", "realm")
MAX_QUESTION_CHARS = 2000
MAX_PASTED_CHARS = 50_000
MAX_EMBED_TEXTS = 10  # questions, and passages, per embedding: bounds the work of one request
MAX_HUB_PASSAGES = 20_000
MAX_COMPARE_K = 50
MAX_READ_K = 20
MAX_TOPIC_PASSAGES = 20_000  # a corpus this large or smaller lists its titles as what it covers
SHOWN_TOPICS, MAX_TOPIC_CHARS = 4, 60
# Each session's last evaluation is kept for its row clicks, least recently made dropped first: at
# most KEPT_EVALUATIONS of them, and at most KEPT_EVALUATION_BYTES of QA text in all (UTF-8, ids
# included: an uploaded QA file can hold ~18 MB; the bundled QA set's are shared and not counted).
KEPT_EVALUATIONS = 64
KEPT_EVALUATION_BYTES = 20_000_000
# How long one request waits for dense indexes before builds go on in the background: long
# enough for a small upload on a 2-core CPU, short enough that nobody stares at a spinner.
REQUEST_BUDGET_S = float(os.environ.get("LFQA_REQUEST_BUDGET_S", "60"))
_log = logging.getLogger(__name__)


def default_reader_rules() -> ReaderRules:
    """The reader rules file: $LFQA_READER_RULES, else reader-rules.json in the index cache
    (`python -m lfqa_demo calibrate-readers` writes it there)."""
    return ReaderRules(Path(os.environ.get("LFQA_READER_RULES") or default_cache_dir() / "reader-rules.json"))


class Calibrations:
    """The retrieval calibrations of the corpus that has a QA set (the bundled one), each computed
    once: BM25's at once (a fraction of a second), a dense retriever's in the background once its
    index is ready (its questions are encoded, a few seconds); until then there is none."""

    RETRY_AFTER_S = 300.0  # a calibration that failed is tried again after this long

    def __init__(self, qa: Sequence[QAItem]):
        self.qa = tuple(qa)
        self._done: dict[tuple[str, str], RetrievalCalibration | None] = {}
        self._started: dict[tuple[str, str], float] = {}  # key -> when it was started
        self._lock = threading.Lock()

    def get(self, engine: RetrievalEngine, corpus_key: str, name: str) -> RetrievalCalibration | None:
        key = (corpus_key, name)
        with self._lock:
            done = self._done.get(key)
            if done is not None:
                return done
            started = self._started.get(key)
            if started is not None and (key not in self._done or time.monotonic() - started < self.RETRY_AFTER_S):
                return None  # running, or failed a short while ago
            dense = name in engine.dense_names()
            if dense and engine.built_index(name) is None:
                return None  # asked again once the index is ready
            self._started[key] = time.monotonic()
        if not dense:
            return self._compute(engine, key)
        threading.Thread(target=self._compute, args=(engine, key), name=f"calibrate-{name}", daemon=True).start()
        return None

    def _compute(self, engine: RetrievalEngine, key: tuple[str, str]) -> RetrievalCalibration | None:
        try:
            calibration = calibrate_retrieval(engine, key[1], self.qa, timeout=0)
        except Exception as exc:  # no calibration for now: the page shows scores without it
            _log.warning("retrieval calibration of %s failed: %s", key[1], failure_message(exc))
            calibration = None
        with self._lock:
            self._done[key] = calibration
        return calibration


# -- requests: raw input, checked once ---------------------------------------------------------------
@dataclass(frozen=True)
class CompareRequest:
    question: str
    k: int
    retrievers: tuple[str, ...]
    gold: str | None = None

    @classmethod
    def check(cls, question: object, k: object, retrievers: object, gold: object = None) -> "CompareRequest":
        return cls(
            form_text(question, "question", MAX_QUESTION_CHARS, required=True),
            whole_number(k, "k", 1, MAX_COMPARE_K),
            chosen(retrievers, RETRIEVERS, "retrievers"),
            form_text(gold, "gold answer", MAX_QUESTION_CHARS) or None,
        )


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    retriever: str
    readers: tuple[str, ...]
    k: int
    passages: tuple[dict, ...] | None = None  # pasted passages to read instead of retrieved ones

    @classmethod
    def check(cls, question: object, retriever: object, readers: object, k: object, pasted: object = None):
        pasted_text = form_text(pasted, "pasted text", MAX_PASTED_CHARS)
        return cls(
            form_text(question, "question", MAX_QUESTION_CHARS, required=True),
            chosen(retriever, RETRIEVERS, "retrievers")[0],
            chosen(readers, READERS, "readers"),
            whole_number(k, "number of passages to read", 1, MAX_READ_K),
            tuple({"id": f"pasted-{i + 1}", **p} for i, p in enumerate(passages_from_text(pasted_text)))
            if pasted_text
            else None,
        )


@dataclass(frozen=True)
class EmbedRequest:
    questions: tuple[str, ...]
    passages: tuple[dict, ...]
    models: tuple[str, ...]
    map_model: str | None

    @classmethod
    def check(cls, questions: object, passages: object, models: object, map_model: object, dense: Sequence[str]):
        """`dense`: the dense retrievers a visitor may embed with."""
        text = form_text(questions, "questions", MAX_EMBED_TEXTS * (MAX_QUESTION_CHARS + 1))
        lines = tuple(q.strip() for q in text.splitlines() if q.strip())
        if not lines:
            raise InvalidInputError("Type at least one question (one per line).")
        if len(lines) > MAX_EMBED_TEXTS:
            raise InvalidInputError(f"Embed at most {MAX_EMBED_TEXTS} questions at a time; there are {len(lines)}.")
        if any(len(q) > MAX_QUESTION_CHARS for q in lines):
            raise InvalidInputError(f"A question is longer than {MAX_QUESTION_CHARS:,} characters.")
        pasted = passages_from_text(form_text(passages, "passages", MAX_PASTED_CHARS))
        if len(pasted) > MAX_EMBED_TEXTS:
            raise InvalidInputError(
                f"Embed at most {MAX_EMBED_TEXTS} passages at a time; the text makes {len(pasted)}."
            )
        picked = chosen(models, dense, "models")
        shown = (chosen(map_model, dense, "map model", at_least_one=False) or (None,))[0]
        return cls(lines, tuple(pasted), picked, shown)


# -- progress: what a long verb yields before its result ----------------------------------------------
@dataclass(frozen=True)
class Loading:
    """A model is loading (its first use in this process)."""

    model: ModelKey


@dataclass(frozen=True)
class Waiting:
    """This visitor's heavy work waits in line: `ahead` places go first."""

    work: str  # the line's name: "evaluation", "index build", "embedding"
    ahead: int


@dataclass(frozen=True)
class IndexWait:
    """Dense indexes this request needs, not all ready: where each stands."""

    states: dict[str, Status]


@dataclass(frozen=True)
class IndexView:
    """One dense index of a corpus: where it stands, and what it is once ready."""

    retriever: str
    status: Status
    kind: str | None = None  # "flat", "hnsw"...
    vectors: int = 0
    dim: int = 0
    nbytes: int = 0
    build_seconds: float = 0.0

    @classmethod
    def of(cls, name: str, status: Status, index: DenseIndex | None) -> "IndexView":
        if index is None:
            return cls(name, status)
        return cls(name, status, index.kind, len(index), index.dim, index.nbytes, index.build_seconds)


@dataclass(frozen=True)
class Answered:
    """An answer request's result: the report, the corpus read, and the retriever's index status
    when it is worth a word (rebuilt after a refused bundle, kept in memory only)."""

    report: AnswerReport
    corpus: str
    corpus_size: int
    index: Status | None = None


class Step(str, Enum):
    """Where one retriever of an evaluation stands."""

    WAITING = "waiting"
    LOADING = "loading"
    LOADED = "loaded"
    INDEXING = "indexing"  # its index is not ready: `index` says where it stands
    EVALUATING = "evaluating"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class EvaluationProgress:
    steps: dict[str, Step]
    indexes: dict[str, Status] = field(default_factory=dict)
    waiting: Waiting | None = None  # the evaluation itself waits in line


@dataclass(frozen=True)
class ServiceStatus:
    """Every model's and index's state, for the status panel and the JSON endpoint."""

    models: dict[ModelKey, Status]
    indexes: dict[str, Status]
    corpus: str
    error: str | None = None  # why the session's corpus cannot be shown (dropped)
    corpora: dict[str, Status] = field(default_factory=dict)  # LFQA_CORPORA bundles not offered (yet)
    about: dict | None = None  # the session's corpus bundle: size, index kinds, recall kept, memory

    def as_json(self) -> dict:
        return {
            "corpus": self.corpus,
            "corpora": {spec: status.as_json() for spec, status in self.corpora.items()},
            "about": self.about,
            "models": {str(key): status.as_json() for key, status in self.models.items()},
            "indexes": {name: status.as_json() for name, status in self.indexes.items()},
            "error": self.error,
        }


@dataclass(frozen=True)
class Lines:
    """The service's work lines, one per kind of heavy work."""

    evaluations: WorkLine
    index_builds: WorkLine
    embeddings: WorkLine

    def all(self) -> tuple[WorkLine, ...]:
        return (self.evaluations, self.index_builds, self.embeddings)


def default_lines(evaluation_budget_s: float | None = None) -> Lines:
    """One evaluation at a time (3 waiting, 1 per address, stopped after LFQA_EVALUATION_BUDGET_S);
    4 index-build requests (8 waiting, 3 per address); 2 embeddings (10 waiting, 3 per address)."""
    budget = evaluation_budget_s or float(os.environ.get("LFQA_EVALUATION_BUDGET_S", "600"))
    return Lines(
        WorkLine("evaluation", running=1, waiting=3, per_address=1, budget_s=budget),
        WorkLine("index build", running=4, waiting=8, per_address=3),
        WorkLine("embedding", running=2, waiting=10, per_address=3),
    )


class Service:
    """The verbs over one registry of engines (one engine per corpus)."""

    def __init__(
        self,
        registry: EngineRegistry,
        *,
        lines: Lines | None = None,
        budget_s: float = REQUEST_BUDGET_S,
        upload_dir: Callable[[], Path] | None = None,
        warmup=None,
        reader_rules: ReaderRules | None = None,
    ):
        """`upload_dir` says where files uploaded through the page are: only those may become a
        corpus or a QA set. `warmup` (lfqa_demo.warmup.WarmUp), if any, adds its plan to status."""
        self.registry = registry
        self.lines = lines or default_lines()
        self.budget_s = budget_s
        self._upload_dir = upload_dir
        self.warmup = warmup
        self.bundled_qa = QASet("bundled QA set", tuple(load_bundled_questions()))
        self.calibrations = Calibrations(self.bundled_qa.items)
        self.reader_rules = reader_rules or default_reader_rules()
        self.dense = tuple(n for n in RETRIEVERS if n in registry.bundled.dense_names())
        # The pickers' retrievers: all of RETRIEVERS but those only a corpus bundle serves (REALM
        # open-QA), unless a corpus offered at start holds one.
        held = {name for engine in registry.standing.values() for name in engine.names}
        self.offered = tuple(n for n in RETRIEVERS if n not in BUNDLE_RETRIEVERS or n in held)
        # Each session's last evaluation, for its row clicks (a row sends its question's number only).
        self._evaluations: OrderedDict[str, tuple[CorpusRef, EvaluationReport, int]] = OrderedDict()
        self._evaluations_lock = threading.Lock()
        self._topics: dict[str, tuple[int, tuple[str, ...]]] = {}  # corpus key -> its topics (see topics)
        self._topics_lock = threading.Lock()

    # -- corpora ---------------------------------------------------------------------------------
    def ref(self, held: object, session: str | None) -> CorpusRef:
        """The session's corpus; CorpusUnavailableError if its upload was lost when the server
        restarted (its state then fell back to the bundled corpus, which it did not choose)."""
        if isinstance(held, CorpusRef) and held.key not in self.registry.standing:
            return held
        self.registry.check_not_lost(session)
        return held if isinstance(held, CorpusRef) else self.registry.default_ref

    def engine(self, ref: CorpusRef) -> RetrievalEngine:
        return self.registry.engine(ref)

    def use_bundled(self, session: str | None) -> CorpusRef:
        self.registry.release(session)
        return self.registry.bundled_ref

    def use_corpus(self, name: object, session: str | None) -> CorpusRef:
        """Switch the session to one of the standing corpora (a corpus bundle, or the bundled one), by name."""
        return self.registry.use_standing(form_text(name, "corpus", 2000, required=True), session)

    def upload_corpus(self, file: object, title_column: object, text_column: object, session: str | None) -> CorpusRef:
        """A file uploaded through the page ({"path", "orig_name"}) as the session's corpus."""
        path, name = self._uploaded(file, "a corpus")
        corpus = corpus_from_file(
            path,
            title_column=form_text(title_column, "title column", 200) or None,
            text_column=form_text(text_column, "text column", 200) or None,
            name=name,
        )
        return self.registry.register(corpus, session, corpus.name)

    def load_hub_dataset(
        self, dataset: object, config: object, split: object, max_passages: object, session: str | None
    ) -> CorpusRef:
        corpus = corpus_from_hub(
            form_text(dataset, "dataset id", 200, required=True),
            form_text(config, "config", 64) or None,
            form_text(split, "split", 64) or "train",
            max_passages=whole_number(max_passages, "maximum number of passages", 1, MAX_HUB_PASSAGES),
        )
        return self.registry.register(corpus, session)

    def release(self, session: str | None) -> None:
        """The visitor left: stop their heavy work; drop their upload if nobody else uses it."""
        for line in self.lines.all():
            line.cancel_session(session)
        with self._evaluations_lock:
            self._evaluations.pop(session, None)
        self.registry.release(session)

    def _uploaded(self, file: object, what: str) -> tuple[str, str]:
        """The path and shown name of a file uploaded through the page. Gradio already refuses
        paths outside its upload folder; the check here keeps that true whatever version runs."""
        path = file.get("path") if isinstance(file, dict) else None
        if not path or not isinstance(path, str):
            raise InvalidInputError("Choose a file to upload first.")
        folder = self._upload_dir() if self._upload_dir is not None else None
        if folder is None or not Path(path).resolve().is_relative_to(folder.resolve()) or not Path(path).is_file():
            raise InvalidInputError(f"Only files uploaded through this page can be used as {what}.")
        return path, display_name(file.get("orig_name")) or Path(path).name

    # -- comparing ----------------------------------------------------------------------------------
    def compare(self, ref: CorpusRef, request: CompareRequest, budget_s: float | None = None) -> Iterator[Comparison]:
        """The comparison, column by column as indexes become ready (see RetrievalEngine.compare_live);
        `budget_s` 0 asks once without waiting (a page refreshing its pending columns)."""
        budget = self.budget_s if budget_s is None else budget_s
        # The request was checked once, here: the engine's own checks are for its script callers.
        names = list(request.retrievers)
        engine = self.engine(ref)
        for c in comparison.live(engine, request.question, names, request.k, request.gold, budget):
            yield self._calibrated(ref, engine, c)

    def calibration(self, ref: CorpusRef, name: str) -> RetrievalCalibration | None:
        """Retriever `name`'s calibration on the corpus, when it has a QA set and it is computed."""
        if ref.key != self.registry.bundled_ref.key:
            return None
        return self.calibrations.get(self.engine(ref), ref.key, name)

    def _calibrated(self, ref: CorpusRef, engine: RetrievalEngine, c: Comparison) -> Comparison:
        """`c` with the calibrations of its ready columns."""
        for name, result in c.results.items():
            if not result.error and result.pending is None:
                calibration = self.calibration(ref, name)
                if calibration is not None:
                    c.calibrations[name] = calibration
        return c

    def search(self, ref: CorpusRef, request: CompareRequest, budget_s: float | None = None) -> dict:
        """The hits of each retriever as JSON: {retriever: [{"id", "title", "score", "rank"}]}, in the
        order asked; a retriever that could not answer (an index not ready within the budget, a model
        that cannot load) is left out and named under "errors": {retriever: why}."""
        last = None
        for last in self.compare(ref, request, budget_s):
            pass
        assert last is not None  # compare yields at least once
        out: dict = {}
        errors: dict[str, str] = {}
        for name, result in last.results.items():
            if result.error or result.pending is not None:
                errors[name] = result.error or "its index is not ready yet: ask again shortly"
                continue
            out[name] = [{"id": h.passage_id, "title": h.title, "score": h.score, "rank": h.rank} for h in result.hits]
        if errors:
            out["errors"] = errors
        return out

    def refresh(self, ref: CorpusRef, request: CompareRequest, previous: Comparison | None) -> Comparison:
        """The comparison again for a page whose columns wait for their indexes: never waits, never
        starts or restarts a build. A column whose index became ready is searched (one that was
        ready in `previous` is kept as it was), a failed one says why, the others their status."""
        engine = self.engine(ref)
        states = engine.index_states()
        dense = set(engine.dense_names(list(request.retrievers)))
        ready, results = [], {}
        for name in request.retrievers:
            state = states.get(name)
            if name not in dense or (state is not None and state.ready):
                ready.append(name)
            elif state is not None and state.phase in (Phase.FAILED, Phase.CANCELLED):
                results[name] = RetrieverResult(name, [], 0.0, 0.0, error=state.note or state.phase.value)
            elif state is None:  # never asked for (a refresh never starts a build): nothing will come
                results[name] = RetrieverResult(name, [], 0.0, 0.0, error="its index was not started: press Compare")
            else:
                results[name] = RetrieverResult(name, [], 0.0, 0.0, pending=state)
        kept = previous.results if previous is not None else {}
        if any(n not in kept or kept[n].pending or kept[n].error for n in ready):
            kept = comparison.rank(engine, [request.question], ready, request.k, [request.gold], 0)[0].results
        results |= {n: kept[n] for n in ready}
        ordered = {n: results[n] for n in request.retrievers}
        c = Comparison(request.question, request.k, ordered, agreement(ordered, request.k), request.gold)
        return self._calibrated(ref, engine, c)

    def topics(self, ref: CorpusRef) -> tuple[int, tuple[str, ...]] | None:
        """What the corpus covers: how many distinct passage titles it has and the first
        SHOWN_TOPICS of them (in corpus order, each clipped to MAX_TOPIC_CHARS, spaces squeezed),
        or None for a corpus too large to count them (over MAX_TOPIC_PASSAGES passages)."""
        if ref.size > MAX_TOPIC_PASSAGES:
            return None
        with self._topics_lock:
            known = self._topics.get(ref.key)
        if known is None:
            titles = dict.fromkeys(" ".join(p.title.split()) for p in self.engine(ref).corpus)
            titles.pop("", None)
            known = (len(titles), tuple(t[:MAX_TOPIC_CHARS] for t in list(titles)[:SHOWN_TOPICS]))
            with self._topics_lock:
                self._topics[ref.key] = known
                while len(self._topics) > 64:
                    self._topics.pop(next(iter(self._topics)))
        return known

    def index_status(self, ref: CorpusRef, name: str) -> Status | None:
        """Where the index of `name` over the corpus stands; None if nothing asked for it yet."""
        return self.engine(ref).index_states().get(name)

    def building(self, ref: CorpusRef, names: Sequence[str]) -> list[str]:
        """The retrievers among `names` whose index is being built now (never starts one)."""
        return self.engine(ref).building_indexes(list(names))

    # -- answering ----------------------------------------------------------------------------------
    def answer(
        self, ref: CorpusRef, request: AnswerRequest, budget_s: float | None = None
    ) -> Iterator[Loading | IndexWait | Answered | None]:
        """Retrieve passages (or take the pasted ones) and read answers out of them. Yields
        `IndexWait` while the retriever's index builds (at most `budget_s`, default the request
        budget: then None, and the build goes on), `Loading` for each reader loading, then `Answered`."""
        engine = self.engine(ref)
        name = request.retriever
        budget = self.budget_s if budget_s is None else budget_s
        if request.passages is None and name in engine.dense_names():
            for states in engine.wait_for_indexes([name], budget_s=budget):
                if not states[name].ready:
                    yield IndexWait(states)
            if engine.built_index(name) is None:
                yield None  # still building (it goes on), or failed: the last IndexWait says which
                return
        for key in engine.load_models(readers=request.readers):
            yield Loading(key)
        given = None if request.passages is None else [(p["id"], p["title"], p["text"]) for p in request.passages]
        retrieval = self.calibration(ref, name) if given is None else None
        report = answering.answer(
            engine,
            request.question,
            name,
            request.readers,
            request.k,
            5,
            given,
            None,
            {},
            0,
            retrieval,
            self.reader_rules,
        )
        report.calibration = retrieval
        index = engine.index_states().get(name) if request.passages is None else None
        if request.passages is not None:
            yield Answered(report, "", len(request.passages))
        else:
            yield Answered(report, ref.name, ref.size, index)

    # -- embedding ----------------------------------------------------------------------------------
    def embed(
        self, ref: CorpusRef, request: EmbedRequest, visitor: Visitor
    ) -> Iterator[Waiting | Loading | EmbeddingReport]:
        engine = self.engine(ref)
        with (yield from self._take_place(self.lines.embeddings, visitor)):
            for key in engine.load_models(retrievers=request.models):
                yield Loading(key)
            yield embed_texts(engine, list(request.questions), list(request.passages), list(request.models))

    # -- indexes ------------------------------------------------------------------------------------
    def build_indexes(self, ref: CorpusRef, names: object, visitor: Visitor) -> Iterator[Waiting | list[IndexView]]:
        """Build (or read) the dense indexes named, yielding where each stands; past the budget
        they go on in the background."""
        picked = chosen(names, self.dense, "indexes")
        engine = self.engine(ref)
        with (yield from self._take_place(self.lines.index_builds, visitor)):
            for states in engine.wait_for_indexes(picked, budget_s=self.budget_s):
                yield [IndexView.of(n, states[n], engine.built_index(n)) for n in picked]

    # -- evaluating ---------------------------------------------------------------------------------
    def qa_set(self, file: object, ref: CorpusRef) -> QASet:
        """The QA set to evaluate on: the uploaded QA file, else the bundled one (only over the
        bundled corpus: its gold answers and passages are there)."""
        if file is None or file == "":
            if ref.key != self.registry.bundled_ref.key:
                raise InvalidInputError(
                    f"The corpus in use, {ref.name!r}, has no QA set: upload a QA file (.jsonl, .json or .csv with "
                    "a question column and an answer column) to evaluate on it, or use the bundled corpus (Corpus tab)."
                )
            return self.bundled_qa
        path, name = self._uploaded(file, "a QA set")
        return qa_from_file(path, name=name)

    def evaluate(
        self, ref: CorpusRef, names: object, qa: QASet, visitor: Visitor
    ) -> Iterator[EvaluationProgress | EvaluationReport]:
        """Recall@k (k = 1 to MAX_EVAL_K) and MRR of each retriever on `qa`, with progress. One at
        a time per visitor in the evaluations' line; stopped when its budget runs out or its page
        is closed."""
        picked = chosen(names, RETRIEVERS, "retrievers")
        engine = self.engine(ref)
        steps = dict.fromkeys(picked, Step.WAITING)
        indexes: dict[str, Status] = {}

        def waiting(line: Waiting) -> EvaluationProgress:
            return EvaluationProgress(dict(steps), waiting=line)

        with (yield from self._take_place(self.lines.evaluations, visitor, waiting)) as place:
            loading = None
            for key in engine.load_models(retrievers=picked):
                if loading:
                    steps[loading] = Step.LOADED
                loading = key.name
                steps[loading] = Step.LOADING
                yield EvaluationProgress(dict(steps))
            if loading:
                steps[loading] = Step.LOADED
            if engine.dense_names(list(picked)):  # within the request's budget, then in the background
                for states in engine.wait_for_indexes(picked, budget_s=self.budget_s):
                    indexes = states
                    steps |= {n: Step.INDEXING for n, s in states.items() if not s.ready}
                    yield EvaluationProgress(dict(steps), dict(indexes))
            results = {}
            for name in picked:
                place.check()
                steps[name] = Step.EVALUATING
                yield EvaluationProgress(dict(steps), dict(indexes))
                results[name] = evaluate_retriever(engine, qa.items, name, MAX_EVAL_K, timeout=0, check=place.check)
                steps[name] = Step.DONE if results[name].error is None else Step.FAILED
        report = EvaluationReport(engine.corpus.name, qa.items, MAX_EVAL_K, results)
        if visitor.session is not None:
            self._keep_evaluation(visitor.session, ref, report, 0 if qa is self.bundled_qa else _size(qa))
        yield report

    def _keep_evaluation(self, session: str, ref: CorpusRef, report: EvaluationReport, size: int) -> None:
        with self._evaluations_lock:
            self._evaluations.pop(session, None)
            if size <= KEPT_EVALUATION_BYTES:
                self._evaluations[session] = (ref, report, size)
            while len(self._evaluations) > KEPT_EVALUATIONS or (
                sum(kept[2] for kept in self._evaluations.values()) > KEPT_EVALUATION_BYTES
            ):
                self._evaluations.popitem(last=False)

    def evaluated_question(self, session: str | None, number: object) -> tuple[CorpusRef, QAItem, Comparison]:
        """Question `number` (1-based, as the evaluation's table numbers them) of the last
        evaluation `session` made: its corpus, the item, and each evaluated retriever's passages
        for it, deep enough to show every retriever's first passage with an answer (at least 5)."""
        with self._evaluations_lock:
            kept = self._evaluations.get(session) if session is not None else None
        if kept is None:
            raise InvalidInputError(
                "This page's evaluation is not kept on the server (any more): press Evaluate, then click a row."
            )
        ref, report, _ = kept
        i = whole_number(number, "question number", 1, len(report.items)) - 1
        item = report.items[i]
        names = list(report.retrievers)
        ranks = [r for r in report.ranks(i).values() if r is not None]
        k = min(MAX_EVAL_K, max([5, *ranks]))
        return ref, item, self.engine(ref).compare(item.question, names, k, timeout=0)

    # -- status -------------------------------------------------------------------------------------
    def status(self, held: object = None, session: str | None = None) -> ServiceStatus:
        """Each model's state (waiting for the warm-up, not loaded, loading, ready, failed) and each
        index of the session's corpus (`held`: the corpus its page holds; None: the one the
        registry knows for `session`)."""
        loaded = model_states()
        plan = self.warmup.pending() if self.warmup is not None and self.warmup.started else set()
        keys = [ModelKey.retriever(n) for n in self.dense] + [ModelKey.reader(n) for n in READERS]
        models = {key: loaded.get(key) or (WAITING if key in plan else NOT_LOADED) for key in keys}
        models |= {key: state for key, state in loaded.items() if key not in models}
        try:
            ref = self.ref(held, session) if held is not None else self.registry.session_ref(session)
            engine = self.engine(ref)
        except LfqaError as exc:
            return ServiceStatus(models, {}, "", str(exc), self.registry.corpus_states())
        indexes = engine.index_states()
        if self.warmup is not None and engine is self.warmup.engine:  # its plan, for the indexes not reached
            indexes |= {n: WAITING for n in self.warmup.retrievers if n not in indexes and ("index", n) in plan}
        about = describe(engine.corpus_bundle) if engine.corpus_bundle is not None else None
        return ServiceStatus(models, indexes, ref.name, None, self.registry.corpus_states(), about)

    # -- lines --------------------------------------------------------------------------------------
    @staticmethod
    def _take_place(line: WorkLine, visitor: Visitor, shown: Callable[[Waiting], object] = lambda w: w):
        """Join `line` (ServerBusyError at once if the visitor has a place already, or it is full),
        yielding `shown(Waiting)` while others go first; returns the place, running."""
        place = line.join(visitor)
        try:
            while not place.wait(1.0):
                place.check()  # the page was closed while it waited
                yield shown(Waiting(line.what, place.ahead))
        except BaseException:
            place.leave()
            raise
        return place


def _size(qa: QASet) -> int:
    """The UTF-8 bytes of a QA set's text (ids, questions, answers): about what keeping its
    evaluation costs (CPython keeps a string of astral characters at 4 bytes a character)."""
    texts = (t for item in qa.items for t in (item.id, item.question, item.passage_id, *item.answers))
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
