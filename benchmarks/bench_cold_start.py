"""The first minute of the app, as a visitor meets it: `python app.py` started cold, the page,
then one "Compare" click on all four retrievers, timed output by output.

Scenarios (each in a fresh app process with a fresh index cache, so nothing carries over):
  (a) no bundle, no warm-up: the click itself loads the models and embeds the corpus;
  (b) warm-up (LFQA_WARMUP=1): the app loads models and builds the indexes from launch;
  (c) prebuilt bundle (LFQA_INDEXES=DIR, made beforehand by `python -m lfqa_demo index
      --corpus bundled --out DIR` with the same checkpoints and precision), no warm-up.
Each runs in the app's default precision and/or fp32 (LFQA_DTYPE=float32). The six default
checkpoints load by repo id from an offline hub cache laid out in the real format, holding the
full-size random-weight checkpoints of full_size_checkpoints.py (or, with --fixtures, the
tiny test fixtures: a quick check of the script itself, not of the app's speed).

Per scenario it prints a timeline (launch -> page; click; each column ready; all four) and
the latency of /status, polled every 0.5 s from a separate client while it runs (the
page itself polls it every 3 s); at the end a table and the targets with PASS/FAIL:
  click -> first column (BM25) <= 1 s, every scenario;
  (c) launch -> all four columns for a first click <= 15 s;
  (b) /status p95 <= 200 ms while indexes build.

    .venv/bin/python benchmarks/bench_cold_start.py [--scenarios a,b,c] [--dtypes default,float32]
        [--root /tmp/lfqa-full-size] [--timeout 1800] [--json out.json] [--fixtures]

Full size, both precisions, takes tens of minutes of both cores (fp32 embedding is ~4x slower).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RETRIEVERS = ["retribert", "dpr", "realm", "bm25"]
SCENARIOS = {
    "a": "no bundle, no warm-up",
    "b": "warm-up",
    "c": "prebuilt bundle (LFQA_INDEXES)",
}
# Any 40-hex string works as a snapshot revision; the index cache key includes it, so the bundle
# built for (c) and the app must see the same hub cache (they do: one per run).
REVISION = "c01d57a2700000000000000000000000000000b0"
# Environment the app must not inherit from the caller: each scenario sets what it needs.
CONTROLLED_ENV = (
    "LFQA_DTYPE",
    "LFQA_WARMUP",
    "LFQA_INDEXES",
    "LFQA_CACHE",
    "LFQA_REQUEST_BUDGET_S",
    "GRADIO_MCP_SERVER",
    "HF_HOME",
    "SPACE_ID",  # would turn the warm-up on by default
    "SPACES_ZERO_GPU",
)
TARGET_CLICK_FIRST_S = 1.0
TARGET_BUNDLE_ALL_S = 15.0
TARGET_STATUS_P95_MS = 200.0
OUTPUT_POLL_S = 0.02  # how often the job's streamed outputs are looked at: the timestamps' resolution
# /status states (lfqa_demo.status.Phase values) of settled models and indexes; any other
# (loading, indexing, queued, waiting) means work is still under way.
SETTLED = {"ready", "not loaded", "failed", "cancelled"}


# -- the machine --------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU model and the flags that decide the precision policy and matmul speed."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": {f: f in flags for f in wanted},
        "torch": metadata.version("torch"),  # not imported here: this process should stay light
        "gradio": metadata.version("gradio"),
        "python": sys.version.split()[0],
    }


# -- checkpoints as an offline hub cache ----------------------------------------------------------
def full_size_hub_cache(root: Path, cache: Path) -> Path:
    """The full-size random-weight checkpoints (written under `root` on first use, several
    minutes) laid out as the hub cache: models--ORG--NAME/{refs/main, snapshots/REV/}. The
    snapshot files are symlinks to `root` (the real cache symlinks into blobs/ too), so the
    2.6 GB are never copied."""
    from full_size_checkpoints import REPOS, checkpoint_dir, write_all  # imports torch: only here

    write_all(root)
    for key, repo_id in REPOS.items():
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / REVISION
        snapshot.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(REVISION)
        for source in checkpoint_dir(root, key).iterdir():
            link = snapshot / source.name
            if not link.exists():
                link.symlink_to(source.resolve())
    return cache


def fixture_hub_cache(cache: Path) -> Path:
    """The tiny test fixtures in the same layout (tests/helpers.py)."""
    from tests.helpers import write_hub_cache

    return write_hub_cache(cache)


def bundled_question(question_id: str) -> tuple[str, str]:
    """(question, first gold answer) of one entry of assets/corpus/questions.jsonl."""
    for line in (ROOT / "assets" / "corpus" / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line) if line.strip() else None
        if item and item["id"] == question_id:
            return item["question"], item["answers"][0]
    raise SystemExit(f"no question {question_id!r} in assets/corpus/questions.jsonl")


# -- results ----------------------------------------------------------------------------------------
@dataclass
class ClickResult:
    """One visitor's click; every time is in seconds since launch (Popen)."""

    label: str
    click_s: float | None = None
    first_output_s: float | None = None
    first_column_s: float | None = None
    first_columns: list[str] = field(default_factory=list)  # the columns of the first output with any ok
    all_columns_s: float | None = None
    column_ready_s: dict[str, float] = field(default_factory=dict)
    outputs: int = 0
    final_status: dict[str, str] = field(default_factory=dict)  # each column's status in the last output
    error: str | None = None

    def since_click(self, at: float | None) -> float | None:
        return None if at is None or self.click_s is None else at - self.click_s


