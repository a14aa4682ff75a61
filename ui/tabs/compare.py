"""The "Retrieval comparison" tab: one question, each retriever's top k side by side.

A column whose index is still building when the request ends fills in by itself: the page asks
again (without waiting) every REFRESH_EVERY_S until no column is pending.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import gradio as gr
import pandas as pd

from lfqa_demo.errors import InvalidInputError, LfqaError
from lfqa_demo.inputs import chosen, form_text, whole_number
from lfqa_demo.results import Comparison
from lfqa_demo.service import MAX_COMPARE_K, MAX_QUESTION_CHARS, RETRIEVERS, CompareRequest, Service
from lfqa_demo.sessions import CorpusRef
from ui import render
from ui.assets import script
from ui.boundary import message_for, session, user_errors
from ui.tabs.choices import compare_choices, example_items

REFRESH_EVERY_S = 2.0  # how often a page with pending columns asks again (each ask is short)
MAX_TICKING_SESSIONS = 4096  # sessions whose last refresh is remembered (the least recent forgotten)
AGREEMENT_COLUMNS = ["retriever", "other", "overlap@k", "rank-biased overlap"]
TIMING_COLUMNS = ["retriever", "encode ms", "search ms", "passages", "status"]
DEFAULT_RETRIEVERS = ["retribert", "dpr", "realm", "bm25"]
EXAMPLES = example_items("factoid") + example_items("eli5", 3)


@dataclass(frozen=True)
class Watched:
    """A comparison whose columns wait for their indexes: what the refresh timer asks again (kept
    in the session's state on the server, never sent by the browser)."""

    request: CompareRequest
    corpus: str  # the corpus's key: once the session uses another, the refresh stops
    shown: Comparison | None = None  # the last one shown: its ready columns are kept, not searched again
    at: float = 0.0  # when it was last asked


class CompareTab:
    """The tab's components and handlers (each handler calls one service verb)."""

    def __init__(self, service: Service):
        self.service = service
        self._ticks: OrderedDict[str, float] = OrderedDict()  # session -> its last refresh
        self._ticks_lock = threading.Lock()

    def _last_tick(self, who: str | None, now: float) -> float:
        """When `who` last asked for a refresh (0 if never), and now counts as its last: re-arming
        the watch, or many pages in one session, never makes ticks come faster than the timer's."""
        if who is None:
            return 0.0
        with self._ticks_lock:
            last = self._ticks.pop(who, 0.0)
            self._ticks[who] = now if now - last >= REFRESH_EVERY_S / 2 else last
            while len(self._ticks) > MAX_TICKING_SESSIONS:
                self._ticks.popitem(last=False)
        return last

    # -- handlers -------------------------------------------------------------------------------------
    def _outputs(self, c, ref: CorpusRef):
        agreement = pd.DataFrame(
            render.agreement_rows(c), columns=["retriever", "other", f"overlap@{c.k}", "rank-biased overlap"]
        )
        timings = pd.DataFrame(render.timing_rows(c), columns=TIMING_COLUMNS)
        return render.corpus_note(ref.name, ref.size) + render.render_comparison(c), agreement, timings

    @user_errors
    def compare_retrievers(
        self, question, k, retrievers, gold_answer, corpus_ref: CorpusRef, request: gr.Request = None
    ):
        """Rank the corpus with each chosen retriever, side by side: the columns that are ready at
        once, each other one as soon as its index is (within the request budget; builds then go on)."""
        asked = CompareRequest.check(question, k, retrievers, gold_answer)
        ref = self.service.ref(corpus_ref, session(request))
        for c in self.service.compare(ref, asked):
            yield self._outputs(c, ref)

    def watch(self, question, k, retrievers, gold, corpus_ref, request: gr.Request = None):
        """After a comparison: if some column's index is still being built, what the refresh timer
        is to ask again, and the timer switched on; else nothing to do."""
        try:
            asked = CompareRequest.check(question, k, retrievers, gold)
            ref = self.service.ref(corpus_ref, session(request))
            building = self.service.building(ref, asked.retrievers)
        except LfqaError:
            building = []
        if not building:
            return None, gr.Timer(active=False)
        return Watched(asked, ref.key, at=time.monotonic()), gr.Timer(active=True)

    def refresh(self, watched, question, k, retrievers, gold, corpus_ref: CorpusRef, request: gr.Request = None):
        """The comparison being watched again: never waits, never starts a build (service.refresh);
        the columns that became ready fill in, the others show their progress. The timer stops once
        none is pending, when the form asks for another comparison or the session uses another
        corpus (their results must never be overwritten), or with a message when it cannot go on."""
        stop = (gr.skip(), gr.skip(), gr.skip(), None, gr.Timer(active=False))
        try:
            current = CompareRequest.check(question, k, retrievers, gold)
        except LfqaError:
            current = None
        if not isinstance(watched, Watched) or current != watched.request:
            return stop
        now = time.monotonic()
        if now - max(watched.at, self._last_tick(session(request), now)) < REFRESH_EVERY_S / 2:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()  # faster than the timer: dropped
        try:
            ref = self.service.ref(corpus_ref, session(request))
            if ref.key != watched.corpus:
                return stop
            c = self.service.refresh(ref, watched.request, watched.shown)
        except Exception as exc:  # said in the page once, and the timer stops (a toast would repeat)
            message = f"<div class='error'>{render.esc(message_for(exc, 'refresh'))}</div>"
            return message, gr.skip(), gr.skip(), None, gr.Timer(active=False)
        pending = any(r.pending for r in c.results.values())
        kept = replace(watched, shown=c, at=now) if pending else None
        return (*self._outputs(c, ref), kept, gr.Timer(active=pending))

    def fill_example(self, index: object):
        """The example question clicked (by its position) and its gold answer."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(EXAMPLES):
            return gr.skip(), gr.skip()
        item = EXAMPLES[index]
        return item.question, item.answers[0]

    def corpus_line(self, ref: object) -> str:
        ref = self.service.ref(ref, None)
        return render.corpus_coverage(ref.name, ref.size, self.service.topics(ref))

    def restore(self, request: gr.Request):
        """The comparison a link names (?q=&k=&r=&gold=): each value checked by the rule typed input
        passes; a value that does not pass leaves its field as it is."""
        params = request.query_params if request is not None else {}

        def checked(check, default):
            try:
                return check()
            except (InvalidInputError, TypeError, ValueError):
                return default

        question = checked(lambda: form_text(params.get("q"), "question", MAX_QUESTION_CHARS, required=True), "")
        k = checked(lambda: whole_number(params.get("k", "5"), "k", 1, MAX_COMPARE_K), 5)
        names = [r for r in params.get("r", "").split(",") if r]
        retrievers = checked(lambda: list(chosen(names, RETRIEVERS, "retrievers")), None)
        gold = checked(lambda: form_text(params.get("gold"), "gold answer", MAX_QUESTION_CHARS), "")
        return question or gr.skip(), k, retrievers or gr.skip(), gold if question else gr.skip()

    def compare_if_asked(self, question, k, retrievers, gold, corpus_ref, request: gr.Request = None):
        """`compare` when the page opened with a question in its link; else nothing."""
        if isinstance(question, str) and question.strip():
            yield from self.compare_retrievers(question, k, retrievers, gold, corpus_ref, request)

    # -- layout ---------------------------------------------------------------------------------------
    def build(self, corpus_ref: gr.State) -> None:
        with gr.Tab("Retrieval comparison", id="compare"):
            corpus_line = gr.HTML(self.corpus_line(self.service.registry.default_ref), elem_id="compare-corpus")
            # The question and its button first: on a phone both fit the first screen.
            with gr.Row(elem_classes="ask-row"):
                self.question = gr.Textbox(label="Question", scale=5, elem_id="compare-question")
                button = gr.Button("Compare", variant="primary", scale=1, min_width=120, elem_id="compare-button")
            with gr.Row():
                self.retrievers = gr.CheckboxGroup(
                    compare_choices(self.service.offered),
                    value=DEFAULT_RETRIEVERS,
                    label="Retrievers",
                    elem_id="compare-retrievers",
                )
                self.k = gr.Slider(
                    1, MAX_COMPARE_K, value=5, step=1, label="k (passages per retriever)", elem_id="compare-k"
                )
                self.gold = gr.Textbox(
                    label="Gold answer (optional: marks the passages that contain it)", elem_id="compare-gold"
                )
            # Questions of the bundled QA set: a click fills the question and its gold answer.
            examples = gr.Dataset(
                components=[self.question],
                samples=[[q.question] for q in EXAMPLES],
                label="Example questions (a click also fills in the gold answer)",
                type="index",
                elem_id="compare-examples",
            )
            results = gr.HTML(elem_id="compare-results")
            # Hands the question, the first retriever and k to the Answer tab (app.py wires it).
            self.read_button = gr.Button("Read these passages with the readers", size="md", elem_id="compare-read")
            with gr.Accordion("Tables: agreement and time per retriever", open=False):
                agreement = gr.Dataframe(
                    pd.DataFrame(columns=AGREEMENT_COLUMNS),
                    label="Agreement between retrievers (1 = same ranking)",
                    interactive=False,
                )
                timings = gr.Dataframe(
                    pd.DataFrame(columns=TIMING_COLUMNS), label="Time per retriever", interactive=False
                )
            self.inputs = [self.question, self.k, self.retrievers, self.gold]
            self.starts = [button.click, self.question.submit]  # the events that start work
            self.outputs = [results, agreement, timings]
            # The request to repeat while columns are pending (server-side state), and its timer.
            self.shown = gr.State(None)
            self.timer = gr.Timer(REFRESH_EVERY_S, active=False)
            gr.on(
                [button.click, self.question.submit],  # the button, or Enter in the question box
                self.compare_retrievers,
                [*self.inputs, corpus_ref],
                self.outputs,
                api_name="compare",
                preprocess=False,
            ).success(self.watch, [*self.inputs, corpus_ref], [self.shown, self.timer], **_QUIET)
            self.timer.tick(
                self.refresh,
                [self.shown, *self.inputs, corpus_ref],
                [*self.outputs, self.shown, self.timer],
                api_visibility="private",
                preprocess=False,  # the values are checked by CompareRequest.check, as everywhere
                show_progress="hidden",
                concurrency_id="refresh",  # a lane of its own: the status panel's must stay free
                concurrency_limit=2,
            )
            gr.on([button.click, self.question.submit], None, self.inputs, None, js=script("remember_comparison"))
            # On a phone the form fills the first screen: the results are scrolled into view when they come.
            results.change(None, None, None, js=script("show_results"))
            self.question.change(None, self.question, None, js=script("mark_stale"))
            examples.click(
                self.fill_example,
                examples,
                [self.question, self.gold],
                api_visibility="private",
                show_progress="hidden",
            ).then(None, [self.question, self.gold], None, js=script("remember_gold"))
            corpus_ref.change(
                self.corpus_line, corpus_ref, corpus_line, api_visibility="private", show_progress="hidden"
            )

    def wire_link(self, load: gr.events.Dependency, corpus_ref: gr.State) -> None:
        """After the page's load event set the form from the link: compare, then watch (a gold
        answer from the link belongs to its question, as an example's does)."""
        load.then(None, [self.question, self.gold], None, js=script("remember_gold"))
        # A gold answer filled in with its question is cleared when the question is edited.
        load.then(None, None, None, js=script("fresh_gold"))
        load.then(None, None, None, js=script("results_into_view"))
        load.then(
            self.compare_if_asked,
            [*self.inputs, corpus_ref],
            self.outputs,
            api_visibility="private",
            preprocess=False,
        ).success(self.watch, [*self.inputs, corpus_ref], [self.shown, self.timer], **_QUIET)


_QUIET = {"api_visibility": "private", "preprocess": False, "show_progress": "hidden"}
