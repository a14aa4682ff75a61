"""Command line: `python -m lfqa_demo {index,evaluate,calibrate-readers,compare,convert-realm-openqa} ...`
(see --help)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .bundle_build import build as build_bundle
from .bundle_build import encoded_here, is_table_source, passage_source
from .calibration import ReaderRules
from .engine import RetrievalEngine, default_names
from .errors import InvalidInputError, LfqaError
from .evaluation import evaluation_report, format_table
from .models.devices import resolve_device, resolve_dtype
from .models.retrievers import RetrieverSpec
from .ray_build import EncodeProgress, check_engine_options, encode_with_ray, require_ray
from .results import IndexResult
from .retrieval.bundles import push_bundles, write_bundle
from .retrieval.corpus import (
    BUNDLED_DIR,
    Corpus,
    corpus_from_file,
    corpus_from_hub,
    load_bundled_corpus,
    load_corpus_dir,
    load_qa_set,
)
from .retrieval.corpus_bundles import MANIFEST, CorpusBundle, open_corpus_bundle
from .retrieval.nq_open import NQ_OPEN, is_open_qa_source, open_qa_set
from .retrieval.realm_openqa import CHECKPOINT as REALM_OPENQA
from .retrieval.realm_openqa import convert_realm_openqa
from .retrieval.vector_files import parse_vectors_option

# Exit statuses: 0 done; 1 the command ran but some requested index failed; 2 bad input (ours or argparse's).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# `evaluate`'s default cut-offs: a QA set with gold passages (the bundled one: a reader reads 20), and
# an answer-only open-domain set, reported at DPR's Table 2 depths (top-20 and top-100).
GOLD_PASSAGE_KS, OPEN_QA_KS = [1, 5, 20], [1, 5, 20, 100]


def _corpus(source: str, args: argparse.Namespace) -> Corpus:
    """bundled | a QA-set or file path | hub:DATASET[:CONFIG[:SPLIT]] (paths: command line only)."""
    if source == "bundled":
        return load_bundled_corpus()
    if source.startswith("hub:"):
        dataset, config, split = (source[4:].split(":") + [None, None])[:3]
        return corpus_from_hub(
            dataset,
            config or None,
            split or "train",
            title_column=args.title_column,
            text_column=args.text_column,
            max_passages=args.max_passages or 10_000,
            allow_local=True,
        )
    path = Path(source)
    if path.is_dir():
        return load_corpus_dir(path)
    return corpus_from_file(path, title_column=args.title_column, text_column=args.text_column, limit=args.max_passages)


def _model_spec(option: str) -> tuple[str, RetrieverSpec]:
    """(name, spec) of one `--model NAME=FAMILY:QUESTION_CKPT[,PASSAGE_CKPT]`."""
    name, _, rest = option.partition("=")
    family, _, ckpts = rest.partition(":")
    question, _, passage = ckpts.partition(",")
    if not (name.strip() and family.strip() and question.strip()):
        raise InvalidInputError(f"--model {option!r} is not NAME=FAMILY:QUESTION_CKPT[,PASSAGE_CKPT]")
    try:
        return name.strip(), RetrieverSpec(family.strip(), question.strip(), passage.strip() or None)
    except ValueError as exc:  # RetrieverSpec checks the family with a plain ValueError
        raise InvalidInputError(f"--model {option!r}: {exc}") from exc


def _check_device_and_dtype(args: argparse.Namespace) -> None:
    """Fail at once on a --device or --dtype typo, not later inside each index build."""
    if args.device is not None:
        resolve_device(args.device)
    if args.dtype is not None:
        resolve_dtype(args.dtype, resolve_device(args.device))


def _engine(
    args: argparse.Namespace, corpus: Corpus | None, corpus_bundle: CorpusBundle | None = None
) -> RetrievalEngine:
    specs: dict[str, str | RetrieverSpec] = {n: n for n in default_names(corpus_bundle)}
    for option in args.model or []:
        name, spec = _model_spec(option)
        specs[name] = spec
    _check_device_and_dtype(args)
    return RetrievalEngine(
        corpus,
        corpus_bundle=corpus_bundle,
        retrievers=specs,
        cache_dir=args.cache_dir,
        device=args.device,
        dtype=args.dtype,
        index_kind=args.index_kind,
        batch_size=args.batch_size,
    )


def _retriever_names(args: argparse.Namespace) -> list[str]:
    """The --retrievers list; an empty one is refused (the engine would read it as "all of them"),
    and so is a --model that it does not name (it would be silently left out)."""
    names = [n.strip() for n in args.retrievers.split(",") if n.strip()]
    if not names:
        raise InvalidInputError("--retrievers names no retriever; give a comma-separated list such as 'dpr,bm25'")
    for option in args.model or []:
        name, _ = _model_spec(option)
        if name not in names:
            raise InvalidInputError(
                f"--model {name}=... is not used: --retrievers does not name {name!r} "
                f"(add it: --retrievers {','.join([*names, name])})"
            )
    return names


def _progress(name: str, done: int, total: int, detail: str = "") -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(
        f"\r  {name:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{detail}",
        end="" if done < total else "\n",
        file=sys.stderr,
        flush=True,
    )


def _encode_progress(p: EncodeProgress) -> None:
    """`--engine ray`'s console: a line per shard written, and the bar with passages/s and time left."""
    if p.shard is not None:  # over the bar (padded: "\r" does not clear it), which is drawn again below
        print(f"\r  {p.retriever}: {p.shard} written ({p.shard_rows:,} passages)".ljust(100), file=sys.stderr)
        if p.done == p.total:
            return  # the bar is complete already
    left = "" if p.seconds_left is None else f", about {p.seconds_left:,.0f} s left"
    _progress(p.retriever, p.done, p.total, f", {p.rate:,.0f} passages/s{left}    ")


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _ks(text: str) -> list[int]:
    """argparse type of --ks: comma-separated cut-offs such as "1,5,20"."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        ks = [_positive_int(part) for part in parts]
    except argparse.ArgumentTypeError:
        ks = []
    if not ks:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers >= 1, such as 1,5,20"
        )
    return ks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lfqa_demo", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--corpus", default="bundled", help="bundled | PATH (file or QA-set dir) | hub:DATASET[:CONFIG[:SPLIT]]"
    )
    common.add_argument("--retrievers", default="retribert,dpr,realm,bm25", help="comma-separated names")
    common.add_argument("--model", action="append", help="extra retriever NAME=FAMILY:QUESTION_CKPT[,PASSAGE_CKPT]")
    common.add_argument("--cache-dir", default=None, help="index cache (default $LFQA_CACHE or ~/.cache/lfqa-demo)")
    common.add_argument("--device", default=None)
    common.add_argument("--dtype", default=None)
    common.add_argument(
        "--index-kind",
        default="auto",
        choices=["auto", "flat", "hnsw", "ivf", "ivfpq", "exact", "compressed"],
        help="auto, flat, hnsw, ivf or ivfpq for the index cache; auto, exact or compressed in a corpus bundle",
    )
    common.add_argument("--batch-size", type=_positive_int, default=32)
    common.add_argument("--title-column", default=None)
    common.add_argument("--text-column", default=None)
    common.add_argument("--max-passages", type=_positive_int, default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    idx = sub.add_parser(
        "index", parents=[common], help="build and cache the dense indexes of a corpus (exit 1 if one fails)"
    )
    idx.add_argument("--out", default=None, help="also write portable prebuilt indexes here (one folder per retriever)")
    idx.add_argument(
        "--vectors",
        action="append",
        metavar="NAME=PATH",
        help="a retriever's passage vectors from files (.npy or Parquet, row-aligned or keyed by id) instead of "
        "encoding; writes a corpus bundle to --out",
    )
    idx.add_argument(
        "--engine",
        default="in-process",
        choices=["in-process", "ray"],
        help="who encodes a Parquet corpus's passages for a corpus bundle: this process, or Ray Data (locally, or "
        "the cluster at $RAY_ADDRESS) into resumable vector shards under OUT/vectors/ (pip install -r "
        "requirements-build.txt)",
    )
    idx.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="--engine ray: encoder actors (default: one per GPU; without GPUs, one per CPU core, at most 8)",
    )
    idx.add_argument(
        "--push-to-hub",
        default=None,
        metavar="ORG/NAME",
        help="upload the --out bundles to this hub dataset repo (created if needed; needs a write token)",
    )
    ev = sub.add_parser(
        "evaluate", parents=[common], help="recall@k and MRR, by answer and by gold passage, on a QA set"
    )
    ev.add_argument(
        "--qa",
        default="bundled",
        help=f"bundled ({BUNDLED_DIR}), a dir with passages.jsonl and questions.jsonl, or a QA set scored by "
        f"answer over --corpus: hub:{NQ_OPEN}[:SPLIT] (default split validation) or a Parquet file or dir in "
        "its layout (question, answer)",
    )
    ev.add_argument(
        "--ks",
        type=_ks,
        default=None,
        help="comma-separated cut-offs (default 1,5,20; 1,5,20,100 for a QA set scored by answer only)",
    )
    ev.add_argument("--max-questions", type=_positive_int, default=None, help="score the first N questions only")
    conv = sub.add_parser(
        "convert-realm-openqa",
        help="REALM's own open-QA index (its blocks and block_emb) as Parquet passages and a vector file for `index`",
    )
    conv.add_argument("--checkpoint", default=REALM_OPENQA, help=f"repo id or directory (default {REALM_OPENQA})")
    conv.add_argument("--out", required=True, help="writes OUT/realm-wikipedia/*.parquet and OUT/block_emb.npy")
    cal = sub.add_parser(
        "calibrate-readers",
        help="fit each reader's no-answer rule on half of a QA set and measure it on the other half",
    )
    cal.add_argument(
        "--qa", default="bundled", help=f"bundled ({BUNDLED_DIR}) or a dir with passages.jsonl and questions.jsonl"
    )
    cal.add_argument("--readers", default="dpr,realm", help="comma-separated: dpr, realm")
    cal.add_argument("--retriever", default="bm25", help="whose passages the readers read (default bm25)")
    cal.add_argument("-k", type=_positive_int, default=5, help="passages read per question (default 5, as the app)")
    cal.add_argument("--seed", type=int, default=0, help="the shuffle that splits the questions in two halves")
    cal.add_argument(
        "--rules", default=None, help="the rules file to update (default $LFQA_READER_RULES or the index cache's)"
    )
    cal.add_argument("--cache-dir", default=None)
    cal.add_argument("--device", default=None)
    cal.add_argument("--dtype", default=None)
    cal.add_argument("--max-questions", type=_positive_int, default=None, help="use the first N questions only")
    cmp = sub.add_parser("compare", parents=[common], help="rank the corpus for one question")
    cmp.add_argument("question")
    cmp.add_argument("-k", type=int, default=5)
    cmp.add_argument("--gold-answer", default=None)
    return parser


def index_line(name: str, result: IndexResult) -> str:
    """One line of `index`'s report: where the index lives, or why it failed."""
    if result.error is not None:
        return f"{name}: FAILED: {result.error}"
    index = result.index
    state = "cached" if index.from_cache else f"built in {index.build_seconds:.1f} s"
    where = str(index.path) if index.path is not None else f"in memory only ({index.persist_error})"
    return f"{name}: {index.kind} index of {len(index)} x {index.dim}, {state}, {where}"


