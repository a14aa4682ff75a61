"""The "Answer extraction" tab: retrieve passages (or take pasted ones) and let the readers pull
answer spans out of them. An answer still waiting for its index when the request ends comes by
itself: the page asks again (without waiting) every REFRESH_EVERY_S until the index is ready.
"""

from __future__ import annotations

import gradio as gr

from lfqa_demo.errors import LfqaError
from lfqa_demo.service import Answered, AnswerRequest, IndexWait, Loading, Service
from lfqa_demo.sessions import CorpusRef
from lfqa_demo.status import Origin
from ui import render
from ui.boundary import session, user_errors
from ui.states import loading_words, status_words
from ui.tabs.choices import COMPARE_CHOICES, READER_CHOICES, example_items
from ui.tabs.compare import REFRESH_EVERY_S


class AnswerTab:
    def __init__(self, service: Service):
        self.service = service

    def _steps(self, ref: CorpusRef, asked: AnswerRequest, budget_s: float | None = None):
        """(answers HTML, timings line) for each step of the service's answer."""
        for step in self.service.answer(ref, asked, budget_s):
            if isinstance(step, IndexWait):
                state = status_words(step.states[asked.retriever])
                message = f"The {render.label(asked.retriever)} index of this corpus: {state}"
                yield f"<div class='pending'>{render.esc(message)}</div>", ""
            elif isinstance(step, Loading):
                yield f"<div class='pending'>{render.esc(loading_words(step))}</div>", ""
            elif isinstance(step, Answered):
                yield self._answered(step), render.answer_timings(step.report)

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
        """After an answer: if its index is still being built, the request to repeat and the timer."""
        try:
            asked = AnswerRequest.check(question, retriever, readers, k, pasted)
            ref = self.service.ref(corpus_ref, session(request))
            building = asked.passages is None and self.service.building(ref, [asked.retriever])
        except LfqaError:
            building = False
        return (asked, gr.Timer(active=True)) if building else (None, gr.Timer(active=False))

    @user_errors
    def refresh(self, shown, question, retriever, readers, k, pasted, corpus_ref, request: gr.Request = None):
        """The answer in `shown` again without waiting: the index's progress, or the answers once it
        is ready; the timer stops then, or once the form asks for something else."""
        try:
            current = AnswerRequest.check(question, retriever, readers, k, pasted)
        except LfqaError:
            current = None
        if not isinstance(shown, AnswerRequest) or current != shown:
            return gr.skip(), gr.skip(), None, gr.Timer(active=False)
        ref = self.service.ref(corpus_ref, session(request))
        html, timings = ([(gr.skip(), gr.skip())] + list(self._steps(ref, shown, budget_s=0)))[-1]
        pending = bool(self.service.building(ref, [shown.retriever]))
        return html, timings, shown if pending else None, gr.Timer(active=pending)

    def build(self, corpus_ref: gr.State) -> None:
        with gr.Tab("Answer extraction", id="answer"):
            with gr.Row():
                question = gr.Textbox(label="Question", scale=4, elem_id="answer-question")
                k = gr.Slider(1, 20, value=5, step=1, label="Passages to read")
            with gr.Row():
                retriever = gr.Dropdown(COMPARE_CHOICES, value="bm25", label="Retriever")
                readers = gr.CheckboxGroup(READER_CHOICES, value=["dpr", "realm"], label="Readers")
                button = gr.Button("Answer", variant="primary", elem_id="answer-button")
            pasted = gr.Textbox(
                label="Or paste passages to read instead (blank lines separate them)", lines=3, elem_id="answer-pasted"
            )
            gr.Examples([[q.question] for q in example_items("factoid")], inputs=[question], label="Example questions")
            timings = gr.Markdown()
            answers = gr.HTML(elem_id="answer-results")
            inputs = [question, retriever, readers, k, pasted, corpus_ref]
            shown = gr.State(None)
            timer = gr.Timer(REFRESH_EVERY_S, active=False)
            quiet = {"api_visibility": "private", "preprocess": False, "show_progress": "hidden"}
            button.click(self.extract_answers, inputs, [answers, timings], api_name="answer", preprocess=False).success(
                self.watch, inputs, [shown, timer], **quiet
            )
            timer.tick(
                self.refresh,
                [shown, *inputs],
                [answers, timings, shown, timer],
                concurrency_id="status",
                concurrency_limit=4,
                **quiet,
            )