@dataclass
class StatusCall:
    at_s: float  # since launch
    ms: float
    busy: bool  # some model or index was still loading/building, by the answer itself
    error: str | None = None


@dataclass
class ScenarioResult:
    scenario: str
    dtype: str
    app_dtype: str | None = None  # what the app reported using ("bfloat16", "float32")
    bundle_build_s: float | None = None
    page_s: float | None = None
    clicks: list[ClickResult] = field(default_factory=list)
    status_calls: list[StatusCall] = field(default_factory=list)
    final_model_status: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log_tail: str | None = None

    @property
    def first_click(self) -> ClickResult | None:
        return self.clicks[0] if self.clicks else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); with few calls the p95 is close to the max."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def status_stats(calls: list[StatusCall]) -> dict[str, Any]:
    ms = [c.ms for c in calls if c.error is None]
    if not ms:
        return {"calls": len(calls), "errors": len(calls)}
    return {
        "calls": len(calls),
        "errors": len(calls) - len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 95),
        "max_ms": max(ms),
    }


# -- talking to the app ------------------------------------------------------------------------------
def table_rows(value: Any) -> list[list[Any]]:
    """The rows of a Dataframe output as gradio_client hands it over ({"headers", "data"} or a
    pandas frame, depending on versions)."""
    if isinstance(value, dict):
        return [list(r) for r in value.get("data") or []]
    if hasattr(value, "values"):
        return [list(r) for r in value.values.tolist()]
    return [list(r) for r in value or []]


def column_statuses(timings: Any) -> dict[str, str]:
    """retriever -> status from /compare's timings table (ui/render.timing_rows: retriever label,
    encode ms, search ms, passages, status; status is "ok" once the column has results, else
    "pending: ..." / "indexing ..." or an error). The labels (RetriBERT, DPR, REALM, BM25) are the
    retriever names in other case; not imported from ui/render, which would pull torch in here."""
    return {str(row[0]).strip().lower(): str(row[-1]) for row in table_rows(timings) if row}


def observe(result: ClickResult, outputs: Any, now: float) -> bool:
    """Record one streamed /compare output (results_html, agreement, timings) received at `now`;
    True once all four columns are filled."""
    statuses = column_statuses(outputs[2])
    result.final_status = statuses
    result.outputs += 1
    if result.first_output_s is None:
        result.first_output_s = now
    ok = [n for n in RETRIEVERS if statuses.get(n) == "ok"]
    for name in ok:
        result.column_ready_s.setdefault(name, now)
    if ok and result.first_column_s is None:
        result.first_column_s, result.first_columns = now, ok
    if len(ok) == len(RETRIEVERS) and result.all_columns_s is None:
        result.all_columns_s = now
    return result.all_columns_s is not None


