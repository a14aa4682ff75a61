"""Passage vectors read from files: `.npy` and Parquet shards, and a corpus's `embeddings` column.

At Wikipedia's scale the vectors are not encoded on the serving machine. They come with the
corpus (wiki_dpr's Parquet shards carry an `embeddings` column: list<float32> of 768 from DPR's
passage encoder) or from files another build wrote, given as `index ... --vectors NAME=PATH`:

- `.npy` files (one, or a directory of shards in row order), float32 or float16 [rows, dim],
  memory-mapped and copied out chunk by chunk;
- Parquet files (one, or a directory of shards) with a vector column (list, large_list or
  fixed_size_list of float32 or float16), read by batches of that one column.

Files are row-aligned with the corpus (row i is passage i) unless a Parquet file has an `id`
column: then its rows are keyed by id, must cover every corpus id exactly once, and are put in
corpus order (see `KeyedVectors` for what that costs on disk). Everything here is a
`VectorSource` whose `count` and `dim` come from file headers and footers, not from reading the
vectors, and whose chunks are checked for NaN and infinity as they stream (`checked`).
Rows in messages are counted from 0.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import CorpusError, InvalidInputError
from .shards import shard_paths
from .vectors import CHUNK_ROWS, VectorSource

VECTOR_COLUMNS = ("embeddings", "vector", "vectors", "emb")  # a Parquet file's vector column: the first present
ID_COLUMN = "id"  # a Parquet vector file with this column is keyed by corpus id, not row-aligned
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PARQUET_FLOATS = (pa.float32(), pa.float16())


def parse_vectors_option(text: str) -> tuple[str, Path]:
    """The (NAME, PATH) of an `--vectors NAME=PATH` option. Raises InvalidInputError."""
    name, sep, path = text.partition("=")
    if not sep or not _NAME.fullmatch(name) or not path.strip():
        raise InvalidInputError(
            f"--vectors takes NAME=PATH, such as realm=vectors/realm (NAME: letters, digits, _ and -; PATH: a .npy "
            f"file, a directory of .npy shards, a .parquet file or a directory of Parquet shards), not {text!r}"
        )
    return name, Path(path.strip()).expanduser()


def open_vector_files(path: str | Path, *, ids: Sequence[str] | None = None, column: str | None = None) -> VectorSource:
    """The vectors in `path` (a .npy or .parquet file, or a directory of either's shards), checked
    for NaN and infinity as they stream. `ids` are the corpus's ids in order: needed when Parquet
    files have an `id` column, whose rows are then put in corpus order. `column` names the Parquet
    vector column (default: the first of VECTOR_COLUMNS present). Raises CorpusError."""
    path = Path(path)
    if _file_kind(path) == ".npy":
        return checked(NpyVectors(shard_paths(path, ".npy"), origin=str(path)))
    shards = shard_paths(path, ".parquet")
    names = _schema(shards[0]).names
    files = ParquetVectors(shards, column or _vector_column(shards[0], names), origin=str(path))
    if ID_COLUMN not in names:
        return checked(files)
    if ids is None:
        raise ValueError(f"{path} is keyed by an {ID_COLUMN!r} column: pass the corpus's ids to put it in order")
    return checked(KeyedVectors(files, ids))


def corpus_embeddings(shards: Sequence[Path], column: str = "embeddings") -> VectorSource | None:
    """The `column` of a corpus's own Parquet shards (wiki_dpr's DPR vectors), row-aligned and
    checked as they stream; None when the shards have no such column. Raises CorpusError."""
    shards = list(shards)
    if not shards or column not in _schema(shards[0]).names:
        return None
    return checked(ParquetVectors(shards, column, origin=f"the corpus's {column} column"))


def check_vectors(source: VectorSource, *, count: int, dim: int, name: str) -> None:
    """Refuse vectors that do not fit: `count` rows (the corpus's passages) of `dim` (what the
    `name` retriever's checkpoint makes). Raises CorpusError."""
    if source.count != count:
        raise CorpusError(
            f"the {name} vectors in {source.origin} have {source.count:,} rows; the corpus has {count:,} passages: "
            f"give one vector per passage, in corpus order (or keyed by an {ID_COLUMN!r} column in Parquet)"
        )
    if source.dim != dim:
        raise CorpusError(
            f"the {name} vectors in {source.origin} are {source.dim}-d; the {name} checkpoint makes {dim}-d vectors: "
            f"make them with the {name} checkpoint this index uses"
        )


def checked(source: VectorSource) -> VectorSource:
    """`source` with each chunk checked as it passes: a NaN or infinite value is refused naming
    its row, and a source yielding other than `count` rows is refused."""
    return source if isinstance(source, CheckedVectors) else CheckedVectors(source)


class CheckedVectors:
    """A VectorSource that checks another's chunks as they stream (see `checked`)."""

    def __init__(self, source: VectorSource):
        self.source = source
        self.count, self.dim, self.origin = source.count, source.dim, source.origin

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        start = 0
        for chunk in self.source.chunks(rows):
            # One sum is cheap, and a NaN or an infinity anywhere makes it non-finite; only then
            # look row by row (a huge but finite chunk can overflow the sum: then no row is bad).
            with np.errstate(over="ignore", invalid="ignore"):
                total = chunk.sum()
            if not np.isfinite(total):
                bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
                if len(bad):
                    raise CorpusError(
                        f"row {start + int(bad[0]):,} of the vectors in {self.origin} is not finite (NaN or "
                        f"infinity): write the vectors again"
                    )
            start += len(chunk)
            yield chunk
        if start != self.count:
            raise CorpusError(
                f"the vectors in {self.origin} gave {start:,} rows, not {self.count:,}: were they changed?"
            )


class NpyVectors:
    """Row-aligned vectors in `.npy` shards, float32 or float16 [rows, dim], memory-mapped; each
    header is checked when opened, the data is read only by `chunks`."""

    def __init__(self, shards: Sequence[Path], origin: str):
        self.shards, self.origin = list(shards), origin
        self.rows: list[int] = []
        self.dim = 0
        for shard in self.shards:
            rows, dim = _npy_shape(shard)
            if self.rows and dim != self.dim:
                raise CorpusError(
                    f"{shard} holds {dim}-d vectors but {self.shards[0].name} holds {self.dim}-d: "
                    f"every shard must have the same dimension"
                )
            self.rows.append(rows)
            self.dim = dim
        self.count = sum(self.rows)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        return _rebatch(self._pieces(rows), rows, self.count, self.dim, self.origin)

    def _pieces(self, rows: int) -> Iterator[np.ndarray]:
        for shard, n in zip(self.shards, self.rows):
            if n:
                array = np.load(shard, mmap_mode="r", allow_pickle=False)
                for start in range(0, n, rows):
                    yield array[start : start + rows]


class ParquetVectors:
    """Row-aligned vectors in one list column of Parquet shards; `count` comes from the footers,
    `dim` from the column's type or its first row, and `chunks` reads that column only, by
    batches, refusing null and ragged rows as it meets them."""

    def __init__(self, shards: Sequence[Path], column: str, origin: str):
        self.shards, self.column, self.origin = list(shards), column, origin
        self.rows: list[int] = []
        fixed: int | None = None
        for shard in self.shards:
            with _parquet_file(shard) as file:
                schema, rows = file.schema_arrow, file.metadata.num_rows
            if column not in schema.names:
                raise CorpusError(
                    f"{shard} has no {column!r} column (its columns: {', '.join(schema.names)}): "
                    f"every shard needs the vector column"
                )
            kind = schema.field(column).type
            if not _is_list(kind) or kind.value_type not in _PARQUET_FLOATS:
                raise CorpusError(
                    f"the {column!r} column of {shard} is {kind}; vectors must be lists of float32 or float16"
                )
            if pa.types.is_fixed_size_list(kind):
                if fixed is not None and kind.list_size != fixed:
                    raise CorpusError(
                        f"{shard} holds {kind.list_size}-d vectors but {self.shards[0].name} holds {fixed}-d: "
                        f"every shard must have the same dimension"
                    )
                fixed = kind.list_size
            self.rows.append(rows)
        self.count = sum(self.rows)
        self.dim = fixed if fixed is not None else self._first_length()

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        return _rebatch(self._pieces(rows), rows, self.count, self.dim, self.origin)

    def _first_length(self) -> int:
        """The length of the first vector: every other must have it too."""
        for shard, n in zip(self.shards, self.rows):
            if n:
                with _parquet_file(shard) as file:
                    batch = next(file.iter_batches(batch_size=1, columns=[self.column]))
                first = batch.column(0)[0]
                if not first.is_valid:
                    raise CorpusError(f"row 0 of {shard} has no vector (null): every passage needs one")
                return len(first)
        raise CorpusError(f"{self.origin} holds no vectors (every shard is empty)")

    def _pieces(self, rows: int) -> Iterator[np.ndarray]:
        for shard in self.shards:
            with _parquet_file(shard) as file:
                at = 0
                for batch in file.iter_batches(batch_size=rows, columns=[self.column]):
                    yield self._matrix(batch.column(0), shard, at)
                    at += batch.num_rows

    def _matrix(self, lists: pa.Array, shard: Path, at: int) -> np.ndarray:
        """The [rows, dim] view of a batch's vectors (no copy when they are float32); `at` is the
        batch's first row in `shard`, for messages."""
        if lists.null_count:
            row = at + int(np.flatnonzero(lists.is_null().to_numpy(zero_copy_only=False))[0])
            raise CorpusError(f"row {row:,} of {shard} has no vector (null): every passage needs one")
        if pa.types.is_fixed_size_list(lists.type):
            values = lists.flatten()
        else:
            offsets = lists.offsets.to_numpy()
            ragged = np.flatnonzero(np.diff(offsets) != self.dim)
            if len(ragged):
                row = int(ragged[0])
                raise CorpusError(
                    f"row {at + row:,} of {shard} has {int(offsets[row + 1] - offsets[row])} values, not {self.dim} "
                    f"as the first row has: every vector must have the same length"
                )
            values = lists.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        if values.null_count:
            value = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise CorpusError(f"row {at + value // self.dim:,} of {shard} has a null value in its vector")
        return values.to_numpy(zero_copy_only=False).reshape(-1, self.dim)


class KeyedVectors:
    """Parquet vectors keyed by an `id` column, served in corpus order.

    The ids are matched when this is made (the id column is read once, and every corpus id must
    appear exactly once). Files whose ids are already in corpus order are streamed as they are;
    others are copied once, on the first `chunks` call, into a float32 memory-mapped `.npy` in
    a new folder of the temporary directory (`tempfile.mkdtemp`): count x dim x 4 bytes of disk,
    64 GB for 21M x 768, deleted when this object is garbage collected or the process exits.
    """

    def __init__(self, files: ParquetVectors, ids: Sequence[str]):
        self.files, self.dim, self.origin = files, files.dim, files.origin
        corpus_ids = _id_array(ids)
        self.count = len(corpus_ids)
        self.corpus_rows = _corpus_rows(files, corpus_ids)  # [files.count]: the corpus row of each file row
        self.in_order = bool(np.array_equal(self.corpus_rows, np.arange(self.count)))
        self._copy: NpyVectors | None = None
        self._lock = threading.Lock()

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        if self.in_order:
            return self.files.chunks(rows)
        return self._ordered_copy().chunks(rows)

    def _ordered_copy(self) -> NpyVectors:
        with self._lock:
            if self._copy is None:
                folder = tempfile.mkdtemp(prefix="lfqa-vectors-")
                cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
                try:
                    path = Path(folder) / "vectors.npy"
                    ordered = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(self.count, self.dim))
                    start = 0
                    for chunk in self.files.chunks():
                        ordered[self.corpus_rows[start : start + len(chunk)]] = chunk
                        start += len(chunk)
                    ordered.flush()
                    del ordered
                except BaseException:
                    cleanup()
                    raise
                # Served like any .npy file: fresh arrays, so that a builder writing into a chunk
                # (normalising it in place, say) cannot change the copy for the next pass.
                self._copy = NpyVectors([path], origin=self.origin)
        return self._copy


