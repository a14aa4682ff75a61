"""The "Question embedding" tab: word pieces, vectors, similarities and a 2-D map of the
questions (and passages) for each dense model; the vectors as a JSON download."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
import pandas as pd

from lfqa_demo.embedding import EmbeddingReport
from lfqa_demo.service import EmbedRequest, Loading, Service, Waiting
from lfqa_demo.sessions import CorpusRef
from ui import render
from ui.boundary import session, user_errors, visitor
from ui.states import loading_words, waiting_words
from ui.tabs.choices import dense_choices, example_items

MAP_KINDS = {"corpus": "corpus passage", "question": "your question", "passage": "your passage"}  # legend wording
EXPORT_DIR = Path(tempfile.gettempdir()) / "lfqa-demo-exports"  # embedding downloads, pruned as they age
EXPORT_KEEP_SECONDS = 600


def export(data: dict) -> Path:
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


def embedding_outputs(report: EmbeddingReport, map_model: str | None) -> tuple:
    """(word pieces HTML, the vector plot's frame, similarity HTML, the map's frame, download path)."""
    pieces, heatmaps, vector_rows, data = [], [], [], {"texts": report.texts, "kinds": report.kinds, "models": {}}
    for name, m in report.models.items():
        title = f"<h4>{render.esc(render.label(name))}</h4>"
        if m.error:
            pieces.append(f"{title}<div class='error'>Unavailable: {render.esc(render.public_message(m.error))}</div>")
            continue
        pieces.append(title + render.render_pieces(m.pieces, report.texts, m.norms, m.dim))
        heatmaps.append(
            render.render_heatmap(
                report.texts, m.similarity, f"{render.label(name)}: dot product (the retrieval score)"
            )
        )
        data["models"][name] = {"dim": m.dim, "vectors": m.vectors.round(6).tolist(), "pieces": m.pieces}
    chosen = report.models.get(map_model) or next((m for m in report.models.values() if not m.error), None)
    # One model's vector: vectors of 128, 384 and 768 dimensions overlaid in one chart mean nothing.
    if chosen is not None and not chosen.error:
        label = f"{render.label(chosen.model)} ({chosen.dim}-d)"
        vector_rows = [{"dimension": d, "value": float(v), "model": label} for d, v in enumerate(chosen.vectors[0])]
    shown = [{**p, "kind": MAP_KINDS[p["kind"]]} for p in (chosen.map_points if chosen and not chosen.error else [])]
    return (
        "".join(pieces),
        pd.DataFrame(vector_rows, columns=["dimension", "value", "model"]),
        "".join(heatmaps) or "<div>No model could embed.</div>",
        pd.DataFrame(shown, columns=["x", "y", "kind", "label"]),
        str(export(data)),
    )


class EmbedTab:
    def __init__(self, service: Service):
        self.service = service
        self.choices = dense_choices(service.dense)

    @user_errors
    def embed_questions(
        self, questions, passages, models, map_model, corpus_ref: CorpusRef, request: gr.Request = None
    ):
        """Word pieces, vectors, similarities and a 2-D map of the questions for each model (one embedding
        at a time per visitor, in the embeddings' own line: see lfqa_demo/admission.py)."""
        asked = EmbedRequest.check(questions, passages, models, map_model, self.service.dense)
        ref = self.service.ref(corpus_ref, session(request))
        for step in self.service.embed(ref, asked, visitor(request)):
            if isinstance(step, (Waiting, Loading)):
                words = waiting_words(step) if isinstance(step, Waiting) else loading_words(step)
                yield f"<div class='pending'>{render.esc(words)}</div>", *[gr.skip()] * 4
            else:
                yield embedding_outputs(step, asked.map_model)

    def build(self, corpus_ref: gr.State) -> None:
        with gr.Tab("Question embedding", id="embed"):
            with gr.Row():
                questions = gr.Textbox(
                    label="Questions (one per line)", lines=4, value="who led the normans?\nwhy is the sky blue?"
                )
                passages = gr.Textbox(label="Passages to compare with (optional; blank lines separate them)", lines=4)
            with gr.Row():
                models = gr.CheckboxGroup(self.choices, value=["retribert", "dpr", "realm"], label="Models")
                map_model = gr.Dropdown(self.choices, value="dpr", label="Model for the vector and the 2-D map")
                button = gr.Button("Embed", variant="primary", elem_id="embed-button")
            gr.Examples([[q.question] for q in example_items()], inputs=[questions], label="Example questions")
            pieces = gr.HTML(label="Word pieces")
            with gr.Row():
                # No fixed height: with one, Gradio 6.31 cuts the legend off when the data comes later.
                vector = gr.LinePlot(
                    x="dimension", y="value", color="model", label="The first question's vector (the map's model)"
                )
                points = gr.ScatterPlot(
                    x="x",
                    y="y",
                    color="kind",
                    tooltip=["label"],
                    label="PCA map: your texts among corpus passages",
                    elem_id="embed-map",
                )
            heatmap = gr.HTML(label="Similarity")
            download = gr.File(label="Embeddings (JSON)")
            self.starts = [button.click]  # the events that start work
            button.click(
                self.embed_questions,
                [questions, passages, models, map_model, corpus_ref],
                [pieces, vector, heatmap, points, download],
                api_name="embed",
                preprocess=False,
                concurrency_id="embed",
                concurrency_limit=None,  # the service's embeddings line lets it in
            )
