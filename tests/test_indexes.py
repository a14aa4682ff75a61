"""faiss indexes against a numpy brute-force oracle, and the on-disk cache's guarantees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lfqa_demo import RetrieverSpec, load_retriever
from lfqa_demo.retrieval.corpus import build_corpus
from lfqa_demo.retrieval.indexes import build_index, choose_kind, make_faiss_index


def brute_force(queries, vectors, k):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize("dim", [16, 128])
def test_flat_index_equals_brute_force(dim):
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((2000, dim)).astype(np.float32)
    queries = rng.standard_normal((20, dim)).astype(np.float32)
    scores, ids = make_faiss_index(vectors, "flat").search(queries, 10)
    ref_scores, ref_ids = brute_force(queries, vectors, 10)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)
    assert (ids == ref_ids).mean() > 0.99  # ties aside, the same passages


# IVF-PQ at 32-d keeps 8 bytes a vector: lossy, yet far above chance (10 in 5,000 = 0.002).
@pytest.mark.parametrize("kind,least", [("hnsw", 0.9), ("ivf", 0.9), ("ivfpq", 0.25)])
def test_approximate_indexes_keep_recall(kind, least):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, 32)).astype(np.float32)
    vectors = (centers[rng.integers(0, 50, 5000)] + 0.3 * rng.standard_normal((5000, 32))).astype(np.float32)
    queries = vectors[rng.integers(0, 5000, 50)] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
    _, ids = make_faiss_index(vectors, kind).search(queries, 10)
    _, ref = brute_force(queries, vectors, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, ref)])
    assert recall >= least, recall


def test_choose_kind():
    assert choose_kind("auto", 1000) == "flat"
    assert choose_kind("auto", 300_000) == "ivf"
    assert choose_kind("auto", 50, approximate_above=10) == "ivf"
    assert choose_kind("ivf", 10) == "ivf"
    with pytest.raises(ValueError, match="index kind"):
        choose_kind("lsh", 10)


@pytest.fixture
def small_corpus():
    return build_corpus(
        "small",
        [{"title": f"T{i}", "text": f"passage {i} about the normans and england " * (1 + i % 3)} for i in range(40)],
    )


def test_dense_index_matches_brute_force_on_real_embeddings(small_corpus, tmp_path, reference_inputs):
    retriever = load_retriever("realm", device="cpu")
    index = build_index(retriever, small_corpus, cache_dir=tmp_path)
    vectors = retriever.encode_passages(small_corpus.as_dicts())
    queries = retriever.encode_questions(reference_inputs["questions"][:5])
    scores, ids = index.search(queries, 7)
    ref_scores, ref_ids = brute_force(queries, vectors, 7)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)
    np.testing.assert_allclose(index.vectors(), vectors, atol=1e-5)
    assert index.search(queries, 1000)[1].shape == (5, 40)  # k past the corpus: what exists


def test_cache_is_reused_and_keyed(small_corpus, tmp_path, monkeypatch):
    retriever = load_retriever("dpr", device="cpu")
    seen = []
    first = build_index(retriever, small_corpus, cache_dir=tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert not first.from_cache and seen[-1] == (40, 40)
    original = type(retriever).encode_passages

    def sample_only(self, passages, **kwargs):  # a cached index is checked on a sample of 8 passages
        if len(passages) > 8:
            pytest.fail("re-embedded a cached corpus")
        return original(self, passages, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(type(retriever), "encode_passages", sample_only)
        second = build_index(retriever, small_corpus, cache_dir=tmp_path)
    assert second.from_cache and second.path == first.path and len(second) == 40
    other = build_corpus("other", [{"title": "x", "text": "another corpus"}])
    assert build_index(retriever, other, cache_dir=tmp_path).path != first.path
    short = load_retriever(
        RetrieverSpec("dpr", retriever.spec.question, retriever.spec.passage, max_passage_length=16), device="cpu"
    )
    assert build_index(short, small_corpus, cache_dir=tmp_path).path != first.path
    bf16 = load_retriever("dpr", device="cpu", dtype="bf16")
    assert build_index(bf16, small_corpus, cache_dir=tmp_path).path != first.path
    meta = json.loads((first.path / "meta.json").read_text())
    assert meta["checkpoints"][0] == {
        "source": "facebook/dpr-question_encoder-single-nq-base",
        "revision": "0123456789abcdef0123456789abcdef01234567",
    }
    assert meta["retriever"] == "dpr" and meta["dim"] == retriever.dim and meta["size"] == 40


def test_corrupt_or_partial_cache_is_rebuilt(small_corpus, tmp_path):
    retriever = load_retriever("retribert", device="cpu")
    good = build_index(retriever, small_corpus, cache_dir=tmp_path)
    expected = good.vectors()
    index_file = good.path / "index.faiss"
    index_file.write_bytes(index_file.read_bytes()[:100])  # truncated
    rebuilt = build_index(retriever, small_corpus, cache_dir=tmp_path)
    assert not rebuilt.from_cache
    np.testing.assert_allclose(rebuilt.vectors(), expected, atol=1e-6)
    (rebuilt.path / "meta.json").write_text("{ broken")
    assert not build_index(retriever, small_corpus, cache_dir=tmp_path).from_cache
    (rebuilt.path / "meta.json").unlink()
    assert not build_index(retriever, small_corpus, cache_dir=tmp_path).from_cache
    assert build_index(retriever, small_corpus, cache_dir=tmp_path).from_cache


def test_a_crash_mid_build_leaves_the_complete_index_intact(small_corpus, tmp_path):
    retriever = load_retriever("retribert", device="cpu")
    complete = build_index(retriever, small_corpus, cache_dir=tmp_path)
    before = (complete.path / "index.faiss").read_bytes()
    stale = json.loads((complete.path / "meta.json").read_text()) | {"format": 0}  # an older format: rebuilt
    (complete.path / "meta.json").write_text(json.dumps(stale))

    def crash(done, total):
        if done >= 32:
            raise KeyboardInterrupt  # the process dies mid-build

    with pytest.raises(KeyboardInterrupt):
        build_index(retriever, small_corpus, cache_dir=tmp_path, batch_size=8, progress=crash)
    assert (complete.path / "index.faiss").read_bytes() == before  # untouched
    assert not [p for p in complete.path.parent.iterdir() if p.name.startswith(".tmp")]  # no debris
