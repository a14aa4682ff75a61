"""Compressed dense indexes (lfqa_demo/retrieval/compressed.py): built over generated passage
vectors (tools/wiki_corpus.py: clustered, anisotropic, unnormalised), checked against a
brute-force numpy oracle, and refused when their files disagree."""

from __future__ import annotations

import json
import shutil
import struct
import threading

import numpy as np
import pytest

from lfqa_demo.errors import CorpusError, InvalidInputError
from lfqa_demo.retrieval import compressed, refine_codes
from lfqa_demo.retrieval.compressed import build_compressed, exact_search, open_compressed, recall_at
from lfqa_demo.retrieval.vectors import ArrayVectors
from tools.wiki_corpus import passage_vectors

HELD_OUT = 200  # generated vectors past the indexed ones: queries the build never saw


def generated(rows: int, dim: int) -> np.ndarray:
    """`rows` generated passage vectors of `dim`, float32, articles of 6 passages."""
    return np.concatenate(list(passage_vectors(np.arange(rows) // 6, dim, seed=0)))


def build_generated(tmp_path_factory, rows: int, dim: int):
    """(source, held-out queries, build) over `rows` generated vectors, with fewer OPQ and PQ
    training steps than a real build: the codes' quality is the benchmark's business; here the
    tuning makes up for it, and a build takes seconds."""
    vectors = generated(rows + HELD_OUT, dim)
    source = ArrayVectors(vectors[:rows], origin="generated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compressed, "OPQ_ITERATIONS", 2)
        patch.setattr(compressed, "OPQ_FIRST_PQ_ITERATIONS", 2)
        patch.setattr(compressed, "OPQ_TRAIN_ROWS", 4096)
        patch.setattr(compressed, "PQ_ITERATIONS", 4)
        patch.setattr(refine_codes, "PQ_ITERATIONS", 4)
        build = build_compressed(source, tmp_path_factory.mktemp(f"compressed-{dim}"))
    return source, vectors[rows:], build


@pytest.fixture(scope="module")
def built_768(tmp_path_factory):
    return build_generated(tmp_path_factory, 10_000, 768)  # DPR's width: OPQ rotation, IVF-PQ


@pytest.fixture(scope="module")
def built_128(tmp_path_factory):
    return build_generated(tmp_path_factory, 20_000, 128)  # RetriBERT's and REALM's: IVF-PQ


@pytest.fixture(params=["built_768", "built_128"])
def built(request):
    return request.getfixturevalue(request.param)


def test_the_build_reaches_its_target_and_says_so(built):
    source, _, build = built
    record = build.record
    assert record.target_recall == 0.95 and record.reached and record.measured.recall_at_10 >= 0.95
    assert record.count == source.count and record.dim == source.dim and record.candidate_dim > source.dim
    assert record.rescore_dtype == "int8"  # int8 reaches 0.95 on these vectors; float16 only when it cannot
    assert {"nprobe", "depth"} <= record.tried[0].model_dump().keys()
    files = json.loads((build.path / compressed.RECORD_FILE).read_text())["files"]
    assert files == {name: (build.path / name).stat().st_size for name in files}
    assert (build.path / compressed.RESCORE_FILE).stat().st_size >= source.count * source.dim  # int8 rows


def test_search_agrees_with_the_oracle_on_fresh_queries(built):
    source, held, build = built
    index = open_compressed(build.path)
    assert (index.ntotal, index.d) == (source.count, source.dim)
    scores, ids = index.search(held, 10)
    exact_scores, exact_ids = exact_search(source, held, 10)
    fresh = recall_at(ids, exact_ids, 10)
    assert fresh >= 0.93 and abs(fresh - index.recall["recall_at_10"]) <= 0.04, (fresh, index.recall)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


def test_scores_are_the_inner_products_within_int8_error(built):
    source, held, build = built
    index = open_compressed(build.path)
    scores, ids = index.search(held, 10)
    assert np.all(ids >= 0)
    rows = source.vectors[ids]  # [q, 10, d]
    exact = np.einsum("qd,qkd->qk", held, rows)
    # Each code is off by at most half its row's step: |error| <= scale[row] / 2 * sum_i |q_i|.
    bound = 0.5 * index.scale[ids] * np.abs(held).sum(axis=1, keepdims=True) + 1e-5 * np.abs(exact)  # [q, 10]
    assert np.all(np.abs(scores - exact) <= bound)
    assert np.mean(np.abs(scores - exact) / np.abs(exact)) < 2e-3  # in practice: errors cancel
    stored = index.reconstruct_batch(ids[0])  # [10, d]
    assert np.all(np.abs(stored - rows[0]) <= 0.51 * index.scale[ids[0], None])


def test_float16_rescoring_scores_within_float16_error(tmp_path):
    vectors = generated(2_000, 64)
    source = ArrayVectors(vectors[:1_900])
    build = build_compressed(source, tmp_path, rescore_dtype="float16", queries=64)
    index = open_compressed(build.path)
    assert build.record.rescore_dtype == "float16" and index.codes.dtype == np.float16
    scores, ids = index.search(vectors[1_900:], 5)
    exact = np.einsum("qd,qkd->qk", vectors[1_900:], vectors[ids])
    centred = np.abs(vectors[ids] - index.offset)  # float16 holds each centred value to 2^-11 of itself
    bound = 2.0**-10 * np.einsum("qd,qkd->qk", np.abs(vectors[1_900:]), centred) + 1e-5 * np.abs(exact)
    assert np.all(np.abs(scores - exact) <= bound)


def test_k_past_the_corpus_pads_with_minus_one_and_minus_infinity(tmp_path):
    vectors = generated(330, 32)
    source = ArrayVectors(vectors[:300])
    build = build_compressed(source, tmp_path, queries=30)  # under MIN_PQ_ROWS: IVF-SQ8 candidates
    assert build.record.factory.endswith("SQ8")
    index = open_compressed(build.path)
    scores, ids = index.search(vectors[300:], 400)
    assert scores.shape == ids.shape == (30, 400) and scores.dtype == np.float32 and ids.dtype == np.int64
    for row_scores, row_ids in zip(scores, ids):
        found = row_ids[row_ids >= 0]
        assert len(found) <= 300 and len(np.unique(found)) == len(found) and found.max() < 300
        assert np.all(row_ids[len(found) :] == -1) and np.all(np.isneginf(row_scores[len(found) :]))
        assert np.all(np.isfinite(row_scores[: len(found)]))
    assert index.search(vectors[300:], 0)[1].shape == (30, 0)


def test_exact_search_is_the_brute_force_answer():
    vectors = generated(1_000, 16)
    queries = vectors[:7]
    exclude = np.array([0, 1, 2, 3, 4, 5, -1])
    scores, ids = exact_search(ArrayVectors(vectors), queries, 5, exclude=exclude, chunk_rows=128)
    full = queries @ vectors.T
    full[np.arange(6), exclude[:6]] = -np.inf
    assert np.array_equal(ids, np.argsort(-full, axis=1)[:, :5])
    assert np.allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], rtol=1e-5)
    _, padded = exact_search(ArrayVectors(vectors[:3]), queries[:1], 5, exclude=np.array([0]))
    assert padded[0].tolist()[2:] == [-1, -1, -1]  # two rows left once row 0 is out
    _, windowed = exact_search(ArrayVectors(vectors), queries[:2], 990, np.array([130, -1]), window=3, chunk_rows=128)
    assert set(range(127, 134)).isdisjoint(windowed[0]) and windowed[0, -1] != -1  # 993 rows left, across chunks
    assert windowed[1].tolist() == np.argsort(-(queries[1] @ vectors.T))[:990].tolist()


def test_concurrent_searches_give_the_same_answers(built):
    _, held, build = built
    index = open_compressed(build.path)
    expected = index.search(held, 10)
    results: list = [None] * 4

    def search(slot: int) -> None:
        results[slot] = index.search(held, 10)

    threads = [threading.Thread(target=search, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for scores, ids in results:
        assert np.array_equal(ids, expected[1]) and np.array_equal(scores, expected[0])


# -- refusals: every part must agree with every other ---------------------------------------------------
@pytest.fixture
def copy(built_128, tmp_path):
    """A copy of the 128-d build to damage (the checks do not depend on the width)."""
    shutil.copytree(built_128[2].path, tmp_path / "index")
    return tmp_path / "index"


def edit_record(path, **changes) -> None:
    record = json.loads((path / compressed.RECORD_FILE).read_text())
    for key, value in changes.items():
        if key in record["settings"]:
            record["settings"][key] = value
        else:
            record[key] = value
    (path / compressed.RECORD_FILE).write_text(json.dumps(record))


def rewrite_rescore(path, codes: np.ndarray) -> None:
    """Replace rescore.npy and record its new size, so that only its shape can give it away."""
    np.save(path / compressed.RESCORE_FILE, codes, allow_pickle=False)
    files = json.loads((path / compressed.RECORD_FILE).read_text())["files"]
    edit_record(path, files={**files, compressed.RESCORE_FILE: (path / compressed.RESCORE_FILE).stat().st_size})


def test_a_rescoring_file_with_other_rows_is_refused(copy):
    codes = np.load(copy / compressed.RESCORE_FILE)
    rewrite_rescore(copy, codes[:-1])
    with pytest.raises(CorpusError, match=r"rescore.npy holds int8 \(19999, 128\), not int8 \(20000, 128\)"):
        open_compressed(copy)


def test_a_rescoring_file_of_another_dimension_is_refused(copy):
    codes = np.load(copy / compressed.RESCORE_FILE)
    rewrite_rescore(copy, np.ascontiguousarray(codes[:, :127]))
    with pytest.raises(CorpusError, match=r"holds int8 \(20000, 127\)"):
        open_compressed(copy)


def test_a_rescoring_file_of_another_size_than_recorded_is_refused(copy):
    with open(copy / compressed.RESCORE_FILE, "ab") as f:
        f.write(b"\0" * 128)
    with pytest.raises(CorpusError, match="rescore.npy is not the size its compressed.json records"):
        open_compressed(copy)


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"nprobe": 10**9}, "settings.nprobe: Input should be less than or equal to 65536"),
        ({"depth": "50"}, "settings.depth: Input should be a valid integer"),
        ({"count": "20000"}, "count: Input should be a valid integer"),
        ({"max_norm": -1.0}, "max_norm: Input should be greater than 0"),
        ({"rescore_dtype": "float64"}, "rescore_dtype: Input should be 'int8' or 'float16'"),
        ({"nprobe": 60_000}, "probes 60,000 of"),  # within the bound, past the index's lists
    ],
)
def test_a_changed_record_is_refused(copy, changes, reason):
    edit_record(copy, **changes)
    with pytest.raises(CorpusError, match=reason):
        open_compressed(copy)


