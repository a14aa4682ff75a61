"""Corpus bundles end to end on a generated corpus in wiki_dpr's layout: built by the command line
from given vector files and from the corpus's own embeddings column (no passage encoded but the
sample that checks them), opened by an engine, searched as exact search over those vectors
would, and refused when they lie."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import REPOS

from lfqa_demo import __main__ as cli
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import CorpusError
from lfqa_demo.models.loading import load_retriever
from lfqa_demo.models.retrievers import DenseRetriever, RetrieverSpec
from lfqa_demo.retrieval.bm25 import BM25Index
from lfqa_demo.retrieval.corpus_bundles import MANIFEST, open_corpus_bundle
from lfqa_demo.retrieval.shards import shard_paths
from lfqa_demo.status import Phase
from tools.wiki_corpus import Layout, write_corpus

PASSAGES = 20_000  # the wiki_bundle fixture's (conftest.py)
QUESTIONS = ["who founded the city", "zoubai kelafi", "the river and the old bridge"]


@pytest.fixture
def encoded(monkeypatch) -> list[int]:
    """How many passages each encode_passages call of the test embedded."""
    calls: list[int] = []
    original = DenseRetriever.encode_passages

    def counting(self, passages, *args, **kwargs):
        calls.append(len(passages))
        return original(self, passages, *args, **kwargs)

    monkeypatch.setattr(DenseRetriever, "encode_passages", counting)
    return calls


@pytest.fixture
def built(wiki_bundle) -> dict:
    return wiki_bundle


def exact_top(vectors: np.ndarray, question: np.ndarray, k: int) -> np.ndarray:
    """The numpy oracle: the k passages of highest inner product, best first (ties by row)."""
    scores = vectors @ question
    return np.lexsort((np.arange(len(scores)), -scores))[:k]


def given_vectors(folder: Path) -> np.ndarray:
    return np.concatenate([np.load(p, allow_pickle=False) for p in shard_paths(folder, ".npy")])


def test_the_manifest_says_where_every_vector_came_from(built):
    manifest = json.loads((built["out"] / MANIFEST).read_text())
    assert manifest["corpus"]["passages"] == PASSAGES and manifest["bm25"] is True
    dpr = manifest["retrievers"]["dpr"]
    assert dpr["vectors"] == {"origin": str(built["given"]["dpr"]), "verified": "count and dimension"}
    assert dpr["dim"] == 32 and [c["source"] for c in dpr["checkpoints"]] == [REPOS["dpr_q"], REPOS["dpr_ctx"]]
    assert manifest["retrievers"]["realm"]["vectors"]["origin"] == str(built["given"]["realm"])
    for name in ("dpr", "retribert", "realm"):
        assert manifest["retrievers"][name]["index"]["kind"] == "exact"  # 20k x 32 floats: within the budget
        assert manifest["retrievers"][name]["index"]["recall_at_10"] == 1.0
    assert set(manifest["build_seconds"]) >= {"passages", "bm25", "dpr", "retribert", "realm"}
    assert manifest["files"]["passages.arrow"]["sha256"] is not None


@pytest.mark.parametrize("name", ["retribert", "dpr", "realm"])
def test_dense_top_10_equals_exact_search_over_the_given_vectors(built, name):
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(built["out"]))
    vectors = given_vectors(built["given"][name])
    questions = load_retriever(name, device="cpu").encode_questions(QUESTIONS)
    ranking = engine.searchers[name].search(QUESTIONS, 10, timeout=60)
    for row, question in enumerate(questions):
        assert list(ranking.ids[row]) == list(exact_top(vectors, question, 10))
        np.testing.assert_allclose(ranking.scores[row], np.sort(vectors @ question)[::-1][:10], rtol=1e-4)


def test_bm25_of_the_bundle_is_bm25_of_its_passages(built):
    bundle = open_corpus_bundle(built["out"])
    opened = bundle.bm25()
    assert opened.memory_mapped
    fresh = BM25Index(bundle.corpus)
    for question in QUESTIONS:
        assert list(opened.search([question], 10)[1][0]) == list(fresh.search([question], 10)[1][0])


def test_a_retriever_the_bundle_lacks_is_never_built(built):
    other = RetrieverSpec("dpr", REPOS["dpr_q"], REPOS["dpr_ctx"])
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(built["out"]), retrievers={"dpr": "dpr", "other": other})
    result = engine.compare("who founded the city", ["dpr", "other"], 5, timeout=30)
    assert len(result.results["dpr"].hits) == 5
    assert "has no other index (it has: retribert, dpr, realm)" in result.results["other"].error
    assert engine.index_states()["other"].phase == Phase.FAILED  # and nothing is being built


def copy_bundle(built, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(built["out"], out)
    return out


def rewrite_manifest(out: Path, change) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    change(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest))


def test_a_bundle_that_lies_is_refused_with_the_reason(built, tmp_path):
    out = copy_bundle(built, tmp_path)
    rewrite_manifest(out, lambda m: m["corpus"].update(passages=PASSAGES + 1))
    with pytest.raises(CorpusError, match="does not hold the 20,001 passages the manifest says"):
        open_corpus_bundle(out)

    out = copy_bundle(built, tmp_path / "2")
    with open(out / "bm25" / sorted(p.name for p in (out / "bm25").iterdir() if p.suffix == ".npy")[0], "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x01\x02\x03\x04")  # same size, other bytes
    with pytest.raises(CorpusError, match="does not have the checksum"):
        open_corpus_bundle(out)

    out = copy_bundle(built, tmp_path / "3")
    with open(out / "passages.arrow", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(CorpusError, match="passages.arrow has 1,000 bytes"):
        open_corpus_bundle(out)

    out = copy_bundle(built, tmp_path / "4")
    rewrite_manifest(out, lambda m: m["retrievers"]["realm"].update(dim=64))
    bundle = open_corpus_bundle(out)
    with pytest.raises(CorpusError, match="dim 64, not 16"):
        bundle.dense_index("realm", load_retriever("realm", device="cpu"))

    out = copy_bundle(built, tmp_path / "5")
    rewrite_manifest(out, lambda m: m["files"].update({"../../etc/passwd": {"bytes": 1, "sha256": None}}))
    with pytest.raises(CorpusError, match="outside the bundle|should match pattern"):
        open_corpus_bundle(out)


def test_vectors_that_do_not_fit_stop_the_build(built, tmp_path, capsys):
    short = tmp_path / "short"
    short.mkdir()
    np.save(short / "v.npy", given_vectors(built["given"]["realm"])[:-1], allow_pickle=False)
    status = cli.main(
        ["index", "--corpus", str(built["root"] / "wiki"), "--retrievers", "realm", "--out", str(tmp_path / "o")]
        + [f"--vectors=realm={short}"]
    )
    assert status == 2
    assert "19,999 rows; the corpus has 20,000 passages" in capsys.readouterr().err
    assert not (tmp_path / "o" / MANIFEST).exists()  # nothing half-built is ever opened


def test_the_embeddings_column_is_used_as_it_is_and_checked(tmp_path, capsys, encoded):
    """wiki_dpr's case: the corpus carries DPR's vectors. The bundle is built from that column, no
    passage encoded but a sample of 16 that checks it; vectors another model made are refused."""
    layout = Layout(300, shard_rows=300, dim=0)
    write_corpus(tmp_path / "plain", layout)
    table = pq.read_table(tmp_path / "plain" / "train-00000-of-00001.parquet")
    titles, texts = table.column("title").to_pylist(), table.column("text").to_pylist()
    made = load_retriever("dpr", device="cpu").encode_passages([{"title": t, "text": x} for t, x in zip(titles, texts)])
    encoded.clear()
    for name, vectors in (("right", made), ("wrong", np.random.default_rng(0).standard_normal(made.shape))):
        flat = pa.array(vectors.astype(np.float32).reshape(-1))
        column = pa.FixedSizeListArray.from_arrays(flat, 32).cast(pa.list_(pa.float32()))
        (tmp_path / name).mkdir()
        pq.write_table(table.append_column("embeddings", column), tmp_path / name / "train-00000-of-00001.parquet")
    out = tmp_path / "a"
    assert cli.main(["index", "--corpus", str(tmp_path / "right"), "--retrievers", "dpr,bm25", "--out", str(out)]) == 0
    assert encoded == [16]  # the check's sample, nothing else
    entry = json.loads((out / MANIFEST).read_text())["retrievers"]["dpr"]
    assert entry["vectors"]["origin"] == "the corpus's embeddings column"
    verified = entry["vectors"]["verified"]
    assert verified.startswith("16 passages encoded again: cosine ") and float(verified.split()[5]) >= 0.99
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(out))
    question = load_retriever("dpr", device="cpu").encode_questions(["who founded the city"])[0]
    hits = engine.searchers["dpr"].search(["who founded the city"], 10, timeout=60).ids[0]
    assert list(hits) == list(exact_top(made, question, 10))
    status = cli.main(
        ["index", "--corpus", str(tmp_path / "wrong"), "--retrievers", "dpr", "--out", str(tmp_path / "b")]
    )
    assert status == 2
    assert "were not made by this server's dpr passage encoder" in capsys.readouterr().err
