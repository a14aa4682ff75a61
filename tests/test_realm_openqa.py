"""REALM's own open-QA index (lfqa_demo/retrieval/realm_openqa.py): a tiny
`google/realm-orqa-nq-openqa` in that repo's layout, written with transformers 4.40.2
(tools/make_realm_openqa_fixture.py), converted into a corpus and a vector file, built into a
bundle, and searched with the `realm-orqa` retriever: the blocks found are the blocks
transformers' RealmForOpenQA hands its retriever. The block records are never unpickled: a
crafted file holding anything but NumPy's array of byte strings is refused."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from lfqa_demo.__main__ import main
from lfqa_demo.errors import CheckpointError, CorpusError
from lfqa_demo.retrieval import realm_openqa
from lfqa_demo.retrieval.realm_openqa import read_block_records

FIXTURES = Path(__file__).parent / "fixtures"
REPO = FIXTURES / "hub" / "google--realm-orqa-nq-openqa"
REFERENCE = json.loads((FIXTURES / "reference" / "realm_openqa.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, hub_cache) -> Path:
    """The fixture converted, then built (exact index: 60 blocks) with realm-orqa and BM25."""
    work = tmp_path_factory.mktemp("realm-openqa")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        mp.setenv("LFQA_DTYPE", "float32")
        assert main(["convert-realm-openqa", "--out", str(work)]) == 0
        command = ["index", "--corpus", str(work / "corpus"), "--retrievers", "realm-orqa,bm25"]
        command += ["--vectors", f"realm-orqa={work / 'block_emb.npy'}", "--out", str(work / "bundle")]
        assert main(command) == 0
    return work


def test_the_converted_blocks_and_vectors_are_the_checkpoints(bundle):
    import pyarrow.parquet as pq
    import torch

    table = pq.read_table(bundle / "corpus")
    records = np.load(REPO / "block_records.npy", allow_pickle=True)  # the test's own oracle: a known file
    assert table.column("text").to_pylist() == [bytes(b).decode("utf-8") for b in records]
    assert table.column("id").to_pylist() == [str(i) for i in range(len(records))]
    emb = torch.load(REPO / "pytorch_model.bin", weights_only=True)["block_emb"].numpy()
    assert np.array_equal(np.load(bundle / "block_emb.npy"), emb)


def test_top_k_equals_realm_for_open_qa(bundle, offline_hub, monkeypatch):
    """Each question's top reader_beam_size blocks, and its top 10 by the reference's scores."""
    from lfqa_demo.engine import RetrievalEngine
    from lfqa_demo.retrieval.corpus_bundles import open_corpus_bundle

    monkeypatch.setenv("LFQA_DTYPE", "float32")
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(bundle / "bundle"))
    assert "realm-orqa" in engine.dense_names()
    for case in REFERENCE:
        found = engine.searchers["realm-orqa"].search([case["question"]], 10, timeout=60)
        ids = [int(engine.corpus[int(row)].id) for row in found.ids[0]]  # the block numbers
        assert ids[: len(case["top_block_ids"])] == case["top_block_ids"], case["question"]
        assert ids == list(np.argsort(-np.array(case["scores"]), kind="stable")[:10])
        assert np.allclose(found.scores[0], np.sort(case["scores"])[::-1][:10], atol=1e-4)


def test_its_passages_are_never_encoded_with_the_question_embedder(offline_hub, monkeypatch):
    from lfqa_demo.models.loading import load_retriever

    monkeypatch.setenv("LFQA_DTYPE", "float32")
    retriever = load_retriever("realm-orqa")
    question = REFERENCE[0]
    assert np.allclose(retriever.encode_questions([question["question"]])[0], question["projection"], atol=1e-5)
    with pytest.raises(CheckpointError, match="convert-realm-openqa"):
        retriever.encode_passages([{"title": "", "text": "a block"}])


# -- the block records: read as data, never unpickled ----------------------------------------------------
def npy_with_pickle(path: Path, payload: bytes, count: int = 2) -> Path:
    """A .npy whose header says object [count] and whose body is `payload` (a pickle)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": (count,)})
    path.write_bytes(out.getvalue() + payload)
    return path


class Boom:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-lfqa-test",))


