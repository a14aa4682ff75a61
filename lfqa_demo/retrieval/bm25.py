"""Okapi BM25 over a corpus's titles and texts: the classic sparse baseline, on bm25s's arrays.

Robertson and Zaragoza (2009), "The Probabilistic Relevance Framework: BM25 and Beyond";
idf as in Lucene, log(1 + (N - df + 0.5) / (df + 0.5)), k1 = 1.5, b = 0.75, English
stopwords removed, no stemming (the settings behind the squad2-dev-5 reference figures).

The index is bm25s's (xhluca/bm25s, method "lucene"): a sparse matrix [passages, terms] in CSC
form, each term's column holding the passages that contain it and their weights
idf * tf / (tf + k1 * (1 - b + b * length / average length)), so a query adds a few columns.
bm25s leaves out the constant factor (k1 + 1) of the formula above, which changes no ranking;
`scores` puts it back, so scores are the formula's.

Postings are impact-ordered: within a column, weight descending, ties by passage ascending, so
a column's first postings are its best. bm25s's numpy scoring (np.add.at per column) does not
depend on the order within a column, so bm25s reads these files and scores as before. `search`
reads, per query, at most POSTINGS_BUDGET postings: rarest terms first (short columns, high
weights), each term its column's first postings; it is exact whenever every query term's column
fits in the budget, and otherwise leaves out the lowest weights of the commonest terms. What it
reads is summed as bm25s sums (float32, in query order, the same bits), into an array over all
passages or, when it read few postings for the corpus, passage by passage. An index
saved before impact order (ascending passages in a column) still opens and is searched exactly,
over whole columns (`search(..., exact=True)` does that for any index).

`BM25Index.build` indexes millions of passages in bounded memory: passages are tokenised a batch
at a time into numpy arrays (term ids from a growing vocabulary, term counts), and only then
weighted and placed into the matrix; no Python object per token outlives its batch.
`save` writes bm25s's own files, which `bm25s.BM25.load(directory, mmap=True)` reads too:

    data.csc.index.npy     float32 [postings]  weights, column after column
    indices.csc.index.npy  int32 [postings]    the passage of each weight
    indptr.csc.index.npy   int64 [terms + 1]   column t is postings indptr[t]:indptr[t + 1]
    vocab.index.json       {term: column}
    params.index.json      bm25s's settings (k1, b, method, num_docs, ...)
    lfqa_demo_bm25.json    ours: {"tokenizer", "k1", "b", "method", "documents", "postings"}, written last;
                           "postings": "impact" declares the order above; without it (saved before),
                           passages ascend within a column

`BM25Index.open` maps the arrays back read-only (no pickle) after checking every file against
the others, each column's order included: a saved index may come from a hub repository, so no
count in it is trusted. The check reads the files, not the mapping, so that a query's pages are
the only ones the mapping holds (the process's RSS counts them).
"""

from __future__ import annotations

import itertools
import json
import re
import reprlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sized

import numpy as np

from ..errors import CorpusError, InvalidInputError
from .corpus import Corpus

# The usual English stopword list (as in NLTK / scikit-learn, trimmed to function words).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself yourselves s t d ll m o re ve y""".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)

TOKENIZER = "lfqa-demo bm25_terms v1"  # names bm25_terms in a saved index: a new tokenizer needs a new name
METHOD = "lucene"  # bm25s's name for the idf and term weights above
SETTINGS_FILE = "lfqa_demo_bm25.json"
# bm25s's own file names (the defaults of bm25s.BM25.save and bm25s.BM25.load).
DATA_FILE, INDICES_FILE, INDPTR_FILE = "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"
VOCAB_FILE, PARAMS_FILE = "vocab.index.json", "params.index.json"

