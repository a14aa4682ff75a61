"""Turning reader logits into answers with character-exact offsets.

Rules (tested against a direct implementation in tests/test_answers.py):
- Candidates are spans of passage *text* tokens, at most `max_answer_tokens` word pieces.
- DPR (Karpukhin et al., 2020; the original `get_best_spans`): a span scores start[i] + end[j].
  Passages are taken in order of DPR's relevance logit (the max over a long passage's
  windows). In each, spans are taken best first, skipping any span nested in (or around) a
  span already taken. The answers list the best span of each passage in relevance order,
  then the second-best spans, and so on; the first answer is exactly DPR's prediction.
  confidence = P(passage) * P(span | passage): a softmax over the passages' relevance logits
  times a softmax over all candidate spans of that passage.
- REALM (Guu et al., 2020): a span scores its reader logit plus the retriever's relevance
  score of its passage; answers are the best candidates across all passages (the first is
  REALM's prediction), with the same nested-span rule within a passage.
  confidence = a softmax over every candidate span of every passage.
- Spans are widened to whole words (DPR's `_extend_span_to_full_words`), then mapped to
  character offsets through the tokenizer's offset mapping, never by searching the string:
  `passages[i]["text"][start:end] == text` always holds.
- The same answer text (ignoring case and spacing) from several places is listed once, with
  every place in `sources` and their confidences summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

DEFAULT_MAX_ANSWER_TOKENS = 10  # as the original DPR and REALM's max_span_width


@dataclass
class Answer:
    """One answer. `start`/`end` are character offsets into `passages[passage_index]["text"]`."""

    text: str
    passage_index: int
    start: int
    end: int
    score: float  # the reader's span score: DPR start + end logits; REALM's span logit
    relevance: float  # the passage's relevance: DPR's relevance logit; for REALM the retriever score it adds
    confidence: float  # in [0, 1]; see the module docstring
    sources: list[tuple[int, int, int]] = field(default_factory=list)  # (passage_index, start, end), this one first


@dataclass
class ReadResult:
    """Answers best first; `reason` says why there are none when the list is empty. `no_answer`
    (a calibration.NoAnswer), when set, is the verdict that the passages hold no answer: the
    answers are then the candidates the reader rejected."""

    answers: list[Answer]
    reason: str | None = None
    no_answer: object | None = None

    @property
    def answered(self) -> bool:
        """True when there is an answer to give: candidates, and no "no answer" verdict."""
        return bool(self.answers) and self.no_answer is None

    def __iter__(self) -> Iterator[Answer]:
        return iter(self.answers)

    def __len__(self) -> int:
        return len(self.answers)

    def __getitem__(self, i: int) -> Answer:
        return self.answers[i]


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    e = np.exp(x - x.max())
    return e / e.sum()


def row_candidates(first: int, stop: int, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) token spans with first <= i <= j < stop and j - i < max_tokens."""
    starts, ends = [], []
    for width in range(1, max_tokens + 1):
        s = np.arange(first, stop - width + 1)
        starts.append(s)
        ends.append(s + width - 1)
    return (np.concatenate(starts), np.concatenate(ends)) if starts else (np.zeros(0, int), np.zeros(0, int))


def drop_nested(spans: list[tuple[int, int, float]], limit: int | None = None) -> list[tuple[int, int, float]]:
    """Best-first spans, skipping any that contains or lies within one already kept."""
    kept: list[tuple[int, int, float]] = []
    for i, j, score in spans:
        if any(a <= i <= j <= b or i <= a <= b <= j for a, b, _ in kept):
            continue
        kept.append((i, j, score))
        if limit is not None and len(kept) >= limit:
            break
    return kept


def widen_to_words(i: int, j: int, word_ids: np.ndarray) -> tuple[int, int]:
    """Grow a token span so it starts and ends on word boundaries (word pieces of one word share an id)."""
    while i > 0 and word_ids[i - 1] >= 0 and word_ids[i - 1] == word_ids[i]:
        i -= 1
    while j + 1 < len(word_ids) and word_ids[j + 1] >= 0 and word_ids[j + 1] == word_ids[j]:
        j += 1
    return i, j


