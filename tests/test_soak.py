"""Soak test: the real app under 20 concurrent clients for a few minutes (marked slow; run it with
`pytest -m slow tests/test_soak.py -s`, `LFQA_SOAK_SECONDS=30` for a quick try).

Every client is its own `gradio_client.Client` (its own session) in its own thread, mixing every
endpoint with inputs from the fixed lists below; three of them upload their own small corpus and
compare and answer on it. Before the soak each input's result is computed once, serially: during
the soak every result must equal it, after leaving out what legitimately varies (timings in ms,
the "build s" column, the download's temporary path: the file's content is compared instead).
There must be no error, and the server's resident memory at the end must stay within 10% of what
it was after the warm-up. The figures (calls, errors, latency per endpoint, memory) are printed
and written to tests/output/soak.json.

Only 127.0.0.1 is contacted; every call waits at most CALL_TIMEOUT_S, every client stops at the
deadline or after MAX_CALLS_PER_CLIENT calls, whichever comes first.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from app_server import AppServer
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

SOAK_SECONDS = float(os.environ.get("LFQA_SOAK_SECONDS", 180))
CLIENTS = 20
UPLOADING_CLIENTS = (
    3  # each with its own corpus: fewer than the uploads the app holds at once (lfqa_demo.sessions.MAX_UPLOADS)
)
CALL_TIMEOUT_S = 120
MAX_CALLS_PER_CLIENT = 10_000
RSS_TOLERANCE = 0.10
OUTPUT = Path(__file__).parent / "output"

# -- the fixed inputs ------------------------------------------------------------------------------
COMPARE = [
    ("who was known as the king of swing", 5, ["retribert", "dpr", "realm", "bm25"], "Benny Goodman"),
    ("why is the sky blue?", 3, ["bm25"], ""),
    ("who led the normans?", 10, ["dpr", "bm25"], "Rollo"),
    ("what causes the seasons on earth", 1, ["realm"], ""),
    (
        "how do vaccines work",
        20,
        ["retribert", "realm", "bm25", "minilm"],
        "immune",
    ),  # MiniLM is not cached: it reports why
]
ANSWER = [
    ("who painted the mona lisa", "bm25", ["dpr", "realm"], 5, ""),
    ("who led the normans?", "dpr", ["dpr"], 3, ""),
    ("when did the french revolution begin", "realm", ["realm"], 2, ""),
    (
        "who led the normans?",
        "bm25",
        ["dpr", "realm"],
        3,
        "The Normans were led by Rollo.\n\nAnother paragraph, about longships and sails.",
    ),
]
EMBED = [
    (
        "why is the sky blue?\nwho led the normans?",
        "The sky is blue because air scatters blue light more.",
        ["retribert", "dpr", "realm"],
        "dpr",
    ),
    ("how do vaccines work", "", ["realm", "minilm"], "realm"),
]
BUILD = [(["dpr", "realm"],), (["retribert", "dpr", "realm", "minilm"],)]
HUB = [("../etc", "", "train", 10)]  # refused before any network access: the same message every time

# Each uploading client's own corpus, and what it asks of it.
OWN_COMPARE = [
    ("what colour is the zorblax", 3, ["dpr", "bm25"], "purple"),
    ("which moon has geysers", 2, ["retribert", "realm", "bm25"], ""),
]
OWN_ANSWER = [("what colour is the zorblax", "bm25", ["dpr", "realm"], 2, "")]


def corpus_rows(i: int) -> list[dict]:
    return [
        {
            "title": f"Zorblax {i}",
            "text": f"The zorblax of orchard {i} is a purple fruit grown under glass on Mars; "
            f"it ripens in {10 + i} days.",
        },
        {
            "title": f"Moon {i}",
            "text": f"Moon number {i} of the ice giant has geysers that throw water {100 + i} kilometres high.",
        },
        {
            "title": f"Harbour {i}",
            "text": f"The harbour of town {i} freezes every winter, and the ferries stop for {3 + i} weeks.",
        },
        {
            "title": f"Clock {i}",
            "text": f"The clock tower of village {i} was rebuilt after a storm; its bell weighs {2 + i} tonnes.",
        },
        {
            "title": f"Garden {i}",
            "text": f"Garden {i} grows blue roses from seeds that a sailor brought home in a tin box.",
        },
    ]


# -- what may vary between two calls with the same input ------------------------------------------
TIMING_TEXT = re.compile(r"\d+(?:\.\d+)?\s?ms\b")  # "encode 7.1 ms", "read dpr 24 ms"
TIMING_COLUMNS = {"encode ms", "search ms", "build s"}
SWITCHER_ID = re.compile(r"cols-[0-9a-f]{8}")  # the phone column switcher's radio group, unique per page


def normalise(value):
    """A result with the timings and temporary file paths replaced by what does not vary."""
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict) and "headers" in value and "data" in value:  # a gr.Dataframe
        keep = [i for i, h in enumerate(value["headers"]) if h not in TIMING_COLUMNS]
        return {
            "headers": [value["headers"][i] for i in keep],
            "data": [[row[i] for i in keep] for row in value["data"]],
        }
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, str) and value.endswith(".json") and os.path.isfile(value):  # the embeddings download
        return {"file content": json.loads(Path(value).read_text(encoding="utf-8"))}
    if isinstance(value, str):
        return SWITCHER_ID.sub("cols-#", TIMING_TEXT.sub("# ms", value))
    return value


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Caller:
    """One client: calls with a timeout, the result normalised, or the app's error message."""

    def __init__(self, url: str, downloads: Path):
        downloads.mkdir(parents=True, exist_ok=True)
        self.client = Client(url, verbose=False, download_files=str(downloads), httpx_kwargs={"timeout": 60})

    def __call__(self, endpoint: str, args: tuple):
        try:
            return normalise(self.client.submit(*args, api_name=endpoint).result(timeout=CALL_TIMEOUT_S))
        except AppError as exc:  # an error the app means to show (e.g. a refused hub id): compared like a result
            return {"app error": str(exc)}


