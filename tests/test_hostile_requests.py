"""Hardening, round three (issue 17): what any visitor could still do to the real server.

Each test is the exact reproduction from the issue, against the real app in a subprocess:
an unbounded request body, one visitor filling the queue, a corpus fingerprint collision, and
the smaller defects (lone surrogates, odd row clicks, a server path in the timing table, an
upload that is gone after a restart)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from app_server import AppServer
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from test_hostile import raw_call, rss_mb, select_row

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(hub_cache, tmp_path_factory):
    app = AppServer(hub_cache, tmp_path_factory.mktemp("round3"))
    yield app
    app.stop()


def client_of(server: AppServer) -> Client:
    return Client(server.url, verbose=False)


def bm25_compare_seconds(server: AppServer) -> float:
    started = time.monotonic()
    html, _, _ = client_of(server).predict("who led the normans?", 2, ["bm25"], "", api_name="/compare")
    assert html.count("<span class='rank'>") == 2
    return time.monotonic() - started


# -- 1. unbounded request bodies ---------------------------------------------------------------------
def test_a_30_mb_body_is_refused_before_it_is_read(server):
    """The issue's reproduction: 30 MB of `{}` with one URL took +1.7 GB and stalled everyone 7 s."""
    body = b'{"data":[[' + b"{}," * 10_000_000 + b'"http://x"]],"fn_index":0,"session_hash":"x"}'
    before = rss_mb(server.process.pid)
    started = time.monotonic()
    try:
        r = httpx.post(
            f"{server.url}gradio_api/queue/join",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 413 and "too large" in r.json()["detail"]
    except httpx.WriteError:
        pass  # the server answered 413 and closed the connection before the client finished sending
    assert time.monotonic() - started < 10
    assert rss_mb(server.process.pid) < before + 50
    assert bm25_compare_seconds(server) < 10


def test_a_chunked_body_is_cut_off_at_the_cap(server):
    """No Content-Length: the stream is counted as it comes and refused once past the cap."""
    sent = 0

    def chunks():
        nonlocal sent
        yield b'{"data": ["'
        for _ in range(400):  # 40 MB if the server kept reading
            sent += 100_000
            yield b"a" * 100_000
        yield b'"], "fn_index": 0, "session_hash": "y"}'

    before = rss_mb(server.process.pid)
    try:
        r = httpx.post(f"{server.url}gradio_api/queue/join", content=chunks(), timeout=60)
        assert r.status_code == 413
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # refused mid-stream: the connection was closed
    assert sent < 10_000_000, f"the server read {sent:,} bytes"
    assert rss_mb(server.process.pid) < before + 50
    assert server.alive()


def test_an_upload_body_of_several_files_is_capped_as_a_whole(server, tmp_path):
    """Gradio capped each file (20 MB) but not their number: two files of 15 MB were 30 MB in."""
    files = [("files", (f"f{i}.jsonl", b'{"text": "x"}\n' * 1_100_000, "application/json")) for i in range(2)]
    try:
        r = httpx.post(f"{server.url}gradio_api/upload", files=files, timeout=60)
        assert r.status_code == 413
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass
    one = tmp_path / "one.jsonl"
    one.write_text("\n".join(json.dumps({"text": f"The normans, part {i}."}) for i in range(3)))
    assert "one.jsonl: 3 passages" in client_of(server).predict(
        handle_file(str(one)), "", "", api_name="/upload_corpus"
    )


@pytest.mark.parametrize("route", ["run", "api", "call", "call/v2"])
def test_an_api_named_upload_is_a_json_route(server, route):
    """Found by attacking this change: `/gradio_api/call/upload` ended with "/upload", so it got the
    upload cap (21 MiB of JSON: +1.1 GB each) and skipped the URL check."""
    body = b'{"data":[' + b"{}," * 700_000 + b'0],"fn_index":0}'
    r = httpx.post(f"{server.url}gradio_api/{route}/upload", content=body, timeout=60)
    assert r.status_code == 413
    remote = {"path": "https://example.com/x.jsonl", "meta": {"_type": "gradio.FileData"}, "orig_name": "x.jsonl"}
    r = httpx.post(f"{server.url}gradio_api/{route}/upload", json={"data": [remote, "", ""], "fn_index": 10})
    assert r.status_code == 400 and "uploaded through the page" in r.text


def test_the_largest_legitimate_body_still_passes(server):
    """50,000 pasted characters, none of them ASCII, JSON-escaped as \\uXXXX: ~300 KB."""
    pasted = ("Les Normands étaient menés par Rollon — 诺曼人由罗洛领导。 " * 2000)[:49_000]
    kind, outputs = raw_call(
        server, "answer", json.dumps({"data": ["who led the normans?", "bm25", ["dpr"], 2, pasted]})
    )
    assert kind == "complete", outputs
    assert "Read the 2 of" in outputs[0]


def test_log_lines_are_cut_short(server):
    """A 300 MB string used to become a 314 MB log line; a body under the cap must not log whole either."""
    text = "z" * 900_000
    kind, _ = raw_call(server, "compare", json.dumps({"data": [text, 3, ["bm25"], ""]}))
    assert kind == "error"
    longest = max((len(line) for line in Path(server.log.name).read_text(errors="replace").splitlines()), default=0)
    assert longest < 20_000


# -- 3. a silent wrong corpus across sessions ------------------------------------------------------
NOTES = ROOT / "assets" / "examples" / "notes.jsonl"


def colliding_rows() -> list[dict]:
    """The issue's upload: the first passage's title swallows the second passage, so the values
    joined by NUL are the same bytes as notes.jsonl's."""
    from lfqa_demo.retrieval.corpus import corpus_from_file

    real = corpus_from_file(NOTES)
    p0, p1 = real[0], real[1]
    first = {"id": p0.id, "title": "\0".join([p0.title, p0.text, p1.id, p1.title]), "text": p1.text}
    return [first] + [p.as_dict() for p in real.passages[2:]]


def test_a_corpus_whose_title_swallows_a_passage_has_its_own_fingerprint(tmp_path):
    from lfqa_demo.retrieval.corpus import build_corpus, corpus_from_file

    real = corpus_from_file(NOTES)
    forged = build_corpus("forged", colliding_rows())
    assert len(forged) == len(real) - 1
    assert forged.fingerprint != real.fingerprint


def test_a_forged_upload_does_not_become_another_visitors_corpus(server, tmp_path):
    forged = tmp_path / "notes.jsonl"
    forged.write_text("\n".join(json.dumps(r) for r in colliding_rows()) + "\n", encoding="utf-8")
    attacker, visitor = client_of(server), client_of(server)
    assert "notes.jsonl: 14 passages" in attacker.predict(handle_file(str(forged)), "", "", api_name="/upload_corpus")
    assert "notes.jsonl: 15 passages" in visitor.predict(handle_file(str(NOTES)), "", "", api_name="/upload_corpus")
    html, _, _ = visitor.predict("waggle dance", 3, ["bm25"], "", api_name="/compare")
    assert "\\x00" not in html and "\0" not in html and "&#0;" not in html


# -- the smaller defects ------------------------------------------------------------------------------
def upload_raw(server: AppServer, data: bytes, orig_name: str) -> tuple[str, object]:
    """Upload `data` through Gradio's upload route, then name it in /upload_corpus with any
    `orig_name` (a lone surrogate is possible in JSON, never in a real file name)."""
    r = httpx.post(f"{server.url}gradio_api/upload", files=[("files", ("f.jsonl", data, "application/json"))])
    path = r.json()[0]
    file = {"path": path, "orig_name": orig_name, "meta": {"_type": "gradio.FileData"}}
    body = json.dumps({"data": [file, "", ""]})  # json.dumps writes a lone surrogate as \\ud800
    return raw_call(server, "upload_corpus", body)


def test_lone_surrogates_in_an_uploaded_corpus_and_its_name(server, tmp_path):
    rows = '{"title": "Rollo \\ud800", "text": "The Normans were led by Rollo \\udc00 the Viking."}\n'
    kind, outputs = upload_raw(server, rows.encode(), "x\ud800.jsonl")
    assert kind == "complete", outputs  # was: "Internal error" (content_id), then a broken event stream
    assert "x\ufffd.jsonl: 1 passages" in outputs[1]
    corpus = tmp_path / "surrogates.jsonl"
    corpus.write_text(rows, encoding="utf-8")
    client = client_of(server)
    assert "surrogates.jsonl: 1 passages" in client.predict(handle_file(str(corpus)), "", "", api_name="/upload_corpus")
    html, _, _ = client.predict("rollo", 2, ["bm25"], "", api_name="/compare")
    assert "Rollo \ufffd" in html and "the Viking" in html


def test_lone_surrogates_in_a_qa_file_are_evaluated(server, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "who led the normans \\ud800?", "answer": "Rollo \\udfff"}\n', encoding="utf-8")
    plot, summary, table = client_of(server).predict(["bm25"], handle_file(str(qa)), api_name="/evaluate")
    assert "qa.jsonl" in summary and len(table["data"]) == 1  # was: "Internal error" (the QA fingerprint)


@pytest.mark.parametrize(
    "row", [["who led the normans\ud800?", "Rollo\udfff", "1"], ["BM25"], {"a": 1}, 7, None, ["\ud800"]]
)
def test_an_odd_clicked_row_gets_a_message(server, row):
    done, _ = select_row(server, row)  # no evaluation in this session: nothing to show, and no internal error
    assert not done["success"] and "press Evaluate, then click a row" in done["output"]["error"]


def test_the_timing_table_names_no_server_path(server, hub_cache):
    _, _, timings = client_of(server).predict("who?", 2, ["minilm", "bm25"], "", api_name="/compare")
    shown = json.dumps(timings)
    assert "hf download" in shown and str(hub_cache) not in shown


# -- 2. one visitor could fill the queue ---------------------------------------------------------------
def write_qa(path: Path, n: int = 500, chars: int = 2000) -> Path:
    """The issue's QA file: 500 questions of 2,000 characters (no evaluation of it is cached)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            question = f"who led the normans {i} " + " ".join(f"w{(i * 31 + j) % 997}" for j in range(chars // 6))
            f.write(json.dumps({"question": question[:chars], "answer": "Rollo"}) + "\n")
    return path


def uploaded(server: AppServer, path: Path) -> dict:
    r = httpx.post(f"{server.url}gradio_api/upload", files=[("files", (path.name, path.read_bytes()))], timeout=60)
    return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def start_call(server: AppServer, api: str, data: list, headers: dict | None = None) -> str | None:
    r = httpx.post(f"{server.url}gradio_api/call/{api}", json={"data": data}, headers=headers or {}, timeout=30)
    return r.json().get("event_id")


def call_outcome(server: AppServer, api: str, event_id: str | None) -> str:
    if event_id is None:
        return "refused at the door"
    return httpx.get(f"{server.url}gradio_api/call/{api}/{event_id}", timeout=300).text


def test_one_visitor_cannot_fill_the_queue(server, tmp_path):
    """66 uncached evaluations from one visitor filled the 64-slot queue: every other visitor's
    BM25 comparison got "Queue is full" for as long as the attacker topped it up."""
    qa = uploaded(server, write_qa(tmp_path / "qa.jsonl", n=40))  # ~10 s here with the tiny fixture models
    retrievers = ["retribert", "dpr", "realm", "bm25"]
    one_visitor = {"x-forwarded-for": "198.51.100.66"}  # as the Space's proxy says who it is
    events = [start_call(server, "evaluate", [retrievers, qa], one_visitor) for _ in range(66)]
    assert bm25_compare_seconds(server) < 10  # another visitor, at once, while the attacker's run
    outcomes = [call_outcome(server, "evaluate", e) for e in events]
    refused = [o for o in outcomes if "One evaluation at a time per visitor" in o]
    assert len(refused) >= 60, outcomes[:3]  # one runs; the rest are refused, not queued
    assert not any("Queue is full" in o for o in outcomes)


def test_the_evaluation_line_is_bounded_for_everyone(server, tmp_path):
    """Five visitors (five addresses, behind the proxy): one runs, three wait, the fifth is told
    the server is busy; and a session cannot have two."""
    qa = uploaded(server, write_qa(tmp_path / "qa2.jsonl", n=499))
    events = [
        start_call(server, "evaluate", [["retribert", "dpr", "realm"], qa], {"x-forwarded-for": f"203.0.113.{i}"})
        for i in range(5)
    ]
    outcomes = [call_outcome(server, "evaluate", e) for e in events]
    busy = [o for o in outcomes if "The server is busy" in o]
    assert len(busy) == 1 and sum("process_completed" in o or "event: complete" in o for o in outcomes) == 4


def test_an_evaluation_stops_at_its_time_budget(hub_cache, tmp_path):
    app = AppServer(hub_cache, tmp_path, {"LFQA_EVALUATION_BUDGET_S": "0.2"})
    try:
        qa = uploaded(app, write_qa(tmp_path / "qa.jsonl"))
        outcome = call_outcome(app, "evaluate", start_call(app, "evaluate", [["bm25", "realm"], qa]))
        assert "was stopped after" in outcome, outcome[-500:]
        assert app.alive()
    finally:
        app.stop()


def test_an_upload_lost_in_a_restart_is_said_to_be_gone(hub_cache, tmp_path):
    """After a restart, a session that had uploaded a corpus was answered from the bundled one."""
    corpus = tmp_path / "mine.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": f"The zorblax is purple, part {i}."}) for i in range(3)))
    first = AppServer(hub_cache, tmp_path)
    try:
        client = client_of(first)
        assert "mine.jsonl: 3 passages" in client.predict(handle_file(str(corpus)), "", "", api_name="/upload_corpus")
        session = client.session_hash
    finally:
        first.stop()
    again = AppServer(hub_cache, tmp_path)  # the same cache directory: the same Space after a restart
    try:
        client = client_of(again)
        client.session_hash = session  # the page stays open; its session goes on
        with pytest.raises(AppError, match=r"Your corpus 'mine.jsonl' is not loaded any more: the server restarted"):
            client.predict("zorblax", 2, ["bm25"], "", api_name="/compare")
        client.predict(api_name="/use_bundled_corpus")  # the visitor chooses the bundled corpus
        html, _, _ = client.predict("who led the normans?", 2, ["bm25"], "", api_name="/compare")
        assert "Corpus: <b>bundled</b>" in html
        fresh = client_of(again)  # any other session is not concerned
        html, _, _ = fresh.predict("who led the normans?", 2, ["bm25"], "", api_name="/compare")
        assert html.count("<span class='rank'>") == 2
    finally:
        again.stop()


def test_a_session_id_of_a_megabyte_is_not_kept(server, tmp_path):
    """Found by attacking this change: a client-chosen 1 MB session id was written to the sessions
    file on every upload (60 uploads: a 60 MB file, +1.5 GB)."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "The zorblax is purple."}) + "\n")
    r = httpx.post(f"{server.url}gradio_api/upload", files=[("files", ("c.jsonl", corpus.read_bytes()))], timeout=60)
    file = {"path": r.json()[0], "orig_name": "c.jsonl", "meta": {"_type": "gradio.FileData"}}
    config = httpx.get(f"{server.url}config", timeout=30).json()
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "upload_corpus")
    for i in range(3):
        body = {"data": [file, "", ""], "fn_index": fn, "session_hash": f"{i:05d}" + "t" * 200_000}
        assert httpx.post(f"{server.url}gradio_api/queue/join", json=body, timeout=30).status_code == 200
    time.sleep(2)
    state = Path(server.log.name).parent / "lfqa-cache" / "sessions.json"
    assert not state.exists() or state.stat().st_size < 10_000


