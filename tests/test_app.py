"""The real app, started in a subprocess, driven through gradio_client: every endpoint, with
good and bad input; the app must answer each clearly and keep serving."""

from __future__ import annotations

import json

import httpx
import pytest
from app_server import AppServer
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


@pytest.fixture(scope="module")
def server(hub_cache, tmp_path_factory):
    app = AppServer(hub_cache, tmp_path_factory.mktemp("app"))
    print(f"\nlaunch to first HTTP answer: {app.startup_seconds:.1f} s")
    yield app
    app.stop()


@pytest.fixture
def client(server):
    return Client(server.url, verbose=False)


def hits_per_column(html: str) -> list[int]:
    return [col.count("<span class='rank'>") for col in html.split("<section class='col")[1:]]


def test_compare_shows_one_column_per_retriever(client):
    html, agreement, timings = client.predict(
        "who was known as the king of swing",
        5,
        ["retribert", "dpr", "realm", "bm25"],
        "Benny Goodman",
        api_name="/compare",
    )
    for name in ("RetriBERT", "DPR", "REALM", "BM25"):
        assert f"<b>{name}</b>" in html
    assert hits_per_column(html) == [5, 5, 5, 5]
    assert len(agreement["data"]) == 6 and agreement["headers"][2] == "overlap@5"
    assert [row[0] for row in timings["data"]] == ["RetriBERT", "DPR", "REALM", "BM25"]
    assert "contains the answer" in html  # BM25 finds the gold passage of this bundled question


def test_a_model_that_cannot_load_shows_why_and_the_others_answer(client):
    html, _, timings = client.predict("why is the sky blue?", 3, ["minilm", "bm25"], "", api_name="/compare")
    assert (
        "Unavailable" in html
        and "HF_HUB_OFFLINE" in html
        and "hf download sentence-transformers/all-MiniLM-L6-v2" in html
    )
    assert hits_per_column(html)[1] == 3
    status = client.predict(api_name="/model_status")
    states = dict(status["data"])
    assert states["MiniLM encoders"].startswith("failed:")
    assert states["DPR encoders"].startswith("ready on cpu, ") or states["DPR encoders"] == "not loaded"


@pytest.mark.parametrize(
    "question,k,retrievers,message",
    [
        ("", 5, ["bm25"], "Type a question first"),
        ("x" * 20_000, 5, ["bm25"], "the limit is 2,000"),
        ("who?", 0, ["bm25"], "must be from 1 to 50; it was 0"),
        ("who?", 5, [], "Choose at least one of the retrievers"),
    ],
)
def test_compare_bad_input_gets_a_clear_message(client, server, question, k, retrievers, message):
    with pytest.raises(AppError, match=message):
        client.predict(question, k, retrievers, "", api_name="/compare")
    assert server.alive()


def test_uploads_html_escaping_and_k_past_the_corpus(client, tmp_path):
    corpus = tmp_path / "evil.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"title": "<b>Bold title</b>", "text": "<script>alert('x')</script> The normans were led by Rollo."},
                {"title": "Image", "text": "<img src=x onerror=alert(1)> normans again"},
                {"title": "Plain", "text": "nothing about the topic"},
            ]
        ),
        encoding="utf-8",
    )
    info = client.predict(handle_file(str(corpus)), "", "", api_name="/upload_corpus")
    assert "evil.jsonl: 3 passages" in info
    html, _, _ = client.predict("who led the normans?", 50, ["dpr", "bm25"], "", api_name="/compare")
    # k larger than the corpus: what exists (BM25: the two passages sharing a word with the question)
    assert hits_per_column(html) == [3, 2]
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;Bold title&lt;/b&gt;" in html
    answers, _ = client.predict("<img src=x onerror=alert(1)>?", "bm25", ["dpr", "realm"], 3, "", api_name="/answer")
    assert "<img" not in answers and "<script" not in answers
    assert client.predict(api_name="/use_bundled_corpus").startswith("**In use:** bundled: 552 passages")


def test_bad_uploads_leave_the_corpus_usable(client, server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{oops\n{"text": "fine too"}\nnot json\n', encoding="utf-8")
    with pytest.raises(AppError, match=r"line\(s\) 2, 4"):
        client.predict(handle_file(str(bad)), "", "", api_name="/upload_corpus")
    binary = tmp_path / "data.csv"
    binary.write_bytes(b"\x00\x01\x02\x03binary")
    with pytest.raises(AppError, match="binary"):
        client.predict(handle_file(str(binary)), "", "", api_name="/upload_corpus")
    nocol = tmp_path / "cols.csv"
    nocol.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(AppError, match="No text column"):
        client.predict(handle_file(str(nocol)), "", "", api_name="/upload_corpus")
    with pytest.raises(AppError, match="Choose a file"):
        client.predict(None, "", "", api_name="/upload_corpus")
    html, _, _ = client.predict("who led the normans?", 2, ["bm25"], "", api_name="/compare")
    assert hits_per_column(html) == [2] and server.alive()


def test_no_visitor_can_make_the_server_read_its_files(server):
    for path in ("/etc/passwd", str(server_root() / "README.md")):
        event = httpx.post(
            f"{server.url}gradio_api/call/upload_corpus",
            json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "", ""]},
        ).json()["event_id"]
        stream = httpx.get(f"{server.url}gradio_api/call/upload_corpus/{event}", timeout=30).text
        assert "event: error" in stream and "README" not in stream
    client = Client(server.url, verbose=False)
    for dataset in ("/etc", "../shared", "~"):
        with pytest.raises(AppError, match="not a hub dataset id"):
            client.predict(dataset, "", "train", 10, api_name="/load_hub_dataset")
    with pytest.raises(AppError, match="The dataset 'someone/missing' cannot be loaded: HF_HUB_OFFLINE is set"):
        client.predict("someone/missing", "", "train", 10, api_name="/load_hub_dataset")


