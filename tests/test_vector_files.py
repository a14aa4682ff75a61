"""Passage vectors read from files (lfqa_demo/retrieval/vector_files.py): .npy and Parquet shards,
row-aligned or keyed by id, a corpus's embeddings column, and the refusals that keep a vector
from landing on the wrong passage."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lfqa_demo.errors import CorpusError, InvalidInputError
from lfqa_demo.retrieval.vector_files import (
    check_vectors,
    corpus_embeddings,
    open_vector_files,
    parse_vectors_option,
)
from tools.wiki_corpus import Layout, write_corpus, write_vectors


def read_all(source, rows: int = 300) -> np.ndarray:
    chunks = list(source.chunks(rows))
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.flags.c_contiguous and chunk.shape[1] == source.dim
    assert all(len(c) == rows for c in chunks[:-1])  # full chunks, whatever the shards' sizes
    return np.concatenate(chunks) if chunks else np.empty((0, source.dim), np.float32)


def vectors(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim), dtype=np.float32)


def write_parquet(path: Path, columns: dict, row_group_size: int = 64) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def lists(array: np.ndarray, kind=pa.list_) -> pa.Array:
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])
    return fixed if kind is None else fixed.cast(kind(pa.from_numpy_dtype(array.dtype)))


def test_vectors_option_is_name_equals_path():
    assert parse_vectors_option("realm=/data/realm vectors") == ("realm", Path("/data/realm vectors"))
    assert parse_vectors_option("my_retriever-2=v.npy") == ("my_retriever-2", Path("v.npy"))
    for bad in ("realm", "=x.npy", "realm=", "re alm=x.npy", "realm/x=y"):
        with pytest.raises(InvalidInputError, match="NAME=PATH"):
            parse_vectors_option(bad)


def test_npy_file_and_shards_in_natural_order(tmp_path):
    layout = Layout(2_500, shard_rows=1_000)
    paths = write_vectors(tmp_path / "retribert", layout, dim=32, seed=7)
    expected = np.concatenate([np.load(p) for p in paths])
    source = open_vector_files(tmp_path / "retribert")
    assert (source.count, source.dim, source.origin) == (2_500, 32, str(tmp_path / "retribert"))
    assert np.array_equal(read_all(source), expected)
    single = open_vector_files(paths[1])
    assert np.array_equal(read_all(single), expected[1_000:2_000])

    parts = tmp_path / "parts"
    parts.mkdir()
    whole = vectors(11 * 5, 8)
    for i in range(11):  # part-10 must come after part-2, not between part-1 and part-2
        np.save(parts / f"part-{i}.npy", whole[i * 5 : (i + 1) * 5])
    assert np.array_equal(read_all(open_vector_files(parts), rows=7), whole)


def test_float16_npy_is_served_as_float32(tmp_path):
    half = vectors(100, 16).astype(np.float16)
    np.save(tmp_path / "half.npy", half)
    assert np.array_equal(read_all(open_vector_files(tmp_path / "half.npy"), rows=33), half.astype(np.float32))


@pytest.mark.parametrize("kind", [pa.list_, pa.large_list, None], ids=["list", "large_list", "fixed_size_list"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_parquet_shards_of_each_list_type(tmp_path, kind, dtype):
    whole = vectors(450, 24).astype(dtype)
    for i, start in enumerate(range(0, 450, 200)):
        write_parquet(tmp_path / f"vectors-{i}.parquet", {"vector": lists(whole[start : start + 200], kind)})
    source = open_vector_files(tmp_path)
    assert (source.count, source.dim) == (450, 24)
    assert np.array_equal(read_all(source, rows=128), whole.astype(np.float32))


@pytest.fixture(scope="module")
def wiki(tmp_path_factory) -> list[Path]:
    """A generated corpus in wiki_dpr's layout (3 shards), written once: generating is slow."""
    return write_corpus(tmp_path_factory.mktemp("wiki"), Layout(2_300, shard_rows=1_000, dim=48, seed=2))


