"""Dense indexes that fit a small CPU machine at Wikipedia's scale: compact codes in RAM find
candidates, and the best candidates are scored again from vectors kept on disk.

DPR's 21M passage vectors take 64 GB in float32, RetriBERT's and REALM's 10.7 GB each: none
fits a 16 GB machine. So, as faiss's IVF-PQ with re-ranking (Jégou et al. 2011, "Product
quantization for nearest neighbor search"; OPQ: Ge et al. 2013), the sentence-transformers
quantized-retrieval Space (compact codes in RAM, int8 rescoring from disk) and Pyserini's PQ
DPR index do it:

1. candidates: a faiss IVF index of product-quantised codes (65 bytes for a 768-d vector:
   130 codes of 4 bits after an OPQ rotation, scanned with faiss's "fast-scan" SIMD kernels
   (André et al. 2017, "Accelerated nearest neighbor search with Quick ADC"); 33 bytes for a
   128-d one: 33 codes of 8 bits) held in RAM, searched with `nprobe` lists;
   with fast-scan codes, the top `refine_depth` (thousands) are ranked again by a finer code
   of the same 65 bytes, 8-bit PQ in the same rotation, in memory (refine_codes.py);
2. rescoring: the best `depth` candidates are read from `rescore.npy`, a memory-mapped [n, d]
   file of int8 codes (float16 where int8 cannot reach the target recall), and ranked again
   by their inner product with the query.

The int8 codes have one scale a row, not one a dimension: row = code * scale[row] + offset,
with offset the vectors' mean and scale[row] = max |row - offset| / 127. Per-dimension ranges
(as sentence-transformers' int8 calibration) lose the rows that matter most: the top results
of an inner product are the longest vectors, the ones at the ends of every range. Over 2M
generated vectors, recall@10 of int8 rescoring of the exact top 100 was 0.971 (768-d) and
0.937 (128-d) with per-dimension ranges, 0.995 and 0.990 with a scale a row (4 bytes a row;
clipping the ranges at the 0.01% quantiles: 0.889 and 0.817).

The vectors are not normalised, and an IVF that ranks lists by inner product degenerates on
them: k-means by inner product gathers most vectors into the few lists whose centroids are
longest (over 200k generated 768-d vectors, 1% of the lists held 83% of the rows), so a
search scans nearly everything. The candidate index therefore stores each vector with one
more coordinate, sqrt(max_norm^2 - |x|^2), divided by max_norm, so that every stored vector
has norm 1 (Bachrach et al. 2014, the transform DPR's own HNSW index uses); queries get 0 in
that coordinate, which leaves their inner products with the rows as they were (divided by
max_norm). On the unit sphere, k-means with unit centroids (faiss's spherical k-means) gives
balanced lists, and ranking lists by inner product is ranking them by distance.

The build streams the vectors (a VectorSource) in passes and then *measures* instead of
guessing: held-out rows of the corpus are searched exactly and approximately (each query's
own article, the LEAVE_OUT rows each side, left out of both), and the cheapest (nprobe, depth)
whose recall@10 reaches the
target, by its 90% lower confidence bound over those queries, is kept. Everything measured
goes into `compressed.json`:

    out_dir/
      candidates.faiss     faiss.serialize_index bytes: IndexPreTransform(OPQ rotation) >
                           IndexIVFPQFastScan (or IndexIVFPQ, built before fast-scan), or
                           IndexIVFPQ, or IndexIVFScalarQuantizer (under 10k rows),
                           inner product, over [n, candidate_dim] norm-equalised vectors
      rescore.npy          int8 or float16 [n, d], row i = passage i (a .npy header, memory-mapped)
      rescore_scale.npy    float32 [n], one scale a row (read into memory: 4 bytes a row)
      rescore_offset.npy   float32 [d]; vector i = rescore[i] * rescore_scale[i] + rescore_offset
      refine_*.npy         with fast-scan codes only: the refine codes (refine_codes.py)
      compressed.json      written last (a build that stopped midway has none): format, count,
                           dim, candidate_dim, max_norm, factory, rescore_dtype, settings {nprobe,
                           depth}, target_recall, reached, measured {queries, recall_at_1,
                           recall_at_10 (and its lower bound), recall_at_100, ceiling_at_10,
                           search_ms, threads}, tried [every (nprobe, depth) measured], seconds
                           {sample, train, add, measure}, files {name: bytes}, seed, origin

A stored index may come from a hostile hub repository: `open_compressed` reads the JSON
bounded and typed, the faiss file within its own size (as index_checks.read_faiss_file does),
and checks that every part agrees with every other before anything is searched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import statistics
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal

import numpy as np
from pydantic import Field

from ..errors import CorpusError, InvalidInputError
from .index_checks import _FAISS_READ, Count, IndexRefused, Name, Seconds, StrictModel, Text, read_json_model
from .refine_codes import CODES_FILE as REFINE_CODES_FILE
from .refine_codes import FILES as REFINE_FILES
from .refine_codes import RefineCodes
from .vectors import CHUNK_ROWS, VectorSource, gather_rows

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FAISS_FILE = "candidates.faiss"
RESCORE_FILE = "rescore.npy"
SCALE_FILE = "rescore_scale.npy"
OFFSET_FILE = "rescore_offset.npy"
CODE_LIMITS = {"int8": 127.0, "float16": 1.0}  # a row's largest |value - offset| is coded as this
RECORD_FILE = "compressed.json"

TUNED_K = 10  # settings are tuned for recall@10; a search for more scales the depth with k
# Lists probed, tried in this order until one reaches the target. 2M generated 768-d vectors in
# 2,828 lists needed more than 512 of them for 0.96 (0.960 at 512, lower bound 0.954).
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
DEPTHS = (25, 50, 100, 200, 400, 800)  # past 800 rows a query, a cold disk costs more than PQ saves
REFINE_DEPTHS = (800, 1600, 3200)  # fast-scan candidates ranked again by refine codes, in memory
MAX_NPROBE = 65_536  # bounds on what a compressed.json may ask for (a hostile one asks 10**9)
MAX_DEPTH = 100_000
MAX_K = 10_000
QUERY_ROWS = 256  # held-out rows the settings are tuned on
# Rows each side of a held-out row left out of its results, exact and approximate: its article
# (wiki_dpr keeps an article's passages in a row; the generator's articles have 2-12), so that it
# is as new as a visitor's question. With only its own row left out, recall@10 measured 0.958
# on such rows and 0.947 on 500 vectors of articles not in the index (768-d, 2M vectors).
LEAVE_OUT = 12
# A setting reaches the target when the 90% one-sided lower bound of its recall@10 does: 256
# queries measure recall@10 to about +-0.006 (one standard error).
CONFIDENCE_Z = 1.28
TIMED_QUERIES = 64  # single-query searches timed for each setting that reaches the target
# IVF lists per sqrt(n): 2 sqrt(n) (2,828 at 2M, 9,168 at 21M) keeps k-means training to a few
# minutes on 2 cores (benchmarks/bench_compressed.py) and each list short enough to scan.
LISTS_PER_SQRT = 2
TRAIN_PER_LIST = 40  # k-means wants >= 39 points a list; faiss subsamples the PQ's and OPQ's share
# OPQ's training: each of its iterations costs an SVD of the rotation (780 x 780: seconds on 2
# cores) and 4 k-means steps of its PQ; its first PQ fit took 40 steps (faiss's default), over a
# minute at 10k rows, and only seeds the rotation.
OPQ_ITERATIONS = 10  # faiss's default: 50
OPQ_FIRST_PQ_ITERATIONS = 10
OPQ_TRAIN_ROWS = 32_768
PQ_ITERATIONS = 10  # k-means steps of each PQ sub-quantizer (faiss: 25; 4-d sub-spaces train slowly)
MIN_PQ_ROWS = 39 * 256  # below this a PQ's 256 centroids a sub-space cannot be trained: SQ8 instead
RescoreDtype = Literal["int8", "float16"]
RESCORE_TRIES = {"auto": ("int8", "float16"), "int8": ("int8",), "float16": ("float16",)}  # cheapest first
Progress = Callable[[str, int, int], None]  # (stage: "sample" | "train" | "add" | "measure", done, total)


# -- compressed.json as typed data -------------------------------------------------------------------
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Settings(StrictModel):
    """How a search runs: IVF lists probed, candidates rescored (for k = TUNED_K)."""

    nprobe: Annotated[int, Field(ge=1, le=MAX_NPROBE)]
    depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)]
    refine_depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)] | None = None  # fast-scan candidates ranked again


class Tried(StrictModel):
    """One setting the build measured (search_ms only for those timed)."""

    nprobe: Annotated[int, Field(ge=1, le=MAX_NPROBE)]
    depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)]
    refine_depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)] | None = None
    rescore_dtype: Name
    recall_at_10: Fraction
    recall_at_10_lower: Fraction | None = None  # its 90% lower confidence bound (None: built before it was kept)
    search_ms: Seconds | None = None


class Measured(StrictModel):
    """What the chosen setting achieved on the build's held-out queries, against exact search."""

    queries: Count
    recall_at_1: Fraction
    recall_at_10: Fraction
    recall_at_10_lower: Fraction | None = None  # 90% lower bound, what `reached` compares (None: older build)
    recall_at_100: Fraction
    ceiling_at_10: Fraction  # recall@10 when the exact top 100 is rescored: the rescoring file's own limit
    search_ms: Seconds  # p50 of one query at a time, on the build machine
    threads: Count