def test_a_huge_record_is_refused_unread(copy):
    (copy / compressed.RECORD_FILE).write_text('{"format": 1, "origin": "' + "x" * (1 << 21) + '"}')
    with pytest.raises(CorpusError, match="compressed.json is larger than"):
        open_compressed(copy)


def test_a_truncated_faiss_file_is_refused(copy):
    path = copy / compressed.FAISS_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorpusError, match="candidates.faiss is not the size"):
        open_compressed(copy)
    files = json.loads((copy / compressed.RECORD_FILE).read_text())["files"]
    edit_record(copy, files={**files, compressed.FAISS_FILE: path.stat().st_size})
    with pytest.raises(CorpusError, match=r"candidates.faiss cannot be read \(RuntimeError\)"):
        open_compressed(copy)


def test_scales_that_are_not_finite_are_refused(copy):
    scale = np.load(copy / compressed.SCALE_FILE)
    scale[3] = np.nan
    np.save(copy / compressed.SCALE_FILE, scale)
    with pytest.raises(CorpusError, match=r"rescore_scale.npy is not finite float32 \[20000\]"):
        open_compressed(copy)


def test_an_unfinished_build_is_refused(copy):
    (copy / compressed.RECORD_FILE).unlink()
    with pytest.raises(CorpusError, match="has no readable compressed.json"):
        open_compressed(copy)


