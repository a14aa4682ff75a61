"""The Space's configuration: the README front matter preloads exactly the files the loader reads
for the six default checkpoints; a persistent /data holds the caches; weights preloaded into the
image's cache are found when HF_HOME points at /data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from helpers import REPOS, fixture_dir, write_hub_cache

import lfqa_demo
from lfqa_demo.models import loading
from lfqa_demo.models.hub import WEIGHT_FILES

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_the_space_preloads_every_file_the_default_checkpoints_need():
    config = front_matter()
    assert config["sdk"] == "gradio" and config["app_file"] == "app.py" and config["python_version"] == "3.11"
    preloaded = {}
    for line in config["preload_from_hub"]:
        repo, files = line.split()  # "[repo] [file1,file2]": no revision, so main is followed
        preloaded[repo] = set(files.split(","))
    assert set(preloaded) == set(REPOS.values())
    read = {*loading._MODEL_FILES, *WEIGHT_FILES, *loading._OPTIONAL_FILES}  # what the loader may read
    for repo, files in preloaded.items():
        on_hub = {p.name for p in fixture_dir(repo).iterdir()}  # the fixtures mirror each repo's file list
        assert files == read & on_hub, repo


def test_persistent_storage_holds_the_caches(monkeypatch, tmp_path):
    from ui.startup import persistent_storage

    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("LFQA_CACHE", raising=False)
    persistent_storage(tmp_path / "absent")
    assert "HF_HOME" not in os.environ and "LFQA_CACHE" not in os.environ
    persistent_storage(tmp_path)
    assert os.environ["HF_HOME"] == str(tmp_path / ".huggingface")
    assert os.environ["LFQA_CACHE"] == str(tmp_path / "lfqa-demo")
    monkeypatch.setenv("LFQA_CACHE", "/elsewhere")
    persistent_storage(tmp_path)
    assert os.environ["LFQA_CACHE"] == "/elsewhere"  # what the Space's owner set wins


def test_weights_preloaded_into_the_image_are_found_when_hf_home_moved(monkeypatch, tmp_path):
    home = tmp_path / "home"
    write_hub_cache(home / ".cache" / "huggingface" / "hub")  # where preload_from_hub puts them
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "data" / ".huggingface"))  # empty: a fresh /data
    retriever = lfqa_demo.load_retriever("dpr")
    assert retriever.checkpoints[0].directory.is_relative_to(home)
    lfqa_demo.clear_loaded_models()
    monkeypatch.setenv("HOME", str(tmp_path / "nobody"))
    with pytest.raises(lfqa_demo.CheckpointNotFoundError, match="HF_HUB_OFFLINE"):
        lfqa_demo.load_retriever("dpr")


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2 avx512f avx512bw\nbugs\t\t: spectre\n"


@pytest.mark.parametrize(
    "cpuinfo, fast",
    [
        (AVX2_ONLY, False),
        (AVX2_ONLY.replace("avx512bw", "avx512bw avx512_bf16"), True),
        (AVX2_ONLY.replace("avx512bw", "amx_tile amx_bf16"), True),
        ("model name\t: avx512_bf16 in a name is no flag\nflags\t\t: avx2\n", False),
        ("", False),
    ],
)
def test_the_precision_policy_never_picks_bf16_without_native_bf16(monkeypatch, cpuinfo, fast):
    import torch

    from lfqa_demo.models import devices

    assert devices.flags_have_fast_bf16(cpuinfo) is fast
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: devices.flags_have_fast_bf16(cpuinfo))
    monkeypatch.setenv("LFQA_DTYPE", "auto")
    assert devices.resolve_dtype(None, torch.device("cpu")) == (torch.bfloat16 if fast else torch.float32)