def _rebatch(pieces: Iterable[np.ndarray], rows: int, count: int, dim: int, origin: str) -> Iterator[np.ndarray]:
    """float32 C-contiguous chunks of `rows` rows (the last one shorter) copied from `pieces` of
    any size and float dtype, which must add up to `count` rows."""
    done, filled = 0, 0
    out = np.empty((min(rows, count), dim), dtype=np.float32)
    for piece in pieces:
        at = 0
        while at < len(piece):
            if done + filled == count:
                raise CorpusError(f"{origin} holds more rows than its headers say ({count:,}): were they changed?")
            take = min(len(out) - filled, len(piece) - at)
            out[filled : filled + take] = piece[at : at + take]
            filled += take
            at += take
            if filled == len(out):
                yield out
                done += filled
                filled = 0
                out = np.empty((min(rows, count - done), dim), dtype=np.float32)
    if filled:
        yield out[:filled]


def _file_kind(path: Path) -> str:
    """ ".npy" or ".parquet": what `path` holds. Raises CorpusError."""
    kinds = (".npy", ".parquet")
    if path.is_file():
        if path.suffix in kinds:
            return path.suffix
        raise CorpusError(f"{path} is neither a .npy nor a .parquet file")
    if not path.is_dir():
        raise CorpusError(f"there is no file or directory at {path}")
    found = {p.suffix for p in path.iterdir() if p.suffix in kinds and not p.name.startswith(".")}
    if len(found) != 1:
        held = "both .npy and .parquet files" if found else "no .npy or .parquet files"
        raise CorpusError(f"{path} holds {held}: give a directory of one kind of vector shards")
    return found.pop()


