"""Each model family's modules around the shared BERT trunk.

Attribute paths equal the hub checkpoints' state-dict keys (see the team's checkpoint notes,
`shared/reference/checkpoints.md` beside the project, and transformers 4.40.2 `modeling_dpr.py`,
`modeling_realm.py`, `deprecated/retribert/modeling_retribert.py`), so loading is a strict
one-to-one copy. `IGNORED` lists, per class, the tensors the files carry that
the family never uses.

One contract per role. A retriever head has `embed_questions` and `embed_passages`, each
(input_ids, attention_mask, token_type_ids) -> (B, dim), and `dim`; a family whose two sides
share weights (RetriBERT, REALM, sentence encoders) serves both from one module. A reader head
has `forward`. Which head a family uses is in families.py.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from .bert import BertConfig, BertModel


class _BertHolder(nn.Module):
    """DPR wraps its BERT one level deeper: `<role>.bert_model.*`."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert_model = BertModel(config, add_pooler=False)


class DPREncoder(nn.Module):
    """DPR question (`question_encoder`) or passage (`ctx_encoder`) encoder.

    Embedding = last-layer hidden state of [CLS]; no pooler, projection or normalisation.
    """

    IGNORED = ("*.bert_model.pooler.dense.*",)  # in the files, unused by DPR

    def __init__(self, config: BertConfig, role: str):
        super().__init__()
        if role not in ("question_encoder", "ctx_encoder"):
            raise ValueError(f"role must be 'question_encoder' or 'ctx_encoder', not {role!r}")
        self.role = role
        self.add_module(role, _BertHolder(config))

    @property
    def dim(self) -> int:
        return getattr(self, self.role).bert_model.config.hidden_size

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = getattr(self, self.role).bert_model(
            input_ids, attention_mask, token_type_ids, cls_only=True
        )  # (B, 1, H)
        return hidden[:, 0]  # (B, H)

    embed_questions = embed_passages = forward  # each DPR checkpoint is one side


class RetriBert(nn.Module):
    """RetriBERT (ELI5): BERT pooler output, then a bias-free projection per side (768 -> 128).

    With `share_encoders` (the published checkpoint) passages also go through `bert_query`.
    """

    IGNORED: tuple[str, ...] = ()

    def __init__(self, config: BertConfig, projection_dim: int, share_encoders: bool):
        super().__init__()
        self.bert_query = BertModel(config)
        self.bert_doc = None if share_encoders else BertModel(config)
        self.project_query = nn.Linear(config.hidden_size, projection_dim, bias=False)
        self.project_doc = nn.Linear(config.hidden_size, projection_dim, bias=False)

    @property
    def dim(self) -> int:
        return self.project_query.out_features

    @staticmethod
    def _pooled(bert: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # RetriBERT passed no token types, so they are all 0.
        return bert.pooler(bert(input_ids, attention_mask, cls_only=True))  # (B, H)

    def embed_questions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.project_query(self._pooled(self.bert_query, input_ids, attention_mask))  # (B, P)

    def embed_passages(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        bert = self.bert_doc if self.bert_doc is not None else self.bert_query
        return self.project_doc(self._pooled(bert, input_ids, attention_mask))  # (B, P)


class RealmScorerProjection(nn.Module):
    def __init__(self, config: BertConfig, proj_size: int):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, proj_size)
        self.LayerNorm = nn.LayerNorm(proj_size, eps=config.layer_norm_eps)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(pooled))  # (B, P)


class RealmEmbedder(nn.Module):
    """REALM embedder: LayerNorm(dense(pooler(h_CLS))) -> 128, the same for questions and passages."""

    IGNORED = ("cls.predictions.*",)  # the masked-LM head used in pre-training

    def __init__(self, config: BertConfig, proj_size: int):
        super().__init__()
        self.realm = BertModel(config)
        self.cls = RealmScorerProjection(config, proj_size)

    @property
    def dim(self) -> int:
        return self.cls.dense.out_features

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.cls(self.realm.pooler(self.realm(input_ids, attention_mask, token_type_ids, cls_only=True)))

    embed_questions = embed_passages = forward  # one embedder for both sides


