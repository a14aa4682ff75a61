"""REALM's own open-QA index (`google/realm-orqa-nq-openqa`), converted once into a corpus and
vector file that `python -m lfqa_demo index` builds a bundle from.

That checkpoint holds REALM's NQ-fine-tuned question embedder (`embedder.*`), its reader
(`reader.*`) and `block_emb`, float32 [13,353,718, 128]: every Wikipedia block REALM searches,
embedded; the blocks' texts are `block_records.npy`, a NumPy object array of UTF-8 byte strings
saved with pickle (`np.save` of an object array, as transformers' RealmRetriever does).
RealmForOpenQA ranks the blocks by the inner product of the question's projection with each
row of `block_emb` (exact top-k over all of them); the bundle keeps those rows as given.

    python -m lfqa_demo convert-realm-openqa [--checkpoint google/realm-orqa-nq-openqa] --out DIR
      DIR/realm-wikipedia/blocks-00000.parquet id ("0".."N-1": the block's row), text, title ("")
      DIR/block_emb.npy                        float32 [N, 128], row i = block i
    python -m lfqa_demo index --corpus DIR/realm-wikipedia --retrievers realm-orqa,bm25 \
        --vectors realm-orqa=DIR/block_emb.npy --out BUNDLE

`block_records.npy` is never unpickled. A pickle is a program: `np.load` with pickles allowed, on a
hostile file runs whatever it names. `read_block_records` instead walks the file's pickle
opcodes (pickletools.genops: parsed, not executed) and admits exactly what NumPy writes for a
one-dimensional array of byte strings: `numpy...multiarray._reconstruct(numpy.ndarray, (0,),
b"b")`, `numpy.dtype("O8", False, True)` with its standard state, and the `BUILD` of the array
from (1, (N,), dtype, False, [N byte strings]). Any other global, call, opcode or element is
refused, naming it; each block is yielded as it is read (bounded memory at 12.6 GB), and at most
MAX_BLOCK_BYTES long.
"""

from __future__ import annotations

import logging
import os
import pickletools
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import CorpusError

log = logging.getLogger(__name__)

CHECKPOINT = "google/realm-orqa-nq-openqa"
RECORDS_FILE = "block_records.npy"
VECTORS_FILE = "block_emb.npy"
CORPUS_DIR = "realm-wikipedia"  # its name is the corpus name a visitor sees
MAX_BLOCK_BYTES = 1 << 20  # REALM's blocks are 288 word pieces (~1-2 KB); a megabyte is not a block
SHARD_ROWS = 500_000  # blocks per Parquet shard at most (13.3M -> ~27 shards, as wiki_dpr's ~50 of 420k)
SHARD_BYTES = 512 << 20  # and text per shard at most: a shard's texts are held until it is written
CHUNK_ROWS = 65_536  # block_emb rows copied at once
_RECONSTRUCT = ("numpy.core.multiarray _reconstruct", "numpy._core.multiarray _reconstruct")
_ALLOWED_GLOBALS = {*_RECONSTRUCT, "numpy ndarray", "numpy dtype"}
_OBJECT_DTYPE_STATE = (3, "|", None, None, None, -1, -1, 63)  # numpy.dtype("O")'s __reduce__ state
_SMALL = 64  # longest string or byte string admitted outside the blocks (b"b", "O8", module names)
_MAX_ITEMS = 100_000  # objects on its stack, marks or memo at once (besides blocks already appended)
_MAX_MADE = 10_000  # objects made besides the blocks, in all: a hostile pickle may not build a heap of tuples
Progress = Callable[[str, int, int], None]  # (stage, done, total)


class _Global:
    def __init__(self, name: str):
        self.name = name


class _Dtype:  # numpy.dtype("O8", False, True), then its state
    built = False


class _Array:  # _reconstruct(numpy.ndarray, (0,), b"b"), then its state
    built = False


class _Blocks:  # the array's element list: blocks counted, never held
    count = 0


class _Bounded:
    """A file whose single reads are capped: pickletools reads an opcode's whole argument at
    once, and a hostile length (BINBYTES8 claims up to 2**64 bytes) must fail before it allocates."""

    def __init__(self, raw, limit: int, name: str):
        self.raw, self.limit, self.name = raw, limit, name

    def tell(self) -> int:
        return self.raw.tell()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.limit:
            raise CorpusError(f"{self.name} holds an element longer than {self.limit:,} bytes: not a block")
        return self.raw.read(n)

    def readline(self, size: int = -1) -> bytes:  # GLOBAL's "module\nname\n" arguments
        return self.raw.readline(min(size if size and size > 0 else _SMALL * 2, _SMALL * 2))


