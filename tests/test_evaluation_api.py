"""The evaluation view's endpoint, /evaluate, on the real app (a subprocess with the fixture
checkpoints) through gradio_client: the bundled QA set, uploaded QA files, an uploaded corpus
without one, bad files, a model that cannot load, and a path the visitor did not upload."""

from __future__ import annotations

import json
from collections import defaultdict

import httpx
import pytest
from app_server import AppServer
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.evaluation import evaluate_retriever
from lfqa_demo.retrieval.corpus import load_bundled_questions

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(hub_cache, tmp_path_factory):
    app = AppServer(hub_cache, tmp_path_factory.mktemp("app-evaluation"))
    yield app
    app.stop()


@pytest.fixture
def client(server):
    return Client(server.url, verbose=False)


def curves(plot: dict) -> dict[str, list[tuple[int, float]]]:
    """retriever -> its (k, recall) points, from a LinePlot value."""
    assert plot["columns"] == ["k", "recall", "retriever"]
    out = defaultdict(list)
    for k, recall, retriever in plot["data"]:
        out[retriever].append((k, recall))
    return dict(out)


def test_the_bundled_qa_set(client):
    plot, summary, table = client.predict(["bm25", "dpr"], None, api_name="/evaluate")
    lines = curves(plot)
    assert set(lines) == {"BM25", "DPR"}
    for points in lines.values():
        assert [k for k, _ in points] == list(range(1, 21))
        recalls = [r for _, r in points]
        assert all(0 <= a <= b <= 1 for a, b in zip(recalls, recalls[1:]))
    # BM25 needs no model: the same figures computed here, in this process
    bm25 = evaluate_retriever(RetrievalEngine(retrievers={"bm25": "bm25"}), load_bundled_questions(), "bm25")
    assert dict(lines["BM25"])[5] == pytest.approx(bm25.recall_answer[4], abs=1e-4)
    assert "<th>MRR@20, answer</th>" in summary and "<th>MRR@20, gold passage</th>" in summary
    for figure in (bm25.recall_passage[4], bm25.mrr_answer, bm25.mrr_passage):
        assert f"<td>{figure:.3f}</td>" in summary
    assert "QA set: <b>bundled QA set</b> · 168 questions" in summary and "Corpus: <b>bundled</b>" in summary
    assert table["headers"] == ["#", "question", "gold answer", "BM25", "DPR"] and len(table["data"]) == 168
    ranks = [[21 if cell == "-" else int(cell) for cell in row[3:]] for row in table["data"]]
    gaps = [max(r) - min(r) for r in ranks]
    assert gaps == sorted(gaps, reverse=True)  # the widest disagreements first
    # Asked again, the evaluation comes from the cache (the same figures, at once).
    again = client.predict(["bm25", "dpr"], None, api_name="/evaluate")
    assert again[0] == plot and again[2] == table


def test_an_uploaded_qa_file_is_escaped_and_scored(client, tmp_path):
    qa = tmp_path / "my qa.csv"
    qa.write_text(
        "question,answer\n"
        "who popularized the name black hole,John Wheeler\n"
        "Why are most leaves green?,reflects green light | green light\n"
        f'"{EVIL} kiwi?","{EVIL}"\n',
        encoding="utf-8",
    )
    plot, summary, table = client.predict(["bm25"], handle_file(str(qa)), api_name="/evaluate")
    assert [r for _, r in curves(plot)["BM25"]][-1] == pytest.approx(2 / 3, abs=1e-4)
    assert "QA set: <b>my qa.csv</b> · 3 questions" in summary and "names no gold passages" in summary
    assert "<img" not in summary and len(table["data"]) == 3
    assert table["data"][0][1:4] == [f"{EVIL} kiwi?", EVIL, "-"]  # the miss: BM25 found nothing
    assert sorted(row[3] for row in table["data"][1:]) == ["1", "1"]


def test_an_uploaded_corpus_needs_a_qa_file(client, tmp_path):
    corpus = tmp_path / "notes.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"id": f"n{i}", "title": t, "text": x})
            for i, (t, x) in enumerate(
                [("Dates", "Dates grow on palm trees in hot deserts."), ("Figs", "Figs are soft purple fruit.")]
            )
        ),
        encoding="utf-8",
    )
    client.predict(handle_file(str(corpus)), "", "", api_name="/upload_corpus")
    with pytest.raises(AppError, match="The corpus in use, 'notes.jsonl', has no QA set: upload a QA file"):
        client.predict(["bm25"], None, api_name="/evaluate")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "where do dates grow", "answers": ["hot deserts"], "passage_id": "n0"}))
    plot, summary, table = client.predict(["bm25"], handle_file(str(qa)), api_name="/evaluate")
    assert "Corpus: <b>notes.jsonl</b> · 2 passages" in summary and "<th>R@1, gold passage</th>" in summary
    assert curves(plot)["BM25"][0] == (1, 1.0) and table["data"] == [["1", "where do dates grow", "hot deserts", "1"]]
    client.predict(api_name="/use_bundled_corpus")


def test_bad_qa_files_get_a_clear_message(client, server, tmp_path):
    cols = tmp_path / "cols.csv"
    cols.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(AppError, match=r"cols\.csv: no question column .* its columns are \['a', 'b'\]"):
        client.predict(["bm25"], handle_file(str(cols)), api_name="/evaluate")
    with pytest.raises(AppError, match="Choose at least one of the retrievers"):
        client.predict([], None, api_name="/evaluate")
    with pytest.raises(AppError, match="Choose retrievers from"):
        client.predict(["bm25", "nope"], None, api_name="/evaluate")
    assert server.alive()


def test_a_model_that_cannot_load_is_reported_and_the_others_are_scored(client):
    plot, summary, table = client.predict(["minilm", "bm25"], None, api_name="/evaluate")
    assert set(curves(plot)) == {"BM25"} and table["headers"] == ["#", "question", "gold answer", "BM25"]
    assert "MiniLM: unavailable: " in summary and "hf download sentence-transformers/all-MiniLM-L6-v2" in summary


def test_no_visitor_can_make_the_server_read_its_files(server):
    for path in ("/etc/passwd", "README.md"):
        event = httpx.post(
            f"{server.url}gradio_api/call/evaluate",
            json={"data": [["bm25"], {"path": path, "meta": {"_type": "gradio.FileData"}}]},
        ).json()["event_id"]
        stream = httpx.get(f"{server.url}gradio_api/call/evaluate/{event}", timeout=30).text
        assert "event: error" in stream and "root:" not in stream and "lfqa-demo" not in stream
