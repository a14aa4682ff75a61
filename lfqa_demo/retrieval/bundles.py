"""Portable prebuilt indexes ("bundles"): passage vectors built once, anywhere, loaded in a second.

Embedding the bundled corpus takes minutes on a 2-core CPU without native bf16, so a Space
should never do it on a visitor's click. `python -m lfqa_demo index --out DIR` writes one
bundle per dense retriever; the app loads them from `LFQA_INDEXES=DIR` or
`LFQA_INDEXES=hub:org/name` (a hub *dataset* repo, cache first).

A bundle is a directory named after the retriever:

    DIR/dpr/manifest.json   what the vectors are (below) and each file's size and sha256
    DIR/dpr/vectors.npy     float32 [passages, dim], row i = corpus passage i (numpy format,
                            read with allow_pickle=False)
    DIR/dpr/index.faiss     only for approximate kinds (IVF, HNSW...): the trained faiss index;
                            an exact (flat) index is rebuilt from the vectors in milliseconds

A bundle is operator input, perhaps from a hub repo whose owner is not the operator, so it is
read as data and checked before it is used (the checks are in index_checks.py):

- the manifest: at most 1 MiB, parsed into a typed model (`Manifest`: strict JSON types,
  bounded strings, lists and nesting); any malformed field refuses the bundle;
- it must match what the engine would build itself: the format version, the corpus
  (fingerprint and size), the family, every checkpoint (source and resolved revision: a hub
  commit hash, or "local" plus the weights' size for a directory), the max lengths, the
  dimension, and the index kind this server builds for the corpus;
- each file's size and sha256 as the manifest lists them, the vectors' dtype and shape (read
  from the header of a memory-mapped file, before anything is allocated);
- a faiss file is read with faiss's limits set to its own size (no list or vector inside it can
  claim more than the file holds) and must be the faiss class of its kind, with a quantizer of
  one centroid per list and lists that name every passage once;
- every stored value is finite, and a random sample of 8 passages, drawn anew at each load, is
  embedded here and compared with the stored vectors (cosine >= 0.99, norms within 5%): this
  loads the retriever's passage encoder (for DPR a second model) and embeds one small batch.

Anything else is refused with the reason and the index is built as usual; a bundle is never
used silently when it does not fit, and a malformed one never breaks the retriever. The dtype
may differ: float32, bfloat16 and float16 vectors of the same checkpoint agree to cosine >= 0.999
(`tests/test_precision.py`, `benchmarks/bench_performance.py`), a difference far below the
gaps between retrieval scores, and the index then says which dtype built it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
from pydantic import Field

from ..errors import CheckpointNotFoundError, InvalidInputError
from ..models.retrievers import DenseRetriever
from .corpus import Corpus
from .index_checks import (
    Count,
    IndexRefused,
    Name,
    RetrieverIdentity,
    Seconds,
    Sha256,
    StrictModel,
    Text,
    check_index,
    read_faiss_file,
    read_json_model,
)
from .indexes import INDEX_KINDS, DenseIndex, checkpoint_identity, make_faiss_index, sha256_of

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "lfqa-demo index bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
FAISS_FILE = "index.faiss"
FLOAT_DTYPES = ("torch.float32", "torch.bfloat16", "torch.float16")  # interchangeable within cosine 0.999
HUB_PREFIX = "hub:"


class BundleRefused(IndexRefused):
    """A prebuilt index exists but does not fit (another corpus, checkpoint or format) or is damaged."""


class ManifestHeader(StrictModel):
    """What every version of the manifest starts with: which format it is."""

    format: Name
    format_version: int


class CorpusEntry(StrictModel):
    name: Text = "?"
    fingerprint: Name
    size: Count


class FileEntry(StrictModel):
    bytes: Count
    sha256: Sha256


class Manifest(ManifestHeader, RetrieverIdentity):
    """A bundle's manifest.json (written by write_bundle): what the vectors are, and its files."""

    retriever: Name
    index_kind: Name = "flat"
    corpus: CorpusEntry
    files: Annotated[dict[Name, FileEntry], Field(max_length=8)]
    device: Name = "?"
    libraries: Annotated[dict[Name, Name], Field(max_length=32)] = {}
    build_seconds: Seconds = 0.0
    built_at: Name = "?"