def read_block_records(path: str | Path) -> tuple[int, Iterator[bytes]]:
    """(N, the N blocks in order) of a `block_records.npy`, checked as the module docstring says;
    the iterator raises CorpusError at the first thing that is not a NumPy array of byte strings."""
    from numpy.lib import format as npy

    path = Path(path)
    handle = open(path, "rb")
    try:
        version = npy.read_magic(handle)
        if version not in ((1, 0), (2, 0)):  # what np.save writes for an object array
            raise ValueError(f"format version {version}")
        header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = header(handle, max_header_size=10_000)
    except (ValueError, OSError) as exc:
        handle.close()
        raise CorpusError(f"{path.name} is not a .npy file ({exc})") from None
    if dtype != np.dtype(object) or len(shape) != 1 or fortran or shape[0] < 0:
        handle.close()
        raise CorpusError(f"{path.name} holds a {dtype} array of shape {shape}, not a list of blocks (object, 1-d)")
    return shape[0], _blocks(handle, shape[0], path.name)


class _Block:
    """A block on the symbolic stack: its bytes were yielded; kept only when CPython shares the
    object (b"" and single bytes), which a pickle writes once and then refers to by memo."""

    def __init__(self, data: bytes):
        self.shared = data if len(data) <= 1 else None


def _exact_int(value, wanted: int) -> bool:
    return type(value) is int and value == wanted  # not True for 1, nor 1.0