def unfinished(result: ClickResult) -> str:
    missing = {n: s for n, s in result.final_status.items() if s != "ok"}
    return f"the request ended without all four columns: {missing or 'no output'}"


def click_gradio_client(url: str, question: str, gold: str, t0: float, deadline: float, result: ClickResult) -> None:
    """One visitor through gradio_client: connect, submit /compare, stamp each streamed output.

    Outputs are read by polling `job.outputs()` every OUTPUT_POLL_S rather than iterating the job:
    gradio_client's iterator spins on its lock with a 1 ms sleep, which on 2 cores competes with
    the app being measured."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        result.click_s = time.monotonic() - t0
        job = client.submit(question, 5, RETRIEVERS, gold, api_name="/compare")
        seen = 0
        while True:
            done = job.done()  # read before the outputs, so none is missed after the last look
            outputs = job.outputs()
            now = time.monotonic() - t0
            finished = any([observe(result, out, now) for out in outputs[seen:]])
            seen = len(outputs)
            if finished:
                return
            if done:
                try:
                    job.result(timeout=5)
                except Exception as exc:  # the app's error (a toast), as the visitor would see it
                    result.error = f"{type(exc).__name__}: {exc}"
                else:
                    result.error = unfinished(result)
                return
            if time.monotonic() > deadline:
                result.error = "timed out waiting for all four columns"
                job.cancel()
                return
            time.sleep(OUTPUT_POLL_S)
    finally:
        client.close()


def sse_call(http: httpx.Client, api_name: str, data: list[Any]) -> Iterator[tuple[str, Any]]:
    """Call a queued endpoint through Gradio's HTTP API (POST /gradio_api/call/NAME, then its
    event stream) and yield (event, data) as each arrives: "generating" for each step of a
    generator, "complete" with the last, or "error"."""
    event_id = http.post(f"gradio_api/call/{api_name}", json={"data": data}).json()["event_id"]
    with http.stream("GET", f"gradio_api/call/{api_name}/{event_id}") as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event not in (None, "heartbeat"):
                yield event, json.loads(line[5:])
                if event in ("complete", "error"):
                    return


def click_http(url: str, question: str, gold: str, t0: float, deadline: float, result: ClickResult) -> None:
    """One visitor through Gradio's plain HTTP API, as light a client as a browser's: outputs
    are stamped as their server-sent events arrive (no polling, no client threads)."""
    # The read timeout outlives Gradio's heartbeats; the deadline is checked at each event.
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=120)) as http:
        result.click_s = time.monotonic() - t0
        for event, data in sse_call(http, "compare", [question, 5, RETRIEVERS, gold]):
            now = time.monotonic() - t0
            if event == "error":
                result.error = f"the app answered an error: {data}"
                return
            if data and observe(result, data, now):
                return
            if event == "complete":
                result.error = unfinished(result)
                return
            if time.monotonic() > deadline:
                result.error = "timed out waiting for all four columns"
                return  # leaving the stream cancels the request
        result.error = unfinished(result)


CLICKERS = {"gradio": click_gradio_client, "http": click_http}


def click_and_watch(
    client: str, url: str, question: str, gold: str, t0: float, deadline: float, result: ClickResult
) -> None:
    try:
        CLICKERS[client](url, question, gold, t0, deadline, result)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"


def model_status(http: httpx.Client) -> dict[str, dict]:
    """/status's JSON as {"retriever dpr": {"state", "done", ...}, ..., "index dpr": {...}}."""
    for event, data in sse_call(http, "status", []):
        if event == "error":
            raise RuntimeError(f"/status answered an error: {data}")
        if event == "complete":
            status = data[0]
            return {**status["models"], **{f"index {name}": s for name, s in status["indexes"].items()}}
    raise RuntimeError("/status ended without an answer")


