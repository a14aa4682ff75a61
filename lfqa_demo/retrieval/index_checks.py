"""What a stored index must show before it is searched, whether a prebuilt bundle (bundles.py)
or this machine's index cache (indexes.py): either can lie, a bundle because whoever published
it may be hostile, a cache entry because its files can be damaged or swapped.

- Its description (a bundle's manifest.json, a cache entry's meta.json) is read as data: at
  most `MAX_JSON_BYTES`, parsed by pydantic into a typed model (strict types, bounded sizes and
  nesting), any malformed field refused.
- A faiss file is read with faiss's deserialization limits set to the file's own size, so no
  count or vector inside it can claim, and allocate, more than the file holds (faiss allocates
  what a list claims before it reads it: 14 KB once cost 2.3 GB), and read-only.
- The index must be the faiss class this code builds for its kind, ranking by inner product,
  with one vector per passage; an IVF keeps its lists in memory (not in a file named inside it),
  its quantizer holds one centroid per list and its lists name every passage exactly once.
- Every stored float (vectors, centroids, codebooks) is finite.
- A random sample of `SAMPLE_ROWS` passages, drawn anew at each load so that a liar cannot know
  which rows are checked, is embedded here with the retriever and compared with what the index
  stores for them: cosine >= `MIN_COSINE` and norms within `MAX_NORM_RATIO` of each other.

Each check fails with `IndexRefused`, saying why; the caller then builds the index here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..errors import LfqaError
from ..models.retrievers import DenseRetriever
from .corpus import Corpus

MAX_JSON_BYTES = 1 << 20  # a manifest or meta.json is about 1 KB; past 1 MiB it is not one
SAMPLE_ROWS = 8  # passages embedded at each load: one small batch (9 ms with the test fixtures)
# One checkpoint in float32, bfloat16 or float16 agrees to cosine >= 0.999 (tests/test_precision.py)
# and to well under 1% in norm; another passage, or a row of another model, does not.
MIN_COSINE = 0.99
MAX_NORM_RATIO = 1.05
# The faiss class each index kind is built as (indexes.make_faiss_index); nothing else is read.
FAISS_CLASSES = {"flat": "IndexFlatIP", "hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat", "ivfpq": "IndexIVFPQ"}

_FAISS_READ = threading.Lock()  # faiss's deserialization limits are process-wide: one read at a time


class IndexRefused(LfqaError):
    """A stored index (prebuilt or cached) failed a check; the message says which, as a predicate
    ("holds vectors that are not finite") for the caller to put after what it was."""


# -- descriptions as typed data --------------------------------------------------------------------
class StrictModel(BaseModel):
    """JSON types as they are (no "1" for 1, no true for 1, no NaN), frozen; unknown fields ignored."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", allow_inf_nan=False)


