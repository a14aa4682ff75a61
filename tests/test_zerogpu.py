"""ZeroGPU: model calls go through sized `spaces.GPU` calls, with a stand-in `spaces` module.

The stand-in's `GPU` behaves as the real one does where it matters here: it is decorated once
with a dynamic duration, evaluates the duration with the call's arguments, and pickles the
arguments and the result (the real one runs the function in a forked worker). The GPU device
is the CPU (no CUDA here).
"""

from __future__ import annotations

import ast
import pickle
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import lfqa_demo
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import InvalidInputError
from lfqa_demo.models import calls, zerogpu
from lfqa_demo.models.devices import resolve_device, resolve_dtype
from lfqa_demo.reading.loading import load_relevance_embedder
from lfqa_demo.retrieval.builds import BuildCancelled
from lfqa_demo.retrieval.corpus import build_corpus
from lfqa_demo.retrieval.indexes import build_index

PASSAGES = [
    {"title": f"Topic {i % 7}", "text": f"the normans conquered england in {1000 + i} " * (1 + i % 4)}
    for i in range(60)
]
QUESTION = "when did the normans conquer england?"


class StandInSpaces(types.ModuleType):
    """`spaces` as seen by lfqa_demo: `GPU(duration=...)` records each call's duration."""

    def __init__(self, events: list) -> None:
        super().__init__("spaces")
        self.events = events  # shared with the test's progress callbacks, to see the order
        self.decorations = 0
        self.threads: set[str] = set()  # the threads that made GPU calls

    @property
    def durations(self) -> list[int]:
        return [seconds for kind, seconds in self.events if kind == "gpu"]

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 (the real name)
        self.decorations += 1

        def decorate(fn):
            def call(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.events.append(("gpu", seconds))
                self.threads.add(threading.current_thread().name)
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # the process boundary
                return pickle.loads(pickle.dumps(fn(*args, **kwargs)))

            return call

        return decorate if task is None else decorate(task)


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def zero_gpu(monkeypatch, events) -> StandInSpaces:
    spaces = StandInSpaces(events)
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(zerogpu, "GPU_DEVICE", "cpu")
    monkeypatch.setattr(calls, "_worker_models", {})
    return spaces


@pytest.fixture
def no_zero_gpu(monkeypatch):
    """SPACES_ZERO_GPU unset, and any import of `spaces` recorded (and refused)."""
    imports: list[str] = []

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "spaces" or name.startswith("spaces."):
                imports.append(name)
                raise ImportError("spaces must not be imported without ZeroGPU")
            return None

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Watch(), *sys.meta_path])
    return imports


def vectors_without_zero_gpu(monkeypatch, passages):
    with monkeypatch.context() as m:
        m.delenv("SPACES_ZERO_GPU")
        return lfqa_demo.load_retriever("dpr").encode_passages(passages)


def test_an_index_build_goes_through_gpu_calls(zero_gpu, monkeypatch, tmp_path):
    monkeypatch.setattr(zerogpu, "PASSAGES_PER_CALL", 16)  # 60 passages: several calls
    engine = RetrievalEngine(build_corpus("small", PASSAGES), cache_dir=tmp_path)
    built = engine.build_indexes(["dpr"])  # in a background build thread, outside any request

    assert built["dpr"].error is None
    assert len(zero_gpu.durations) >= 3 and zero_gpu.threads - {threading.main_thread().name}
    expected = vectors_without_zero_gpu(monkeypatch, engine.corpus.as_dicts())
    np.testing.assert_allclose(built["dpr"].index.vectors(), expected, rtol=1e-5, atol=1e-5)


