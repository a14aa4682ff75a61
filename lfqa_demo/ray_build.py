"""`index --engine ray`: a corpus's passage vectors encoded with Ray Data, shard by shard, resumable.

    python -m lfqa_demo index --corpus DIR --retrievers dpr,bm25 --engine ray [--workers N] --out OUT

The passages are read as Ray Data blocks from the corpus's Parquet shards (id, title and text
only) and encoded by a pool of actors, each holding one retriever loaded once (`PassageEncoder`:
the in-process build's `encode_passages`, its batching and its dtype policy, so that with
`--dtype float32` both give the same vectors up to float rounding): one actor per GPU where the
cluster has GPUs, else `--workers` CPU actors. `ray.init()` joins the cluster at RAY_ADDRESS
when it is set, else starts one on this machine.

Each input shard gives one output shard in OUT/vectors/<retriever>/, written as soon as its rows
are back (they come back in corpus order: Ray Data's preserve_order):

    vectors-00003-of-00050.npy        float32 [rows, dim]: row i is passage i of input shard 3
    vectors-00003-of-00050.ids.arrow  those passages' ids (Arrow IPC, one string column)
    shards.json                       ShardsManifest: the retriever's identity and the input
                                      shards, then per shard written its rows, first and last
                                      id and both files' sha256

Every file is written under a hidden temporary name and renamed when complete, and a shard is
entered in shards.json only after both renames. So the same command run again (after a crash, a
kill or Ctrl-C) keeps every shard whose files match their entry and encodes only the others: a
temporary file, a file without an entry, or one whose sha256 differs is removed and its shard
encoded again, never taken. A manifest made for other checkpoints, another dtype or other input
shards is not resumed from: everything is encoded again.

The finished folder is row-aligned `.npy` shards in corpus order, which `--vectors
NAME=OUT/vectors/NAME` reads (vector_files.py); it is checked first (`check_shards`: every shard
entered, the ids in corpus order, the dimension; NaN was refused as each shard was written).

Ray is a build dependency only (requirements-build.txt), imported inside these functions: the
app and the in-process build never import it. LFQA_RAY_TEST_PAUSE_S (tests only) makes the
build wait that many seconds after each shard, so that a test can kill it between two shards.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from pydantic import ValidationError

from .errors import CheckpointError, CorpusError, InvalidInputError, MissingDependencyError
from .models.loading import load_retriever
from .models.retrievers import DenseRetriever, RetrieverSpec
from .retrieval.corpus_bundles import WORK_DIR
from .retrieval.index_checks import Count, Name, Sha256, StrictModel, Text
from .retrieval.indexes import checkpoint_identity, sha256_of
from .retrieval.tables import clean_strings
from .retrieval.vector_files import check_vectors, open_vector_files

FORMAT = "lfqa-demo vector shards"
VERSION = 1
SHARDS_MANIFEST = "shards.json"
INSTALL = "pip install -r requirements-build.txt"
# Passages per Ray block and per actor call. An actor sorts each call's passages by length before
# batching them (retrievers.length_batches), so larger calls pad less; 1,024 passages of ~150 tokens
# are a minute or two of a full-size encoder on one CPU core (a second or less on a GPU): small
# enough to spread over the actors and to report progress often.
BLOCK_ROWS = 1024
# A worker that dies (out of memory, a lost node) is restarted and its call retried this many times;
# then the build fails rather than retrying forever (Ray Data's default).
MAX_RESTARTS = 3
MAX_DEFAULT_CPU_WORKERS = 8  # each CPU actor holds a copy of the model (DPR's passage encoder: 440 MB)
PAUSE_ENV = "LFQA_RAY_TEST_PAUSE_S"
COLUMNS = ("id", "title", "text")  # what is read of a shard: never its embeddings


# -- what is built ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputShard:
    """One Parquet shard of the corpus as this build uses it: its first `rows` rows (all of them
    but in the last shard kept under --max-passages), passages `start` to `start + rows`."""

    path: Path
    rows: int
    start: int
    output: str  # its vectors' file name, "vectors-00003-of-00050.npy"

    @property
    def ids_file(self) -> str:
        return ids_file(self.output)


@dataclass(frozen=True)
class EncodeProgress:
    """How far one retriever's vectors are: passages with vectors (shards kept from an earlier run
    included) of all, and what this run encoded in how long. `shard` names the output shard just
    written, when this report is about one."""

    retriever: str
    done: int
    total: int
    encoded: int
    seconds: float
    shard: str | None = None
    shard_rows: int = 0

    @property
    def rate(self) -> float:
        """Passages encoded per second by this run."""
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """At this run's rate; None before any passage is encoded."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass(frozen=True)
class EncodeOptions:
    """How the actors encode: how many, what each asks of Ray (`num_gpus`, `num_cpus`), and the
    retriever's device, dtype (None: each actor's own device and policy) and batch size."""

    actors: int
    resources: dict[str, float]
    device: str | None
    dtype: str | None
    batch_size: int


