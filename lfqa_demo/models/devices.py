"""Choosing the device and dtype a model runs on.

Precision policy (dtype None): bfloat16 on CPUs with native bf16 matrix instructions
(AVX512-BF16 or AMX: about 4.8x the fp32 matmul rate on this project's 2-core machine),
else float32; on CUDA bfloat16 where supported, else float16; float32 on Apple MPS.
`LFQA_DTYPE` (float32 / bf16 / fp16 / auto) overrides the automatic choice for a whole
process; float32 is the exact mode the fidelity tests use.

On ZeroGPU (zerogpu.active()) the models live on the CPU and compute on a borrowed GPU:
CUDA (None or "cuda") resolves to the CPU, and the automatic dtype is bfloat16, the CUDA
choice (ZeroGPU's GPUs, H200 and RTX PRO 6000 Blackwell, all have bf16).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from ..errors import InvalidInputError, InvalidTypeError
from . import zerogpu

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """`None` picks CUDA when available, else Apple MPS, else the CPU. On ZeroGPU, CUDA means the
    CPU: the main process has no GPU (torch.cuda.is_available() lies there), the model calls
    borrow one (zerogpu.py)."""
    resolved = _resolve_device(device)
    if resolved.type == "cuda" and zerogpu.active():
        return torch.device("cpu")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        raise InvalidInputError(
            f"device {str(device)!r} was asked for, but this torch ({torch.__version__}: {build}) has no CUDA "
            "device; use 'cpu', or leave the device out to use the best one available"
        )
    return resolved


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise InvalidInputError(
                f"device {device!r} is not a device name such as 'cpu', 'cuda' or 'cuda:1'"
            ) from exc
    raise InvalidTypeError(f"device must be a torch.device, a string or None, not {type(device).__name__}")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where that file cannot be read."""
    try:
        return flags_of(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def flags_of(cpuinfo: str) -> frozenset[str]:
    """The flags listed on /proc/cpuinfo text's flags lines."""
    return frozenset(
        f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[-1].split()
    )


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (flags avx512_bf16 or amx_bf16).
    Without them (AVX2 only, say) torch's bf16 matmul runs at ~1 GFLOP/s: fp32 is then the choice."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def flags_have_fast_bf16(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo text lists a native bf16 matrix instruction set on its flags lines."""
    return bool(flags_of(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def automatic_dtype(device: torch.device) -> torch.dtype:
    """The precision policy of the module docstring, before any LFQA_DTYPE override."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and zerogpu.active():
        return torch.bfloat16  # the models compute on ZeroGPU's GPU
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """`None` follows LFQA_DTYPE if set, else the precision policy; names like "bf16" are accepted."""
    if dtype is None:
        override = os.environ.get("LFQA_DTYPE", "").strip().lower()
        if override and override != "auto":
            return resolve_dtype(override, device)
        return automatic_dtype(device)
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise InvalidInputError(f"dtype {dtype} is not supported; use float32, float16 or bfloat16")
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key not in _DTYPES:
            raise InvalidInputError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        return _DTYPES[key]
    raise InvalidTypeError(f"dtype must be a torch.dtype, a string or None, not {type(dtype).__name__}")
