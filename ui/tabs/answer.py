"""The "Answer extraction" tab: retrieve passages (or take pasted ones) and let the readers pull
answer spans out of them. An answer still waiting for its index when the request ends comes by
itself: the page asks again (without waiting) every REFRESH_EVERY_S until the index is ready.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from lfqa_demo.errors import LfqaError
from lfqa_demo.inputs import whole_number
from lfqa_demo.service import (
    MAX_COMPARE_K,
    MAX_READ_K,
    RETRIEVERS,
    Answered,
    AnswerRequest,
    IndexWait,
    Loading,
    Service,
)
from lfqa_demo.sessions import CorpusRef
from lfqa_demo.status import NOT_LOADED, Origin, Status
from ui import render
from ui.boundary import message_for, session, user_errors
from ui.states import loading_words, status_words
from ui.tabs.choices import READER_CHOICES, compare_choices, example_items
from ui.tabs.compare import REFRESH_EVERY_S


@dataclass(frozen=True)
class Watched:
    """An answer waiting for its retriever's index (kept in the session's state on the server)."""

    request: AnswerRequest
    corpus: str  # the corpus's key: once the session uses another, the watch stops


class AnswerTab:
    def __init__(self, service: Service):
        self.service = service

    def _steps(self, ref: CorpusRef, asked: AnswerRequest, budget_s: float | None = None):
        """(answers HTML, timings line) for each step of the service's answer."""
        for step in self.service.answer(ref, asked, budget_s):
            if isinstance(step, IndexWait):
                message = self._waiting_words(asked.retriever, step.states[asked.retriever])
                yield f"<div class='pending'>{render.esc(message)}</div>", ""
            elif isinstance(step, Loading):
                yield f"<div class='pending'>{render.esc(loading_words(step))}</div>", ""
            elif isinstance(step, Answered):
                yield self._answered(step), render.answer_timings(step.report)

    @staticmethod
    def _waiting_words(retriever: str, state: Status) -> str:
        words = f"The {render.label(retriever)} index of this corpus: {status_words(state)}"
        return words + (" (the answer comes by itself once it is ready)" if state.background else "")

    @staticmethod
    def _answered(done: Answered) -> str:
        corpus = done.corpus or "the pasted text"
        note = render.corpus_note(corpus, done.corpus_size)
        index = done.index
        if index is not None and index.origin in (Origin.REBUILT, Origin.MEMORY_ONLY):  # said once, here
            name = render.label(done.report.retriever or "")
            note += f"<div class='note'>{render.esc(f'The {name} index: {status_words(index)}')}</div>"
        return note + render.render_answers(done.report)

    @user_errors
    def extract_answers(
        self, question, retriever, readers, k, pasted, corpus_ref: CorpusRef, request: gr.Request = None
    ):
        """Retrieve passages (or use pasted ones, the k best by BM25) and read answers out of them."""
        asked = AnswerRequest.check(question, retriever, readers, k, pasted)
        yield from self._steps(self.service.ref(corpus_ref, session(request)), asked)

    def watch(self, question, retriever, readers, k, pasted, corpus_ref, request: gr.Request = None):
        """After an answer: if its index is still being built, what the timer is to watch, and the
        timer switched on; else nothing to do."""
        try:
            asked = AnswerRequest.check(question, retriever, readers, k, pasted)
            ref = self.service.ref(corpus_ref, session(request))
            building = asked.passages is None and self.service.building(ref, [asked.retriever])
        except LfqaError:
            building = False
        return (Watched(asked, ref.key), gr.Timer(active=True)) if building else (None, gr.Timer(active=False))

    def refresh(self, watched, question, retriever, readers, k, pasted, corpus_ref, ready, request: gr.Request = None):
        """Where the watched answer's index stands, without waiting and without reading: while it
        builds, its progress; once it is ready, `ready` goes up by one, which asks for the answer
        in the ordinary way (the readers never run in the timer's lane). The timer stops then,
        when the form or the session's corpus changes, or with a message when it cannot go on."""
        stop = (gr.skip(), gr.skip(), None, gr.Timer(active=False), gr.skip())
        try:
            current = AnswerRequest.check(question, retriever, readers, k, pasted)
        except LfqaError:
            current = None
        if not isinstance(watched, Watched) or current != watched.request:
            return stop
        name = watched.request.retriever
        try:
            ref = self.service.ref(corpus_ref, session(request))
            if ref.key != watched.corpus:
                return stop
            state = self.service.index_status(ref, name)
        except Exception as exc:  # said in the page once, and the timer stops (a toast would repeat)
            return f"<div class='error'>{render.esc(message_for(exc, 'refresh'))}</div>", "", None, *stop[3:]
        if state is not None and state.ready:
            return gr.skip(), gr.skip(), None, gr.Timer(active=False), (ready or 0) + 1
        message = f"<div class='pending'>{render.esc(self._waiting_words(name, state or NOT_LOADED))}</div>"
        if state is not None and state.over:  # failed or cancelled: nothing more will come
            return message, "", None, gr.Timer(active=False), gr.skip()
        return message, "", watched, gr.skip(), gr.skip()

    def build(self, corpus_ref: gr.State) -> None:
        with gr.Tab("Answer extraction", id="answer"):
            with gr.Row(elem_classes="ask-row"):
                question = gr.Textbox(label="Question", scale=5, elem_id="answer-question")
                button = gr.Button("Answer", variant="primary", scale=1, min_width=120, elem_id="answer-button")
            with gr.Row():
                retriever = gr.Dropdown(
                    compare_choices(self.service.offered), value="bm25", label="Retriever", elem_id="answer-retriever"
                )
                readers = gr.CheckboxGroup(READER_CHOICES, value=["dpr", "realm"], label="Readers")
                k = gr.Slider(1, MAX_READ_K, value=5, step=1, label="Passages to read", elem_id="answer-k")
            pasted = gr.Textbox(
                label="Or paste passages to read instead (blank lines separate them)", lines=3, elem_id="answer-pasted"
            )
            gr.Examples([[q.question] for q in example_items("factoid")], inputs=[question], label="Example questions")
            answers = gr.HTML(elem_id="answer-results")
            with gr.Accordion("Details: time per step", open=False):
                timings = gr.Markdown(elem_id="answer-timings")
            inputs = [question, retriever, readers, k, pasted, corpus_ref]
            watched = gr.State(None)  # the answer waiting for its index (server-side)
            ready = gr.State(0)  # goes up when that index is ready: the answer is then asked for
            timer = gr.Timer(REFRESH_EVERY_S, active=False)
            quiet = {"api_visibility": "private", "preprocess": False, "show_progress": "hidden"}
            # One lane for answers, however they are asked for (the button, or an index that became ready).
            lane = {"concurrency_id": "answer", "concurrency_limit": 2}
            self.starts = [button.click]  # the events that start work
            button.click(
                self.extract_answers, inputs, [answers, timings], api_name="answer", preprocess=False, **lane
            ).success(self.watch, inputs, [watched, timer], **quiet)
            timer.tick(
                self.refresh,
                [watched, *inputs, ready],
                [answers, timings, watched, timer, ready],
                concurrency_id="refresh",  # the comparison's refresh lane: cheap, never reads
                **quiet,
            )
            ready.change(
                self.extract_answers, inputs, [answers, timings], api_visibility="private", preprocess=False, **lane
            )
            self.question, self.retriever, self.k, self.pasted = question, retriever, k, pasted
            self._ask = (inputs, [answers, timings], lane, watched, timer, quiet)

    @staticmethod
    def take_over(question, k, retrievers):
        """A comparison's "Read these passages": its question, its first retriever and its k (at
        most the readers' MAX_READ_K) for this tab, no pasted passages (they would be read
        instead), and this tab opened."""
        names = retrievers if isinstance(retrievers, list) else []
        try:
            count = min(whole_number(k, "k", 1, MAX_COMPARE_K), MAX_READ_K)
        except LfqaError:
            count = 5
        first = next((n for n in names if n in RETRIEVERS), "bm25")
        return question if isinstance(question, str) else "", first, count, "", gr.Tabs(selected="answer")

    def answer_after(self, event: gr.events.Dependency) -> None:
        """After `event` filled this tab's form: answer, then watch the index as the button does."""
        inputs, outputs, lane, watched, timer, quiet = self._ask
        answered = event.success(
            self.extract_answers, inputs, outputs, api_visibility="private", preprocess=False, **lane
        )
        answered.success(self.watch, inputs, [watched, timer], **quiet)
