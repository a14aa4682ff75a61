"""Every model forward pass goes through `forward`: the one place that decides where it runs.

- Here, on the model's own device (CPU, CUDA or MPS): the batches go through the module one by
  one, under `torch.inference_mode()`.
- On ZeroGPU (`zerogpu.active()`, the models loaded on the CPU, see devices.py): the batches
  go in one `spaces.GPU` call (`zerogpu.run`), sized from their padded tokens. The model is
  named by its `origin` (registry key and loader), found again in the worker (`find_model`)
  and moved to the worker's GPU there.

Either way the caller sends numpy inputs and gets float32 numpy back, so retrievers and readers
never branch on the device. `call_groups` says how to split a long run of batches into calls,
so that progress and cancellation happen between calls (batch by batch here, every
`zerogpu.PASSAGES_PER_CALL` rows or so on ZeroGPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import zerogpu
from .registry import cached_model

if TYPE_CHECKING:  # torch is imported on first use, so that importing the package stays fast
    import torch

Batch = tuple[np.ndarray, ...]  # a model's input arrays, ids first: (B, L) each, then any index arrays
Output = np.ndarray | tuple[np.ndarray, ...]  # float32, as the module returns them (one array or a tuple)
_worker_models: dict[tuple, object] = {}  # in a ZeroGPU worker: models loaded there, by registry key


def forward(model: Any, part: str, method: str | None, batches: Sequence[Batch]) -> list[Output]:
    """`getattr(model, part)` (a torch module), or its `method`, over each batch of numpy inputs;
    the outputs come back as float32 numpy, one per batch.

    `model` is a loaded retriever or reader: its `device` says where it runs, and on ZeroGPU its
    `origin` (set by the registry) lets the worker find it; a model without one has its module
    sent to the worker by value."""
    if not _on_zerogpu(model):
        return _apply(getattr(model, part), method, batches, model.device)
    origin = getattr(model, "origin", None)
    target = (origin, part) if origin is not None else getattr(model, part)
    tokens = sum(int(batch[0].size) for batch in batches)  # padded word pieces: the call's duration
    return zerogpu.run(_forward_on_gpu, tokens, target, method, list(batches))


def call_groups(model: Any, batches: Sequence[list[int]]) -> list[list[list[int]]]:
    """`batches` (lists of row indices) grouped into the calls `forward` should get: one batch
    per call here, about `zerogpu.PASSAGES_PER_CALL` rows per call on ZeroGPU (each call there
    costs a scheduler request). A caller reports progress, or is cancelled, between calls."""
    if _on_zerogpu(model):
        return zerogpu.split_calls(batches)
    return [[batch] for batch in batches]


def find_model(origin: zerogpu.ModelOrigin) -> object:
    """The model `origin` names, in this process: the loaded one (in a ZeroGPU worker, the copy
    forked with the main process), else one loaded here earlier, else loaded now from its
    checkpoint (it was loaded in the main process after this worker was forked)."""
    model = cached_model(origin.key)
    if model is None:
        model = _worker_models.get(origin.key)
    if model is None:
        model = _worker_models[origin.key] = origin.build()
    return model


def _on_zerogpu(model: Any) -> bool:
    """Whether `model`'s calls borrow a ZeroGPU GPU: there every model lives on the CPU."""
    return model.device.type == "cpu" and zerogpu.active()


def _forward_on_gpu(target: object, method: str | None, batches: list[Batch]) -> list[Output]:
    """Runs in the ZeroGPU worker: the module onto the GPU (a no-op once it is there), each batch
    through it, CPU numpy back (a CUDA tensor cannot leave the worker)."""
    if isinstance(target, tuple):
        origin, part = target
        module = getattr(find_model(origin), part)
    else:
        module = target  # a module sent by value
    return _apply(module.to(zerogpu.GPU_DEVICE), method, batches, zerogpu.GPU_DEVICE)


def _apply(
    module: torch.nn.Module, method: str | None, batches: Sequence[Batch], device: torch.device | str
) -> list[Output]:
    """The module (or its `method`) over each batch, on `device`; float32 numpy back."""
    import torch

    call = getattr(module, method) if method else module
    outputs: list[Output] = []
    with torch.inference_mode():
        for batch in batches:
            result = call(*(torch.from_numpy(a).to(device) for a in batch))
            if isinstance(result, tuple):
                outputs.append(tuple(t.float().cpu().numpy() for t in result))
            else:
                outputs.append(result.float().cpu().numpy())
    return outputs