@dataclass(frozen=True)
class RayVectors:
    """One retriever's finished vector shards: where, which shards an earlier run had written
    (`kept`) and which this run encoded, and this run's encoding time and passages."""

    retriever: str
    folder: Path
    kept: tuple[str, ...]
    encoded: tuple[str, ...]
    passages_encoded: int
    seconds: float


class ShardEntry(StrictModel):
    """One output shard in shards.json."""

    shard: Name
    source: Name  # the input Parquet shard's file name
    rows: Count
    first_id: Text | None
    last_id: Text | None
    sha256: Sha256
    ids_sha256: Sha256
    written_at: Name


class ShardsManifest(StrictModel):
    """shards.json: what the shards were made from (`identity`: another one starts over) and
    those written so far, in corpus order."""

    format: Name
    format_version: int
    retriever: Name
    identity: dict[str, Any]
    shards: list[ShardEntry]


# -- Ray -------------------------------------------------------------------------------------------------
def require_ray():
    """The `ray` module (with Ray Data); MissingDependencyError saying how to install it otherwise."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the `data` extra: its own import error)
    except ImportError as exc:
        raise MissingDependencyError(
            f"--engine ray needs Ray, a build-only dependency that is not installed here ({exc}): {INSTALL}"
        ) from None
    return ray


def start_ray(ray, workers: int | None) -> bool:
    """Join the cluster at RAY_ADDRESS, or start one here: `num_cpus` one per CPU actor and one
    more for reading the shards (actors holding every CPU would leave the read tasks waiting
    forever). Nothing when Ray is already initialised in this process. Returns whether it
    started or joined one (then `ray.shutdown()` is the caller's)."""
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **quiet)
    else:
        import torch

        actors = workers or torch.cuda.device_count() or min(os.cpu_count() or 1, MAX_DEFAULT_CPU_WORKERS)
        ray.init(address="local", num_cpus=actors + 1, include_dashboard=False, **quiet)
    return True