class Stages(StrictModel):
    sample: Seconds
    train: Seconds
    add: Seconds
    measure: Seconds


class CompressedRecord(StrictModel):
    """compressed.json."""

    format: Literal[1]
    count: Annotated[int, Field(ge=1, le=1 << 40)]
    dim: Annotated[int, Field(ge=1, le=1 << 16)]
    candidate_dim: Annotated[int, Field(ge=2, le=(1 << 16) + 256)]  # dim + 1, padded for the PQ
    max_norm: Annotated[float, Field(gt=0.0)]  # the norm every candidate vector is brought to
    factory: Name  # faiss index_factory string of the candidate index
    refine_m: Annotated[int, Field(ge=1, le=4096)] | None = None  # refine codes' sub-spaces (refine_codes.py)
    rescore_dtype: RescoreDtype
    settings: Settings
    target_recall: Fraction
    reached: bool
    measured: Measured
    tried: Annotated[list[Tried], Field(max_length=500)]
    seconds: Stages
    files: Annotated[dict[Name, Count], Field(max_length=8)]
    seed: int
    origin: Text


@dataclass
class CompressedBuild:
    """What build_compressed wrote and measured."""

    path: Path
    record: CompressedRecord

    @property
    def reached(self) -> bool:
        return self.record.reached