def test_corpus_embeddings_are_what_the_generator_wrote(wiki, tmp_path):
    source = corpus_embeddings(wiki)
    assert (source.count, source.dim, source.origin) == (2_300, 48, "the corpus's embeddings column")
    written = np.array(
        [v for p in wiki for v in pq.read_table(p, columns=["embeddings"]).column(0).to_pylist()], np.float32
    )
    assert np.array_equal(read_all(source, rows=512), written)
    plain = write_parquet(tmp_path / "plain.parquet", {"id": ["1"], "text": ["a passage"], "title": ["A"]})
    assert corpus_embeddings([plain]) is None  # wiki_dpr's no_embeddings configs


def test_chunks_are_reiterable_and_the_same_at_any_size(wiki):
    source = corpus_embeddings(wiki)
    first = read_all(source, rows=2_300)
    for rows in (1, 7, 256, 1_000, 5_000):
        assert np.array_equal(read_all(source, rows=rows), first)
    assert np.array_equal(read_all(source, rows=7), first)  # again, from row 0


def test_keyed_files_are_put_in_corpus_order(tmp_path):
    ids = [str(i) for i in range(1, 501)]
    aligned = vectors(500, 12)
    order = np.random.default_rng(1).permutation(500)
    for i, part in enumerate(np.array_split(order, 3)):
        write_parquet(
            tmp_path / f"part-{i}.parquet",
            {"id": pa.array([ids[r] for r in part]), "embeddings": lists(aligned[part])},
        )
    source = open_vector_files(tmp_path, ids=ids)
    assert (source.count, source.dim) == (500, 12)
    assert not source.source.in_order
    assert np.array_equal(read_all(source, rows=64), aligned)
    chunk = next(source.chunks(500))
    chunk *= 2  # a builder normalising in place does not change the next pass
    assert np.array_equal(read_all(source, rows=500), aligned)
    folder = source.source._copy.shards[0].parent  # the temporary ordered copy...
    assert folder.exists()
    del source
    gc.collect()
    assert not folder.exists()  # ...goes with the source

    # Integer ids in corpus order: matched as strings, streamed without a copy.
    write_parquet(tmp_path / "ordered.parquet", {"id": pa.array(range(1, 501)), "vectors": lists(aligned)})
    ordered = open_vector_files(tmp_path / "ordered.parquet", ids=ids)
    assert ordered.source.in_order and np.array_equal(read_all(ordered), aligned)


def test_keyed_files_must_cover_every_id_once(tmp_path):
    ids = [str(i) for i in range(1, 101)]
    keyed = ids[:97] + ["98", "98", "x1", "x2"]  # 99 and 100 missing, 98 twice, two strangers
    path = write_parquet(tmp_path / "v.parquet", {"id": pa.array(keyed), "embeddings": lists(vectors(101, 4))})
    with pytest.raises(CorpusError) as caught:
        open_vector_files(path, ids=ids)
    message = str(caught.value)
    assert "2 ids that are not in the corpus (ids 'x1', 'x2')" in message
    assert "1 ids more than once (ids '98')" in message
    assert "no vector for 2 corpus passages (ids '99', '100')" in message
    with pytest.raises(ValueError, match="pass the corpus's ids"):
        open_vector_files(path)


def test_counts_and_dimensions_must_fit_the_corpus_and_checkpoint(tmp_path):
    np.save(tmp_path / "v.npy", vectors(19_999, 64))
    source = open_vector_files(tmp_path / "v.npy")
    check_vectors(source, count=19_999, dim=64, name="realm")
    with pytest.raises(CorpusError, match=r"the realm vectors in .*v\.npy have 19,999 rows; the corpus has 20,000"):
        check_vectors(source, count=20_000, dim=64, name="realm")
    with pytest.raises(CorpusError, match="are 64-d; the realm checkpoint makes 128-d vectors"):
        check_vectors(source, count=19_999, dim=128, name="realm")


def test_npy_files_that_are_refused(tmp_path):
    np.save(tmp_path / "ints.npy", np.arange(12, dtype=np.int64).reshape(3, 4))
    with pytest.raises(CorpusError, match="holds int64 values; vectors must be float32 or float16"):
        open_vector_files(tmp_path / "ints.npy")
    np.save(tmp_path / "doubles.npy", vectors(3, 4).astype(np.float64))
    with pytest.raises(CorpusError, match="float64"):
        open_vector_files(tmp_path / "doubles.npy")
    np.save(tmp_path / "cube.npy", vectors(6, 4).reshape(2, 3, 4))
    with pytest.raises(CorpusError, match=r"shape \(2, 3, 4\); vectors must be 2-d"):
        open_vector_files(tmp_path / "cube.npy")
    np.save(tmp_path / "short.npy", vectors(100, 4))
    data = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-10])
    with pytest.raises(CorpusError, match="truncated"):
        open_vector_files(tmp_path / "short.npy")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(CorpusError, match="not a readable .npy file"):
        open_vector_files(tmp_path / "text.npy")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "part-0.npy", vectors(5, 8))
    np.save(mixed / "part-1.npy", vectors(5, 9))
    with pytest.raises(CorpusError, match="part-1.npy holds 9-d vectors but part-0.npy holds 8-d"):
        open_vector_files(mixed)


