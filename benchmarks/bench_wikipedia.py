"""All of Wikipedia on a CPU Space, measured at the sizes this machine can hold and projected to 21M.

For each size N (default 500,000, 1,000,000 and 2,000,000 passages): a generated corpus in
wiki_dpr's layout (tools/wiki_corpus.py) and vectors for the three dense retrievers, given, not
encoded (768-d for DPR, 128-d for RetriBERT and REALM: the real checkpoints' sizes); then

1. the build, `python -m lfqa_demo index --corpus ... --vectors ... --out BUNDLE`, in a child
   process: seconds per stage (passages, BM25, each dense index), peak RSS, bytes on disk;
2. serving, in a fresh child process over full-size checkpoints (random weights, real sizes:
   benchmarks/full_size_checkpoints.py): seconds to open the bundle and each index, RSS with all
   six models loaded and after 100 queries, each retriever's search p50/p95 (one query at a
   time, 2 threads, question encoding excluded), recall@10 of each dense index against exact
   search over the given vectors on held-out query vectors (made like the passages', not in the
   index), BM25 p50/p95;
3. the app: seconds from launch to the page, and from the page to a first /search answered by
   all four retrievers over the bundle (the bundle opened, three question encoders loaded).

Then a linear model of disk and memory in N, fitted on the sizes run, projected to 21,015,300
passages (wiki_dpr's), printed with its coefficients. Not a test: it prints, asserts nothing.

    .venv/bin/python benchmarks/bench_wikipedia.py [--sizes 500000,1000000,2000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

WIKIPEDIA = 21_015_300  # wiki_dpr's passages
DIMS = {"retribert": 128, "dpr": 768, "realm": 128}
HELD_OUT = 200  # query vectors per retriever, generated like the passages' and never indexed
QUERIES = 100  # questions searched one at a time while serving


def cpu_flags() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags)


# -- data -----------------------------------------------------------------------------------------------
def generate(work: Path, passages: int) -> Path:
    """The corpus (Parquet, no embeddings column) and each retriever's vectors (one .npy of N rows)
    plus HELD_OUT query rows (queries-NAME.npy), under work/N; reused when already there."""
    from tools.wiki_corpus import Layout, _articles, passage_vectors, write_corpus

    root = work / str(passages)
    done = root / "generated.json"
    if done.exists():
        return root
    started = time.perf_counter()
    layout = Layout(passages, shard_rows=100_000, dim=0)
    write_corpus(root / "corpus", layout)
    rows = passages + HELD_OUT
    articles = _articles(Layout(rows), np.random.default_rng(1))
    for seed, (name, dim) in enumerate(DIMS.items(), start=1):
        (root / name).mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(root / name / "vectors.npy", mode="w+", dtype=np.float32, shape=(passages, dim))
        queries = np.empty((HELD_OUT, dim), dtype=np.float32)
        at = 0
        for chunk in passage_vectors(articles, dim, seed):  # N + HELD_OUT rows, in order
            stop = at + len(chunk)
            keep = max(0, min(stop, passages) - at)
            out[at : at + keep] = chunk[:keep]
            if stop > passages:  # the rows past N are the held-out queries
                first = max(at, passages) - passages
                queries[first : first + len(chunk) - keep] = chunk[keep:]
            at = stop
        out.flush()
        del out
        np.save(root / f"queries-{name}.npy", queries, allow_pickle=False)
    done.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    print(f"  generated {passages:,} passages and their vectors in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def hub_cache(work: Path) -> Path:
    """Full-size random-weight checkpoints as an offline hub cache (written once, ~2.6 GB)."""
    from bench_cold_start import full_size_hub_cache

    return full_size_hub_cache(work / "full-size", work / "hf-cache")


def child_env(cache: Path) -> dict:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "LFQA_DTYPE": os.environ.get("LFQA_DTYPE", "float32"),
        "OMP_NUM_THREADS": "2",
    }


# -- 1. the build ---------------------------------------------------------------------------------------
def build(root: Path, cache: Path) -> dict:
    out = root / "bundle"
    if not (out / "manifest.json").exists():
        command = [sys.executable, "-m", "lfqa_demo", "index", "--corpus", str(root / "corpus")]
        # Compressed at every size, as at 21M ("auto" would keep 500k x 128 floats whole): one model fits all.
        command += ["--retrievers", "retribert,dpr,realm,bm25", "--out", str(out), "--index-kind", "compressed"]
        command += [f"--vectors={n}={root / n / 'vectors.npy'}" for n in DIMS]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        subprocess.run(command, env=child_env(cache), check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        (root / "build.json").write_text(
            json.dumps({"seconds": time.perf_counter() - started, "peak_rss_kb": max(peak, before)})
        )
    manifest = json.loads((out / "manifest.json").read_text())
    record = json.loads((root / "build.json").read_text())
    groups: dict[str, int] = {}
    for name, entry in manifest["files"].items():
        group = name.split("/")[0] if "/" in name else name
        groups[group] = groups.get(group, 0) + entry["bytes"]
    return {
        "seconds": record["seconds"],
        "peak_rss_gb": record["peak_rss_kb"] / 1e6,
        "stages": manifest["build_seconds"],
        "disk": groups,
        "indexes": {n: e["index"] for n, e in manifest["retrievers"].items()},
    }


# -- 2. serving -----------------------------------------------------------------------------------------
SERVE = r"""
import json, sys, time, statistics
import numpy as np
t0 = time.perf_counter()
from lfqa_demo.retrieval.corpus_bundles import open_corpus_bundle
from lfqa_demo.engine import RetrievalEngine
root, out = sys.argv[1], {}
def rss(kind="VmRSS"):  # VmRSS = RssAnon (the process's own) + RssFile (mapped files: page cache)
    for line in open("/proc/self/status"):
        if line.startswith(kind + ":"):
            return int(line.split()[1]) / 1e6