Name = Annotated[str, StringConstraints(max_length=200)]
Text = Annotated[str, StringConstraints(max_length=2000)]
Count = Annotated[int, Field(ge=0, le=1 << 50)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Seconds = Annotated[float, Field(ge=0)]


class CheckpointEntry(StrictModel):
    """One checkpoint, as indexes.checkpoint_identity names it."""

    source: Text
    revision: Name
    weights_bytes: Count | None = None  # only for a local directory (revision "local")


Checkpoints = Annotated[list[CheckpointEntry], Field(min_length=1, max_length=4)]


class RetrieverIdentity(StrictModel):
    """What makes a retriever's vectors what they are, as a stored index records it (a bundle's
    manifest, a corpus bundle's entry): compared with the server's retriever before use."""

    family: Name
    checkpoints: Checkpoints
    max_question_length: Count
    max_passage_length: Count
    dim: Count
    dtype: Name


M = TypeVar("M", bound=BaseModel)


def read_json_model(path: Path, model: type[M]) -> M:
    """The JSON file `path` parsed into `model`. Raises IndexRefused when the file is larger than
    MAX_JSON_BYTES (read no further), nested deeper than pydantic's parser allows, or any field is
    missing or malformed; OSError (FileNotFoundError...) when it cannot be read at all."""
    with open(path, "rb") as f:  # bounded read: a FIFO or a huge file is never read whole
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise IndexRefused(f"is larger than {MAX_JSON_BYTES:,} bytes")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise IndexRefused(f"is malformed: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError, shown: int = 3) -> str:
    """Where and what, for the first few errors, without the offending values (they may be huge)."""
    errors = exc.errors(include_input=False, include_url=False)
    parts = [": ".join(filter(None, [".".join(str(p) for p in e["loc"]), e["msg"]])) for e in errors[:shown]]
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return ("; ".join(parts) + more)[:400]


# -- faiss files -------------------------------------------------------------------------------------
def read_faiss_file(path: Path):
    """The faiss index in `path`, read so that no size inside the file can make faiss allocate
    more than the file holds: every vector it reads is checked against the file's size first, and
    every count (lists...) against an eighth of it (each counted item takes 8 bytes or more)."""
    import faiss

    size = path.stat().st_size
    with _FAISS_READ:
        saved = faiss.get_deserialization_vector_byte_limit(), faiss.get_deserialization_loop_limit()
        faiss.set_deserialization_vector_byte_limit(size + 1)  # faiss wants a vector's bytes < the limit
        faiss.set_deserialization_loop_limit(max(size // 8, 1))
        try:  # read-only: lists "on disk" (a path inside the file) are never opened for writing
            return faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY)
        except (RuntimeError, MemoryError) as exc:  # its message names the server's path: not shown
            raise IndexRefused(f"cannot be read ({type(exc).__name__})") from None
        finally:
            faiss.set_deserialization_vector_byte_limit(saved[0])
            faiss.set_deserialization_loop_limit(saved[1])


# -- the index itself ----------------------------------------------------------------------------------
def check_index(index, kind: str, retriever: DenseRetriever, corpus: Corpus) -> None:
    """Refuse (IndexRefused) a faiss index unless it is the `kind` this code builds, holds one
    finite vector per passage of `corpus`, and a random sample of passages embeds to what it stores."""
    check_structure(index, kind, len(corpus), retriever.dim)
    check_finite(index)
    check_sample(index, retriever, corpus)


def check_structure(index, kind: str, size: int, dim: int) -> None:
    """The faiss class of `kind`, inner product, `size` vectors of `dim`; an IVF's quantizer and lists
    consistent (then it gets a direct map, to read a row back by its passage number)."""
    import faiss

    found = type(index).__name__
    if found != FAISS_CLASSES.get(kind):
        raise IndexRefused(f"is a {found[:40]}, not the {kind} index this server builds")
    if index.ntotal != size or index.d != dim:
        raise IndexRefused(f"holds {index.ntotal:,} vectors of {index.d}, not {size:,} of {dim} (one per passage)")
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexRefused("does not rank by inner product")
    if kind == "hnsw":
        storage = faiss.downcast_index(index.storage)
        if type(storage).__name__ != "IndexFlatIP" or storage.ntotal != size or index.hnsw.levels.size() != size:
            raise IndexRefused("has an HNSW graph and vectors of different sizes")
    elif kind in ("ivf", "ivfpq"):
        _check_ivf(index, size)


def _check_ivf(index, size: int) -> None:
    import faiss

    # In memory, as make_faiss_index writes them: lists "on disk" name a file elsewhere, and reading
    # past its end would crash the process. Checked before a list is touched.
    lists = faiss.downcast_InvertedLists(index.invlists) if index.invlists is not None else None
    if type(lists).__name__ != "ArrayInvertedLists":
        raise IndexRefused(f"keeps its inverted lists in a {type(lists).__name__[:40]}, not in memory")
    if lists.nlist != index.nlist or lists.code_size != index.code_size:
        raise IndexRefused("has inverted lists of another shape than its header says")
    if isinstance(index, faiss.IndexIVFFlat) and index.code_size != 4 * index.d:
        raise IndexRefused("stores vectors of another size than its dimension")
    if isinstance(index, faiss.IndexIVFPQ) and index.code_size != index.pq.code_size:
        raise IndexRefused("stores codes of another size than its product quantizer")
    quantizer = faiss.downcast_index(index.quantizer)
    if type(quantizer).__name__ != "IndexFlatIP" or quantizer.ntotal != index.nlist or quantizer.d != index.d:
        raise IndexRefused(f"has a quantizer of {quantizer.ntotal:,} centroids for {index.nlist:,} lists")
    sizes = [lists.list_size(i) for i in range(index.nlist)]
    ids = [faiss.rev_swig_ptr(lists.get_ids(i), n).copy() for i, n in enumerate(sizes) if n]
    ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    if len(ids) != size or not np.array_equal(np.sort(ids), np.arange(size)):
        raise IndexRefused("names passages the corpus does not have")
    index.make_direct_map()


def _float_arrays(index) -> Iterator[np.ndarray]:
    """Views (no copies) of every float array a search reads: a flat or HNSW index's vectors, an
    IVF's centroids and lists, a product quantizer's codebooks."""
    import faiss

    if isinstance(index, faiss.IndexHNSWFlat):
        yield from _float_arrays(faiss.downcast_index(index.storage))
    elif isinstance(index, faiss.IndexFlat):
        if index.ntotal:
            yield faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d)
    elif isinstance(index, faiss.IndexIVF):
        yield from _float_arrays(faiss.downcast_index(index.quantizer))
        if isinstance(index, faiss.IndexIVFPQ):
            yield faiss.vector_to_array(index.pq.centroids)
            return
        for i in range(index.nlist):  # IVF-Flat: each list holds the raw float32 vectors
            n = index.invlists.list_size(i)
            if n:
                yield faiss.rev_swig_ptr(index.invlists.get_codes(i), n * index.code_size).view(np.float32)


def check_finite(index, block: int = 1 << 22) -> None:
    """No NaN nor infinity anywhere (one such value gives a passage NaN or infinite scores, or none)."""
    for array in _float_arrays(index):
        for start in range(0, array.size, block):  # in blocks: no second copy of a big index
            if not np.isfinite(array[start : start + block]).all():
                raise IndexRefused("holds vectors that are not finite (NaN or infinity)")


def check_sample(index, retriever: DenseRetriever, corpus: Corpus, rows: int = SAMPLE_ROWS) -> None:
    """Embed `rows` passages drawn at random (anew at each call) and compare them with the vectors
    the index stores for them. A few passages, so the cost is the retriever's passage encoder
    (loaded here if it was not: DPR's is a second model) and one small batch."""
    import faiss

    if not len(corpus):
        return
    picked = np.random.default_rng().choice(len(corpus), size=min(rows, len(corpus)), replace=False)
    fresh = retriever.encode_passages([corpus[int(i)].as_dict() for i in picked])
    if isinstance(index, faiss.IndexIVFPQ):
        fresh = _as_pq_stores(index, picked, fresh)
    stored = np.stack([index.reconstruct(int(i)) for i in picked])
    stored_norms, fresh_norms = np.linalg.norm(stored, axis=1), np.linalg.norm(fresh, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero vector gives NaN: refused below
        cosine = np.nan_to_num((stored * fresh).sum(axis=1) / (stored_norms * fresh_norms), nan=-1.0)
        ratio = np.nan_to_num(stored_norms / fresh_norms, nan=np.inf)
    fits = (cosine >= MIN_COSINE) & (ratio <= MAX_NORM_RATIO) & (ratio >= 1 / MAX_NORM_RATIO)
    if not fits.all():
        raise IndexRefused(
            f"does not hold these passages: {int((~fits).sum())} of {len(picked)} passages embedded here "
            f"do not match the stored vectors (cosine down to {cosine.min():.2f}, norm ratio "
            f"{ratio.min():.2f} to {ratio.max():.2f}; needs cosine >= {MIN_COSINE}, ratio within {MAX_NORM_RATIO})"
        )


def _as_pq_stores(index, rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`vectors` as an IVF-PQ index stores rows `rows`: quantized (lossy, so a fresh vector is
    compared with the stored one quantized the same way), against the centroid of each row's list."""
    import faiss

    lists = [faiss.lo_listno(index.direct_map.get(int(i))) for i in rows]
    centroids = np.stack([index.quantizer.reconstruct(int(n)) for n in lists])
    if not index.by_residual:
        return index.pq.decode(index.pq.compute_codes(np.ascontiguousarray(vectors)))
    residuals = np.ascontiguousarray(vectors - centroids, dtype=np.float32)
    return index.pq.decode(index.pq.compute_codes(residuals)) + centroids