def test_a_shard_set_missing_a_shard_is_refused(tmp_path):
    paths = write_vectors(tmp_path, Layout(300, shard_rows=100), dim=8, seed=0)
    paths[1].unlink()
    with pytest.raises(CorpusError, match=r"3 shards are named but 2 are there \(missing: 1\)"):
        open_vector_files(tmp_path)


def test_paths_that_hold_no_vectors_are_refused(tmp_path):
    with pytest.raises(CorpusError, match="no file or directory"):
        open_vector_files(tmp_path / "nowhere")
    (tmp_path / "v.txt").write_text("1 2 3")
    with pytest.raises(CorpusError, match="neither a .npy nor a .parquet file"):
        open_vector_files(tmp_path / "v.txt")
    with pytest.raises(CorpusError, match="no .npy or .parquet files"):
        open_vector_files(tmp_path)
    np.save(tmp_path / "a.npy", vectors(2, 2))
    write_parquet(tmp_path / "b.parquet", {"vector": lists(vectors(2, 2))})
    with pytest.raises(CorpusError, match="both .npy and .parquet files"):
        open_vector_files(tmp_path)


def test_parquet_files_that_are_refused(tmp_path):
    path = write_parquet(tmp_path / "cols.parquet", {"id": ["1"], "text": ["a"], "dense": lists(vectors(1, 4))})
    with pytest.raises(CorpusError, match="no vector column .*; its columns are id, text, dense"):
        open_vector_files(path, ids=["1"])
    assert open_vector_files(path, ids=["1"], column="dense").dim == 4
    with pytest.raises(CorpusError, match=r"no 'missing' column \(its columns: id, text, dense\)"):
        open_vector_files(path, column="missing")

    path = write_parquet(tmp_path / "strings.parquet", {"vector": [["a", "b"]]})
    with pytest.raises(CorpusError, match="is list<.*string>; vectors must be lists of float32 or float16"):
        open_vector_files(path)

    rows = [list(r) for r in vectors(200, 4)]
    rows[150] = rows[150][:3]
    path = write_parquet(tmp_path / "ragged.parquet", {"vector": pa.array(rows, pa.list_(pa.float32()))})
    source = open_vector_files(path)
    with pytest.raises(CorpusError, match=r"row 150 of .*ragged.parquet has 3 values, not 4 as the first row has"):
        read_all(source, rows=64)

    rows[150] = None
    path = write_parquet(tmp_path / "null.parquet", {"vector": pa.array(rows, pa.list_(pa.float32()))})
    with pytest.raises(CorpusError, match=r"row 150 of .*null.parquet has no vector \(null\)"):
        read_all(open_vector_files(path))
    rows[150] = [1.0, None, 2.0, 3.0]
    path = write_parquet(tmp_path / "hole.parquet", {"vector": pa.array(rows, pa.list_(pa.float32()))})
    with pytest.raises(CorpusError, match=r"row 150 of .*hole.parquet has a null value"):
        read_all(open_vector_files(path))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_row_that_is_not_finite_is_refused_as_it_streams(tmp_path, bad):
    array = vectors(500, 8)
    array[321, 5] = bad
    np.save(tmp_path / "v.npy", array)
    source = open_vector_files(tmp_path / "v.npy")
    with pytest.raises(CorpusError, match="row 321 of the vectors in .* is not finite"):
        read_all(source, rows=100)
    huge = np.full((4, 8), 3e38, np.float32)  # finite, though their sum overflows
    np.save(tmp_path / "huge.npy", huge)
    assert np.array_equal(read_all(open_vector_files(tmp_path / "huge.npy")), huge)