def _npy_shape(path: Path) -> tuple[int, int]:
    """The (rows, dim) of a .npy file, from its header, which must say float32 or float16 [rows,
    dim], and its size, which must hold them. Raises CorpusError."""
    with open(path, "rb") as file:
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"version {version} of the format is not read here")
        except ValueError as exc:
            raise CorpusError(f"{path} is not a readable .npy file ({exc})") from None
        data_start = file.tell()
    if dtype.kind != "f" or dtype.itemsize not in (2, 4):
        raise CorpusError(f"{path} holds {dtype} values; vectors must be float32 or float16")
    if len(shape) != 2:
        raise CorpusError(f"{path} holds an array of shape {shape}; vectors must be 2-d [rows, dim]")
    if os.path.getsize(path) < data_start + shape[0] * shape[1] * dtype.itemsize:
        raise CorpusError(f"{path} is shorter than its header says ({shape[0]:,} x {shape[1]}): it is truncated")
    return int(shape[0]), int(shape[1])


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, memory_map=True)
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{path} is not a readable Parquet file ({exc})") from None


def _schema(path: Path) -> pa.Schema:
    with _parquet_file(path) as file:
        return file.schema_arrow


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _vector_column(shard: Path, names: list[str]) -> str:
    """The first of VECTOR_COLUMNS among `names`. Raises CorpusError."""
    for name in VECTOR_COLUMNS:
        if name in names:
            return name
    raise CorpusError(
        f"{shard} has no vector column (looked for {', '.join(VECTOR_COLUMNS)}); its columns are "
        f"{', '.join(names)}: rename the vector column"
    )


