"""Every model family, described once: the table the rest of the package asks.

A retriever family says how its inputs are laid out, how long they may be, which config fields
its head needs, whether questions and passages have checkpoints of their own, and what its
score means; a reader family says the same for (question, passage) rows. The modules
themselves (with the tensors each ignores) are the heads in `heads.py`. Adding a family means
one entry here and one head there.

Passage layouts (see the module docstring of retrievers.py for the resulting token rows):
- "pair":   [CLS] title [SEP] text [SEP] (a BERT sentence pair)
- "text":   [CLS] text [SEP]             (the title is not embedded)
- "joined": [CLS] title text [SEP]       (one text, as sentence-transformers indexes)
Token types "zeros" gives every token type 0; "segments" gives the second segment type 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch loads with the first model, not with the package
    from torch import nn

    from .bert import BertConfig

# (BERT config, the raw config.json, "question" or "passage") -> the head module
MakeHead = Callable[["BertConfig", dict, str], "nn.Module"]


def _config_int(raw: dict, key: str) -> int:
    from ..errors import CheckpointError

    if not isinstance(raw.get(key), int):
        raise CheckpointError(f"config.json lacks the integer field {key!r}")
    return raw[key]


def _dpr_encoder(config, raw, role):
    from .heads import DPREncoder

    return DPREncoder(config, "question_encoder" if role == "question" else "ctx_encoder")


def _retribert(config, raw, role):
    from .heads import RetriBert

    return RetriBert(config, _config_int(raw, "projection_dim"), bool(raw.get("share_encoders", True)))


def _realm_embedder(config, raw, role):
    from .heads import RealmEmbedder

    return RealmEmbedder(config, _config_int(raw, "retriever_proj_size"))


def _realm_openqa_embedder(config, raw, role):
    from .heads import RealmOpenQAEmbedder

    return RealmOpenQAEmbedder(config, _config_int(raw, "retriever_proj_size"))


def _sentence_encoder(config, raw, role):
    from .heads import SentenceEncoder

    return SentenceEncoder(config)


def _dpr_reader(config, raw, role):
    from .heads import DPRReaderModel

    return DPRReaderModel(config)


def _realm_reader(config, raw, role):
    from .heads import RealmReaderModel

    # eps 1e-3 (reader_layer_norm_eps), not BERT's 1e-12: ported from the TF original.
    return RealmReaderModel(config, _config_int(raw, "span_hidden_size"), float(raw.get("reader_layer_norm_eps", 1e-3)))


@dataclass(frozen=True)
class RetrieverFamily:
    name: str
    label: str
    make_head: MakeHead
    passage_layout: str  # "pair", "text" or "joined"
    passage_token_types: str  # "zeros" or "segments"
    max_length: int  # word pieces, special tokens included, questions and passages alike
    separate_checkpoints: bool = False  # True: questions and passages have checkpoints of their own (DPR)
    score: str = "dot product of question and passage vectors"


@dataclass(frozen=True)
class ReaderFamily:
    name: str
    label: str
    checkpoint: str  # the default hub repo
    make_head: MakeHead
    max_length: int
    trailing_sep: bool  # a [SEP] after the passage text
    token_types: str  # "zeros", or "segments" (type 1 from the title on)
    relevance: str  # what the passage relevance of an answer is


RETRIEVER_FAMILIES: dict[str, RetrieverFamily] = {
    f.name: f
    for f in (
        # The ELI5 code embedded passage text alone, without types; 128 pieces as it was trained.
        RetrieverFamily("retribert", "RetriBERT", _retribert, "text", "zeros", 128),
        # Original DPR (and RAG's indexing) used all-zero token types.
        RetrieverFamily("dpr", "DPR", _dpr_encoder, "pair", "zeros", 256, separate_checkpoints=True),
        # REALM's 288-piece blocks: a BERT pair, types 0 / 1.
        RetrieverFamily("realm", "REALM", _realm_embedder, "pair", "segments", 288),
        # REALM fine-tuned on NQ (RealmForOpenQA's embedder): its passages are the checkpoint's block_emb.
        RetrieverFamily("realm-orqa", "REALM open-QA", _realm_openqa_embedder, "pair", "segments", 288),
        # A mean-pooled sentence-transformers BERT; its sentence_bert_config.json max_seq_length wins.
        RetrieverFamily("sentence", "Sentence", _sentence_encoder, "joined", "zeros", 256),
    )
}

READER_FAMILIES: dict[str, ReaderFamily] = {
    f.name: f
    for f in (
        ReaderFamily(
            "dpr",
            "DPR",
            "facebook/dpr-reader-single-nq-base",
            _dpr_reader,
            350,
            False,
            "zeros",
            "DPR reader's relevance logit for the passage (passages are read in this order)",
        ),
        # 320 = REALM's 288-piece block + 32 question pieces.
        ReaderFamily(
            "realm",
            "REALM",
            "google/realm-orqa-nq-reader",
            _realm_reader,
            320,
            True,
            "segments",
            "retriever score REALM adds to the span logit (REALM embedder dot product)",
        ),
    )
}

BM25_SCORE = "BM25 score (term matches, higher is better)"
