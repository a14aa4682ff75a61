"""The models loaded in this process, and where each stands: the registry every loader shares.

Each key (role, name, checkpoint, device, dtype) is loaded once per process, even when several
threads ask for it at the same moment; a failed load caches nothing. This module imports no
model code: the loaders (models/loading.py, reading/loading.py) and the status panel use it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

from ..errors import CheckpointNotFoundError, failure_message
from ..status import ModelKey, Phase, Status
from .zerogpu import ModelOrigin

T = TypeVar("T")

_loaded: dict[tuple, object] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_guard = threading.Lock()
_states: dict[ModelKey, Status] = {}
_failures: dict[tuple, tuple[float, Exception]] = {}  # key -> (when, not-found error): not retried for RETRY_AFTER_S
RETRY_AFTER_S = 60.0  # an app asking every request must not wait on an unreachable hub each time


def _once(key: tuple, model: ModelKey, build: Callable[[], T]) -> T:
    """build() at most once per key across threads; later calls get the same object.
    Files not found (cache and hub) are remembered for RETRY_AFTER_S and the error raised
    again at once meanwhile; other failures are retried on the next call.
    `model` names it in `model_states()`. `build` must pickle: it becomes the model's
    `origin`, which a ZeroGPU worker uses to find or load the model (see zerogpu.py)."""
    with _guard:
        if key in _loaded:
            return _loaded[key]  # type: ignore[return-value]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _loaded:
                return _loaded[key]  # type: ignore[return-value]
            failed = _failures.get(key)
            if failed and time.monotonic() - failed[0] < RETRY_AFTER_S:
                raise failed[1]
            _states[model] = Status(Phase.LOADING)
        try:
            value = build()
        except Exception as exc:
            with _guard:
                _states[model] = Status(Phase.FAILED, note=failure_message(exc))
                if isinstance(exc, CheckpointNotFoundError):  # the slow case: the hub was asked
                    _failures[key] = (time.monotonic(), exc)
            raise
        value.origin = ModelOrigin(key, build)
        device, dtype = str(getattr(value, "device", "?")), str(getattr(value, "dtype", "?")).removeprefix("torch.")
        with _guard:
            _loaded[key] = value
            _states[model] = Status(Phase.READY, device=device, dtype=dtype)
        return value


def model_states() -> dict[ModelKey, Status]:
    """Each model asked for so far: loading, ready (on which device, in which dtype) or failed
    (and why). Models never asked for are absent (not loaded)."""
    with _guard:
        return dict(_states)


def cached_model(key: tuple) -> object | None:
    """The model loaded under `key`, or None; never waits. It takes no lock because a ZeroGPU
    worker calls it: forked while another thread held a lock, it would wait forever, and a
    dict lookup is atomic anyway."""
    return _loaded.get(key)


def clear_loaded_models() -> None:
    """Forget every loaded model and its state (tests; freeing memory)."""
    with _guard:
        _loaded.clear()
        _states.clear()
        _failures.clear()
