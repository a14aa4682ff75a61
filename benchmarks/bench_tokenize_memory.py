"""Peak memory of tokenizing a 20,000-passage upload for an index build: in chunks (as the code
does, TOKENIZE_CHUNK passages at a time) against all at once (as it did before).

    .venv/bin/python benchmarks/bench_tokenize_memory.py            # chunked
    .venv/bin/python benchmarks/bench_tokenize_memory.py --whole    # all at once

Runs offline on the tests' fixture DPR checkpoint (max 128 word pieces a passage; full-size
models allow 256, so more memory). Each mode is a fresh process: the peak (VmHWM) is its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def status_mb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
    return int(line.split()[1]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whole", action="store_true", help="tokenize every passage at once")
    parser.add_argument("--passages", type=int, default=20_000)
    args = parser.parse_args()
    from helpers import write_hub_cache

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = str(write_hub_cache(HERE / ".out" / "tokenize-hub"))
    import lfqa_demo.models.retrievers as retrievers
    from lfqa_demo.models.loading import load_retriever

    if args.whole:
        retrievers.TOKENIZE_CHUNK = 10**9
    model = load_retriever("dpr")
    words = " ".join
    passages = [
        {"title": f"T{i}", "text": words(f"word{(i * 7 + j) % 997}" for j in range(150))} for i in range(args.passages)
    ]
    before = status_mb("VmRSS")
    started = time.perf_counter()
    rows = model.tokenize_passages(passages)
    print(
        f"{'whole' if args.whole else 'chunked'}: {len(rows):,} passages in {time.perf_counter() - started:.1f} s, "
        f"RSS +{status_mb('VmRSS') - before:,} MB after, peak (VmHWM) {status_mb('VmHWM'):,} MB"
    )


if __name__ == "__main__":
    main()
