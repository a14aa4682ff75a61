"""Corpus bundles: a corpus at Wikipedia's scale with every index over it, built once, opened in seconds.

`python -m lfqa_demo index --corpus DIR --out OUT` writes one; `LFQA_CORPORA=OUT[,hub:org/name]`
makes the app offer it (the first one listed is the corpus the app opens on). A bundle is a
directory:

    OUT/manifest.json        what everything is (CorpusManifest): format and version, the corpus
                             (name, passages, fingerprint, source), each retriever's checkpoints,
                             max lengths, dimension, where its vectors came from, its index kind
                             and the recall it keeps, every file's size (and sha256 for files up to
                             SMALL_FILE_BYTES), the seconds each build stage took
    OUT/passages.arrow       the passages (id, title, text), memory-mapped (tables.py)
    OUT/bm25/                BM25 as sparse matrices, memory-mapped (bm25.py)
    OUT/<retriever>/         a dense index: `vectors.npy` (float32 [passages, dim]: "exact", searched
                             whole in memory) or a compressed index (compressed.py: codes in memory,
                             the top candidates rescored from vectors on disk)

Nothing in a bundle is encoded at build time when its vectors are given: the corpus's own
`embeddings` column (wiki_dpr's, from DPR's passage encoder) or `--vectors NAME=PATH` files.
When DPR's passage encoder is at hand, a sample of the embeddings column is encoded again and
must agree (cosine >= MIN_COSINE); the manifest says whether that was checked.

A bundle may come from a hub repo whose owner is not the operator, so it is read as data before
anything is searched: the manifest through a typed, bounded model; every file it lists present
with its size, the small ones with their sha256; the passages' schema and row count; each index
holding one vector per passage of the dimension its retriever makes; and a retriever whose
checkpoints differ from this server's is refused by name (its question vectors would not match
the passages'), the others still served.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Callable, Iterable, Mapping

import numpy as np
import pyarrow as pa
from pydantic import Field, StringConstraints

from ..errors import CorpusError
from ..models.retrievers import DenseRetriever
from .index_checks import (
    Count,
    IndexRefused,
    Name,
    RetrieverIdentity,
    Seconds,
    Sha256,
    StrictModel,
    Text,
    read_json_model,
)
from .indexes import DenseIndex, checkpoint_identity, make_faiss_index, sha256_of
from .tables import PASSAGES_FILE, TableCorpus, open_passages, write_passages
from .vectors import VectorSource

log = logging.getLogger(__name__)

FORMAT = "lfqa-demo corpus bundle"
VERSION = 1
MANIFEST = "manifest.json"
BM25_DIR = "bm25"
# `index --engine ray`'s resumable vector shards (ray_build.py), kept beside the bundle for a rerun:
# not part of it (not listed in its manifest, and a retriever may not take the name).
WORK_DIR = "vectors"
EXACT_VECTORS = "vectors.npy"
SMALL_FILE_BYTES = (
    64 << 20
)  # files up to this size are checked by sha256 at every open; larger ones by size and structure
# "auto" keeps a retriever's float32 vectors whole in memory (exact search) up to this size, else
# builds a compressed index: 2M x 128 float32 is 1 GB, past what a 16 GB Space can give each of three.
EXACT_BUDGET_BYTES = 256 << 20
BUNDLE_KINDS = ("auto", "exact", "compressed")
MIN_COSINE = 0.99  # a re-encoded sample against given vectors (same checkpoint: >= 0.999)
# Compressed indexes are tuned on 256 held-out rows, which know recall@10 to about +-0.01: tuned to
# 0.96, they keep >= 0.95 on other queries (tuned to 0.95, REALM kept 0.9495 on 200 fresh ones at 500k).
TUNED_RECALL = 0.96
VERIFY_ROWS = 16


# -- the manifest, as typed data -----------------------------------------------------------------------
class FileEntry(StrictModel):
    bytes: Count
    sha256: Sha256 | None = None  # only for files up to SMALL_FILE_BYTES


class VectorsEntry(StrictModel):
    origin: Text  # "the corpus's embeddings column", "given: vectors/realm" or "encoded here"
    verified: Text  # what was checked against the checkpoint, in words


class IndexEntry(StrictModel):
    kind: Name  # "exact" or "compressed"
    recall_at_10: Annotated[float, Field(ge=0, le=1)]  # of exact search, measured on held-out queries
    reached: bool = True  # whether the compressed index reached its recall target
    nbytes_in_memory: Count = 0


class RetrieverEntry(RetrieverIdentity):
    vectors: VectorsEntry
    index: IndexEntry


# What a bundle's manifest may name: its corpus is shown in the page (one plain line: no Markdown
# link or image can be made of it) and its files are paths inside the bundle.
ShownName = Annotated[str, StringConstraints(pattern=r"^[\w .,:;'/+=@%&-]{1,200}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100})?$")]
Timestamp = Annotated[str, StringConstraints(pattern=r"^[0-9T:+.Z-]{1,40}$")]


class CorpusEntry(StrictModel):
    name: ShownName
    passages: Count
    fingerprint: Name
    source: Text = "?"


class CorpusManifest(StrictModel):
    format: Name
    format_version: int
    corpus: CorpusEntry
    retrievers: Annotated[dict[Name, RetrieverEntry], Field(max_length=16)]
    bm25: bool = False
    files: Annotated[dict[FileName, FileEntry], Field(max_length=256)]
    build_seconds: Annotated[dict[Name, Seconds], Field(max_length=64)] = {}
    built_at: Timestamp = "?"
    libraries: Annotated[dict[Name, Name], Field(max_length=32)] = {}


# -- building ---------------------------------------------------------------------------------------------
@dataclass
class DenseInput:
    """One dense retriever of a bundle being built: the loaded retriever (its identity and
    dimension; its passage encoder only if vectors are verified or encoded) and its vectors."""

    retriever: DenseRetriever
    vectors: VectorSource
    verify: bool = False  # encode a sample again and compare (the corpus's own embeddings column)


@dataclass
class BuildReport:
    manifest: CorpusManifest
    seconds: dict[str, float] = field(default_factory=dict)


def choose_bundle_kind(kind: str, count: int, dim: int, budget: int = EXACT_BUDGET_BYTES) -> str:
    """ "exact" or "compressed" for `kind` ("auto" decides by the float32 vectors' size)."""
    if kind not in BUNDLE_KINDS:
        raise CorpusError(f"a corpus bundle's index kind is one of {', '.join(BUNDLE_KINDS)}, not {kind!r}")
    if kind != "auto":
        return kind
    return "exact" if count * dim * 4 <= budget else "compressed"


def verify_vectors(
    retriever: DenseRetriever, corpus: TableCorpus, vectors: VectorSource, seed: int | None = None
) -> str:
    """Encode VERIFY_ROWS passages with `retriever`'s passage encoder and compare them with the
    given vectors: the words for the manifest when they agree (cosine >= MIN_COSINE each), a
    CorpusError saying why when they do not. The rows are drawn anew each time (`seed` None), so
    that whoever made the vectors cannot know which ones are checked. Without the encoder's
    weights: says it was not checked."""
    from ..errors import CheckpointNotFoundError
    from .vectors import gather_rows

    rows = np.sort(np.random.default_rng(seed).choice(len(corpus), size=min(VERIFY_ROWS, len(corpus)), replace=False))
    try:
        fresh = retriever.encode_passages([corpus[int(i)].as_dict() for i in rows])
    except CheckpointNotFoundError as exc:
        log.warning("%s: the given vectors are not checked: %s", retriever.name, exc)
        return "not checked: the passage encoder's weights are not on this machine"
    given = gather_rows(vectors, rows)
    cosine = np.sum(fresh * given, axis=1) / (np.linalg.norm(fresh, axis=1) * np.linalg.norm(given, axis=1) + 1e-12)
    worst = float(cosine.min())
    if worst < MIN_COSINE:
        raise CorpusError(
            f"the {retriever.name} vectors ({vectors.origin}) were not made by this server's {retriever.name} passage "
            f"encoder: {len(rows)} passages encoded again agree to cosine {worst:.3f} at worst (at least {MIN_COSINE} "
            "is needed). Give the checkpoint they were made with, or vectors made by this one."
        )
    return f"{len(rows)} passages encoded again: cosine {worst:.4f} or more"


def _write_exact(out: Path, vectors: VectorSource) -> IndexEntry:
    """The vectors as float32 .npy, streamed (searched whole in memory once opened)."""
    array = np.lib.format.open_memmap(
        out / EXACT_VECTORS, mode="w+", dtype=np.float32, shape=(vectors.count, vectors.dim)
    )
    at = 0
    for chunk in vectors.chunks():
        array[at : at + len(chunk)] = chunk
        at += len(chunk)
    array.flush()
    del array
    return IndexEntry(kind="exact", recall_at_10=1.0, nbytes_in_memory=vectors.count * vectors.dim * 4)


def _write_compressed(out: Path, vectors: VectorSource, progress) -> IndexEntry:
    from .compressed import FAISS_FILE, REFINE_CODES_FILE, build_compressed

    record = build_compressed(vectors, out, target_recall=TUNED_RECALL, progress=progress).record
    return IndexEntry(
        kind="compressed",
        recall_at_10=record.measured.recall_at_10,
        reached=record.reached,
        # What every search reads stays in memory: the candidate index, and the refine codes where there are some.
        nbytes_in_memory=record.files.get(FAISS_FILE, 0) + record.files.get(REFINE_CODES_FILE, 0),
    )


def build_corpus_bundle(
    out: str | Path,
    name: str,
    passages: Iterable[pa.RecordBatch],
    *,
    source: str,
    dense: Mapping[str, Callable[[TableCorpus], DenseInput]] = {},
    bm25: bool = True,
    kind: str = "auto",
    log_line: Callable[[str], None] = lambda line: None,
) -> CorpusManifest:
    """Write a corpus bundle into `out` (created; a manifest already there is removed first, so
    a bundle half rewritten is never opened): the passages, BM25 if asked, and for each
    `dense[name]` (called with the written corpus: it loads the retriever and opens the vectors)
    an index of `kind`. The manifest is written last. Returns it."""
    from .bm25 import BM25Index

    if WORK_DIR in dense:
        raise CorpusError(f"a corpus bundle's retriever cannot be named {WORK_DIR!r} (its folder holds vector shards)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    name = re.sub(r"[^\w .,:;'/+=@%&-]", "_", name)[:200] or "corpus"  # a name the manifest takes (ShownName)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    rows, fingerprint = write_passages(out / PASSAGES_FILE, passages)
    seconds["passages"] = time.perf_counter() - started
    corpus = open_passages(out / PASSAGES_FILE, name, fingerprint, rows)
    log_line(f"passages: {rows:,} in {seconds['passages']:.1f} s")
    if bm25:
        started = time.perf_counter()
        index = BM25Index.build((p.title, p.text) for p in corpus)
        index.save(out / BM25_DIR)
        seconds["bm25"] = time.perf_counter() - started
        log_line(f"bm25: built in {seconds['bm25']:.1f} s")
    retrievers: dict[str, RetrieverEntry] = {}
    for retriever_name, make in dense.items():
        started = time.perf_counter()
        given = make(corpus)
        model = given.retriever
        if given.vectors.count != rows or given.vectors.dim != model.dim:
            raise CorpusError(
                f"the {retriever_name} vectors ({given.vectors.origin}) are "
                f"{given.vectors.count:,} x {given.vectors.dim}; "
                f"the corpus has {rows:,} passages and the {retriever_name} checkpoint makes {model.dim}-d vectors"
            )
        verified = verify_vectors(model, corpus, given.vectors) if given.verify else "count and dimension"
        folder = out / retriever_name
        folder.mkdir(exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
        chosen = choose_bundle_kind(kind, rows, model.dim)
        entry = (
            _write_exact(folder, given.vectors) if chosen == "exact" else _write_compressed(folder, given.vectors, None)
        )
        seconds[retriever_name] = time.perf_counter() - started
        retrievers[retriever_name] = RetrieverEntry(
            family=model.family,
            checkpoints=checkpoint_identity(model),
            max_question_length=model.max_question_length,
            max_passage_length=model.max_passage_length,
            dim=model.dim,
            dtype=str(model.dtype),
            vectors=VectorsEntry(origin=given.vectors.origin[:2000], verified=verified),
            index=entry,
        )
        log_line(
            f"{retriever_name}: {chosen} index, recall@10 {entry.recall_at_10:.3f}, {seconds[retriever_name]:.1f} s"
        )
    manifest = CorpusManifest(
        format=FORMAT,
        format_version=VERSION,
        corpus=CorpusEntry(name=name[:2000], passages=rows, fingerprint=fingerprint, source=source[:2000]),
        retrievers=retrievers,
        bm25=bm25,
        files=_file_entries(out),
        build_seconds={k: round(v, 3) for k, v in seconds.items()},
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        libraries=_libraries(),
    )
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    return manifest


def _libraries() -> dict[str, str]:
    from .bundles import _libraries as versions

    return versions()


def _file_entries(out: Path) -> dict[str, FileEntry]:
    entries = {}
    files = (p for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(p for p in files if p.relative_to(out).parts[0] != WORK_DIR):
        size = path.stat().st_size
        entries[path.relative_to(out).as_posix()] = FileEntry(
            bytes=size, sha256=sha256_of(path) if size <= SMALL_FILE_BYTES else None
        )
    return entries


# -- opening ---------------------------------------------------------------------------------------------------
class CorpusBundle:
    """An opened corpus bundle: its manifest, its passages (memory-mapped), and its indexes,
    each opened on first use (`bm25()`, `dense_index(name, retriever)`)."""

    def __init__(self, root: Path, manifest: CorpusManifest, corpus: TableCorpus):
        self.root, self.manifest, self.corpus = root, manifest, corpus

    @property
    def retrievers(self) -> list[str]:
        return list(self.manifest.retrievers)

    def bm25(self):
        """The bundle's BM25 index, memory-mapped; CorpusError if the bundle has none."""
        from .bm25 import BM25Index

        if not self.manifest.bm25:
            raise CorpusError(f"the corpus bundle {self.corpus.name!r} has no BM25 index")
        index = BM25Index.open(self.root / BM25_DIR, mmap=True)
        if index.size != len(self.corpus):
            raise CorpusError(f"its BM25 index holds {index.size:,} passages, not {len(self.corpus):,}")
        return index

    def entry(self, name: str) -> RetrieverEntry:
        """The manifest's entry for the dense retriever `name`; CorpusError saying so when it has none."""
        entry = self.manifest.retrievers.get(name)
        if entry is None:
            have = ", ".join(self.retrievers) or "none"
            raise CorpusError(
                f"the corpus bundle {self.corpus.name!r} has no {name} index (it has: {have}); at this size it is "
                f"not built on a click: build it with `python -m lfqa_demo index --corpus ... --vectors {name}=PATH`"
            )
        return entry

    def dense_index(self, name: str, retriever: DenseRetriever) -> DenseIndex:
        """The bundle's index for `name`, after checking that it was made for `retriever` (the
        checkpoints, max lengths and dimension this server uses). CorpusError saying why otherwise."""
        entry = self.entry(name)
        why = _mismatches(entry, retriever)
        if why:
            raise CorpusError(f"the bundle's {name} index does not fit this server's {name}: {'; '.join(why)}")
        started = time.perf_counter()
        folder = self.root / name
        if entry.index.kind == "exact":
            vectors = _read_exact(folder / EXACT_VECTORS, len(self.corpus), entry.dim)
            index, kind = make_faiss_index(vectors, "flat"), "exact"
            note = None
        elif entry.index.kind == "compressed":
            from .compressed import open_compressed

            index, kind = open_compressed(folder), "compressed"
            if index.ntotal != len(self.corpus) or index.d != entry.dim:
                raise CorpusError(
                    f"its {name} index holds {index.ntotal:,} x {index.d}, not {len(self.corpus):,} x {entry.dim}"
                )
            note = f"compressed index: keeps {entry.index.recall_at_10:.0%} of the exact top 10"
        else:
            raise CorpusError(f"its {name} index is of an unknown kind {entry.index.kind[:40]!r}")
        seconds = time.perf_counter() - started
        log.info("%s: the corpus bundle's %s index opened in %.2f s", name, kind, seconds)
        return DenseIndex(
            name,
            kind,
            index,
            entry.dim,
            self.manifest.build_seconds.get(name, 0.0),
            True,
            folder,
            origin="prebuilt",
            note=note,
            recall=entry.index.recall_at_10,
        )


def _mismatches(entry: RetrieverEntry, retriever: DenseRetriever) -> list[str]:
    why = []
    got = [c.model_dump(exclude_none=True) for c in entry.checkpoints]
    if got != checkpoint_identity(retriever):
        made = ", ".join(f"{c.source[:100]}@{c.revision[:12]}" for c in entry.checkpoints)
        uses = ", ".join(f"{c['source']}@{c['revision'][:12]}" for c in checkpoint_identity(retriever))
        why.append(f"its vectors were made with {made}; this server uses {uses}")
    for name in ("family", "max_question_length", "max_passage_length", "dim"):
        if getattr(entry, name) != getattr(retriever, name):
            why.append(f"{name} {repr(getattr(entry, name))[:40]}, not {getattr(retriever, name)!r}")
    return why


def _read_exact(path: Path, rows: int, dim: int) -> np.ndarray:
    """The float32 vectors searched exactly, memory-mapped; refused when they are not [rows, dim],
    larger than an exact index is ever built (4x the build's budget: a manifest saying "exact" over
    64 GB must not fill the memory), or not finite."""
    where = f"{path.parent.name}/{path.name}"
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{where} cannot be read ({type(exc).__name__})") from None
    if vectors.dtype != np.float32 or vectors.shape != (rows, dim):
        raise CorpusError(f"{where} is {vectors.dtype} {vectors.shape}, not float32 ({rows}, {dim})")
    if vectors.nbytes > 4 * EXACT_BUDGET_BYTES:
        raise CorpusError(f"{where} holds {vectors.nbytes:,} bytes: too many to search exactly in memory")
    for start in range(0, rows, 65_536):
        if not np.isfinite(vectors[start : start + 65_536]).all():
            raise CorpusError(f"{where} holds values that are not finite (from row {start:,})")
    return vectors


def open_corpus_bundle(directory: str | Path) -> CorpusBundle:
    """The corpus bundle in `directory`, after the checks of the module docstring (every index
    itself is opened, and checked, on first use). Raises CorpusError saying why."""
    root = Path(directory)
    try:
        manifest = read_json_model(root / MANIFEST, CorpusManifest)
    except FileNotFoundError:
        raise CorpusError(f"{root} is not a corpus bundle: it has no {MANIFEST}") from None
    except OSError as exc:
        raise CorpusError(f"{root}/{MANIFEST} cannot be read ({exc.strerror or type(exc).__name__})") from None
    except IndexRefused as exc:
        raise CorpusError(f"{root}/{MANIFEST} {exc}") from None
    if manifest.format != FORMAT or manifest.format_version != VERSION:
        raise CorpusError(
            f"{root} holds a {manifest.format[:40]!r} version {manifest.format_version}; this version reads "
            f"{FORMAT!r} version {VERSION}"
        )
    _check_files(root, manifest)
    # Its key among the server's corpora is its own (the manifest's hash), never the content
    # fingerprint the manifest claims: that one could name another corpus, the bundled one say.
    key = "bundle-" + sha256_of(root / MANIFEST)[:32]
    corpus = open_passages(root / PASSAGES_FILE, manifest.corpus.name, key, manifest.corpus.passages)
    return CorpusBundle(root, manifest, corpus)


def needed_files(manifest: CorpusManifest) -> set[str]:
    """Every file the code opens for this bundle: each must be listed (and so checked)."""
    from .bm25 import DATA_FILE, INDICES_FILE, INDPTR_FILE, PARAMS_FILE, SETTINGS_FILE, VOCAB_FILE
    from .compressed import FAISS_FILE, OFFSET_FILE, RECORD_FILE, RESCORE_FILE, SCALE_FILE

    needed = {PASSAGES_FILE}
    if manifest.bm25:
        bm25 = (DATA_FILE, INDICES_FILE, INDPTR_FILE, PARAMS_FILE, SETTINGS_FILE, VOCAB_FILE)
        needed |= {f"{BM25_DIR}/{f}" for f in bm25}
    for name, entry in manifest.retrievers.items():
        files = (
            (EXACT_VECTORS,)
            if entry.index.kind == "exact"
            else (FAISS_FILE, RECORD_FILE, RESCORE_FILE, SCALE_FILE, OFFSET_FILE)
        )
        needed |= {f"{name}/{f}" for f in files}
    return needed


def _check_files(root: Path, manifest: CorpusManifest) -> None:
    """Every file the bundle needs is listed; every listed one is a regular file inside the bundle
    (not a link, not a pipe), of its size, and the small ones of their sha256."""
    missing = sorted(needed_files(manifest) - set(manifest.files))
    if missing:
        raise CorpusError(f"the bundle's manifest does not list {', '.join(missing[:3])}")
    resolved = root.resolve()
    for name, entry in manifest.files.items():
        path = (root / name).resolve()
        if resolved not in path.parents:
            raise CorpusError(f"the bundle's manifest names a file outside the bundle ({name[:80]!r})")
        try:
            mode = os.lstat(root / name).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise CorpusError(f"the bundle's {name} is not a regular file (a link, a pipe or a folder)")
        size = path.stat().st_size if mode is not None else None
        if size is None:
            raise CorpusError(f"the bundle is incomplete: {name[:200]} is missing")
        if size != entry.bytes:
            raise CorpusError(
                f"the bundle is damaged: {name[:200]} has {size:,} bytes, the manifest says {entry.bytes:,}"
            )
        if entry.sha256 is not None and sha256_of(path) != entry.sha256:
            raise CorpusError(f"the bundle is damaged: {name[:200]} does not have the checksum its manifest gives")
        if entry.sha256 is None and size <= SMALL_FILE_BYTES:
            raise CorpusError(f"the bundle's manifest gives no checksum for the small file {name[:200]}")


def describe(bundle: CorpusBundle) -> dict:
    """What the Corpus tab and the status panel show of a bundle, as data."""
    m = bundle.manifest
    return {
        "name": m.corpus.name,
        "passages": m.corpus.passages,
        "bytes_on_disk": sum(f.bytes for f in m.files.values()),
        "retrievers": {
            n: {
                "kind": e.index.kind,
                "recall_at_10": e.index.recall_at_10,
                "bytes_in_memory": e.index.nbytes_in_memory,
            }
            for n, e in m.retrievers.items()
        },
        "bm25": m.bm25,
        "built_at": m.built_at,
    }


def manifest_json(manifest: CorpusManifest) -> str:
    return json.dumps(json.loads(manifest.model_dump_json()), indent=1)