started = time.perf_counter()
bundle = open_corpus_bundle(root + "/bundle")
out["open_bundle_s"] = time.perf_counter() - started
engine = RetrievalEngine(corpus_bundle=bundle)
out["rss_opened_gb"] = rss()
from lfqa_demo.models.loading import load_retriever
from lfqa_demo.reading.loading import load_reader
import torch, faiss
torch.set_num_threads(2); faiss.omp_set_num_threads(2)
out["index_open_s"] = {}
for name in ("retribert", "dpr", "realm"):
    started = time.perf_counter()
    index = engine.index(name, timeout=600)
    out["index_open_s"][name] = time.perf_counter() - started  # model load + index open
started = time.perf_counter()
engine.searchers["bm25"].index()
out["index_open_s"]["bm25"] = time.perf_counter() - started
load_retriever("dpr").encode_passages([{"title": "t", "text": "x"}])  # DPR's passage encoder: the sixth model
load_reader("dpr"); load_reader("realm")
out["rss_models_gb"] = rss()
words = [p.text.split() for p in (bundle.corpus[i] for i in np.linspace(0, len(bundle.corpus) - 1, 100).astype(int))]
questions = ["who " + " ".join(w[20:26]) for w in words][:%(queries)d]
times = {n: [] for n in ("retribert", "dpr", "realm", "bm25")}
for q in questions:
    for name in times:
        r = engine.searchers[name].search([q], 10, timeout=60)
        times[name].append(1000 * r.search_seconds)
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
out["search_ms"] = {n: {"p50": pct(v, 0.5), "p95": pct(v, 0.95)} for n, v in times.items()}
out["rss_after_queries_gb"] = rss()
out["rss_anon_gb"], out["rss_file_gb"] = rss("RssAnon"), rss("RssFile")
# BM25 reads at most POSTINGS_BUDGET postings a question: the share of the exact top 10 it keeps.
bm25 = engine.searchers["bm25"].index()
_, bounded = bm25.search(questions, 10)
_, exact = bm25.search(questions, 10, exact=True)
out["bm25_top10_kept"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(bounded, exact)]))
out["bm25_postings_read"] = float(np.mean([bm25.postings_read(q) for q in questions]))
out["recall_at_10"] = {}
for name in ("retribert", "dpr", "realm"):
    vectors = np.load(root + f"/{name}/vectors.npy", mmap_mode="r")
    queries = np.load(root + f"/queries-{name}.npy")
    exact = np.empty((len(queries), 10), dtype=np.int64)
    best = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    for s in range(0, len(vectors), 200_000):
        block = np.asarray(vectors[s:s + 200_000]) @ queries.T  # [rows, queries]
        top = np.argpartition(-block, 10, axis=0)[:10].T + s  # [queries, 10]
        scores = np.take_along_axis(block.T, top - s, axis=1)
        both_s = np.concatenate([best, scores], 1); both_i = np.concatenate([exact, top], 1)
        keep = np.argsort(-both_s, axis=1)[:, :10]
        best = np.take_along_axis(both_s, keep, 1); exact = np.take_along_axis(both_i, keep, 1)
    index = engine.built_index(name)
    _, found = index.search(queries, 10)
    out["recall_at_10"][name] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)]))
