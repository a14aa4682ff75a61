"""Finding a dataset's shard files in order: `train-00000-of-00050.parquet`, `part-3.npy`...

wiki_dpr and the vector files a distributed build writes come as many files whose order is the
row order. They are listed here once, sorted by the numbers in their names (so `part-10` comes
after `part-9`), and a set that says "-of-N" must hold all N shards: a missing shard would
shift every row after it onto the wrong passage.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import CorpusError

_NUMBER = re.compile(r"(\d+)")
_OF = re.compile(r"-(\d+)-of-(\d+)\.")


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in _NUMBER.split(path.name)]


def shard_paths(source: str | Path, suffix: str) -> list[Path]:
    """The files making up `source`, in row order: the file itself, or every `*{suffix}` file in
    the directory (not in subdirectories, hidden files skipped), naturally sorted.
    Raises CorpusError when there are none, or when "-of-N" names say shards are missing."""
    source = Path(source)
    if source.is_file():
        if not source.name.endswith(suffix):
            raise CorpusError(f"{source.name} is not a {suffix} file")
        return [source]
    if not source.is_dir():
        raise CorpusError(f"{source} is neither a {suffix} file nor a directory of them")
    paths = sorted(
        (p for p in source.iterdir() if p.name.endswith(suffix) and not p.name.startswith(".") and p.is_file()),
        key=_natural_key,
    )
    if not paths:
        raise CorpusError(f"{source} holds no {suffix} files")
    totals = {m.group(2) for p in paths if (m := _OF.search(p.name))}
    if totals:
        if len(totals) > 1:
            raise CorpusError(f"{source} mixes shard sets ({', '.join(sorted(totals))} shards)")
        total = int(totals.pop())
        found = sorted(int(m.group(1)) for p in paths if (m := _OF.search(p.name)))
        missing = sorted(set(range(total)) - set(found))
        if missing or len(found) != total:
            shown = ", ".join(str(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise CorpusError(f"{source}: {total} shards are named but {len(found)} are there (missing: {shown})")
    return paths
