"""Compressed dense indexes (lfqa_demo/retrieval/compressed.py) at Wikipedia's scale, on a small
CPU machine: N generated passage vectors (tools/wiki_corpus.py: clustered, anisotropic,
unnormalised) for 768-d (DPR) and 128-d (RetriBERT, REALM), built, opened and searched.

Reports, for each dimension: seconds per build stage (sample, train, add + rescoring file,
measure + tune), the build's peak memory (anonymous and file-backed resident pages, sampled),
the files on disk, the resident memory that opening adds (and with faiss's IO_FLAG_MMAP),
search p50/p95 one query at a time with 2 faiss threads (warm page cache; and cold: the
rescoring file's pages unmapped and dropped from the page cache before each query), and
recall@10 against exact search on Q generated vectors that are not in the index (rows N..N+Q
of the generated set, each of an article of its own). Then a linear model of bytes per vector, projected to wiki_dpr's
21,015,300 passages. Each stage runs in its own process, so that one's memory is
not another's. Prints tables; asserts nothing.

    .venv/bin/python benchmarks/bench_compressed.py [--n 2000000] [--dims 768,128] [--queries 500]
        [--factory SPEC] [--rescore auto|int8|float16] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import mmap
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from wiki_corpus import Layout, _articles, passage_vectors  # noqa: E402  (the generator's own article runs)

from lfqa_demo.retrieval import compressed  # noqa: E402
from lfqa_demo.retrieval.vectors import ArrayVectors  # noqa: E402

WIKI_DPR_PASSAGES = 21_015_300
THREADS = 2  # the target machine's vCPUs


# -- memory ----------------------------------------------------------------------------------------------
def memory() -> dict[str, int]:
    """This process's resident pages in bytes: anonymous (heap: what the index holds) and
    file-backed (mapped files' pages in the page cache, which the kernel may drop)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                name, value, _ = line.split()
                out[name[:-1]] = int(value) * 1024
    return out


class PeakMemory:
    """Samples memory() every 0.1 s in a thread; `.peak` holds each field's maximum."""

    def __init__(self):
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for key, value in memory().items():
                self.peak[key] = max(self.peak.get(key, 0), value)
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- stages, each in a child process ------------------------------------------------------------------------
def generate(path: Path, n: int, queries: int, dim: int) -> None:
    """`n` generated passage vectors of `dim` into a .npy file, 100,000 rows at a time, then
    `queries` more, each of an article of its own that the first `n` do not have (500 rows of
    the generator's own runs of 2-12 would be ~70 articles: 70 clusters, not 500 queries)."""
    articles = _articles(Layout(n), np.random.default_rng(0))
    articles = np.concatenate([articles, articles[-1] + 1 + np.arange(queries)])
    total = n + queries
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(total, dim))
    start = 0
    for chunk in passage_vectors(articles, dim, seed=0):
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()


def build(vectors: Path, n: int, out_dir: Path, factory: str | None, rescore: str) -> dict:
    source = ArrayVectors(np.load(vectors, mmap_mode="r")[:n], origin=str(vectors))
    with PeakMemory() as peak:
        result = compressed.build_compressed(source, out_dir, factory=factory, rescore_dtype=rescore)
    return {"record": result.record.model_dump(), "peak": peak.peak}


def search(vectors: Path, n: int, queries: int, out_dir: Path) -> dict:
    """Open the index, then time single-query searches and measure recall on the held-out rows."""
    import faiss

    faiss.omp_set_num_threads(THREADS)
    all_vectors = np.load(vectors, mmap_mode="r")
    held = np.ascontiguousarray(all_vectors[n : n + queries])  # [q, dim], not in the index
    before = memory()
    index = compressed.open_compressed(out_dir)
    opened = memory()
    index.search(held[:8], 10)  # warm-up
    warm, found = [], []
    for query in held:
        t = time.perf_counter()
        _, ids = index.search(query[None], 10)
        warm.append(1000 * (time.perf_counter() - t))
        found.append(ids[0])
    cold = []
    with open(out_dir / compressed.RESCORE_FILE, "rb") as f:
        for query in held[:100]:
            drop_pages(index.codes, f.fileno())
            t = time.perf_counter()
            index.search(query[None], 10)
            cold.append(1000 * (time.perf_counter() - t))
    after = memory()
    source = ArrayVectors(all_vectors[:n])
    _, exact = compressed.exact_search(source, held, 10)
    return {
        "open_anon": opened["RssAnon"] - before["RssAnon"],
        "searched_file": after["RssFile"] - before["RssFile"],
        "p50": statistics.median(warm),
        "p95": float(np.percentile(warm, 95)),
        "cold_p50": statistics.median(cold),
        "cold_p95": float(np.percentile(cold, 95)),
        "recall_at_10": compressed.recall_at(np.stack(found), exact, 10),
    }


def drop_pages(codes: np.memmap, fileno: int) -> None:
    """Make the rescoring rows cold: unmap this process's pages of them, then drop the file's
    pages from the page cache (pages still mapped would stay)."""
    codes._mmap.madvise(mmap.MADV_DONTNEED)  # numpy's mmap object: private, but this is a benchmark
    os.posix_fadvise(fileno, 0, 0, os.POSIX_FADV_DONTNEED)


