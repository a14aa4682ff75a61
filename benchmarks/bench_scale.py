"""Which faiss index above which corpus size: exact (flat) vs HNSW vs IVF-Flat vs IVF-PQ over
synthetic vectors (clustered Gaussians, normalised, 768-d like DPR and 128-d like RetriBERT
and REALM). Reports build time, memory (serialised size), single-query latency and
recall@10 against exact search. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/bench_scale.py [--n 1000000] [--dims 768,128] [--kinds flat,hnsw,ivf,ivfpq]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lfqa_demo.retrieval.indexes import make_faiss_index  # noqa: E402  (the project's own index settings)


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n vectors around 1,000 random centres, and 100 queries near random data points."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    data = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):  # in chunks: the temporaries of a 1M x 768 draw would double memory
        m = min(100_000, n - s)
        data[s : s + m] = centres[rng.integers(0, 1000, m)] + 0.8 * rng.standard_normal((m, dim), dtype=np.float32)
    faiss.normalize_L2(data)
    queries = data[rng.integers(0, n, 100)] + 0.05 * rng.standard_normal((100, dim), dtype=np.float32)
    faiss.normalize_L2(queries)
    return data, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dims", default="768,128")
    parser.add_argument("--kinds", default="flat,hnsw,ivf,ivfpq")
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {args.n:,} vectors")
    print(f"{'dim':>4} {'index':<6} {'build s':>8} {'memory MB':>10} {'query ms p50':>13} {'recall@10':>10}")
    for dim in (int(d) for d in args.dims.split(",")):
        data, queries = synthetic(args.n, dim)
        truth = None
        for kind in args.kinds.split(","):
            t = time.perf_counter()
            index = make_faiss_index(data, kind)
            build_s = time.perf_counter() - t
            memory = faiss.serialize_index(index).nbytes / 1e6
            times, found = [], []
            for q in queries:
                t = time.perf_counter()
                _, ids = index.search(q[None], 10)
                times.append(1000 * (time.perf_counter() - t))
                found.append(ids[0])
            if kind == "flat":
                truth = found
            recall = (
                np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
                if truth is not None
                else float("nan")
            )
            print(
                f"{dim:>4} {kind:<6} {build_s:8.1f} {memory:10.0f} {statistics.median(times):13.2f} {recall:10.3f}",
                flush=True,
            )
            del index
        del data


if __name__ == "__main__":
    main()
