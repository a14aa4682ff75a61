"""A second, finer code of every vector, kept beside a fast-scan candidate index: it ranks the
candidates again, in memory, before the best of them are read from disk.

Why: 4-bit fast-scan codes (compressed.candidate_factory) scan four times faster than 8-bit
ones of the same size, but rank coarsely: at 2M generated 768-d vectors their top 800 held
too few of the true top 10 for recall@10 0.95 however many lists were probed, and reading more
rows than that from disk costs more than the scan saves. So the top `refine_depth` (thousands)
are scored again from 8-bit PQ codes after an OPQ rotation (65 bytes a vector, as the fast-scan
ones), and only the best `depth` of those are rescored from disk. At 2M, 768 of 2,828 lists:
fast-scan top 3,200 -> 8-bit top 200 -> int8 rescoring kept recall@10 0.974 of 200 fresh
queries in 5.2 ms, where 8-bit codes alone took 6.6 ms for 0.973.

The codes are plain arrays, scored with NumPy (no faiss file to trust):

    refine_rotation.npy   float32 [d, d]: the fast-scan index's OPQ rotation, orthonormal
    refine_centroids.npy  float32 [M, 256, d / M]: each sub-space's 256 centroids
    refine_codes.npy      uint8 [n, M]: row i's code, memory-mapped

A row's score is sum_m centroids[m, codes[i, m]] . (rotation @ q)[m-th sub-space].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CorpusError

ROTATION_FILE = "refine_rotation.npy"
CENTROIDS_FILE = "refine_centroids.npy"
CODES_FILE = "refine_codes.npy"
FILES = (ROTATION_FILE, CENTROIDS_FILE, CODES_FILE)
PQ_ITERATIONS = 10
TRAIN_ROWS = 65_536


class RefineCodes:
    """8-bit PQ codes of every row, after an OPQ rotation; `scores` ranks candidates with them."""

    def __init__(self, rotation: np.ndarray, centroids: np.ndarray, codes: np.ndarray):
        """`rotation` float32 [d, d], `centroids` float32 [M, 256, d / M], `codes` uint8 [n, M]."""
        self.rotation, self.centroids, self.codes = rotation, centroids, codes
        self.m = centroids.shape[0]
        self._subspaces = np.arange(self.m)
        self._encoder = None  # the trained faiss index, while building

    @classmethod
    def train(cls, sample: np.ndarray, m: int, rotation: np.ndarray, seed: int = 0) -> "RefineCodes":
        """Train the centroids on `sample` float32 [rows, d] (the candidate index's equalised
        vectors) after `rotation` float32 [d, d] (the fast-scan index's own OPQ rotation: its
        sub-spaces of d / 2M dimensions, paired, are these codes' sub-spaces); no rows coded yet."""
        import faiss

        d = sample.shape[1]
        quantizer = faiss.ProductQuantizer(d, m, 8)
        quantizer.cp.niter, quantizer.cp.seed = PQ_ITERATIONS, seed
        quantizer.train(np.ascontiguousarray(sample[:TRAIN_ROWS] @ rotation.T, dtype=np.float32))
        centroids = faiss.vector_to_array(quantizer.centroids).reshape(m, quantizer.ksub, quantizer.dsub)
        trained = cls(rotation.astype(np.float32), centroids.astype(np.float32), np.zeros((0, m), dtype=np.uint8))
        trained._encoder = quantizer
        return trained

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """uint8 [r, M] codes of `rows` float32 [r, d] (each rotated sub-vector's nearest
        centroid, by faiss); only a RefineCodes made by `train` encodes."""
        if self._encoder is None:
            raise RuntimeError("refine codes opened from files do not encode: train them")
        return self._encoder.compute_codes(np.ascontiguousarray(rows @ self.rotation.T, dtype=np.float32))

    def scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """float32 [len(rows)]: the inner product of `query` float32 [d] (the candidate index's
        padded query) with each row's coded vector."""
        # einsum, not `@`: a 780 x 780 product is past OpenBLAS's threading threshold, and its second
        # thread, woken while faiss's OpenMP threads still spin, waited 8 ms for a core (2 vCPUs).
        rotated = np.einsum("ij,j->i", self.rotation, query)  # [d]
        tables = np.einsum("mkd,md->mk", self.centroids, rotated.reshape(self.m, -1))  # [M, 256]
        order = np.argsort(rows)  # the mapped codes read in file order
        scores = np.empty(len(rows), dtype=np.float32)
        scores[order] = tables[self._subspaces, self.codes[rows[order]]].sum(1)  # [len(rows)]
        return scores

    def top(self, query: np.ndarray, rows: np.ndarray, depth: int) -> np.ndarray:
        """The `depth` of `rows` whose codes score highest, best first (ties in candidate order)."""
        scores = self.scores(query, rows)
        return rows[np.argsort(-scores, kind="stable")[:depth]]

    def write(self, out_dir: Path) -> None:
        """The rotation and centroids (the codes are written by the build as they are made)."""
        np.save(out_dir / ROTATION_FILE, self.rotation, allow_pickle=False)
        np.save(out_dir / CENTROIDS_FILE, self.centroids, allow_pickle=False)

    @classmethod
    def open(cls, out_dir: Path, count: int, dim: int, m: int) -> "RefineCodes":
        """The three files of `out_dir`, each checked against the record (`count` rows of the
        candidate index's `dim`, `m` sub-spaces): CorpusError saying which one disagrees."""

        def load(name: str, mmap: bool = False) -> np.ndarray:
            try:
                return np.load(out_dir / name, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise CorpusError(f"the compressed index's {name} cannot be read ({type(exc).__name__})") from None

        if not (1 <= m <= dim and dim % m == 0):
            raise CorpusError(f"the compressed index's refine codes have {m} sub-spaces for {dim} dimensions")
        rotation, centroids = load(ROTATION_FILE), load(CENTROIDS_FILE)
        codes = load(CODES_FILE, mmap=True)
        if rotation.dtype != np.float32 or rotation.shape != (dim, dim) or not np.isfinite(rotation).all():
            raise CorpusError(f"the compressed index's {ROTATION_FILE} is not finite float32 [{dim}, {dim}]")
        if not np.allclose(rotation @ rotation.T, np.eye(dim, dtype=np.float32), atol=1e-3):
            raise CorpusError(f"the compressed index's {ROTATION_FILE} is not a rotation (inner products would change)")
        shape = (m, 256, dim // m)
        if centroids.dtype != np.float32 or centroids.shape != shape or not np.isfinite(centroids).all():
            raise CorpusError(f"the compressed index's {CENTROIDS_FILE} is not finite float32 {list(shape)}")
        if codes.dtype != np.uint8 or codes.shape != (count, m):
            raise CorpusError(
                f"the compressed index's {CODES_FILE} holds {codes.dtype} {codes.shape}, not uint8 {(count, m)}"
            )
        return cls(rotation, centroids, codes)
