"""Corpora at Wikipedia's scale: passages in an Arrow file, memory-mapped, read by row.

A `Corpus` holds one Python object per passage, which is right for the bundled corpus and for
uploads (at most 20,000 passages) and impossible for DPR's 21,015,300. A `TableCorpus` keeps
the passages in an Arrow IPC file (`passages.arrow`: columns id, title, text; record batches of
BATCH_ROWS rows, zstd-compressed) mapped into memory: opening it reads the footer only, a
passage's batch is read and decompressed when it is asked for, and the pages it touched and a
few recent batches are the only memory it costs. Its fingerprint is not computed at start-up:
the corpus bundle's manifest gives the one computed when the file was written (corpus_bundles.py).

Where passages come from: Parquet shards in wiki_dpr's layout (`id`, `title`, `text`, optional
`embeddings`: `parquet_batches`), or any `Corpus` (`corpus_batches`). Rows are kept as they are,
one row one passage, never split, dropped or merged: row i's vectors are passage i's.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import CorpusError
from ..inputs import clean_text
from .corpus import FINGERPRINT_VERSION, Corpus, Passage, hash_passage

PASSAGES_FILE = "passages.arrow"
# Rows per record batch, every batch but the last: row i lives in batch i // BATCH_ROWS, so nothing
# is read at open but the footer. Small, because a batch is the unit zstd decompresses: 128 rows
# are ~75 KB of text, ~0.2 ms to read one passage cold; zstd keeps English text at about a third.
BATCH_ROWS = 128
COMPRESSION = "zstd"
CACHED_BYTES = 32 << 20  # recently read batches kept decompressed: a page of hits reads few twice
# A batch is at most 128 passages of MAX_PASSAGE_CHARS (4,000 characters, 16 KB in UTF-8) and their
# ids and titles: past this it is not one this module wrote (a hostile file's "compression bomb").
MAX_BATCH_BYTES = 8 << 20
SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string())])
_BATCH_ROWS_KEY = b"lfqa.batch_rows"


class TableCorpus(Corpus):
    """A Corpus whose passages live in a memory-mapped Arrow file (see the module docstring).

    It answers everything a Corpus does (`len`, `corpus[i]`, iteration, `fingerprint`); `passages`
    and `as_dicts()` build the whole list and are for small corpora only. Thread-safe."""

    def __init__(self, name: str, reader: ipc.RecordBatchFileReader, rows: int, fingerprint: str, path: Path):
        self.name = name
        self._reader = reader
        self._rows = rows
        self._fingerprint = fingerprint
        self.path = path
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, pa.RecordBatch] = OrderedDict()
        self._cached_bytes = 0

    def __len__(self) -> int:
        return self._rows

    def _batch(self, b: int) -> pa.RecordBatch:
        """Record batch `b`, decompressed (from the cache when it was read lately) and checked: its
        row count, its size, and its buffers (Arrow's full validation: offsets that point outside
        a buffer would otherwise crash the process when a passage is read)."""
        with self._lock:
            batch = self._cache.get(b)
            if batch is not None:
                self._cache.move_to_end(b)
                return batch
            batch = self._read_checked(b)
            self._cache[b] = batch
            self._cached_bytes += batch.nbytes
            while self._cached_bytes > CACHED_BYTES and len(self._cache) > 1:
                self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
            return batch

    def _read_checked(self, b: int) -> pa.RecordBatch:
        want = min(BATCH_ROWS, self._rows - b * BATCH_ROWS)
        try:
            batch = self._reader.get_batch(b)
            if batch.num_rows != want:
                raise CorpusError(f"{self.path.name}: batch {b} holds {batch.num_rows} rows, not {want}")
            if batch.nbytes > MAX_BATCH_BYTES:
                raise CorpusError(f"{self.path.name}: batch {b} holds {batch.nbytes:,} bytes, more than passages can")
            batch.validate(full=True)
        except (pa.ArrowException, OSError, ValueError) as exc:  # ArrowInvalid, a short read, bad UTF-8...
            raise CorpusError(f"{self.path.name}: batch {b} is damaged ({type(exc).__name__})") from None
        return batch

    def __getitem__(self, i: int) -> Passage:
        size = len(self)
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"passage index must be an integer, not {type(i).__name__}")
        if not -size <= i < size:
            raise IndexError(f"passage {i} is out of range ({size} passages)")
        b, row = divmod(int(i) % size, BATCH_ROWS)
        batch = self._batch(b)
        return Passage(*(batch.column(c)[row].as_py() for c in range(3)))

    def __iter__(self) -> Iterator[Passage]:
        for batch in self.batches():
            yield from (Passage(*row) for row in zip(*(batch.column(c).to_pylist() for c in range(3))))

    def __repr__(self) -> str:
        return f"TableCorpus({self.name!r}, {len(self):,} passages)"

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Corpus) and self.fingerprint == other.fingerprint and len(self) == len(other)

    @property
    def passages(self) -> list[Passage]:  # type: ignore[override]  (a dataclass field in Corpus)
        return list(self)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The passages as Arrow record batches (id, title, text), in order (not cached: a pass
        over the whole corpus must not push out what visitors read)."""
        for b in range(self._reader.num_record_batches):
            with self._lock:
                batch = self._read_checked(b)
            yield batch


