"""Answer readers: the raw logits of the DPR and REALM readers over (question, passages).

Inputs, per passage (L <= max_length):
- DPR:   [CLS] question [SEP] title [SEP] text          (no trailing [SEP]; types all 0)
- REALM: [CLS] question [SEP] title [SEP] text [SEP]    (types 0 for the question part, 1 after)

Questions are cut to `max_question_length` word pieces first, then the text is cut to fit.
Answer candidates are spans of the passage *text* only: never the question, the title or a
separator (the transformers DPR decoder could return title tokens, transformers issue 10375).
Span decoding into answer strings builds on these outputs (answers issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .heads import DPRReaderModel, RealmReaderModel
from .hub import CheckpointFiles
from .inputs import check_passages, check_text
from .tokenization import WordPieceTokenizer

READERS = ("dpr", "realm")
DEFAULT_READERS = {"dpr": "facebook/dpr-reader-single-nq-base", "realm": "google/realm-orqa-nq-reader"}
DEFAULT_MAX_LENGTH = {"dpr": 350, "realm": 320}  # original DPR reader: 350; REALM: 288 block + 32 question
DEFAULT_MAX_QUESTION_LENGTH = 64


@dataclass
class ReaderInputs:
    """Padded reader inputs for n passages, plus where each passage's text lies in its row.

    `char_offsets[i, t]` is the (start, end) character span in passage i's text of token t,
    or (-1, -1) for tokens outside the text. `text_spans[i]` = [first, last + 1) token index.
    """

    input_ids: np.ndarray  # [n, L]
    attention_mask: np.ndarray  # [n, L]
    token_type_ids: np.ndarray  # [n, L]
    char_offsets: np.ndarray  # [n, L, 2]
    text_spans: np.ndarray  # [n, 2]


@dataclass
class DPRReaderLogits:
    """Raw DPR reader outputs. `start`/`end` are per-token logits [n, L] (padding included);
    `relevance` [n] is the passage's relevance logit (the score to rank passages by)."""

    start: np.ndarray
    end: np.ndarray
    relevance: np.ndarray
    inputs: ReaderInputs


@dataclass
class RealmReaderLogits:
    """Raw REALM reader outputs over C candidate spans (width 1..max_span_width, inside the text):
    candidate c is tokens `start[c]..end[c]` (inclusive) of passage `passage[c]`'s row, and
    `logits[c]` is its span logit plus that passage's relevance score."""

    passage: np.ndarray  # [C] int64
    start: np.ndarray  # [C] int64
    end: np.ndarray  # [C] int64
    logits: np.ndarray  # [C] float32
    inputs: ReaderInputs


class _Reader:
    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        tokenizer: WordPieceTokenizer,
        files: CheckpointFiles,
        device: torch.device,
        dtype: torch.dtype,
        max_length: int | None = None,
        max_question_length: int | None = None,
    ):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.checkpoints = (files,)
        self.device = device
        self.dtype = dtype
        self.max_length = max_length or DEFAULT_MAX_LENGTH[name]
        self.max_question_length = max_question_length or DEFAULT_MAX_QUESTION_LENGTH

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, dtype={self.dtype}, max_length={self.max_length})"

    def build_inputs(self, question: str, passages: Sequence[dict]) -> ReaderInputs:
        """Token rows for (question, each passage), in this reader's layout (module docstring)."""
        question = check_text(question, "question")
        pairs = check_passages(passages)
        tok = self.tokenizer
        q_ids = tok.encode_plain([question])[0].ids[: self.max_question_length]
        titles = tok.encode_plain([t for t, _ in pairs])
        texts = tok.encode_plain([x for _, x in pairs])
        trailing = [tok.sep_id] if self.name == "realm" else []
        rows, types, offsets, spans = [], [], [], []
        for title, text in zip(titles, texts):
            head = [tok.cls_id, *q_ids, tok.sep_id, *title.ids, tok.sep_id]
            room = max(0, self.max_length - len(head) - len(trailing))
            body = text.ids[:room]
            row = (head + body + trailing)[: self.max_length]
            first = min(len(head), len(row))
            rows.append(row)
            # REALM: segment A = [CLS] q [SEP], segment B = the block; DPR: all 0.
            types.append([0] * len(row) if self.name == "dpr" else [0] * (len(q_ids) + 2) + [1] * (len(row) - len(q_ids) - 2))
            offs = np.full((len(row), 2), -1, dtype=np.int64)
            offs[first : first + len(body)] = np.asarray(text.offsets[: len(body)], dtype=np.int64).reshape(-1, 2)
            offsets.append(offs)
            spans.append((first, first + len(body)))
        batch = tok.pad(rows, types)
        char_offsets = np.full((len(rows), batch.input_ids.shape[1], 2), -1, dtype=np.int64)
        for i, offs in enumerate(offsets):
            char_offsets[i, : len(offs)] = offs
        return ReaderInputs(
            batch.input_ids, batch.attention_mask, batch.token_type_ids, char_offsets, np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        )

    def _tensors(self, inputs: ReaderInputs) -> list[torch.Tensor]:
        return [torch.from_numpy(a).to(self.device) for a in (inputs.input_ids, inputs.attention_mask, inputs.token_type_ids)]


