"""The warm-up (models, then the bundled corpus's indexes, in the background) and the progressive
comparison: BM25 answers while indexes build, a request joins the warm-up's build instead of
starting another, and `/compare` streams BM25 before the dense columns."""

from __future__ import annotations

import threading

import pytest
from app_server import AppServer
from gradio_client import Client
from helpers import wait_until

import lfqa_demo
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.models.retrievers import DenseRetriever
from lfqa_demo.status import ModelKey, Origin, Phase
from lfqa_demo.warmup import WarmUp, warmup_enabled

QUESTION = "who led the normans?"
DENSE = ["retribert", "dpr", "realm"]


@pytest.mark.parametrize(
    "env, enabled",
    [
        ({}, False),
        ({"SPACE_ID": "lfqa/demo"}, True),
        ({"SPACE_ID": "lfqa/demo", "LFQA_WARMUP": "0"}, False),
        ({"LFQA_WARMUP": "1"}, True),
        ({"LFQA_WARMUP": "true"}, True),
        ({"LFQA_WARMUP": "no"}, False),
    ],
)
def test_the_warmup_runs_on_a_space_unless_told_otherwise(env, enabled):
    assert warmup_enabled(env) is enabled


@pytest.fixture
def gated(monkeypatch):
    """Passage encoding waits for `gate` to open; `calls` records (retriever, models loaded then)."""
    gate = threading.Event()
    calls: list[tuple[str, dict[str, str]]] = []
    original = DenseRetriever.encode_passages

    def encode(self, passages, **kwargs):
        calls.append((self.name, lfqa_demo.model_states()))
        assert gate.wait(120), "the test never opened the gate"
        return original(self, passages, **kwargs)

    monkeypatch.setattr(DenseRetriever, "encode_passages", encode)
    return gate, calls


def test_the_warmup_loads_models_then_builds_cheapest_first_and_requests_share_its_builds(tmp_path, gated):
    gate, calls = gated
    engine = RetrievalEngine(cache_dir=tmp_path)
    warmup = WarmUp(engine, DENSE, ["dpr", "realm"]).start()
    assert wait_until(lambda: len(calls) == 1, 60)  # the first index is embedding, held at the gate
    name, loaded = calls[0]
    assert name == "retribert"  # 2 layers x 128 tokens: the cheapest here, as RetriBERT is at full size
    ready = {key for key, state in loaded.items() if state.ready}
    assert {ModelKey.reader("dpr"), ModelKey.reader("realm"), ModelKey.retriever("realm")} <= ready
    assert warmup.pending() == {("index", "dpr"), ("index", "realm")} and not warmup.finished

    # BM25 answers while the index builds; the comparison shows the build in the column.
    live = engine.compare_live(QUESTION, ["retribert", "bm25"], 3, budget_s=120)
    first = next(live)
    assert len(first.results["bm25"].hits) == 3 and not first.results["retribert"].hits
    pending = first.results["retribert"].pending
    assert pending.phase is Phase.INDEXING and (pending.done, pending.total) == (0, 552)
    # A request for the index being built waits for that same build.
    assert engine.start_index("retribert") is engine.start_index("retribert")
    got: dict = {}
    waiter = threading.Thread(target=lambda: got.setdefault("index", engine.index("retribert")))
    waiter.start()
    gate.set()
    waiter.join(120)
    assert len(got["index"]) == 552
    *_, last = live
    assert len(last.results["retribert"].hits) == 3
    assert warmup.wait(240) and warmup.failures == {}
    assert [n for n, _ in calls] == ["retribert", "dpr", "realm"]  # one build each, none repeated
    assert all(state.ready and state.origin is Origin.BUILT for state in engine.index_states().values())


def test_a_failing_model_does_not_stop_the_rest_of_the_warmup(tmp_path):
    engine = RetrievalEngine(cache_dir=tmp_path, retrievers={"minilm": "minilm", "dpr": "dpr", "bm25": "bm25"})
    warmup = WarmUp(engine, ["minilm", "dpr"], ["dpr"]).start()
    assert warmup.wait(240)
    assert set(warmup.failures) == {ModelKey.retriever("minilm"), ("index", "minilm")}  # not in the offline cache
    assert "hf download" in warmup.failures[ModelKey.retriever("minilm")]
    assert engine.index_states()["dpr"].ready


