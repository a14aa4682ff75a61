"""`load_reader`: the "dpr" and "realm" readers, loaded once through the models' shared registry.

It lives here, beside the readers, so that `lfqa_demo.models` never imports `lfqa_demo.reading`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..models.families import READER_FAMILIES
from ..models.hub import resolve_checkpoint
from ..models.loading import _MODEL_FILES, _OPTIONAL_FILES, _build, _once, _tokenizer
from .readers import READER_CLASSES, DPRReader, RealmReader

if TYPE_CHECKING:
    import torch


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
        f"reader {name}",
        functools.partial(_load_reader, name, source, str(dev), dt, max_length),
    )


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
