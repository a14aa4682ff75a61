"""Performance against the reference implementation, in one run, on full-size random-weight
checkpoints in the real layout (full_size_checkpoints.py) and real-length passages (the
bundled corpus). Prints a table of every target with our figure and the ratio to the
reference (transformers 4.40.2, fp32, eager attention, in a throwaway virtualenv that this
script creates on first use: $REF_VENV, default /tmp/lfqa-reference-venv).

    .venv/bin/python benchmarks/bench_performance.py [--dtype bf16] [--passages 128] [--skip-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_retrieval import make_corpus, specs  # noqa: E402
from full_size_checkpoints import checkpoint_dir, default_dir, write_all  # noqa: E402

from lfqa_demo import load_reader, load_retriever  # noqa: E402
from lfqa_demo.engine import RetrievalEngine  # noqa: E402
from lfqa_demo.retrieval.corpus import load_bundled_corpus, load_bundled_questions  # noqa: E402
from lfqa_demo.retrieval.indexes import DenseIndex, make_faiss_index  # noqa: E402

REF_VENV = Path(os.environ.get("REF_VENV", "/tmp/lfqa-reference-venv"))
REPEATS = 3  # passage-encoding runs per family, on both sides; the median is reported


def reference_python() -> Path:
    py = REF_VENV / "bin" / "python"
    if not py.exists():
        print(
            f"creating the reference virtualenv in {REF_VENV} (torch CPU wheel + transformers 4.40.2)...",
            file=sys.stderr,
        )
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        pip = [str(REF_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)  # the local CPU wheel, before anything can pull CUDA
        subprocess.run(pip + ["transformers==4.40.2", "numpy<2"], check=True)
    return py


def reader_jobs(n_questions: int, n_passages: int) -> list[dict]:
    corpus = load_bundled_corpus()
    by_id = {p.id: i for i, p in enumerate(corpus)}
    jobs = []
    for item in load_bundled_questions()[:n_questions]:
        at = by_id[item.passage_id]
        jobs.append(
            {
                "question": item.question,
                "passages": [p.as_dict() for p in corpus.passages[max(0, at - n_passages // 2) :][:n_passages]],
            }
        )
    return jobs


def measure_ours(root: Path, dtype, passages, questions, jobs) -> dict:
    out = {"passages_tokens_per_s": {}, "question_ms": {}, "reader_ms": {}}
    for name, spec in specs(root).items():
        r = load_retriever(spec, device="cpu", dtype=dtype)
        out["dtype"] = str(r.dtype).removeprefix("torch.")
        tokens = sum(len(ids) for ids, _ in r.tokenize_passages(passages))
        r.encode_passages(passages[:8])
        rates = []
        for _ in range(REPEATS):  # the median of a few runs: this shared machine's speed wanders
            t = time.perf_counter()
            r.encode_passages(passages)
            rates.append(tokens / (time.perf_counter() - t))
        out["passages_tokens_per_s"][name] = statistics.median(rates)
        r.encode_questions(questions[:1])
        times = []
        for q in questions:
            t = time.perf_counter()
            r.encode_questions([q])
            times.append(1000 * (time.perf_counter() - t))
        out["question_ms"][name] = statistics.median(times)
    for name, key in (("dpr", "dpr_reader"), ("realm", "realm_reader")):
        reader = load_reader(name, checkpoint=str(checkpoint_dir(root, key)), device="cpu", dtype=dtype)
        reader.read(jobs[0]["question"], jobs[0]["passages"])
        times = []
        for job in jobs:
            t = time.perf_counter()
            reader.read(job["question"], job["passages"])
            times.append(1000 * (time.perf_counter() - t))
        out["reader_ms"][name] = statistics.median(times)
    return out


def measure_compare(root: Path, dtype, size: int, n_questions: int) -> dict:
    """Warm compare over `size` passages: real question encoding and real search; the dense
    indexes hold real embeddings of 256 passages repeated with noise (see bench_retrieval)."""
    import numpy as np

    corpus = make_corpus(size)
    engine = RetrievalEngine(corpus, retrievers={**specs(root), "bm25": "bm25"}, device="cpu", dtype=dtype)
    build = {}
    for name in ("retribert", "dpr", "realm"):
        r = engine.retriever(name)
        sample = corpus.as_dicts()[:256]
        r.encode_passages(sample[:8])  # warm-up; also loads a separate passage encoder (it loads lazily)
        t = time.perf_counter()
        vecs = r.encode_passages(sample)
        build[name] = len(sample) / (time.perf_counter() - t)
        vecs = np.tile(vecs, (-(-size // len(sample)), 1))[:size] + 0.01 * np.random.default_rng(0).standard_normal(
            (size, r.dim)
        )
        t = time.perf_counter()
        index = make_faiss_index(vecs.astype(np.float32), "flat")
        engine.set_index(name, DenseIndex(name, "flat", index, r.dim, time.perf_counter() - t, False, None))
    t = time.perf_counter()
    engine.build_indexes(["bm25"])
    build["bm25"] = size / (time.perf_counter() - t)
    questions = [q.question for q in load_bundled_questions()][:n_questions]
    for q in questions[:3]:
        engine.compare(q, k=10)
    times = []
    for q in questions:
        t = time.perf_counter()
        engine.compare(q, ["retribert", "dpr", "realm", "bm25"], k=10)
        times.append(1000 * (time.perf_counter() - t))
    return {
        "compare_p50_ms": statistics.median(times),
        "index_passages_per_s": build,
        "index_10k_minutes": {n: size / v / 60 for n, v in build.items()},
    }


def precision_check(root: Path, dtype, passages, questions) -> dict:
    """Reduced precision against fp32 on the full-size checkpoints: the smallest cosine between
    the two embeddings of a text, and the top-10 overlap of the questions' rankings."""
    import numpy as np

    out = {}
    for name, spec in specs(root).items():
        runs = {}
        for dt in ("float32", dtype):
            r = load_retriever(spec, device="cpu", dtype=dt)
            runs[dt] = (r.encode_questions(questions), r.encode_passages(passages))
        (q32, p32), (qlo, plo) = runs["float32"], runs[dtype]
        cos = lambda a, b: ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()  # noqa: E731
        top = lambda q, p: np.argsort(-(q @ p.T), axis=1)[:, :10]  # noqa: E731
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top(q32, p32), top(qlo, plo))])
        out[name] = (float(min(cos(q32, qlo), cos(p32, plo))), float(overlap))
    return out


