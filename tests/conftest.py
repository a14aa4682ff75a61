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
def offline_hub(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
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