def test_progress_is_reported_between_gpu_calls(zero_gpu, events, monkeypatch, tmp_path):
    monkeypatch.setattr(zerogpu, "PASSAGES_PER_CALL", 16)
    retriever = lfqa_demo.load_retriever("dpr")
    corpus = build_corpus("small", PASSAGES)
    build_index(retriever, corpus, cache_dir=tmp_path, progress=lambda done, total: events.append(("progress", done)))

    calls = len(zero_gpu.durations)
    assert calls >= 3
    # Each GPU call is followed by a progress report, made by the caller between calls.
    after_each_call = [events[i + 1] for i, e in enumerate(events) if e[0] == "gpu"]
    assert [kind for kind, _ in after_each_call] == ["progress"] * calls
    done = [n for _, n in after_each_call]
    assert done[-1] == 60 and all(0 < a < b for a, b in zip(done, done[1:]))


def test_durations_grow_with_the_work(zero_gpu, monkeypatch):
    retriever = lfqa_demo.load_retriever("dpr")
    monkeypatch.setattr(zerogpu, "GPU_TOKENS_PER_S", 50)  # fixture work is tiny: make it count
    monkeypatch.setattr(zerogpu, "PASSAGES_PER_CALL", 16)
    retriever.encode_passages(PASSAGES, batch_size=8)
    # Longest passages first (length_batches), so each call holds fewer tokens than the one before.
    durations = zero_gpu.durations
    assert len(durations) == 4 and durations == sorted(durations, reverse=True) and durations[0] > durations[-1]
    assert all(zerogpu.CALL_OVERHEAD_S < d <= zerogpu.MAX_CALL_S for d in durations)
    assert zerogpu.seconds_for(0) == zerogpu.CALL_OVERHEAD_S
    assert zerogpu.seconds_for(10**9) == zerogpu.MAX_CALL_S
    assert zerogpu.seconds_for(1_000) <= zerogpu.seconds_for(100_000) <= zerogpu.seconds_for(1_000_000)


def test_cancelling_between_calls_stops_the_build(zero_gpu, monkeypatch):
    monkeypatch.setattr(zerogpu, "PASSAGES_PER_CALL", 16)
    retriever = lfqa_demo.load_retriever("dpr")

    def progress(done, total):
        if done >= 32:
            raise BuildCancelled("cancelled")

    with pytest.raises(BuildCancelled):
        retriever.encode_passages(PASSAGES, progress=progress)
    assert len(zero_gpu.durations) == 2


def test_questions_and_readers_go_through_gpu_calls(zero_gpu, monkeypatch):
    passages = PASSAGES[:5]
    on_gpu = {
        "question": lfqa_demo.load_retriever("realm").encode_questions([QUESTION]),
        "dpr": lfqa_demo.load_reader("dpr").logits(QUESTION, passages),
        "realm": lfqa_demo.load_reader("realm").read(QUESTION, passages),
    }
    assert len(zero_gpu.durations) == 3
    assert all(d == zerogpu.CALL_OVERHEAD_S + 1 for d in zero_gpu.durations)  # a few hundred tokens each
    # REALM's passage relevance for pasted passages: the embedder's question and passages, 2 calls.
    relevance = realm_relevance(passages)
    assert len(zero_gpu.durations) == 5

    monkeypatch.delenv("SPACES_ZERO_GPU")
    np.testing.assert_allclose(
        on_gpu["question"], lfqa_demo.load_retriever("realm").encode_questions([QUESTION]), rtol=1e-5, atol=1e-5
    )
    dpr = lfqa_demo.load_reader("dpr").logits(QUESTION, passages)
    for name in ("start", "end", "relevance"):
        np.testing.assert_allclose(getattr(on_gpu["dpr"], name), getattr(dpr, name), rtol=1e-5, atol=1e-5)
    realm = lfqa_demo.load_reader("realm").read(QUESTION, passages)
    np.testing.assert_allclose(relevance, realm_relevance(passages), rtol=1e-5, atol=1e-5)
    assert [(a.text, a.passage_index) for a in on_gpu["realm"]] == [(a.text, a.passage_index) for a in realm]
    np.testing.assert_allclose([a.score for a in on_gpu["realm"]], [a.score for a in realm], rtol=1e-5, atol=1e-5)


def realm_relevance(passages):
    """REALM's relevance for pasted passages, its embedder handed in as the engine does."""
    reader = lfqa_demo.load_reader("realm")
    return reader.prior_relevance(QUESTION, passages, None, [], load_relevance_embedder(reader, None))