def open_passages(path: Path, name: str, fingerprint: str, expected_rows: int) -> TableCorpus:
    """The TableCorpus in the Arrow file `path`, memory-mapped (only the footer is read); its schema,
    batch size and batch count must be what this module writes for the manifest's row count
    (CorpusError otherwise; each batch's rows are checked again when it is read)."""
    try:
        reader = ipc.open_file(pa.memory_map(str(path)))
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(
            f"{path.name} cannot be read as an Arrow file ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    metadata = reader.schema.metadata or {}
    if not reader.schema.remove_metadata().equals(SCHEMA):
        raise CorpusError(f"{path.name} does not have the columns id, title, text (strings)")
    if metadata.get(_BATCH_ROWS_KEY) != str(BATCH_ROWS).encode():
        raise CorpusError(f"{path.name} was not written in batches of {BATCH_ROWS} rows (write it again with `index`)")
    batches = -(-expected_rows // BATCH_ROWS)
    if reader.num_record_batches != batches:
        rows = (reader.num_record_batches - 1) * BATCH_ROWS if reader.num_record_batches else 0
        raise CorpusError(
            f"{path.name} holds {reader.num_record_batches:,} batches (about {rows:,} passages); "
            f"the manifest says {expected_rows:,}"
        )
    corpus = TableCorpus(name, reader, expected_rows, fingerprint, path)
    try:
        if batches:
            corpus._batch(batches - 1)  # the last batch's size, checked now: a short file is refused at once
    except (CorpusError, OSError, pa.ArrowInvalid) as exc:
        raise CorpusError(
            f"{path.name} does not hold the {expected_rows:,} passages the manifest says ({exc})"
        ) from None
    return corpus


def write_passages(
    path: Path, batches: Iterable[pa.RecordBatch], progress: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """Write passage batches (id, title, text) to the Arrow file `path` in batches of BATCH_ROWS,
    zstd-compressed; returns (rows, fingerprint), the fingerprint being Corpus.fingerprint of the
    same passages (computed as they stream by). Ids must be unique (vectors may be keyed by them):
    a repeated one is a CorpusError."""
    h = hashlib.sha256(FINGERPRINT_VERSION)
    seen: set[str] = set()
    rows = 0
    pending: list[pa.RecordBatch] = []
    schema = SCHEMA.with_metadata({_BATCH_ROWS_KEY: str(BATCH_ROWS).encode()})
    options = ipc.IpcWriteOptions(compression=COMPRESSION)
    with ipc.new_file(str(path), schema, options=options) as writer:

        def flush(final: bool) -> None:
            nonlocal pending
            table = (
                pa.Table.from_batches(pending, SCHEMA) if pending else pa.table({n: [] for n in SCHEMA.names}, SCHEMA)
            )
            whole = table.num_rows - (0 if final else table.num_rows % BATCH_ROWS)
            for start in range(0, whole, BATCH_ROWS):
                writer.write_batch(table.slice(start, BATCH_ROWS).combine_chunks().to_batches()[0])
            pending = table.slice(whole).combine_chunks().to_batches() if whole < table.num_rows else []

        for batch in batches:
            for pid, title, text in zip(*(batch.column(c).to_pylist() for c in range(3))):
                if pid in seen:
                    raise CorpusError(f"the passage id {pid[:80]!r} appears twice (row {rows + 1:,} and before)")
                seen.add(pid)
                hash_passage(h, pid, title, text)
                rows += 1
            pending.append(batch)
            if sum(b.num_rows for b in pending) >= 64 * BATCH_ROWS:
                flush(final=False)
            if progress is not None:
                progress(rows)
        flush(final=True)
    return rows, h.hexdigest()


def clean_strings(values: Iterable[object]) -> list[str]:
    """A column's values as the corpus keeps them: text (a missing value is ""), cleaned as every
    text at the door is (inputs.clean_text). Every reader of passages applies it, so that the
    same shard gives the same passages, and the same vectors, whoever reads it."""
    return [clean_text("" if v is None else str(v)) for v in values]


def parquet_batches(
    shards: Sequence[Path],
    *,
    max_passages: int | None = None,
    text_column: str = "text",
    title_column: str = "title",
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The passages of Parquet shards in wiki_dpr's layout as (id, title, text) batches, in row
    order, stopping after `max_passages` rows without reading the rest. Only those three columns
    are read (never `embeddings`). No `id` column: ids are row numbers from "1", as wiki_dpr's;
    no title column: empty titles."""
    done = 0
    for shard in shards:
        if max_passages is not None and done >= max_passages:
            return
        try:
            file = pq.ParquetFile(shard)
        except (OSError, pa.ArrowException) as exc:
            raise CorpusError(f"{shard.name} is not a readable Parquet file ({str(exc)[:200]})") from None
        names = file.schema_arrow.names
        if text_column not in names:
            raise CorpusError(f"{shard.name} has no {text_column!r} column (its columns: {', '.join(names[:20])})")
        columns = [c for c in ("id", title_column, text_column) if c in names]
        for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
            if max_passages is not None and done >= max_passages:
                return
            if max_passages is not None:
                batch = batch.slice(0, max_passages - done)
            n = batch.num_rows
            ids = (
                clean_strings(batch.column("id").to_pylist())
                if "id" in columns
                else [str(i) for i in range(done + 1, done + n + 1)]
            )
            titles = clean_strings(batch.column(title_column).to_pylist()) if title_column in columns else [""] * n
            texts = clean_strings(batch.column(text_column).to_pylist())
            done += n
            yield pa.record_batch([pa.array(ids, pa.string()), pa.array(titles), pa.array(texts)], schema=SCHEMA)


def corpus_batches(corpus: Corpus, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Any Corpus as (id, title, text) batches (a TableCorpus's own batches as they are)."""
    if isinstance(corpus, TableCorpus):
        yield from corpus.batches()
        return
    for start in range(0, len(corpus), batch_rows):
        part = [corpus[i] for i in range(start, min(start + batch_rows, len(corpus)))]
        yield pa.record_batch(
            [
                pa.array([p.id for p in part], pa.string()),
                pa.array([p.title for p in part], pa.string()),
                pa.array([p.text for p in part], pa.string()),
            ],
            schema=SCHEMA,
        )
