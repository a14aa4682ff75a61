"""The "Evaluation" tab: recall@k curves and MRR of the chosen retrievers on a QA set, and per
question where each found a gold answer; a click on a row shows that question's passages.

The evaluation's report stays on the server (the session's last one, kept by the service): a
row click sends only the row's question number, never the table back to be parsed again."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from lfqa_demo.evaluation import MAX_EVAL_K
from lfqa_demo.service import EvaluationProgress, Service
from lfqa_demo.sessions import CorpusRef
from ui import evaluation_view
from ui.assets import text
from ui.boundary import session, user_errors, visitor
from ui.states import step_words, waiting_words
from ui.tabs.choices import compare_choices


class EvaluateTab:
    def __init__(self, service: Service):
        self.service = service

    @user_errors
    def evaluate_retrievers(
        self, retrievers, qa_file=None, corpus_ref: CorpusRef | None = None, request: gr.Request = None
    ):
        """Recall@k (k = 1 to 20) and MRR@20 of each chosen retriever on a QA set over this session's
        corpus (the bundled QA set, or an uploaded .jsonl/.json/.csv file with a question and an answer
        column), and per question the rank at which each retriever first found a gold answer.

        Evaluations have a line of their own (lfqa_demo/admission.py): one at a time per visitor, a
        few in line, the rest refused at once; each stops after its budget or when its page is closed."""
        ref = self.service.ref(corpus_ref, session(request))
        qa = self.service.qa_set(qa_file, ref)
        for step in self.service.evaluate(ref, retrievers, qa, visitor(request)):
            if isinstance(step, EvaluationProgress):
                states = {
                    name: waiting_words(step.waiting)
                    if step.waiting is not None
                    else step_words(s, step.indexes.get(name), len(qa.items))
                    for name, s in step.steps.items()
                }
                shown = evaluation_view.render_progress(states, ref.name, ref.size, qa)
                yield gr.skip(), shown, gr.skip()
            else:
                yield (
                    evaluation_view.curve_frame(step),
                    evaluation_view.render_summary(step, qa, ref.name, ref.size),
                    evaluation_view.question_table(step),
                )

    @user_errors
    def show_question(self, evt: gr.SelectData, request: gr.Request = None):
        """The clicked row's question: each evaluated retriever's passages side by side, those
        holding a gold answer marked. The row names its question by number; the rest is the
        report this session's last evaluation left on the server (lfqa_demo/service.py)."""
        row = evt.row_value if isinstance(evt.row_value, list) and evt.row_value else [None]
        ref, item, comparison = self.service.evaluated_question(session(request), row[0])
        marked = evaluation_view.mark_gold(comparison, item.answers)
        return evaluation_view.render_question(item.question, item.answers, marked, ref.name, ref.size)

    def build(self, corpus_ref: gr.State) -> None:
        with gr.Tab("Evaluation", id="evaluate"):
            gr.Markdown(text("help/evaluation.md"))
            with gr.Row():
                choices = compare_choices(self.service.offered)
                retrievers = gr.CheckboxGroup(choices, value=["retribert", "dpr", "realm", "bm25"], label="Retrievers")
                qa_file = gr.File(
                    label="QA file (optional; the bundled QA set when empty)",
                    file_types=[".jsonl", ".json", ".csv"],
                    type="filepath",
                )
                button = gr.Button("Evaluate", variant="primary", elem_id="eval-button")
            curves = gr.LinePlot(
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
            summary = gr.HTML(label="Summary", elem_id="eval-summary", css_template=text("evaluation.css"))
            table = gr.Dataframe(
                pd.DataFrame(columns=["#", "question", "gold answer"]),
                label="Per question: rank of the first passage with a gold answer (-: not in the top 20)",
                interactive=False,
                wrap=True,
                max_height=480,
                show_search="search",
                max_chars=evaluation_view.SHOWN_CELL_CHARS,
                # In pixels: on a phone the table scrolls sideways inside itself instead of squeezing the
                # rank columns (one per retriever) into letters stacked one per line.
                column_widths=["48px", "240px", "150px"] + ["96px"] * len(choices),
                elem_id="eval-table",
            )
            question = gr.HTML(elem_id="eval-question")
            self.starts = [button.click]  # the events that start work
            # Never waits in Gradio's queue: the service's evaluations line lets it in.
            button.click(
                self.evaluate_retrievers,
                [retrievers, qa_file, corpus_ref],
                [curves, summary, table],
                api_name="evaluate",
                preprocess=False,
                concurrency_id="evaluate",
                concurrency_limit=None,
            )
            table.select(self.show_question, None, question, api_visibility="private", preprocess=False)
