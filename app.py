"""lfqa-demo: how neural retrievers and readers answer questions (Gradio app).

UI only: every button calls one function of `lfqa_demo` that scripts can call too. Models load
on first use (on the GPU when there is one); the page comes up without loading any weights.
Run `python app.py` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) or `gradio app.py`.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import pandas as pd

import lfqa_demo
from lfqa_demo import render
from lfqa_demo.corpus import MAX_UPLOAD_BYTES, Corpus, corpus_from_file, corpus_from_hub, load_bundled_corpus, load_bundled_questions
from lfqa_demo.embedding import embed_texts
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import LfqaError

ASSETS = Path(__file__).parent / "assets"
MAX_QUESTION_CHARS = 2000
MAX_PASTED_CHARS = 50_000
COMPARE_CHOICES = [("RetriBERT", "retribert"), ("DPR", "dpr"), ("REALM", "realm"), ("BM25", "bm25"), ("MiniLM", "minilm")]
DENSE_CHOICES = [c for c in COMPARE_CHOICES if c[1] != "bm25"]

try:  # ZeroGPU on Hugging Face Spaces: model calls borrow a GPU; elsewhere a no-op.
    import spaces  # type: ignore[import-not-found]

    gpu = spaces.GPU if os.environ.get("SPACES_ZERO_GPU") else (lambda fn: fn)
except ImportError:
    def gpu(fn):
        return fn


# -- engines: one per corpus, shared by the sessions using that corpus ----------------------------
_engines: OrderedDict[str, RetrievalEngine] = OrderedDict()
_engines_lock = threading.Lock()
MAX_ENGINES = 4  # uploaded corpora kept in memory at once (least recently used dropped)


def _register(corpus: Corpus) -> str:
    with _engines_lock:
        key = corpus.fingerprint
        if key not in _engines:
            _engines[key] = RetrievalEngine(corpus, cache_dir=os.environ.get("LFQA_CACHE") or None)
        _engines.move_to_end(key)
        while len(_engines) > MAX_ENGINES:
            oldest = next(iter(_engines))
            if oldest == BUNDLED_KEY:
                _engines.move_to_end(oldest)
                oldest = next(iter(_engines))
            _engines.pop(oldest)
        return key


def engine_for(key: str) -> RetrievalEngine:
    """The engine of a session's corpus (the bundled one if it was dropped)."""
    with _engines_lock:
        return _engines.get(key) or _engines[BUNDLED_KEY]


BUNDLED_KEY = ""
BUNDLED_KEY = _register(load_bundled_corpus())
EXAMPLES = load_bundled_questions()


