"""Shared fixtures: an offline Hugging Face cache holding the tiny fixture checkpoints under
the real repo ids, so every test goes through the real resolution code.

Each test gets HF_HUB_OFFLINE=1, HF_HUB_CACHE pointing at that cache (tests that need
another cache point it elsewhere) and LFQA_DTYPE=float32, and starts with no model loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import lfqa_demo
from lfqa_demo.loading import DEFAULT_CHECKPOINTS

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"

REPOS = DEFAULT_CHECKPOINTS  # role -> the real hub repo id the fixture mirrors


def fixture_dir(repo_id: str) -> Path:
    """The committed fixture folder of a repo id (its files as on the hub)."""
    return FIXTURES / "hub" / repo_id.replace("/", "--")


def write_hub_cache(cache: Path, repo_ids=REPOS.values()) -> Path:
    """Lay the fixtures out as the hub cache does: models--ORG--NAME/{refs/main, snapshots/REV/}."""
    for repo_id in repo_ids:
        root = cache / f"models--{repo_id.replace('/', '--')}"
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(FAKE_REVISION)
        shutil.copytree(fixture_dir(repo_id), root / "snapshots" / FAKE_REVISION, dirs_exist_ok=True)
    return cache


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
