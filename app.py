"""lfqa-demo: the Gradio app. A placeholder page until the app issue builds the tabs."""

from __future__ import annotations

import gradio as gr


def build_demo() -> gr.Blocks:
    """The Blocks tree; building it loads no model."""
    with gr.Blocks(title="lfqa-demo") as demo:
        gr.Markdown(
            "# lfqa-demo\n"
            "RetriBERT, DPR and REALM retrievers and readers, side by side, on today's PyTorch.\n\n"
            "The comparison and answer tabs are being built; the backend is in `lfqa_demo/`."
        )
    return demo


if __name__ == "__main__":
    build_demo().launch()
