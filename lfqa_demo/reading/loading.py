"""`load_reader`: the "dpr" and "realm" readers, loaded once through the models' shared registry;
`load_relevance_embedder`: the retriever a reader adds the scores of (REALM's embedder).

It lives here, beside the readers, so that `lfqa_demo.models` never imports `lfqa_demo.reading`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..models.families import READER_FAMILIES
from ..models.hub import resolve_checkpoint
from ..models.loading import _MODEL_FILES, _OPTIONAL_FILES, _build, _tokenizer, load_retriever
from ..models.registry import _once
from ..status import ModelKey
from .readers import READER_CLASSES, DPRReader, RealmReader

if TYPE_CHECKING:
    import torch

    from ..models.retrievers import DenseRetriever, RetrieverSpec


def load_reader(
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    checkpoint: str | None = None,
    max_length: int | None = None,
) -> DPRReader | RealmReader:
    """Load (once) the "dpr" or "realm" reader; `checkpoint` overrides the default repo id or dir."""
    from ..models.devices import resolve_device, resolve_dtype

    if name not in READER_FAMILIES:
        raise InvalidInputError(f"reader name must be one of {tuple(READER_FAMILIES)}, not {name!r}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    source = checkpoint or READER_FAMILIES[name].checkpoint
    return _once(
        ("reader", name, source, max_length, str(dev), dt),
        ModelKey.reader(name),
        functools.partial(_load_reader, name, source, str(dev), dt, max_length),
    )


def load_relevance_embedder(
    reader: DPRReader | RealmReader, retrieved_by: RetrieverSpec | None
) -> DenseRetriever | None:
    """The retriever `reader.prior_relevance` needs handed in, loaded (once) on the reader's device
    and dtype: REALM's embedder, for passages that embedder did not retrieve. None when the reader
    needs none (DPR) or the retrieval scores are already its scores. Raises
    CheckpointNotFoundError when the embedder cannot load."""
    spec = reader.relevance_embedder
    if spec is None or spec == retrieved_by:
        return None
    return load_retriever(spec, device=reader.device, dtype=reader.dtype)


def _load_reader(
    name: str, source: str, device: str, dtype: torch.dtype, max_length: int | None
) -> DPRReader | RealmReader:
    import torch

    from ..models.checkpoint_io import read_config

    family = READER_FAMILIES[name]
    files = resolve_checkpoint(source, _MODEL_FILES, _OPTIONAL_FILES)
    model = _build(files, lambda c, raw: family.make_head(c, raw, "reader"), device, dtype)
    reader_class = READER_CLASSES[name]
    return reader_class(
        family, model, _tokenizer(files), files, torch.device(device), dtype, max_length, config=read_config(files)
    )
