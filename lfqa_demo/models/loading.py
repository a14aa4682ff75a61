"""`load_retriever`, and what every loader shares: resolve checkpoints, build modules (the
loaded models are kept in registry.py; `load_reader` lives beside the readers, in
reading/loading.py: the models never import the readers).

Nothing here runs at import time.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

from ..errors import CheckpointError, InvalidInputError, InvalidTypeError
from ..status import ModelKey
from .families import READER_FAMILIES, RETRIEVER_FAMILIES
from .hub import CheckpointFiles, resolve_checkpoint
from .registry import _once
from .retrievers import DEFAULT_RETRIEVERS, NAMED_RETRIEVERS, DenseRetriever, RetrieverSpec
from .tokenization import WordPieceTokenizer

if TYPE_CHECKING:  # torch and the model code load with the first model, not with the package
    import torch
    from torch import nn

    from .bert import BertConfig

T = TypeVar("T")
log = logging.getLogger(__name__)
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


def _build(
    files: CheckpointFiles, make: Callable[[BertConfig, dict], nn.Module], device: str, dtype: torch.dtype
) -> nn.Module:
    """Build the module on the meta device (no random init), adopt the file's tensors, move it
    (and on the CPU, pack its encoder's weights where packed_linear.py says it pays)."""
    import torch

    from .bert import BertConfig
    from .checkpoint_io import load_strict, read_config, read_state_dict
    from .packed_linear import pack_encoder_linears, packing_applies

    raw = read_config(files)
    try:
        with torch.device("meta"):
            module = make(BertConfig.from_dict(raw), raw)
    except CheckpointError as exc:  # a config field the family's head needs
        raise CheckpointError(f"{files.source!r}: {exc}") from exc
    load_strict(module, read_state_dict(files), files, getattr(module, "IGNORED", ()))
    module = module.to(device=device, dtype=dtype).eval()
    if packing_applies(device, dtype):
        try:
            pack_encoder_linears(module)  # on the CPU: weights packed once for oneDNN
        except RuntimeError:  # a shape oneDNN refuses: the layers left plain still compute the same
            log.warning("%s: packing its linear layers for oneDNN failed; some stay plain", files.source, exc_info=True)
    return module


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
        if name not in NAMED_RETRIEVERS:
            raise InvalidInputError(
                f"retriever name must be one of {sorted(NAMED_RETRIEVERS)} or a RetrieverSpec, not {name!r}"
            )
        return name, NAMED_RETRIEVERS[name]
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
        ModelKey.retriever(display),
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