class StatusPoller(threading.Thread):
    """A separate client calling /status every `interval` seconds (the next call starts at
    once when one took longer), until stopped. Plain HTTP with keep-alive, as the page's own
    timer does through its queue connection: gradio_client would add ~70 ms of its own per
    call here (measured on this machine), a third of the 200 ms target."""

    def __init__(self, url: str, t0: float, interval: float, calls: list[StatusCall]):
        super().__init__(name="model-status-poller", daemon=True)
        self.url, self.t0, self.interval, self.calls = url, t0, interval, calls
        self.stopped = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stopped.is_set():
                start = time.monotonic()
                try:
                    states = model_status(http)
                    busy = any(s["state"] not in SETTLED for s in states.values())
                    self.calls.append(StatusCall(start - self.t0, 1000 * (time.monotonic() - start), busy))
                except Exception as exc:
                    ms = 1000 * (time.monotonic() - start)
                    self.calls.append(StatusCall(start - self.t0, ms, False, f"{type(exc).__name__}: {exc}"))
                next_at = max(next_at + self.interval, time.monotonic())
                self.stopped.wait(next_at - time.monotonic())


def model_status_once(url: str) -> dict[str, str]:
    """Each model's and index's state at the end, as "ready", "failed: why"..."""
    with httpx.Client(base_url=url, timeout=30) as http:
        states = model_status(http)
    return {key: s["state"] + (f": {s['note']}" if s.get("note") else "") for key, s in states.items()}


def app_dtype(url: str) -> str | None:
    """The precision the app reports for its loaded models (/status's "dtype")."""
    with httpx.Client(base_url=url, timeout=30) as http:
        states = model_status(http)
    return next((s["dtype"] for s in states.values() if s.get("dtype")), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# -- one scenario ----------------------------------------------------------------------------------
@dataclass
class Settings:
    hub_cache: Path
    work: Path
    question: str
    gold: str
    timeout: float
    click_delay: float
    late_click: float
    poll_interval: float
    client: str


def base_env(settings: Settings, dtype: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED_ENV}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(settings.hub_cache), GRADIO_ANALYTICS_ENABLED="False")
    if dtype != "default":
        env["LFQA_DTYPE"] = dtype
    return env