def bundled_ops() -> list[tuple[str, str, tuple]]:
    """(key, endpoint, args) for every input on the bundled corpus."""
    ops = [(f"compare{i}", "/compare", a) for i, a in enumerate(COMPARE)]
    ops += [(f"answer{i}", "/answer", a) for i, a in enumerate(ANSWER)]
    ops += [(f"embed{i}", "/embed", a) for i, a in enumerate(EMBED)]
    ops += [(f"build{i}", "/build_indexes", a) for i, a in enumerate(BUILD)]
    ops += [(f"hub{i}", "/load_hub_dataset", a) for i, a in enumerate(HUB)]
    ops += [("status", "/model_status", ()), ("bundled", "/use_bundled_corpus", ())]
    return ops


def own_ops(corpus: int) -> list[tuple[str, str, tuple]]:
    ops = [(f"own{corpus}-compare{i}", "/compare", a) for i, a in enumerate(OWN_COMPARE)]
    ops += [(f"own{corpus}-answer{i}", "/answer", a) for i, a in enumerate(OWN_ANSWER)]
    return ops


def upload_op(corpus: int, path: Path) -> tuple[str, str, tuple]:
    return f"own{corpus}-upload", "/upload_corpus", (handle_file(str(path)), "", "")


@pytest.fixture(scope="module")
def server(hub_cache, tmp_path_factory):
    work = tmp_path_factory.mktemp("app-soak")
    (work / "tmp").mkdir()
    # TMPDIR: where the app's own temporary files go (the embeddings download), so they can be counted.
    app = AppServer(hub_cache, work, extra_env={"TMPDIR": str(work / "tmp")})
    app.work = work
    yield app
    app.stop()


