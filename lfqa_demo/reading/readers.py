"""Answer readers: the raw logits of the DPR and REALM readers over (question, passages).

Inputs, per passage (L <= max_length):
- DPR:   [CLS] question [SEP] title [SEP] text          (no trailing [SEP]; types all 0)
- REALM: [CLS] question [SEP] title [SEP] text [SEP]    (types 0 for the question part, 1 after)

Questions are cut to `max_question_length` word pieces first, then the text is cut to fit.
Answer candidates are spans of the passage *text* only: never the question, the title or a
separator (the transformers DPR decoder could return title tokens, transformers issue 10375).
`read()` decodes the logits into answers with character offsets (see answers.py); it reads a
passage longer than the input in overlapping windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InvalidInputError
from ..inputs import check_passages, check_question, check_text
from ..models import calls
from ..models.hub import CheckpointFiles
from ..models.retrievers import DEFAULT_RETRIEVERS, DenseRetriever, RetrieverSpec
from ..models.tokenization import WordPieceTokenizer
from .answers import DEFAULT_MAX_ANSWER_TOKENS, Answer, ReadResult, decode_dpr, decode_realm, row_candidates

if TYPE_CHECKING:  # torch is imported on first use, so that importing the package stays fast
    import torch

    from ..models.families import ReaderFamily
    from ..models.heads import DPRReaderModel, RealmReaderModel
    from ..models.zerogpu import ModelOrigin

DEFAULT_MAX_QUESTION_LENGTH = 64
WINDOW_OVERLAP = 128  # word pieces shared by consecutive windows of a long passage (as HF's doc_stride)


@dataclass
class ReaderInputs:
    """Padded reader inputs: one row per passage, or per window of a long passage.

    `row_passage[r]` is the passage that row r reads. `char_offsets[r, t]` is the (start, end)
    character span of token t in that passage's text, (-1, -1) for tokens outside the text;
    `word_ids[r, t]` numbers the text's words (word pieces of one word share it), -1 outside.
    `text_spans[r]` = [first, last + 1) token index of the text in row r.
    """

    input_ids: np.ndarray  # [n, L]
    attention_mask: np.ndarray  # [n, L]
    token_type_ids: np.ndarray  # [n, L]
    char_offsets: np.ndarray  # [n, L, 2]
    text_spans: np.ndarray  # [n, 2]
    row_passage: np.ndarray  # [n]
    word_ids: np.ndarray  # [n, L]


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
    candidate c is tokens `start[c]..end[c]` (inclusive) of input row `row[c]`, which reads
    passage `passage[c]` (one row per passage unless long passages are windowed), and
    `logits[c]` is its span logit plus that passage's relevance score."""

    passage: np.ndarray  # [C] int64
    start: np.ndarray  # [C] int64
    end: np.ndarray  # [C] int64
    logits: np.ndarray  # [C] float32
    inputs: ReaderInputs
    row: np.ndarray | None = None  # [C] the input row (differs from `passage` for windowed passages)


def _windows(n: int, room: int, overlap: int | None) -> list[tuple[int, int]]:
    """[a, b) token ranges of a text of n word pieces: one cut at `room`, or overlapping windows."""
    if overlap is None or n <= room or room <= 0:
        return [(0, min(n, room))]
    step = max(1, room - min(overlap, room - 1))
    starts = [0]
    while starts[-1] + room < n:
        starts.append(starts[-1] + step)
    return [(a, min(a + room, n)) for a in starts]