@pytest.mark.parametrize(
    "payload,reason",
    [
        (pickle.dumps(np.array([b"a", Boom()], dtype=object), protocol=3), "it names 'shutil rmtree'"),
        (pickle.dumps(np.array([b"a", Boom()], dtype=object), protocol=4), "it names 'shutil rmtree'"),
        (pickle.dumps(np.array([b"a", "text"], dtype=object), protocol=3), "not a byte string"),
        (pickle.dumps(np.array([b"a", 7], dtype=object), protocol=3), "not a byte string"),
        (pickle.dumps(np.array([b"a", b"b", b"c"], dtype=object), protocol=3), "3 blocks where its header says 2"),
        (pickle.dumps(np.array([1.5, 2.5]), protocol=3), "a byte string outside its list|other arguments"),
        (pickle.dumps({"a": b"b"}, protocol=3), "opcode|without"),
        (pickle.dumps(np.array([b"a", b"b"], dtype=object), protocol=3)[:-10], "ends before its STOP|Error"),
        (pickle.dumps(np.array([b"a", b"b"], dtype=object), protocol=3) + b"x", "bytes after its pickle"),
    ],
    ids=["global-p3", "global-p4", "text", "int", "count", "floats", "dict", "truncated", "trailing"],
)
def test_a_crafted_block_records_file_is_refused(tmp_path, payload, reason):
    path = npy_with_pickle(tmp_path / "block_records.npy", payload)
    count, blocks = read_block_records(path)
    with pytest.raises(CorpusError, match=reason):
        list(blocks)
    assert Path("/nonexistent-lfqa-test").exists() is False


def test_a_block_longer_than_the_bound_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(realm_openqa, "MAX_BLOCK_BYTES", 100)
    path = tmp_path / "block_records.npy"
    np.save(path, np.array([b"a", b"x" * 101], dtype=object), allow_pickle=True)
    with pytest.raises(CorpusError, match="longer than 100 bytes"):
        list(read_block_records(path)[1])


def test_records_that_are_not_an_object_array_are_refused_at_the_header(tmp_path):
    path = tmp_path / "block_records.npy"
    np.save(path, np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(CorpusError, match=r"not a list of blocks"):
        read_block_records(path)


def test_both_numpy_layouts_are_read(tmp_path):
    """numpy 1.x writes protocol 3 and numpy.core; numpy 2 protocol 4 and numpy._core: both are admitted."""
    blocks = [b"first block", "sécond".encode(), b""]
    path = tmp_path / "block_records.npy"
    np.save(path, np.array(blocks, dtype=object), allow_pickle=True)  # this environment's numpy
    assert list(read_block_records(path)[1]) == blocks
    assert list(read_block_records(REPO / "block_records.npy")[1])[0]  # numpy 1.26's, from the reference venv


def test_a_weights_file_far_larger_than_a_model_is_mapped_not_read(offline_hub, monkeypatch):
    """The real file is 7.9 GB, mostly block_emb: mapped (torch.load(mmap=True)), the embedder the same."""
    import torch

    from lfqa_demo.models import checkpoint_io
    from lfqa_demo.models.loading import load_retriever

    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw.get("mmap")) or real_load(*a, **kw))
    monkeypatch.setattr(checkpoint_io, "MAP_ABOVE_BYTES", 1 << 20)  # the 1.1 MB fixture counts as large
    retriever = load_retriever("realm-orqa")
    assert calls == [True]
    vector = retriever.encode_questions([REFERENCE[0]["question"]])[0]
    assert np.allclose(vector, REFERENCE[0]["projection"], atol=1e-5)


def test_the_pickers_offer_realm_open_qa_only_where_a_corpus_holds_it(bundle):
    from lfqa_demo.engine import RetrievalEngine
    from lfqa_demo.retrieval.corpus import load_bundled_corpus
    from lfqa_demo.retrieval.corpus_bundles import open_corpus_bundle
    from lfqa_demo.service import Service
    from lfqa_demo.sessions import EngineRegistry

    plain = Service(EngineRegistry(load_bundled_corpus()))
    assert "realm-orqa" not in plain.offered and "realm" in plain.offered
    realm = RetrievalEngine(corpus_bundle=open_corpus_bundle(bundle / "bundle"))
    served = Service(EngineRegistry(realm.corpus, standing=[realm]))
    assert served.offered == ("retribert", "dpr", "realm", "realm-orqa", "bm25", "minilm")
