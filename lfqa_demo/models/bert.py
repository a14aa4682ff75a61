"""A compact post-LayerNorm BERT encoder, the trunk shared by RetriBERT, DPR and REALM.

Follows the BERT paper (Devlin et al., 2019) and the module layout of `transformers`'
`modeling_bert.py` (4.40.2), so that attribute names *are* the checkpoint keys and
loading is a one-to-one copy (see `checkpoint_io.load_strict`). Encoder-only: no
caching, cross-attention or pruning.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BertConfig:
    """The fields of a hub `config.json` that shape the encoder; other fields are ignored."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12  # RetriBERT's checkpoint has 8
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    # "gelu" (exact erf) for DPR and RetriBERT; REALM was trained with "gelu_new" (tanh form).
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_dict(cls, raw: dict) -> "BertConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (the "gelu_new" of the original BERT TF code):
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).

    In bf16 on the CPU torch's tanh kernel is ~4x slower than the erf one (2.2 vs 0.5 ms for
    1,050 x 3,072), and the two forms differ by < 5e-4, far below bf16's resolution (~1e-2
    at these magnitudes), so there the erf form stands in; fp32 keeps the exact tanh form.
    """
    if x.dtype == torch.bfloat16 and x.device.type == "cpu":
        return F.gelu(x)
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu": F.gelu, "gelu_new": gelu_new, "relu": F.relu}


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.LayerNorm(x)  # (B, T, H)


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not a multiple of {config.num_attention_heads} heads"
            )
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention of `queries` (default: every row of x) over x; returns (B, Tq, H)."""
        B, T, H = x.shape
        q_in = x if queries is None else queries
        Tq = q_in.shape[1]

        def heads(t: torch.Tensor, n: int) -> torch.Tensor:
            return t.view(B, n, self.num_heads, H // self.num_heads).transpose(1, 2)  # (B, nh, n, hs)

        q, k, v = heads(self.query(q_in), Tq), heads(self.key(x), T), heads(self.value(x), T)
        # mask_bias (B, 1, 1, T): 0 for real tokens, the dtype's minimum for padding.
        if x.device.type == "cpu" and x.dtype == torch.bfloat16:
            # On the CPU, two bf16 matmuls beat the fused kernel ~2x at these sizes (T <= 512).
            # The 1/sqrt(hs) scale goes on q (Tq x hs), cheaper than on the scores (Tq x T).
            scores = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-1, -2)) + mask_bias  # (B, nh, Tq, T)
            y = torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, nh, Tq, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_bias)
        return y.transpose(1, 2).reshape(B, Tq, H)


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(x + self.dense(y))


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.self(x, mask_bias, queries), x if queries is None else queries)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        if config.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act {config.hidden_act!r} is not supported; expected one of {sorted(ACTIVATIONS)}"
            )
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))  # (B, T, I)


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(x + self.dense(h))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        h = self.attention(x, mask_bias, queries)  # (B, Tq, H)
        return self.output(self.intermediate(h), h)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        for i, layer in enumerate(self.layer):
            last = i == len(self.layer) - 1
            # Families that read only [CLS] need the last layer for that one row: the keys and
            # values still come from every token, but the rest of the layer runs on (B, 1, H).
            x = layer(x, mask_bias, x[:, :1]) if cls_only and last else layer(x, mask_bias)
        return x


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, H), from the [CLS] state


class BertModel(nn.Module):
    """Embeddings, encoder and (optionally) the pooler; returns the last hidden states."""

    def __init__(self, config: BertConfig, add_pooler: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooler else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        cls_only: bool = False,
    ) -> torch.Tensor:
        """Last hidden states (B, T, H), or only the [CLS] row's (B, 1, H) with `cls_only`."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        # Additive mask as in BERT: (1 - mask) * dtype.min, broadcast over heads and queries.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min  # (B, 1, 1, T)
        return self.encoder(x, mask_bias, cls_only)  # (B, T, H) or (B, 1, H)
