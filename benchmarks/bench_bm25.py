"""BM25 at scale: the streamed build (BM25Index.build), save, memory-mapped open and queries over
generated wiki_dpr-like passages (tools/wiki_corpus.py, no embeddings, written as Parquet shards by
a child process first, so that neither its time nor its memory is counted). Prints build seconds
(tokenising, weighting and impact-ordering, saving), peak RSS, index size on disk, open seconds,
and over questions of 3-6 words drawn from the passages, one at a time: the exact search (whole
columns) and the bounded one (at most POSTINGS_BUDGET postings, or each of --budgets): latency
p50/p95, postings read a query, pages of the mapped files the queries touched (RssFile growth),
and the bounded search's top-10 agreement with the exact one (the share of the exact top 10 in
the bounded top 10, mean over questions). Up to --compare-up-to passages, also top-10 agreement
of the exact search with the pure-numpy implementation BM25 had before bm25s. Asserts nothing.

    .venv/bin/python benchmarks/bench_bm25.py [--passages 200000] [--queries 200] [--budgets 1048576,524288]
        [--compare-up-to 200000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import bm25s
import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lfqa_demo.retrieval import bm25  # noqa: E402
from lfqa_demo.retrieval.bm25 import BM25Index, bm25_terms  # noqa: E402
from lfqa_demo.retrieval.corpus import Passage  # noqa: E402


class OldBM25Index:
    """The pure numpy/dict BM25 this project had before bm25s (kept here only to compare with):
    one postings list of precomputed weights per term, in a dict."""

    def __init__(self, corpus: list[Passage], k1: float = 1.5, b: float = 0.75):
        self.size = len(corpus)
        docs = [Counter(bm25_terms(f"{p.title} {p.text}")) for p in corpus]
        lengths = np.array([sum(d.values()) for d in docs], dtype=np.float32)
        avg = float(lengths.mean()) if len(docs) and lengths.mean() > 0 else 1.0
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, doc in enumerate(docs):
            for term, tf in doc.items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (ids, tfs) in postings.items():
            idx = np.asarray(ids, dtype=np.int64)
            tf = np.asarray(tfs, dtype=np.float32)
            idf = np.log1p((self.size - len(idx) + 0.5) / (len(idx) + 0.5))
            norm = k1 * (1 - b + b * lengths[idx] / avg)
            self._postings[term] = (idx, (idf * tf * (k1 + 1) / (tf + norm)).astype(np.float32))

    def scores(self, question: str) -> np.ndarray:
        s = np.zeros(self.size, dtype=np.float32)
        for term in bm25_terms(question):
            if term in self._postings:
                idx, weights = self._postings[term]
                s[idx] += weights
        return s

    def top(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and passage ids [k], best first (as `search` had it: ties at the cut taken as
        np.argpartition leaves them)."""
        s = self.scores(question)
        top = np.argpartition(-s, k - 1)[:k] if k < self.size else np.arange(self.size)
        top = top[np.lexsort((top, -s[top]))]  # best first; ties by passage order
        return s[top], top


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_file_mb() -> float:
    """Pages of mapped files this process holds (VmRSS counts them), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_flags() -> str:
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return ",".join(sorted(words & {"avx2", "avx512_bf16", "amx_tile"})) or "none of avx2/avx512_bf16/amx_tile"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--compare-up-to", type=int, default=200_000, help="compare with the old code up to this N")
    parser.add_argument(
        "--budgets",
        type=lambda text: [int(b) for b in text.split(",")],
        default=[bm25.POSTINGS_BUDGET],
        help="postings budgets of the bounded search, comma-separated (default: bm25.POSTINGS_BUDGET)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the index is saved (a temporary directory)")
    args = parser.parse_args()
    n = args.passages
    print(
        f"bm25s {bm25s.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, CPU flags: {cpu_flags()}, "
        f"{n:,} passages"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run(args, Path(tmp))


def rows_of(shards: list[Path]) -> Iterator[tuple[str, str]]:
    """(title, text) of each passage of the Parquet `shards`, in order."""
    for shard in shards:
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=10_000, columns=["title", "text"]):
            yield from zip(batch.column("title").to_pylist(), batch.column("text").to_pylist())


def run(args: argparse.Namespace, tmp: Path) -> None:
    n = args.passages
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "tools" / "wiki_corpus.py"), str(tmp / "corpus"), "--passages", str(n)]
    subprocess.run([*command, "--no-embeddings"], check=True, stdout=subprocess.DEVNULL)
    print(f"generating the corpus: {time.perf_counter() - started:.1f} s (in a child process, not counted)")
    shards = sorted((tmp / "corpus").glob("*.parquet"))
    rng = np.random.default_rng(0)
    sampled = set(rng.choice(n, size=min(args.queries, n), replace=False).tolist())
    kept: list[str] = []  # texts of the sampled passages, to draw questions from

    def rows() -> Iterator[tuple[str, str]]:
        for position, (title, text) in enumerate(rows_of(shards)):
            if position in sampled:
                kept.append(text)
            yield title, text

    tokenised_at = 0.0

    def progress(done: int, total: int | None) -> None:
        nonlocal tokenised_at
        tokenised_at = time.perf_counter()

    rss_before = peak_rss_mb()
    started = time.perf_counter()
    index = BM25Index.build(rows(), progress=progress)  # reading the Parquet shards counts as tokenising
    built = time.perf_counter()
    directory = index.save(tmp / "bm25")
    saving = time.perf_counter() - built
    rss_build = peak_rss_mb()
    del index
    disk = sum(f.stat().st_size for f in directory.iterdir())
    terms = len(np.load(directory / "indptr.csc.index.npy", mmap_mode="r")) - 1
    print(
        f"build: tokenising {tokenised_at - started:.1f} s, weighting and ordering {built - tokenised_at:.1f} s, "
        f"saving {saving:.1f} s; peak RSS {rss_build:,.0f} MB ({rss_before:,.0f} MB before building); on disk "
        f"{disk / 1e6:,.0f} MB ({terms:,} terms)"
    )
    rss_file = rss_file_mb()
    started = time.perf_counter()
    opened = BM25Index.open(directory)
    print(
        f"open (mmap, every array checked, {opened.postings_order} order): {time.perf_counter() - started:.2f} s, "
        f"mapped: {opened.memory_mapped}, file pages mapped after opening: {rss_file_mb() - rss_file:.1f} MB"
    )
    del opened

    questions = []
    for text in kept:
        words = text.split()
        questions.append(" ".join(rng.choice(words, size=min(int(rng.integers(3, 7)), len(words)), replace=False)))
    exact = measure(directory, questions, exact=True)
    print(f"exact search (whole columns): {exact.summary()}")
    for budget in args.budgets:
        bm25.POSTINGS_BUDGET = budget  # read at each query
        bounded = measure(directory, questions, exact=False)
        print(
            f"bounded search, budget {budget:,} postings: {bounded.summary()}; top-10 agreement with the exact "
            f"search {agreement(bounded.results, exact.results):.4f} (the same top-10 list for "
            f"{sum(np.array_equal(b[1], e[1]) for b, e in zip(bounded.results, exact.results))}/{len(questions)})"
        )
    index = BM25Index.open(directory)
    started = time.perf_counter()
    scores, _ = index.search(["the of and which", "zzzunknownzzz"], 10)
    empty_ms = 1000 * (time.perf_counter() - started) / 2
    print(
        f"stopwords or unknown words only: {empty_ms:.2f} ms, all scores 0: {not scores.any()}; peak RSS now "
        f"{peak_rss_mb():,.0f} MB"
    )
    if n <= args.compare_up_to:
        compare_with_old(shards, questions, exact.results)


class Measured:
    """Per-question latencies (ms), postings read and top-10 (scores, ids) of one kind of search."""

    def __init__(self, times: list[float], postings: list[int], results: list, file_mb: float):
        self.times, self.postings, self.results, self.file_mb = times, postings, results, file_mb

    def summary(self) -> str:
        return (
            f"first {self.times[0]:.1f} ms, p50 {statistics.median(self.times):.1f} ms, p95 "
            f"{statistics.quantiles(self.times, n=20)[18]:.1f} ms, max {max(self.times):.1f} ms; postings read a "
            f"query: mean {statistics.mean(self.postings):,.0f}, p50 {statistics.median(self.postings):,.0f}, max "
            f"{max(self.postings):,}; mapped file pages touched by {len(self.times)} queries: {self.file_mb:,.1f} MB"
        )


def measure(directory: Path, questions: list[str], exact: bool) -> Measured:
    """Top 10 of each question, one at a time, on an index opened for this run (a mapping of its
    own, so that the RssFile growth is this run's pages)."""
    index = BM25Index.open(directory)
    rss_file = rss_file_mb()
    times, results = [], []
    for question in questions:
        started = time.perf_counter()
        scores, ids = index.search([question], 10, exact=exact)
        times.append(1000 * (time.perf_counter() - started))
        results.append((scores[0], ids[0]))
    file_mb = rss_file_mb() - rss_file
    postings = [index.postings_read(question, exact=exact) for question in questions]
    return Measured(times, postings, results, file_mb)


def agreement(bounded: list[tuple[np.ndarray, np.ndarray]], exact: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The share of each exact top 10 (passages scoring above 0) in the bounded top 10, mean over
    the questions with any."""
    shares = []
    for (_, ids), (exact_scores, exact_ids) in zip(bounded, exact):
        wanted = set(exact_ids[exact_scores > 0].tolist())
        if wanted:
            shares.append(len(wanted & set(ids.tolist())) / len(wanted))
    return statistics.mean(shares) if shares else float("nan")


def compare_with_old(shards: list[Path], questions: list[str], results: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Top-10 agreement of `results` with the old implementation over the same passages."""
    corpus = [Passage(str(i), title, text) for i, (title, text) in enumerate(rows_of(shards))]
    started = time.perf_counter()
    old = OldBM25Index(corpus)
    old_build = time.perf_counter() - started
    same_list, same_set, exact_list, exact_set, worst, times = 0, 0, 0, 0, 0.0, []
    for question, (scores, ids) in zip(questions, results):
        started = time.perf_counter()
        old_scores, old_ids = old.top(question, 10)
        times.append(1000 * (time.perf_counter() - started))
        same_list += np.array_equal(ids, old_ids)
        same_set += set(ids.tolist()) == set(old_ids.tolist())
        worst = max(worst, float(np.max(np.abs(scores - old_scores) / np.maximum(old_scores, 1e-6))))
        all_scores = old.scores(question)
        exact = np.lexsort((np.arange(len(all_scores)), -all_scores))[:10]  # ties in passage order, as now
        exact_list += np.array_equal(ids, exact)
        exact_set += set(ids.tolist()) == set(exact.tolist())
    count = len(questions)
    print(
        f"old pure-numpy BM25: build {old_build:.1f} s, query p50 {statistics.median(times):.1f} ms; top-10 the same "
        f"as its search for {same_list}/{count} questions (the same set for {same_set}/{count}), the same as its "
        f"scores ranked with ties in passage order for {exact_list}/{count} (the same set for {exact_set}/{count}); "
        f"largest relative score difference {worst:.1e}"
    )


if __name__ == "__main__":
    main()