def merge_same_text(answers: list[Answer], top_k: int) -> list[Answer]:
    """One entry per answer text (case- and space-insensitive), in first-seen order."""
    merged: dict[str, Answer] = {}
    for a in answers:
        key = " ".join(a.text.casefold().split())
        if not key:
            continue
        if key in merged:
            first = merged[key]
            if (a.passage_index, a.start, a.end) not in first.sources:
                first.sources.append((a.passage_index, a.start, a.end))
                first.confidence = min(1.0, first.confidence + a.confidence)
            continue
        if len(merged) < top_k:
            a.sources = [(a.passage_index, a.start, a.end)]
            merged[key] = a
    return list(merged.values())


def _answer(text_of, row: int, i: int, j: int, inputs, score: float, relevance: float, confidence: float) -> Answer:
    i, j = widen_to_words(i, j, inputs.word_ids[row])
    passage = int(inputs.row_passage[row])
    start, end = int(inputs.char_offsets[row, i, 0]), int(inputs.char_offsets[row, j, 1])
    return Answer(text_of(passage)[start:end], passage, start, end, float(score), float(relevance), float(confidence))


def decode_dpr(
    start: np.ndarray, end: np.ndarray, relevance: np.ndarray, inputs, texts: list[str], top_k: int, max_tokens: int
) -> list[Answer]:
    """DPR answers from per-row start/end [rows, L] and relevance [rows] logits (module docstring)."""
    n_passages = len(texts)
    rows_of = [np.flatnonzero(inputs.row_passage == p) for p in range(n_passages)]
    passage_rel = np.array([relevance[r].max() if len(r) else -np.inf for r in rows_of])
    p_passage = softmax(passage_rel[np.isfinite(passage_rel)])
    p_of = dict(zip(np.flatnonzero(np.isfinite(passage_rel)), p_passage))
    order = [int(p) for p in np.argsort(-passage_rel, kind="stable") if np.isfinite(passage_rel[p])]
    per_passage: list[list[Answer]] = []
    for p in order:
        cands = []  # (score, row, i, j)
        for r in rows_of[p]:
            first, stop = inputs.text_spans[r]
            i, j = row_candidates(int(first), int(stop), max_tokens)
            cands += [(float(start[r, a] + end[r, b]), int(r), int(a), int(b)) for a, b in zip(i, j)]
        if not cands:
            continue
        cands.sort(key=lambda c: -c[0])
        p_span = softmax(np.array([c[0] for c in cands]))
        kept, taken = [], []
        for (score, r, i, j), prob in zip(cands, p_span):
            # Nested-span rule within the passage; spans of different windows compare by characters.
            ci, cj = widen_to_words(i, j, inputs.word_ids[r])
            span = (int(inputs.char_offsets[r, ci, 0]), int(inputs.char_offsets[r, cj, 1]))
            if any(a <= span[0] <= span[1] <= b or span[0] <= a <= b <= span[1] for a, b in taken):
                continue
            taken.append(span)
            kept.append(_answer(lambda q: texts[q], r, i, j, inputs, score, passage_rel[p], p_of[p] * prob))
            if len(kept) >= top_k:
                break
        per_passage.append(kept)
    interleaved = [lst[n] for n in range(top_k) for lst in per_passage if n < len(lst)]
    return merge_same_text(interleaved, top_k)


def decode_realm(
    passage: np.ndarray,
    row: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    logits: np.ndarray,
    relevance: np.ndarray,
    inputs,
    texts: list[str],
    top_k: int,
    max_tokens: int,
) -> list[Answer]:
    """REALM answers from candidate spans (logits already include relevance; module docstring)."""
    keep = (ends - starts) < max_tokens
    passage, row, starts, ends, logits = passage[keep], row[keep], starts[keep], ends[keep], logits[keep]
    if not len(logits):
        return []
    probs = softmax(logits)
    taken: dict[int, list[tuple[int, int]]] = {}
    answers = []
    for c in np.argsort(-logits, kind="stable"):
        r, i, j, p = int(row[c]), int(starts[c]), int(ends[c]), int(passage[c])
        ci, cj = widen_to_words(i, j, inputs.word_ids[r])
        span = (int(inputs.char_offsets[r, ci, 0]), int(inputs.char_offsets[r, cj, 1]))
        spans = taken.setdefault(p, [])
        if any(a <= span[0] <= span[1] <= b or span[0] <= a <= b <= span[1] for a, b in spans):
            continue
        spans.append(span)
        answers.append(_answer(lambda q: texts[q], r, i, j, inputs, logits[c] - relevance[p], relevance[p], probs[c]))
        if len({" ".join(a.text.casefold().split()) for a in answers}) >= top_k:
            break
    return merge_same_text(answers, top_k)
