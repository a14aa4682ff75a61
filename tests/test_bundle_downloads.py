"""Hub corpus bundles (LFQA_CORPORA=hub:org/name): a complete folder opens at once, offline; an
incomplete one offline is refused saying how to get it; a download runs in the background,
shows its bytes, and offers the corpus once every file is there and checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import pytest
from helpers import wait_until

from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import CorpusError
from lfqa_demo.retrieval.bundle_downloads import BundleDownload, download_folder, fetch_or_open
from lfqa_demo.retrieval.corpus import Corpus, Passage
from lfqa_demo.retrieval.corpus_bundles import MANIFEST
from lfqa_demo.sessions import EngineRegistry, open_standing_corpora
from lfqa_demo.status import Phase


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LFQA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def small_registry() -> EngineRegistry:
    return EngineRegistry(
        Corpus("bundled", [Passage("a", "", "text")]),
        make_engine=lambda c: RetrievalEngine(c, retrievers={"bm25": "bm25"}),
    )


def test_a_complete_folder_opens_offline_and_comes_first(wiki_bundle, cache):
    folder = download_folder("org/wiki", data=cache / "no-data-here")
    assert folder == cache / "corpora" / "org--wiki"
    shutil.copytree(wiki_bundle["out"], folder)
    opened, refused, pending = open_standing_corpora(["hub:org/wiki"])
    assert (len(opened), refused, pending) == (1, {}, [])
    registry = EngineRegistry(opened[0].corpus, standing=opened)
    assert registry.default_ref.size == 20_000 and registry.default is opened[0]


def test_an_incomplete_folder_offline_is_refused_saying_how_to_get_it(wiki_bundle, cache):
    folder = download_folder("org/wiki", data=cache / "no-data-here")
    shutil.copytree(wiki_bundle["out"], folder)
    (folder / "passages.arrow").unlink()
    assert open_standing_corpora(["hub:org/wiki"])[2] == ["hub:org/wiki"]  # to be fetched
    with pytest.raises(CorpusError, match="not downloaded yet .* HF_HUB_OFFLINE is set.*hf download org/wiki"):
        fetch_or_open("hub:org/wiki", lambda bundle: None)
    with pytest.raises(CorpusError, match="not a hub dataset id"):
        fetch_or_open("hub:../../etc", lambda b: None)


def test_a_download_shows_its_bytes_and_offers_the_corpus_when_checked(wiki_bundle, tmp_path, monkeypatch):
    """The hub is out of reach: huggingface_hub's two calls are replaced by copies from the built
    bundle (slowed, so that progress can be seen); everything else is the real code."""
    source, folder = wiki_bundle["out"], tmp_path / "org--wiki"
    monkeypatch.setattr("lfqa_demo.retrieval.bundle_downloads.POLL_S", 0.05)

    def hf_hub_download(repo_id, filename, *, local_dir, **kwargs):
        shutil.copy(source / filename, Path(local_dir) / filename)
        return str(Path(local_dir) / filename)

    def snapshot_download(repo_id, *, allow_patterns, local_dir, **kwargs):
        import time

        for name in allow_patterns:
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, Path(local_dir) / name)
            time.sleep(0.1)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    registry = small_registry()
    seen = []
    download = BundleDownload("hub:org/wiki", folder, lambda b: registry.add_standing(RetrievalEngine(corpus_bundle=b)))
    registry.downloads["hub:org/wiki"] = download
    download.start()
    assert wait_until(lambda: seen.append(download.status()) or download.phase is Phase.READY, 60)
    assert download.wait(10)
    moving = [s for s in seen if s.phase is Phase.DOWNLOADING]
    listed = sum(p.stat().st_size for p in source.rglob("*") if p.is_file() and p.name != MANIFEST)
    assert moving and all(s.total == listed for s in moving)
    assert any(0 < s.done < s.total for s in moving)
    assert [r.name for r in registry.standing_refs] == ["bundled", "wiki"]
    assert registry.corpus_states() == {}  # nothing left to say: it is offered


def test_a_download_that_does_not_match_its_manifest_fails_saying_why(wiki_bundle, tmp_path, monkeypatch):
    source, folder = wiki_bundle["out"], tmp_path / "org--wiki"

    def hf_hub_download(repo_id, filename, *, local_dir, **kwargs):
        shutil.copy(source / filename, Path(local_dir) / filename)

    def snapshot_download(repo_id, *, allow_patterns, local_dir, **kwargs):
        for name in allow_patterns:
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, Path(local_dir) / name)
        with open(Path(local_dir) / "passages.arrow", "ab") as f:
            f.write(b"more")  # the repo changed under the manifest

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    registry = small_registry()
    download = BundleDownload("hub:org/wiki", folder, lambda b: registry.add_standing(RetrievalEngine(corpus_bundle=b)))
    registry.downloads["hub:org/wiki"] = download
    assert download.start().wait(60)
    state = registry.corpus_states()["hub:org/wiki"]
    assert state.phase is Phase.FAILED and "do not match its manifest" in state.note
    assert [r.name for r in registry.standing_refs] == ["bundled"]