class DPRReader(_Reader):
    """The DPR reader (`facebook/dpr-reader-single-nq-base`): span start/end logits and passage relevance."""

    model: DPRReaderModel

    def logits(self, question: str, passages: Sequence[dict], relevance_scores: Sequence[float] | None = None) -> DPRReaderLogits:
        """Raw logits for `question` over `passages`. DPR ranks passages by its own relevance
        logit, so `relevance_scores` (the retriever's) are accepted for symmetry and unused."""
        inputs = self.build_inputs(question, passages)
        if len(passages) == 0:
            empty = np.zeros((0, 0), dtype=np.float32)
            return DPRReaderLogits(empty, empty.copy(), np.zeros(0, dtype=np.float32), inputs)
        with torch.inference_mode():
            start, end, relevance = self.model(*self._tensors(inputs))
        as_np = lambda t: t.float().cpu().numpy()  # noqa: E731
        return DPRReaderLogits(as_np(start), as_np(end), as_np(relevance), inputs)


class RealmReader(_Reader):
    """The REALM open-QA reader (`google/realm-orqa-nq-reader`): a logit per candidate span."""

    model: RealmReaderModel

    def __init__(self, *args, max_span_width: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_span_width = max_span_width

    def candidates(self, inputs: ReaderInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(passage, start, end) of every span of width 1..max_span_width inside a passage text,
        ordered by passage, then width, then start (the reference's order within a passage)."""
        rows, starts, ends = [], [], []
        for i, (first, stop) in enumerate(inputs.text_spans):
            for width in range(1, self.max_span_width + 1):
                s = np.arange(first, stop - width + 1, dtype=np.int64)
                rows.append(np.full_like(s, i))
                starts.append(s)
                ends.append(s + width - 1)
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
        return cat(rows), cat(starts), cat(ends)

    def logits(self, question: str, passages: Sequence[dict], relevance_scores: Sequence[float] | None = None) -> RealmReaderLogits:
        """Span logits for `question` over `passages`, each plus its passage's relevance score
        (the retriever's dot product; 0 when `relevance_scores` is None)."""
        inputs = self.build_inputs(question, passages)
        n = len(inputs.input_ids)
        relevance = np.zeros(n, dtype=np.float32) if relevance_scores is None else np.asarray(relevance_scores, dtype=np.float32)
        if relevance.shape != (n,):
            raise ValueError(f"relevance_scores must hold one score per passage ({n}), got shape {relevance.shape}")
        rows, starts, ends = self.candidates(inputs)
        if len(rows) == 0:
            return RealmReaderLogits(rows, starts, ends, np.zeros(0, dtype=np.float32), inputs)
        index = [torch.from_numpy(a).to(self.device) for a in (rows, starts, ends)]
        with torch.inference_mode():
            span_logits = self.model(*self._tensors(inputs), *index).float().cpu().numpy()
        return RealmReaderLogits(rows, starts, ends, span_logits + relevance[rows], inputs)