def build_bundle(settings: Settings, dtype: str, out: Path, result: ScenarioResult) -> bool:
    """`python -m lfqa_demo index --corpus bundled --out DIR` with the app's checkpoints and
    precision (the bundle's keys name both), timed. Its own index cache, so the app cannot find
    the indexes anywhere but in the bundle."""
    env = {**base_env(settings, dtype), "LFQA_CACHE": str(out.parent / "bundle-build-cache")}
    log = out.parent / "bundle-build.log"
    print(f"  building the bundle in {out} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    with open(log, "w") as handle:
        try:
            returncode = subprocess.run(
                [sys.executable, "-m", "lfqa_demo", "index", "--corpus", "bundled", "--out", str(out)],
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=settings.timeout,
            ).returncode
        except subprocess.TimeoutExpired:  # subprocess.run has killed it
            returncode = f"timed out after {settings.timeout:g} s"
    result.bundle_build_s = time.monotonic() - start
    if returncode:
        result.error = f"building the bundle failed (exit {returncode})"
        result.log_tail = log_tail(log)
        return False
    return True


def run_scenario(scenario: str, dtype: str, settings: Settings) -> ScenarioResult:
    result = ScenarioResult(scenario, dtype)
    work = settings.work / f"{scenario}-{dtype}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = base_env(settings, dtype)
    port = free_port()
    env.update(
        LFQA_CACHE=str(work / "index-cache"),  # fresh: (a) really embeds, (c) can only use the bundle
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_TEMP_DIR=str(work / "gradio-tmp"),
        # One click may wait for every column (the default 60 s would hand slow builds to the
        # background and end the request); the scenario's own timeout bounds it instead.
        LFQA_REQUEST_BUDGET_S=str(int(settings.timeout)),
        LFQA_WARMUP="1" if scenario == "b" else "0",
    )
    if scenario == "c":
        bundle = work / "bundle"
        if not build_bundle(settings, dtype, bundle, result):
            return result
        env["LFQA_INDEXES"] = str(bundle)

    url = f"http://127.0.0.1:{port}/"
    app_log = work / "app.log"
    print(f"  launching the app ({SCENARIOS[scenario]}, {dtype}) ...", file=sys.stderr, flush=True)
    with open(app_log, "w") as handle:
        t0 = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    deadline = t0 + settings.timeout
    poller: StatusPoller | None = None
    try:
        with httpx.Client(timeout=2) as http:
            while result.page_s is None:
                if process.poll() is not None:
                    raise RuntimeError(f"the app exited with {process.returncode} before the page answered")
                if time.monotonic() > deadline:
                    raise RuntimeError("the page did not answer before the timeout")
                try:
                    if http.get(url).status_code == 200:
                        result.page_s = time.monotonic() - t0
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        page_at = t0 + result.page_s
        poller = StatusPoller(url, t0, settings.poll_interval, result.status_calls)
        poller.start()
        threads = []
        if scenario == "b" and settings.late_click > 0:
            late = ClickResult(f"click {settings.late_click:g} s after the page")
            result.clicks.append(late)

            def late_visitor() -> None:
                time.sleep(max(0.0, page_at + settings.late_click - time.monotonic()))
                click_and_watch(settings.client, url, settings.question, settings.gold, t0, deadline, late)

            threads.append(threading.Thread(target=late_visitor, name="late-visitor", daemon=True))
            threads[-1].start()
        first = ClickResult(f"click {settings.click_delay:g} s after the page")
        result.clicks.insert(0, first)
        time.sleep(max(0.0, page_at + settings.click_delay - time.monotonic()))
        click_and_watch(settings.client, url, settings.question, settings.gold, t0, deadline, first)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 10)
        poller.stopped.set()
        poller.join(10)
        try:
            result.final_model_status = model_status_once(url)
        except Exception as exc:
            result.final_model_status = {"error": f"{type(exc).__name__}: {exc}"}
        result.app_dtype = app_dtype(url) if "error" not in result.final_model_status else None
        errors = [f"{c.label}: {c.error}" for c in result.clicks if c.error]
        if errors:
            result.error = "; ".join(errors)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if poller is not None:
            poller.stopped.set()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if result.error:
        result.log_tail = log_tail(app_log)
    return result


# -- reporting ---------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def busy_calls(result: ScenarioResult) -> list[StatusCall]:
    """The /status calls made while models loaded or indexes built (by the answers)."""
    return [c for c in result.status_calls if c.busy]


def print_timeline(result: ScenarioResult) -> None:
    title = f"({result.scenario}) {SCENARIOS[result.scenario]}, precision {result.dtype}"
    if result.app_dtype:
        title += f" (the app ran {result.app_dtype})"
    print(f"\n{title}")
    if result.bundle_build_s is not None:
        print(f"  bundle built beforehand in {result.bundle_build_s:.1f} s (not counted below)")
    events: list[tuple[float, str]] = []
    if result.page_s is not None:
        events.append((result.page_s, "page answers HTTP 200"))
    for click in result.clicks:
        if click.click_s is not None:
            events.append((click.click_s, f"{click.label}: clicked"))
        if click.first_output_s is not None:
            events.append((click.first_output_s, f"{click.label}: first output"))
        for name, at in click.column_ready_s.items():
            events.append((at, f"{click.label}: {name} column filled (click +{fmt(click.since_click(at))} s)"))
        if click.all_columns_s is not None:
            events.append(
                (
                    click.all_columns_s,
                    f"{click.label}: all four columns (click +{fmt(click.since_click(click.all_columns_s))} s)",
                )
            )
    for at, what in sorted(events, key=lambda e: e[0]):
        print(f"  {at:8.2f} s  {what}")
    stats = status_stats(result.status_calls)
    busy = status_stats(busy_calls(result))
    if stats.get("p50_ms") is not None:
        line = (
            f"  /status: {stats['calls']} calls, p50 {stats['p50_ms']:.0f} / p95 {stats['p95_ms']:.0f} / "
            f"max {stats['max_ms']:.0f} ms"
        )
        if busy.get("p50_ms") is not None:
            line += (
                f"; while loading/building: {busy['calls']} calls, p50 {busy['p50_ms']:.0f} / "
                f"p95 {busy['p95_ms']:.0f} / max {busy['max_ms']:.0f} ms"
            )
        if stats["errors"]:
            line += f"; {stats['errors']} failed"
        print(line)
    if result.final_model_status:
        print("  model status at the end: " + "; ".join(f"{k}: {v}" for k, v in result.final_model_status.items()))
    if result.error:
        print(f"  FAILED: {result.error}")
        if result.log_tail is not None:
            print("  --- log (tail) ---")
            print("\n".join("  | " + line for line in result.log_tail.splitlines()) or "  | (empty)")