print(json.dumps(out))
"""


def serve(root: Path, cache: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SERVE % {"queries": QUERIES}, str(root)],
        env=child_env(cache),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- 3. the app -----------------------------------------------------------------------------------------
def app_open(root: Path, cache: Path, work: Path) -> dict:
    import httpx
    from gradio_client import Client

    from tests.app_server import free_port

    port = free_port()
    env = child_env(cache) | {
        "LFQA_CORPORA": str(root / "bundle"),
        "LFQA_CACHE": str(work / "app-cache"),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "LFQA_WARMUP": "0",
    }
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    with open(work / "app.log", "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError(f"the app did not come up: {(work / 'app.log').read_text()[-2000:]}")
                time.sleep(0.2)
            page = time.perf_counter() - started
            client = Client(url, verbose=False)
            t = time.perf_counter()
            found = client.predict(
                "who founded the city", 10, ["retribert", "dpr", "realm", "bm25"], "", api_name="/search"
            )
            first = time.perf_counter() - t
            assert "errors" not in found, found
        finally:
            process.terminate()
            process.wait(30)
    return {"page_s": page, "first_search_s": first}


# -- the model ------------------------------------------------------------------------------------------
def fit(sizes: list[int], values: list[float]) -> tuple[float, float]:
    """(per passage, fixed) of a least-squares line through the points (or through 0 with one point)."""
    if len(sizes) == 1:
        return values[0] / sizes[0], 0.0
    slope, intercept = np.polyfit(np.array(sizes, float), np.array(values, float), 1)
    return float(slope), float(intercept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500000,1000000,2000000")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("LFQA_BENCH_DIR", "/tmp/lfqa-wikipedia")))
    parser.add_argument("--skip-app", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores; sizes {sizes}", flush=True)
    cache = hub_cache(args.work)
    results = {}
    for n in sizes:
        print(f"\n== {n:,} passages", flush=True)
        root = generate(args.work, n)
        if (root / "result.json").exists():  # measured by an earlier run: not again
            results[n] = json.loads((root / "result.json").read_text())
            continue
        results[n] = {"build": build(root, cache)}
        print(json.dumps(results[n]["build"], indent=1), flush=True)
        results[n]["serve"] = serve(root, cache)
        print(json.dumps(results[n]["serve"], indent=1), flush=True)
        if not args.skip_app:
            results[n]["app"] = app_open(root, cache, args.work)
            print(json.dumps(results[n]["app"]), flush=True)
        (root / "result.json").write_text(json.dumps(results[n], indent=1))
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    report(sizes, results)


def report(sizes: list[int], results: dict) -> None:
    print(
        "\n| passages | build s (passages / bm25 / retribert / dpr / realm) | build peak RSS | on disk | "
        "open s | RSS, 6 models + 100 queries | search p50/p95 ms (retribert, dpr, realm, bm25) | recall@10 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        b, s = results[n]["build"], results[n]["serve"]
        st = b["stages"]
        stages = " / ".join(f"{st.get(k, 0):.0f}" for k in ("passages", "bm25", "retribert", "dpr", "realm"))
        search = ", ".join(
            f"{s['search_ms'][k]['p50']:.1f}/{s['search_ms'][k]['p95']:.1f}"
            for k in ("retribert", "dpr", "realm", "bm25")
        )
        recall = ", ".join(f"{s['recall_at_10'][k]:.3f}" for k in ("retribert", "dpr", "realm"))
        if "bm25_top10_kept" in s:  # BM25's bounded search against reading every posting
            recall += f"; BM25 {s['bm25_top10_kept']:.3f} ({s['bm25_postings_read'] / 1e6:.2f}M postings read)"
        disk = sum(b["disk"].values()) / 1e9
        print(
            f"| {n:,} | {stages} | {b['peak_rss_gb']:.1f} GB | {disk:.2f} GB | {s['open_bundle_s']:.2f} | "
            f"{s['rss_after_queries_gb']:.2f} GB | {search} | {recall} |"
        )
    print("\nA linear model in N (least squares over the sizes run), projected to 21,015,300 passages:")
    groups = sorted({g for n in sizes for g in results[n]["build"]["disk"]})
    total = 0.0
    for g in groups:
        slope, fixed = fit(sizes, [results[n]["build"]["disk"].get(g, 0) for n in sizes])
        at = slope * WIKIPEDIA + fixed
        total += at
        print(f"  disk {g:<14} {slope:8.1f} bytes a passage + {fixed / 1e6:8.1f} MB -> {at / 1e9:6.1f} GB")
    print(f"  disk, bundle total -> {total / 1e9:.1f} GB (+ the six checkpoints, 2.6 GB)")
    kinds = (
        ("rss_after_queries_gb", "RSS"),
        ("rss_anon_gb", "RSS, anonymous (the rest is page cache the OS can take back)"),
    )
    for key, what in kinds:
        if not all(key in results[n]["serve"] for n in sizes):
            continue
        slope, fixed = fit(sizes, [results[n]["serve"][key] * 1e9 for n in sizes])
        print(
            f"  {what} after 100 queries, 6 models: {slope:.1f} bytes a passage + {fixed / 1e9:.2f} GB -> "
            f"{(slope * WIKIPEDIA + fixed) / 1e9:.1f} GB"
        )
    for k in ("retribert", "dpr", "realm", "bm25"):
        slope, fixed = fit(sizes, [results[n]["serve"]["search_ms"][k]["p50"] for n in sizes])
        print(
            f"  search p50 {k:<9} {slope * 1e6:.3f} ms a million passages + {fixed:.1f} ms "
            f"-> {slope * WIKIPEDIA + fixed:.0f} ms"
        )
    print(
        "  (BM25 reads at most bm25.POSTINGS_BUDGET postings a question, so its time stops growing once its\n"
        "  questions use the budget: a line overstates it; bench_bm25.py --synthetic 21015300 measures it there)"
    )


if __name__ == "__main__":
    main()
