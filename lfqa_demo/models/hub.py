"""Finding a checkpoint's files: a local directory, or a repo id in the Hugging Face cache.

The hub may be unreachable (a Space behind a proxy, this dev machine, CI). Every download
call through `huggingface_hub` then takes ~23 s to fail (five retries), so we always look
in the cache first with `local_files_only=True` and go online at most once per checkpoint,
only when something needed is missing and `HF_HUB_OFFLINE` is not set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import CheckpointNotFoundError, InvalidTypeError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class CheckpointFiles:
    """Where one checkpoint's files live on disk.

    `source` is what the caller named (repo id or directory); `revision` is the commit hash
    of the cached snapshot, or "local" for a directory.
    """

    source: str
    revision: str
    directory: Path
    weights: Path

    def path(self, name: str) -> Path | None:
        """The path of file `name` in this checkpoint, or None when the checkpoint lacks it."""
        p = self.directory / name
        return p if p.is_file() else None


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set; read at call time so tests and scripts can flip it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_unreachable() -> str | None:
    """Why the hub cannot be used now ("HF_HUB_OFFLINE is set", "the hub ... cannot be reached"),
    or None when it answers. One quick probe without retries: huggingface_hub's and datasets'
    own calls retry for ~23 s before they fail when the network is down."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=5.0)
    except Exception as exc:
        return f"the hub ({constants.ENDPOINT}) cannot be reached ({type(exc).__name__})"
    return None


def hub_cache_dir() -> Path:
    """The standard hub cache directory, honouring HF_HUB_CACHE and HF_HOME at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_checkpoint(source: str, required: Sequence[str], optional: Sequence[str] = ()) -> CheckpointFiles:
    """Locate `required` files plus one weights file (safetensors preferred) for `source`.

    `source` is an existing local directory or a hub repo id (optionally `repo@revision`).
    Optional files are used when present and never trigger a download on their own.
    Raises CheckpointNotFoundError naming the source and saying how to get the files.
    """
    if not isinstance(source, str) or not source.strip():
        raise InvalidTypeError(f"checkpoint must be a repo id or a directory path, got {source!r}")
    local = Path(source).expanduser()
    if local.is_dir():
        return _resolve_directory(source, local, required)
    repo_id, _, revision = source.partition("@")
    if not _REPO_ID.match(repo_id) or source.startswith((".", "/", "~")):
        raise CheckpointNotFoundError(f"{source!r} is neither an existing directory nor a hub repo id like 'org/name'.")
    return _resolve_repo(repo_id, revision or None, required, optional)


def _resolve_directory(source: str, directory: Path, required: Sequence[str]) -> CheckpointFiles:
    missing = [name for name in required if not (directory / name).is_file()]
    weights = next((directory / w for w in WEIGHT_FILES if (directory / w).is_file()), None)
    if weights is None:
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise CheckpointNotFoundError(f"The checkpoint directory {str(directory)!r} lacks: {', '.join(missing)}.")
    return CheckpointFiles(source=source, revision="local", directory=directory.resolve(), weights=weights.resolve())


def image_cache_dir() -> Path:
    """The hub cache a Docker image or Space build fills (`preload_from_hub`): ~/.cache/huggingface/hub.
    It is searched after `hub_cache_dir()` when HF_HOME points elsewhere (a persistent /data)."""
    return Path("~/.cache/huggingface/hub").expanduser()


def _caches() -> list[Path]:
    """Where to look for cached checkpoints: `hub_cache_dir()`, then `image_cache_dir()` if different."""
    caches = [hub_cache_dir()]
    if image_cache_dir().is_dir() and image_cache_dir().resolve() != caches[0].resolve():
        caches.append(image_cache_dir())
    return caches


def _cached(repo_id: str, revision: str | None, name: str, cache: Path) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, name, revision=revision, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _how_to_get(repo_id: str, names: Sequence[str]) -> str:
    return (
        f"To get them, run `hf download {repo_id} {' '.join(names)}` on a machine that can reach the hub "
        f"(then copy its cache, {hub_cache_dir()}, here; or set HF_HUB_CACHE to it), "
        "or pass the path of a local directory that holds these files instead of the repo id."
    )


def _resolve_repo(
    repo_id: str, revision: str | None, required: Sequence[str], optional: Sequence[str]
) -> CheckpointFiles:
    # One snapshot supplies every file: a cache holding the whole checkpoint (the image's, checked
    # first, or the main one), else what the main cache has, completed by a download.
    names = [*required, *WEIGHT_FILES, *optional]
    for cache in reversed(_caches()):  # the main cache last: its findings are the ones kept when none is whole
        found = {name: _cached(repo_id, revision, name, cache) for name in names}
        weights_cached = any(found[w] for w in WEIGHT_FILES)
        missing = [name for name in required if found[name] is None]
        if not missing and weights_cached:
            break
    if missing or not weights_cached:
        found.update(_download_missing(repo_id, revision, missing, weights_cached, optional, found))
    weights = next(found[w] for w in WEIGHT_FILES if found[w] is not None)
    directory = found[required[0]].parent if required else weights.parent
    return CheckpointFiles(source=repo_id, revision=directory.name, directory=directory, weights=weights)


def _download_missing(
    repo_id: str,
    revision: str | None,
    missing: list[str],
    weights_cached: bool,
    optional: Sequence[str],
    found: dict[str, Path | None],
) -> dict[str, Path]:
    """The one online step: list the repo, then fetch what is missing. Fails fast and clearly."""
    wanted = missing + ([] if weights_cached else list(WEIGHT_FILES[-1:]))
    if hub_offline():
        raise CheckpointNotFoundError(
            f"The files of {repo_id!r} are not in the Hugging Face cache ({hub_cache_dir()}) and "
            "HF_HUB_OFFLINE is set, "
            f"so they cannot be downloaded (missing: {', '.join(wanted)}). " + _how_to_get(repo_id, wanted)
        )
    from huggingface_hub import HfApi, hf_hub_download

    unreachable = hub_unreachable()
    if unreachable:
        raise CheckpointNotFoundError(
            f"The files of {repo_id!r} are not in the Hugging Face cache ({hub_cache_dir()}) and {unreachable}; "
            f"missing: {', '.join(wanted)}. " + _how_to_get(repo_id, wanted)
        )
    try:
        listing = set(HfApi().list_repo_files(repo_id, revision=revision))
        todo = [m for m in missing if m in listing]
        absent = [m for m in missing if m not in listing]
        if absent:
            raise CheckpointNotFoundError(
                f"The hub repo {repo_id!r} has no {', '.join(absent)}; is it the right checkpoint?"
            )
        if not weights_cached:
            weight = next((w for w in WEIGHT_FILES if w in listing), None)
            if weight is None:
                raise CheckpointNotFoundError(
                    f"The hub repo {repo_id!r} holds no weights file ({' or '.join(WEIGHT_FILES)})."
                )
            todo.append(weight)
        todo += [o for o in optional if found.get(o) is None and o in listing]
        return {
            name: Path(hf_hub_download(repo_id, name, revision=revision, cache_dir=hub_cache_dir())) for name in todo
        }
    except CheckpointNotFoundError:
        raise
    except Exception as exc:  # network down, repo gone, auth required, disk full...
        raise CheckpointNotFoundError(
            f"Could not download {repo_id!r} (missing from the cache: {', '.join(wanted)}): "
            f"{type(exc).__name__}: {exc}. " + _how_to_get(repo_id, wanted)
        ) from exc
