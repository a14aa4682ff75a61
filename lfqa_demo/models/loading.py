"""`load_retriever`, and the model registry every loader shares: resolve checkpoints, build
modules, cache them (`load_reader` lives beside the readers, in reading/loading.py: the models
never import the readers).

Nothing here runs at import time. Each (spec, device, dtype) is loaded once per process,
even when several threads ask for it at the same moment; a failed load caches nothing.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

from ..errors import CheckpointError, CheckpointNotFoundError, InvalidInputError, InvalidTypeError
from .families import READER_FAMILIES, RETRIEVER_FAMILIES
from .hub import CheckpointFiles, resolve_checkpoint
from .retrievers import DEFAULT_RETRIEVERS, DenseRetriever, RetrieverSpec
from .tokenization import WordPieceTokenizer
from .zerogpu import ModelOrigin

if TYPE_CHECKING:  # torch and the model code load with the first model, not with the package
    import torch
    from torch import nn

    from .bert import BertConfig

T = TypeVar("T")
# Every default hub checkpoint by role (the fixtures and benchmarks mirror these repos).
DEFAULT_CHECKPOINTS = {
    "retribert": DEFAULT_RETRIEVERS["retribert"].question,
    "dpr_q": DEFAULT_RETRIEVERS["dpr"].question,
    "dpr_ctx": DEFAULT_RETRIEVERS["dpr"].passage,
    "dpr_reader": READER_FAMILIES["dpr"].checkpoint,
    "realm": DEFAULT_RETRIEVERS["realm"].question,
    "realm_reader": READER_FAMILIES["realm"].checkpoint,
}
_MODEL_FILES = ("config.json", "vocab.txt")
_OPTIONAL_FILES = ("tokenizer_config.json", "sentence_bert_config.json")

_loaded: dict[tuple, object] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_guard = threading.Lock()
_states: dict[str, str] = {}  # model label -> "loading", "ready on cpu, float32" or "failed: why"
_failures: dict[tuple, tuple[float, Exception]] = {}  # key -> (when, not-found error): not retried for RETRY_AFTER_S
RETRY_AFTER_S = 60.0  # an app asking every request must not wait on an unreachable hub each time


def _once(key: tuple, label: str, build: Callable[[], T]) -> T:
    """build() at most once per key across threads; later calls get the same object.
    Files not found (cache and hub) are remembered for RETRY_AFTER_S and the error raised
    again at once meanwhile; other failures are retried on the next call.
    `label` names the model in `model_states()`. `build` must pickle: it becomes the model's
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
            _states[label] = "loading"
        try:
            value = build()
        except Exception as exc:
            with _guard:
                _states[label] = f"failed: {exc}"
                if isinstance(exc, CheckpointNotFoundError):  # the slow case: the hub was asked
                    _failures[key] = (time.monotonic(), exc)
            raise
        value.origin = ModelOrigin(key, build)
        device, dtype = getattr(value, "device", "?"), str(getattr(value, "dtype", "?")).removeprefix("torch.")
        with _guard:
            _loaded[key] = value
            _states[label] = f"ready on {device}, {dtype}"
        return value


def model_states() -> dict[str, str]:
    """What happened to each model asked for so far: "loading", "ready on DEVICE, DTYPE" or
    "failed: REASON". Models never asked for are absent (not loaded)."""
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


def _build(
    files: CheckpointFiles, make: Callable[[BertConfig, dict], nn.Module], device: str, dtype: torch.dtype
) -> nn.Module:
    """Build the module on the meta device (no random init), adopt the file's tensors, move it."""
    import torch

    from .bert import BertConfig
    from .checkpoint_io import load_strict, read_config, read_state_dict

    raw = read_config(files)
    try:
        with torch.device("meta"):
            module = make(BertConfig.from_dict(raw), raw)
    except CheckpointError as exc:  # a config field the family's head needs
        raise CheckpointError(f"{files.source!r}: {exc}") from exc
    load_strict(module, read_state_dict(files), files, getattr(module, "IGNORED", ()))
    return module.to(device=device, dtype=dtype).eval()


def _tokenizer(files: CheckpointFiles) -> WordPieceTokenizer:
    from .checkpoint_io import read_config

    return WordPieceTokenizer.from_directory(files.directory, read_config(files).get("vocab_size"))


def _spec_of(name: str | RetrieverSpec | Mapping) -> tuple[str, RetrieverSpec]:
    if isinstance(name, RetrieverSpec):
        return name.family, name
    if isinstance(name, Mapping):
        spec = RetrieverSpec(**name)
        return spec.family, spec
    if isinstance(name, str):
        if name not in DEFAULT_RETRIEVERS:
            raise InvalidInputError(
                f"retriever name must be one of {sorted(DEFAULT_RETRIEVERS)} or a RetrieverSpec, not {name!r}"
            )
        return name, DEFAULT_RETRIEVERS[name]
    raise InvalidTypeError(f"name must be a string, a RetrieverSpec or a dict, not {type(name).__name__}")


def load_retriever(
    name: str | RetrieverSpec | Mapping,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
) -> DenseRetriever:
    """Load (once) a dense retriever: "retribert", "dpr", "realm", or a RetrieverSpec / dict
    naming the family and its question and passage checkpoints (repo ids or local dirs).

    `device` None picks CUDA, else MPS, else CPU; `dtype` None follows LFQA_DTYPE, else the
    precision policy of devices.py (bf16 on CUDA with bf16 and on CPUs with native bf16, fp16 on
    other CUDA devices, else fp32).
    """
    from .devices import resolve_device, resolve_dtype

    display, spec = _spec_of(name)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    # Partials of module functions with the device as text: they pickle (spaces patches torch.device).
    return _once(
        ("retriever", display, spec, str(dev), dt),
        f"retriever {display}",
        functools.partial(_load_retriever, display, spec, str(dev), dt),
    )


def _load_retriever(display: str, spec: RetrieverSpec, device: str, dtype: torch.dtype) -> DenseRetriever:
    import torch

    family = RETRIEVER_FAMILIES[spec.family]
    if family.separate_checkpoints and spec.passage is None:
        raise InvalidInputError(f"a {family.label} spec needs both a question and a passage checkpoint")
    q_files = resolve_checkpoint(spec.question, _MODEL_FILES, _OPTIONAL_FILES)
    same = spec.passage_checkpoint == spec.question
    p_files = q_files if same else resolve_checkpoint(spec.passage_checkpoint, _MODEL_FILES, _OPTIONAL_FILES)
    q_tok = _tokenizer(q_files)
    p_tok = q_tok if same else _tokenizer(p_files)
    q_head = _build(q_files, lambda c, raw: family.make_head(c, raw, "question"), device, dtype)
    # One checkpoint for both sides: one module serves both (its embed_passages). Otherwise the
    # passage encoder is built when a passage is first embedded (never, with prebuilt indexes).
    p_head = (
        q_head if same else (lambda: _build(p_files, lambda c, raw: family.make_head(c, raw, "passage"), device, dtype))
    )
    return DenseRetriever(
        display,
        spec,
        q_head.dim,
        (q_tok, q_head),
        (p_tok, p_head),
        (q_files, p_files),
        torch.device(device),
        dtype,
        default_max_length=_sentence_max_length(q_files) or family.max_length,
    )


def _sentence_max_length(files: CheckpointFiles) -> int | None:
    """max_seq_length from a sentence-transformers checkpoint's sentence_bert_config.json, if any."""
    path = files.path("sentence_bert_config.json")
    if path is None:
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("max_seq_length")
    return value if isinstance(value, int) and value > 2 else None