@pytest.mark.parametrize("content", ["[" * 100_000, '{"uploads": [1, 2]}', '{"uploads": {"s": 5}}', "x" * 2_000_000])
def test_a_damaged_sessions_file_is_ignored(tmp_path, content):
    from lfqa_demo.engine import RetrievalEngine
    from lfqa_demo.retrieval.corpus import load_bundled_corpus
    from lfqa_demo.sessions import EngineRegistry

    state = tmp_path / "sessions.json"
    state.write_text(content)
    registry = EngineRegistry(load_bundled_corpus(), lambda c: RetrievalEngine(c, cache_dir=tmp_path), state_file=state)
    registry.check_not_lost("s")  # nothing lost, nothing raised (a name that is not text is dropped)


@pytest.fixture(scope="module")
def quick_heartbeat(hub_cache, tmp_path_factory):
    """A server that notices a closed page within half a second (Gradio's default: 15 s)."""
    app = AppServer(hub_cache, tmp_path_factory.mktemp("heartbeat"), {"GRADIO_HEARTBEAT_INTERVAL": "0.5"})
    yield app
    app.stop()


def test_an_evaluation_stops_when_its_page_is_closed(quick_heartbeat, tmp_path):
    """A page keeps its session alive with a heartbeat stream; when the page closes, Gradio runs the
    unload event, which cancels the session's place: the evaluation stops at its next batch
    instead of running on for nobody."""
    server = quick_heartbeat
    qa = uploaded(server, write_qa(tmp_path / "qa.jsonl"))
    config = httpx.get(f"{server.url}config", timeout=30).json()
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "evaluate")
    session = os.urandom(6).hex()
    with contextlib.ExitStack() as streams:
        heartbeat = streams.enter_context(
            httpx.stream("GET", f"{server.url}gradio_api/heartbeat/{session}", timeout=60)
        )
        beats = heartbeat.iter_lines()  # kept: a dropped iterator closes the stream
        next(beats)  # the page is open
        retrievers = ["retribert", "dpr", "realm", "bm25"]
        body = {"data": [retrievers, qa, None], "fn_index": fn, "session_hash": session}
        assert httpx.post(f"{server.url}gradio_api/queue/join", json=body, timeout=30).status_code == 200
        data = f"{server.url}gradio_api/queue/data"
        lines = streams.enter_context(httpx.stream("GET", data, params={"session_hash": session}, timeout=120))
        lines = lines.iter_lines()
        while "evaluating 500 questions" not in next(lines):  # the evaluation runs
            pass
        heartbeat.close()  # the page is closed
        closed = time.monotonic()
        done = next(json.loads(x[5:]) for x in lines if x.startswith("data:") and "process_completed" in x)
    assert time.monotonic() - closed < 30
    assert not done["success"] and "its page was closed" in done["output"]["error"]
