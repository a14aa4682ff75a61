"""The Ray build against the in-process one: the same generated corpus, the same retriever, the
same command but for `--engine ray --workers N`, each run in its own process and timed whole
(reading, encoding, writing the bundle). Prints passages/s of each and Ray's overhead against
the in-process build, (ray - in-process) / in-process; asserts nothing.

    .venv/bin/python benchmarks/bench_ray_build.py [--passages 20000] [--retriever dpr] [--full-size]
        [--dtype bfloat16] [--workers 1,2]

The fixture checkpoints (tests/fixtures, tiny BERTs) show the engine's own cost; `--full-size`
uses full-size random-weight checkpoints (benchmarks/full_size_checkpoints.py; in bf16 on 2 cores
RetriBERT encodes ~26 passages/s and REALM ~9: 20,000 RetriBERT passages take 13 minutes a run).
Needs requirements-build.txt (Ray). Figures: docs/backend.md, "Encoding a large corpus with Ray".
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))


def cpu_flags() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags) or "none of note"


def hub_cache(work: Path, full_size: bool) -> Path:
    """An offline hub cache of the fixture checkpoints, or of the full-size random-weight ones."""
    if full_size:
        from bench_cold_start import full_size_hub_cache

        return full_size_hub_cache(work / "full-size", work / "hf-cache-full")
    from helpers import write_hub_cache

    return write_hub_cache(work / "hf-cache-fixtures")


def run_build(corpus: Path, out: Path, retriever: str, cache: Path, engine: list[str], dtype: str) -> tuple[float, str]:
    """One `index` command in a child process: (wall seconds, its output)."""
    command = [sys.executable, "-m", "lfqa_demo", "index", "--corpus", str(corpus), "--retrievers", retriever]
    command += ["--out", str(out), "--dtype", dtype, *engine]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "2"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--shard-rows", type=int, default=5_000)
    parser.add_argument("--retriever", default="dpr")
    parser.add_argument("--workers", default="1,2", help="Ray actor counts to run")
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--dtype", default="float32", help="float32 (parity), or bfloat16 where the CPU has it")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from tools.wiki_corpus import Layout, write_corpus

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ray-"))
    print(
        f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores; {args.passages:,} passages; "
        f"{args.retriever}, {'full-size' if args.full_size else 'fixture'}, {args.dtype}"
    )
    cache = hub_cache(work, args.full_size)
    corpus = work / "corpus"
    if not corpus.exists():
        write_corpus(corpus, Layout(args.passages, shard_rows=args.shard_rows, dim=0))
    runs = [("in-process", [])] + [
        (f"ray, {n} worker{'s' * (n > 1)}", ["--engine", "ray", "--workers", str(n)])
        for n in (int(w) for w in args.workers.split(","))
    ]
    base = None
    for name, engine in runs:
        out = work / f"out-{len(engine)}-{engine[-1] if engine else 0}"
        seconds, log = run_build(corpus, out, args.retriever, cache, engine, args.dtype)
        encoding = re.search(r"\(([\d,]+) passages in ([\d.]+) s", log)  # Ray's own line: encoding alone
        inner = f"; encoding alone {encoding.group(2)} s" if encoding else ""
        overhead = "" if base is None else f"; overhead against in-process {100 * (seconds - base) / base:+.0f}%"
        base = seconds if base is None else base
        print(
            f"{name:<16} {seconds:7.1f} s whole build, {args.passages / seconds:7.1f} passages/s{inner}{overhead}",
            flush=True,
        )


if __name__ == "__main__":
    main()
