"""Dense retrievers: tokenize -> encode -> pool/project, in length-sorted batches.

The families differ only in their inputs and head (see heads.py):

| family    | question input      | passage input                         | embedding            |
|-----------|---------------------|---------------------------------------|----------------------|
| DPR       | [CLS] q [SEP]       | [CLS] title [SEP] text [SEP], types 0 | h_CLS (768)          |
| RetriBERT | [CLS] q [SEP]       | [CLS] text [SEP] (no title)           | proj(pooler) (128)   |
| REALM     | [CLS] q [SEP]       | [CLS] title [SEP] text [SEP], types 0/1 | LN(dense(pooler)) (128) |
| sentence  | [CLS] q [SEP]       | [CLS] title text [SEP]                | mean pool, L2-normed |

Similarity is the plain dot product for all of them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..errors import InvalidInputError
from ..inputs import check_passages, check_texts
from . import calls
from .families import RETRIEVER_FAMILIES
from .hub import CheckpointFiles
from .tokenization import WordPieceTokenizer

if TYPE_CHECKING:  # torch is imported on first use, so that importing the package stays fast
    import torch

    from .zerogpu import ModelOrigin


Progress = Callable[[int, int], None]  # (items done, items in all)
# Padded tokens per forward pass: on 2 CPU cores ~1,000 keeps the activations in cache
# (bf16 BERT-base: 3,600 tokens/s at 8 x 130 against 2,700 at 64 x 130).
BATCH_TOKENS = 1024
TOKENIZE_CHUNK = 1024  # passages tokenized at once (see tokenize_passages)
EmbedFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]  # ids, mask, types -> (B, D)
# A retriever head (heads.py): `embed_questions` and `embed_passages`, each an EmbedFn, and `dim`.


@dataclass(frozen=True)
class RetrieverSpec:
    """Which checkpoints a retriever uses; `passage` defaults to `question` (RetriBERT, REALM)."""

    family: str
    question: str
    passage: str | None = None
    max_question_length: int | None = None
    max_passage_length: int | None = None

    def __post_init__(self) -> None:
        if self.family not in RETRIEVER_FAMILIES:
            raise InvalidInputError(f"family must be one of {tuple(RETRIEVER_FAMILIES)}, not {self.family!r}")
        for field in ("max_question_length", "max_passage_length"):
            value = getattr(self, field)
            if value is not None and not (isinstance(value, int) and 3 <= value <= 512):
                raise InvalidInputError(f"{field} must be an int from 3 to 512, not {value!r}")

    @property
    def passage_checkpoint(self) -> str:
        return self.passage or self.question


DEFAULT_RETRIEVERS = {
    "retribert": RetrieverSpec("retribert", "yjernite/retribert-base-uncased"),
    "dpr": RetrieverSpec(
        "dpr", "facebook/dpr-question_encoder-single-nq-base", "facebook/dpr-ctx_encoder-single-nq-base"
    ),
    "realm": RetrieverSpec("realm", "google/realm-cc-news-pretrained-embedder"),
    # A modern baseline: any mean-pooled sentence-transformers BERT works the same way.
    "minilm": RetrieverSpec("sentence", "sentence-transformers/all-MiniLM-L6-v2"),
}
# Retrievers known by name but not part of every engine: served where a corpus bundle holds their
# index (REALM's open-QA blocks, converted by retrieval/realm_openqa.py), and built only from given vectors.
BUNDLE_RETRIEVERS = {
    "realm-orqa": RetrieverSpec("realm-orqa", "google/realm-orqa-nq-openqa"),
}
NAMED_RETRIEVERS = {**DEFAULT_RETRIEVERS, **BUNDLE_RETRIEVERS}  # every retriever a name alone selects


class DenseRetriever:
    """A loaded dense retriever: `encode_questions` and `encode_passages` give float32 [n, dim] arrays."""

    origin: ModelOrigin | None = None  # set by load_retriever: how a ZeroGPU worker finds it

    def __init__(
        self,
        name: str,
        spec: RetrieverSpec,
        dim: int,
        question_side: tuple[WordPieceTokenizer, torch.nn.Module],
        passage_side: tuple[WordPieceTokenizer, torch.nn.Module | Callable[[], torch.nn.Module]],
        checkpoints: Sequence[CheckpointFiles],
        device: torch.device,
        dtype: torch.dtype,
        default_max_length: int | None = None,
    ):
        self.layout = RETRIEVER_FAMILIES[spec.family]
        default_max_length = default_max_length or self.layout.max_length
        self.name = name
        self.spec = spec
        self.family = spec.family
        self.dim = dim
        self.device = device
        self.dtype = dtype
        self.checkpoints = tuple(checkpoints)
        self.max_question_length = spec.max_question_length or default_max_length
        self.max_passage_length = spec.max_passage_length or default_max_length
        self.question_tokenizer, self.question_head = question_side
        # The passage module may come as a function that builds it: DPR's passage encoder is 440 MB
        # that a question-only caller (embedding, a server whose indexes are all ready) need not load.
        self.passage_tokenizer, passage = passage_side  # the same module when one checkpoint serves both
        self._passage_head = passage if hasattr(passage, "embed_passages") else None  # a module, or not yet
        self._make_passage_head = passage
        self._passage_lock = threading.Lock()

    @property
    def passage_head(self) -> torch.nn.Module:
        """The passage encoder (built on first use when it came as a function)."""
        if self._passage_head is None:
            with self._passage_lock:
                if self._passage_head is None:
                    self._passage_head = self._make_passage_head()
        return self._passage_head

    def __repr__(self) -> str:
        return f"DenseRetriever({self.name!r}, dim={self.dim}, device={self.device}, dtype={self.dtype})"

    # -- tokenization (public so the UI can show the word pieces) --------------------------
    def tokenize_questions(self, questions: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """(ids, token types) per question: `[CLS] q [SEP]`, types 0."""
        encs = self.question_tokenizer.encode(check_texts(questions, "questions"), max_length=self.max_question_length)
        return [(e.ids, [0] * len(e.ids)) for e in encs]

    def tokenize_passages(self, passages: Sequence[dict]) -> list[tuple[list[int], list[int]]]:
        """(ids, token types) per passage, in the family's original convention (module docstring).

        In chunks of TOKENIZE_CHUNK passages: the tokenizer's Encoding objects (offsets, word
        pieces as strings...) of a whole 20,000-passage upload took +1.2 GB at once; only the
        ids and token types are kept."""
        pairs = check_passages(passages)
        rows: list[tuple[list[int], list[int]]] = []
        for start in range(0, len(pairs), TOKENIZE_CHUNK):
            rows += self._tokenize_pairs(pairs[start : start + TOKENIZE_CHUNK])
        return rows

    def _tokenize_pairs(self, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        titles, texts = [t for t, _ in pairs], [x for _, x in pairs]
        tok, limit = self.passage_tokenizer, self.max_passage_length
        if self.layout.passage_layout == "text":
            encs = tok.encode(texts, max_length=limit)
        elif self.layout.passage_layout == "joined":
            encs = tok.encode([f"{title} {text}" if title else text for title, text in pairs], max_length=limit)
        else:  # "pair"
            encs = tok.encode(titles, texts, max_length=limit)
        if self.layout.passage_token_types == "segments":
            return [(e.ids, e.type_ids) for e in encs]
        return [(e.ids, [0] * len(e.ids)) for e in encs]

    # -- encoding -------------------------------------------------------------------------
    def encode_questions(
        self,
        questions: Sequence[str],
        *,
        batch_size: int = 64,
        batch_tokens: int = BATCH_TOKENS,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Embed questions: float32 array [len(questions), dim]."""
        rows = self.tokenize_questions(questions)
        return self._encode(rows, self.question_tokenizer, "question", batch_size, batch_tokens, progress)

    def encode_passages(
        self,
        passages: Sequence[dict],
        *,
        batch_size: int = 64,
        batch_tokens: int = BATCH_TOKENS,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Embed `{"title": ..., "text": ...}` passages: float32 array [len(passages), dim]."""
        rows = self.tokenize_passages(passages)
        return self._encode(rows, self.passage_tokenizer, "passage", batch_size, batch_tokens, progress)

    def _encode(
        self,
        rows: list[tuple[list[int], list[int]]],
        tokenizer: WordPieceTokenizer,
        side: str,
        batch_size: int,
        batch_tokens: int,
        progress: Progress | None,
    ) -> np.ndarray:
        """Embed token rows with the `side` ("question" or "passage") head, in the calls the
        seam groups the batches into (calls.py); `progress` runs between calls, here in the
        calling thread, so raising from it stops the work."""
        out = np.empty((len(rows), self.dim), dtype=np.float32)  # (n, dim)
        batches = length_batches([len(ids) for ids, _ in rows], batch_size, batch_tokens)
        done = 0
        for call in calls.call_groups(self, batches):
            padded = [tokenizer.pad([rows[i][0] for i in idx], [rows[i][1] for i in idx]) for idx in call]
            arrays = [(b.input_ids, b.attention_mask, b.token_type_ids) for b in padded]  # (B, L) each
            vectors = calls.forward(self, f"{side}_head", f"embed_{side}s", arrays)  # (B, dim) each
            for idx, v in zip(call, vectors):
                out[idx] = v
            done += sum(len(idx) for idx in call)
            if progress is not None:
                progress(done, len(rows))
        return out


def length_batches(lengths: Sequence[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first into batches of at most `batch_size` rows and about
    `batch_tokens` padded tokens: similar lengths waste little on padding, and the memory
    peak comes first rather than at the end of a long run."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if (
            batches
            and len(batches[-1]) < batch_size
            and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= batch_tokens
        ):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