def targets(results: list[ScenarioResult]) -> list[dict[str, Any]]:
    """Every target check: label, figure, target, PASS/FAIL (no figure is a FAIL)."""
    checks = []

    def check(label: str, value: float | None, limit: float, unit: str) -> None:
        verdict = "PASS" if value is not None and value <= limit else "FAIL"
        checks.append({"check": label, "value": value, "target": f"<= {limit:g} {unit}", "verdict": verdict})

    for r in results:
        for click in r.clicks or [ClickResult("no click (failed before it)")]:
            check(
                f"({r.scenario}) {r.dtype}: {click.label} -> first column (s)",
                click.since_click(click.first_column_s),
                TARGET_CLICK_FIRST_S,
                "s",
            )
        if r.scenario == "c" and r.first_click is not None:
            check(
                f"(c) {r.dtype}: launch -> all four columns (s)", r.first_click.all_columns_s, TARGET_BUNDLE_ALL_S, "s"
            )
        if r.scenario == "b":
            busy = busy_calls(r)
            stats = status_stats(busy or r.status_calls)
            label = f"(b) {r.dtype}: /status p95 (ms), " + (
                f"{len(busy)} calls while building" if busy else "no call saw a build: all calls"
            )
            check(label, stats.get("p95_ms"), TARGET_STATUS_P95_MS, "ms")
    return checks