@pytest.mark.slow
def test_soak(server, tmp_path):
    corpora = []
    for i in range(UPLOADING_CLIENTS):
        path = tmp_path / f"soak-corpus-{i}.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in corpus_rows(i)) + "\n", encoding="utf-8")
        corpora.append(path)
    pid = server.process.pid

    # Warm-up: every endpoint once (models load, indexes build, each corpus registered and indexed).
    warm = Caller(server.url, tmp_path / "dl-warm")
    ops = bundled_ops()
    for endpoint in dict.fromkeys(op[1] for op in ops):
        key, _, args = next(op for op in ops if op[1] == endpoint)
        warm(endpoint, args)
    for i, path in enumerate(corpora):
        warm(*upload_op(i, path)[1:])
        for _, endpoint, args in own_ops(i):
            warm(endpoint, args)
    warm("/use_bundled_corpus", ())
    rss_warm = rss_kb(pid)

    # The expected results: each input once, serially.
    expected = {}
    serial = Caller(server.url, tmp_path / "dl-serial")
    for key, endpoint, args in ops:
        expected[key] = serial(endpoint, args)
    for i, path in enumerate(corpora):
        own = Caller(server.url, tmp_path / f"dl-serial-{i}")
        key, endpoint, args = upload_op(i, path)
        expected[key] = own(endpoint, args)
        assert f"soak-corpus-{i}.jsonl: 5 passages" in expected[key]
        for key, endpoint, args in own_ops(i):
            expected[key] = own(endpoint, args)
    for key, value in expected.items():
        assert "app error" not in value or key.startswith("hub"), (key, value)
    rss_serial = rss_kb(pid)

    # The soak.
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    mismatches: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SOAK_SECONDS
    rss_samples: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample_rss():
        start = time.monotonic()
        while not sampling.wait(5):
            rss_samples.append((round(time.monotonic() - start), rss_kb(pid)))

    def record(key: str, endpoint: str, started: float, result=None, error: BaseException | None = None):
        with lock:
            latencies[endpoint].append(time.monotonic() - started)
            if error is not None:
                errors.append(f"{endpoint} {key}: {type(error).__name__}: {error}"[:500])
            elif result != expected[key] and isinstance(result, dict) and "app error" in result:
                errors.append(f"{endpoint} {key}: the app answered with an error: {result['app error']}"[:500])
            elif result != expected[key]:
                mismatches.append(
                    f"{endpoint} {key}: got {json.dumps(result)[:300]}... expected {json.dumps(expected[key])[:300]}..."
                )

    def client_loop(n: int):
        rng = random.Random(n)
        try:
            caller = Caller(server.url, tmp_path / f"dl-{n}")
        except Exception as exc:  # noqa: BLE001 - reported, not raised, from a thread
            with lock:
                errors.append(f"client {n} could not connect: {exc!r}")
            return
        corpus = n if n < UPLOADING_CLIENTS else None
        on_own = False
        for _ in range(MAX_CALLS_PER_CLIENT):
            if time.monotonic() >= deadline:
                break
            if corpus is None:
                choice = [rng.choice(ops)]
            elif not on_own:  # on the bundled corpus: a bundled input, or (often) its own upload
                choice = (
                    [upload_op(corpus, corpora[corpus])]
                    if rng.random() < 0.4
                    else [rng.choice([op for op in ops if op[1] != "/use_bundled_corpus"])]
                )
            else:  # on its own corpus: its inputs, a re-upload, or back to the bundled corpus
                r = rng.random()
                if r < 0.1:
                    choice = [("bundled", "/use_bundled_corpus", ())]
                elif r < 0.2:
                    choice = [upload_op(corpus, corpora[corpus])]
                else:
                    choice = [rng.choice(own_ops(corpus))]
            for key, endpoint, args in choice:
                started = time.monotonic()
                try:
                    result = caller(endpoint, args)
                except Exception as exc:  # noqa: BLE001 - counted; the soak goes on
                    record(key, endpoint, started, error=exc)
                    continue
                record(key, endpoint, started, result=result)
                if endpoint == "/upload_corpus":
                    on_own = True
                elif endpoint == "/use_bundled_corpus":
                    on_own = False

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + CALL_TIMEOUT_S + 30)
    elapsed = time.monotonic() - started
    sampling.set()
    sampler.join(timeout=10)
    stuck = sum(t.is_alive() for t in threads)
    alive = server.alive()
    rss_end = rss_kb(pid)
    leftover_tmp = Counter(
        re.sub(r"[^-]+$", "*", p.name) if "-" in p.name else p.name[:3] + "*" for p in (server.work / "tmp").iterdir()
    )

    # The figures.
    calls = {e: len(v) for e, v in sorted(latencies.items())}
    report = {
        "seconds": round(elapsed, 1),
        "clients": CLIENTS,
        "uploading clients": UPLOADING_CLIENTS,
        "calls": sum(calls.values()),
        "calls per second": round(sum(calls.values()) / elapsed, 2),
        "errors": len(errors),
        "mismatches": len(mismatches),
        "stuck clients": stuck,
        "endpoints": {
            e: {
                "calls": calls[e],
                "p50 ms": round(1000 * float(np.percentile(v, 50))),
                "p95 ms": round(1000 * float(np.percentile(v, 95))),
                "max ms": round(1000 * max(v)),
            }
            for e, v in sorted(latencies.items())
        },
        "rss MB": {
            "after warm-up": round(rss_warm / 1024, 1),
            "after the serial pass": round(rss_serial / 1024, 1),
            "end": round(rss_end / 1024, 1),
            "max during the soak": round(max([s for _, s in rss_samples] + [rss_end]) / 1024, 1),
        },
        "rss MB every 5 s": [round(s / 1024, 1) for _, s in rss_samples],
        "app temporary entries left": dict(leftover_tmp),
        "first errors": errors[:10],
        "first mismatches": mismatches[:10],
    }
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "soak.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(
        f"\nsoak: {CLIENTS} clients, {elapsed:.0f} s, {report['calls']} calls ({report['calls per second']}/s), "
        f"{len(errors)} errors, {len(mismatches)} results differing from the serial ones, {stuck} clients stuck"
    )
    print(f"{'endpoint':<22}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for e, r in report["endpoints"].items():
        print(f"{e:<22}{r['calls']:>7}{r['p50 ms']:>9}{r['p95 ms']:>9}{r['max ms']:>9}")
    print("RSS MB:", report["rss MB"], "every 5 s:", report["rss MB every 5 s"])
    print(f"temporary entries the app left in its TMPDIR: {dict(leftover_tmp)}")
    for line in errors[:10] + mismatches[:10]:
        print("  ", line)

    assert alive and stuck == 0
    assert set(calls) == {op[1] for op in ops} | {"/upload_corpus"}, calls  # every endpoint was exercised
    assert errors == [], errors[:10]
    assert mismatches == [], mismatches[:10]
    assert abs(rss_end - rss_warm) <= RSS_TOLERANCE * rss_warm, report["rss MB"]
