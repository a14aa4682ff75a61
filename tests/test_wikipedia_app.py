"""The app over a corpus bundle (LFQA_CORPORA), driven through gradio_client: it opens on the
bundle, and /search, /compare, /answer and /evaluate answer from it with exact-search hits."""

from __future__ import annotations

import numpy as np
import pytest
from app_server import AppServer
from gradio_client import Client, handle_file

from lfqa_demo.models.loading import load_retriever
from lfqa_demo.retrieval.shards import shard_paths


@pytest.fixture(scope="module")
def server(hub_cache, wiki_bundle, tmp_path_factory):
    app = AppServer(
        hub_cache, tmp_path_factory.mktemp("app"), {"LFQA_CORPORA": str(wiki_bundle["out"]), "LFQA_DTYPE": "float32"}
    )
    yield app
    app.stop()


@pytest.fixture
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def question(wiki_bundle) -> str:
    """Words of passage 1,234 of the generated corpus (made-up words: BM25 finds them)."""
    import pyarrow.parquet as pq

    text = pq.read_table(shard_paths(wiki_bundle["root"] / "wiki", ".parquet")[0], columns=["text"]).column("text")
    return "who " + " ".join(text[1234].as_py().split()[20:26])


def given(wiki_bundle, name: str) -> np.ndarray:
    return np.concatenate([np.load(p, allow_pickle=False) for p in shard_paths(wiki_bundle["given"][name], ".npy")])


def test_search_returns_the_exact_top_10_of_each_retriever(client, wiki_bundle, question):
    found = client.predict(question, 10, ["retribert", "dpr", "realm", "bm25"], "", api_name="/search")
    assert set(found) == {"retribert", "dpr", "realm", "bm25"}
    for name in ("retribert", "dpr", "realm"):
        vectors = given(wiki_bundle, name)
        encoded = load_retriever(name, device="cpu").encode_questions([question])[0]
        scores = vectors @ encoded
        best = np.lexsort((np.arange(len(scores)), -scores))[:10]
        assert [h["id"] for h in found[name]] == [str(i + 1) for i in best]  # wiki_dpr ids: row + 1
        assert [h["rank"] for h in found[name]] == list(range(1, 11))
        np.testing.assert_allclose([h["score"] for h in found[name]], scores[best], rtol=1e-4)
        assert all(h["title"] for h in found[name])
    assert len(found["bm25"]) == 10 and "1235" in [h["id"] for h in found["bm25"][:3]]  # its own passage


def test_the_app_opens_on_the_bundle_and_compares_answers_and_evaluates(client, wiki_bundle, question):
    html, _, timings = client.predict(question, 5, ["dpr", "bm25"], "", api_name="/compare")
    assert "Corpus: <b>wiki</b> · 20,000 passages" in html
    assert html.count("<span class='rank'>") == 10
    answers, _ = client.predict(question, "dpr", ["dpr", "realm"], 3, "", api_name="/answer")
    assert "class='answer" in answers or "answer-card" in answers
    # A QA set over the generated passages: a passage's own words as the question, its title as the answer.
    import pyarrow.parquet as pq

    table = pq.read_table(shard_paths(wiki_bundle["root"] / "wiki", ".parquet")[0], columns=["title", "text"])
    rows = [
        (" ".join(table.column("text")[i].as_py().split()[10:22]), table.column("title")[i].as_py())
        for i in range(0, 50, 10)
    ]
    qa = wiki_bundle["root"] / "qa.csv"
    qa.write_text("question,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in rows), encoding="utf-8")
    plot, summary, table_out = client.predict(["bm25", "dpr"], handle_file(str(qa)), api_name="/evaluate")
    assert "5 questions" in summary and len(table_out["data"]) == 5