def actor_plan(resources: Mapping[str, float], workers: int | None) -> tuple[int, dict[str, float]]:
    """(actors, what each asks of Ray) on a cluster with `resources`: where it has GPUs, one GPU
    each, one per GPU (at most --workers); else one CPU each, --workers of them (default: one per
    CPU but the one left for reading, at most MAX_DEFAULT_CPU_WORKERS)."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return min(workers or gpus, gpus), {"num_gpus": 1, "num_cpus": 1}
    cpus = int(resources.get("CPU", 2))
    return workers or max(1, min(cpus - 1, MAX_DEFAULT_CPU_WORKERS)), {"num_cpus": 1}


class PassageEncoder:
    """One actor's retriever, loaded once when the actor starts; called with blocks of passages
    (id, title, text and Ray's path column), it returns their vectors with the path and ids."""

    def __init__(self, spec: str | RetrieverSpec, device: str | None, dtype: str | None, batch_size: int, model: dict):
        import ray
        import torch

        # As many torch threads as CPUs Ray gave this actor: an actor inherits the driver's
        # OMP_NUM_THREADS, and two actors of 2 threads each on 2 cores ran 4x slower than one.
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        self.retriever = load_retriever(spec, device=device, dtype=dtype)
        self.batch_size = batch_size
        found = model_identity(self.retriever)
        if found != model:  # another revision in this node's cache would make other vectors
            raise CheckpointError(
                f"a Ray worker loaded {self.retriever.name} as {found}, not as the build did ({model}): "
                "give every node the same checkpoints"
            )

    def __call__(self, block: pa.Table) -> dict[str, np.ndarray]:
        n = block.num_rows
        titles = clean_strings(block.column("title").to_pylist()) if "title" in block.column_names else [""] * n
        texts = clean_strings(block.column("text").to_pylist())
        passages = [{"title": title, "text": text} for title, text in zip(titles, texts)]
        out = {
            "path": np.asarray(block.column("path").to_pylist(), dtype=object),
            "vector": self.retriever.encode_passages(passages, batch_size=self.batch_size),  # (n, dim) float32
        }
        if "id" in block.column_names:
            out["id"] = np.asarray(clean_strings(block.column("id").to_pylist()), dtype=object)
        return out


def encode_with_ray(
    out: Path,
    shards: Sequence[Path],
    names: Sequence[str],
    specs: Mapping[str, str | RetrieverSpec],
    *,
    workers: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = 32,
    max_passages: int | None = None,
    progress: Callable[[EncodeProgress], None] | None = None,
) -> list[RayVectors]:
    """Encode the passages of the Parquet `shards` (the first `max_passages`) with each dense
    retriever in `names` into out/vectors/<name>/ (the module docstring), resuming from what an
    earlier run left there; each retriever's folder is checked when done. Ray is started or
    joined only when some shard is left to encode, and a Ray started here is shut down before
    returning."""
    ray = require_ray()
    plan = plan_shards(shards, max_passages)
    found = [
        resume_shards(Path(out) / WORK_DIR / name, name, specs.get(name, name), plan, device, dtype) for name in names
    ]
    if not any(f.pending for f in found):
        return [_encode_retriever(ray, f, plan, None, progress) for f in found]
    started = start_ray(ray, workers)
    try:
        options = EncodeOptions(*actor_plan(ray.cluster_resources(), workers), device, dtype, batch_size)
        return [_encode_retriever(ray, f, plan, options, progress) for f in found]
    finally:
        if started:
            ray.shutdown()


@dataclass
class FoundShards:
    """One retriever's shards as a run finds them: those an earlier run left whole (`kept`), and
    the input shards still to encode."""

    name: str
    spec: str | RetrieverSpec
    retriever: DenseRetriever
    folder: Path
    identity: dict
    kept: dict[str, ShardEntry]
    pending: list[InputShard]


def resume_shards(
    folder: Path, name: str, spec: str | RetrieverSpec, plan: list[InputShard], device: str | None, dtype: str | None
) -> FoundShards:
    """What is left to encode for `name` in `folder`, everything not kept removed (`kept_shards`)."""
    # Loaded here too: its identity and dimension name the shards (the bundle build uses it next).
    retriever = load_retriever(spec, device=device, dtype=dtype)
    identity = build_identity(retriever, dtype, plan)
    folder.mkdir(parents=True, exist_ok=True)
    kept = kept_shards(folder, name, plan, identity)
    pending = [shard for shard in plan if shard.output not in kept]
    return FoundShards(name, spec, retriever, folder, identity, kept, pending)


def _encode_retriever(
    ray,
    found: FoundShards,
    plan: list[InputShard],
    options: EncodeOptions | None,
    progress: Callable[[EncodeProgress], None] | None,
) -> RayVectors:
    """Encode `found.pending` by one Ray Data pass over those input shards, writing each output
    shard as it completes, then check the whole folder."""
    name, folder = found.name, found.folder
    total, started = sum(s.rows for s in plan), time.perf_counter()
    done, encoded = total - sum(s.rows for s in found.pending), 0

    def report(rows: int, shard: InputShard | None = None) -> None:
        nonlocal done, encoded
        done, encoded = done + rows, encoded + rows
        if progress is not None:
            elapsed = time.perf_counter() - started
            written = dict(shard=shard.output, shard_rows=shard.rows) if shard else {}
            progress(EncodeProgress(name, done, total, encoded, elapsed, **written))

    if found.pending:
        assert options is not None, "Ray options are needed when shards are pending"
        writer = ShardWriter(folder, name, found.identity, list(found.kept.values()), found.retriever.dim)
        dataset = _dataset(ray, found.pending, found.spec, model_identity(found.retriever), options)
        assembler = ShardAssembler(found.pending, writer, on_rows=report, on_shard=lambda shard: report(0, shard))
        with _quiet_ray():
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                assembler.add(batch["path"], batch.get("id"), batch["vector"])
        assembler.finish()
    check_shards(folder, name, plan, found.retriever.dim)
    encoded_shards = tuple(s.output for s in found.pending)
    return RayVectors(name, folder, tuple(found.kept), encoded_shards, encoded, time.perf_counter() - started)


def _dataset(ray, pending: list[InputShard], spec: str | RetrieverSpec, model: dict, options: EncodeOptions):
    """The pending shards' passages read by Ray Data, in corpus order, encoded by the actor pool."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows back in corpus order: shards are cut from them
    context.enable_progress_bars = False  # the command line shows its own (passages/s, time left)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    columns = read_columns([s.path for s in pending])
    with _quiet_ray():
        dataset = (
            ray.data.read_parquet([str(s.path) for s in pending], include_paths=True)
            .select_columns([*columns, "path"])
            .limit(sum(s.rows for s in pending))  # --max-passages: only the last shard is cut
            .repartition(target_num_rows_per_block=BLOCK_ROWS)  # one block per actor call, spread over the actors
            .map_batches(
                PassageEncoder,
                fn_constructor_kwargs=dict(
                    spec=spec, device=options.device, dtype=options.dtype, batch_size=options.batch_size, model=model
                ),
                batch_size=BLOCK_ROWS,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=options.actors),
                max_restarts=MAX_RESTARTS,
                max_task_retries=MAX_RESTARTS,
                **options.resources,
            )
        )
    return dataset


@contextmanager
def _quiet_ray():
    """Ray's Python warnings silenced: that max_restarts is spelt otherwise from Ray 2.64 (pinned
    to 2.60 here), that a small corpus gives fewer blocks than there are actors..."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        warnings.filterwarnings("ignore", module=r"ray\.")
        yield