def print_summary(results: list[ScenarioResult], checks: list[dict[str, Any]], info: dict[str, Any]) -> None:
    print(
        f"\nCold start, {info['checkpoints']} checkpoints; {info['cpu']}, {info['cores']} cores, "
        f"torch {info['torch']}, gradio {info['gradio']}; clicks through {info['client']}"
    )
    head = (
        f"{'scenario':<34} {'dtype':<9} {'page':>6} {'click':>6} {'c>1st':>6} {'c>all':>7} "
        f"{'l>1st':>7} {'l>all':>7} {'busy status p50/p95/max (n)':>28}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        c = r.first_click or ClickResult("")
        stats = status_stats(busy_calls(r))
        status = (
            f"{stats['p50_ms']:.0f}/{stats['p95_ms']:.0f}/{stats['max_ms']:.0f} ({stats['calls']})"
            if stats.get("p50_ms") is not None
            else "-"
        )
        print(
            f"{'(' + r.scenario + ') ' + SCENARIOS[r.scenario]:<34} {(r.app_dtype or r.dtype):<9} "
            f"{fmt(r.page_s, 1):>6} {fmt(c.click_s, 1):>6} {fmt(c.since_click(c.first_column_s)):>6} "
            f"{fmt(c.since_click(c.all_columns_s), 1):>7} {fmt(c.first_column_s, 1):>7} {fmt(c.all_columns_s, 1):>7} "
            f"{status:>28}" + ("  FAILED" if r.error else "")
        )
        for late in r.clicks[1:]:
            print(
                f"{'    ' + late.label:<44} {fmt(late.click_s, 1):>6} "
                f"{fmt(late.since_click(late.first_column_s)):>6} {fmt(late.since_click(late.all_columns_s), 1):>7} "
                f"{fmt(late.first_column_s, 1):>7} {fmt(late.all_columns_s, 1):>7}"
            )
    print(
        "seconds; page, click, l>1st, l>all: since launch (Popen); c>1st, c>all: since the click; "
        "1st = the first output with any column filled (BM25), all = all four filled; busy status: "
        "/status calls, in ms, whose answer showed a model loading or an index building"
    )
    print(f"\n{'target check':<72} {'figure':>9}  {'target':<10} verdict")
    for c in checks:
        print(f"{c['check']:<72} {fmt(c['value']):>9}  {c['target']:<10} {c['verdict']}")


# -- main -----------------------------------------------------------------------------------------------
def parse_list(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{what}: choose from {', '.join(allowed)} (got {value!r})")
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="a,b,c", type=lambda v: parse_list(v, tuple(SCENARIOS), "scenarios"))
    parser.add_argument(
        "--dtypes",
        default="default,float32",
        type=lambda v: parse_list(v, ("default", "float32", "bfloat16", "float16"), "dtypes"),
        help="default = the app's precision policy; others set LFQA_DTYPE",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="full-size checkpoints (default: $LFQA_BENCH_DIR or /tmp/lfqa-full-size)",
    )
    parser.add_argument("--fixtures", action="store_true", help="the tiny test checkpoints instead (checks the script)")
    parser.add_argument("--timeout", type=float, default=1800, help="per scenario, seconds (default 1800)")
    parser.add_argument("--click-delay", type=float, default=0.0, help="seconds from page-up to the click (default 0)")
    parser.add_argument(
        "--late-click", type=float, default=30.0, help="(b): a second visitor clicks this long after page-up; 0: none"
    )
    parser.add_argument("--poll-interval", type=float, default=0.5, help="/status polling, seconds")
    parser.add_argument(
        "--client",
        choices=tuple(CLICKERS),
        default="gradio",
        help="how the visitor clicks: gradio_client (default) or Gradio's plain HTTP API (lighter, browser-like)",
    )
    parser.add_argument("--question-id", default="q-science-2", help="an id from assets/corpus/questions.jsonl")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, caches, bundles)")
    args = parser.parse_args()

    info = machine_info()
    info["client"] = "gradio_client" if args.client == "gradio" else "Gradio's HTTP API"
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["flags"].items())
    print(f"CPU: {info['cpu']} ({info['cores']} cores); {flags}; torch {info['torch']}", flush=True)
    question, gold = bundled_question(args.question_id)
    work = args.work or Path(tempfile.mkdtemp(prefix="lfqa-cold-start-"))
    work.mkdir(parents=True, exist_ok=True)
    hub = work / "hub"
    if args.fixtures:
        fixture_hub_cache(hub)
        info["checkpoints"] = "fixture (tiny)"
    else:
        from full_size_checkpoints import default_dir

        root = args.root or default_dir()
        print(f"checkpoints: full size in {root} (written on first use: several minutes)", file=sys.stderr, flush=True)
        full_size_hub_cache(root, hub)
        info["checkpoints"] = "full-size random-weight"
    settings = Settings(
        hub_cache=hub,
        work=work,
        question=question,
        gold=gold,
        timeout=args.timeout,
        click_delay=args.click_delay,
        late_click=args.late_click,
        poll_interval=args.poll_interval,
        client=args.client,
    )
    print(f"question: {question!r} (gold {gold!r}); working folder {work}", flush=True)

    results = []
    try:
        for dtype in args.dtypes:
            for scenario in args.scenarios:
                print(f"\n== ({scenario}) {SCENARIOS[scenario]}, {dtype}", file=sys.stderr, flush=True)
                result = run_scenario(scenario, dtype, settings)
                results.append(result)
                print_timeline(result)
                sys.stdout.flush()
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    checks = targets(results)
    print_summary(results, checks, info)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "question": question,
                    "gold": gold,
                    "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "results": [asdict(r) for r in results],
                    "targets": checks,
                },
                indent=2,
            )
        )
        print(f"\nwrote {args.json}")
    return 0 if all(c["verdict"] == "PASS" for c in checks) and not any(r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