def _id_array(ids: Sequence[str]) -> pa.Array:
    """The corpus's ids as one Arrow string array; they must be unique."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if not isinstance(ids, pa.Array):
        ids = pa.array(ids if isinstance(ids, (list, np.ndarray)) else list(ids), type=pa.string())
    if pc.count_distinct(ids).as_py() != len(ids):
        raise ValueError("the corpus's ids are not unique")
    return ids


def _corpus_rows(files: ParquetVectors, corpus_ids: pa.Array) -> np.ndarray:
    """The corpus row of every row of `files`, from their id column: all corpus ids must be there
    exactly once. Raises CorpusError naming a few of the ids that are not."""
    chunks = []
    for shard in files.shards:
        with _parquet_file(shard) as file:
            chunks.extend(file.read(columns=[ID_COLUMN]).column(0).cast(corpus_ids.type).chunks)
    file_ids = pa.chunked_array(chunks, type=corpus_ids.type)
    rows = pc.fill_null(pc.index_in(file_ids, value_set=corpus_ids), -1).to_numpy().astype(np.int64)
    unknown = np.flatnonzero(rows < 0)
    times = np.bincount(rows[rows >= 0], minlength=len(corpus_ids))
    repeated, missing = np.flatnonzero(times > 1), np.flatnonzero(times == 0)
    problems = []
    if len(unknown):
        problems.append(f"{len(unknown):,} ids that are not in the corpus ({_few(file_ids, unknown)})")
    if len(repeated):
        problems.append(f"{len(repeated):,} ids more than once ({_few(corpus_ids, repeated)})")
    if len(missing):
        problems.append(f"no vector for {len(missing):,} corpus passages ({_few(corpus_ids, missing)})")
    if problems:
        raise CorpusError(
            f"{files.origin} is keyed by its {ID_COLUMN!r} column and has {'; '.join(problems)}: "
            f"it needs exactly one row per corpus passage"
        )
    return rows


def _few(values: pa.Array | pa.ChunkedArray, where: np.ndarray) -> str:
    """A few of `values` at the positions `where`, for a message: "ids '3', '7', '9' ..."."""
    shown = ", ".join(repr(v) for v in values.take(pa.array(where[:3])).to_pylist())
    return f"ids {shown}" + (" ..." if len(where) > 3 else "")
