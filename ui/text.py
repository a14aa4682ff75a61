"""The smallest pieces of the page's words: a model's shown name, escaping, and messages with
no server path in them. Every other module of ui/ builds on these."""

from __future__ import annotations

import html
import re

LABELS = {
    "retribert": "RetriBERT",
    "dpr": "DPR",
    "realm": "REALM",
    "realm-orqa": "REALM open-QA",
    "bm25": "BM25",
    "minilm": "MiniLM",
    "sentence": "Sentence",
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# An absolute path of two or more parts, not inside a URL or a repo id ("org/name").
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+~-]+)+/([\w.@+~-]+)")


def public_message(message: str) -> str:
    """A message fit to show a web visitor: server paths cut to their last part ("…/hub")."""
    return _SERVER_PATH.sub(lambda m: "…/" + m.group(1), message)