def test_the_gpu_function_is_decorated_once(zero_gpu):
    assert zerogpu.setup()
    retriever = lfqa_demo.load_retriever("dpr")
    retriever.encode_questions([QUESTION])
    retriever.encode_passages(PASSAGES[:3])
    assert zero_gpu.decorations == 1 and len(zero_gpu.durations) == 2


def test_models_stay_on_the_cpu_and_default_to_bf16(zero_gpu, monkeypatch):
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cpu")
    monkeypatch.delenv("LFQA_DTYPE")
    assert resolve_dtype(None, resolve_device(None)) == torch.bfloat16


def test_a_worker_loads_a_model_loaded_after_its_fork(zero_gpu):
    """A worker forked before a model was loaded does not have it: it loads it from its origin."""
    retriever = lfqa_demo.load_retriever("dpr")
    origin = retriever.origin
    copy = pickle.loads(pickle.dumps(origin))  # what the worker receives
    assert copy.key == origin.key and copy.build.args == origin.build.args
    lfqa_demo.clear_loaded_models()  # what the worker's copy of the registry looks like
    rebuilt = calls.find_model(copy)
    assert rebuilt is not retriever and rebuilt.name == "dpr" and calls.find_model(copy) is rebuilt
    expected = retriever.encode_questions([QUESTION])
    np.testing.assert_allclose(rebuilt.encode_questions([QUESTION]), expected, rtol=1e-5, atol=1e-5)


def test_without_zero_gpu_spaces_is_never_imported(no_zero_gpu, tmp_path):
    assert not zerogpu.active() and not zerogpu.setup()
    engine = RetrievalEngine(build_corpus("small", PASSAGES[:20]), cache_dir=tmp_path)
    assert engine.build_indexes(["dpr"])["dpr"].error is None
    lfqa_demo.load_reader("realm").read(QUESTION, PASSAGES[:3])
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda")
    else:  # asked for by name, a missing GPU is an error that says so (not a crash in the first model call)
        with pytest.raises(InvalidInputError, match="has no CUDA device"):
            resolve_device("cuda")
    assert no_zero_gpu == [] and "spaces" not in sys.modules


def test_zero_gpu_set_but_spaces_missing_runs_as_before(no_zero_gpu, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(zerogpu, "_import_failed", False)
    assert not zerogpu.active()
    assert lfqa_demo.load_retriever("dpr").encode_questions([QUESTION]).shape[0] == 1
    assert no_zero_gpu == ["spaces"]  # tried once, then remembered


def test_every_model_call_goes_through_one_seam():
    """calls.py alone runs models (inference mode) and so alone chooses here or ZeroGPU; the
    modules on that path import nothing late but torch (kept out of `import lfqa_demo`), and
    lfqa_demo.models never imports lfqa_demo.reading."""
    package = Path(lfqa_demo.__file__).parent
    trees = {p.relative_to(package).as_posix(): ast.parse(p.read_text(encoding="utf-8")) for p in package.rglob("*.py")}
    assert [name for name, tree in trees.items() if "inference_mode" in ast.dump(tree)] == ["models/calls.py"]
    for name in ("models/calls.py", "models/zerogpu.py", "models/retrievers.py", "reading/readers.py"):
        functions = [f for f in ast.walk(trees[name]) if isinstance(f, ast.FunctionDef)]
        late = [node for f in functions for node in ast.walk(f) if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert all(isinstance(n, ast.Import) and [a.name for a in n.names] == ["torch"] for n in late), name
    for name, tree in trees.items():
        imported = []  # every module or name that models/*.py imports, in full
        for node in ast.walk(tree) if name.startswith("models/") else ():
            if isinstance(node, ast.Import):
                imported += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(p for p in (("", "lfqa_demo.models", "lfqa_demo")[node.level], node.module) if p)
                imported += [base, *(f"{base}.{a.name}" for a in node.names)]
        assert not [i for i in imported if i.startswith("lfqa_demo.reading")], name
