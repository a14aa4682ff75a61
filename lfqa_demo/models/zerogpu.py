"""Model calls on Hugging Face ZeroGPU: short, sized `spaces.GPU` calls that borrow a GPU.

What ZeroGPU does, as read in the `spaces` package itself (0.51.3, https://pypi.org/project/spaces/:
spaces/config.py, zero/__init__.py, zero/decorator.py, zero/wrappers.py, zero/client.py,
zero/torch/patching.py) and its documentation (https://huggingface.co/docs/hub/spaces-zerogpu,
https://huggingface.co/spaces/zero-gpu-explorers/README):

- It is on when `SPACES_ZERO_GPU` is "1", "t" or "true" (any case); otherwise `spaces.GPU`
  returns the function unchanged. `import spaces` then patches torch for the whole process:
  in the main process `torch.cuda.is_available()` answers True although there is no GPU,
  real CUDA initialisation raises, and a tensor moved to "cuda" stays a CPU tensor posing
  as CUDA (only in the thread that imported `spaces`: that part is a thread-local
  TorchFunctionMode). `spaces` must be imported before anything initialises CUDA.
- Calling a `spaces.GPU` function asks the scheduler for a GPU for `duration` seconds
  (default 60), then runs the function in a worker process forked from the main one and
  reused by later calls while idle; in there CUDA is real. Arguments and result cross
  pickled, so the result must not hold CUDA tensors (CPU numpy is fine). A worker sees the
  main process as it was when forked: a model loaded after that is not in it.
- `duration` may be a callable taking the function's arguments (dynamic duration,
  https://huggingface.co/spaces/zero-gpu-explorers/README/discussions/87). The scheduler
  refuses a request above the visitor's per-call limit ("illegal duration") or above the
  quota left; shorter requests get a GPU sooner; the time charged is the time used
  (https://huggingface.co/spaces/zero-gpu-explorers/README/discussions/82). `spaces` caches
  the decorated function per function object, so decorate once and size each call through
  the callable, not by decorating per call.
- `spaces` reports its GPU functions when Gradio launches: they must exist by then.
- The documented pattern moves models to "cuda" at import, in the main thread: `spaces` packs
  those weights to disk at launch and each new worker moves them onto its GPU. This project
  loads models on first use, in request, warm-up and build threads, so it cannot use that.

The design here. Under ZeroGPU (`active()`) models load on the CPU (`devices.resolve_device`)
and every model call goes through one `spaces.GPU` function, `_run_on_gpu`, decorated once
(`setup()`, which app.py calls at import). What a call runs is decided in calls.py, the one
seam every forward pass goes through: `run(fn, tokens, *args)` here only borrows the GPU for
`fn(*args)`, for a duration sized from `tokens`, the call's padded word pieces (`seconds_for`).
Its arguments are picklable: where the model is (`ModelOrigin`: its registry key and how to
load it again) and padded numpy batches; the worker finds the model (forked with it, or loaded
there from the local checkpoint when it was loaded after the fork), moves it to the GPU, runs
it, and the outputs come back as float32 numpy. Passage encoding goes in calls of about
`PASSAGES_PER_CALL` passages (`split_calls`), so an index build's progress callback (and
cancellation, the callback raising) runs between calls in the main process.

GPU calls from index-build threads carry no Gradio request, so ZeroGPU charges them to the
Space, not to a visitor. Without ZeroGPU nothing here runs and `spaces` is never imported.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

log = logging.getLogger(__name__)

# Where a GPU function runs the model: "cuda" in a ZeroGPU worker; tests without a GPU set "cpu".
GPU_DEVICE = "cuda"
# Passages per GPU call while encoding: progress and cancellation happen between calls, and
# one call stays well inside its duration (256 x 288 word pieces is ~4 s at the rate below).
PASSAGES_PER_CALL = 256
# A conservative rate for a BERT-base forward pass on a ZeroGPU slice (half an H200). Not
# measured on one: an estimate with a wide margin. BERT-base costs ~0.22 GFLOP a token, so
# even 1% of the slice's ~300 bf16 TFLOP/s would be ~14,000 tokens/s; this project's
# ~1,000-token batches are bound by kernel launches, a few ms each, i.e. >= 200,000 tokens/s.
# The CPU rate for comparison: 3,853 tokens/s on 2 cores (README, Performance).
GPU_TOKENS_PER_S = 20_000
# Fixed cost of a call: a fresh worker forks, initialises CUDA (a few s), copies the weights
# (440 MB, well under 1 s) and, for a model loaded after the fork, reads its checkpoint again.
CALL_OVERHEAD_S = 10
MAX_CALL_S = 60  # spaces' default duration, which every visitor may ask for

_TRUE = ("1", "t", "true")  # spaces.config.boolean: what makes `spaces.GPU` do anything
_import_failed = False
_decorated: dict[int, Callable] = {}  # id(spaces module) -> the decorated _run_on_gpu
_decorate_lock = threading.Lock()
T = TypeVar("T")


@dataclass(frozen=True)
class ModelOrigin:
    """Where a loaded model comes from, in a form that pickles into a ZeroGPU worker: the key
    it is cached under (registry.py) and a picklable callable that loads it again."""

    key: tuple
    build: Callable[[], Any]


def _env_on() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in _TRUE


def active() -> bool:
    """True on ZeroGPU: `SPACES_ZERO_GPU` is on and `import spaces` works. `spaces` is imported
    here, the first time the variable is on, never when it is off."""
    global _import_failed
    if not _env_on():
        return False
    if "spaces" in sys.modules:
        return True
    if _import_failed:
        return False
    try:
        importlib.import_module("spaces")
    except Exception:  # not installed, or its own checks failed (no device API URL): no ZeroGPU
        _import_failed = True
        log.warning("SPACES_ZERO_GPU is set but `spaces` cannot be imported; models run without ZeroGPU", exc_info=True)
        return False
    return True


def setup() -> bool:
    """On ZeroGPU, import `spaces` and decorate the GPU function now; returns `active()`.
    Call it at import of the app, in the main thread: `spaces` wants to come before any CUDA
    use and reports its GPU functions when Gradio launches. Elsewhere it does nothing."""
    if not active():
        return False
    _gpu_function()
    return True


def seconds_for(tokens: int) -> int:
    """The duration to ask for a call that runs `tokens` padded word pieces through a model."""
    seconds = CALL_OVERHEAD_S + tokens / GPU_TOKENS_PER_S
    return min(MAX_CALL_S, math.ceil(seconds))


def split_calls(batches: Sequence[Sequence[int]], per_call: int | None = None) -> list[list[Sequence[int]]]:
    """Consecutive batches (lists of row indices) grouped into GPU calls of about `per_call`
    rows (default PASSAGES_PER_CALL); a batch is never split."""
    per_call = per_call or PASSAGES_PER_CALL
    calls: list[list[Sequence[int]]] = []
    rows = per_call
    for batch in batches:
        if rows >= per_call:
            calls.append([])
            rows = 0
        calls[-1].append(batch)
        rows += len(batch)
    return calls


def run(fn: Callable[..., T], tokens: int, *args: Any) -> T:
    """`fn(*args)` in one GPU call, asking for the duration of `tokens` padded word pieces. It
    runs in a ZeroGPU worker: `fn` must be a module-level function (it pickles by name), and
    `args` and the result cross pickled, so the result must hold no CUDA tensor."""
    return _gpu_function()(fn, tokens, *args)


def _gpu_function() -> Callable:
    """`_run_on_gpu` under `spaces.GPU` with its dynamic duration, decorated once per `spaces`
    module (spaces caches by function, so one decoration must serve every call)."""
    spaces = sys.modules["spaces"]
    with _decorate_lock:
        fn = _decorated.get(id(spaces))
        if fn is None:
            fn = _decorated[id(spaces)] = spaces.GPU(duration=_duration)(_run_on_gpu)
    return fn


def _duration(fn: Callable, tokens: int, *args: Any) -> int:
    """spaces calls this with `_run_on_gpu`'s arguments, before asking for a GPU."""
    return seconds_for(tokens)


def _run_on_gpu(fn: Callable[..., T], tokens: int, *args: Any) -> T:
    """Runs in the ZeroGPU worker, where CUDA is real (see calls._forward_on_gpu)."""
    return fn(*args)