Read = TypeVar("Read", bound=ManifestHeader)  # what _read_manifest_as reads: the header, or all of it


@dataclass(frozen=True)
class BundleSource:
    """Where prebuilt indexes come from: a local directory, or a hub dataset repo (`hub:org/name`)."""

    spec: str

    @property
    def is_hub(self) -> bool:
        return self.spec.startswith(HUB_PREFIX)

    def directory(self) -> Path:
        """The local directory holding the bundles (a hub repo is downloaded first, cache first)."""
        if self.is_hub:
            repo_id, _, revision = self.spec[len(HUB_PREFIX) :].partition("@")
            return download_bundles(repo_id, revision or None)
        path = Path(self.spec).expanduser()
        if not path.is_dir():
            raise BundleRefused(f"LFQA_INDEXES={self.spec!r} is not a directory (nor hub:org/name)")
        return path


def _libraries() -> dict[str, str]:
    import faiss
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    versions["faiss"] = getattr(faiss, "__version__", "?")
    try:
        from importlib.metadata import version

        versions["lfqa_demo"] = version("lfqa-demo")
    except Exception:  # not installed as a distribution (run from a checkout)
        versions["lfqa_demo"] = "checkout"
    return versions


def expected_manifest(retriever: DenseRetriever, corpus: Corpus) -> dict:
    """The fields a bundle's manifest must have for `retriever` over `corpus` (besides dtype)."""
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "retriever": retriever.name,
        "family": retriever.family,
        "checkpoints": checkpoint_identity(retriever),
        "max_question_length": retriever.max_question_length,
        "max_passage_length": retriever.max_passage_length,
        "dim": retriever.dim,
        "corpus": {"fingerprint": corpus.fingerprint, "size": len(corpus)},
    }


def write_bundle(directory: str | Path, retriever: DenseRetriever, corpus: Corpus, index: DenseIndex) -> Path:
    """Write `index` (built by `retriever` over `corpus`) as a bundle in `directory` (created;
    its previous content replaced) and return the directory."""
    import faiss

    if len(index) != len(corpus) or index.dim != retriever.dim:
        raise InvalidInputError(f"the {index.retriever} index does not belong to this corpus and retriever")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # The manifest goes first and comes back last: a half-written bundle has none, so it is never used.
    for stale in (MANIFEST, VECTORS, FAISS_FILE):
        (out / stale).unlink(missing_ok=True)
    np.save(out / VECTORS, np.ascontiguousarray(index.vectors(), dtype=np.float32), allow_pickle=False)
    files = [VECTORS]
    if index.kind != "flat":
        (out / FAISS_FILE).write_bytes(faiss.serialize_index(index.index).tobytes())
        files.append(FAISS_FILE)
    manifest = {
        **expected_manifest(retriever, corpus),
        "dtype": str(retriever.dtype),
        "device": str(retriever.device),
        "index_kind": index.kind,
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint, "size": len(corpus)},
        "files": {name: {"bytes": (out / name).stat().st_size, "sha256": sha256_of(out / name)} for name in files},
        "libraries": _libraries(),
        "build_seconds": round(index.build_seconds, 3),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    return out