BATCH_PASSAGES = 10_000  # passages tokenised at a time: their Python lists are all that holds words
MAX_SETTINGS_BYTES = 64 * 1024  # lfqa_demo_bm25.json and params.index.json hold a few hundred bytes
MAX_VOCAB_BYTES = 1 << 30  # ~50M terms; a dict of more would not fit in memory anyway
MAX_DOCUMENTS = np.iinfo(np.int32).max  # passage ids are int32 in bm25s's matrix
TOP_K_SAMPLE = 1 << 16  # scores sampled to find a query's candidates quickly (see _candidates)
CHECK_POSTINGS = 1 << 22  # postings checked (and ordered, when built) at a time: 16 MiB of each array
# Postings a query reads at most, over all its terms: its time is then bounded at any corpus size.
# `benchmarks/bench_bm25.py --synthetic 21015300` (an impact-ordered index of 21M passages, dfs of a
# Zipf-like head of 4,096 terms from 95% down to 0.1% of passages, mapped, warm; 2 vCPUs, shared):
# p50/p95 38/43 ms reading at most 2M postings, 84/345 ms reading every posting (5M for the median
# question); it kept 0.82 of the exact top 10 there, 0.9995 over 2M passages. On generated wiki_dpr-
# like passages the share kept depends on budget / passages: 0.98-0.99 at 1, 0.94-0.95 at 1/2,
# 0.88-0.89 at 1/4, 0.80-0.82 at 1/8, 0.75 at 1/16 (bench_bm25.py --passages, 0.5M-2M). 2M is the
# largest power of two that keeps p95 under half the 100 ms target (1M: ~28 ms, 4M: ~69 ms p50).
POSTINGS_BUDGET = 1 << 21
# A bounded query's postings are summed into a float32 array over all passages, as bm25s does, while
# the corpus is at most this many times the postings read; beyond, passage by passage (_sum_by_passage).
# Measured (2 vCPUs, numpy 2.4; zeros, np.add.at and the top 10): the array costs ~0.7 ms a million
# passages plus 4-10 ms a million postings, the sort-based sum ~35-40 ms a million postings at any
# corpus size; they meet at 30-60 passages a posting (1M postings over 21M passages: 27 ms vs 40 ms;
# 65K postings over 21M: 16 ms vs 2.6 ms).
DENSE_PASSAGES_PER_POSTING = 32
POSTINGS_KEY, IMPACT, ASCENDING = "postings", "impact", "ascending"  # the order of postings in a column


