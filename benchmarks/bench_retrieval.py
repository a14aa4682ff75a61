"""Retrieval benchmark: index build throughput per retriever and warm `compare` latency with
RetriBERT, DPR, REALM and BM25 over a 10k-passage corpus, on full-size random-weight
checkpoints in the real layout (see full_size_checkpoints.py). Prints tables; asserts nothing.

    .venv/bin/python benchmarks/bench_retrieval.py [--passages 10000] [--sample 256] [--full] [--dtype bf16]

The corpus is the bundled passages and ../shared/data/squad2-dev-5 (real lengths), extended to
--passages by recombining their sentences. Build throughput is measured by embedding --sample
passages per retriever; unless --full, the rest of each 10k index is filled with those vectors
plus noise (search cost depends on the index size, not on the values), so that the run takes
minutes rather than an hour on 2 cores. --full embeds every passage.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from full_size_checkpoints import checkpoint_dir, default_dir, write_all  # noqa: E402

from lfqa_demo import RetrieverSpec, load_retriever  # noqa: E402
from lfqa_demo.engine import RetrievalEngine  # noqa: E402
from lfqa_demo.retrieval.corpus import build_corpus, load_bundled_corpus, load_bundled_questions, load_corpus_dir  # noqa: E402
from lfqa_demo.retrieval.indexes import DenseIndex, make_faiss_index  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad2-dev-5"


def make_corpus(size: int):
    base = list(load_bundled_corpus()) + (list(load_corpus_dir(SQUAD)) if SQUAD.is_dir() else [])
    rng = random.Random(0)
    records = [p.as_dict() for p in base]
    sentences = [s for p in base for s in p.text.split(". ") if s]
    while len(records) < size:
        p = rng.choice(base)
        n = max(3, len(p.text.split(". ")))
        records.append(
            {"id": f"synthetic-{len(records)}", "title": p.title, "text": ". ".join(rng.sample(sentences, n)) + "."}
        )
    return build_corpus(f"bench-{size}", records[:size], split=False)


def specs(root: Path) -> dict[str, RetrieverSpec]:
    return {
        "retribert": RetrieverSpec("retribert", str(checkpoint_dir(root, "retribert"))),
        "dpr": RetrieverSpec("dpr", str(checkpoint_dir(root, "dpr_q")), str(checkpoint_dir(root, "dpr_ctx"))),
        "realm": RetrieverSpec("realm", str(checkpoint_dir(root, "realm"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument(
        "--sample", type=int, default=256, help="passages embedded per retriever to measure build speed"
    )
    parser.add_argument("--full", action="store_true", help="embed every passage (slow on a CPU)")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--checkpoints", type=Path, default=default_dir())
    args = parser.parse_args()

    write_all(args.checkpoints)
    corpus = make_corpus(args.passages)
    dicts = corpus.as_dicts()
    print(
        f"corpus: {len(corpus)} passages, mean {np.mean([len(p.text.split()) for p in corpus]):.0f} words; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    engine = RetrievalEngine(
        corpus, retrievers={**specs(args.checkpoints), "bm25": "bm25"}, device=args.device, dtype=args.dtype
    )

    rows = []
    for name in ("retribert", "dpr", "realm"):
        started = time.perf_counter()
        retriever = load_retriever(engine.searchers[name].spec, device=args.device, dtype=args.dtype)
        load_s = time.perf_counter() - started
        count = len(corpus) if args.full else min(args.sample, len(corpus))
        sample = dicts[:count]
        tokens = sum(len(ids) for ids, _ in retriever.tokenize_passages(sample))
        retriever.encode_passages(sample[:8])  # warm-up
        started = time.perf_counter()
        vectors = retriever.encode_passages(sample)
        seconds = time.perf_counter() - started
        if count < len(corpus):  # fill the index to full size (see the module docstring)
            rng = np.random.default_rng(0)
            reps = -(-len(corpus) // count)
            vectors = np.tile(vectors, (reps, 1))[: len(corpus)]
            vectors = (vectors + 0.01 * rng.standard_normal(vectors.shape)).astype(np.float32)
        started = time.perf_counter()
        index = make_faiss_index(vectors, "flat")
        index_s = time.perf_counter() - started
        engine.set_index(name, DenseIndex(name, "flat", index, retriever.dim, seconds, False, None))
        rows.append(
            (
                name,
                retriever.dtype,
                load_s,
                count / seconds,
                tokens / seconds,
                index_s,
                len(corpus) / (count / seconds) / 60,
            )
        )
    started = time.perf_counter()
    engine.build_indexes(["bm25"])
    bm25_s = time.perf_counter() - started

    print("\nIndex build (embedding passages; faiss flat add of 10k vectors)")
    print(
        f"{'retriever':<10} {'dtype':<15} {'load s':>7} {'passages/s':>11} {'tokens/s':>9} {'faiss add s':>12} "
        f"{'10k est. min':>13}"
    )
    for name, dtype, load_s, pps, tps, index_s, est in rows:
        print(f"{name:<10} {str(dtype):<15} {load_s:7.1f} {pps:11.1f} {tps:9.0f} {index_s:12.3f} {est:13.1f}")
    print(f"{'bm25':<10} {'-':<15} {'-':>7} {len(corpus) / bm25_s:11.0f} {'-':>9} {bm25_s:12.3f} {bm25_s / 60:13.2f}")

    questions = [q.question for q in load_bundled_questions()][: args.questions]
    names = ["retribert", "dpr", "realm", "bm25"]
    for q in questions[:3]:
        engine.compare(q, names, k=10)  # warm
    totals, per = [], {n: ([], []) for n in names}
    for q in questions:
        started = time.perf_counter()
        c = engine.compare(q, names, k=10)
        totals.append(1000 * (time.perf_counter() - started))
        for n in names:
            per[n][0].append(c.results[n].encode_ms)
            per[n][1].append(c.results[n].search_ms)
    print(f"\nWarm compare, k=10, {len(corpus)} passages, {len(questions)} questions")
    print(f"{'retriever':<10} {'encode ms p50':>14} {'search ms p50':>14}")
    for n in names:
        print(f"{n:<10} {statistics.median(per[n][0]):14.1f} {statistics.median(per[n][1]):14.2f}")
    totals.sort()
    print(f"compare total: p50 {statistics.median(totals):.1f} ms, p90 {totals[int(0.9 * (len(totals) - 1))]:.1f} ms")


if __name__ == "__main__":
    main()