def user_errors(fn):
    """Turn what the user must fix (and models that cannot load) into a message in the page."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, LfqaError) as exc:
            raise gr.Error(str(exc)) from exc
    return wrapper


def _question(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise ValueError("Type a question first.")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(f"The question has {len(text):,} characters; the limit is {MAX_QUESTION_CHARS:,}.")
    return text


def _progress_for(progress: gr.Progress):
    return lambda name, done, total: progress(done / max(total, 1), desc=f"Indexing the corpus for {render.label(name)}: {done}/{total}")


# -- handlers: thin calls into lfqa_demo ------------------------------------------------------------
@gpu
@user_errors
def embed_questions(questions: str, passages: str, models: list[str], map_model: str, corpus_key: str, progress=gr.Progress()):
    """Word pieces, vectors, similarities and a 2-D map of the questions for each model."""
    lines = [q.strip() for q in (questions or "").splitlines() if q.strip()]
    if not lines:
        raise ValueError("Type at least one question (one per line).")
    if any(len(q) > MAX_QUESTION_CHARS for q in lines):
        raise ValueError(f"A question is longer than {MAX_QUESTION_CHARS:,} characters.")
    if len(passages or "") > MAX_PASTED_CHARS:
        raise ValueError(f"The passages are longer than {MAX_PASTED_CHARS:,} characters.")
    pasted = lfqa_demo.passages_from_text(passages or "")
    progress(0.1, desc="Embedding (models load on first use)")
    report = embed_texts(engine_for(corpus_key), lines[:20], pasted[:20], models or None)
    pieces, heatmaps, vector_rows, export = [], [], [], {"texts": report.texts, "kinds": report.kinds, "models": {}}
    for name, m in report.models.items():
        title = f"<h4>{render.esc(render.label(name))}</h4>"
        if m.error:
            pieces.append(f"{title}<div class='error'>Unavailable: {render.esc(m.error)}</div>")
            continue
        pieces.append(title + render.render_pieces(m.pieces, report.texts, m.norms, m.dim))
        heatmaps.append(render.render_heatmap(report.texts, m.similarity, f"{render.label(name)}: dot product (the retrieval score)"))
        for d, v in enumerate(m.vectors[0]):
            vector_rows.append({"dimension": d, "value": float(v), "model": render.label(name)})
        export["models"][name] = {"dim": m.dim, "vectors": m.vectors.round(6).tolist(), "pieces": m.pieces}
    chosen = report.models.get(map_model) or next((m for m in report.models.values() if not m.error), None)
    points = pd.DataFrame(chosen.map_points if chosen and not chosen.error else [], columns=["x", "y", "kind", "label"])
    path = Path(tempfile.mkdtemp(prefix="lfqa-embeddings-")) / "embeddings.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    vectors = pd.DataFrame(vector_rows, columns=["dimension", "value", "model"])
    return "".join(pieces), vectors, "".join(heatmaps) or "<div>No model could embed.</div>", points, str(path)


@gpu
@user_errors
def compare_retrievers(question: str, k: float, retrievers: list[str], gold_answer: str, corpus_key: str, progress=gr.Progress()):
    """Rank the corpus with each chosen retriever, side by side."""
    question = _question(question)
    if not retrievers:
        raise ValueError("Choose at least one retriever.")
    engine = engine_for(corpus_key)
    engine.build_indexes(retrievers, progress=_progress_for(progress))
    progress(0.95, desc="Searching")
    c = engine.compare(question, retrievers, int(k), (gold_answer or "").strip() or None)
    agreement = pd.DataFrame(render.agreement_rows(c), columns=["retriever", "other", f"overlap@{c.k}", "rank-biased overlap"])
    timings = pd.DataFrame(render.timing_rows(c), columns=["retriever", "encode ms", "search ms", "passages", "status"])
    return render.render_comparison(c), agreement, timings


@gpu
@user_errors
def extract_answers(question: str, retriever: str, readers: list[str], k: float, pasted: str, corpus_key: str, progress=gr.Progress()):
    """Retrieve passages (or use pasted ones) and read answers out of them."""
    question = _question(question)
    if not readers:
        raise ValueError("Choose at least one reader.")
    if len(pasted or "") > MAX_PASTED_CHARS:
        raise ValueError(f"The pasted text has {len(pasted):,} characters; the limit is {MAX_PASTED_CHARS:,}.")
    engine = engine_for(corpus_key)
    passages = lfqa_demo.passages_from_text(pasted) if (pasted or "").strip() else None
    if passages is None:
        engine.build_indexes([retriever], progress=_progress_for(progress))
    progress(0.9, desc="Reading (readers load on first use)")
    report = engine.answer(question, retriever, readers, int(k), passages=passages)
    timings = " · ".join(f"{name.replace('_', ' ')} {ms:.0f} ms" for name, ms in report.timings_ms.items())
    return render.render_answers(report), timings


def _corpus_info(key: str) -> str:
    corpus = engine_for(key).corpus
    titles = len({p.title for p in corpus})
    return f"**In use:** {render.esc(corpus.name)}: {len(corpus):,} passages, {titles:,} titles (fingerprint `{corpus.fingerprint[:12]}`)"


@user_errors
def use_bundled_corpus():
    """Switch this session back to the bundled corpus."""
    return BUNDLED_KEY, _corpus_info(BUNDLED_KEY)


@user_errors
def upload_corpus(file: dict | str | None, title_column: str, text_column: str):
    """Use an uploaded .jsonl/.json/.csv/.parquet/.txt/.md file as this session's corpus.

    Gradio already refuses paths a client names outside its upload folder; the check here
    keeps that true whatever Gradio version runs the app."""
    path = file.get("path") if isinstance(file, dict) else file
    if not path:
        raise ValueError("Choose a file to upload first.")
    if not Path(path).resolve().is_relative_to(Path(gr.utils.get_upload_folder()).resolve()):
        raise ValueError("Only files uploaded through this page can be used as a corpus.")
    name = (file.get("orig_name") if isinstance(file, dict) else None) or Path(path).name
    corpus = corpus_from_file(path, title_column=(title_column or "").strip() or None, text_column=(text_column or "").strip() or None,
                              name=name)
    key = _register(corpus)
    return key, _corpus_info(key)


@user_errors
def load_hub_dataset(dataset: str, config: str, split: str, max_passages: float):
    """Use a Hugging Face hub dataset (streamed, capped) as this session's corpus."""
    corpus = corpus_from_hub((dataset or "").strip(), (config or "").strip() or None, (split or "train").strip(),
                             max_passages=max(1, min(int(max_passages or 1000), 20_000)))
    key = _register(corpus)
    return key, _corpus_info(key)


