"""faiss inner-product indexes of passage embeddings, built in batches and cached on disk.

A cache entry is a directory named by a key over everything that changes the vectors
(`cache_identity`): the retriever's name and family, its checkpoints and their revisions, max
lengths and dtype; the corpus fingerprint and size; the index kind and dimension. It holds
`index.faiss` and `meta.json`, which repeats that identity with the file's size and sha256.
An entry is written to a temporary directory and renamed into place, so a crash mid-build
never leaves a half-written entry or damages a complete one.

An entry is used only after the checks of index_checks.py: meta.json parsed into a typed,
bounded model whose identity must equal this server's; the file's size and checksum; the faiss
file read within its own size; its class, shape, quantizer and lists; finite vectors; and a
random sample of passages embedded again and compared with the stored vectors (so that a file
swapped for another retriever's, checksum and all, is caught). An entry that fails is logged
with the reason, built again, and the new entry replaces it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InvalidInputError
from ..models.retrievers import DenseRetriever
from .corpus import Corpus
from .index_checks import (
    Checkpoints,
    Count,
    IndexRefused,
    Name,
    Seconds,
    Sha256,
    StrictModel,
    Text,
    check_index,
    read_faiss_file,
    read_json_model,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: meta.json holds the whole identity (cache_identity) and the file's size
INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
# Above this corpus size "auto" picks IVF: exact search costs ~0.14 ms per 1,000 768-d vectors
# a query here (142 ms at 1M), IVF-Flat 1.4 ms at recall@10 1.0 (benchmarks/bench_scale.py).
APPROXIMATE_ABOVE = 200_000
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")
Progress = Callable[[int, int], None]


def default_cache_dir() -> Path:
    """$LFQA_CACHE, else ~/.cache/lfqa-demo."""
    return Path(os.environ.get("LFQA_CACHE") or Path.home() / ".cache" / "lfqa-demo").expanduser()


@dataclass
class DenseIndex:
    """A faiss index over one retriever's passage embeddings of one corpus."""

    retriever: str
    kind: str
    index: object  # faiss.Index
    dim: int
    build_seconds: float
    from_cache: bool
    path: Path | None
    persist_error: str | None = None  # why it could not be written to the cache (kept in memory then)
    origin: str = "built"  # "built" (embedded here), "cache" (this machine's index cache) or "prebuilt" (a bundle)
    note: str | None = None  # anything a status line should add ("prebuilt in float32 ...")
    refused: str | None = None  # why a prebuilt bundle was not used, when it was built instead
    recall: float | None = None  # recall@10 of exact search it keeps (a compressed index), measured at build

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [n, k'], indices [n, k']) by inner product, k' = min(k, size)."""
        k = max(0, min(k, len(self)))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids

    def vectors(self) -> np.ndarray:
        """All stored passage vectors, float32 [size, dim] (for plots)."""
        return self.index.reconstruct_n(0, len(self)) if not self.kind.startswith("ivf") else _ivf_vectors(self.index)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of the given passages, float32 [len(rows), dim] (for plots)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.kind.startswith("ivf"):
            return _ivf_vectors(self.index)[rows]
        return np.asarray(self.index.reconstruct_batch(rows), dtype=np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes it holds in memory (for a faiss index: its serialised size)."""
        import faiss

        if hasattr(self.index, "nbytes_in_ram"):  # a compressed index (compressed.py) knows its own
            return int(self.index.nbytes_in_ram)
        if self.kind in ("flat", "exact"):  # no need to serialise gigabytes to count them
            return len(self) * self.dim * 4
        return int(faiss.serialize_index(self.index).nbytes)


def _ivf_vectors(index) -> np.ndarray:
    index.make_direct_map()
    return index.reconstruct_n(0, index.ntotal)


def choose_kind(kind: str, size: int, approximate_above: int = APPROXIMATE_ABOVE) -> str:
    if kind not in INDEX_KINDS:
        raise InvalidInputError(f"index kind must be one of {INDEX_KINDS}, not {kind!r}")
    if kind != "auto":
        return kind
    return "ivf" if size > approximate_above else "flat"


def make_faiss_index(vectors: np.ndarray, kind: str):
    """An inner-product faiss index of the given kind holding `vectors` [n, d].

    Settings (benchmarks/bench_scale.py measures them over 1M vectors): HNSW with 32 links,
    efConstruction 64, efSearch 128; IVF with 4 sqrt(n) lists trained on up to 50 vectors
    a list, 32 lists probed; "ivfpq" adds product quantisation (d/8 bytes a vector).
    """
    import faiss

    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.hnsw.efSearch = 128
    elif kind in ("ivf", "ivfpq"):
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))  # faiss wants ~39 training points a list
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, max(1, dim // 8), 8, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors if n <= 50 * nlist else vectors[rng.choice(n, size=50 * nlist, replace=False)]
        index.train(np.ascontiguousarray(sample))
        index.nprobe = min(nlist, 32)  # faiss's Python wrapper keeps `quantizer` alive with the index
    else:
        raise InvalidInputError(f"unknown index kind {kind!r}")
    for start in range(0, n, 200_000):  # in chunks: HNSW and IVF add faster than one huge call copies
        index.add(np.ascontiguousarray(vectors[start : start + 200_000]))
    return index


def checkpoint_identity(retriever: DenseRetriever) -> list[dict]:
    """What names each checkpoint of `retriever` exactly: the hub repo and its commit, or, for a
    local directory (revision "local"), its path and the weights file's size."""
    out = []
    for files in retriever.checkpoints:
        entry = {"source": files.source, "revision": files.revision}
        if files.revision == "local":
            entry["weights_bytes"] = files.weights.stat().st_size
        out.append(entry)
    return out


def cache_identity(retriever: DenseRetriever, corpus: Corpus, kind: str) -> dict:
    """Everything that decides a cache entry's vectors: its key hashes it, its meta.json repeats it."""
    return {
        "format": FORMAT_VERSION,
        "retriever": retriever.name,
        "family": retriever.family,
        "checkpoints": checkpoint_identity(retriever),
        "max_question_length": retriever.max_question_length,
        "max_passage_length": retriever.max_passage_length,
        "dtype": str(retriever.dtype),
        "kind": kind,
        "corpus": corpus.fingerprint,
        "size": len(corpus),
        "dim": retriever.dim,
    }


def cache_key(retriever: DenseRetriever, corpus: Corpus, kind: str) -> str:
    identity = cache_identity(retriever, corpus, kind)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


class CacheMeta(StrictModel):
    """A cache entry's meta.json: its identity (cache_identity), then what describes the file."""

    format: int
    retriever: Name
    family: Name
    checkpoints: Checkpoints
    max_question_length: Count
    max_passage_length: Count
    dtype: Name
    kind: Name
    corpus: Name
    size: Count
    dim: Count
    corpus_name: Text = "?"
    bytes: Count
    sha256: Sha256
    build_seconds: Seconds = 0.0

    def identity(self) -> dict:
        return self.model_dump(exclude={"corpus_name", "bytes", "sha256", "build_seconds"}, exclude_none=True)


def sha256_of(path: Path) -> str:
    """The file's sha256, hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_cached(entry: Path, retriever: DenseRetriever, corpus: Corpus, kind: str):
    """The index in the cache entry `entry` and its CacheMeta, or None when there is no entry or
    it fails a check (then logged with the reason: the caller builds the index and replaces it)."""
    if not (entry / META_FILE).is_file():
        return None
    try:
        return _checked_entry(entry, retriever, corpus, kind)
    except (IndexRefused, OSError) as exc:
        log.warning("%s: the cached index %s is refused and built again: it %s", retriever.name, entry.name, exc)
    except Exception:  # a check that broke (a bug): never worse than building the index again
        log.exception("%s: the cached index %s could not be checked; building it again", retriever.name, entry.name)
    return None


def _checked_entry(entry: Path, retriever: DenseRetriever, corpus: Corpus, kind: str):
    try:
        meta = read_json_model(entry / META_FILE, CacheMeta)
    except IndexRefused as exc:
        raise IndexRefused(f"has a meta.json that {exc}") from None
    expected, found = cache_identity(retriever, corpus, kind), meta.identity()
    differ = [f"{field} {str(found.get(field))[:80]!r}" for field in expected if found.get(field) != expected[field]]
    if differ:
        raise IndexRefused(f"was built for something else ({'; '.join(differ)})")
    path = entry / INDEX_FILE
    if path.stat().st_size != meta.bytes or sha256_of(path) != meta.sha256:
        raise IndexRefused(f"has an {INDEX_FILE} whose size or checksum does not match its meta.json")
    index = read_faiss_file(path)
    check_index(index, kind, retriever, corpus)
    return index, meta


def build_index(
    retriever: DenseRetriever,
    corpus: Corpus,
    *,
    kind: str = "auto",
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: Progress | None = None,
    approximate_above: int = APPROXIMATE_ABOVE,
) -> DenseIndex:
    """The index of `corpus` for `retriever`: from the cache when a valid entry exists, else
    embedded in batches (reporting `progress(done, total)`) and cached under `cache_dir`
    (default: `default_cache_dir()`)."""
    import faiss

    kind = choose_kind(kind, len(corpus), approximate_above)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    entry = root / "indexes" / f"{retriever.name}-{cache_key(retriever, corpus, kind)}"
    cached = _load_cached(entry, retriever, corpus, kind)
    if cached is not None:
        index, meta = cached
        if progress is not None:
            progress(len(corpus), len(corpus))
        return DenseIndex(retriever.name, kind, index, retriever.dim, meta.build_seconds, True, entry, origin="cache")

    started = time.perf_counter()
    vectors = retriever.encode_passages(corpus.as_dicts(), batch_size=batch_size, progress=progress)
    index = make_faiss_index(vectors, kind) if len(corpus) else faiss.IndexFlatIP(retriever.dim)
    seconds = time.perf_counter() - started
    try:
        meta = {**cache_identity(retriever, corpus, kind), "corpus_name": corpus.name, "build_seconds": seconds}
        _write_entry(entry, index, meta)
    except OSError as exc:  # read-only or full disk: the index still serves, from memory
        reason = f"the index cache cannot be written: {os.strerror(exc.errno) if exc.errno else type(exc).__name__}"
        log.warning("%s index of %r kept in memory only: %s (%s)", retriever.name, corpus.name, reason, exc)
        return DenseIndex(retriever.name, kind, index, retriever.dim, seconds, False, None, reason)
    return DenseIndex(retriever.name, kind, index, retriever.dim, seconds, False, entry)


def _write_entry(entry: Path, index, meta: dict) -> None:
    """Write into a fresh temporary directory, then rename it into place (atomic on POSIX)."""
    import faiss

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # Python's own write, not faiss.write_index: a full disk must be an OSError (ENOSPC) that
        # the caller can recognise, not a RuntimeError whose text holds the server's path.
        (tmp / INDEX_FILE).write_bytes(faiss.serialize_index(index).tobytes())
        meta = {**meta, "bytes": (tmp / INDEX_FILE).stat().st_size, "sha256": sha256_of(tmp / INDEX_FILE)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if entry.exists():  # a stale or corrupt entry: move it aside first, then drop it
            trash = entry.parent / f".old-{entry.name}-{uuid.uuid4().hex[:8]}"
            os.replace(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, entry)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        # Another process put the same entry in place first; it is equivalent, keep it.
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