def test_a_faiss_file_of_another_kind_is_refused(copy):
    import faiss

    record = json.loads((copy / compressed.RECORD_FILE).read_text())
    flat = faiss.IndexFlatIP(record["candidate_dim"])
    flat.add(np.zeros((record["count"], record["candidate_dim"]), dtype=np.float32))
    (copy / compressed.FAISS_FILE).write_bytes(faiss.serialize_index(flat).tobytes())
    edit_record(copy, files={**record["files"], compressed.FAISS_FILE: (copy / compressed.FAISS_FILE).stat().st_size})
    with pytest.raises(CorpusError, match="is a IndexFlatIP, not the IVF-PQ or IVF-SQ8 index"):
        open_compressed(copy)


def test_queries_and_k_are_checked_at_the_door(built_128):
    index = open_compressed(built_128[2].path)
    with pytest.raises(InvalidInputError, match=r"queries must be float32 \[n, 128\]"):
        index.search(np.zeros((2, 64), dtype=np.float32), 10)
    with pytest.raises(InvalidInputError, match="queries must be finite"):
        index.search(np.full((1, 128), np.nan, dtype=np.float32), 10)
    with pytest.raises(InvalidInputError, match="k must be an integer from 0 to 10,000"):
        index.search(np.zeros((1, 128), dtype=np.float32), -1)
    with pytest.raises(InvalidInputError, match="passage numbers must be from 0 to 19,999"):
        index.reconstruct_batch([20_000])