def server_root():
    from app_server import ROOT

    return ROOT


def test_answer_extraction(client):
    html, timings = client.predict("who led the normans?", "bm25", ["dpr", "realm"], 3, "", api_name="/answer")
    assert "DPR reader" in html and "REALM reader" in html and "<mark class='answer'>" in html
    assert "confidence" in html and "span score" in html and "passage relevance" in html
    assert "the DPR reader" in timings and "the REALM reader" in timings and "searching" in timings
    pasted, _ = client.predict(
        "who led the normans?",
        "bm25",
        ["dpr"],
        3,
        "The Normans were led by Rollo.\n\nAnother paragraph.",
        api_name="/answer",
    )
    assert "<mark class='answer'>" in pasted
    with pytest.raises(AppError, match="Choose at least one of the readers"):
        client.predict("who?", "bm25", [], 3, "", api_name="/answer")
    with pytest.raises(AppError, match="Type a question"):
        client.predict("   ", "bm25", ["dpr"], 3, "", api_name="/answer")


def test_embedding_tab(client):
    pieces, vectors, heatmaps, points, download = client.predict(
        "who led the normans?\nwhy is the sky blue?",
        "The Normans were led by Rollo.",
        ["retribert", "dpr", "realm", "minilm"],
        "realm",
        api_name="/embed",
    )
    assert "normans" in pieces and "[CLS]" in pieces and "Unavailable" in pieces  # MiniLM is not cached
    assert {row[2] for row in vectors["data"]} == {"REALM (16-d)"}  # the map's model only: one dimension count
    assert [row[0] for row in vectors["data"]] == list(range(16))
    assert heatmaps.count("<table>") == 3
    kinds = {row[2] for row in points["data"]}
    assert kinds == {"corpus passage", "your question", "your passage"}
    exported = json.loads(open(download).read())
    assert set(exported["models"]) == {"retribert", "dpr", "realm"} and len(exported["models"]["dpr"]["vectors"]) == 3
    with pytest.raises(AppError, match="at least one question"):
        client.predict("  \n ", "", ["dpr"], "dpr", api_name="/embed")


def test_build_indexes_and_status(client):
    table = client.predict(["dpr", "realm", "minilm"], api_name="/build_indexes")
    rows = {r[0]: r for r in table["data"]}
    assert rows["DPR"][1] == "flat" and rows["DPR"][2] == "552 x 32" and rows["MiniLM"][5].startswith("failed")
    status = dict(client.predict(api_name="/model_status")["data"])
    from lfqa_demo.models.devices import automatic_dtype

    expected = str(automatic_dtype(__import__("torch").device("cpu"))).removeprefix("torch.")
    assert status["REALM encoders"] == f"ready on cpu, {expected}"  # the precision policy, as the app runs it


def test_the_page_is_sent_compressed_to_a_client_that_accepts_it(server, client):
    """Issue 21: the ~140 KB HTML page went uncompressed (Gradio's Brotli middleware compresses
    only paths with a text file's extension). Now "/" and /config are gzipped for a client that
    asks; the same bytes come to one that does not; the queue's event stream is never compressed."""
    plain = httpx.get(server.url, headers={"Accept-Encoding": "identity"})
    packed = httpx.get(server.url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content and packed.num_bytes_downloaded < len(plain.content) / 4
    config = httpx.get(server.url + "config", headers={"Accept-Encoding": "gzip"})
    assert config.headers["content-encoding"] == "gzip" and config.json()["components"]
    # A script still gets Brotli from Gradio (not gzip inside it): the page's own assets are left to it.
    script = next(u for u in packed.text.split('"') if u.endswith(".js") and "/assets/" in u)
    asset = httpx.get(
        server.url.rstrip("/") + script if script.startswith("/") else server.url + script,
        headers={"Accept-Encoding": "gzip, deflate, br"},
    )
    assert asset.status_code == 200 and asset.headers.get("content-encoding") == "br"
    # A comparison through the queue (server-sent events) still works for a compressing client.
    html, *_ = client.predict("who led the normans?", 2, ["bm25"], "", api_name="/compare")
    assert hits_per_column(html) == [2]
