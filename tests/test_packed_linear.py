"""Packed oneDNN linear layers (models/packed_linear.py): the same numbers as nn.Linear, used
where they apply (bf16 on a CPU with native bf16, not on ZeroGPU) and nowhere else."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lfqa_demo import load_retriever
from lfqa_demo.models import packed_linear, zerogpu
from lfqa_demo.models.bert import BertConfig, BertModel
from lfqa_demo.models.packed_linear import PackedLinear, pack_encoder_linears, packing_applies

needs_kernels = pytest.mark.skipif(
    not packed_linear._packed_kernels_work(),
    reason="this CPU's oneDNN has no native bf16 kernels, so nothing is packed here (packing_applies is False)",
)


def tiny_bert(act: str) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, hidden_act=act
    )
    return BertModel(config).to(torch.bfloat16).eval().requires_grad_(False)


@needs_kernels
def test_packed_linear_gives_the_numbers_of_linear():
    torch.manual_seed(0)
    linear = nn.Linear(64, 96).to(torch.bfloat16).requires_grad_(False)
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16)  # (B, T, in): any leading shape
    assert torch.equal(PackedLinear(linear)(x), F.linear(x, linear.weight, linear.bias))
    fused = PackedLinear(linear, "gelu", "none")(x).float()  # GELU in the epilogue: rounded once, not twice
    torch.testing.assert_close(fused, F.gelu(F.linear(x, linear.weight, linear.bias)).float(), rtol=1e-2, atol=1e-2)
    assert PackedLinear(linear).state_dict() == {}  # the checkpoint holds the weights, not this copy


@needs_kernels
@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_packed_encoder_keeps_its_outputs(act):
    model = tiny_bert(act)
    packed = copy.deepcopy(model)
    assert pack_encoder_linears(packed) == 12  # 6 per layer: q, k, v, attention output, up, down
    assert not any(isinstance(m, nn.Linear) for m in packed.encoder.modules())
    ids = torch.randint(1, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # one padded row: the mask still works through the packed path
    ours, theirs = packed(ids, mask).float(), model(ids, mask).float()  # (3, 9, 32)
    cosine = F.cosine_similarity(ours.flatten(1), theirs.flatten(1))
    assert cosine.min() >= 0.9999, cosine


def test_packing_applies_only_to_bf16_on_the_cpu(monkeypatch):
    monkeypatch.setattr(packed_linear, "_packed_kernels_work", lambda: True)
    monkeypatch.setattr(packed_linear, "cpu_has_fast_bf16", lambda: True)
    assert packing_applies("cpu", torch.bfloat16)
    assert not packing_applies("cpu", torch.float32)  # fp32 stays on MKL's sgemm, as fast as it gets
    assert not packing_applies("cpu", torch.float16)
    assert not packing_applies("cuda", torch.bfloat16)
    monkeypatch.setattr(packed_linear, "cpu_has_fast_bf16", lambda: False)
    assert not packing_applies("cpu", torch.bfloat16)  # no native bf16: the policy never picks bf16 there anyway
    monkeypatch.setattr(packed_linear, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv("LFQA_PACKED_LINEAR", "0")
    assert not packing_applies("cpu", torch.bfloat16)
    monkeypatch.delenv("LFQA_PACKED_LINEAR")
    monkeypatch.setattr(zerogpu, "active", lambda: True)  # ZeroGPU moves models to a GPU: nothing packed
    assert not packing_applies("cpu", torch.bfloat16)


def test_loaded_retrievers_are_packed_where_it_applies():
    bf16 = load_retriever("dpr", device="cpu", dtype="bfloat16").question_head
    fp32 = load_retriever("dpr", device="cpu", dtype="float32").question_head
    packed = [m for m in bf16.modules() if isinstance(m, PackedLinear)]
    assert len(packed) == (
        6 * bf16.question_encoder.bert_model.config.num_hidden_layers if packing_applies("cpu", torch.bfloat16) else 0
    )
    assert not any(isinstance(m, PackedLinear) for m in fp32.modules())