# -- the fast-scan candidate index of wide vectors ------------------------------------------------------
@pytest.fixture
def copy_768(built_768, tmp_path):
    shutil.copytree(built_768[2].path, tmp_path / "index")
    return tmp_path / "index"


def rewrite_faiss(path, data: bytes) -> None:
    """Replace candidates.faiss and record its new size, so that only its content can give it away."""
    (path / compressed.FAISS_FILE).write_bytes(data)
    files = json.loads((path / compressed.RECORD_FILE).read_text())["files"]
    edit_record(path, files={**files, compressed.FAISS_FILE: len(data)})


def test_wide_vectors_get_4_bit_fast_scan_codes_of_65_bytes(built_768):
    import faiss

    record = built_768[2].record
    assert record.factory.startswith("OPQ130,IVF") and record.factory.endswith(",PQ130x4fs")
    index = open_compressed(built_768[2].path)  # held: the faiss objects below live inside it
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index.index))
    assert type(ivf).__name__ == "IndexIVFPQFastScan" and ivf.code_size == 65
    # ... ranked again by 8-bit codes of the same 65 bytes, in memory, before rows are read from disk
    assert record.refine_m == 65 and index.refine.codes.shape == (10_000, 65)
    assert record.settings.refine_depth in compressed.REFINE_DEPTHS


