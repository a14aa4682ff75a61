"""Linear layers with their weights packed once for oneDNN: bf16 inference on the CPU.

Why: in bf16 on the CPU, `F.linear` goes to oneDNN, which first reorders the weight (768 x 3,072
bf16 is 4.7 MB) into its blocked layout, on every call. Packed at load instead, each layer's
matrix multiply runs straight from the blocked copy, and the feed-forward layer's GELU runs in
the multiply's epilogue instead of as a second pass over the (rows, 3,072) activations (REALM's
tanh form too, which is slow on its own in bf16). Measured with
`benchmarks/bench_encoder_bound.py` on an AVX512-BF16 CPU (docs/performance.md): passage
encoding +5 to +15% in bf16 (across runs); questions and readers gain too. The numbers stay
those of `F.linear` within one rounding (tests/test_packed_linear.py). fp32 is not packed (see
PACKED_DTYPES), though the class works in fp32 and the benchmark measures it.

Only where it applies (`packing_applies`): a CPU module in bf16 on a CPU with native bf16, whose
oneDNN kernels pass a tiny check, and not on ZeroGPU (whose models move to a GPU, and a packed
weight cannot). `LFQA_PACKED_LINEAR=0` turns it off (the benchmark's "plain").
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from . import zerogpu
from .bert import BertIntermediate, BertLayer, gelu_new
from .devices import cpu_has_fast_bf16

# bf16 only. fp32 measured 11-27% faster packed, but oneDNN keeps memory for every distinct row
# count it has multiplied (fp32 32x64 layer, M = 1..3,000: +1.3 GB), where MKL's sgemm, fp32's
# plain path, keeps none (+8 MB). bf16's plain path went through oneDNN and grew
# the same way before packing (+1.0 GB on the same test), so packing costs it nothing there.
PACKED_DTYPES = (torch.bfloat16,)
OFF = ("0", "false", "no", "off")  # LFQA_PACKED_LINEAR values that turn packing off
PACK_ROWS = 1024  # a hint to oneDNN for the blocked layout: the encoder's rows per batch (retrievers.BATCH_TOKENS)
# The activations oneDNN can run in the multiply's epilogue: ours -> (oneDNN's name, its algorithm).
FUSED_ACTIVATIONS = {F.gelu: ("gelu", "none"), gelu_new: ("gelu", "tanh"), F.relu: ("relu", "")}


class PackedLinear(nn.Module):
    """`activation(x @ W.T + b)` from a weight packed for oneDNN; x (..., in) -> (..., out).

    The packed weight is an opaque oneDNN tensor: it lives on the CPU, in the model's dtype, for
    inference only (no autograd), and it is not part of `state_dict()` (the checkpoint holds the
    source). Copies and pickles carry the plain weight and pack it again."""

    def __init__(self, linear: nn.Linear, activation: str = "none", algorithm: str = ""):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), PACK_ROWS)  # (out, in), blocked
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias, persistent=False)
        self.activation, self.algorithm = activation, algorithm
        self.fused = None  # the model's activation function this epilogue stands for (see activation_of)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, self.activation, [], self.algorithm)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["packed"] = self.packed.to_dense()  # (out, in): an opaque tensor has no storage to copy
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.packed, PACK_ROWS)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def packing_applies(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether modules on `device` in `dtype` get packed linear layers (module docstring)."""
    if torch.device(device).type != "cpu" or dtype not in PACKED_DTYPES:
        return False
    if os.environ.get("LFQA_PACKED_LINEAR", "1").strip().lower() in OFF or zerogpu.active():
        return False
    if dtype == torch.bfloat16 and not cpu_has_fast_bf16():
        return False  # the precision policy never picks bf16 there; nor does packing
    return packed_kernels_work(dtype)


@functools.lru_cache(maxsize=None)
def packed_kernels_work(dtype: torch.dtype) -> bool:
    """oneDNN built in (with native bf16 for bf16), and its packed linear equal to F.linear on a
    tiny case in `dtype`."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
            torch.manual_seed(0)
            linear = nn.Linear(16, 8).to(dtype).requires_grad_(False)
            x = torch.randn(3, 16, dtype=dtype)
        tol = 1e-2 if dtype == torch.bfloat16 else 1e-4  # one rounding: the kernels may sum in another order
        return torch.allclose(PackedLinear(linear)(x), F.linear(x, linear.weight, linear.bias), rtol=tol, atol=tol)
    except (RuntimeError, AttributeError):  # an op missing from this torch build, or refusing the CPU
        return False


def pack_encoder_linears(module: nn.Module) -> int:
    """Replace every BERT layer's linear layers under `module` with PackedLinear, the
    feed-forward GELU (or ReLU) fused into its up-projection; returns how many were packed.
    The heads around the trunk (poolers, projections, span heads) keep nn.Linear: one row per
    passage, where packing gains nothing."""
    count = 0
    for layer in module.modules():
        if not isinstance(layer, BertLayer):
            continue
        attention = layer.attention
        for name in ("query", "key", "value"):
            setattr(attention.self, name, PackedLinear(getattr(attention.self, name)))
        attention.output.dense = PackedLinear(attention.output.dense)
        layer.output.dense = PackedLinear(layer.output.dense)
        _pack_intermediate(layer.intermediate)
        count += 6
    return count


def _pack_intermediate(intermediate: BertIntermediate) -> None:
    fused = FUSED_ACTIVATIONS.get(intermediate.act)
    if fused is None:
        intermediate.dense = PackedLinear(intermediate.dense)  # the activation stays a separate pass
        return
    intermediate.dense = PackedLinear(intermediate.dense, *fused)
    intermediate.dense.fused = intermediate.act
    intermediate.act = _identity


def activation_of(intermediate: BertIntermediate):
    """The feed-forward activation an intermediate layer applies, fused into its packed dense or not."""
    return getattr(intermediate.dense, "fused", None) or intermediate.act


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x
