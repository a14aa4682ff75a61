"""Helpers and constants the tests import: where the fixtures live, and how to lay the fixture
checkpoints out as an offline Hugging Face cache. Fixtures themselves stay in conftest.py."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from lfqa_demo.models.loading import DEFAULT_CHECKPOINTS
from lfqa_demo.retrieval.realm_openqa import CHECKPOINT as REALM_OPENQA

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"

REPOS = DEFAULT_CHECKPOINTS  # role -> the real hub repo id the fixture mirrors
HUB_REPOS = (*REPOS.values(), REALM_OPENQA)  # every fixture repo, REALM's open-QA index (never a default) too


def fixture_dir(repo_id: str) -> Path:
    """The committed fixture folder of a repo id (its files as on the hub)."""
    return FIXTURES / "hub" / repo_id.replace("/", "--")


def write_hub_cache(cache: Path, repo_ids: Iterable[str] = HUB_REPOS) -> Path:
    """Lay the fixtures out as the hub cache does: models--ORG--NAME/{refs/main, snapshots/REV/}."""
    for repo_id in repo_ids:
        root = cache / f"models--{repo_id.replace('/', '--')}"
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(FAKE_REVISION)
        shutil.copytree(fixture_dir(repo_id), root / "snapshots" / FAKE_REVISION, dirs_exist_ok=True)
    return cache


def wait_until(predicate, seconds: float = 30.0) -> bool:
    """Poll `predicate` every 50 ms until it holds or `seconds` passed; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