# -- the real server --------------------------------------------------------------------------------
def timings_of(output) -> dict[str, str]:
    """retriever -> status ("ok", or where its index stands) from one /compare output."""
    return {row[0]: row[-1] for row in output[2]["data"]}


def test_compare_streams_bm25_before_the_dense_columns(hub_cache, tmp_path):
    server = AppServer(hub_cache, tmp_path)  # no warm-up, an empty index cache: every index builds
    try:
        client = Client(server.url, verbose=False)
        job = client.submit(QUESTION, 5, [*DENSE, "bm25"], "Rollo", api_name="/compare")
        job.result(timeout=240)
        outputs = job.outputs()
        first, last = timings_of(outputs[0]), timings_of(outputs[-1])
        assert first["BM25"] == "ok" and all(first[n] != "ok" for n in ("RetriBERT", "DPR", "REALM"))
        assert set(last.values()) == {"ok"} and len(outputs) >= 2
        assert "Not ready yet" in outputs[0][0] and "Not ready yet" not in outputs[-1][0]
        # The answer and embedding tabs say which model is loading before they answer.
        job = client.submit(QUESTION, "bm25", ["dpr", "realm"], 3, "", api_name="/answer")
        job.result(timeout=240)
        shown = [html for html, _ in job.outputs()]
        assert "Loading the DPR reader" in shown[0] and "Loading the REALM reader" in shown[1]
        assert "<mark class='answer'>" in shown[-1] and "Loading" not in shown[-1]
        job = client.submit("why is the sky blue?", "", ["minilm"], "dpr", api_name="/embed")
        job.result(timeout=240)
        assert "Loading the MiniLM encoders" in job.outputs()[0][0] and "Unavailable" in job.outputs()[-1][0]
    finally:
        server.stop()


def test_the_app_warms_up_after_launch_and_serves_meanwhile(hub_cache, tmp_path):
    server = AppServer(hub_cache, tmp_path, {"LFQA_WARMUP": "1"})
    try:
        client = Client(server.url, verbose=False)
        html, _, timings = client.predict(QUESTION, 3, ["bm25"], "", api_name="/compare")
        assert html.count("<span class='rank'>") == 3
        seen: set[str] = set()

        def all_ready() -> bool:  # polled as a script would: the JSON status
            status = client.predict(api_name="/status")
            seen.update(s["state"] for group in ("models", "indexes") for s in status[group].values())
            indexes = status["indexes"]
            return len(indexes) == 3 and all(v["state"] == "ready" for v in indexes.values())

        assert wait_until(all_ready, 240)
        status = client.predict(api_name="/status")
        assert set(status["indexes"]) == set(DENSE) and status["corpus"]
        for state in status["indexes"].values():
            assert state["origin"] == "built" and state["done"] == state["total"] == 552
            assert set(state) >= {"state", "done", "total", "seconds_left", "note"}
        assert status["models"]["reader dpr"]["device"] == "cpu"
        assert status["models"]["retriever minilm"]["state"] == "not loaded"
        status = dict(client.predict(api_name="/model_status")["data"])
        for model in ("RetriBERT encoders", "DPR encoders", "REALM encoders", "DPR reader", "REALM reader"):
            assert status[model].startswith("ready on cpu")
        assert status["MiniLM encoders"] == "not loaded"  # not part of the warm-up
        # Every index was built by the warm-up: the first comparison finds them all ready.
        html, _, timings = client.predict(QUESTION, 3, [*DENSE, "bm25"], "", api_name="/compare")
        assert html.count("<span class='rank'>") == 12 and "Not ready" not in html
        log = (tmp_path / "app.log").read_text()
        assert "warm-up finished" in log and "Traceback" not in log
        assert seen & {"waiting", "loading", "indexing"}  # the warm-up was seen under way
    finally:
        server.stop()