def bm25_terms(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


@dataclass
class _Matrix:
    """bm25s's index: per term (column), the passages holding it and their weights."""

    vocab: dict[str, int]  # term -> column
    data: np.ndarray  # float32 [postings]
    indices: np.ndarray  # int32 [postings]: passage ids, in `order` within a column
    indptr: np.ndarray  # int32 or int64 [terms + 1]
    documents: int
    order: str  # IMPACT (weight descending, ties by passage ascending) or ASCENDING (by passage)


class BM25Index:
    """BM25 scores for a corpus; `search` returns the top k (scores, indices) per question."""

    name = "bm25"

    def __init__(self, corpus: Corpus, k1: float = 1.5, b: float = 0.75):
        """Index `corpus` (a sized iterable of passages with `.title` and `.text`) in memory."""
        self._attach(_build(((p.title, p.text) for p in corpus), k1, b, BATCH_PASSAGES, None, len(corpus)), k1, b)

    @classmethod
    def build(
        cls,
        passages: Iterable[tuple[str, str]],
        k1: float = 1.5,
        b: float = 0.75,
        *,
        progress: Callable[[int, int | None], None] | None = None,
        batch_size: int = BATCH_PASSAGES,
    ) -> BM25Index:
        """Index `passages`, an iterable of (title, text) read once, in order, `batch_size` at a
        time; `progress(passages done, total or None)` is called after each batch (the total is
        `len(passages)` where it has one)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, not {batch_size!r}")
        total = len(passages) if isinstance(passages, Sized) else None
        index = cls.__new__(cls)
        index._attach(_build(passages, k1, b, batch_size, progress, total), k1, b)
        return index

    @classmethod
    def open(cls, directory: str | Path, k1: float = 1.5, b: float = 0.75, *, mmap: bool = True) -> BM25Index:
        """An index saved by `save` into `directory`, memory-mapped read-only unless `mmap` is
        False. Raises CorpusError, saying what is wrong, for files that are missing, damaged,
        inconsistent with each other, or saved with another tokenizer, method, k1 or b."""
        index = cls.__new__(cls)
        index._attach(_load(Path(directory), k1, b, mmap), k1, b)
        index._source = Path(directory).resolve()
        return index

    def _attach(self, matrix: _Matrix, k1: float, b: float) -> None:
        import bm25s  # here, not at import time: it loads scipy (~0.3 s)

        self.k1, self.b, self.size = float(k1), float(b), matrix.documents  # floats: they are saved as JSON
        self._source: Path | None = None  # the directory an opened index maps
        self._vocab = matrix.vocab
        self.postings_order = matrix.order  # IMPACT: `search` is bounded; ASCENDING (saved before): exact
        self._bm25 = bm25s.BM25(k1=k1, b=b, method=METHOD, backend="numpy")
        self._bm25.vocab_dict = matrix.vocab
        self._bm25.scores = {
            "data": matrix.data,
            "indices": matrix.indices,
            "indptr": matrix.indptr,
            "num_docs": matrix.documents,
        }
        self._bm25.nonoccurrence_array = None  # only bm25s's BM25L and BM25+ have one

    @property
    def memory_mapped(self) -> bool:
        """Whether the weights and passage ids are read from disk as needed (`open` with mmap)."""
        return all(isinstance(self._bm25.scores[key], np.memmap) for key in ("data", "indices", "indptr"))

    def save(self, directory: str | Path) -> Path:
        """Write the index into `directory` (made if missing) in bm25s's format plus our
        settings file, written last so that an interrupted save is refused by `open`."""
        directory = Path(directory)
        if self._source is not None and directory.resolve() == self._source:
            # Rewriting the files this index maps would pull them from under it.
            raise InvalidInputError(f"{directory} is the directory this index was opened from: save it elsewhere")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SETTINGS_FILE).unlink(missing_ok=True)
        self._bm25.save(directory, show_progress=False)
        settings = {"tokenizer": TOKENIZER, "k1": self.k1, "b": self.b, "method": METHOD, "documents": self.size}
        if self.postings_order == IMPACT:  # an index opened from an older save keeps its order, undeclared
            settings[POSTINGS_KEY] = IMPACT
        (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        return directory

    def _columns(self, question: str) -> list[int]:
        """The columns of `question`'s indexed terms, in its order; a repeated term counts again, as in Lucene."""
        return [self._vocab[t] for t in bm25_terms(question) if t in self._vocab]

    def _raw_scores(self, question: str) -> np.ndarray | None:
        """bm25s's scores of every passage, float32 [size]; None if no term of `question` is indexed."""
        ids = self._columns(question)
        return self._bm25.get_scores_from_ids(ids) if ids else None

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for `question` (all postings), float32 [size]."""
        raw = self._raw_scores(question)
        return np.zeros(self.size, dtype=np.float32) if raw is None else raw * np.float32(self.k1 + 1)

    def search(self, questions: list[str], k: int, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [n, k'], indices [n, k']) with k' = min(k, size), best first, ties in
        passage order; passages sharing no term with a question fill its row with score 0.
        An impact-ordered index reads at most POSTINGS_BUDGET postings a question (the same
        result as `exact` whenever each term's column fits); `exact` reads whole columns."""
        k = max(0, min(k, self.size))
        all_scores = np.zeros((len(questions), k), dtype=np.float32)
        all_ids = np.empty((len(questions), k), dtype=np.int64)
        for row, question in enumerate(questions if k else []):
            passages, raw = self._matches(question, exact)
            best = _best(raw, k) if raw is not None else np.zeros(0, dtype=np.int64)  # positions in raw
            found = best if passages is None else passages[best].astype(np.int64)
            all_ids[row] = _fill(found, k)
            if len(best):
                all_scores[row, : len(best)] = raw[best] * np.float32(self.k1 + 1)
        return all_scores, all_ids

    def postings_read(self, question: str, *, exact: bool = False) -> int:
        """How many postings `search` reads for `question` (a repeated term's column counts once
        when bounded, as it is read once; again when exact, as bm25s adds it again)."""
        columns = self._columns(question)
        if exact or self.postings_order != IMPACT:
            return sum(self._column_length(c) for c in columns)
        return sum(self._plan(columns).values())

    def _matches(self, question: str, exact: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(passages int32 [m] ascending, or None for all of them in order; bm25s's scores float32
        [m]) of `question`; scores None if none of its terms is indexed."""
        if exact or self.postings_order != IMPACT:
            return None, self._raw_scores(question)
        columns = self._columns(question)
        if not columns:
            return None, None
        ids, weights = self._read(columns)
        if self.size <= DENSE_PASSAGES_PER_POSTING * len(ids):  # read at call time: tests change it
            return None, _sum_dense(ids, weights, self.size)
        return _sum_by_passage(ids, weights, self.size)

    def _column_length(self, column: int) -> int:
        """Postings of `column`: its term's df."""
        indptr = self._bm25.scores["indptr"]
        return int(indptr[column + 1] - indptr[column])

    def _plan(self, columns: list[int]) -> dict[int, int]:
        """Postings to read of each distinct column of `columns`: rarest term first (the shortest
        column, the highest idf), each up to what is left of POSTINGS_BUDGET."""
        distinct = list(dict.fromkeys(columns))
        lengths = [self._column_length(c) for c in distinct]
        left = POSTINGS_BUDGET  # read at call time: tests change it
        plan = {}
        for length, column in sorted(zip(lengths, distinct), key=lambda pair: pair[0]):  # stable: ties in query order
            plan[column] = min(length, max(left, 0))
            left -= plan[column]
        return plan

    def _read(self, columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The planned first postings of each of `columns`, in query order, a repeated column again:
        (passages int32 [p], weights float32 [p]). Only these pages of the mapped files are touched."""
        indptr, indices, data = (self._bm25.scores[key] for key in ("indptr", "indices", "data"))
        read = {}
        for column, count in self._plan(columns).items():
            start = int(indptr[column])
            read[column] = (indices[start : start + count], data[start : start + count])
        ids = np.concatenate([read[c][0] for c in columns]).astype(np.int32, copy=False)
        weights = np.concatenate([read[c][1] for c in columns]).astype(np.float32, copy=False)
        return ids, weights


def _sum_dense(ids: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Each passage's sum of `weights` (float32 [p]) by `ids` (int32 [p]): float32 [size], added
    in the order of `ids` from 0, as bm25s's np.add.at adds whole columns (the same bits)."""
    raw = np.zeros(size, dtype=np.float32)
    np.add.at(raw, ids, weights)
    return raw


def _sum_by_passage(ids: np.ndarray, weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each passage of `ids` (int32 [p], of passages 0..size-1) once, ascending, with its
    `weights` (float32 [p]) summed: (passages int32 [m], sums float32 [m]), without an array the
    size of the corpus (~40 bytes a posting instead).

    The sums are `_sum_dense`'s to the bit: float32, added from 0 in the order of `ids`. Grouping
    equal passages needs a sort: a radix one (~35-40 ms for 1M postings here); np.unique's
    comparison sort takes 70+ ms. One float32 [size] array reused across queries (np.add.at, then
    gather and reset the passages read) was slower than a fresh one past 2M passages (two more
    random passes over it; 44 ms at 1M postings over 21M passages) and would need a lock."""
    if not len(ids):
        return ids, weights
    order = _stable_order(ids, size)
    ascending = ids[order]
    first = np.empty(len(ids), dtype=bool)  # [p]: the first posting of each passage
    first[0] = True
    np.not_equal(ascending[1:], ascending[:-1], out=first[1:])
    group = np.cumsum(first) - 1  # int64 [p]: each posting's passage, numbered 0..m-1
    sums = np.zeros(int(group[-1]) + 1, dtype=np.float32)
    np.add.at(sums, group, weights[order])  # in order: a stable sort kept each passage's query order
    return ascending[first], sums


def _stable_order(ids: np.ndarray, size: int) -> np.ndarray:
    """A stable argsort of `ids` (int32 [p], all in 0..size-1): int64 [p].

    Least significant digit first, 16 bits a pass: numpy sorts 16-bit keys stably by radix, in
    linear time (~6 ms for 1M here), where a comparison sort of 1M int32 takes 30-90 ms."""
    order = np.argsort((ids & 0xFFFF).astype(np.uint16), kind="stable")
    for shift in range(16, max(1, (size - 1).bit_length()), 16):
        digits = ((ids[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digits, kind="stable")]
    return order


def _best(raw: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` (≥ 1) best scores of `raw` above 0 (fewer if fewer are), best first,
    ties in position order: int64 [≤ k]."""
    found = _candidates(raw, k)  # ascending
    if len(found) > k:
        values = raw[found]
        kth = np.sort(values)[-k]  # the k-th best score (np.partition is slow when one value dominates)
        keep = values > kth
        keep[np.flatnonzero(values == kth)[: k - int(keep.sum())]] = True  # the first of the ties
        found = found[keep]
    if len(found):
        found = found[np.argsort(-raw[found], kind="stable")]  # stable: ties stay in position order
    return found.astype(np.int64)


def _fill(found: np.ndarray, k: int) -> np.ndarray:
    """`found` (int64 [≤ k], the passages scoring above 0, best first), then passages scoring 0 in
    passage order, to `k`: int64 [k]."""
    if len(found) < k:  # all passages scoring 0 rank last; the first ones fill the row
        found = np.concatenate([found, np.setdiff1d(np.arange(k), found)[: k - len(found)]])
    return found.astype(np.int64)


def _candidates(raw: np.ndarray, k: int) -> np.ndarray:
    """Positions scoring above 0 that may be among the `k` best, ascending: int64 [≥ the k best]."""
    # The k-th best of a sample of the scores is at most the k-th best of all: taken from a strided
    # sample, it leaves a few hundred candidates of millions (more only where many scores are equal).
    sample = np.sort(raw[:: max(1, len(raw) // TOP_K_SAMPLE)])
    floor = sample[-k] if len(sample) >= k else 0
    return np.flatnonzero(raw >= floor) if floor > 0 else np.flatnonzero(raw)


# -- building --------------------------------------------------------------------------------------
def _build(
    passages: Iterable[tuple[str, str]],
    k1: float,
    b: float,
    batch_size: int,
    progress: Callable[[int, int | None], None] | None,
    total: int | None,
) -> _Matrix:
    """Tokenise `passages` batch by batch into arrays, then weight and place them (`_assemble`)."""
    vocab: dict[str, int] = {}
    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (term ids, tfs [postings], distinct terms [d])
    lengths: list[np.ndarray] = []  # int32 [d] per batch: each passage's number of terms
    done = 0
    passages = iter(passages)
    while chunk := list(itertools.islice(passages, batch_size)):
        terms: list[int] = []
        tfs: list[int] = []
        distinct: list[int] = []
        length: list[int] = []
        for title, text in chunk:
            counts = Counter(bm25_terms(f"{title} {text}"))
            terms.extend([vocab.setdefault(term, len(vocab)) for term in counts])  # new terms get the next id
            tfs.extend(counts.values())
            distinct.append(len(counts))
            length.append(counts.total())
        # tf in the smallest type that holds it (uint8 for passages of ~100 words): these arrays
        # are most of the build's memory until the matrix takes their place.
        tf_type = np.min_scalar_type(max(tfs, default=0))
        batches.append((np.array(terms, dtype=np.int32), np.array(tfs, dtype=tf_type), np.array(distinct, np.int32)))
        lengths.append(np.array(length, dtype=np.int32))
        done += len(chunk)
        if done > MAX_DOCUMENTS:
            raise InvalidInputError(f"BM25 indexes at most {MAX_DOCUMENTS:,} passages")
        if progress is not None:
            progress(done, total)
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int32)
    return _assemble(vocab, batches, all_lengths, k1, b)


def _assemble(
    vocab: dict[str, int],
    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    lengths: np.ndarray,
    k1: float,
    b: float,
) -> _Matrix:
    """The CSC matrix bm25s builds, from tokenised `batches` (emptied as they are placed)."""
    documents, terms = len(lengths), len(vocab)
    df = np.zeros(terms, dtype=np.int64)  # passages holding each term
    for batch_terms, _, _ in batches:
        np.add.at(df, batch_terms, 1)  # a term appears once per passage in a batch's postings
    average = float(lengths.mean()) if lengths.any() else 1.0
    idf = np.log(1 + (documents - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene's; float32 as in bm25s
    indptr = np.zeros(terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.empty(indptr[-1], dtype=np.float32)
    indices = np.empty(indptr[-1], dtype=np.int32)
    cursor = indptr[:-1].copy()  # the next free posting of each column
    first = 0  # the first passage of the batch
    while batches:
        batch_terms, tf, distinct = batches.pop(0)
        docs = np.repeat(np.arange(first, first + len(distinct), dtype=np.int32), distinct)  # [postings]
        first += len(distinct)
        if not len(batch_terms):
            continue
        tf = tf.astype(np.float64)
        # bm25s's lucene weight in its order of operations, in float64 then stored as float32.
        weights = idf[batch_terms] * (tf / (k1 * ((1 - b) + b * lengths[docs] / average) + tf))
        # Placed term by term; a stable sort keeps each column's passages ascending.
        order = np.argsort(batch_terms, kind="stable")
        sorted_terms = batch_terms[order]
        starts = np.flatnonzero(np.r_[True, sorted_terms[1:] != sorted_terms[:-1]])  # of each term's run
        runs = np.diff(np.r_[starts, len(order)])
        slots = cursor[sorted_terms] + (np.arange(len(order)) - np.repeat(starts, runs))
        data[slots] = weights[order]
        indices[slots] = docs[order]
        cursor[sorted_terms[starts]] += runs
    _order_by_impact(data, indices, indptr)
    return _Matrix(vocab, data, indices, indptr, documents, IMPACT)


def _order_by_impact(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> None:
    """Reorder each column's postings in place, now ascending by passage, to weight descending,
    ties by passage ascending; a few whole columns (CHECK_POSTINGS postings, or one longer
    column) at a time, so that the sort keys take little memory."""
    terms = len(indptr) - 1
    first = 0
    while first < terms:
        last = max(first + 1, int(np.searchsorted(indptr, indptr[first] + CHECK_POSTINGS, side="right")) - 1)
        start, stop = int(indptr[first]), int(indptr[last])
        column = np.repeat(np.arange(last - first, dtype=np.uint64), np.diff(indptr[first : last + 1]))
        # Weights ≥ 0 order as their float32 bits do, so the bits' complement sorts them descending;
        # a key of (column, complement) in uint64 [postings] orders them in one stable sort, which
        # keeps equal weights in passage order.
        weights = data[start:stop]
        key = (column << np.uint64(32)) | (np.uint32(0xFFFFFFFF) - weights.view(np.uint32)).astype(np.uint64)
        order = np.argsort(key, kind="stable")
        data[start:stop] = weights[order]
        indices[start:stop] = indices[start:stop][order]
        first = last


# -- opening a saved index -------------------------------------------------------------------------
def _load(directory: Path, k1: float, b: float, mmap: bool) -> _Matrix:
    """A saved index's files, each checked against the others (see `BM25Index.open`)."""
    if not directory.is_dir():
        raise CorpusError(f"BM25 index {directory} is not a directory")
    settings = _read_json(directory, SETTINGS_FILE, MAX_SETTINGS_BYTES)
    if not isinstance(settings, dict):
        raise _refusal(directory, f"{SETTINGS_FILE} is not a JSON object")
    documents = settings.get("documents")
    if type(documents) is not int or not 0 <= documents <= MAX_DOCUMENTS:
        raise _refusal(directory, f"{SETTINGS_FILE} gives no valid number of documents ({documents!r})")
    expected = {"tokenizer": TOKENIZER, "k1": k1, "b": b, "method": METHOD, "documents": documents}
    if POSTINGS_KEY in settings:  # saved since postings are impact-ordered; without it, ascending
        expected[POSTINGS_KEY] = IMPACT
    _check_settings(directory, SETTINGS_FILE, settings, expected, exact=True)
    order = IMPACT if POSTINGS_KEY in settings else ASCENDING
    params = _read_json(directory, PARAMS_FILE, MAX_SETTINGS_BYTES)
    bm25s_expected = {"k1": k1, "b": b, "method": METHOD, "idf_method": METHOD, "num_docs": documents}
    _check_settings(directory, PARAMS_FILE, params, {**bm25s_expected, "dtype": "float32", "int_dtype": "int32"})

    data = _load_array(directory, DATA_FILE, (np.float32,), mmap)
    indices = _load_array(directory, INDICES_FILE, (np.int32,), mmap)
    indptr = _load_array(directory, INDPTR_FILE, (np.int32, np.int64), mmap)
    if len(data) != len(indices):
        raise _refusal(directory, f"{DATA_FILE} has {len(data):,} postings but {INDICES_FILE} {len(indices):,}")
    if len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0):
        raise _refusal(
            directory, f"{INDPTR_FILE} does not run from 0 up to the {len(data):,} postings without going back"
        )
    vocab = _read_json(directory, VOCAB_FILE, MAX_VOCAB_BYTES)
    terms = len(indptr) - 1
    if not isinstance(vocab, dict) or len(vocab) != terms:
        found = f"{len(vocab):,} terms" if isinstance(vocab, dict) else "no {term: column} object"
        raise _refusal(directory, f"{VOCAB_FILE} has {found} but {INDPTR_FILE} has {terms:,} columns")
    if not all(type(column) is int and 0 <= column < terms for column in vocab.values()):
        raise _refusal(directory, f"{VOCAB_FILE} maps a term to something other than a column number")
    columns = np.fromiter(vocab.values(), dtype=np.int64, count=terms)
    if terms and (columns.min() < 0 or columns.max() >= terms or len(np.unique(columns)) != terms):
        raise _refusal(directory, f"{VOCAB_FILE} does not give each of the {terms:,} columns one term")
    for start in range(0, len(indices), CHECK_POSTINGS):  # in slices: the arrays may be far larger than memory
        stop = min(start + CHECK_POSTINGS + 1, len(indices))  # one more: the pair across slices is checked too
        ids, weights = _read_slice(indices, start, stop), _read_slice(data, start, stop)
        if ids.min() < 0 or ids.max() >= documents:
            raise _refusal(directory, f"{INDICES_FILE} holds passage ids outside 0..{documents - 1:,}")
        if not np.all(np.isfinite(weights)) or weights.min() < 0:
            raise _refusal(directory, f"{DATA_FILE} holds weights that are negative or not finite")
        column = _column_out_of_order(ids, weights, indptr, start, order)
        if column is not None:
            raise _refusal(
                directory, f"column {column:,} is not in {_ORDERS[order]}, the order {SETTINGS_FILE} declares"
            )
    return _Matrix(vocab, data, indices, indptr, documents, order)


_ORDERS = {
    IMPACT: "impact order (weights descending, ties by passage ascending)",
    ASCENDING: "ascending passage order (no postings order named: saved before impact order)",
}


def _column_out_of_order(
    ids: np.ndarray, weights: np.ndarray, indptr: np.ndarray, start: int, order: str
) -> int | None:
    """The first column with two neighbouring postings out of `order` among postings `start`...
    (passages int32 [s], weights float32 [s], checked finite), or None. Passages ascend strictly
    (among equal weights, in impact order), so a passage twice in a row is out of order too."""
    after_ids, after_weights = ids[1:], weights[1:]  # [s - 1]: posting j + 1 against posting j
    in_order = ids[:-1] < after_ids
    if order == IMPACT:
        in_order = (weights[:-1] > after_weights) | ((weights[:-1] == after_weights) & in_order)
    wrong = np.flatnonzero(~in_order) + start  # pairs (j, j + 1) out of order, of the whole array
    # A pair across two columns is no pair: there, j + 1 is in indptr (searchsorted finds the first
    # of equal entries, those of empty columns, in bounds as j + 1 < postings).
    wrong = wrong[indptr[np.searchsorted(indptr, wrong + 1)] != wrong + 1]
    return int(np.searchsorted(indptr, wrong[0], side="right")) - 1 if len(wrong) else None


def _refusal(directory: Path, reason: str) -> CorpusError:
    return CorpusError(f"BM25 index {directory} cannot be used: {reason}. Build and save it again.")


def _read_json(directory: Path, name: str, limit: int) -> object:
    """A JSON file of at most `limit` bytes, parsed."""
    try:
        with open(directory / name, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise _refusal(directory, f"{name} is missing (an unfinished save, or not one of our indexes)") from None
    except OSError as exc:
        raise _refusal(directory, f"{name} cannot be read ({exc.strerror or type(exc).__name__})") from exc
    if len(raw) > limit:
        raise _refusal(directory, f"{name} is over {limit:,} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _refusal(directory, f"{name} is not valid JSON ({type(exc).__name__})") from exc


def _check_settings(directory: Path, name: str, found: object, expected: dict, exact: bool = False) -> None:
    """`found` has each of `expected`'s values (and nothing else if `exact`); else a refusal naming them."""
    if not isinstance(found, dict):
        raise _refusal(directory, f"{name} is not a JSON object")
    wrong = [
        f"{key} is {reprlib.repr(found[key])}, not {value!r}" if key in found else f"{key} is missing"
        for key, value in expected.items()
        if key not in found or type(found[key]) is bool or found[key] != value
    ]
    if exact:
        wrong += [f"{reprlib.repr(key)} is unexpected" for key in found if key not in expected]
    if wrong:
        raise _refusal(directory, f"{name}: {'; '.join(wrong)}")


def _read_slice(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """array[start:stop], read from the file when `array` maps one: checking the whole index must not
    leave all its pages in the mapping, which the process's RSS counts until the OS takes them back."""
    if not isinstance(array, np.memmap) or array.filename is None:
        return array[start:stop]
    return np.fromfile(
        array.filename, dtype=array.dtype, count=stop - start, offset=array.offset + start * array.itemsize
    )


def _load_array(directory: Path, name: str, dtypes: tuple[type, ...], mmap: bool) -> np.ndarray:
    """A 1-D .npy array of one of `dtypes` (native byte order), memory-mapped if `mmap`; never unpickled."""
    try:
        # Mapped even when it is to be read into memory: a header claiming more than the file
        # holds fails here, instead of allocating what it claims.
        array = np.load(directory / name, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise _refusal(directory, f"{name} is missing") from None
    except (OSError, ValueError, EOFError) as exc:  # truncated, damaged, pickled or not .npy at all
        raise _refusal(directory, f"{name} is not a readable .npy array ({exc})") from exc
    allowed = [np.dtype(t) for t in dtypes]
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype not in allowed:
        shown = f"{array.dtype} {list(array.shape)}" if isinstance(array, np.ndarray) else type(array).__name__
        raise _refusal(directory, f"{name} is {shown}, not a 1-D array of {' or '.join(map(str, allowed))}")
    return array if mmap else np.array(array)
