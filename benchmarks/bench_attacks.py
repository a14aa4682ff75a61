"""The visitor attacks of issue 17, measured against a real server: what each costs the server and
what another visitor meanwhile gets.

    .venv/bin/python benchmarks/bench_attacks.py                 # this checkout
    .venv/bin/python benchmarks/bench_attacks.py --root OLD_TREE # another checkout (a git worktree)

It starts the app (fixture checkpoints, offline) and, one after the other:
1. posts 30 MB of `{},` with one URL to /gradio_api/queue/join (the issue's reproduction), while
   another visitor asks for a BM25 comparison every 0.5 s: the HTTP status, the seconds the post
   took, the server's peak RSS growth and the slowest comparison meanwhile;
2. posts 66 evaluations of a 40-question QA file (four retrievers) from one visitor (one address
   behind the proxy, as X-Forwarded-For says; a new session each time), then at once
   asks for a BM25 comparison as another visitor: what the comparison got and how many of the 66
   were queued or refused.
Prints a table and writes benchmarks/.out/attacks.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from app_server import AppServer  # noqa: E402
from helpers import write_hub_cache  # noqa: E402  (the tests' offline fixture checkpoints)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def compare(url: str) -> tuple[str, float]:
    """A BM25 comparison as a fresh visitor: ("ok" or the error, seconds)."""
    started = time.monotonic()
    body = {"data": ["who led the normans?", 2, ["bm25"], ""]}
    try:
        r = httpx.post(f"{url}gradio_api/call/compare", json=body, timeout=120)
        event = r.json().get("event_id")
        if event is None:
            return r.text[:80], time.monotonic() - started
        stream = httpx.get(f"{url}gradio_api/call/compare/{event}", timeout=120).text
        outcome = "ok" if "event: complete" in stream else stream.strip().splitlines()[-1][:80]
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return outcome, time.monotonic() - started


def big_body(server: AppServer) -> dict:
    pid, base = server.process.pid, rss_mb(server.process.pid)
    peak, slowest, done = base, 0.0, threading.Event()

    def watch():
        nonlocal peak, slowest
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)

    def visitor():
        nonlocal slowest
        while not done.is_set():
            slowest = max(slowest, compare(server.url)[1])
            time.sleep(0.5)

    threads = [threading.Thread(target=watch), threading.Thread(target=visitor)]
    for t in threads:
        t.start()
    body = b'{"data":[[' + b"{}," * 10_000_000 + b'"http://x"]],"fn_index":0,"session_hash":"x"}'
    started = time.monotonic()
    try:
        status = httpx.post(
            f"{server.url}gradio_api/queue/join",
            content=body,
            headers={"content-type": "application/json"},
            timeout=300,
        ).status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    seconds = time.monotonic() - started
    time.sleep(3)  # let the server finish whatever the body started
    done.set()
    for t in threads:
        t.join()
    return {
        "status": status,
        "post_s": round(seconds, 2),
        "rss_growth_mb": round(peak - base),
        "slowest_other_compare_s": round(slowest, 2),
    }


def flood(server: AppServer, work: Path) -> dict:
    qa = work / "qa.jsonl"
    with open(qa, "w", encoding="utf-8") as f:
        for i in range(40):
            words = " ".join(f"w{(i * 31 + j) % 997}" for j in range(330))
            f.write(json.dumps({"question": f"who led the normans {i} {words}"[:2000], "answer": "Rollo"}) + "\n")
    r = httpx.post(f"{server.url}gradio_api/upload", files=[("files", ("qa.jsonl", qa.read_bytes()))], timeout=60)
    file = {"path": r.json()[0], "orig_name": "qa.jsonl", "meta": {"_type": "gradio.FileData"}}
    body = {"data": [["retribert", "dpr", "realm", "bm25"], file]}
    one_visitor = {"x-forwarded-for": "198.51.100.66"}  # behind the Space's proxy, as a remote visitor is
    events = [
        httpx.post(f"{server.url}gradio_api/call/evaluate", json=body, headers=one_visitor, timeout=60).json()
        for _ in range(66)
    ]
    outcome, seconds = compare(server.url)
    streams = [
        httpx.get(f"{server.url}gradio_api/call/evaluate/{e['event_id']}", timeout=600).text if "event_id" in e else ""
        for e in events
    ]
    return {
        "other_visitor_compare": outcome,
        "other_visitor_compare_s": round(seconds, 2),
        "evaluations_refused_at_once": sum("at a time per visitor" in s or "busy" in s for s in streams),
        "evaluations_run": sum("event: complete" in s for s in streams),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE.parent, help="the checkout whose app.py to start")
    args = parser.parse_args()
    work = HERE / ".out" / "attacks"
    work.mkdir(parents=True, exist_ok=True)
    hub = write_hub_cache(work / "hub")
    import app_server

    app_server.ROOT = args.root.resolve()
    server = AppServer(hub, work)
    try:
        compare(server.url)  # warm: BM25 index built, the first request's imports done
        results = {"30 MB body": big_body(server), "66 evaluations": flood(server, work)}
    finally:
        server.stop()
    for attack, figures in results.items():
        print(f"{attack}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    (HERE / ".out" / "attacks.json").write_text(json.dumps({"root": str(args.root), **results}, indent=1))


if __name__ == "__main__":
    main()
