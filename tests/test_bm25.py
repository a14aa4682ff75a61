"""BM25 against the formula computed by hand, bm25s's own index and a brute-force ranking; the
streamed build, the saved index opened memory-mapped and refused when tampered with; recall on
real data."""

from __future__ import annotations

import json
import math
import re

import bm25s
import numpy as np
import pytest
from helpers import SHARED

from lfqa_demo.errors import CorpusError, InvalidInputError
from lfqa_demo.retrieval import bm25
from lfqa_demo.retrieval.bm25 import (
    DATA_FILE,
    INDICES_FILE,
    INDPTR_FILE,
    PARAMS_FILE,
    SETTINGS_FILE,
    TOKENIZER,
    VOCAB_FILE,
    BM25Index,
    bm25_terms,
)
from lfqa_demo.retrieval.corpus import Passage, build_corpus, load_corpus_dir, load_qa_set


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


# -- the bm25s index: streamed build, save, memory-mapped open, refusals ------------------------------
SQUAD = SHARED / "data" / "squad2-dev-5"
QUESTIONS = ["w1 w2", "w3 w3 w17", "w150 title7", "w0", "w199 w42 w5 w77 w8"]


def _rows(n: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """(title, text) pairs of Zipf-distributed words with stopwords among them, plus a passage of
    stopwords only and an empty one."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(200)] + ["the", "of", "and"])
    weights = 1.0 / np.arange(1, len(words) + 1)
    rows = [
        (f"Title{i % 9}", " ".join(rng.choice(words, size=int(rng.integers(5, 60)), p=weights / weights.sum())))
        for i in range(n)
    ]
    return rows + [("The", "of the and"), ("", "")]


def _passages(rows: list[tuple[str, str]]) -> list[Passage]:
    return [Passage(str(i), title, text) for i, (title, text) in enumerate(rows)]


def test_streamed_build_equals_the_in_memory_one_and_a_brute_force_ranking():
    rows = _rows()
    whole = BM25Index(_passages(rows))
    seen = []
    streamed = BM25Index.build(iter(rows), batch_size=7, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (7, None) and seen[-1] == (len(rows), None) and len(seen) == -(-len(rows) // 7)
    assert streamed.size == whole.size == len(rows)
    for question in QUESTIONS:
        scores = streamed.scores(question)
        np.testing.assert_array_equal(scores, whole.scores(question))
        assert scores.dtype == np.float32 and scores.shape == (len(rows),)
        top_scores, top_ids = streamed.search([question], 25)
        expected = np.lexsort((np.arange(len(rows)), -scores))[:25]  # best first, ties in passage order
        np.testing.assert_array_equal(top_ids[0], expected)
        np.testing.assert_array_equal(top_scores[0], scores[expected])
    sized = []
    BM25Index.build(rows, batch_size=100, progress=lambda done, total: sized.append((done, total)))
    assert sized == [(100, 302), (200, 302), (300, 302), (302, 302)]


@pytest.mark.parametrize("sample", [4, 16, 1 << 16])
def test_top_k_from_a_sample_of_scores_is_exact(monkeypatch, sample):
    """Candidates come from a strided sample of the scores when there are more than TOP_K_SAMPLE:
    the ranking stays the brute-force one, ties (many, with equal passages) in passage order."""
    monkeypatch.setattr(bm25, "TOP_K_SAMPLE", sample)
    rows = _rows() + [("", "w1 w2 w3")] * 40 + [("", "w1")] * 40
    index = BM25Index.build(rows)
    for question in [*QUESTIONS, "w1 w2 w3"]:
        scores = index.scores(question)
        for k in (1, 3, 10, 60, len(rows)):
            expected = np.lexsort((np.arange(len(rows)), -scores))[:k]
            np.testing.assert_array_equal(index.search([question], k)[1][0], expected)


def test_weights_are_bm25s_own():
    """The same scores as bm25s indexing the same tokens itself (times k1 + 1, which bm25s drops)."""
    rows = _rows()
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index([bm25_terms(f"{title} {text}") for title, text in rows], show_progress=False)
    index = BM25Index.build(rows)
    for question in QUESTIONS:
        expected = 2.5 * reference.get_scores(bm25_terms(question))
        np.testing.assert_allclose(index.scores(question), expected, rtol=1e-6)


def test_ties_are_broken_by_passage_order():
    rows = [("", "cat" if i in (2, 4, 5, 7, 9) else "dog") for i in range(10)]
    index = BM25Index.build(rows)
    assert index.search(["cat"], 3)[1].tolist() == [[2, 4, 5]]
    scores, ids = index.search(["cat"], 7)
    assert ids.tolist() == [[2, 4, 5, 7, 9, 0, 1]]  # then passages scoring 0, in order
    assert (scores[0, :5] > 0).all() and not scores[0, 5:].any()


def test_questions_without_indexed_terms_find_nothing():
    index = BM25Index.build(_rows())
    for question in ["the of and", "unknownword", ""]:
        assert not index.scores(question).any()
        scores, ids = index.search([question], 4)
        assert not scores.any() and ids.tolist() == [[0, 1, 2, 3]]
    empty = BM25Index.build([])
    assert empty.size == 0 and empty.search(["w1"], 5)[1].shape == (1, 0)


def test_save_and_open_round_trip(tmp_path):
    built = BM25Index.build(_rows())
    directory = built.save(tmp_path / "bm25")
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [DATA_FILE, INDICES_FILE, INDPTR_FILE, VOCAB_FILE, PARAMS_FILE, SETTINGS_FILE]
    )
    settings = json.loads((directory / SETTINGS_FILE).read_text())
    assert settings == {"tokenizer": TOKENIZER, "k1": 1.5, "b": 0.75, "method": "lucene", "documents": built.size}
    opened = BM25Index.open(directory)
    in_memory = BM25Index.open(directory, mmap=False)
    assert opened.memory_mapped and not in_memory.memory_mapped and not built.memory_mapped
    assert opened.size == in_memory.size == built.size
    reference = bm25s.BM25.load(directory, mmap=True)  # bm25s reads the same files
    for question in QUESTIONS:
        np.testing.assert_array_equal(opened.scores(question), built.scores(question))
        np.testing.assert_array_equal(in_memory.scores(question), built.scores(question))
        for got, want in zip(opened.search([question], 10), built.search([question], 10)):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(2.5 * reference.get_scores(bm25_terms(question)), opened.scores(question))
    with pytest.raises(InvalidInputError, match="opened from"):
        opened.save(directory)  # would rewrite the files it maps
    BM25Index.build(_rows(), k1=1.2).save(tmp_path / "other")
    assert BM25Index.open(tmp_path / "other", k1=1.2).size == built.size
    with pytest.raises(CorpusError, match="k1 is 1.2, not 1.5"):
        BM25Index.open(tmp_path / "other")


def _edit_json(name: str, **changes):
    def edit(directory):
        path = directory / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return edit


def _edit_array(name: str, change):
    def edit(directory):
        path = directory / name
        np.save(path, change(np.load(path).copy()), allow_pickle=True)

    return edit


def _truncate(name: str, keep: int):
    def edit(directory):
        path = directory / name
        path.write_bytes(path.read_bytes()[:keep])

    return edit


def _set(array, position, value):
    array[position] = value
    return array


TAMPERINGS = {
    "settings missing": (lambda d: (d / SETTINGS_FILE).unlink(), "lfqa_demo_bm25.json is missing"),
    "another tokenizer": (_edit_json(SETTINGS_FILE, tokenizer="bert v2"), "tokenizer is 'bert v2', not 'lfqa-demo"),
    "another k1": (_edit_json(SETTINGS_FILE, k1=1.2), "k1 is 1.2, not 1.5"),
    "an unknown setting": (_edit_json(SETTINGS_FILE, stemmer="porter"), "'stemmer' is unexpected"),
    "settings not JSON": (lambda d: (d / SETTINGS_FILE).write_text("{"), "lfqa_demo_bm25.json is not valid JSON"),
    "settings too big": (lambda d: (d / SETTINGS_FILE).write_text(" " * 70_000), "is over 65,536 bytes"),
    "bm25s method": (_edit_json(PARAMS_FILE, method="robertson"), "method is 'robertson', not 'lucene'"),
    "documents lie": (_edit_json(SETTINGS_FILE, documents=10**6), "num_docs is 302, not 1000000"),
    "truncated weights": (_truncate(DATA_FILE, 500), "data.csc.index.npy is not a readable .npy array"),
    "pickled weights": (_edit_array(DATA_FILE, lambda a: a.astype(object)), "data.csc.index.npy is not a readable"),
    "float64 weights": (_edit_array(DATA_FILE, lambda a: a.astype(np.float64)), "data.csc.index.npy is float64 ["),
    "NaN weight": (_edit_array(DATA_FILE, lambda a: _set(a, 3, np.nan)), "negative or not finite"),
    "fewer passage ids": (_edit_array(INDICES_FILE, lambda a: a[:-1]), "but indices.csc.index.npy"),
    "passage id out of range": (_edit_array(INDICES_FILE, lambda a: _set(a, 0, 302)), "passage ids outside 0..301"),
    "negative passage id": (_edit_array(INDICES_FILE, lambda a: _set(a, -1, -5)), "passage ids outside"),
    "indptr short of the postings": (_edit_array(INDPTR_FILE, lambda a: _set(a, -1, a[-1] - 1)), "does not run"),
    "indptr going back": (_edit_array(INDPTR_FILE, lambda a: _set(a, 1, a[2] + 1)), "without going back"),
    "indptr longer than the vocabulary": (
        _edit_array(INDPTR_FILE, lambda a: np.append(a, a[-1])),
        "vocab.index.json has 209 terms but indptr.csc.index.npy has 210 columns",
    ),
    "a column twice": (_edit_json(VOCAB_FILE, w1=0), "does not give each of the 209 columns one term"),
    "a column that is text": (_edit_json(VOCAB_FILE, w1="0"), "something other than a column number"),
}


@pytest.mark.parametrize("tampering", TAMPERINGS, ids=list(TAMPERINGS))
def test_open_refuses_a_tampered_directory(tmp_path, tampering):
    directory = BM25Index.build(_rows()).save(tmp_path / "bm25")
    BM25Index.open(directory)  # as saved, it opens
    edit, reason = TAMPERINGS[tampering]
    edit(directory)
    with pytest.raises(CorpusError, match=re.escape(reason)) as refused:
        BM25Index.open(directory)
    assert str(refused.value).startswith(f"BM25 index {directory} cannot be used: ")


def test_recall_on_squad2_dev_5():
    """By gold passage, as the evaluation counts it (a passage scoring 0 is no hit). The old pure
    numpy BM25 found 581, 678 and 697 of the 705 gold passages here: R@1/5/20 0.824/0.962/0.989."""
    if not SQUAD.is_dir():
        pytest.fail(f"{SQUAD} is missing: the shared data must sit beside the project")
    corpus, qa = load_corpus_dir(SQUAD), load_qa_set(SQUAD)
    scores, ids = BM25Index(corpus).search([item.question for item in qa], 20)
    hits = np.array(
        [
            [score > 0 and corpus[int(i)].id == item.passage_id for score, i in zip(row_scores, row_ids)]
            for row_scores, row_ids, item in zip(scores, ids, qa)
        ]
    )  # [questions, 20]: the gold passage at that rank
    found = {k: int(hits[:, :k].any(axis=1).sum()) for k in (1, 5, 20)}
    assert len(qa) == 705 and found[1] >= 581 and found[5] >= 678 and found[20] >= 697, found
