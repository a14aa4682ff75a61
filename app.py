"""lfqa-demo: how neural retrievers and readers answer questions (Gradio app).

This file wires: it makes the service (lfqa_demo/service.py: the app's verbs over one engine per
corpus), builds the page from the tabs in ui/tabs/ and launches it. Every button calls one
service verb that scripts can call too; ui/ makes the words. Models load on first use (on the GPU
when there is one); the page comes up without loading any weights.
Run `python app.py` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) or `gradio app.py`.
"""

from __future__ import annotations

from ui.startup import persistent_storage, tame_malloc

persistent_storage()  # before gradio / huggingface_hub / datasets read HF_HOME
tame_malloc()

import logging  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from lfqa_demo.models import zerogpu  # noqa: E402
from lfqa_demo.service import READERS, Service  # noqa: E402
from lfqa_demo.sessions import default_registry  # noqa: E402
from lfqa_demo.warmup import WarmUp, warmup_enabled  # noqa: E402
from ui.assets import script, text  # noqa: E402
from ui.boundary import session  # noqa: E402
from ui.request_limits import clip_console  # noqa: E402
from ui.startup import launch_settings  # noqa: E402
from ui.tabs.answer import AnswerTab  # noqa: E402
from ui.tabs.compare import CompareTab  # noqa: E402
from ui.tabs.corpus import CorpusTab  # noqa: E402
from ui.tabs.embed import EmbedTab  # noqa: E402
from ui.tabs.evaluate import EvaluateTab  # noqa: E402
from ui.tabs.search import SearchApi  # noqa: E402
from ui.tabs.status import StatusPanel  # noqa: E402

# Two requests run at once (the machine has 2 cores); at most QUEUE_SIZE wait, past that a visitor
# is told the queue is full. Heavy work (evaluations, index builds, embeddings) never waits in this
# queue: the service's own lines let it in (lfqa_demo/admission.py).
CONCURRENCY = 2
QUEUE_SIZE = int(os.environ.get("LFQA_QUEUE_SIZE", "64"))
TAB_IDS = {
    "Retrieval comparison": "compare",
    "Answer extraction": "answer",
    "Question embedding": "embed",
    "Corpus": "corpus",
    "Evaluation": "evaluate",
    "About": "about",
}

# On ZeroGPU: import `spaces` now (main thread, before any CUDA use) and register its GPU function
# before launch; the backend then runs every model call in short, sized GPU calls. Elsewhere a no-op.
zerogpu.setup()

registry = default_registry()  # one engine per corpus (index cache: $LFQA_CACHE), shared by sessions
# Started after launch when LFQA_WARMUP=1 (the default on a Space): models, then the bundled
# corpus's indexes, in the background (lfqa_demo/warmup.py).
WARMUP = WarmUp(registry.default, ["retribert", "dpr", "realm"], READERS)
service = Service(registry, upload_dir=lambda: Path(gr.utils.get_upload_folder()), warmup=WARMUP)


def opened_tab(request: gr.Request):
    """The tab a link names (?tab=), or the comparison's when the link holds a question."""
    params = request.query_params if request is not None else {}
    tab = params.get("tab") if params.get("tab") in TAB_IDS.values() else ("compare" if params.get("q") else None)
    return gr.Tabs(selected=tab) if tab else gr.skip()


def release_session(request: gr.Request):
    """The visitor left: stop their heavy work, and drop their uploaded corpus (and stop its index
    builds) if nobody else uses it."""
    service.release(session(request))


def build_demo() -> gr.Blocks:
    """The whole app; building it loads no model."""
    compare, answer, status = CompareTab(service), AnswerTab(service), StatusPanel(service)
    working = [compare, answer, EmbedTab(service), CorpusTab(service), EvaluateTab(service)]
    with gr.Blocks(title="lfqa-demo: retrievers and readers side by side", delete_cache=(600, 3600)) as demo:
        corpus_ref = gr.State(registry.default_ref)
        gr.Markdown(text("header.md"), elem_id="page-header")
        status.build(corpus_ref)
        with gr.Tabs(elem_id="tabs") as tabs:
            for tab in working:
                tab.build(corpus_ref)
            with gr.Tab("About", id="about"):
                gr.Markdown(text("about.md"), elem_id="about")
        SearchApi(service).build()
        # "Read these passages" on a comparison: its question, retriever and k go to the Answer tab.
        handed = compare.read_button.click(
            answer.take_over,
            [compare.question, compare.k, compare.retrievers],
            [answer.question, answer.retriever, answer.k, answer.pasted, tabs],
            api_visibility="private",
            show_progress="hidden",
        )
        answer.answer_after(handed)
        # The status panel polls while something moves, and again once a visitor starts something.
        starts = [event for tab in working for event in tab.starts]
        status.resume_on([*starts, corpus_ref.change, compare.read_button.click])
        tabs.select(None, None, None, js=script("remember_tab", tab_ids=TAB_IDS))
        # A link with ?q=...&k=...&r=...&gold=...&tab=... opens that comparison (or tab).
        opened = demo.load(opened_tab, None, tabs, api_visibility="private")
        opened.then(None, None, None, js=script("accessible_widgets"))
        restored = opened.then(compare.restore, None, compare.inputs, api_visibility="private")
        compare.wire_link(restored, corpus_ref)
        demo.unload(release_session)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


demo = build_demo()

if __name__ == "__main__":
    clip_console()  # before logging takes its streams: no visitor's input becomes a giant log line
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo.launch(**launch_settings(service.lines.all()))
    if warmup_enabled():
        WARMUP.start()
    demo.block_thread()
