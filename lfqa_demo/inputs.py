"""Validating what callers and visitors pass in, with errors that name the offending argument or field."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

from .errors import InvalidInputError, InvalidTypeError


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


# -- what a visitor types: each rule and its message defined once ---------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab and line breaks, and DEL


def form_text(value: object, what: str, limit: int, *, required: bool = False) -> str:
    """A form field's text: None is empty; lone surrogates and control characters go; stripped;
    at most `limit` characters; `required` refuses an empty one."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInputError(f"The {what} must be text.")
    value = _CONTROL.sub("", clean_text(value)).strip()
    if required and not value:
        raise InvalidInputError(f"Type a {what} first.")
    if len(value) > limit:
        raise InvalidInputError(f"The {what} has {len(value):,} characters; the limit is {limit:,}.")
    return value


def whole_number(value: object, what: str, low: int, high: int) -> int:
    """A whole number from `low` to `high` (a slider's float, or a number typed as text)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidInputError(f"The {what} must be a whole number from {low} to {high}.") from None
    if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        # Before any float(): a JSON integer of 400 digits overflows it.
        shown = f"; it was {value}" if abs(value) < 10**6 else ""
        raise InvalidInputError(f"The {what} must be from {low} to {high}{shown}.")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise InvalidInputError(f"The {what} must be a whole number from {low} to {high}.")
    if not low <= value <= high:
        shown = f"; it was {int(value)}" if abs(value) < 1e6 else ""
        raise InvalidInputError(f"The {what} must be from {low} to {high}{shown}.")
    return int(value)


def chosen(value: object, allowed: Sequence[str], what: str, *, at_least_one: bool = True) -> tuple[str, ...]:
    """Names picked from `allowed` (one name or a list), each once, in the order given."""
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(v not in allowed for v in value):
        raise InvalidInputError(f"Choose {what} from: {', '.join(allowed)}.")
    if at_least_one and not value:
        raise InvalidInputError(f"Choose at least one of the {what}.")
    return tuple(dict.fromkeys(value))


def display_name(name: object) -> str:
    """A visitor's file name fit to show: text, no control or direction-override characters
    (U+202E could disguise an extension), at most 200 characters."""
    if not isinstance(name, str):
        return ""
    return "".join(ch for ch in clean_text(name) if unicodedata.category(ch) not in ("Cc", "Cf"))[:200]


def check_question(value: object, arg: str = "question") -> str:
    """A question: a string with more than white space in it."""
    value = check_text(value, arg)
    if not value.strip():
        raise InvalidInputError(f"{arg} is empty; type a question")
    return value