def launch_seconds() -> float:
    """`python app.py` to the first HTTP 200."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - t < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.perf_counter() - t
            except httpx.HTTPError:
                time.sleep(0.05)
        return float("nan")
    finally:
        proc.terminate()
        proc.wait()


def resident_memory(root: Path, dtype) -> dict:
    """RSS of a fresh process holding all six models."""
    code = f"""
import sys, json
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from bench_retrieval import specs
from full_size_checkpoints import checkpoint_dir
from pathlib import Path
from lfqa_demo import load_reader, load_retriever
root = Path({str(root)!r})
for spec in specs(root).values():
    load_retriever(spec, device="cpu", dtype={dtype!r}).passage_head  # DPR's loads lazily: load it too
load_reader("dpr", checkpoint=str(checkpoint_dir(root, "dpr_reader")), device="cpu", dtype={dtype!r})
load_reader("realm", checkpoint=str(checkpoint_dir(root, "realm_reader")), device="cpu", dtype={dtype!r})
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
gb = {{key: int(status[key].split()[0]) / 2**20 for key in ("VmRSS", "VmHWM")}}
print(json.dumps({{"rss_gb": gb["VmRSS"], "peak_gb": gb["VmHWM"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default=None, help="default: the automatic precision policy")
    parser.add_argument("--passages", type=int, default=128)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--reader-questions", type=int, default=5)
    parser.add_argument("--compare-passages", type=int, default=10_000)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--checkpoints", type=Path, default=default_dir())
    args = parser.parse_args()
    root = write_all(args.checkpoints)
    passages = load_bundled_corpus().as_dicts()[: args.passages]
    questions = [q.question for q in load_bundled_questions()][: args.questions]
    jobs = reader_jobs(args.reader_questions, 10)

    ref = None
    if not args.skip_reference:
        job = {
            "repeats": REPEATS,
            "dirs": {
                **{
                    k: str(checkpoint_dir(root, k))
                    for k in ("retribert", "dpr_q", "dpr_ctx", "dpr_reader", "realm", "realm_reader")
                },
                "vocab": str(checkpoint_dir(root, "dpr_q") / "vocab.txt"),
            },
            "passages": passages,
            "questions": questions,
            "reader_jobs": jobs,
        }
        run = subprocess.run(
            [str(reference_python()), str(ROOT / "benchmarks" / "reference_bench.py")],
            input=json.dumps(job),
            capture_output=True,
            text=True,
        )
        if run.returncode:
            print(run.stderr[-3000:], file=sys.stderr)
            raise SystemExit("the reference run failed")
        ref = json.loads(run.stdout)
    ours = measure_ours(root, args.dtype, passages, questions, jobs)
    compare = measure_compare(root, args.dtype, args.compare_passages, args.questions)
    memory = resident_memory(root, args.dtype or ours["dtype"])
    precision = precision_check(root, ours["dtype"], passages, questions) if ours["dtype"] != "float32" else {}
    launch = launch_seconds()

    print(
        f"\nlfqa-demo ({ours['dtype']}) vs reference (transformers {ref['transformers'] if ref else '-'} fp32), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, full-size random weights"
    )
    print(f"{'measure':<42} {'ours':>10} {'reference':>10} {'ratio':>7}  target")

    def row(label, mine, theirs, target, higher_is_better=True, fmt="{:.0f}"):
        ratio = "" if theirs is None else f"{(mine / theirs if higher_is_better else theirs / mine):.2f}x"
        print(
            f"{label:<42} {fmt.format(mine):>10} {('-' if theirs is None else fmt.format(theirs)):>10} "
            f"{ratio:>7}  {target}"
        )

    for fam in ("retribert", "dpr", "realm"):
        row(
            f"passage encoding, {fam}, tokens/s",
            ours["passages_tokens_per_s"][fam],
            ref and ref["passages_tokens_per_s"][fam],
            ">= 3,500 and >= 4x ref (BERT-base)",
        )
    for fam in ("retribert", "dpr", "realm"):
        row(
            f"one question, {fam}, ms (p50)",
            ours["question_ms"][fam],
            ref and ref["question_ms"][fam],
            "<= 25 ms",
            False,
            "{:.1f}",
        )
    for name in ("dpr", "realm"):
        row(
            f"reader, {name}, 10 passages, ms (p50)", ours["reader_ms"][name], ref and ref["reader_ms"][name], "", False
        )
    row(
        f"compare 4 retrievers, k=10, {args.compare_passages} psg, ms p50",
        compare["compare_p50_ms"],
        None,
        "<= 100 ms",
        False,
        "{:.1f}",
    )
    for name, v in compare["index_passages_per_s"].items():
        row(
            f"index build, {name}, passages/s",
            v,
            None,
            f"10k passages in {compare['index_10k_minutes'][name]:.1f} min",
            fmt="{:.1f}",
        )
    row("launch to first HTTP answer, s", launch, None, "<= 5 s", False, "{:.1f}")
    row(
        "RSS with all six models, GB",
        memory["rss_gb"],
        None,
        f"<= 2.5 GB (peak while loading {memory['peak_gb']:.2f} GB)",
        False,
        "{:.2f}",
    )
    for name, (cos, overlap) in precision.items():
        print(
            f"{ours['dtype']} vs float32, {name}: min cosine {cos:.5f} (>= 0.999), top-10 overlap "
            f"{overlap:.3f} (>= 0.9) "
            f"over {len(passages)} passages, {len(questions)} questions"
        )


if __name__ == "__main__":
    main()
