"""The "Corpus" tab: the bundled corpus, an uploaded file or a hub dataset as this session's
corpus, and its dense indexes built (or read from the cache) on demand."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from lfqa_demo.retrieval.corpus import MAX_UPLOAD_BYTES
from lfqa_demo.retrieval.corpus_bundles import describe
from lfqa_demo.service import MAX_HUB_PASSAGES, IndexView, Service, Waiting
from lfqa_demo.sessions import CorpusRef
from ui import render
from ui.assets import text
from ui.boundary import session, user_errors, visitor
from ui.states import status_words, waiting_words
from ui.tabs.choices import dense_choices

UPLOAD_MB = MAX_UPLOAD_BYTES // 2**20
INDEX_COLUMNS = ["retriever", "index", "vectors", "size", "build s", "status"]


def index_table(views: list[IndexView]) -> pd.DataFrame:
    rows = []
    for v in views:
        if v.kind is None:
            rows.append([render.label(v.retriever), "-", "-", "-", "-", status_words(v.status)])
        else:
            rows.append(
                [
                    render.label(v.retriever),
                    v.kind,
                    f"{v.vectors:,} x {v.dim}",
                    f"{v.nbytes / 1e6:.1f} MB",
                    f"{v.build_seconds:.1f}",
                    status_words(v.status),
                ]
            )
    return pd.DataFrame(rows, columns=INDEX_COLUMNS)


def bundle_info(ref: CorpusRef, about: dict) -> str:
    """What the Corpus tab says of a corpus bundle: its size, and each index's kind and recall kept."""
    parts = []
    for name, index in about["retrievers"].items():
        if index["kind"] == "compressed":
            parts.append(
                f"{render.label(name)}: compressed index, keeps {index['recall_at_10']:.0%} of the exact top 10"
            )
        else:
            parts.append(f"{render.label(name)}: exact search")
    if about["bm25"]:
        parts.append("BM25")
    size = about["bytes_on_disk"]
    disk = f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"
    return (
        f"**In use:** {render.esc(ref.name)}: {about['passages']:,} passages, {disk} on disk "
        f"(built {render.esc(about['built_at'][:10])}). Indexes: {render.esc('; '.join(parts))}."
    )


