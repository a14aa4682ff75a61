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
from lfqa_demo.retrieval.realm_openqa import convert_realm_openqa, read_block_records

FIXTURES = Path(__file__).parent / "fixtures"
REPO = FIXTURES / "hub" / "google--realm-orqa-nq-openqa"
REFERENCE = json.loads((FIXTURES / "reference" / "realm_openqa.json").read_text(encoding="utf-8"))
BLOCKS = json.loads((FIXTURES / "reference" / "realm_openqa_blocks.json").read_text(encoding="utf-8"))  # texts


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, hub_cache) -> Path:
    """The fixture converted, then built (exact index: 60 blocks) with realm-orqa and BM25."""
    work = tmp_path_factory.mktemp("realm-openqa")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        mp.setenv("LFQA_DTYPE", "float32")
        assert main(["convert-realm-openqa", "--out", str(work)]) == 0
        command = ["index", "--corpus", str(work / "realm-wikipedia"), "--retrievers", "realm-orqa,bm25"]
        command += ["--vectors", f"realm-orqa={work / 'block_emb.npy'}", "--out", str(work / "bundle")]
        assert main(command) == 0
    return work


def test_the_converted_blocks_and_vectors_are_the_checkpoints(bundle):
    import pyarrow.parquet as pq
    import torch

    table = pq.read_table(bundle / "realm-wikipedia")
    assert table.column("text").to_pylist() == BLOCKS  # as the fixture script wrote them
    assert table.column("id").to_pylist() == [str(i) for i in range(len(BLOCKS))]
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
        (
            pickle.dumps(np.array([b"a", b"b", b"c"], dtype=object), protocol=3),
            r"shape \(3,\) where its header says \(2,\)",
        ),
        (pickle.dumps(np.array([1.5, 2.5]), protocol=3), r"a dtype other than the object dtype: \('f8'"),
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
    np.save(path, np.array([b"a", b"x" * 101], dtype=object))
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
    np.save(path, np.array(blocks, dtype=object))  # this environment's numpy writes it
    assert list(read_block_records(path)[1]) == blocks
    fixture = [b.decode("utf-8") for b in read_block_records(REPO / "block_records.npy")[1]]
    assert fixture == BLOCKS  # numpy 1.26's, from the reference venv


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


P = pickle  # the opcodes, to write what np.save never would


def opcodes_array(count: int, elements: bytes) -> bytes:
    """A protocol-3 pickle of an object array as NumPy 1.x writes it, with `elements` (opcodes)
    between its list's EMPTY_LIST and the tuple's end."""
    short = lambda b: P.SHORT_BINBYTES + bytes([len(b)]) + b  # noqa: E731
    head = P.PROTO + b"\x03" + P.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + P.GLOBAL + b"numpy\nndarray\n"
    head += P.BININT1 + b"\x00" + P.TUPLE1 + short(b"b") + P.TUPLE3 + P.REDUCE + P.MARK + P.BININT1 + b"\x01"
    head += P.BININT1 + bytes([count]) + P.TUPLE1
    dtype = P.GLOBAL + b"numpy\ndtype\n" + P.SHORT_BINUNICODE + b"\x02O8" + P.NEWFALSE + P.NEWTRUE + P.TUPLE3 + P.REDUCE
    dtype += P.MARK + P.BININT1 + b"\x03" + P.SHORT_BINUNICODE + b"\x01|" + P.NONE * 3
    dtype += (P.BININT + (-1).to_bytes(4, "little", signed=True)) * 2 + P.BININT1 + b"\x3f" + P.TUPLE + P.BUILD
    return head + dtype + P.NEWFALSE + P.EMPTY_LIST + elements + P.TUPLE + P.BUILD + P.STOP


def short(b: bytes) -> bytes:
    return P.SHORT_BINBYTES + bytes([len(b)]) + b


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.parametrize("count", [0, 1, 2, 1001, 2001])
def test_what_numpy_writes_is_read_as_np_load_reads_it(tmp_path, protocol, count):
    """One block (EMPTY_LIST, bytes, APPEND: no MARK), batches of 1,000 and a last one of 1,
    empty and single-byte blocks (objects CPython shares, so a pickle refers back to them)."""
    blocks = np.empty(count, dtype=object)
    blocks[:] = [[b"", b"b", b"x" * (i % 70), "é".encode()][i % 4] for i in range(count)]
    path = npy_with_pickle(tmp_path / "block_records.npy", pickle.dumps(blocks, protocol=protocol), count)
    assert list(read_block_records(path)[1]) == list(blocks)


@pytest.mark.parametrize(
    "elements,reason",
    [
        # A PUT over a slot that held b"x", then a GET of it: np.load gives the long block; refused, not b"x".
        (
            P.MARK
            + short(b"x")
            + P.BINPUT
            + b"\x14"
            + short(b"L" * 100)
            + P.BINPUT
            + b"\x14"
            + P.BINGET
            + b"\x14"
            + P.APPENDS,
            "cannot repeat",
        ),
        (P.MARK + short(b"a") + P.TUPLE2 + P.APPENDS, "takes more than its MARK"),  # a pop across a MARK
        (P.MARK + short(b"a") + P.APPENDS + P.EMPTY_TUPLE + P.TUPLE1 * 20_000, "more than 10,000 objects"),
    ],
    ids=["stale-memo", "across-mark", "tuple-heap"],
)
def test_a_pickle_that_numpy_would_not_write_is_refused(tmp_path, elements, reason):
    path = npy_with_pickle(tmp_path / "block_records.npy", opcodes_array(2, elements))
    with pytest.raises(CorpusError, match=reason):
        list(read_block_records(path)[1])


def test_a_refused_conversion_leaves_no_corpus_behind(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(REPO, checkpoint)
    records = np.array([*(t.encode("utf-8") for t in BLOCKS[:-1]), "text, not bytes"], dtype=object)
    # the last block only is wrong: every other block is read and written first
    npy_with_pickle(checkpoint / "block_records.npy", pickle.dumps(records, protocol=3), len(records))
    with pytest.raises(CorpusError, match="not a byte string"):
        convert_realm_openqa(str(checkpoint), tmp_path / "out")
    assert not (tmp_path / "out" / "realm-wikipedia").exists() and not (tmp_path / "out" / "block_emb.npy").exists()


@pytest.mark.parametrize("value", ['"60"', "[60]", "61"])
def test_a_config_that_miscounts_its_blocks_is_refused(tmp_path, value):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(REPO, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["num_block_records"] = json.loads(value)
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CorpusError, match="blocks, block_records.npy holds 60"):
        convert_realm_openqa(str(checkpoint), tmp_path / "out")