@gpu
@user_errors
def build_indexes(retrievers: list[str], corpus_key: str, progress=gr.Progress()):
    """Build (or read from the cache) the dense indexes of this session's corpus."""
    engine = engine_for(corpus_key)
    built = engine.build_indexes(retrievers or None, progress=_progress_for(progress))
    rows = []
    for name, index in built.items():
        if isinstance(index, str):
            rows.append([render.label(name), "-", "-", "-", "-", f"failed: {index}"])
        else:
            rows.append([render.label(name), index.kind, f"{len(index):,} x {index.dim}", f"{index.nbytes / 1e6:.1f} MB",
                         f"{index.build_seconds:.1f}", "from cache" if index.from_cache else "built"])
    return pd.DataFrame(rows, columns=["retriever", "index", "vectors", "size", "build s", "status"])


def model_status():
    """Each model's state: not loaded, loading, ready (device, dtype) or failed (why)."""
    states = lfqa_demo.model_states()
    names = [f"retriever {n}" for _, n in DENSE_CHOICES] + ["reader dpr", "reader realm"]
    rows = [[n, states.get(n, "not loaded")] for n in names]
    return pd.DataFrame(rows, columns=["model", "state"])


# -- layout ---------------------------------------------------------------------------------------
def _examples(style: str | None = None, n: int = 6) -> list[str]:
    picked = [q for q in EXAMPLES if style is None or q.style == style]
    step = max(1, len(picked) // n)
    return [q.question for q in picked[::step][:n]]


def create_embedding_tab(corpus_key) -> None:
    with gr.Tab("Question embedding"):
        with gr.Row():
            questions_input = gr.Textbox(label="Questions (one per line)", lines=4, value="who led the normans?\nwhy is the sky blue?")
            passages_input = gr.Textbox(label="Passages to compare with (optional; blank lines separate them)", lines=4)
        with gr.Row():
            models_input = gr.CheckboxGroup(DENSE_CHOICES, value=["retribert", "dpr", "realm"], label="Models")
            map_model_input = gr.Dropdown(DENSE_CHOICES, value="dpr", label="Model for the 2-D map")
            embed_button = gr.Button("Embed", variant="primary")
        gr.Examples([[q] for q in _examples()], inputs=[questions_input], label="Example questions")
        pieces_output = gr.HTML(label="Word pieces")
        with gr.Row():
            vector_plot = gr.LinePlot(x="dimension", y="value", color="model", label="The first question's vector, per model", height=260)
            map_plot = gr.ScatterPlot(x="x", y="y", color="kind", tooltip=["label"], label="PCA map: your texts among corpus passages", height=260)
        heatmap_output = gr.HTML(label="Similarity")
        download_output = gr.File(label="Embeddings (JSON)")
        embed_button.click(embed_questions, [questions_input, passages_input, models_input, map_model_input, corpus_key],
                           [pieces_output, vector_plot, heatmap_output, map_plot, download_output], api_name="embed")


def create_retrieval_tab(corpus_key) -> None:
    with gr.Tab("Retrieval comparison"):
        with gr.Row():
            question_input = gr.Textbox(label="Question", scale=4, elem_id="compare-question")
            k_input = gr.Slider(1, 50, value=5, step=1, label="k (passages per retriever)")
        with gr.Row():
            retrievers_input = gr.CheckboxGroup(COMPARE_CHOICES, value=["retribert", "dpr", "realm", "bm25"], label="Retrievers")
            gold_input = gr.Textbox(label="Gold answer (optional: marks the passages that contain it)")
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
        gr.Examples([[q] for q in _examples("factoid")] + [[q] for q in _examples("eli5", 3)], inputs=[question_input], label="Example questions")
        results_output = gr.HTML(elem_id="compare-results")
        with gr.Row():
            agreement_output = gr.Dataframe(label="Agreement between retrievers (1 = same ranking)", interactive=False)
            timings_output = gr.Dataframe(label="Time per retriever", interactive=False)
        compare_button.click(compare_retrievers, [question_input, k_input, retrievers_input, gold_input, corpus_key],
                             [results_output, agreement_output, timings_output], api_name="compare")
        question_input.submit(compare_retrievers, [question_input, k_input, retrievers_input, gold_input, corpus_key],
                              [results_output, agreement_output, timings_output], api_visibility="private")


def create_answer_tab(corpus_key) -> None:
    with gr.Tab("Answer extraction"):
        with gr.Row():
            question_input = gr.Textbox(label="Question", scale=4, elem_id="answer-question")
            k_input = gr.Slider(1, 20, value=5, step=1, label="Passages to read")
        with gr.Row():
            retriever_input = gr.Dropdown(COMPARE_CHOICES, value="bm25", label="Retriever")
            readers_input = gr.CheckboxGroup([("DPR", "dpr"), ("REALM", "realm")], value=["dpr", "realm"], label="Readers")
            answer_button = gr.Button("Answer", variant="primary", elem_id="answer-button")
        pasted_input = gr.Textbox(label="Or paste passages to read instead (blank lines separate them)", lines=3, elem_id="answer-pasted")
        gr.Examples([[q] for q in _examples("factoid")], inputs=[question_input], label="Example questions")
        timings_output = gr.Markdown()
        answers_output = gr.HTML(elem_id="answer-results")
        answer_button.click(extract_answers, [question_input, retriever_input, readers_input, k_input, pasted_input, corpus_key],
                            [answers_output, timings_output], api_name="answer")


def create_corpus_tab(corpus_key) -> gr.Markdown:
    with gr.Tab("Corpus"):
        info_output = gr.Markdown(_corpus_info(BUNDLED_KEY))
        with gr.Row():
            with gr.Column():
                gr.Markdown("**Bundled corpus**: 552 original passages on 60 subjects (CC BY-SA 4.0).")
                bundled_button = gr.Button("Use the bundled corpus")
            with gr.Column():
                file_input = gr.File(label=f"Upload .jsonl, .json, .csv, .parquet, .txt or .md (up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                                     file_types=[".jsonl", ".json", ".csv", ".parquet", ".txt", ".md"], type="filepath")
                title_col = gr.Textbox(label="Title column (optional)")
                text_col = gr.Textbox(label="Text column (optional)")
                upload_button = gr.Button("Use the uploaded file")
            with gr.Column():
                dataset_input = gr.Textbox(label="Hub dataset id", placeholder="org/name")
                config_input = gr.Textbox(label="Config (optional)")
                split_input = gr.Textbox(label="Split", value="train")
                cap_input = gr.Number(label="Max passages", value=2000, precision=0)
                hub_button = gr.Button("Load the dataset")
        with gr.Row():
            index_models = gr.CheckboxGroup(DENSE_CHOICES, value=["retribert", "dpr", "realm"], label="Indexes to build")
            index_button = gr.Button("Build indexes", variant="primary")
        index_output = gr.Dataframe(label="Indexes", interactive=False)
        bundled_button.click(use_bundled_corpus, None, [corpus_key, info_output], api_name="use_bundled_corpus")
        upload_button.click(upload_corpus, [file_input, title_col, text_col], [corpus_key, info_output], api_name="upload_corpus")
        hub_button.click(load_hub_dataset, [dataset_input, config_input, split_input, cap_input], [corpus_key, info_output], api_name="load_hub_dataset")
        index_button.click(build_indexes, [index_models, corpus_key], index_output, api_name="build_indexes")
    return info_output


def build_demo() -> gr.Blocks:
    """The whole app; building it loads no model."""
    with gr.Blocks(title="lfqa-demo: retrievers and readers side by side") as demo:
        corpus_key = gr.State(BUNDLED_KEY)
        gr.Markdown((ASSETS / "header.md").read_text(encoding="utf-8"))
        with gr.Accordion("Model status", open=False):
            status_output = gr.Dataframe(model_status(), interactive=False, elem_id="model-status")
            refresh_button = gr.Button("Refresh", size="sm")
        create_retrieval_tab(corpus_key)
        create_answer_tab(corpus_key)
        create_embedding_tab(corpus_key)
        create_corpus_tab(corpus_key)
        with gr.Tab("About"):
            gr.Markdown((ASSETS / "about.md").read_text(encoding="utf-8"))
        refresh_button.click(model_status, None, status_output, api_name="model_status")
        gr.Timer(3).tick(model_status, None, status_output, api_visibility="private", show_progress="hidden")
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=2).launch(
        css_paths=[ASSETS / "app.css"],
        theme=gr.themes.Soft(),
        max_file_size=MAX_UPLOAD_BYTES,
        mcp_server=os.environ.get("GRADIO_MCP_SERVER", "").lower() in ("1", "true"),
    )
