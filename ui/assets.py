"""The page's files under assets/: help text (Markdown), JavaScript, CSS and the theme."""

from __future__ import annotations

import json
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def text(name: str) -> str:
    """A file under assets/ as text ("help/evaluation.md", "app.css")."""
    return (ASSETS / name).read_text(encoding="utf-8")


def script(name: str, **values: object) -> str:
    """A JavaScript function from assets/js/, with each __NAME__ placeholder set to `values`'
    entry as JSON."""
    source = text(f"js/{name}.js")
    for key, value in values.items():
        source = source.replace(f"__{key.upper()}__", json.dumps(value))
    return source
