"""Reading weight files safely and copying them into a module, strictly.

Only tensors are ever deserialised: safetensors, or `torch.load(weights_only=True)`.
Every parameter the module expects must be in the file with the same shape; tensors the
file holds beyond that must be on a short list of known-unused names, or loading fails.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Iterable

import torch
from torch import nn

from ..errors import CheckpointError
from .hub import CheckpointFiles

# Tensors present in the real files that no model here uses:
# position_ids buffers (DPR, older exports), pooler weights where the family reads h_CLS.
ALWAYS_IGNORED = ("*embeddings.position_ids",)


MAP_ABOVE_BYTES = 2 << 30  # a BERT-base checkpoint is ~0.44 GB


def _is_zip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def read_config(files: CheckpointFiles) -> dict:
    """The checkpoint's config.json as a dict."""
    path = files.directory / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} of {files.source!r} is not valid JSON ({exc}); delete it and download it again."
        ) from exc


def read_state_dict(files: CheckpointFiles) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint's weights file, on the CPU."""
    path = files.weights
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            # A file far larger than a model (REALM open-QA's 7.9 GB, mostly block_emb) is mapped, not
            # read: the tensors a model does not take are never paged in. Zip files only (torch >= 1.6).
            mapped = path.stat().st_size > MAP_ABOVE_BYTES and _is_zip(path)
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except Exception as exc:  # truncated zip, bad header, a pickle holding more than tensors...
        raise CheckpointError(
            f"Cannot read the weights of {files.source!r} from {path}: {type(exc).__name__}: {exc}. "
            "The file is corrupt or truncated (an interrupted download?): delete it and download it again."
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} of {files.source!r} does not hold a flat dict of tensors.")
    # Checkpoints converted from TF 1 name LayerNorm parameters gamma/beta.
    return {
        k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
        for k, v in state.items()
    }


def load_strict(
    module: nn.Module, state: dict[str, torch.Tensor], files: CheckpointFiles, ignored: Iterable[str] = ()
) -> None:
    """Give `module` (typically built on the meta device) the tensors of `state`; names must match exactly.

    `ignored` holds fnmatch patterns of tensors known to be unused. Raises CheckpointError
    naming the key and the file on a missing tensor, a shape mismatch or an unknown tensor.
    """
    patterns = (*ALWAYS_IGNORED, *ignored)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(
            f"{files.weights} of {files.source!r} lacks {len(missing)} weight(s) this model needs, e.g. {missing[:5]}. "
            "Is it a checkpoint of the right family?"
        )
    for key, param in expected.items():
        if state[key].shape != param.shape:
            raise CheckpointError(
                f"Weight {key!r} in {files.weights} of {files.source!r} has shape {tuple(state[key].shape)}, "
                f"but config.json implies {tuple(param.shape)}."
            )
    unknown = [k for k in state if k not in expected and not any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    if unknown:
        raise CheckpointError(
            f"{files.weights} of {files.source!r} holds {len(unknown)} tensor(s) this model does not know, "
            f"e.g. {unknown[:5]}. "
            "Is it a checkpoint of the right family?"
        )
    # assign=True adopts the file's tensors, so a module built on the meta device needs no init.
    module.load_state_dict({k: state[k] for k in expected}, strict=True, assign=True)
