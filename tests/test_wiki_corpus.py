"""The generator of corpora in wiki_dpr's layout (tools/wiki_corpus.py): the schema the real
shards have, text whose words behave like text, and vectors that behave like an encoder's."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tools.wiki_corpus import Layout, write_corpus, write_vectors


def read(paths) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths])


def test_shards_have_wiki_dprs_schema_and_ids(tmp_path):
    paths = write_corpus(tmp_path, Layout(2_500, shard_rows=1_000, dim=64))
    assert [p.name for p in paths] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    table = read(paths)
    assert table.column_names == ["id", "text", "title", "embeddings"] and table.num_rows == 2_500
    assert table.schema.field("id").type == pa.string() and table.schema.field("text").type == pa.string()
    assert pa.types.is_list(table.schema.field("embeddings").type)
    assert table.schema.field("embeddings").type.value_type == pa.float32()
    assert table.column("id").to_pylist() == [str(i) for i in range(1, 2_501)]  # wiki_dpr's ids: "1", "2", ...
    lengths = {len(t.split()) for t in table.column("text").to_pylist()}
    assert lengths == {100}
    plain = read(write_corpus(tmp_path / "plain", Layout(100, dim=0)))
    assert plain.column_names == ["id", "text", "title"]  # the no_embeddings configs


def test_words_follow_zipf_and_articles_repeat_their_topic(tmp_path):
    table = read(write_corpus(tmp_path, Layout(4_000, shard_rows=4_000, dim=0)))
    words = " ".join(table.column("text").to_pylist()).split()
    _, counts = np.unique(words, return_counts=True)
    counts = np.sort(counts)[::-1]
    ranks = np.arange(1, len(counts) + 1)
    slope = np.polyfit(np.log(ranks[:1000]), np.log(counts[:1000]), 1)[0]
    assert -1.3 < slope < -0.8, slope  # text-like: frequency ~ 1 / rank
    titles = table.column("title").to_pylist()
    texts = table.column("text").to_pylist()
    # A passage shares more words with another of its article than with one of another article.
    same = [len(set(texts[i].split()) & set(texts[i + 1].split())) for i in range(2_000) if titles[i] == titles[i + 1]]
    other = [len(set(texts[i].split()) & set(texts[i + 1].split())) for i in range(2_000) if titles[i] != titles[i + 1]]
    assert np.mean(same) > np.mean(other) + 3


def test_vectors_are_clustered_anisotropic_unnormalised_and_reproducible(tmp_path):
    layout = Layout(3_000, shard_rows=1_000, dim=96, seed=3)
    table = read(write_corpus(tmp_path / "a", layout))
    vectors = np.array(table.column("embeddings").to_pylist(), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    assert norms.std() / norms.mean() > 0.05  # unnormalised, as DPR's are
    centred = vectors - vectors.mean(axis=0)
    variances = np.linalg.svd(centred, compute_uv=False) ** 2
    assert variances[:5].sum() / variances.sum() > 3 * 5 / 96  # a few directions carry much more than their share
    titles = table.column("title").to_pylist()
    unit = vectors / norms[:, None]
    same = [unit[i] @ unit[i + 1] for i in range(2_999) if titles[i] == titles[i + 1]]
    other = [unit[i] @ unit[i + 1] for i in range(2_999) if titles[i] != titles[i + 1]]
    assert np.mean(same) > np.mean(other) + 0.05  # clustered by article
    again = read(write_corpus(tmp_path / "b", Layout(3_000, shard_rows=3_000, dim=96, seed=3)))
    assert again.column("embeddings").to_pylist() == table.column("embeddings").to_pylist()  # sharding-free
    files = write_vectors(tmp_path / "retribert", layout, dim=32, seed=7)
    assert [np.load(f, allow_pickle=False).shape for f in files] == [(1_000, 32)] * 3
