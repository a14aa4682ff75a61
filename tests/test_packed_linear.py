"""Packed oneDNN linear layers (models/packed_linear.py): the same numbers as nn.Linear, used
where they apply (bf16 on a CPU with native bf16, not on ZeroGPU) and nowhere else; the class
itself also works in fp32 (the benchmark measures it there)."""

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

DTYPES = [
    pytest.param(
        dtype,
        marks=pytest.mark.skipif(
            not packed_linear.packed_kernels_work(dtype),
            reason=f"this CPU's oneDNN has no {dtype} kernels, so nothing is packed here in {dtype}",
        ),
    )
    for dtype in (torch.float32, torch.bfloat16)
]
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}  # one rounding of each dtype


def tiny_bert(act: str, dtype: torch.dtype) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, hidden_act=act
    )
    return BertModel(config).to(dtype).eval().requires_grad_(False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_linear_gives_the_numbers_of_linear(dtype):
    torch.manual_seed(0)
    linear = nn.Linear(64, 96).to(dtype).requires_grad_(False)
    x = torch.randn(2, 5, 64, dtype=dtype)  # (B, T, in): any leading shape
    tol = TOLERANCE[dtype]
    plain = F.linear(x, linear.weight, linear.bias)
    torch.testing.assert_close(PackedLinear(linear)(x), plain, rtol=tol, atol=tol)
    for algorithm, approximate in (("none", "none"), ("tanh", "tanh")):  # the erf and tanh forms of GELU
        fused = PackedLinear(linear, "gelu", algorithm)(x).float()  # in the epilogue: rounded once, not twice
        torch.testing.assert_close(fused, F.gelu(plain, approximate=approximate).float(), rtol=tol, atol=tol)
    assert PackedLinear(linear).state_dict() == {}  # the checkpoint holds the weights, not this copy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_packed_encoder_keeps_its_outputs(act, dtype):
    model = tiny_bert(act, dtype)
    packed = copy.deepcopy(model)
    assert pack_encoder_linears(packed) == 12  # 6 per layer: q, k, v, attention output, up, down
    assert not any(isinstance(m, nn.Linear) for m in packed.encoder.modules())
    ids = torch.randint(1, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # one padded row: the mask still works through the packed path
    ours, theirs = packed(ids, mask).float(), model(ids, mask).float()  # (3, 9, 32)
    cosine = F.cosine_similarity(ours.flatten(1), theirs.flatten(1))
    assert cosine.min() >= 0.9999, cosine
    if dtype == torch.float32:
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    cls_ours, cls_theirs = (
        packed(ids, mask, cls_only=True).float(),
        model(ids, mask, cls_only=True).float(),
    )  # (3, 1, 32)
    assert F.cosine_similarity(cls_ours[:, 0], cls_theirs[:, 0]).min() >= 0.9999
    copied = copy.deepcopy(packed)  # copies (and pickles) carry the plain weight and pack it again
    assert torch.equal(copied(ids, mask), packed(ids, mask))


def test_packing_applies_only_to_bf16_on_the_cpu(monkeypatch):
    monkeypatch.delenv("LFQA_PACKED_LINEAR", raising=False)
    monkeypatch.setattr(zerogpu, "active", lambda: False)
    monkeypatch.setattr(packed_linear, "packed_kernels_work", lambda dtype: True)
    monkeypatch.setattr(packed_linear, "cpu_has_fast_bf16", lambda: True)
    assert packing_applies("cpu", torch.bfloat16)
    assert not packing_applies("cpu", torch.float32)  # MKL's sgemm keeps no memory per shape (PACKED_DTYPES)
    assert not packing_applies("cpu", torch.float16)
    assert not packing_applies("cuda", torch.bfloat16)
    monkeypatch.setattr(packed_linear, "cpu_has_fast_bf16", lambda: False)
    assert not packing_applies("cpu", torch.bfloat16)  # no native bf16: the policy never picks bf16 there anyway
    monkeypatch.setattr(packed_linear, "cpu_has_fast_bf16", lambda: True)
    for off in ("0", "false", "Off"):
        monkeypatch.setenv("LFQA_PACKED_LINEAR", off)
        assert not packing_applies("cpu", torch.bfloat16) and not packing_applies("cpu", torch.float32)
    monkeypatch.delenv("LFQA_PACKED_LINEAR")
    monkeypatch.setattr(zerogpu, "active", lambda: True)  # ZeroGPU moves models to a GPU: nothing packed
    assert not packing_applies("cpu", torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loaded_retrievers_are_packed_where_it_applies(dtype):
    head = load_retriever("dpr", device="cpu", dtype=dtype).question_head
    layers = head.question_encoder.bert_model.config.num_hidden_layers
    packed = [m for m in head.modules() if isinstance(m, PackedLinear)]
    assert len(packed) == (6 * layers if packing_applies("cpu", dtype) else 0)
