"""Whether a passage holds a gold answer: the one rule behind every figure "by answer" (the
command line's and the app's evaluations) and every mark of an answer (a hit's "holds the gold
answer", the highlighted answer in a passage).

It is DPR's retrieval-accuracy test (Karpukhin et al., 2020; `has_answer` with match_type
"string" in facebookresearch/DPR, dpr/data/qa_validation.py), so that "R@20, answer" here
means what "top-20 accuracy" means in DPR's Table 2:

1. the passage's text and each answer are Unicode-normalised to NFD (so "Beyoncé" written with
   one code point for "é" and with "e" plus a combining accent are the same);
2. both are split by DPR's SimpleTokenizer (DrQA's): a token is a run of letters, digits and
   combining marks (Unicode L, N, M), or any other single character that is neither a separator
   nor a control (Unicode Z, C): "U.S." is four tokens "U", ".", "S", "."; "1,000" is three;
3. tokens are lower-cased (Python's str.lower, as DPR);
4. an answer matches when its token sequence occurs in the passage's token sequence: whole
   tokens only, so "art" is not found in "party", and "1,000" not in "11,000"; but "U.S" (tokens
   u . s) is found in "U.S." (u . s .), while "U.S." is not found in "U.S army".

Nothing else is removed: DPR's `has_answer` keeps articles and punctuation ("the Beatles" is
not found in "Beatles"). SQuAD's normalisation (lower-case, strip punctuation and the articles
a/an/the, squeeze spaces: DPR's `_normalize_answer`) is for comparing a *reader's* predicted
answer with the gold one (exact match); it is not how a *retrieved passage* is judged, and it
is not used here. DPR matches the passage text only, not its title; so do the callers.

One difference, on purpose: an answer with no tokens at all (empty, or only spaces) matches
nothing here, where DPR's loop would find the empty sequence in every passage. The QA readers
drop empty answers, so no real figure changes.

This rule replaced a case-insensitive substring test. On the bundled QA set both give the same
rank for every question with BM25 and with all-MiniLM-L6-v2 (bf16 and fp32), so the figures
tests/test_evaluation.py pins and docs/app.md shows did not move, and one rule serves every QA set.

The tokenizer needs Unicode categories that Python's `re` cannot name (`regex`'s \\p{L} is not a
dependency): its character classes are built once, on first use, from `unicodedata` (~0.3 s;
the Unicode version of this Python's `unicodedata`, which may differ from `regex`'s in new
characters only).
"""

from __future__ import annotations

import bisect
import functools
import re
import string
import sys
import unicodedata
from typing import Iterable

# Joins tokens into one string so that a token sequence is found by a substring search. It is a
# control character (Unicode Cc), which no token can hold, so a match always starts and ends at
# token boundaries: f"{SEP}{answer}{SEP}" in f"{SEP}{passage}{SEP}" is DPR's window comparison.
SEP = "\0"


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """DPR's SimpleTokenizer as a Python regex: `[\\p{L}\\p{N}\\p{M}]+|[^\\p{Z}\\p{C}]`, the
    categories spelled out as code point ranges (Python's `re` has no \\p{...})."""
    kinds = {"L": "word", "N": "word", "M": "word", "Z": "space", "C": "space"}  # C: also unassigned
    runs: dict[str, list[tuple[int, int]]] = {"word": [], "space": [], "other": []}
    kind, start = "other", 0
    for cp in range(sys.maxunicode + 1):
        now = kinds.get(unicodedata.category(chr(cp))[0], "other")
        if now != kind:
            runs[kind].append((start, cp - 1))
            kind, start = now, cp
    runs[kind].append((start, sys.maxunicode))
    return re.compile(f"[{_ranges(runs['word'])}]+|[^{_ranges(runs['space'])}]")


def _ranges(spans: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in spans)


def dpr_tokens(text: str) -> list[str]:
    """`text` as DPR compares it: NFD-normalised, split by SimpleTokenizer, lower-cased."""
    joined = _joined(text)
    return joined.split(SEP) if joined else []


def _joined(text: str) -> str:
    """dpr_tokens(text) joined by SEP. Lower-casing the joined string equals lower-casing each
    token: SEP is neither cased nor case-ignorable, so it ends the context of a final sigma."""
    return SEP.join(_token_pattern().findall(unicodedata.normalize("NFD", text))).lower()


def _answer_keys(answers: Iterable[str]) -> list[str]:
    """Each answer's tokens, joined and padded for the substring search; answers without tokens dropped."""
    return [f"{SEP}{key}{SEP}" for key in (_joined(a) for a in answers) if key]


def has_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether the passage `text` holds any of `answers`, by DPR's rule (see the module docstring)."""
    keys = _answer_keys(answers)
    if not keys:
        return False
    padded = f"{SEP}{_joined(text)}{SEP}"
    return any(key in padded for key in keys)


def answer_spans(text: str, answers: Iterable[str]) -> list[tuple[int, int]]:
    """Where `has_answer` finds `answers` in `text`, as (start, end) character offsets into `text`
    itself, in text order (for highlighting; overlapping matches are all listed). The same tokens
    and the same search: a span is found exactly when `has_answer` is true for that answer."""
    keys = _answer_keys(answers)
    if not keys or not text:
        return []
    nfd = unicodedata.normalize("NFD", text)
    matches = list(_token_pattern().finditer(nfd))
    tokens = [m.group().lower() for m in matches]  # one by one: lower() may lengthen a token ("İ")
    padded = f"{SEP}{SEP.join(tokens)}{SEP}"  # the string has_answer searches (see _joined)
    # Where each token starts in `padded`: a found key's position gives its first token.
    starts, at = [], 1
    for token in tokens:
        starts.append(at)
        at += len(token) + 1
    origin = _nfd_origin(text)
    spans = []
    for key in keys:
        count = key.count(SEP) - 1  # tokens in the answer
        found = padded.find(key)
        while found >= 0:
            first = bisect.bisect_left(starts, found + 1)
            last = matches[first + count - 1]
            spans.append((origin[matches[first].start()], origin[last.end() - 1] + 1))
            found = padded.find(key, found + 1)
    return sorted(set(spans))


def _nfd_origin(text: str) -> list[int]:
    """For each character of NFD(text), the index of the character of `text` it comes from.
    Canonical reordering only permutes combining marks of one cluster, so lengths add up."""
    origin = []
    for i, char in enumerate(text):
        origin += [i] * len(unicodedata.normalize("NFD", char))
    return origin


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as DPR's and SQuAD's scripts


def normalize_answer(text: str) -> str:
    """A predicted or gold answer as DPR's `_normalize_answer` (SQuAD's) compares them: lower-cased,
    ASCII punctuation removed, the articles a/an/the removed, spaces squeezed. For exact match only."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Iterable[str]) -> bool:
    """Whether a reader's `prediction` equals any gold answer after `normalize_answer` (DPR's and
    SQuAD's exact match); an answer that normalises to nothing matches nothing."""
    predicted = normalize_answer(prediction)
    return bool(predicted) and any(predicted == normalize_answer(a) for a in answers)
