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

With --synthetic PASSAGES, no corpus: a saved index is written directly, in the layout
`BM25Index.save` writes and `BM25Index.open` checks (bm25s's five files and lfqa_demo_bm25.json
with "postings": "impact"), into --dir/bm25-synthetic-v1-PASSAGES (kept, and reused by later
runs once complete) or a temporary directory; then opened mapped (the real open, every check) and
searched one question at a time, bounded and exact, warm (WARM_UP questions first, untimed). This
measures what POSTINGS_BUDGET's figures over 21M passages describe (`--synthetic 21015300`):

- a vocabulary of SYNTHETIC_TERMS (4,096) terms, named "t" + base-26 letters ("taaa", "taab",
  ...; those bm25_terms would drop, such as "that", skipped), whose dfs fall as a power of rank
  (Zipf-like, df_r ~ r^-0.83) from 95% of the passages (19,964,535 of 21,015,300) to 0.095%
  (19,965): 375,907,931 postings at 21,015,300 passages, 3.01 GB on disk (8 bytes a posting),
  written column by column in ~75 s here (2 vCPUs shared with another job; peak RSS 0.66 GB: the
  longest column's arrays and pages); proportionally fewer at fewer passages (2,000,000: 35.8M
  postings, 0.29 GB, ~7 s);
- each column's passages uniformly random and distinct, each weighted as `BM25Index.build`
  weights (Lucene's idf and bm25s's order of operations, float32) from a term count (geometric:
  70% once, 21% twice, ..., at most 16) and its passage's length in terms (normal, mean 58, sd 9,
  8-120, one per passage, shared by all its columns), so weights repeat as real ones do (ties);
  each column in impact order (weight descending, ties by passage ascending);
- questions of 3-6 distinct terms drawn with probability proportional to df, as a passage's
  words are.

