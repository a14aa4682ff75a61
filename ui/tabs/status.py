"""The status panel (every model and index, refreshed every few seconds while any of them is
loading, indexing or waiting; quiet otherwise, until the visitor starts something) and /status,
the same as JSON for scripts that poll readiness."""

from __future__ import annotations

import time

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

    def tick(self, corpus_ref=None, resumed=None, request: gr.Request = None):
        """The table again, and the timer kept on only while something moves (loading, indexing,
        waiting for the warm-up), or for GRACE_S after the visitor started something (its work may
        still wait in a queue): a page where everything is ready or idle stops asking."""
        status = self.service.status(corpus_ref, session(request))
        groups = (status.models, status.indexes, status.corpora)
        moving = any(state.moving for group in groups for state in group.values())
        recent = isinstance(resumed, float) and time.monotonic() - resumed < GRACE_S
        return self.model_status(corpus_ref, request), gr.Timer(active=moving or recent)

    def resume(self):
        """Something was started (a comparison, an answer, an index build...): look again, and
        keep looking for GRACE_S at least."""
        return gr.Timer(active=True), time.monotonic()

    def resume_on(self, triggers: list) -> None:
        """The events that start work: each switches the status timer back on."""
        gr.on(
            triggers,
            self.resume,
            None,
            [self.timer, self.resumed],
            api_visibility="private",
            show_progress="hidden",
            **_SLOT,
        )

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
        refresh.click(self.model_status, corpus_ref, table, api_name="model_status", **_SLOT)
        self.timer = gr.Timer(REFRESH_EVERY_S)
        self.resumed = gr.State(None)  # when the visitor last started something (server-side)
        self.timer.tick(
            self.tick,
            [corpus_ref, self.resumed],
            [table, self.timer],
            api_visibility="private",
            show_progress="hidden",
            **_SLOT,
        )
        gr.api(self.status, api_name="status", **_SLOT)


REFRESH_EVERY_S = 3.0
GRACE_S = 15.0  # the status keeps refreshing this long after the visitor starts something
# The status has a queue slot of its own: it must answer while comparisons wait for indexes.
_SLOT = {"concurrency_id": "status", "concurrency_limit": 4}