class RealmOpenQAEmbedder(nn.Module):
    """REALM's NQ-fine-tuned question embedder, as RealmForOpenQA holds it under `embedder.`
    (google/realm-orqa-nq-openqa). Its passages are that file's `block_emb`, made by REALM's
    frozen pre-trained block encoder, not by this embedder: they are given to a bundle build
    (`--vectors`), never encoded here."""

    IGNORED = ("embedder.cls.predictions.*", "reader.*", "block_emb")  # the MLM head, the reader, the blocks

    def __init__(self, config: BertConfig, proj_size: int):
        super().__init__()
        self.embedder = RealmEmbedder(config, proj_size)

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed_questions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.embedder(input_ids, attention_mask, token_type_ids)  # (B, proj_size)

    def embed_passages(self, *args) -> torch.Tensor:
        raise CheckpointError(
            "REALM open-QA's passages are its checkpoint's block_emb: convert them with "
            "`python -m lfqa_demo convert-realm-openqa` and build with --vectors realm-orqa=BLOCK_EMB.npy"
        )


class SentenceEncoder(BertModel):
    """A plain BERT checkpoint used as a sentence embedder (sentence-transformers layout, keys at
    the root, e.g. all-MiniLM-L6-v2): mean of the last hidden states over real tokens, L2-normalised."""

    IGNORED = ("pooler.dense.*",)  # BertModel's pooler, unused by mean pooling

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooler=False)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, H)
        return torch.nn.functional.normalize(mean, dim=-1)

    embed_questions = embed_passages = embed  # one text, one embedding


class DPRSpanPredictor(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.encoder = _BertHolder(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.qa_classifier = nn.Linear(config.hidden_size, 1)


class DPRReaderModel(nn.Module):
    """DPR reader: start/end logits per token and a relevance logit per passage from h_CLS."""

    IGNORED = ("*.bert_model.pooler.dense.*",)

    def __init__(self, config: BertConfig):
        super().__init__()
        self.span_predictor = DPRSpanPredictor(config)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sp = self.span_predictor
        hidden = sp.encoder.bert_model(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        start, end = sp.qa_outputs(hidden).unbind(-1)  # (B, T) each
        relevance = sp.qa_classifier(hidden[:, 0]).squeeze(-1)  # (B,)
        return start, end, relevance


class RealmReaderProjection(nn.Module):
    def __init__(self, config: BertConfig, span_hidden_size: int, eps: float):
        super().__init__()
        self.dense_intermediate = nn.Linear(config.hidden_size, span_hidden_size * 2)
        self.dense_output = nn.Linear(span_hidden_size, 1)
        self.layer_normalization = nn.LayerNorm(span_hidden_size, eps=eps)


class RealmReaderModel(nn.Module):
    """REALM reader: a span's logit = w . LN(relu(start_proj[s] + end_proj[e])) + b."""

    IGNORED = ("cls.predictions.*", "realm.pooler.dense.*")

    def __init__(self, config: BertConfig, span_hidden_size: int, reader_eps: float):
        super().__init__()
        self.realm = BertModel(config, add_pooler=False)
        self.qa_outputs = RealmReaderProjection(config, span_hidden_size, reader_eps)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        rows: torch.Tensor,
        starts: torch.Tensor,
        ends: torch.Tensor,
    ) -> torch.Tensor:
        """Logits of the C candidate spans (rows[c], starts[c]..ends[c]); all index tensors (C,)."""
        hidden = self.realm(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        start_proj, end_proj = self.qa_outputs.dense_intermediate(hidden).chunk(2, dim=-1)  # (B, T, S) each
        span = torch.relu(start_proj[rows, starts] + end_proj[rows, ends])  # (C, S)
        return self.qa_outputs.dense_output(self.qa_outputs.layer_normalization(span)).squeeze(-1)  # (C,)