class _Reader:
    origin: ModelOrigin | None = None  # set by load_reader: how a ZeroGPU worker finds it
    # The retriever whose passage scores this reader adds to its span scores (REALM's embedder),
    # or None: the caller loads it and hands it to `prior_relevance` (reading.loading.load_relevance_embedder).
    relevance_embedder: RetrieverSpec | None = None

    def __init__(
        self,
        family: ReaderFamily,
        model: torch.nn.Module,
        tokenizer: WordPieceTokenizer,
        files: CheckpointFiles,
        device: torch.device,
        dtype: torch.dtype,
        max_length: int | None = None,
        max_question_length: int | None = None,
        config: dict | None = None,
    ):
        self.family = family
        self.name = family.name
        self.model = model
        self.tokenizer = tokenizer
        self.checkpoints = (files,)
        self.device = device
        self.dtype = dtype
        self.max_length = max_length or family.max_length
        self.max_question_length = max_question_length or DEFAULT_MAX_QUESTION_LENGTH

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, dtype={self.dtype}, max_length={self.max_length})"

    def build_inputs(self, question: str, passages: Sequence[dict], *, overlap: int | None = None) -> ReaderInputs:
        """Token rows for (question, each passage), in this reader's layout (module docstring).

        With `overlap` None a passage longer than the input is cut; otherwise it is read in
        windows of the text that overlap by `overlap` word pieces, one row each.
        """
        return self._inputs(check_text(question, "question"), check_passages(passages), overlap)

    def _inputs(self, question: str, pairs: list[tuple[str, str]], overlap: int | None) -> ReaderInputs:
        """`build_inputs` of checked values: (title, text) pairs."""
        tok = self.tokenizer
        q_ids = tok.encode_plain([question])[0].ids[: self.max_question_length]
        titles = tok.encode_plain([t for t, _ in pairs])
        texts = tok.encode_plain([x for _, x in pairs])
        trailing = [tok.sep_id] if self.family.trailing_sep else []
        rows, types, offsets, words, spans, owners = [], [], [], [], [], []
        for index, (title, text) in enumerate(zip(titles, texts)):
            head = [tok.cls_id, *q_ids, tok.sep_id, *title.ids, tok.sep_id]
            room = max(0, self.max_length - len(head) - len(trailing))
            for a, b in _windows(len(text.ids), room, overlap):
                body = text.ids[a:b]
                row = (head + body + trailing)[: self.max_length]
                first = min(len(head), len(row))
                rows.append(row)
                # "segments" (REALM): segment A = [CLS] q [SEP], segment B = the block; "zeros" (DPR): all 0.
                segment_b = len(row) - len(q_ids) - 2 if self.family.token_types == "segments" else 0
                types.append([0] * (len(row) - segment_b) + [1] * segment_b)
                offs = np.full((len(row), 2), -1, dtype=np.int64)
                offs[first : first + len(body)] = np.asarray(text.offsets[a:b], dtype=np.int64).reshape(-1, 2)
                ids = np.full(len(row), -1, dtype=np.int64)
                ids[first : first + len(body)] = [-1 if w is None else w for w in text.word_ids[a:b]]
                offsets.append(offs)
                words.append(ids)
                spans.append((first, first + len(body)))
                owners.append(index)
        batch = tok.pad(rows, types)
        width = batch.input_ids.shape[1]
        char_offsets = np.full((len(rows), width, 2), -1, dtype=np.int64)
        word_ids = np.full((len(rows), width), -1, dtype=np.int64)
        for i, (offs, ids) in enumerate(zip(offsets, words)):
            char_offsets[i, : len(offs)] = offs
            word_ids[i, : len(ids)] = ids
        return ReaderInputs(
            batch.input_ids,
            batch.attention_mask,
            batch.token_type_ids,
            char_offsets,
            np.asarray(spans, dtype=np.int64).reshape(-1, 2),
            np.asarray(owners, dtype=np.int64),
            word_ids,
        )

    def prior_relevance(
        self,
        question: str,
        passages: Sequence[dict],
        retrieved_by: RetrieverSpec | None,
        retrieval_scores: Sequence[float],
        embedder: DenseRetriever | None = None,
    ) -> list[float] | None:
        """Passage relevance this reader adds to its span scores, or None: DPR scores passages itself."""
        return None

    def _forward(self, inputs: ReaderInputs, *extra: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """The model over the padded rows (plus `extra` index arrays): its float32 output(s) as
        numpy, through the one model-call seam (calls.forward: here, or one ZeroGPU call)."""
        arrays = (inputs.input_ids, inputs.attention_mask, inputs.token_type_ids, *extra)  # (n, L) each
        return calls.forward(self, "model", None, [arrays])[0]


class DPRReader(_Reader):
    """The DPR reader (`facebook/dpr-reader-single-nq-base`): span start/end logits and passage relevance."""

    model: DPRReaderModel

    def logits(
        self,
        question: str,
        passages: Sequence[dict],
        relevance_scores: Sequence[float] | None = None,
        *,
        overlap: int | None = None,
    ) -> DPRReaderLogits:
        """Raw logits for `question` over `passages` (rows: see ReaderInputs). DPR ranks passages by
        its own relevance logit, so `relevance_scores` (the retriever's) are accepted and unused."""
        return self._logits(self.build_inputs(question, passages, overlap=overlap))

    def _logits(self, inputs: ReaderInputs) -> DPRReaderLogits:
        if len(inputs.input_ids) == 0:
            empty = np.zeros((0, 0), dtype=np.float32)
            return DPRReaderLogits(empty, empty.copy(), np.zeros(0, dtype=np.float32), inputs)
        start, end, relevance = self._forward(inputs)
        return DPRReaderLogits(start, end, relevance, inputs)

    def read(
        self,
        question: str,
        passages: Sequence[dict],
        top_k: int = 5,
        max_answer_tokens: int | None = None,
        relevance_scores: Sequence[float] | None = None,
    ) -> ReadResult:
        """The best `top_k` answers, decoded as the original DPR does (see lfqa_demo.reading.answers)."""
        kept, pairs, reason = _readable(question, passages, top_k)
        if reason:
            return ReadResult([], reason)
        out = self._logits(self._inputs(question, [pairs[i] for i in kept], WINDOW_OVERLAP))
        texts = [passages[i]["text"] for i in kept]
        answers = decode_dpr(
            out.start, out.end, out.relevance, out.inputs, texts, top_k, max_answer_tokens or DEFAULT_MAX_ANSWER_TOKENS
        )
        return _renumber(answers, kept, "the passages left no room for an answer span")


class RealmReader(_Reader):
    """The REALM open-QA reader (`google/realm-orqa-nq-reader`): a logit per candidate span."""

    model: RealmReaderModel
    relevance_embedder = DEFAULT_RETRIEVERS["realm"]  # REALM was trained with this retriever's scores

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_span_width = int((kwargs.get("config") or {}).get("max_span_width", 10))

    def prior_relevance(
        self,
        question: str,
        passages: Sequence[dict],
        retrieved_by: RetrieverSpec | None,
        retrieval_scores: Sequence[float],
        embedder: DenseRetriever | None = None,
    ) -> list[float]:
        """REALM adds the retriever score to each span logit, as it was trained: the REALM embedder's
        dot products, from the retrieval when that embedder retrieved these passages, else computed
        for them with `embedder`, which the caller loads (`load_relevance_embedder`) and hands in."""
        if retrieved_by == self.relevance_embedder:
            return list(retrieval_scores)
        if embedder is None or embedder.spec != self.relevance_embedder:
            raise InvalidInputError(
                f"REALM's passage relevance needs the {self.relevance_embedder.question} embedder for passages "
                f"it did not retrieve, not {embedder!r}"
            )
        q = embedder.encode_questions([question])[0]  # (dim,)
        return (embedder.encode_passages(passages) @ q).tolist()  # (n, dim) @ (dim,) -> (n,)

    def candidates(self, inputs: ReaderInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, start, end) of every span of width 1..max_span_width inside a row's text,
        ordered by row, then width, then start (the reference's order within a row)."""
        rows, starts, ends = [], [], []
        for i, (first, stop) in enumerate(inputs.text_spans):
            s, e = row_candidates(int(first), int(stop), self.max_span_width)
            rows.append(np.full(len(s), i, dtype=np.int64))
            starts.append(s.astype(np.int64))
            ends.append(e.astype(np.int64))
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
        return cat(rows), cat(starts), cat(ends)

    def logits(
        self,
        question: str,
        passages: Sequence[dict],
        relevance_scores: Sequence[float] | None = None,
        *,
        overlap: int | None = None,
    ) -> RealmReaderLogits:
        """Span logits for `question` over `passages`, each plus its passage's relevance score
        (the retriever's dot product; 0 when `relevance_scores` is None)."""
        inputs = self.build_inputs(question, passages, overlap=overlap)
        n = len(passages)
        return self._logits(inputs, self._relevance(relevance_scores, n))

    @staticmethod
    def _relevance(relevance_scores: Sequence[float] | None, n: int) -> np.ndarray:
        """The retriever's scores as float32 [n] (0 without them)."""
        relevance = (
            np.zeros(n, dtype=np.float32)
            if relevance_scores is None
            else np.asarray(relevance_scores, dtype=np.float32)
        )
        if relevance.shape != (n,):
            raise InvalidInputError(
                f"relevance_scores must hold one score per passage ({n}), got shape {relevance.shape}"
            )
        return relevance

    def _logits(self, inputs: ReaderInputs, relevance: np.ndarray) -> RealmReaderLogits:
        rows, starts, ends = self.candidates(inputs)
        passage = inputs.row_passage[rows]
        if len(rows) == 0:
            return RealmReaderLogits(passage, starts, ends, np.zeros(0, dtype=np.float32), inputs, rows)
        span_logits = self._forward(inputs, rows, starts, ends)
        return RealmReaderLogits(passage, starts, ends, span_logits + relevance[passage], inputs, rows)

    def read(
        self,
        question: str,
        passages: Sequence[dict],
        top_k: int = 5,
        max_answer_tokens: int | None = None,
        relevance_scores: Sequence[float] | None = None,
    ) -> ReadResult:
        """The best `top_k` answers across passages, REALM's way (see lfqa_demo.reading.answers); give
        the retriever's scores as `relevance_scores` to add them as REALM does."""
        kept, pairs, reason = _readable(question, passages, top_k)
        if reason:
            return ReadResult([], reason)
        relevance = self._relevance(relevance_scores, len(pairs))[kept]
        out = self._logits(self._inputs(question, [pairs[i] for i in kept], WINDOW_OVERLAP), relevance)
        width = min(max_answer_tokens or self.max_span_width, self.max_span_width)
        texts = [passages[i]["text"] for i in kept]
        answers = decode_realm(
            out.passage, out.row, out.start, out.end, out.logits, relevance, out.inputs, texts, top_k, width
        )
        return _renumber(answers, kept, "the passages left no room for an answer span")


def _readable(question: object, passages: object, top_k: object) -> tuple[list[int], list[tuple[str, str]], str | None]:
    """`read`'s input checked once: the indices of passages worth reading, every passage as a
    (title, text) pair, and the reason there is nothing to read (or None)."""
    check_question(question)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidInputError(f"top_k must be a positive integer, not {top_k!r}")
    pairs = check_passages(passages)
    kept = [i for i, (_, text) in enumerate(pairs) if text.strip()]
    if not pairs:
        return [], pairs, "no passages to read"
    if not kept:
        return [], pairs, "every passage is empty or whitespace"
    return kept, pairs, None


def _renumber(answers: list[Answer], kept: list[int], reason: str) -> ReadResult:
    """Map passage indices from the read subset back to the caller's list."""
    for a in answers:
        a.passage_index = kept[a.passage_index]
        a.sources = [(kept[p], s, e) for p, s, e in a.sources]
    return ReadResult(answers, None if answers else reason)


READER_CLASSES: dict[str, type[_Reader]] = {"dpr": DPRReader, "realm": RealmReader}  # by family name