def _blocks(handle, count: int, name: str) -> Iterator[bytes]:
    """Walk the pickle after the .npy header; yield each block as it comes (see read_block_records)."""

    def refuse(why: str):
        raise CorpusError(f"{name} is not a NumPy array of byte strings: {why}")

    stack: list = []
    marks: list[int] = []  # stack lengths at each MARK: nothing pops below the last one
    memo: dict[int, object] = {}
    memoized = 0  # MEMOIZE numbers every object, blocks included
    made = 0  # objects made outside the blocks (NumPy's pickle makes about 20)

    def pop(n: int) -> list:
        if len(stack) - n < (marks[-1] if marks else 0):
            refuse("an opcode that takes more than its MARK left on the stack")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    def push(value) -> None:
        nonlocal made
        made += 1
        if made > _MAX_MADE:
            refuse(f"more than {_MAX_MADE:,} objects besides its blocks")
        stack.append(value)

    def block_context() -> bool:
        """Whether a byte string here is an element of the array's list: after the list's own
        MARK (APPENDS follows), or right after the list itself (APPEND follows: a batch of one)."""
        if marks and marks[-1] >= 1 and isinstance(stack[marks[-1] - 1], _Blocks):
            return True
        return bool(stack) and isinstance(stack[-1], _Blocks)

    with handle:
        ops = pickletools.genops(_Bounded(handle, MAX_BLOCK_BYTES, name))
        while True:
            try:
                op, arg, _ = next(ops)
            except StopIteration:
                refuse("it ends before its STOP")
            except CorpusError:
                raise
            except Exception as exc:  # a truncated or malformed opcode
                refuse(f"{type(exc).__name__}: {str(exc)[:200]}")
            code = op.name
            if len(stack) > _MAX_ITEMS or len(marks) > _MAX_ITEMS:
                refuse(f"more than {_MAX_ITEMS:,} objects pending at once (NumPy appends blocks 1,000 at a time)")
            if code in ("PROTO", "FRAME"):
                if code == "PROTO" and not 3 <= arg <= 5:  # 2 writes bytes as _codecs.encode calls
                    refuse(f"pickle protocol {arg}")
            elif code in ("SHORT_BINBYTES", "BINBYTES", "BINBYTES8"):
                if block_context():
                    stack.append(_Block(arg))
                    yield arg
                elif len(arg) <= _SMALL:
                    push(arg)
                else:
                    refuse("a byte string outside its list of blocks")
            elif code in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                if len(arg) > _SMALL:  # a name (a text block among the blocks is refused at its APPENDS)
                    refuse("a long string outside its blocks")
                push(arg)
            elif code in ("BININT", "BININT1", "BININT2"):
                push(arg)
            elif code in ("NONE", "NEWTRUE", "NEWFALSE"):
                push({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[code])
            elif code in ("GLOBAL", "STACK_GLOBAL"):
                if code == "STACK_GLOBAL":
                    module, attribute = pop(2)
                    if not (isinstance(module, str) and isinstance(attribute, str)):
                        refuse("a STACK_GLOBAL without its two names")
                    arg = f"{module} {attribute}"
                if arg not in _ALLOWED_GLOBALS:
                    refuse(f"it names {arg[:80]!r}, which is not NumPy's reconstruction of an array")
                push(_Global(arg))
            elif code in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if len(stack) <= (marks[-1] if marks else 0):
                    refuse("a PUT with nothing above its MARK")
                index = memoized if code == "MEMOIZE" else arg
                memoized += code == "MEMOIZE"
                top = stack[-1]
                value = top.shared if isinstance(top, _Block) else top
                if value is None and isinstance(top, _Block):
                    memo.pop(index, None)  # a long block is not kept: a GET of it is refused
                else:
                    memo[index] = value
                    if len(memo) > _MAX_ITEMS:
                        refuse(f"more than {_MAX_ITEMS:,} objects besides its blocks")
            elif code in ("BINGET", "LONG_BINGET"):
                if arg not in memo or isinstance(memo[arg], (_Blocks, _Array)):
                    refuse("a reference to an object it cannot repeat (one long block twice?)")
                value = memo[arg]
                if isinstance(value, bytes) and block_context():  # b"" or a single byte again
                    stack.append(_Block(value))
                    yield value
                else:
                    push(value)
            elif code == "MARK":
                marks.append(len(stack))
            elif code in ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE"):
                if code == "TUPLE":
                    if not marks:
                        refuse("a TUPLE without its MARK")
                    items = stack[marks[-1] :]
                    del stack[marks.pop() :]
                else:
                    items = pop({"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}[code])
                if any(isinstance(item, _Block) for item in items):
                    refuse("a tuple of blocks")
                push(tuple(items))
            elif code == "EMPTY_LIST":
                push(_Blocks())
            elif code in ("APPEND", "APPENDS"):
                if code == "APPENDS":
                    if not marks:
                        refuse("an APPENDS without its MARK")
                    start = marks.pop()
                else:
                    start = len(stack) - 1
                    if start < (marks[-1] if marks else 0):
                        refuse("an APPEND with nothing above its MARK")
                if start < 1 or not isinstance(stack[start - 1], _Blocks):
                    refuse("an append to something other than its list of blocks")
                items = stack[start:]
                if not all(isinstance(item, _Block) for item in items):
                    refuse("a list element that is not a byte string")
                stack[start - 1].count += len(items)
                del stack[start:]
            elif code == "REDUCE":
                call, args = pop(2)
                if not isinstance(call, _Global) or not isinstance(args, tuple):
                    refuse("a call of something it did not name, or without a tuple of arguments")
                if call.name in _RECONSTRUCT:
                    ok = len(args) == 3 and isinstance(args[0], _Global) and args[0].name == "numpy ndarray"
                    shape = args[1] if ok else None
                    if not (ok and type(shape) is tuple and len(shape) == 1 and _exact_int(shape[0], 0)):
                        refuse("an array reconstructed with other arguments than NumPy's")
                    if type(args[2]) is not bytes or args[2] != b"b":
                        refuse("an array reconstructed with other arguments than NumPy's")
                    push(_Array())
                elif call.name == "numpy dtype" and [type(a) for a in args] == [str, bool, bool]:
                    if args != ("O8", False, True):
                        refuse(f"a dtype other than the object dtype: {args!r:.80}")
                    push(_Dtype())
                else:
                    refuse(f"a call of {call.name!r} with other arguments than NumPy's")
            elif code == "BUILD":
                (state,) = pop(1)
                if len(stack) <= (marks[-1] if marks else 0):
                    refuse("a BUILD without its object")
                target = stack[-1]
                if isinstance(target, _Dtype) and not target.built:
                    if not (type(state) is tuple and state == _OBJECT_DTYPE_STATE):
                        refuse("an object dtype with another state than NumPy's")
                    if [type(v) for v in state] != [int, str, type(None), type(None), type(None), int, int, int]:
                        refuse("an object dtype with another state than NumPy's")
                    target.built = True
                elif isinstance(target, _Array) and not target.built:
                    if not (
                        type(state) is tuple
                        and len(state) == 5
                        and _exact_int(state[0], 1)
                        and isinstance(state[2], _Dtype)
                        and state[2].built
                        and state[3] is False
                        and isinstance(state[4], _Blocks)
                    ):
                        refuse("an array whose state is not (1, (N,), object dtype, False, [blocks])")
                    shape = state[1]
                    if not (type(shape) is tuple and len(shape) == 1 and _exact_int(shape[0], count)):
                        refuse(f"an array of shape {shape!r:.40} where its header says ({count},)")
                    if state[4].count != count:
                        refuse(f"{state[4].count:,} blocks where its header says {count:,}")
                    target.built = True
                else:
                    refuse("a BUILD of something other than the array or its dtype")
            elif code == "STOP":
                if len(stack) != 1 or not isinstance(stack[0], _Array) or not stack[0].built or marks:
                    refuse("it stops with something other than the built array")
                break
            else:
                refuse(f"the opcode {code}, which NumPy does not write for an array of byte strings")
        if handle.read(1):
            refuse("bytes after its pickle")


def read_block_emb(files, count: int, dim: int | None = None):
    """`block_emb` of the checkpoint's weights, float32 [count, dim], memory-mapped from the
    file (torch.load(mmap=True, weights_only=True): 7.9 GB are never read into memory at once)."""
    import torch

    try:
        state = torch.load(files.weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CorpusError(f"cannot read the weights of {files.source!r} ({type(exc).__name__}: {exc})") from None
    emb = state.get("block_emb") if isinstance(state, dict) else None
    if not isinstance(emb, torch.Tensor) or emb.dtype != torch.float32 or emb.ndim != 2:
        raise CorpusError(f"{files.source!r} holds no float32 [blocks, dim] tensor `block_emb`: not REALM's open-QA")
    if emb.shape[0] != count or (dim is not None and emb.shape[1] != dim):
        raise CorpusError(
            f"{files.source!r}: block_emb is {tuple(emb.shape)}, but there are {count:,} block records"
            + (f" and the embedder makes {dim}-d vectors" if dim is not None else "")
        )
    return emb


def convert_realm_openqa(
    checkpoint: str = CHECKPOINT, out: str | Path = "realm-openqa", progress: Progress | None = None
) -> tuple[Path, Path]:
    """Write REALM's open-QA blocks as Parquet shards in wiki_dpr's layout (id, text, title) and
    `block_emb` as a .npy (module docstring); returns (corpus dir, vectors file). Everything is
    written beside its final name and renamed when whole and checked: a refused or interrupted
    conversion leaves an earlier one as it was."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from ..models.checkpoint_io import read_config
    from ..models.hub import resolve_checkpoint

    files = resolve_checkpoint(checkpoint, ("config.json", RECORDS_FILE))
    config = read_config(files)
    if not isinstance(config, dict):
        raise CorpusError(f"config.json of {files.source!r} is not a JSON object")
    count, blocks = read_block_records(files.directory / RECORDS_FILE)
    declared, dim = config.get("num_block_records"), config.get("retriever_proj_size")
    if declared is not None and (type(declared) is not int or declared != count):
        raise CorpusError(f"config.json says {str(declared)[:40]} blocks, {RECORDS_FILE} holds {count:,}")
    if dim is not None and (type(dim) is not int or not 1 <= dim <= 4096):
        raise CorpusError(f"config.json's retriever_proj_size is {str(dim)[:40]}, not a dimension")
    emb = read_block_emb(files, count, dim)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / (CORPUS_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("title", pa.string())])
    done, shard, texts, size = 0, 0, [], 0

    def flush() -> None:
        nonlocal shard, texts, size
        ids = [str(i) for i in range(done - len(texts), done)]
        table = pa.table({"id": ids, "text": texts, "title": [""] * len(texts)}, schema=schema)
        pq.write_table(table, partial / f"blocks-{shard:05d}.parquet", row_group_size=10_000)
        shard, texts, size = shard + 1, [], 0

    for block in blocks:  # all of them, then the pickle's BUILD and STOP: checked before anything is renamed
        try:
            texts.append(block.decode("utf-8"))
        except UnicodeDecodeError:
            raise CorpusError(f"block {done:,} of {RECORDS_FILE} is not UTF-8 text") from None
        done, size = done + 1, size + len(block)
        if len(texts) == SHARD_ROWS or size >= SHARD_BYTES:
            flush()
            if progress:
                progress("blocks", done, count)
    if texts or not shard:
        flush()
    if done != count:  # the reader refuses this first; kept as the converter's own guarantee
        raise CorpusError(f"{RECORDS_FILE} holds {done:,} blocks where its header says {count:,}")
    if progress:
        progress("blocks", done, count)

    vectors, vectors_partial = out / VECTORS_FILE, out / (VECTORS_FILE + ".partial")
    written = np.lib.format.open_memmap(vectors_partial, mode="w+", dtype=np.float32, shape=tuple(emb.shape))
    with torch.no_grad():
        for start in range(0, count, CHUNK_ROWS):
            chunk = emb[start : start + CHUNK_ROWS].numpy()  # [<= CHUNK_ROWS, dim], read from the mapping
            if not np.isfinite(chunk).all():
                raise CorpusError(f"block_emb rows {start:,}-{start + len(chunk) - 1:,} are not all finite")
            written[start : start + len(chunk)] = chunk
            if progress:
                progress("block_emb", start + len(chunk), count)
    written.flush()
    del written
    corpus = out / CORPUS_DIR
    shutil.rmtree(corpus, ignore_errors=True)
    os.replace(partial, corpus)
    os.replace(vectors_partial, vectors)
    return corpus, vectors
