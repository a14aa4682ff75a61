"""Shared fixtures: an offline Hugging Face cache holding the tiny fixture checkpoints under
the real repo ids, so every test goes through the real resolution code.

Each test gets HF_HUB_OFFLINE=1, HF_HUB_CACHE pointing at that cache (tests that need
another cache point it elsewhere) and LFQA_DTYPE=float32, and starts with no model loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import REFERENCE, write_hub_cache

import lfqa_demo


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    return write_hub_cache(tmp_path_factory.mktemp("hf-cache"))


@pytest.fixture(autouse=True)
def offline_hub(hub_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # No reader rules unless a test writes some: never the developer's own file in ~/.cache.
    monkeypatch.setenv("LFQA_READER_RULES", str(tmp_path / "reader-rules.json"))
    monkeypatch.setenv("LFQA_DTYPE", "float32")  # the exact mode; reduced precision is tested explicitly
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    lfqa_demo.clear_loaded_models()
    yield
    lfqa_demo.clear_loaded_models()


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "outputs.npz") as data:
        return dict(data)


@pytest.fixture(scope="session")
def reference_inputs() -> dict:
    return json.loads((REFERENCE / "inputs.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def reference_tokens() -> dict:
    return json.loads((REFERENCE / "tokens.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def wiki_bundle(tmp_path_factory, hub_cache) -> dict:
    """A corpus bundle built by the command line over 20,000 generated passages in wiki_dpr's
    layout, with given vectors for the three dense retrievers (the fixture checkpoints' dims) and
    BM25: {"root", "out" (the bundle), "given": {retriever: its vector shards' folder}}."""
    from lfqa_demo import __main__ as cli
    from tools.wiki_corpus import Layout, write_corpus, write_vectors

    root = tmp_path_factory.mktemp("wiki-bundle")
    layout = Layout(20_000, shard_rows=6_000, dim=0)
    write_corpus(root / "wiki", layout)
    dims = {"retribert": 16, "dpr": 32, "realm": 16}  # what the fixture checkpoints make
    given = {n: write_vectors(root / n, layout, dim, seed=i + 1)[0].parent for i, (n, dim) in enumerate(dims.items())}
    with pytest.MonkeyPatch.context() as mp:  # session scope: what the autouse fixture sets per test
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("LFQA_DTYPE", "float32")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        argv = ["index", "--corpus", str(root / "wiki"), "--retrievers", "retribert,dpr,realm,bm25"]
        status = cli.main([*argv, "--out", str(root / "out"), *(f"--vectors={n}={p}" for n, p in given.items())])
    assert status == 0
    return {"root": root, "out": root / "out", "given": given}