What is assumed of real Wikipedia (wiki_dpr's 100-word passages, stopwords removed): its
postings a query can reach are dominated by a head of a few thousand terms each in more than
~0.1% of passages, with dfs falling roughly as a power of rank, flatter than Zipf's 1/r at the
top where dfs saturate; the long tail (millions of terms under 0.1%) is left out, as a question
drawn by df seldom holds one and its short column costs a query little. The commonest terms are
put in 95% of the passages (~20M of 21M): real Wikipedia's commonest non-stopwords (years,
"also", "first", ...) are likely in far fewer (a guess, not measured here), so this overstates the
long columns, the bounded search's hard case. Passages are independent of each other here (real
ones share topics), so the share of the exact top 10 kept is indicative only; the latency and
postings read are what this measures.

    .venv/bin/python benchmarks/bench_bm25.py --synthetic 21015300 [--queries 200] [--dir DIR] [--budgets ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # the ones numpy and faiss may use here


def cpu_flags() -> str:
    """Which of CPU_FLAGS /proc/cpuinfo lists, e.g. "avx2 avx512f (no avx512_bf16 amx_tile)"."""
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    found = [flag for flag in CPU_FLAGS if flag in words]
    missing = [flag for flag in CPU_FLAGS if flag not in words]
    return " ".join(found) + (f" (no {' '.join(missing)})" if missing else "") if found else f"none of {CPU_FLAGS}"


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
    parser.add_argument(
        "--synthetic",
        type=int,
        default=None,
        metavar="PASSAGES",
        help="no corpus: write (or reuse, in --dir) a synthetic impact-ordered index over PASSAGES, then search it",
    )
    args = parser.parse_args()
    if args.synthetic is not None:
        run_synthetic(args)
        return
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
    print_budgets(args.budgets, exact, lambda: measure(directory, questions, exact=False))
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
    return time_queries(BM25Index.open(directory), questions, exact)


def time_queries(index: BM25Index, questions: list[str], exact: bool) -> Measured:
    """Top 10 of each question, one at a time, on `index`; the RssFile growth is over these queries."""
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


# -- --synthetic: a generated index over any number of passages ----------------------------------
SYNTHETIC_TERMS = 4096  # the vocabulary
SYNTHETIC_VERSION = 1  # in the directory's name: a change to what is generated needs a new one
DF_MOST, DF_LEAST = 0.95, 0.00095  # shares of the passages holding the commonest and the rarest term
TF_ONCE, TF_MAX = 0.7, 16  # a term count is geometric, P(1) = 0.7, P(2) = 0.21, ..., at most TF_MAX
LENGTH_MEAN, LENGTH_SD, LENGTH_MIN, LENGTH_MAX = 58, 9, 8, 120  # a passage's terms, stopwords removed
K1, B = 1.5, 0.75  # BM25Index's defaults, which open checks against
SEED = 0
WARM_UP = 5  # questions searched (both ways) before any is timed
CHUNK = 1 << 22  # postings (or passages) handled at a time where a whole column is not needed


def synthetic_dfs(passages: int) -> np.ndarray:
    """Each term's df, commonest first: int64 [SYNTHETIC_TERMS], DF_MOST * passages * r^-s for the
    term of rank r = 1, 2, ..., with s making the last DF_LEAST * passages (s = 0.83); at least 1."""
    ranks = np.arange(1, SYNTHETIC_TERMS + 1, dtype=np.float64)
    exponent = np.log(DF_MOST / DF_LEAST) / np.log(SYNTHETIC_TERMS)
    return np.clip(np.round(DF_MOST * passages * ranks**-exponent), 1, passages).astype(np.int64)


def term_names(count: int) -> list[str]:
    """`count` words "t" + base-26 letters, of one width ("taaa", "taab", ...), that bm25_terms
    keeps as they are (those it drops, such as "that", are skipped)."""
    width = 3
    while 26**width < 2 * count:  # room to skip a few
        width += 1
    names: list[str] = []
    for number in range(26**width):
        letters = "".join(chr(ord("a") + (number // 26**place) % 26) for place in reversed(range(width)))
        if bm25_terms("t" + letters) == ["t" + letters]:
            names.append("t" + letters)
            if len(names) == count:
                break
    return names


def passage_lengths(passages: int, rng: np.random.Generator) -> np.ndarray:
    """Each passage's length in terms: int16 [passages], normal, rounded and clipped to LENGTH_MIN..LENGTH_MAX."""
    lengths = np.empty(passages, dtype=np.int16)
    for start in range(0, passages, CHUNK):
        drawn = rng.normal(LENGTH_MEAN, LENGTH_SD, min(CHUNK, passages - start))  # float64 [≤ CHUNK]
        lengths[start : start + len(drawn)] = np.clip(np.round(drawn), LENGTH_MIN, LENGTH_MAX)
    return lengths


def _draws(passages: int, free: int, wanted: int) -> int:
    """Uniform draws from 0..passages-1 expected to hit `wanted` of the `free` passages not yet
    drawn (free * (1 - exp(-m / passages)) = wanted), plus 3 sd and a few, so one round nearly always does."""
    expected = -passages * np.log1p(-min(wanted, free - 0.5) / free)
    return int(np.ceil(expected + 3 * np.sqrt(wanted) + 16))


def _random_mask(rng: np.random.Generator, passages: int, count: int) -> np.ndarray:
    """bool [passages] with `count` of them True, uniformly at random (drawn with repeats until
    enough are, then the surplus dropped at random: each stage leaves every subset of its size
    equally likely)."""
    mask = np.zeros(passages, dtype=bool)
    chosen = 0
    while chosen < count:
        mask[rng.integers(0, passages, size=_draws(passages, passages - chosen, count - chosen))] = True
        chosen = int(np.count_nonzero(mask))
    if chosen > count:
        mask[rng.choice(np.flatnonzero(mask), chosen - count, replace=False)] = False
    return mask


def _random_sorted(rng: np.random.Generator, passages: int, count: int) -> np.ndarray:
    """`count` distinct passages, uniformly at random, ascending: int64 [count] (sorted draws:
    cheaper than a mask over all passages for a short column)."""
    ids = np.unique(rng.integers(0, passages, size=_draws(passages, passages, count)))
    while len(ids) < count:
        more = rng.integers(0, passages, size=_draws(passages, passages - len(ids), count - len(ids)))
        ids = np.union1d(ids, more)
    if len(ids) > count:
        ids = np.delete(ids, rng.choice(len(ids), len(ids) - count, replace=False))
    return ids


def random_passages(rng: np.random.Generator, passages: int, count: int) -> np.ndarray:
    """`count` distinct passages of 0..passages-1, uniformly at random, ascending: int32 [count]."""
    if 2 * count > passages:  # draw the passages left out: fewer
        return np.flatnonzero(~_random_mask(rng, passages, passages - count)).astype(np.int32)
    if 64 * count >= passages:
        return np.flatnonzero(_random_mask(rng, passages, count)).astype(np.int32)
    return _random_sorted(rng, passages, count).astype(np.int32)


def weight_table(idf: np.float32, average: float) -> np.ndarray:
    """The weight of each (term count, passage length) for a term of `idf`: float32 [TF_MAX + 1,
    LENGTH_MAX + 1], as bm25.py's _assemble computes it (float64 in bm25s's order, then float32)."""
    tf = np.arange(TF_MAX + 1, dtype=np.float64)[:, None]  # [TF_MAX + 1, 1]
    length = np.arange(LENGTH_MAX + 1, dtype=np.float64)[None, :]  # [1, LENGTH_MAX + 1]
    return (idf * (tf / (K1 * ((1 - B) + B * length / average) + tf))).astype(np.float32)


def descending_ranks(table: np.ndarray) -> np.ndarray:
    """Dense ranks of `table`'s values, largest first: uint16 [table's shape], equal values equal ranks."""
    values = np.unique(table)  # ascending
    return (len(values) - 1 - np.searchsorted(values, table)).astype(np.uint16)


def write_column(
    rng: np.random.Generator, lengths: np.ndarray, count: int, weights: np.ndarray, out: tuple[np.ndarray, np.ndarray]
) -> None:
    """One column of `count` random passages (of len(lengths)) into `out` (data float32 [count],
    indices int32 [count], slices of the mapped files), in impact order: weight descending (the
    cells of `weights`, float32 [TF_MAX + 1, LENGTH_MAX + 1]), ties by passage ascending."""
    ids = random_passages(rng, len(lengths), count)  # int32 [count], ascending
    cells = np.empty(count, dtype=np.uint16)  # [count]: each posting's tf * (LENGTH_MAX + 1) + length
    for start in range(0, count, CHUNK):
        tf = np.minimum(rng.geometric(TF_ONCE, min(CHUNK, count - start)), TF_MAX)  # int64 [≤ CHUNK]
        cells[start : start + len(tf)] = tf * (LENGTH_MAX + 1) + lengths[ids[start : start + len(tf)]]
    # A stable sort by weight rank keeps passages ascending among equal weights (of uint16 keys: a radix sort).
    order = np.argsort(descending_ranks(weights).ravel()[cells], kind="stable")  # int64 [count]
    data, indices = out
    for start in range(0, count, CHUNK):
        chosen = order[start : start + CHUNK]
        data[start : start + len(chosen)] = weights.ravel()[cells[chosen]]
        indices[start : start + len(chosen)] = ids[chosen]


def write_synthetic(directory: Path, passages: int) -> None:
    """Write the synthetic index into `directory`, column by column into .npy files mapped a
    column at a time (so that the pages written leave this process), our settings file last."""
    names, dfs = term_names(SYNTHETIC_TERMS), synthetic_dfs(passages)  # [terms]: column t is the term of rank t + 1
    indptr = np.zeros(len(dfs) + 1, dtype=np.int64)  # [terms + 1]
    np.cumsum(dfs, out=indptr[1:])
    lengths = passage_lengths(passages, np.random.default_rng([SEED, 0]))  # int16 [passages]
    average = float(lengths.mean())
    idf = np.log(1 + (passages - dfs + 0.5) / (dfs + 0.5)).astype(np.float32)  # [terms], Lucene's, as _assemble
    directory.mkdir(parents=True, exist_ok=True)
    (directory / bm25.SETTINGS_FILE).unlink(missing_ok=True)  # until it is written again, open refuses the rest
    for name, dtype in ((bm25.DATA_FILE, np.float32), (bm25.INDICES_FILE, np.int32)):
        # Created at full size (sparse until written), then mapped a column at a time.
        created = np.lib.format.open_memmap(directory / name, mode="w+", dtype=dtype, shape=(int(indptr[-1]),))
        del created
    reported = 0
    for column, count in enumerate(dfs.tolist()):
        data = np.lib.format.open_memmap(directory / bm25.DATA_FILE, mode="r+")
        indices = np.lib.format.open_memmap(directory / bm25.INDICES_FILE, mode="r+")
        start, stop = int(indptr[column]), int(indptr[column + 1])
        rng = np.random.default_rng([SEED, 1, column])
        write_column(rng, lengths, count, weight_table(idf[column], average), (data[start:stop], indices[start:stop]))
        del data, indices  # unmapped: the kernel writes the pages back
        if 10 * stop >= (reported + 1) * indptr[-1]:
            reported = 10 * stop // int(indptr[-1])
            print(f"  written {stop:,} postings ({10 * reported}%), {column + 1:,} columns", flush=True)
    np.save(directory / bm25.INDPTR_FILE, indptr)
    vocab = {name: column for column, name in enumerate(names)}
    (directory / bm25.VOCAB_FILE).write_text(json.dumps(vocab), encoding="utf-8")
    params = {
        "k1": K1, "b": B, "delta": 0.5, "method": bm25.METHOD, "idf_method": bm25.METHOD, "dtype": "float32",
        "int_dtype": "int32", "num_docs": passages, "version": bm25s.__version__, "backend": "numpy",
    }  # fmt: skip
    (directory / bm25.PARAMS_FILE).write_text(json.dumps(params, indent=4), encoding="utf-8")
    settings = {"tokenizer": bm25.TOKENIZER, "k1": K1, "b": B, "method": bm25.METHOD, "documents": passages}
    settings[bm25.POSTINGS_KEY] = bm25.IMPACT
    (directory / bm25.SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def synthetic_complete(directory: Path, passages: int) -> bool:
    """Whether `directory` holds a finished synthetic index over `passages` (its settings file is written last)."""
    try:
        settings = json.loads((directory / bm25.SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(settings, dict) and settings.get("documents") == passages


def synthetic_questions(rng: np.random.Generator, names: list[str], dfs: np.ndarray, count: int) -> list[str]:
    """`count` questions of 3-6 distinct terms of `names`, each drawn with probability proportional
    to its df (dfs int64 [terms]), as a passage's words are."""
    share = dfs / dfs.sum()  # float64 [terms]
    return [
        " ".join(names[t] for t in rng.choice(len(names), size=int(rng.integers(3, 7)), replace=False, p=share))
        for _ in range(count)
    ]


def run_synthetic(args: argparse.Namespace) -> None:
    """--synthetic: write (or reuse) the index in --dir, or in a temporary directory, and search it."""
    n = args.synthetic
    if not 1 <= n <= bm25.MAX_DOCUMENTS:
        raise SystemExit(f"--synthetic takes 1..{bm25.MAX_DOCUMENTS:,} passages, not {n:,}")
    print(
        f"bm25s {bm25s.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, CPU flags: {cpu_flags()}; "
        f"synthetic index: {n:,} passages, {SYNTHETIC_TERMS:,} terms"
    )
    name = f"bm25-synthetic-v{SYNTHETIC_VERSION}-{n}"
    if args.dir is not None:
        synthetic(args, args.dir / name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        synthetic(args, Path(tmp) / name)


def synthetic(args: argparse.Namespace, directory: Path) -> None:
    """Write the index into `directory` unless it is there already, open it and time the queries."""
    n, dfs = args.synthetic, synthetic_dfs(args.synthetic)
    if synthetic_complete(directory, n):
        print(f"reusing the index in {directory}")
    else:
        needed = 8 * int(dfs.sum())  # float32 and int32 a posting
        free = shutil.disk_usage(directory.parent if directory.parent.exists() else Path.cwd()).free
        if needed > free:
            raise SystemExit(f"{needed / 1e9:.2f} GB to write, {free / 1e9:.2f} GB free under {directory.parent}")
        print(f"writing {dfs.sum():,} postings into {directory}", flush=True)
        started = time.perf_counter()
        write_synthetic(directory, n)
        print(f"writing: {time.perf_counter() - started:.1f} s, peak RSS {peak_rss_mb():,.0f} MB")
    files = list(directory.iterdir())
    size, allocated = sum(f.stat().st_size for f in files), sum(f.stat().st_blocks * 512 for f in files)
    print(
        f"on disk: {size / 1e9:.2f} GB ({allocated / 1e9:.2f} GB allocated) in {len(files)} files; {dfs.sum():,} "
        f"postings, dfs {dfs.min():,}..{dfs.max():,} (median {int(np.median(dfs)):,})"
    )
    started = time.perf_counter()
    index = BM25Index.open(directory, mmap=True)
    print(
        f"open (mmap, every array checked, {index.postings_order} order): {time.perf_counter() - started:.2f} s, "
        f"mapped: {index.memory_mapped}"
    )
    rng = np.random.default_rng([SEED, 2])
    names = term_names(SYNTHETIC_TERMS)
    warm, questions = (synthetic_questions(rng, names, dfs, count) for count in (WARM_UP, args.queries))
    for question in warm:  # untimed: the first queries pay for imports and the mapping's first pages
        index.search([question], 10)
        index.search([question], 10, exact=True)
    exact = time_queries(index, questions, exact=True)
    print(f"exact search (whole columns), {len(questions)} questions of 3-6 terms: {exact.summary()}")
    print_budgets(args.budgets, exact, lambda: time_queries(index, questions, exact=False))
    print(f"CPU flags: {cpu_flags()}; peak RSS {peak_rss_mb():,.0f} MB")


def print_budgets(budgets: list[int], exact, run) -> None:
    """For each postings budget, run the bounded search (`run()`, which reads bm25.POSTINGS_BUDGET
    at each query) and print its times and its agreement with `exact`'s top 10."""
    for budget in budgets:
        bm25.POSTINGS_BUDGET = budget
        bounded = run()
        same = sum(np.array_equal(b[1], e[1]) for b, e in zip(bounded.results, exact.results))
        print(
            f"bounded search, budget {budget:,} postings: {bounded.summary()}; top-10 agreement with the exact "
            f"search {agreement(bounded.results, exact.results):.4f} (the same top-10 list for "
            f"{same}/{len(exact.results)})"
        )


if __name__ == "__main__":
    main()