def _mismatches(manifest: Manifest, expected: dict) -> list[str]:
    """Why `manifest` does not fit `expected` (expected_manifest), in words (empty when it fits)."""
    why = []
    corpus, want = manifest.corpus, expected["corpus"]
    if corpus.fingerprint != want["fingerprint"] or corpus.size != want["size"]:
        why.append(f"built for another corpus ({corpus.name[:80]!r}, {corpus.size} passages)")
    checkpoints = [c.model_dump(exclude_none=True) for c in manifest.checkpoints]
    if checkpoints != expected["checkpoints"]:
        got = ", ".join(f"{c.source[:100]}@{c.revision[:12]}" for c in manifest.checkpoints)
        use = ", ".join(f"{c['source']}@{c['revision'][:12]}" for c in expected["checkpoints"])
        why.append(f"built with other checkpoints ({got}; this server uses {use})")
    for field in ("family", "max_question_length", "max_passage_length", "dim"):
        if getattr(manifest, field) != expected[field]:
            why.append(f"{field} {repr(getattr(manifest, field))[:40]}, not {expected[field]!r}")
    if manifest.dtype not in FLOAT_DTYPES:
        why.append(f"dtype {manifest.dtype[:40]!r} is not one of {', '.join(FLOAT_DTYPES)}")
    return why


def read_manifest(root: Path, name: str) -> Manifest:
    """The manifest of the bundle in `root`, typed: its format first (another version is refused
    as such), then every field. Raises BundleRefused, saying why."""
    header = _read_manifest_as(root, name, ManifestHeader)
    if header.format != BUNDLE_FORMAT or header.format_version != BUNDLE_VERSION:
        raise BundleRefused(
            f"the prebuilt {name} index does not fit: format {header.format[:40]!r} version "
            f"{header.format_version}, this version reads {BUNDLE_VERSION}"
        )
    return _read_manifest_as(root, name, Manifest)


def _read_manifest_as(root: Path, name: str, model: type[Read]) -> Read:
    try:
        return read_json_model(root / MANIFEST, model)
    except FileNotFoundError:
        raise BundleRefused(f"no prebuilt {name} index ({root.name}/{MANIFEST} is missing)") from None
    except OSError as exc:
        raise BundleRefused(f"the {name} bundle's {MANIFEST} cannot be read ({type(exc).__name__})") from None
    except IndexRefused as exc:  # too large, not JSON, or a field malformed
        raise BundleRefused(f"the {name} bundle's {MANIFEST} {exc}") from None


def _check_files(root: Path, manifest: Manifest, name: str) -> None:
    """Each file the bundle needs is there, with the size and sha256 its manifest gives."""
    for file in [VECTORS] + ([FAISS_FILE] if manifest.index_kind != "flat" else []):
        path, entry = root / file, manifest.files.get(file)
        size = path.stat().st_size if path.is_file() else None
        if size is None or entry is None or size != entry.bytes or sha256_of(path) != entry.sha256:
            state = "missing" if size is None else f"{size:,} bytes, its checksum or size does not match"
            raise BundleRefused(f"the prebuilt {name} index is damaged or truncated ({file}: {state})")


