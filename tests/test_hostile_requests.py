"""Hardening, round three (issue 17): what any visitor could still do to the real server.

Each test is the exact reproduction from the issue, against the real app in a subprocess:
an unbounded request body, one visitor filling the queue, a corpus fingerprint collision, and
the smaller defects (lone surrogates, odd row clicks, a server path in the timing table, an
upload that is gone after a restart)."""

from __future__ import annotations

import json
import os
import threading
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
    assert "one.jsonl: 3 passages" in client_of(server).predict(handle_file(str(one)), "", "", api_name="/upload_corpus")


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
