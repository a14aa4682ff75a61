"""Corpora as memory-mapped Arrow tables (lfqa_demo/retrieval/tables.py): read by row, the same
passages and fingerprint as an in-memory Corpus, prefixes read without the rest."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lfqa_demo.errors import CorpusError
from lfqa_demo.retrieval.corpus import Corpus, Passage
from lfqa_demo.retrieval.shards import shard_paths
from lfqa_demo.retrieval.tables import (
    BATCH_ROWS,
    PASSAGES_FILE,
    TableCorpus,
    corpus_batches,
    open_passages,
    parquet_batches,
    write_passages,
)
from tools.wiki_corpus import Layout, write_corpus


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("wiki")
    write_corpus(out, Layout(20_000, shard_rows=7_000, dim=8))
    return shard_paths(out, ".parquet")


def test_a_table_corpus_reads_what_the_shards_hold(shards, tmp_path):
    """Uneven input batches (shards of 7,000 rows) come out in batches of BATCH_ROWS, compressed."""
    rows, fingerprint = write_passages(tmp_path / PASSAGES_FILE, parquet_batches(shards))
    corpus = open_passages(tmp_path / PASSAGES_FILE, "wiki", fingerprint, rows)
    table = pa.concat_tables(pq.read_table(p, columns=["id", "title", "text"]) for p in shards)
    assert len(corpus) == rows == 20_000 == table.num_rows
    for i in (0, 1, BATCH_ROWS - 1, BATCH_ROWS, 6_999, 7_000, 19_999, -1):
        j = i % rows
        want = Passage(*(table.column(c)[j].as_py() for c in ("id", "title", "text")))
        assert corpus[i] == want
    with pytest.raises(IndexError):
        corpus[20_000]
    # The same passages as an in-memory Corpus: the same fingerprint, so the same cache entries.
    listed = Corpus("wiki", list(corpus))
    assert listed.fingerprint == corpus.fingerprint and len(listed) == 20_000
    assert [p.id for p in corpus][:3] == ["1", "2", "3"]


def test_max_passages_reads_a_prefix_only(shards, tmp_path):
    batches = list(parquet_batches(shards, max_passages=7_500))
    assert sum(b.num_rows for b in batches) == 7_500
    assert batches[-1].column("id")[-1].as_py() == "7500"
    # The shards after the prefix are never opened: a broken third shard does not matter.
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in shards[:2]:
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / shards[2].name).write_bytes(b"not parquet")
    assert sum(b.num_rows for b in parquet_batches(shard_paths(broken, ".parquet"), max_passages=7_500)) == 7_500
    with pytest.raises(CorpusError, match="not a readable Parquet file"):
        list(parquet_batches(shard_paths(broken, ".parquet")))


def test_corpus_batches_round_trip_a_small_corpus(tmp_path):
    small = Corpus("s", [Passage(f"p{i}", f"T{i % 3}", f"text {i}") for i in range(10)])
    rows, fingerprint = write_passages(tmp_path / PASSAGES_FILE, corpus_batches(small, batch_rows=4))
    assert (rows, fingerprint) == (10, small.fingerprint)
    table = open_passages(tmp_path / PASSAGES_FILE, "s", fingerprint, 10)
    assert isinstance(table, TableCorpus) and list(table) == small.passages


def test_repeated_ids_and_wrong_files_are_refused(tmp_path):
    twice = Corpus("s", [Passage("a", "", "x"), Passage("a", "", "y")])
    with pytest.raises(CorpusError, match="appears twice"):
        write_passages(tmp_path / "x.arrow", corpus_batches(twice))
    rows, fingerprint = write_passages(tmp_path / PASSAGES_FILE, corpus_batches(Corpus("s", [Passage("a", "", "x")])))
    with pytest.raises(CorpusError, match="the 2 passages the manifest says"):
        open_passages(tmp_path / PASSAGES_FILE, "s", fingerprint, 2)
    (tmp_path / "junk.arrow").write_bytes(b"\0" * 100)
    with pytest.raises(CorpusError, match="cannot be read"):
        open_passages(tmp_path / "junk.arrow", "s", fingerprint, 1)