# -- the plan and the identity -------------------------------------------------------------------------------
def plan_shards(shards: Sequence[Path], max_passages: int | None) -> list[InputShard]:
    """The input shards in corpus order with their rows (from the Parquet footers), up to
    `max_passages`, each with its output shard's name. CorpusError for a shard without text."""
    kept: list[tuple[Path, int, int]] = []
    start = 0
    for path in shards:
        if max_passages is not None and start >= max_passages:
            break
        rows = _footer(path).num_rows
        if max_passages is not None:
            rows = min(rows, max_passages - start)
        kept.append((path, rows, start))
        start += rows
    if not start:
        raise CorpusError(f"the corpus ({shards[0].parent if shards else 'no shards'}) holds no passages")
    count = len(kept)
    return [InputShard(p, rows, at, f"vectors-{i:05d}-of-{count:05d}.npy") for i, (p, rows, at) in enumerate(kept)]


def read_columns(paths: Sequence[Path]) -> list[str]:
    """Which of id, title and text the shards have (the same in every one; text is needed)."""
    found = {path: [c for c in COLUMNS if c in _footer(path).schema.names] for path in paths}
    first = found[paths[0]]
    for path, columns in found.items():
        if "text" not in columns:
            raise CorpusError(f"{path.name} has no 'text' column")
        if columns != first:
            raise CorpusError(f"{path.name} has the columns {columns}, {paths[0].name} has {first}: make them alike")
    return first