def _read_vectors(root: Path, retriever: DenseRetriever, corpus: Corpus) -> np.ndarray:
    """The bundle's vectors, memory-mapped: the header's dtype and shape are checked before
    anything is allocated."""
    try:
        vectors = np.load(root / VECTORS, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleRefused(f"the prebuilt {retriever.name} vectors cannot be read ({type(exc).__name__})") from None
    if vectors.dtype != np.float32 or vectors.shape != (len(corpus), retriever.dim):
        raise BundleRefused(
            f"the prebuilt {retriever.name} vectors are {vectors.dtype} {vectors.shape}, "
            f"not float32 ({len(corpus)}, {retriever.dim})"
        )
    return vectors


def load_bundle(
    directory: str | Path, retriever: DenseRetriever, corpus: Corpus, kind: str | None = None
) -> DenseIndex:
    """The index in the bundle `directory` for `retriever` over `corpus`, after the checks of the
    module docstring (which embed a random sample of 8 passages). Raises BundleRefused, saying
    why, when the bundle is missing, malformed, damaged, does not fit or does not hold these passages."""
    started = time.perf_counter()
    root, name = Path(directory), retriever.name
    manifest = read_manifest(root, name)
    why = _mismatches(manifest, expected_manifest(retriever, corpus))
    if why:
        raise BundleRefused(f"the prebuilt {name} index does not fit: {'; '.join(why)}")
    found = manifest.index_kind
    if kind is not None and found != kind:  # a bundle may not change how this server searches
        raise BundleRefused(f"the prebuilt {name} index is {found[:40]!r}; this server builds {kind!r} for this corpus")
    if found not in INDEX_KINDS or found == "auto":
        raise BundleRefused(f"the prebuilt {name} index is of an unknown kind {found[:40]!r}")
    _check_files(root, manifest, name)
    vectors = _read_vectors(root, retriever, corpus)
    what = "index" if found == "flat" else "faiss index"  # an exact index is rebuilt from the vectors
    try:
        if found == "flat":
            index = make_faiss_index(np.array(vectors), "flat")
        else:  # a faiss file from elsewhere (a hub repo) may be damaged or hostile: refused, then built here
            index = read_faiss_file(root / FAISS_FILE)
        check_index(index, found, retriever, corpus)
    except IndexRefused as exc:
        raise BundleRefused(f"the prebuilt {name} {what} {exc}") from None
    note = None
    if manifest.dtype != str(retriever.dtype):
        note = f"prebuilt in {manifest.dtype.removeprefix('torch.')} (this server runs {retriever.dtype})"
    log.info("%s: prebuilt index loaded from %s in %.2f s", name, root, time.perf_counter() - started)
    return DenseIndex(
        name, found, index, retriever.dim, manifest.build_seconds, True, root, origin="prebuilt", note=note
    )


def download_bundles(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of the hub dataset repo `repo_id` holding bundles: from the Hugging Face
    cache when it is there, else downloaded once (failing at once, with what to do, when the hub
    cannot be reached)."""
    from huggingface_hub import snapshot_download

    from ..models.hub import _REPO_ID, hub_cache_dir, hub_unreachable

    if not _REPO_ID.match(repo_id) or "/" not in repo_id:
        raise BundleRefused(f"LFQA_INDEXES=hub:{repo_id!r} does not name a hub repo like hub:org/name")
    # Only the bundles' own files: whatever else the repo holds is never downloaded.
    files = [f"*/{MANIFEST}", f"*/{VECTORS}", f"*/{FAISS_FILE}"]
    try:
        return Path(
            snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=revision,
                cache_dir=hub_cache_dir(),
                local_files_only=True,
                allow_patterns=files,
            )
        )
    except Exception:  # not cached yet: go online once
        pass
    unreachable = hub_unreachable()
    if unreachable:
        raise CheckpointNotFoundError(
            f"The prebuilt indexes hub:{repo_id} are not in the Hugging Face cache ({hub_cache_dir()}) and "
            f"{unreachable}. Run `hf download {repo_id} --repo-type dataset --local-dir DIR` where the hub "
            "can be reached and set LFQA_INDEXES=DIR, or build them here with "
            "`python -m lfqa_demo index --corpus bundled --out DIR`."
        )
    try:
        return Path(
            snapshot_download(
                repo_id, repo_type="dataset", revision=revision, cache_dir=hub_cache_dir(), allow_patterns=files
            )
        )
    except Exception as exc:  # repo missing, private, network gone mid-way
        raise CheckpointNotFoundError(
            f"Could not download the prebuilt indexes hub:{repo_id}: {type(exc).__name__}: {exc}"
        ) from exc


def push_bundles(directory: str | Path, repo_id: str) -> str:
    """Upload the bundles in `directory` to the hub dataset repo `repo_id` (created if needed);
    returns the repo's URL. Needs a token with write access (`hf auth login` or HF_TOKEN)."""
    from huggingface_hub import HfApi

    from ..models.hub import hub_unreachable

    unreachable = hub_unreachable()
    if unreachable:
        raise CheckpointNotFoundError(f"Cannot push to hub:{repo_id}: {unreachable}.")
    api = HfApi()
    url = api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    api.upload_folder(
        folder_path=str(directory),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=[f"*/{MANIFEST}", f"*/{VECTORS}", f"*/{FAISS_FILE}"],
        commit_message="lfqa-demo prebuilt indexes",
    )
    return str(url)