class CorpusTab:
    def __init__(self, service: Service):
        self.service = service

    def info(self, ref: CorpusRef) -> str:
        engine = self.service.engine(ref)
        if engine.corpus_bundle is not None:  # a corpus at scale: what its manifest says, never a scan
            return bundle_info(ref, describe(engine.corpus_bundle))
        titles = len({p.title for p in engine.corpus})
        return (
            f"**In use:** {render.esc(ref.name)}: {len(engine.corpus):,} passages, {titles:,} titles "
            f"(content id `{ref.key[:12]}`: the same file gives the same id, and the same indexes)"
        )

    @user_errors
    def use_corpus(self, name, request: gr.Request = None):
        """Switch this session to one of the corpora this server offers (by name)."""
        ref = self.service.use_corpus(name, session(request))
        return ref, self.info(ref)

    @user_errors
    def use_bundled(self, request: gr.Request = None):
        """Switch this session back to the bundled corpus."""
        ref = self.service.use_bundled(session(request))
        return ref, self.info(ref)

    @user_errors
    def upload(self, file, title_column, text_column, request: gr.Request = None):
        """Use an uploaded .jsonl/.json/.csv/.parquet/.txt/.md file as this session's corpus."""
        ref = self.service.upload_corpus(file, title_column, text_column, session(request))
        return ref, self.info(ref)

    @user_errors
    def load_hub_dataset(self, dataset, config, split, max_passages, request: gr.Request = None):
        """Use a Hugging Face hub dataset (streamed, capped) as this session's corpus."""
        ref = self.service.load_hub_dataset(dataset, config, split, max_passages, session(request))
        return ref, self.info(ref)

    @user_errors
    def build_indexes(self, retrievers, corpus_ref: CorpusRef, request: gr.Request = None):
        """Build (or read from the cache) the dense indexes of this session's corpus, showing their
        progress; past the request budget they go on in the background (see the status panel)."""
        ref = self.service.ref(corpus_ref, session(request))
        for step in self.service.build_indexes(ref, retrievers, visitor(request)):
            if isinstance(step, Waiting):  # in line behind other visitors' builds
                yield pd.DataFrame([["-", "-", "-", "-", "-", waiting_words(step)]], columns=INDEX_COLUMNS)
            else:
                yield index_table(step)

    def build(self, corpus_ref: gr.State) -> None:
        with gr.Tab("Corpus", id="corpus"):
            registry = self.service.registry
            # The corpus endpoints answer with the session's State, which an MCP tool call cannot carry
            # to the next call: gradio_client can call them, MCP clients do not see them.
            hidden = {"api_visibility": "undocumented"}
            info = gr.Markdown(self.info(registry.default_ref))
            with gr.Row():
                with gr.Column():
                    gr.Markdown(text("help/bundled_corpus.md"))
                    if len(registry.standing_refs) > 1:  # corpus bundles (LFQA_CORPORA) besides the bundled one
                        names = [r.name for r in registry.standing_refs]
                        standing = gr.Dropdown(names, value=names[0], label="Corpora on this server")
                        chosen = gr.Button("Use this corpus")
                        chosen.click(self.use_corpus, standing, [corpus_ref, info], api_name="use_corpus", **hidden)
                    bundled = gr.Button("Use the bundled corpus")
                with gr.Column():
                    file = gr.File(
                        label=f"Upload .jsonl, .json, .csv, .parquet, .txt or .md (up to {UPLOAD_MB} MB)",
                        file_types=[".jsonl", ".json", ".csv", ".parquet", ".txt", ".md"],
                        type="filepath",
                    )
                    title_col = gr.Textbox(label="Title column (optional)")
                    text_col = gr.Textbox(label="Text column (optional)")
                    upload = gr.Button("Use the uploaded file")
                with gr.Column():
                    dataset = gr.Textbox(label="Hub dataset id", placeholder="org/name")
                    config = gr.Textbox(label="Config (optional)")
                    split = gr.Textbox(label="Split", value="train")
                    cap = gr.Number(label=f"Max passages (up to {MAX_HUB_PASSAGES:,})", value=2000, precision=0)
                    hub = gr.Button("Load the dataset")
            with gr.Row():
                models = gr.CheckboxGroup(
                    dense_choices(self.service.dense), value=["retribert", "dpr", "realm"], label="Indexes to build"
                )
                build = gr.Button("Build indexes", variant="primary")
            # With its columns from the start: an empty table without them is a grid with no rows
            # (accessibility checkers flag it).
            # Wrapped: on a phone it fits the screen instead of scrolling inside itself.
            indexes = gr.Dataframe(pd.DataFrame(columns=INDEX_COLUMNS), label="Indexes", interactive=False, wrap=True)
            bundled.click(self.use_bundled, None, [corpus_ref, info], api_name="use_bundled_corpus", **hidden)
            # preprocess=False here too: Gradio's own preprocessing would download a URL a client names.
            upload.click(
                self.upload,
                [file, title_col, text_col],
                [corpus_ref, info],
                api_name="upload_corpus",
                preprocess=False,
                **hidden,
            )
            hub.click(
                self.load_hub_dataset,
                [dataset, config, split, cap],
                [corpus_ref, info],
                api_name="load_hub_dataset",
                preprocess=False,
                **hidden,
            )
            self.starts = [build.click]  # the events that start work (a corpus chosen: corpus_ref.change)
            build.click(
                self.build_indexes,
                [models, corpus_ref],
                indexes,
                api_name="build_indexes",
                preprocess=False,
                concurrency_id="build_indexes",
                concurrency_limit=None,  # the service's index-build line lets it in
            )
            self.info_output = info