def run_index(args: argparse.Namespace, names: list[str]) -> int:
    """Build (or read from the cache) each requested dense index, write them as bundles with
    --out (and upload them with --push-to-hub); exit 1 when any failed."""
    if args.push_to_hub and not args.out:
        raise InvalidInputError("--push-to-hub uploads the bundles that --out writes: give --out DIR too")
    if args.workers is not None and args.engine != "ray":
        raise InvalidInputError("--workers is the number of Ray actors: give --engine ray too")
    if args.vectors or is_table_source(args.corpus) or args.engine == "ray":
        return run_corpus_bundle(args, names)
    if args.index_kind in ("exact", "compressed"):
        raise InvalidInputError(f"--index-kind {args.index_kind} is for corpus bundles (Parquet or hub corpora)")
    engine = _engine(args, _corpus(args.corpus, args))
    print(f"corpus {engine.corpus.name}: {len(engine.corpus)} passages", file=sys.stderr)
    indexes = engine.build_indexes(names, progress=_progress)
    for name, index in indexes.items():
        print(index_line(name, index))
        if args.out and index.error is None:
            folder = write_bundle(Path(args.out) / name, engine.retriever(name), engine.corpus, index.index)
            print(f"{name}: bundle written to {folder}")
    failed = [name for name, result in indexes.items() if result.error is not None]
    if args.push_to_hub and not failed:
        print(f"bundles uploaded to {push_bundles(args.out, args.push_to_hub)}")
    if failed:
        # A script running `index` ahead of time must notice that some index is not there.
        print(f"error: {len(failed)} of {len(indexes)} dense indexes failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_corpus_bundle(args: argparse.Namespace, names: list[str]) -> int:
    """Write a corpus bundle (the passages, BM25 and each dense index) to --out: see bundle_build.py."""
    if not args.out:
        raise InvalidInputError("a Parquet or hub corpus (or --vectors) is built into a corpus bundle: give --out DIR")
    if args.push_to_hub:
        raise InvalidInputError("--push-to-hub uploads per-retriever bundles; upload a corpus bundle with `hf upload`")
    if args.index_kind not in ("auto", "exact", "compressed"):
        raise InvalidInputError(f"a corpus bundle's index kind is auto, exact or compressed, not {args.index_kind}")
    _check_device_and_dtype(args)
    if args.engine == "ray":
        require_ray()  # before anything is read
        check_engine_options(names)
    vectors = dict(parse_vectors_option(option) for option in args.vectors or [])
    specs: dict[str, str | RetrieverSpec] = dict(_model_spec(option) for option in args.model or [])
    source = passage_source(args.corpus, lambda spec: _corpus(spec, args))
    started = time.perf_counter()
    if args.engine == "ray":
        vectors.update(run_ray_vectors(args, source, encoded_here(names, vectors, source), specs))
    manifest = build_bundle(
        Path(args.out),
        source,
        names,
        specs,
        vectors,
        max_passages=args.max_passages,
        kind=args.index_kind,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        progress=_progress,
    )
    print(
        f"corpus bundle {args.out}: {manifest.corpus.passages:,} passages, "
        f"{', '.join([*manifest.retrievers, *(['bm25'] if manifest.bm25 else [])])}, "
        f"{time.perf_counter() - started:.1f} s"
    )
    for name, entry in manifest.retrievers.items():
        print(
            f"{name}: {entry.index.kind} index, recall@10 of exact search {entry.index.recall_at_10:.3f}; "
            f"vectors: {entry.vectors.origin} ({entry.vectors.verified})"
        )
    return EXIT_OK


def run_ray_vectors(
    args: argparse.Namespace, source, names: list[str], specs: dict[str, str | RetrieverSpec]
) -> dict[str, Path]:
    """`--engine ray`: encode the `names` retrievers' vectors into OUT/vectors/ with Ray Data
    (ray_build.py), resuming an earlier run; their folders, for the bundle build to read."""
    if source.shards is None:
        raise InvalidInputError(
            f"--engine ray reads Parquet shards: --corpus {args.corpus} is not a Parquet file or folder, "
            "nor hub:ORG/NAME"
        )
    built = encode_with_ray(
        Path(args.out),
        source.shards,
        names,
        specs,
        workers=args.workers,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        max_passages=args.max_passages,
        progress=_encode_progress,
    )
    for result in built:
        rate = result.passages_encoded / result.seconds if result.seconds > 0 else 0.0
        print(
            f"{result.retriever}: vector shards in {result.folder}: {len(result.kept)} kept from an earlier run, "
            f"{len(result.encoded)} encoded ({result.passages_encoded:,} passages in {result.seconds:.1f} s, "
            f"{rate:,.0f} passages/s)"
        )
    return {result.retriever: result.folder for result in built}


def run_evaluate(args: argparse.Namespace, names: list[str]) -> int:
    """Recall@k at --ks and MRR@max(--ks) of each retriever on a QA set, by answer and by gold
    passage, as a table (failures listed below it). Computed by `evaluation_report`, the app's
    evaluation view's path, so both give the same figures under the same names. A QA set without
    gold passages (NQ-open's layout) goes to `run_evaluate_open`."""
    if args.qa != "bundled" and is_open_qa_source(args.qa):
        return run_evaluate_open(args, names)
    qa_dir = BUNDLED_DIR if args.qa == "bundled" else Path(args.qa)
    if not qa_dir.is_dir():
        raise InvalidInputError(
            f"--qa {args.qa!r} is not a directory holding passages.jsonl and questions.jsonl, nor a Parquet "
            f"file, nor hub:{NQ_OPEN}"
        )
    ks = args.ks or GOLD_PASSAGE_KS
    engine = _engine(args, load_corpus_dir(qa_dir))
    qa = load_qa_set(qa_dir)[: args.max_questions]
    engine.build_indexes(names, progress=_progress)
    print(f"{len(qa)} questions, {len(engine.corpus)} passages ({qa_dir})")
    print(format_table(evaluation_report(engine, qa, names, max_k=max(ks)), ks))
    return EXIT_OK


def run_evaluate_open(args: argparse.Namespace, names: list[str]) -> int:
    """DPR's retrieval accuracy: top-k recall by answer (answer_match.py, DPR's `has_answer`) of
    each retriever over --corpus (a corpus bundle, or any corpus the command line reads) on an
    answer-only QA set (retrieval/nq_open.py), at --ks (default 1,5,20,100), with MRR@max(--ks)."""
    ks = args.ks or OPEN_QA_KS
    qa = open_qa_set(args.qa, limit=args.max_questions)  # first: a missing QA file fails before any model loads
    source = Path(args.corpus).expanduser()
    if (source / MANIFEST).is_file():
        engine = _engine(args, None, open_corpus_bundle(source))
    else:
        engine = _engine(args, _corpus(args.corpus, args))
    engine.build_indexes(names, progress=_progress)
    print(f"{len(qa.items):,} questions ({qa.name}), {len(engine.corpus):,} passages ({engine.corpus.name})")
    for note in qa.notes:
        print(f"note: {note}")
    report = evaluation_report(engine, qa.items, names, max_k=max(ks), progress=_progress)
    print(format_table(report, ks))
    return EXIT_OK


def run_compare(args: argparse.Namespace, names: list[str]) -> int:
    """Rank the corpus for one question with each retriever, and how much they agree."""
    engine = _engine(args, _corpus(args.corpus, args))
    print(f"corpus {engine.corpus.name}: {len(engine.corpus)} passages", file=sys.stderr)
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
            mark = " [answer]" if h.contains_answer else ""
            print(f"  {h.rank:>2}. {h.score:8.3f}  {h.title[:30]:<30}  {h.text[:70]}{mark}")
    for ag in comparison.agreement:
        print(f"{ag.a} vs {ag.b}: overlap@{comparison.k} {ag.overlap:.2f}, RBO {ag.rbo:.2f}")
    return EXIT_OK


def run_convert_realm_openqa(args: argparse.Namespace) -> int:
    """Convert REALM's open-QA checkpoint (retrieval/realm_openqa.py), then say how to build its bundle."""
    started = time.perf_counter()
    corpus, vectors = convert_realm_openqa(args.checkpoint, args.out, progress=_progress)
    print(f"\nwrote {corpus} and {vectors} in {time.perf_counter() - started:.0f} s; now build the bundle:")
    print(
        f"  python -m lfqa_demo index --corpus {corpus} --retrievers realm-orqa,bm25 "
        f"--vectors realm-orqa={vectors} --out BUNDLE"
    )
    return 0


def run_calibrate_readers(args: argparse.Namespace) -> int:
    """Fit and measure each reader's no-answer rule (reader_calibration.py), print the figures and
    write the rules where the app reads them."""
    from .reader_calibration import calibrate_reader, format_report, save_rules
    from .service import READERS, default_reader_rules

    qa_dir = BUNDLED_DIR if args.qa == "bundled" else Path(args.qa)
    if not qa_dir.is_dir():
        raise InvalidInputError(f"--qa {args.qa!r} is not a directory holding passages.jsonl and questions.jsonl")
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    unknown = [r for r in readers if r not in READERS]
    if not readers or unknown:
        raise InvalidInputError(f"--readers takes {', '.join(READERS)}, not {args.readers!r}")
    _check_device_and_dtype(args)
    engine = RetrievalEngine(
        load_corpus_dir(qa_dir),
        retrievers={args.retriever: args.retriever},
        cache_dir=args.cache_dir,
        device=args.device,
        dtype=args.dtype,
    )
    qa = load_qa_set(qa_dir)[: args.max_questions]
    engine.build_indexes([args.retriever], progress=_progress)
    rules = ReaderRules(Path(args.rules)) if args.rules else default_reader_rules()
    for reader in readers:
        report = calibrate_reader(
            engine, reader, args.retriever, qa, k=args.k, seed=args.seed, qa_name=qa_dir.name, progress=_progress
        )
        print(format_report(report))
        save_rules(report, rules)
    print(f"rules written to {rules.path}")
    return EXIT_OK


COMMANDS = {"index": run_index, "evaluate": run_evaluate, "compare": run_compare}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (argparse exits by itself, with 2, on a bad command line)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "convert-realm-openqa":
            return run_convert_realm_openqa(args)
        if args.command == "calibrate-readers":
            return run_calibrate_readers(args)
        return COMMANDS[args.command](args, _retriever_names(args))
    except LfqaError as exc:
        # Only our own errors: their messages are written for the user. Anything else is a bug
        # and keeps its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