def mmap_open_memory(path: Path) -> int:
    """Anonymous memory that reading the faiss file with IO_FLAG_MMAP adds (its lists stay in
    the file, in the page cache): in a process of its own, where no freed heap is reused."""
    import faiss

    before = memory()["RssAnon"]
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_SKIP_PRECOMPUTE_TABLE
    index = faiss.read_index(str(path), flags)
    grown = memory()["RssAnon"] - before
    del index
    return grown


def in_child(function, *args):
    """function(*args) in a fresh process (spawned: faiss's OpenMP threads do not survive a fork)."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


# -- report ------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--dims", default="768,128")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--factory", default=None, help="a faiss index_factory string instead of the default")
    parser.add_argument("--rescore", default="auto", choices=("auto", "int8", "float16"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_compressed"))
    args = parser.parse_args()
    import faiss

    cpuinfo = Path("/proc/cpuinfo").read_text()
    flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in cpuinfo)
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs ({flags}), {args.n:,} vectors, {args.queries} queries")
    print(f"load average at the start: {load()}")
    rows = []
    for dim in (int(d) for d in args.dims.split(",")):
        args.work.mkdir(parents=True, exist_ok=True)
        vectors = args.work / f"vectors-{dim}-{args.n}+{args.queries}.npy"
        if not vectors.exists():
            t = time.perf_counter()
            in_child(generate, vectors, args.n, args.queries, dim)
            print(f"  generated {vectors.name} in {time.perf_counter() - t:.0f} s", flush=True)
        out_dir = args.work / f"index-{dim}-{args.n}"
        built = in_child(build, vectors, args.n, out_dir, args.factory, args.rescore)
        record = built["record"]
        measured = in_child(search, vectors, args.n, args.queries, out_dir)
        measured["mmap_open_anon"] = in_child(mmap_open_memory, out_dir / compressed.FAISS_FILE)
        rows.append((dim, record, built["peak"], measured))
        summary = {k: v for k, v in record.items() if k != "tried"}
        print(json.dumps({"dim": dim, **summary, "peak": built["peak"], **measured}))
        for tried in record["tried"]:
            print("   ", tried)
        sys.stdout.flush()
    report(rows, args.n)
    print(f"load average at the end: {load()}")


def load() -> str:
    """The 1, 5 and 15 minute load averages: on a shared machine, what the timings shared it with."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(rows, n: int) -> None:
    mb = 1e6
    print(
        f"\n{'dim':>4} {'factory':<20} {'rescore':>7} {'nprobe':>6} {'depth':>5} {'sample s':>8} {'train s':>7} "
        f"{'add s':>6} {'tune s':>6} {'peak anon MB':>12} {'peak file MB':>12}"
    )
    for dim, record, peak, _ in rows:
        s, settings = record["seconds"], record["settings"]
        print(
            f"{dim:>4} {record['factory']:<20} {record['rescore_dtype']:>7} {settings['nprobe']:>6} "
            f"{settings['depth']:>5} {s['sample']:8.1f} {s['train']:7.1f} {s['add']:6.1f} {s['measure']:6.1f} "
            f"{peak.get('RssAnon', 0) / mb:12.0f} {peak.get('RssFile', 0) / mb:12.0f}"
        )
    print(
        f"\n{'dim':>4} {'faiss MB':>9} {'rescore MB':>10} {'open +anon MB':>13} {'mmap +anon MB':>13} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'cold p50':>8} {'cold p95':>8} {'recall@10':>9} {'build r@10':>10}"
    )
    for dim, record, _, m in rows:
        files = record["files"]
        print(
            f"{dim:>4} {files[compressed.FAISS_FILE] / mb:9.1f} {files[compressed.RESCORE_FILE] / mb:10.1f} "
            f"{m['open_anon'] / mb:13.1f} {m['mmap_open_anon'] / mb:13.1f} {m['p50']:7.2f} {m['p95']:7.2f} "
            f"{m['cold_p50']:8.2f} {m['cold_p95']:8.2f} {m['recall_at_10']:9.3f} "
            f"{record['measured']['recall_at_10']:10.3f}"
        )
    print(f"\nprojected to {WIKI_DPR_PASSAGES:,} passages: bytes = per vector x n + the lists' centroids (~sqrt(n))")
    for dim, record, _, m in rows:
        files = record["files"]
        nlist = int(record["factory"].split("IVF")[1].split(",")[0])
        centroids = nlist * record["candidate_dim"] * 4  # float32
        grown = centroids * math.sqrt(WIKI_DPR_PASSAGES / n)
        # In RAM: the faiss index (codes + 8-byte ids + codebooks) and the row scales.
        ram_per = (files[compressed.FAISS_FILE] - centroids + files[compressed.SCALE_FILE]) / n
        disk_per = (sum(files.values()) - centroids) / n
        print(
            f"  {dim:>4}-d: RAM {ram_per:.1f} B/vector -> {(ram_per * WIKI_DPR_PASSAGES + grown) / 1e9:.2f} GB "
            f"(opening added {m['open_anon'] / n:.1f} B/vector here); disk {disk_per:.1f} B/vector -> "
            f"{(disk_per * WIKI_DPR_PASSAGES + grown) / 1e9:.2f} GB"
        )


if __name__ == "__main__":
    main()
