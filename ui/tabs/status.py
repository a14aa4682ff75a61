"""The status panel (every model and index, refreshed every few seconds) and /status, the same
as JSON for scripts that poll readiness."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from lfqa_demo.service import Service
from ui.boundary import session
from ui.states import corpus_words, model_words, status_words
from ui.text import label, public_message


class StatusPanel:
    def __init__(self, service: Service):
        self.service = service

    def model_status(self, corpus_ref=None, request: gr.Request = None) -> pd.DataFrame:
        """Each model's state (waiting for the warm-up, not loaded, loading, ready on device and
        dtype, failed and why) and each index of the session's corpus (waiting, loading the model,
        indexing n/N with the time left, ready, failed)."""
        status = self.service.status(corpus_ref, session(request))
        rows = [[model_words(key), status_words(state)] for key, state in status.models.items()]
        rows += [[f"{label(n)} index of {status.corpus}", status_words(s)] for n, s in status.indexes.items()]
        if status.about is not None:  # a corpus bundle: its size, and what its indexes hold in memory
            memory = sum(r["bytes_in_memory"] for r in status.about["retrievers"].values())
            rows.append([f"corpus {status.corpus}", corpus_words(status.about["passages"], memory)])
        rows += [[f"corpus {spec}", status_words(state)] for spec, state in status.corpora.items()]
        if status.error:
            rows.append(["corpus", public_message(status.error)])
        return pd.DataFrame(rows, columns=["model", "state"])

    def status(self, request: gr.Request) -> dict:
        """Every model's and index's state as JSON: {"corpus", "models": {"retriever dpr": {"state",
        "done", "total", "seconds_left", "note", ...}}, "indexes": {"dpr": {...}}, "corpora": {LFQA_CORPORA
        bundles downloading or refused: {...}}, "about": {a corpus bundle's passages, indexes, recall
        kept, memory} or null, "error"}; the indexes are those of the corpus this client's session uses."""
        data = self.service.status(None, session(request)).as_json()
        for group in (data["models"], data["indexes"], data["corpora"]):
            for state in group.values():  # no server path in what a visitor sees
                state["note"] = public_message(state["note"]) if state["note"] else state["note"]
        data["error"] = public_message(data["error"]) if data["error"] else None
        return data

    def build(self, corpus_ref: gr.State) -> None:
        with gr.Accordion("Model status", open=False):
            table = gr.Dataframe(self.model_status(), interactive=False, elem_id="model-status")
            refresh = gr.Button("Refresh", size="sm")
        # The status has a queue slot of its own: it must answer while comparisons wait for indexes.
        slot = {"concurrency_id": "status", "concurrency_limit": 4}
        refresh.click(self.model_status, corpus_ref, table, api_name="model_status", **slot)
        gr.Timer(3).tick(self.model_status, corpus_ref, table, api_visibility="private", show_progress="hidden", **slot)
        gr.api(self.status, api_name="status", **slot)