# -- the index ---------------------------------------------------------------------------------------
class CompressedIndex:
    """A faiss-like inner-product index: `ntotal`, `d`, `search(queries, k)`; candidates from
    compact codes in RAM, rescored from a memory-mapped file. Safe for concurrent searches (the
    settings are passed per call, never set on the shared faiss index)."""

    def __init__(
        self,
        index,
        codes: np.ndarray,
        scale: np.ndarray,
        offset: np.ndarray,
        settings: Settings,
        path: Path,
        record: CompressedRecord | None = None,
        prefetch: bool = True,
        refine: RefineCodes | None = None,
    ):
        """`index`: the faiss candidate index; `codes`: int8 or float16 [n, d] (a memmap);
        `scale`: float32 [n] and `offset`: float32 [d], so that row i = codes[i] * scale[i] +
        offset; `path`: the directory of the files; `record`: the CompressedRecord, once
        measured; `prefetch`: ask the kernel for the rows to rescore before reading them;
        `refine`: codes that rank fast-scan candidates again (settings.refine_depth of them)."""
        self.index = index
        self.codes = codes
        self.scale, self.offset = scale, offset
        self.nprobe, self.depth = settings.nprobe, settings.depth
        self.refine = refine
        self.refine_depth = settings.refine_depth if refine is not None else None
        self.path = Path(path)
        self.record: CompressedRecord | None = record
        self.ntotal, self.d = int(codes.shape[0]), int(codes.shape[1])
        import faiss

        # A visitor's search is one query: faiss's default splits a batch's queries among its
        # threads and leaves one query to one thread; splitting the probed lists instead puts
        # both of a Space's cores on it (2M 768-d vectors, nprobe 512: 7.2 -> 4.8 ms p50).
        faiss.extract_index_ivf(index).parallel_mode = 1
        self._rows_fd = None  # the rescoring file, for prefetching (POSIX_FADV_WILLNEED: not on macOS)
        if prefetch and isinstance(codes, np.memmap) and hasattr(os, "posix_fadvise"):
            self._rows_fd = os.open(self.path / RESCORE_FILE, os.O_RDONLY)
            weakref.finalize(self, os.close, self._rows_fd)

    @property
    def settings(self) -> dict:
        return {"nprobe": self.nprobe, "depth": self.depth, "refine_depth": self.refine_depth}

    @property
    def recall(self) -> dict:
        """The build's measurement (compressed.json's `measured`); {} before it is measured."""
        return self.record.measured.model_dump() if self.record else {}

    @property
    def nbytes_in_ram(self) -> int:
        """About what the process holds: the faiss index (its file is what it holds in memory)
        and the scales; the rescoring file's pages are the OS's page cache, not counted."""
        refine = self.refine.codes.nbytes if self.refine is not None else 0  # mapped, but read by every search
        return (self.path / FAISS_FILE).stat().st_size + self.scale.nbytes + self.offset.nbytes + refine

    @property
    def nbytes_on_disk(self) -> int:
        names = (FAISS_FILE, RESCORE_FILE, SCALE_FILE, OFFSET_FILE, RECORD_FILE, *REFINE_FILES)
        return sum((self.path / name).stat().st_size for name in names if (self.path / name).exists())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product, best first: (scores float32 [n, k], ids int64 [n, k]); the
        scores are the rescored inner products; ids -1 and scores -inf pad a row with fewer."""
        queries = self._checked_queries(queries)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_K:
            raise InvalidInputError(f"k must be an integer from 0 to {MAX_K:,}, not {k!r}")
        refine_depth = self.depth_for(int(k), self.refine_depth) if self.refine_depth else None
        return self._search(queries, int(k), self.nprobe, self.depth_for(int(k), self.depth), refine_depth=refine_depth)

    def depth_for(self, k: int, depth: int) -> int:
        """Candidates to rescore for the top k: `depth` was tuned for TUNED_K, so a search for
        more keeps the same ratio (the k-th best sits as deep in the PQ ranking, relatively)."""
        return min(max(depth, math.ceil(depth * k / TUNED_K), k), self.ntotal, MAX_DEPTH)

    def reconstruct_batch(self, ids) -> np.ndarray:
        """The stored (dequantised) vectors of passages `ids`, float32 [len(ids), d] (for plots)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.ntotal):
            raise InvalidInputError(f"passage numbers must be from 0 to {self.ntotal - 1:,}")
        order = np.argsort(ids, kind="stable")
        out = np.empty((len(ids), self.d), dtype=np.float32)
        rows = ids[order]
        out[order] = self.codes[rows].astype(np.float32) * self.scale[rows, None] + self.offset
        return out

    def _checked_queries(self, queries) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.d:
            raise InvalidInputError(f"queries must be float32 [n, {self.d}], not of shape {queries.shape}")
        if not np.isfinite(queries).all():
            raise InvalidInputError("queries must be finite (no NaN or infinity)")
        return np.ascontiguousarray(queries)

    def _search(self, queries: np.ndarray, k: int, nprobe: int, depth: int, own=None, refine_depth=None):
        """Search with the given settings; `own` (int64 [n], from measurements) is a row per
        query whose article (LEAVE_OUT rows each side) is left out of its results; with
        `refine_depth`, that many candidates are ranked by the refine codes and the best
        `depth` of them rescored."""
        n = len(queries)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if n == 0 or k == 0:
            return scores, ids
        extra = 0 if own is None else 2 * LEAVE_OUT + 1  # more candidates for the rows left out
        wanted = max(depth, refine_depth or 0)
        candidates = self.candidates(queries, min(wanted + extra, self.ntotal), nprobe)  # [n, wanted(+extra)]
        for i in range(n):
            rows = candidates[i]
            if own is not None:
                rows = rows[np.abs(rows - own[i]) > LEAVE_OUT][:wanted]
            if refine_depth:
                rows = self.refine_top(queries[i], rows[rows >= 0], depth)
            found_scores, found = self.rescore(queries[i], rows)
            top = min(k, len(found))
            scores[i, :top], ids[i, :top] = found_scores[:top], found[:top]
        return scores, ids

    def candidates(self, queries: np.ndarray, depth: int, nprobe: int) -> np.ndarray:
        """The faiss index's top `depth` ids for each query, int64 [n, depth] (-1 padding)."""
        import faiss

        ivf_params = faiss.SearchParametersIVF(nprobe=nprobe)
        params = ivf_params
        if isinstance(self.index, faiss.IndexPreTransform):
            params = faiss.SearchParametersPreTransform()
            params.index_params = ivf_params  # ivf_params stays referenced here until the search ends
        padded = np.zeros((len(queries), self.index.d), dtype=np.float32)  # [n, candidate_dim]
        padded[:, : self.d] = queries  # 0 in the norm coordinate: inner products unchanged
        _, ids = self.index.search(padded, depth, params=params)
        return ids

    def refine_top(self, query: np.ndarray, rows: np.ndarray, depth: int) -> np.ndarray:
        """The `depth` of candidate `rows` whose refine codes score best with `query` [d]."""
        padded = np.zeros(self.index.d, dtype=np.float32)  # the candidate index's query: 0 past d
        padded[: self.d] = query
        return self.refine.top(padded, rows, depth)

    def rescore(self, query: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates `rows` of one query [d] ranked by their stored vectors: (scores, rows),
        best first, ties to the lower row; -1 entries dropped."""
        rows = rows[rows >= 0]
        scores = self.scores(query, rows)
        order = np.lexsort((rows, -scores))
        return scores[order], rows[order]

    def scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner products of one query [d] with the stored vectors of `rows` [r] (valid row
        numbers), float32 [r] in the order given. The rows are read sorted, so the memory map
        is read front to back."""
        order = np.argsort(rows)
        self._prefetch(rows[order])
        codes = self.codes[rows[order]]  # [r, d] int8 or float16: the only read from disk
        scores = np.empty(len(rows), dtype=np.float32)
        # <q, code * scale + offset> = scale * <code, q> + <q, offset>: one matmul of the codes
        # einsum, not `@`: past ~800 rows OpenBLAS splits the product over a second thread, which
        # waited a scheduler tick (8 ms) for a core while faiss's OpenMP threads still spun.
        products = np.einsum("ij,j->i", codes.astype(np.float32), query)  # [r]
        scores[order] = products * self.scale[rows[order]] + float(query @ self.offset)
        return scores

    def _prefetch(self, rows: np.ndarray) -> None:
        """Ask the kernel for the pages of all `rows` at once (POSIX_FADV_WILLNEED), so that a
        cold disk reads them in parallel rather than one page fault after another, each with
        the kernel's read-around: 200 cold rows of 768 took 3.4 ms so, 14 ms one fault at a
        time without read-around, 700 ms with this machine's (benchmarks/bench_compressed.py)."""
        if self._rows_fd is None:
            return
        size = self.d * self.codes.itemsize
        for row in rows.tolist():
            os.posix_fadvise(self._rows_fd, self.codes.offset + row * size, size, os.POSIX_FADV_WILLNEED)


# -- exact search: the oracle ---------------------------------------------------------------------------
def exact_search(
    source: VectorSource,
    queries: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    window: int = 0,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product over every row of `source`, one pass in blocks: (scores
    float32 [n, k], ids int64 [n, k]), best first, -inf / -1 padding. `exclude` (int64 [n], -1
    for none) is a row to leave out for each query, with the `window` rows each side of it (a
    held-out query's own row, or its article)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)  # [n, d]
    n = len(queries)
    best_scores = np.full((n, k), -np.inf, dtype=np.float32)
    best_ids = np.full((n, k), -1, dtype=np.int64)
    if n == 0 or k == 0:
        return best_scores, best_ids
    exclude = np.full(n, -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    start = 0
    for chunk in source.chunks(chunk_rows):
        scores = queries @ chunk.T  # [n, m]
        for i in np.nonzero((exclude >= 0) & (exclude + window >= start) & (exclude - window < start + len(chunk)))[0]:
            scores[i, max(0, exclude[i] - window - start) : max(0, exclude[i] + window + 1 - start)] = -np.inf
        top = min(k, len(chunk))
        part = np.argpartition(-scores, top - 1, axis=1)[:, :top]  # [n, top], unordered
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        merged_ids = np.concatenate([best_ids, part + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
        start += len(chunk)
    best_ids[~np.isfinite(best_scores)] = -1  # a left-out row, or fewer rows than k
    return best_scores, best_ids


def recall_at(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top k (ids [n, >= k]) that `found` [n, >= k] has in its top k."""
    hits = recalls_at(found, exact, k)
    return float(hits.mean()) if len(hits) else 0.0


def recalls_at(found: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    """recall@k of each query, float64 [n]."""
    hits = []
    for f, e in zip(found, exact):
        f, e = f[:k][f[:k] >= 0], e[:k][e[:k] >= 0]
        hits.append(len(np.intersect1d(f, e)) / max(1, len(e)))
    return np.array(hits, dtype=np.float64)


def lower_bound(recalls: np.ndarray) -> float:
    """The one-sided lower confidence bound (CONFIDENCE_Z standard errors) of a mean recall."""
    if len(recalls) < 2:
        return 0.0
    return float(max(0.0, recalls.mean() - CONFIDENCE_Z * recalls.std(ddof=1) / math.sqrt(len(recalls))))


# -- building ------------------------------------------------------------------------------------------------
def candidate_factory(count: int, dim: int) -> str:
    """The faiss index_factory string of the candidate index for `count` vectors of `dim`: IVF
    with 2 sqrt(n) lists; for wide vectors, an OPQ rotation and a code of 4 bits for 6
    dimensions, scanned by fast-scan (768 + 1 -> 130 codes, 65 bytes); for narrow ones, one
    byte for 4 dimensions (128 + 1 -> 33 bytes); SQ8 below MIN_PQ_ROWS rows.

    Why fast-scan for the wide ones: a 768-d query has to probe about a quarter of the lists to
    reach recall@10 0.95 (generated vectors: 768 of 2,828 lists at 2M), so the scan of the codes
    is the whole cost; with 4-bit codes the look-up tables sit in SIMD registers. At 1M generated
    vectors, 512 lists probed, 400 candidates, one thread: 1.3 ms against 5.4 ms for 8-bit codes
    of the same 65 bytes, recall@10 after exact rescoring 0.979 against 0.987. The narrow ones
    probe far fewer lists (their search is ~2 ms at 2M either way) and keep 8-bit codes."""
    nlist = max(1, min(round(LISTS_PER_SQRT * math.sqrt(count)), count // 39))
    if count < MIN_PQ_ROWS:
        return f"IVF{nlist},SQ8"
    if dim >= 256:
        m = 2 * math.ceil((dim + 1) / 12)
        return f"OPQ{m},IVF{nlist},PQ{m}x4fs"
    return f"IVF{nlist},PQ{math.ceil((dim + 1) / 4)}"


def refine_subspaces(factory: str) -> int | None:
    """The refine codes' sub-spaces for a fast-scan factory (one byte for two of its 4-bit
    codes' sub-spaces: the same bytes a vector), None for any other."""
    found = re.search(r"PQ(\d+)x4fs", factory)
    return int(found.group(1)) // 2 if found and int(found.group(1)) % 2 == 0 else None


def candidate_dim(dim: int, factory: str) -> int:
    """The candidate index's dimension: `dim` + 1 (the norm coordinate), rounded up to a
    multiple of every PQ and OPQ sub-space count in `factory` (zeros fill the rest)."""
    counts = [int(m) for m in re.findall(r"PQ(\d+)", factory)] or [1]
    step = math.lcm(*counts)
    return math.ceil((dim + 1) / step) * step


def equalised(vectors: np.ndarray, max_norm: float, dim: int) -> np.ndarray:
    """Passage vectors [m, d] as the candidate index stores them, float32 [m, dim]: the vector,
    sqrt(max_norm^2 - |x|^2) (0 for the rare vector longer than max_norm), zeros to `dim`, all
    divided by max_norm, so that every row has norm 1."""
    out = np.zeros((len(vectors), dim), dtype=np.float32)
    d = vectors.shape[1]
    out[:, :d] = vectors
    out[:, d] = np.sqrt(np.maximum(max_norm**2 - np.einsum("ij,ij->i", vectors, vectors), 0.0))
    out /= max_norm
    return out


def build_compressed(
    source: VectorSource,
    out_dir: Path,
    *,
    seed: int = 0,
    target_recall: float = 0.95,
    factory: str | None = None,
    rescore_dtype: Literal["auto", "int8", "float16"] = "auto",
    queries: int = QUERY_ROWS,
    progress: Progress | None = None,
) -> CompressedBuild:
    """Build, measure and tune a compressed index of `source` into `out_dir` (made if missing).

    Pass 1 draws a training sample and `queries` held-out rows; the candidate index
    (`factory`, default candidate_factory) is trained; pass 2 adds every row to it in chunks
    and writes the int8 rescoring file; pass 3 searches the held-out rows exactly, then tunes
    (nprobe, depth) to the cheapest setting whose recall@10 reaches `target_recall`. With
    `rescore_dtype` "auto", a float16 file replaces the int8 one when int8 cannot reach it.
    A target not reached is recorded (`reached: false`); the index is written all the same."""
    import faiss

    if source.count < 1:
        raise CorpusError(f"{source.origin} holds no vectors to index")
    if not 0.0 <= target_recall <= 1.0:
        raise InvalidInputError(f"target_recall must be from 0 to 1, not {target_recall!r}")
    if rescore_dtype not in RESCORE_TRIES:
        raise InvalidInputError(f"rescore_dtype must be one of {tuple(RESCORE_TRIES)}, not {rescore_dtype!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RECORD_FILE).unlink(missing_ok=True)  # written last: its absence marks an unfinished build
    report = progress or (lambda stage, done, total: None)
    count, dim = source.count, source.dim
    factory = factory or candidate_factory(count, dim)
    wide = candidate_dim(dim, factory)
    seconds = {}

    # Pass 1: the training sample and the held-out queries, drawn together, disjoint.
    t = time.perf_counter()
    index = _make_index(wide, factory)
    nlist = faiss.extract_index_ivf(index).nlist
    rng = np.random.default_rng(seed)
    n_queries = min(queries, max(0, count - 1))
    n_train = min(count - n_queries, max(TRAIN_PER_LIST * nlist, 65_536))
    picked = rng.choice(count, size=n_train + n_queries, replace=False)
    report("sample", 0, 1)
    sample = gather_rows(source, picked)  # [n_train + n_queries, dim]
    train, held = sample[:n_train], sample[n_train:].copy()  # [n_train, dim], [n_queries, dim]
    own = picked[n_train:].astype(np.int64)
    del sample
    seconds["sample"] = time.perf_counter() - t
    report("sample", 1, 1)

    t = time.perf_counter()
    report("train", 0, 1)
    max_norm = float(np.linalg.norm(train, axis=1).max())  # longer rows are rare: brought to norm 1 too
    sample = equalised(train, max_norm, wide)  # [n_train, wide]
    index.train(sample)
    refine_m = refine_subspaces(factory)
    refine = None
    if refine_m:  # fast-scan codes: the refine codes share their OPQ rotation (none: the identity)
        matrix = np.eye(wide, dtype=np.float32)
        if isinstance(index, faiss.IndexPreTransform):
            matrix = faiss.vector_to_array(faiss.downcast_VectorTransform(index.chain.at(0)).A).reshape(wide, wide)
        refine = RefineCodes.train(sample, refine_m, matrix, seed)
    del sample
    offset = train.mean(axis=0)  # [dim]: the rescoring codes' centre
    del train
    seconds["train"] = time.perf_counter() - t
    report("train", 1, 1)

    # Pass 2: codes into the index, rows into the rescoring file (int8 first, unless told float16).
    t = time.perf_counter()
    dtypes = RESCORE_TRIES[rescore_dtype]

    refine_codes = None
    if refine is not None:  # [count, refine_m] uint8, written as the rows are added
        refine_codes = np.lib.format.open_memmap(
            out_dir / REFINE_CODES_FILE, mode="w+", dtype=np.uint8, shape=(count, refine_m)
        )
        refine.write(out_dir)

    def add(chunk: np.ndarray) -> None:  # [m, dim] float32 -> codes in the candidate index (and refine codes)
        rows = equalised(chunk, max_norm, wide)
        if refine_codes is not None:
            start = index.ntotal
            refine_codes[start : start + len(rows)] = refine.encode(rows)
        index.add(rows)

    _write_rescore(source, out_dir, dtypes[0], offset, add=add, progress=report)
    (out_dir / FAISS_FILE).write_bytes(faiss.serialize_index(index).tobytes())  # Python's write: OSError on ENOSPC
    if refine_codes is not None:
        refine_codes.flush()
        refine = RefineCodes(refine.rotation, refine.centroids, refine_codes)
    seconds["add"] = time.perf_counter() - t

    # Pass 3: exact answers for the held-out queries, then the cheapest setting that reaches the
    # target; with "auto", float16 rows replace int8 ones (one more pass) when int8 falls short.
    t = time.perf_counter()
    report("measure", 0, 1)
    _, exact_ids = exact_search(source, held, 100, exclude=own, window=LEAVE_OUT)  # [q, 100]
    tried: list[dict] = []
    for dtype in dtypes:
        if dtype != dtypes[0]:
            _write_rescore(source, out_dir, dtype, offset, progress=report)
        codes = np.load(out_dir / RESCORE_FILE, mmap_mode="r", allow_pickle=False)
        scale = np.load(out_dir / SCALE_FILE, allow_pickle=False)
        # No prefetching while tuning: the file was just written, its pages are in the page cache.
        compressed = CompressedIndex(
            index, codes, scale, offset, Settings(nprobe=1, depth=1), out_dir, prefetch=False, refine=refine
        )
        chosen, measured, grid = _tune(compressed, held, own, exact_ids, target_recall)
        tried += [{**row, "rescore_dtype": dtype} for row in grid]
        if measured["recall_at_10_lower"] >= target_recall:
            break
        log.info("%s rescoring reaches recall@10 %.3f < %.3f", dtype, measured["recall_at_10_lower"], target_recall)
        if measured["ceiling_at_10"] >= target_recall:
            # The exact top 100 rescored from these rows keeps the target: the candidates fall short,
            # not the rows, and float16 rows would double the file for nothing (2M 768-d: int8's
            # ceiling 0.998 while 512 lists kept 0.960; float16 then 0.964, in a 3.1 GB file).
            break
    seconds["measure"] = time.perf_counter() - t
    report("measure", 1, 1)

    names = (FAISS_FILE, RESCORE_FILE, SCALE_FILE, OFFSET_FILE, *(REFINE_FILES if refine is not None else ()))
    files = {name: (out_dir / name).stat().st_size for name in names}
    record = CompressedRecord(
        format=FORMAT_VERSION,
        count=count,
        dim=dim,
        candidate_dim=wide,
        max_norm=max_norm,
        factory=factory,
        refine_m=refine_m,
        rescore_dtype=dtype,
        settings=Settings(**chosen),
        target_recall=target_recall,
        reached=measured["recall_at_10_lower"] >= target_recall,
        measured=Measured(**measured),
        tried=[Tried(**row) for row in tried],
        seconds=Stages(**seconds),
        files=files,
        seed=seed,
        origin=str(source.origin)[:2000],
    )
    (out_dir / RECORD_FILE).write_text(json.dumps(record.model_dump(), indent=1), encoding="utf-8")
    if not record.reached:
        log.warning(
            "compressed index of %s: recall@10 %.3f < target %.3f",
            source.origin,
            measured["recall_at_10"],
            target_recall,
        )
    return CompressedBuild(out_dir, record)


def _make_index(dim: int, factory: str):
    """The untrained faiss index of `factory`, ranking by inner product, its lists made by
    spherical k-means (unit centroids: balanced lists over unit vectors), trained as cheaply as
    its use allows (no polysemous codes; OPQ_ITERATIONS rotation updates)."""
    import faiss

    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.spherical = True
    if isinstance(ivf, faiss.IndexIVFPQ):
        ivf.do_polysemous_training = False  # Hamming pre-filtering is never used; its training took minutes
    if isinstance(ivf, (faiss.IndexIVFPQ, faiss.IndexIVFPQFastScan)):
        ivf.pq.cp.niter = PQ_ITERATIONS
    if isinstance(index, faiss.IndexPreTransform):
        opq = faiss.downcast_VectorTransform(index.chain.at(0))
        opq.niter = OPQ_ITERATIONS
        opq.niter_pq_0 = OPQ_FIRST_PQ_ITERATIONS
        opq.max_train_points = OPQ_TRAIN_ROWS
    return index


def _write_rescore(source: VectorSource, out_dir: Path, dtype: str, offset: np.ndarray, add=None, progress=None):
    """Write the rescoring files in one pass over `source`: rescore.npy ([n, d] of `dtype`),
    rescore_scale.npy ([n]) and rescore_offset.npy ([d]); pass each chunk to `add` too when
    given. The codes are written under another name and renamed: a memory map of the previous
    file stays valid."""
    partial = out_dir / f"{RESCORE_FILE}.partial"
    codes = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=(source.count, source.dim))
    scale = np.empty(source.count, dtype=np.float32)
    offset = offset.astype(np.float32)
    start = 0
    for chunk in source.chunks():
        stop = start + len(chunk)
        if add is not None:
            add(chunk)
        centred = chunk - offset  # [m, d]
        row_scale = np.abs(centred).max(axis=1) / CODE_LIMITS[dtype]  # [m]
        row_scale = np.maximum(row_scale, np.finfo(np.float32).tiny)  # a row equal to the offset: codes 0
        coded = centred / row_scale[:, None]  # within +-127 (int8) or +-1 (float16)
        codes[start:stop] = np.rint(coded) if dtype == "int8" else coded
        scale[start:stop] = row_scale
        start = stop
        if progress is not None:
            progress("add", start, source.count)
    codes.flush()
    del codes
    os.replace(partial, out_dir / RESCORE_FILE)
    np.save(out_dir / SCALE_FILE, scale, allow_pickle=False)
    np.save(out_dir / OFFSET_FILE, offset, allow_pickle=False)


def _tune(compressed: CompressedIndex, held: np.ndarray, own: np.ndarray, exact_ids: np.ndarray, target: float):
    """The cheapest (nprobe, depth[, refine_depth]) whose recall@10 on the held-out queries `held`
    (rows `own`, their articles left out of every result) reaches `target` by its lower
    confidence bound: for each nprobe the smallest depth (then refine depth) that does, then the
    fastest of those. Returns (settings, measured, grid of every recall measured)."""
    import faiss

    nlist = faiss.extract_index_ivf(compressed.index).nlist
    n = compressed.ntotal
    depths = sorted({min(d, n - 1) for d in DEPTHS} - {0}) or [1]
    refine_depths = [None]
    if compressed.refine is not None:
        refine_depths = sorted({min(r, n - 1) for r in REFINE_DEPTHS} - {0}) or [1]
    grid: list[dict] = []
    reaching: list[dict] = []
    for nprobe in sorted({min(p, nlist) for p in NPROBES}):
        found = _top_by_depth(compressed, held, own, nprobe, depths, refine_depths)  # {(refine, depth): [q, 10]}
        rows = []
        for depth in depths:  # cheapest first: rows read from disk, then candidates ranked in memory
            for refine_depth in refine_depths:
                hits = recalls_at(found[refine_depth, depth], exact_ids, TUNED_K)  # [q]
                recall, lower = float(hits.mean()), lower_bound(hits)
                row = {"nprobe": nprobe, "depth": depth, "recall_at_10": recall, "recall_at_10_lower": lower}
                rows.append(row | ({"refine_depth": refine_depth} if refine_depth else {}))
        grid += rows
        first = next((row for row in rows if row["recall_at_10_lower"] >= target), None)
        if first is not None:
            reaching.append(first)
            if first["depth"] == depths[0] or [r["depth"] for r in reaching[-3:]].count(first["depth"]) == 3:
                break  # more lists cost more, and saved no depth (twice running)
    for row in reaching or [max(grid, key=lambda r: r["recall_at_10"])]:  # none reaches: the most accurate
        row["search_ms"] = _time_search(compressed, held, row["nprobe"], row["depth"], row.get("refine_depth"))
    best = min(reaching, key=lambda r: r["search_ms"]) if reaching else next(r for r in grid if "search_ms" in r)
    nprobe, depth, refine_depth = best["nprobe"], best["depth"], best.get("refine_depth")
    _, at10 = compressed._search(held, TUNED_K, nprobe, depth, own=own, refine_depth=refine_depth)
    deep = compressed.depth_for(100, refine_depth) if refine_depth else None
    _, at100 = compressed._search(held, 100, nprobe, compressed.depth_for(100, depth), own=own, refine_depth=deep)
    ceiling = np.stack([compressed.rescore(q, ids)[1][:TUNED_K] for q, ids in zip(held, exact_ids)])
    hits = recalls_at(at10, exact_ids, TUNED_K)  # [q]
    measured = {
        "queries": len(held),
        "recall_at_1": recall_at(at10, exact_ids, 1),
        "recall_at_10": float(hits.mean()) if len(hits) else 0.0,
        "recall_at_10_lower": lower_bound(hits),
        "recall_at_100": recall_at(at100, exact_ids, 100),
        "ceiling_at_10": recall_at(ceiling, exact_ids, TUNED_K),
        "search_ms": best["search_ms"],
        "threads": faiss.omp_get_max_threads(),
    }
    chosen = {"nprobe": nprobe, "depth": depth} | ({"refine_depth": refine_depth} if refine_depth else {})
    return chosen, measured, grid


def _top_by_depth(compressed: CompressedIndex, held, own, nprobe: int, depths: list[int], refine_depths) -> dict:
    """The rescored top 10 of each query at every (refine depth, depth), from one faiss search
    at the deepest: a search at `depth` rescores the first `depth` candidates (of the first
    `refine depth` ranked by the refine codes, where there are some; None: none)."""
    deepest = max(depths[-1], *(r or 0 for r in refine_depths))
    wanted = min(deepest + 2 * LEAVE_OUT + 1, compressed.ntotal)  # with room for the rows left out
    candidates = compressed.candidates(held, wanted, nprobe)  # [q, wanted]
    found = {(r, d): np.full((len(held), TUNED_K), -1, dtype=np.int64) for r in refine_depths for d in depths}
    for i, query in enumerate(held):
        rows = candidates[i][(np.abs(candidates[i] - own[i]) > LEAVE_OUT) & (candidates[i] >= 0)][:deepest]
        for r in refine_depths:
            ranked = rows if r is None else compressed.refine_top(query, rows[:r], depths[-1])
            scores = compressed.scores(query, ranked[: depths[-1]])  # [<= deepest depth]
            for d in depths:
                top = np.lexsort((ranked[:d], -scores[:d]))[:TUNED_K]
                found[r, d][i, : len(top)] = ranked[:d][top]
    return found


def _time_search(compressed: CompressedIndex, held: np.ndarray, nprobe: int, depth: int, refine_depth=None) -> float:
    """p50 milliseconds of one query at a time (after one untimed search)."""
    compressed._search(held[:1], TUNED_K, nprobe, depth, refine_depth=refine_depth)
    times = []
    for query in held[:TIMED_QUERIES]:
        t = time.perf_counter()
        compressed._search(query[None], TUNED_K, nprobe, depth, refine_depth=refine_depth)
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


# -- opening -------------------------------------------------------------------------------------------------
def open_compressed(out_dir: Path) -> CompressedIndex:
    """The compressed index in `out_dir`, after checking that its parts agree: compressed.json
    read bounded and typed (settings within bounds), each file the size it records, the
    rescoring file [count, dim] of its dtype, the scales finite, the faiss file read within
    its own size and of the structure this module builds. Raises CorpusError saying why."""
    out_dir = Path(out_dir)
    try:
        record = read_json_model(out_dir / RECORD_FILE, CompressedRecord)
    except IndexRefused as exc:
        raise CorpusError(f"the compressed index's {RECORD_FILE} {exc}") from None
    except OSError as exc:
        raise CorpusError(f"the compressed index has no readable {RECORD_FILE} ({type(exc).__name__})") from None
    if record.refine_m != refine_subspaces(record.factory):
        raise CorpusError(f"the compressed index's {RECORD_FILE} has refine codes that its factory does not make")
    if (record.settings.refine_depth is None) != (record.refine_m is None):
        raise CorpusError(f"the compressed index's {RECORD_FILE} has a refine depth without refine codes, or none")
    refined = REFINE_FILES if record.refine_m else ()
    for name in (FAISS_FILE, RESCORE_FILE, SCALE_FILE, OFFSET_FILE, *refined):
        path = out_dir / name
        if not path.is_file():
            raise CorpusError(f"the compressed index has no {name}")
        if path.stat().st_size != record.files.get(name):
            raise CorpusError(f"the compressed index's {name} is not the size its {RECORD_FILE} records")
    try:
        codes = np.load(out_dir / RESCORE_FILE, mmap_mode="r", allow_pickle=False)
        scale = np.load(out_dir / SCALE_FILE, allow_pickle=False)  # [count]: 4 bytes a row, in memory
        offset = np.load(out_dir / OFFSET_FILE, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CorpusError(f"the compressed index's rescoring files cannot be read ({type(exc).__name__})") from None
    if not record.dim < record.candidate_dim <= record.dim + 256:
        raise CorpusError(f"the compressed index's {RECORD_FILE} has a candidate_dim that does not fit its dim")
    if codes.dtype != np.dtype(record.rescore_dtype) or codes.shape != (record.count, record.dim):
        raise CorpusError(
            f"the compressed index's {RESCORE_FILE} holds {codes.dtype} {codes.shape}, "
            f"not {record.rescore_dtype} ({record.count}, {record.dim}) as its {RECORD_FILE} says"
        )
    if scale.dtype != np.float32 or scale.shape != (record.count,) or not np.isfinite(scale).all():
        raise CorpusError(f"the compressed index's {SCALE_FILE} is not finite float32 [{record.count}]")
    if offset.dtype != np.float32 or offset.shape != (record.dim,) or not np.isfinite(offset).all():
        raise CorpusError(f"the compressed index's {OFFSET_FILE} is not finite float32 [{record.dim}]")
    try:
        index = read_candidates(out_dir / FAISS_FILE)
    except IndexRefused as exc:
        raise CorpusError(f"the compressed index's {FAISS_FILE} {exc}") from None
    _check_candidates(index, record)
    refine = None
    if record.refine_m:
        refine = RefineCodes.open(out_dir, record.count, record.candidate_dim, record.refine_m)
    return CompressedIndex(index, codes, scale, offset, record.settings, out_dir, record, refine=refine)


def read_candidates(path: Path):
    """The faiss index in `path`, read as index_checks.read_faiss_file reads one (no vector or
    count inside the file may claim more than the file's size; read-only), and without IVF-PQ's
    precomputed table: faiss 1.15 checks its nlist x M x 256 floats against that bound before
    computing it, refusing a sound IVF-PQ of more than ~n/1000 lists, and an inner-product
    search never reads it."""
    import faiss

    size = path.stat().st_size
    with _FAISS_READ:  # the limits are process-wide: shared with read_faiss_file
        saved = faiss.get_deserialization_vector_byte_limit(), faiss.get_deserialization_loop_limit()
        faiss.set_deserialization_vector_byte_limit(size + 1)
        faiss.set_deserialization_loop_limit(max(size // 8, 1))
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_SKIP_PRECOMPUTE_TABLE)
        except (RuntimeError, MemoryError) as exc:  # its message names the server's path: not shown
            raise IndexRefused(f"cannot be read ({type(exc).__name__})") from None
        finally:
            faiss.set_deserialization_vector_byte_limit(saved[0])
            faiss.set_deserialization_loop_limit(saved[1])


def _check_fast_scan(ivf, refuse) -> None:
    """A fast-scan IVF-PQ is the one candidate_factory builds: 4-bit codes, M2 = M rounded up to
    even, blocks of 32 codes, look-up tables rounded per query (implem 0, no query batching
    override), no residuals, no list subsets: the fields a search's SIMD kernels index by."""
    pq = ivf.pq
    if pq.nbits != 4 or pq.ksub != 16 or pq.M * pq.dsub != ivf.d or (ivf.M, ivf.nbits, ivf.ksub) != (pq.M, 4, 16):
        refuse("has a fast-scan quantizer of another shape than 4-bit codes over its dimensions")
    if ivf.M2 != pq.M + pq.M % 2 or ivf.bbs != 32 or ivf.code_size != pq.code_size or pq.code_size != (pq.M + 1) // 2:
        refuse("has fast-scan blocks of another shape than its quantizer's")
    if ivf.by_residual or ivf.implem != 0 or ivf.skip != 0 or ivf.qbs != 0 or ivf.qbs2 != 0:
        refuse("asks for a fast-scan search other than the one this server builds")
    if ivf.orig_invlists is not None or ivf.use_precomputed_table != 0:
        refuse("carries lists or tables beside its own")


def _check_candidates(index, record: CompressedRecord) -> None:
    """The faiss index is one this module builds, over `record.count` rows of `record.dim`,
    each row in exactly one list, every float finite, and `nprobe` within its lists."""
    import faiss

    def refuse(why: str):
        raise CorpusError(f"the compressed index's {FAISS_FILE} {why}")

    floats = []  # every float array a search reads
    ivf = index
    if isinstance(index, faiss.IndexPreTransform):
        if index.chain.size() != 1:
            refuse("has more than one transform before its lists")
        # An OPQ rotation is read back as a plain LinearTransform: orthonormal, no bias, so that
        # inner products are what they were.
        rotation = faiss.downcast_VectorTransform(index.chain.at(0))
        wide = record.candidate_dim
        if not isinstance(rotation, faiss.LinearTransform) or (rotation.d_in, rotation.d_out) != (wide, wide):
            refuse(f"has a {type(rotation).__name__[:40]}, not a rotation of {wide} dimensions")
        if rotation.A.size() != wide**2 or rotation.have_bias or not rotation.is_orthonormal:
            refuse("has a transform that is not a rotation (inner products would change)")
        floats.append(faiss.vector_to_array(rotation.A))
        ivf = faiss.downcast_index(index.index)
    if type(ivf).__name__ not in ("IndexIVFPQ", "IndexIVFPQFastScan", "IndexIVFScalarQuantizer"):
        refuse(f"is a {type(ivf).__name__[:40]}, not the IVF-PQ or IVF-SQ8 index this server builds")
    if index.ntotal != record.count or index.d != record.candidate_dim or ivf.d != record.candidate_dim:
        refuse(f"holds {index.ntotal:,} vectors of {index.d}, not {record.count:,} of {record.candidate_dim}")
    if ivf.metric_type != faiss.METRIC_INNER_PRODUCT or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        refuse("does not rank by inner product")
    if record.settings.nprobe > ivf.nlist:
        raise CorpusError(
            f"the compressed index's {RECORD_FILE} probes {record.settings.nprobe:,} of {ivf.nlist:,} lists"
        )
    if isinstance(ivf, faiss.IndexIVFPQ):
        if ivf.pq.nbits != 8 or ivf.pq.M * ivf.pq.dsub != ivf.d or ivf.code_size != ivf.pq.code_size:
            refuse("has a product quantizer of another shape than its codes")
        if ivf.polysemous_ht != 0:  # a Hamming pre-filter would drop candidates this module never drops
            refuse("filters its codes by Hamming distance")
        floats.append(faiss.vector_to_array(ivf.pq.centroids))
    elif isinstance(ivf, faiss.IndexIVFPQFastScan):
        _check_fast_scan(ivf, refuse)
        floats.append(faiss.vector_to_array(ivf.pq.centroids))
    else:
        if ivf.sq.qtype != faiss.ScalarQuantizer.QT_8bit or ivf.code_size != ivf.d:
            refuse("has a scalar quantizer other than 8 bits a dimension")
        if ivf.sq.trained.size() != 2 * ivf.d:  # a search reads a minimum and a range a dimension
            refuse("has a scalar quantizer of another size than its dimension")
        floats.append(faiss.vector_to_array(ivf.sq.trained))
    quantizer = faiss.downcast_index(ivf.quantizer)
    if not isinstance(quantizer, faiss.IndexFlat) or quantizer.ntotal != ivf.nlist or quantizer.d != ivf.d:
        refuse(f"has a quantizer of {quantizer.ntotal:,} centroids for {ivf.nlist:,} lists")
    floats.append(faiss.rev_swig_ptr(quantizer.get_xb(), quantizer.ntotal * quantizer.d))
    if not all(np.isfinite(a).all() for a in floats):
        refuse("holds centroids or codebooks that are not finite (NaN or infinity)")
    lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf.invlists is not None else None
    kind = "BlockInvertedLists" if isinstance(ivf, faiss.IndexIVFPQFastScan) else "ArrayInvertedLists"
    if type(lists).__name__ != kind or lists.nlist != ivf.nlist:
        refuse("keeps its lists elsewhere than in itself, or of another kind than its codes")
    if kind == "ArrayInvertedLists" and lists.code_size != ivf.code_size:
        refuse("keeps lists of another shape than its header says")
    if kind == "BlockInvertedLists" and (lists.n_per_block != ivf.bbs or lists.block_size != ivf.bbs * ivf.M2 // 2):
        # faiss's reader checks each list's code bytes against its ids in these blocks
        # (tests/test_compressed.py::test_a_fast_scan_list_shorter_than_its_ids_is_refused)
        refuse("keeps its codes in blocks of another size than its quantizer's")
    seen = np.zeros(record.count, dtype=bool)  # each row in exactly one list: a permutation of 0..n-1
    total = 0
    for i in range(ivf.nlist):
        size = lists.list_size(i)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(i), size)  # a view, no copy
            if ids.min() < 0 or ids.max() >= record.count:
                refuse("names passages the corpus does not have")
            seen[ids] = True
            total += size
    if total != record.count or not seen.all():
        refuse("does not name every passage exactly once")
