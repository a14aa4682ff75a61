"""Corpus bundles from the hub: `LFQA_CORPORA=hub:org/name[@revision]`.

A bundle of all of Wikipedia is tens of gigabytes: the app never waits for it. At start-up its
manifest (one small file) is read, cache first; the rest is downloaded in a background thread
into a folder that survives restarts (`/data/lfqa-corpora/ORG--NAME` on a Space with persistent
storage, else under the index cache), resuming whatever an earlier start left half-done
(huggingface_hub keeps partial files and continues them). Meanwhile the status panel shows the
bytes done and the time left, and the app serves its other corpora. Once every file is there the
bundle is opened with all of corpus_bundles.py's checks (sizes, checksums of the small files,
structure) and becomes a corpus choice. A folder already complete is opened at once, offline too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import CorpusError, LfqaError, failure_message
from ..status import Phase, Status
from .corpus_bundles import MANIFEST, CorpusBundle, CorpusManifest, open_corpus_bundle
from .index_checks import IndexRefused, read_json_model

log = logging.getLogger(__name__)
HUB = "hub:"
POLL_S = 2.0  # how often the bytes on disk are counted while downloading


def download_folder(repo_id: str, data: Path = Path("/data")) -> Path:
    """Where a hub bundle is kept: persistent storage when the machine has it, else the index cache."""
    from .indexes import default_cache_dir

    root = data / "lfqa-corpora" if data.is_dir() and os.access(data, os.W_OK) else default_cache_dir() / "corpora"
    return root / repo_id.replace("/", "--")


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    """("org/name", revision or None) of "hub:org/name[@revision]"; CorpusError when it names no repo."""
    from .corpus import check_hub_dataset_id

    repo_id, _, revision = spec[len(HUB) :].partition("@")
    check_hub_dataset_id(repo_id)
    return repo_id, revision or None


def complete(folder: Path) -> bool:
    """Whether `folder` holds a manifest and every file it lists, at its size (the full checks come at open)."""
    try:
        manifest = read_json_model(folder / MANIFEST, CorpusManifest)
        return all((folder / n).is_file() and (folder / n).stat().st_size == f.bytes for n, f in manifest.files.items())
    except (OSError, ValueError, IndexRefused):  # unreadable, or names no file can have
        return False


class BundleDownload:
    """One hub corpus bundle being fetched in the background; `status()` says how far it is."""

    def __init__(self, spec: str, folder: Path, on_ready: Callable[[CorpusBundle], None]):
        self.spec = spec
        self.repo_id, self.revision = parse_hub_spec(spec)
        self.folder = folder
        self._on_ready = on_ready
        self.phase = Phase.LOADING
        self.done = 0
        self.total = 0
        self.error: BaseException | None = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._work, name=f"download {self.repo_id}", daemon=True)

    def start(self) -> "BundleDownload":
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def status(self) -> Status:
        if self.phase is Phase.FAILED:
            return Status(Phase.FAILED, note=failure_message(self.error, logged=True))
        left = None
        if self.phase is Phase.DOWNLOADING and self.done:
            rate = self.done / max(time.monotonic() - self._started, 1e-3)
            left = max(self.total - self.done, 0) / rate
        return Status(self.phase, self.done, self.total or None, left)

    def _work(self) -> None:
        try:
            self._download()
            self.phase = Phase.READY
            self._on_ready(open_corpus_bundle(self.folder))
        except LfqaError as exc:
            log.error("LFQA_CORPORA: %s could not be fetched: %s", self.spec, exc)
            self.error, self.phase = exc, Phase.FAILED
        except Exception as exc:  # the network, the disk: log it whole, report it short
            log.exception("LFQA_CORPORA: %s could not be fetched", self.spec)
            self.error, self.phase = exc, Phase.FAILED

    def _download(self) -> None:
        from huggingface_hub import hf_hub_download, snapshot_download

        self.folder.mkdir(parents=True, exist_ok=True)
        kwargs = dict(repo_type="dataset", revision=self.revision, local_dir=self.folder)
        hf_hub_download(self.repo_id, MANIFEST, **kwargs)
        manifest = read_json_model(self.folder / MANIFEST, CorpusManifest)
        self.total = sum(f.bytes for f in manifest.files.values())
        self.phase = Phase.DOWNLOADING
        stop = threading.Event()

        def count() -> None:  # the bytes on disk, partial files included (huggingface_hub's .incomplete)
            while not stop.wait(POLL_S):
                self.done = min(self.total, sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file()))

        counter = threading.Thread(target=count, daemon=True)
        counter.start()
        try:
            snapshot_download(self.repo_id, allow_patterns=[MANIFEST, *manifest.files], **kwargs)
        finally:
            stop.set()
        self.done = self.total
        if not complete(self.folder):
            raise CorpusError(f"{self.spec} was downloaded but its files do not match its manifest")


def fetch_or_open(spec: str, on_ready: Callable[[CorpusBundle], None]) -> CorpusBundle | BundleDownload:
    """The bundle `spec` names ("hub:org/name[@rev]"): opened at once when its folder is complete
    (offline too), else a BundleDownload started in the background (CorpusError at once when the
    hub cannot be reached, saying how to get the files)."""
    from ..models.hub import hub_unreachable

    repo_id, _ = parse_hub_spec(spec)
    folder = download_folder(repo_id)
    if complete(folder):
        return open_corpus_bundle(folder)
    why = hub_unreachable()
    if why:
        raise CorpusError(
            f"{spec} is not downloaded yet ({folder}) and {why}. Where the hub can be reached: `hf download {repo_id} "
            f"--repo-type dataset --local-dir DIR`, then LFQA_CORPORA=DIR."
        )
    return BundleDownload(spec, folder, on_ready).start()
