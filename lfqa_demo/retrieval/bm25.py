"""Okapi BM25 over a corpus's titles and texts: the classic sparse baseline.

Robertson and Zaragoza (2009), "The Probabilistic Relevance Framework: BM25 and Beyond";
idf as in Lucene, log(1 + (N - df + 0.5) / (df + 0.5)), k1 = 1.5, b = 0.75, English
stopwords removed, no stemming (the settings behind the squad2-dev-5 reference figures).
Each term's postings hold precomputed weights, so a query is a few numpy additions.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

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


def bm25_terms(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25Index:
    """BM25 scores for a corpus; `search` returns the top k (scores, indices) per question."""

    name = "bm25"

    def __init__(self, corpus: Corpus, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
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
        """BM25 score of every passage for `question`, float32 [size]."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in bm25_terms(question):  # a repeated query term counts again, as in Lucene
            if term in self._postings:
                idx, weights = self._postings[term]
                out[idx] += weights
        return out

    def search(self, questions: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [n, k'], indices [n, k']) with k' = min(k, size), best first."""
        k = max(0, min(k, self.size))
        all_scores = np.empty((len(questions), k), dtype=np.float32)
        all_ids = np.empty((len(questions), k), dtype=np.int64)
        for row, question in enumerate(questions if k else []):
            s = self.scores(question)
            top = np.argpartition(-s, k - 1)[:k] if k < self.size else np.arange(self.size)
            top = top[np.lexsort((top, -s[top]))]  # best first; ties by passage order
            all_scores[row], all_ids[row] = s[top], top
        return all_scores, all_ids
