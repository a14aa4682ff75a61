"""BM25 against the formula computed by hand, and on real data."""

from __future__ import annotations

import math

import numpy as np

from lfqa_demo.retrieval.bm25 import BM25Index, bm25_terms
from lfqa_demo.retrieval.corpus import build_corpus


def test_scores_follow_the_formula():
    texts = ["the cat sat on the mat", "a dog and a cat", "dogs chase cats", "nothing relevant here at all"]
    corpus = build_corpus("t", [{"title": "", "text": t} for t in texts])
    index = BM25Index(corpus, k1=1.5, b=0.75)
    docs = [bm25_terms(t) for t in texts]
    avg = sum(map(len, docs)) / len(docs)
    expected = []
    for doc in docs:
        s = 0.0
        for term in bm25_terms("cat mat"):
            df = sum(term in d for d in docs)
            tf = doc.count(term)
            if tf:
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                s += idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * len(doc) / avg))
        expected.append(s)
    np.testing.assert_allclose(index.scores("cat mat"), expected, rtol=1e-5)
    scores, ids = index.search(["cat mat", "unknownword"], 10)
    assert ids.shape == (2, 4) and ids[0, 0] == 0  # k past the corpus: all, best first
    assert list(scores[0]) == sorted(scores[0], reverse=True)
    assert index.search(["cat"], 0)[1].shape == (1, 0)


def test_stopwords_and_unicode():
    assert bm25_terms("The Ångström of the Nile, in 2024!") == ["ångström", "nile", "2024"]