def test_refine_scores_are_the_inner_products_of_the_coded_vectors(built_768):
    """The NumPy scorer against faiss's own decoding of the same codes (rotation undone)."""
    import faiss

    source, held, build = built_768
    index = open_compressed(build.path)
    refine = index.refine
    quantizer = faiss.ProductQuantizer(index.index.d, refine.m, 8)
    faiss.copy_array_to_vector(refine.centroids.reshape(-1), quantizer.centroids)
    rows = np.array([7, 3, 9_999, 0])
    decoded = quantizer.decode(np.ascontiguousarray(refine.codes[rows])) @ refine.rotation  # [4, d]: back to x
    query = np.zeros(index.index.d, dtype=np.float32)
    query[:768] = held[0]
    assert np.allclose(refine.scores(query, rows), decoded @ query, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "damage,reason",
    [
        ("rotation", "refine_rotation.npy is not a rotation"),
        ("codes", r"refine_codes.npy holds uint8 \(9999, 65\)"),
        ("record", "a refine depth without refine codes, or none"),
    ],
)
def test_refine_files_that_disagree_are_refused(copy_768, damage, reason):
    if damage == "rotation":
        rotation = np.load(copy_768 / "refine_rotation.npy")
        np.save(copy_768 / "refine_rotation.npy", 2 * rotation)
    elif damage == "codes":
        np.save(copy_768 / "refine_codes.npy", np.load(copy_768 / "refine_codes.npy")[:-1])
    else:
        edit_record(copy_768, refine_depth=None)
    files = json.loads((copy_768 / compressed.RECORD_FILE).read_text())["files"]
    sizes = {name: (copy_768 / name).stat().st_size for name in files}
    edit_record(copy_768, files=sizes)
    with pytest.raises(CorpusError, match=reason):
        open_compressed(copy_768)


def test_a_wide_index_of_8_bit_codes_built_before_fast_scan_still_opens(tmp_path):
    vectors = generated(10_000 + 50, 768)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compressed, "OPQ_ITERATIONS", 1)
        patch.setattr(compressed, "PQ_ITERATIONS", 2)
        build = build_compressed(ArrayVectors(vectors[:10_000]), tmp_path, factory="OPQ65,IVF128,PQ65", queries=64)
    index = open_compressed(build.path)
    oracle = exact_search(ArrayVectors(vectors[:10_000]), vectors[10_000:], 10)[1]
    assert recall_at(index.search(vectors[10_000:], 10)[1], oracle, 10) >= 0.9


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("implem", 12, "asks for a fast-scan search other than"),
        ("by_residual", True, "asks for a fast-scan search other than"),
        ("qbs2", 0x3333, "asks for a fast-scan search other than"),
        ("bbs", 64, "fast-scan blocks of another shape|cannot be read"),
        ("M2", 132, "fast-scan blocks of another shape|cannot be read"),
    ],
)
def test_a_fast_scan_index_asking_for_another_search_is_refused(copy_768, field, value, reason):
    import faiss

    index = compressed.read_candidates(copy_768 / compressed.FAISS_FILE)
    setattr(faiss.downcast_index(faiss.extract_index_ivf(index)), field, value)
    rewrite_faiss(copy_768, faiss.serialize_index(index).tobytes())
    with pytest.raises(CorpusError, match=reason):
        open_compressed(copy_768)


def test_a_fast_scan_list_shorter_than_its_ids_is_refused(copy_768):
    """A list's codes one block short of its ids would let a search read past them: faiss's
    reader (BlockInvertedLists, as pinned in requirements.txt) refuses the file."""
    data = (copy_768 / compressed.FAISS_FILE).read_bytes()
    at = data.index(b"ilbl") + 4
    nlist, _, _, block = struct.unpack_from("<QQQQ", data, at)
    at += 32
    for _ in range(nlist):  # the first list with codes: (ids: count, int64s), (codes: count, bytes)
        ids = struct.unpack_from("<Q", data, at)[0]
        codes_at = at + 8 + 8 * ids
        codes = struct.unpack_from("<Q", data, codes_at)[0]
        if codes:
            break
        at = codes_at + 8 + codes
    shorter = data[:codes_at] + struct.pack("<Q", codes - block) + data[codes_at + 8 + block :]
    rewrite_faiss(copy_768, shorter)
    with pytest.raises(CorpusError, match=r"candidates.faiss cannot be read \(RuntimeError\)"):
        open_compressed(copy_768)
