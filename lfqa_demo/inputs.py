"""Validating what callers pass in, with errors that name the offending argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import InvalidTypeError


def clean_text(value: str) -> str:
    """`value` as text every encoder takes: a lone surrogate (possible in JSON and in Python
    strings, never in real text) becomes U+FFFD, and a surrogate pair split into two halves is
    joined. Every text a visitor sends passes through this at the door (names, corpus and QA
    files, form fields), so nothing downstream fails to encode it or breaks an event stream."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def check_text(value: object, arg: str) -> str:
    if not isinstance(value, str):
        raise InvalidTypeError(f"{arg} must be a string, not {type(value).__name__}")
    return value


def check_texts(values: object, arg: str) -> list[str]:
    """A list (or other sequence) of strings; a lone string is refused, it is not a list."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidTypeError(f"{arg} must be a list of strings, not {type(values).__name__}")
    return [check_text(v, f"{arg}[{i}]") for i, v in enumerate(values)]


def check_passages(values: object, arg: str = "passages") -> list[tuple[str, str]]:
    """A sequence of {"title": str (optional), "text": str} mappings, as (title, text) pairs."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise InvalidTypeError(
            f'{arg} must be a list of {{"title": ..., "text": ...}} dicts, not {type(values).__name__}'
        )
    pairs = []
    for i, p in enumerate(values):
        if not isinstance(p, Mapping):
            raise InvalidTypeError(f'{arg}[{i}] must be a {{"title": ..., "text": ...}} dict, not {type(p).__name__}')
        if "text" not in p:
            raise InvalidTypeError(f'{arg}[{i}] has no "text"')
        title = p.get("title")
        pairs.append(
            (
                "" if title is None else check_text(title, f'{arg}[{i}]["title"]'),
                check_text(p["text"], f'{arg}[{i}]["text"]'),
            )
        )
    return pairs
