"""The README's examples run as written: a new user copies them first."""

from __future__ import annotations

import re
from pathlib import Path

from app_server import AppServer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_gradio_client_example_runs_against_the_real_app(hub_cache, tmp_path, monkeypatch):
    """Its last call (/evaluate on the bundled QA set) failed after /upload_corpus in the same session."""
    block = re.search(r"```python\n(from gradio_client import .*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "the README has no gradio_client example"
    server = AppServer(hub_cache, tmp_path)
    try:
        monkeypatch.chdir(README.parent)  # the example names assets/examples/notes.jsonl
        code = block.group(1).replace("http://127.0.0.1:7860/", server.url)
        names: dict = {}
        exec(compile(code, "README.md (gradio_client example)", "exec"), names)
        assert "QA set: <b>bundled QA set</b>" in names["summary_html"]
        dpr = names["status"]["indexes"]["dpr"]  # the uploaded corpus's index, built by /build_indexes
        assert (
            dpr["state"] == "ready" and dpr["done"] == dpr["total"] == 15 and names["status"]["corpus"] == "notes.jsonl"
        )
    finally:
        server.stop()
