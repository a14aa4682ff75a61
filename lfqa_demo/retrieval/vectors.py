"""Passage vectors that come from somewhere other than an encoder run here.

A corpus at Wikipedia's scale is never encoded on the machine that serves it: its vectors come
with it (wiki_dpr's `embeddings` column, made by DPR's passage encoder) or from files a build
elsewhere wrote (`index ... --vectors NAME=PATH`). Index builders read them through one small
interface, `VectorSource`: a row count, a dimension, and the rows in corpus order, chunk by
chunk, as many times as a builder needs (a pass to sample, a pass to add, a pass to measure),
so that no step has to hold 21M x 768 floats at once.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np

CHUNK_ROWS = 65_536  # 65,536 x 768 float32 = 192 MiB: large enough for BLAS, small enough to stream


class VectorSource(Protocol):
    """Row-aligned passage vectors: row i is corpus passage i."""

    count: int  # rows
    dim: int
    origin: str  # where they come from, in words ("the corpus's embeddings column", a path...)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        """The vectors in corpus order as float32 C-contiguous arrays [<= rows, dim]; every call
        starts again from row 0."""
        ...


class ArrayVectors:
    """A VectorSource over an array in memory or a memory-mapped .npy file [count, dim]."""

    def __init__(self, vectors: np.ndarray, origin: str = "an array"):
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-d [count, dim], not of shape {vectors.shape}")
        self.vectors = vectors
        self.count, self.dim = (int(n) for n in vectors.shape)
        self.origin = origin

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        for start in range(0, self.count, rows):
            yield np.ascontiguousarray(self.vectors[start : start + rows], dtype=np.float32)


class PrefixVectors:
    """The first `rows` vectors of another source (a corpus read with --max-passages keeps a prefix)."""

    def __init__(self, source: VectorSource, rows: int):
        self.source, self.count, self.dim = source, min(rows, source.count), source.dim
        self.origin = f"{source.origin} (its first {self.count:,} rows)"

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        left = self.count
        for chunk in self.source.chunks(rows):
            if left <= 0:
                return
            yield chunk[:left]
            left -= len(chunk)


def gather_rows(source: VectorSource, rows: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The vectors of the given row numbers, float32 [len(rows), dim], in the order given: one
    pass over `source` (for training samples and held-out queries)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), source.dim), dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    start, at = 0, 0
    for chunk in source.chunks(chunk_rows):
        stop = start + len(chunk)
        end = int(np.searchsorted(wanted, stop, side="left"))
        if end > at:
            out[order[at:end]] = chunk[wanted[at:end] - start]
            at = end
        start = stop
        if at == len(rows):
            break
    if at != len(rows):
        raise ValueError(f"row {int(wanted[at])} is past the end of the vectors ({start} rows)")
    return out
