"""Command line: `python -m lfqa_demo {index,evaluate,compare} ...` (see --help)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .corpus import BUNDLED_DIR, corpus_from_file, corpus_from_hub, load_bundled_corpus, load_corpus_dir, load_qa_set
from .engine import RetrievalEngine
from .errors import LfqaError
from .evaluation import evaluate, format_table
from .retrievers import DEFAULT_RETRIEVERS, RetrieverSpec


def _corpus(source: str, args):
    """bundled | a QA-set or file path | hub:DATASET[:CONFIG[:SPLIT]] (paths: command line only)."""
    if source == "bundled":
        return load_bundled_corpus()
    if source.startswith("hub:"):
        dataset, config, split = (source[4:].split(":") + [None, None])[:3]
        return corpus_from_hub(dataset, config or None, split or "train", title_column=args.title_column,
                               text_column=args.text_column, max_passages=args.max_passages or 10_000, allow_local=True)
    path = Path(source)
    if path.is_dir():
        return load_corpus_dir(path)
    return corpus_from_file(path, title_column=args.title_column, text_column=args.text_column, limit=args.max_passages)


def _engine(args, corpus) -> RetrievalEngine:
    specs: dict[str, str | RetrieverSpec] = {n: n for n in (*DEFAULT_RETRIEVERS, "bm25")}
    for extra in args.model or []:  # NAME=FAMILY:QUESTION_CKPT[,PASSAGE_CKPT]
        name, _, rest = extra.partition("=")
        family, _, ckpts = rest.partition(":")
        question, _, passage = ckpts.partition(",")
        specs[name] = RetrieverSpec(family, question, passage or None)
    return RetrievalEngine(corpus, retrievers=specs, cache_dir=args.cache_dir, device=args.device, dtype=args.dtype,
                           index_kind=args.index_kind, batch_size=args.batch_size)


def _progress(name: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(f"\r  {name:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfqa_demo", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", default="bundled", help="bundled | PATH (file or QA-set dir) | hub:DATASET[:CONFIG[:SPLIT]]")
    common.add_argument("--retrievers", default="retribert,dpr,realm,bm25", help="comma-separated names")
    common.add_argument("--model", action="append", help="extra retriever NAME=FAMILY:QUESTION_CKPT[,PASSAGE_CKPT]")
    common.add_argument("--cache-dir", default=None, help="index cache (default $LFQA_CACHE or ~/.cache/lfqa-demo)")
    common.add_argument("--device", default=None)
    common.add_argument("--dtype", default=None)
    common.add_argument("--index-kind", default="auto", choices=["auto", "flat", "hnsw", "ivf", "ivfpq"])
    common.add_argument("--batch-size", type=int, default=32)
    common.add_argument("--title-column", default=None)
    common.add_argument("--text-column", default=None)
    common.add_argument("--max-passages", type=int, default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("index", parents=[common], help="build and cache the dense indexes of a corpus")
    ev = sub.add_parser("evaluate", parents=[common], help="recall@k and MRR on a QA set")
    ev.add_argument("--qa", default="bundled", help=f"bundled ({BUNDLED_DIR}) or a dir with passages.jsonl and questions.jsonl")
    ev.add_argument("--ks", default="1,5,20")
    cmp = sub.add_parser("compare", parents=[common], help="rank the corpus for one question")
    cmp.add_argument("question")
    cmp.add_argument("-k", type=int, default=5)
    cmp.add_argument("--gold-answer", default=None)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.retrievers.split(",") if n.strip()]
    try:
        if args.command == "evaluate":
            qa_dir = BUNDLED_DIR if args.qa == "bundled" else Path(args.qa)
            engine = _engine(args, load_corpus_dir(qa_dir))
            qa = load_qa_set(qa_dir)
            engine.build_indexes(names, progress=_progress)
            ks = [int(k) for k in args.ks.split(",")]
            print(f"{len(qa)} questions, {len(engine.corpus)} passages ({qa_dir})")
            print(format_table(evaluate(engine, qa, names, ks)))
            return 0
        engine = _engine(args, _corpus(args.corpus, args))
        print(f"corpus {engine.corpus.name}: {len(engine.corpus)} passages", file=sys.stderr)
        if args.command == "index":
            for name, index in engine.build_indexes(names, progress=_progress).items():
                if isinstance(index, str):
                    print(f"{name}: FAILED: {index}")
                else:
                    state = "cached" if index.from_cache else f"built in {index.build_seconds:.1f} s"
                    print(f"{name}: {index.kind} index of {len(index)} x {index.dim}, {state}, {index.path}")
            return 0
        engine.build_indexes(names, progress=_progress)
        started = time.perf_counter()
        comparison = engine.compare(args.question, names, args.k, args.gold_answer)
        print(f"compare took {1000 * (time.perf_counter() - started):.0f} ms")
        for name, result in comparison.results.items():
            if result.error:
                print(f"\n{name}: unavailable: {result.error}")
                continue
            print(f"\n{name} (encode {result.encode_ms:.1f} ms, search {result.search_ms:.1f} ms)")
            for h in result.hits:
                mark = {True: " [answer]", False: "", None: ""}[h.contains_answer]
                print(f"  {h.rank:>2}. {h.score:8.3f}  {h.title[:30]:<30}  {h.text[:70]}{mark}")
        for ag in comparison.agreement:
            print(f"{ag.a} vs {ag.b}: overlap@{comparison.k} {ag.overlap:.2f}, RBO {ag.rbo:.2f}")
        return 0
    except (LfqaError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