def _footer(path: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(f"{path.name} is not a readable Parquet file ({str(exc)[:200]})") from None


def model_identity(retriever: DenseRetriever) -> dict:
    """What makes a retriever's passage vectors what they are, bar the dtype."""
    return {
        "family": retriever.family,
        "checkpoints": checkpoint_identity(retriever),
        "max_passage_length": retriever.max_passage_length,
        "dim": retriever.dim,
    }


def build_identity(retriever: DenseRetriever, dtype: str | None, plan: list[InputShard]) -> dict:
    """What a build's shards are made from: the model, the dtype asked for (each worker resolves
    "auto" for its own device), and each input shard's name, size and rows used."""
    return {
        **model_identity(retriever),
        "dtype": dtype or os.environ.get("LFQA_DTYPE") or "auto",
        "inputs": [{"source": s.path.name, "bytes": s.path.stat().st_size, "rows": s.rows} for s in plan],
    }


def ids_file(output: str) -> str:
    """The ids file beside the output shard `output` (its name does not end in .npy: not a vector shard)."""
    return output.removesuffix(".npy") + ".ids.arrow"


def shard_ids(shard: InputShard) -> pa.Array:
    """The ids the corpus gives the shard's passages (tables.parquet_batches's rule: the id
    column as text, else row numbers counted from 1 over the whole corpus)."""
    if "id" in _footer(shard.path).schema.names:
        values = pq.read_table(shard.path, columns=["id"]).column("id").slice(0, shard.rows).to_pylist()
        return pa.array(clean_strings(values), pa.string())
    return pa.array([str(i) for i in range(shard.start + 1, shard.start + shard.rows + 1)], pa.string())


# -- the shards on disk ---------------------------------------------------------------------------------------
def read_manifest(folder: Path) -> ShardsManifest | None:
    """The folder's shards.json; None when there is none or it is not one (then nothing is kept)."""
    try:
        return ShardsManifest.model_validate_json((folder / SHARDS_MANIFEST).read_bytes())
    except (OSError, ValidationError):
        return None


def kept_shards(folder: Path, name: str, plan: list[InputShard], identity: dict) -> dict[str, ShardEntry]:
    """The shards an earlier run of the same build wrote whole, by output name: entered in the
    manifest for the same input shard and rows, both files there with the recorded sha256. Every
    other file in `folder` (temporary, unentered, damaged, or from another build) is removed."""
    manifest = read_manifest(folder)
    same = manifest is not None and manifest.format_version == VERSION and manifest.identity == identity
    entries = {e.shard: e for e in manifest.shards} if same else {}
    kept = {}
    for shard in plan:
        entry = entries.get(shard.output)
        if entry and entry.source == shard.path.name and entry.rows == shard.rows and _intact(folder, entry):
            kept[shard.output] = entry
    keep = {SHARDS_MANIFEST} | {file for entry in kept.values() for file in (entry.shard, ids_file(entry.shard))}
    for path in folder.iterdir():
        if path.name not in keep and path.is_file():
            path.unlink()
    write_manifest(folder, name, identity, list(kept.values()))
    return kept


def _intact(folder: Path, entry: ShardEntry) -> bool:
    vectors, ids = folder / entry.shard, folder / ids_file(entry.shard)
    return (
        vectors.is_file()
        and ids.is_file()
        and sha256_of(vectors) == entry.sha256
        and sha256_of(ids) == entry.ids_sha256
    )


def write_manifest(folder: Path, name: str, identity: dict, entries: list[ShardEntry]) -> None:
    manifest = ShardsManifest(format=FORMAT, format_version=VERSION, retriever=name, identity=identity, shards=entries)
    _write_atomically(folder / SHARDS_MANIFEST, lambda f: f.write(manifest.model_dump_json(indent=1).encode()))


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` under a hidden temporary name, flushed to disk, then rename it into place: the
    file is whole or absent, whenever the process dies."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def _write_ids(file: BinaryIO, ids: pa.Array) -> None:
    table = pa.table({"id": ids})
    with ipc.new_file(file, table.schema) as writer:
        writer.write_table(table)


def read_ids(path: Path) -> pa.Array:
    with ipc.open_file(pa.memory_map(str(path))) as reader:
        return reader.read_all().column("id").combine_chunks()


class ShardWriter:
    """Writes output shards (vectors, then ids) and enters each in the manifest once both are whole."""

    def __init__(self, folder: Path, name: str, identity: dict, entries: list[ShardEntry], dim: int):
        self.folder, self.name, self.identity, self.dim = folder, name, identity, dim
        self.entries = {e.shard: e for e in entries}
        self.order = [item["source"] for item in identity["inputs"]]

    def write(self, shard: InputShard, vectors: np.ndarray, ids: pa.Array) -> ShardEntry:
        """`vectors` float32 [shard.rows, dim] and `ids` [shard.rows] of `shard`. CorpusError for
        vectors that are not finite (an encoder overflowing in half precision, say)."""
        if vectors.shape != (shard.rows, self.dim):
            raise RuntimeError(f"{shard.output}: {vectors.shape} vectors, not {(shard.rows, self.dim)}")
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if len(bad):
            raise CorpusError(
                f"the {self.name} encoder gave a vector that is not finite for passage {ids[int(bad[0])].as_py()!r} "
                f"({len(bad):,} in {shard.path.name}): try --dtype float32"
            )
        _write_atomically(self.folder / shard.output, lambda f: np.save(f, vectors, allow_pickle=False))
        _write_atomically(self.folder / shard.ids_file, lambda f: _write_ids(f, ids))
        entry = ShardEntry(
            shard=shard.output,
            source=shard.path.name,
            rows=shard.rows,
            first_id=ids[0].as_py() if len(ids) else None,
            last_id=ids[-1].as_py() if len(ids) else None,
            sha256=sha256_of(self.folder / shard.output),
            ids_sha256=sha256_of(self.folder / shard.ids_file),
            written_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        self.entries[shard.output] = entry
        entries = sorted(self.entries.values(), key=lambda e: self.order.index(e.source))
        write_manifest(self.folder, self.name, self.identity, entries)
        return entry


class ShardAssembler:
    """Cuts the encoded rows, which arrive in corpus order, into the pending shards and writes
    each as soon as it is complete (checking that each row is from the shard, and has the id,
    that it should)."""

    def __init__(
        self,
        pending: list[InputShard],
        writer: ShardWriter,
        on_rows: Callable[[int], None],
        on_shard: Callable[[InputShard], None],
    ):
        self.queue, self.writer, self.on_rows, self.on_shard = deque(pending), writer, on_rows, on_shard
        self.parts: list[np.ndarray] = []  # the current shard's vectors so far, (rows, dim) each
        self.have = 0
        self.expected: pa.Array | None = None
        self.pause = float(os.environ.get(PAUSE_ENV) or 0)
        self._flush_complete()

    def add(self, paths: np.ndarray, ids: np.ndarray | None, vectors: np.ndarray) -> None:
        """One batch of results: `paths` and `ids` [n] (ids None when the shards have no id
        column), `vectors` float32 [n, dim]."""
        at = 0
        while at < len(vectors):
            if not self.queue:
                raise RuntimeError("Ray Data gave more rows than the shards hold")
            shard = self.queue[0]
            take = min(shard.rows - self.have, len(vectors) - at)
            if self.expected is None:
                self.expected = shard_ids(shard)
            if any(Path(p).name != shard.path.name for p in paths[at : at + take]):
                raise RuntimeError(f"rows of another shard came back among those of {shard.path.name}")
            if ids is not None and list(ids[at : at + take]) != self.expected[self.have : self.have + take].to_pylist():
                raise RuntimeError(f"the rows of {shard.path.name} came back out of order")
            self.parts.append(vectors[at : at + take])
            self.have += take
            at += take
            self.on_rows(take)
            self._flush_complete()

    def finish(self) -> None:
        """After the last batch: every shard must have been written."""
        if self.queue:
            raise RuntimeError(f"Ray Data gave too few rows: {self.queue[0].path.name} is not complete")

    def _flush_complete(self) -> None:
        while self.queue and self.have == self.queue[0].rows:
            shard = self.queue.popleft()
            dim = self.writer.dim
            vectors = np.concatenate(self.parts) if self.parts else np.empty((0, dim), np.float32)
            ids = self.expected if self.expected is not None else shard_ids(shard)
            self.writer.write(shard, vectors.astype(np.float32, copy=False), ids)
            self.parts, self.have, self.expected = [], 0, None
            self.on_shard(shard)
            if self.pause:
                time.sleep(self.pause)


def check_shards(folder: Path, name: str, plan: list[InputShard], dim: int) -> None:
    """The finished folder before an index is built from it: every planned shard entered, with its
    rows and the ids the corpus gives those passages, in corpus order; as vector files (what
    --vectors reads), `count` rows of `dim`. Raises CorpusError."""
    manifest = read_manifest(folder)
    entered = [e.shard for e in manifest.shards] if manifest else []
    if entered != [s.output for s in plan]:
        raise CorpusError(f"{folder}: the shards entered ({len(entered)}) are not the {len(plan)} the corpus needs")
    for shard in plan:
        if not read_ids(folder / shard.ids_file).equals(shard_ids(shard)):
            raise CorpusError(f"{folder / shard.ids_file}: not the ids of {shard.path.name}'s passages, in order")
    check_vectors(open_vector_files(folder), count=sum(s.rows for s in plan), dim=dim, name=name)


def check_engine_options(names: Sequence[str]) -> None:
    """Fail before anything is read on what the Ray engine cannot build."""
    if WORK_DIR in names:
        raise InvalidInputError(f"--engine ray keeps its vector shards in OUT/{WORK_DIR}/: rename the retriever")
