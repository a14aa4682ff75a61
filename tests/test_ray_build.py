"""`index --engine ray` (lfqa_demo/ray_build.py) on a generated corpus in wiki_dpr's layout (400
passages in 4 Parquet shards) with the fixture checkpoints, on one local Ray instance for the
whole module (2 CPU actors and a CPU to read with; Ray takes ~10 s to start): the vectors are the
in-process build's, and the bundle searches as exact search over them; a build killed between two
shards resumes with the missing shards only; a damaged shard is encoded again, never taken;
without Ray the option fails at once and the default build still works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_until

from lfqa_demo import __main__ as cli
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.models.loading import load_retriever
from lfqa_demo.ray_build import (
    PAUSE_ENV,
    SHARDS_MANIFEST,
    actor_plan,
    ids_file,
    kept_shards,
    plan_shards,
    read_ids,
    start_ray,
)
from lfqa_demo.retrieval.corpus_bundles import open_corpus_bundle
from lfqa_demo.retrieval.indexes import sha256_of
from lfqa_demo.retrieval.shards import shard_paths
from tools.wiki_corpus import Layout, write_corpus

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = Layout(400, shard_rows=100, dim=0)  # no embeddings column: every dense vector is encoded
SHARDS = [f"vectors-{i:05d}-of-00004.npy" for i in range(4)]
DENSE = ["dpr", "realm"]  # DPR: two checkpoints (question and passage encoders); REALM: one for both
QUESTIONS = ["who founded the city", "zoubai kelafi", "the river and the old bridge"]


@pytest.fixture(scope="module")
def ray_address(hub_cache) -> str:
    """A Ray instance on this machine started as the command line starts one (`start_ray`, 2
    workers); its workers keep the environment it started with: the offline fixture cache."""
    ray = pytest.importorskip("ray", reason="--engine ray needs Ray: pip install -r requirements-build.txt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        mp.delenv("RAY_ADDRESS", raising=False)
        assert start_ray(ray, workers=2)
    assert ray.cluster_resources()["CPU"] == 3
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-corpus") / "wiki"
    write_corpus(folder, LAYOUT)
    return folder


def index_args(corpus: Path, out: Path, retrievers: list[str], *extra: str) -> list[str]:
    return [
        "index",
        "--corpus",
        str(corpus),
        "--retrievers",
        ",".join([*retrievers, "bm25"]),
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def builds(ray_address, corpus, tmp_path_factory, hub_cache) -> dict[str, Path]:
    """The same bundle built in-process and with --engine ray (float32 both)."""
    root = tmp_path_factory.mktemp("ray-builds")
    with pytest.MonkeyPatch.context() as mp:  # module scope: what the autouse fixture sets per test
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        assert cli.main(index_args(corpus, root / "in-process", DENSE, "--dtype", "float32")) == 0
        ray_args = ["--engine", "ray", "--workers", "2", "--dtype", "float32"]
        assert cli.main(index_args(corpus, root / "ray", DENSE, *ray_args)) == 0
    return {"in-process": root / "in-process", "ray": root / "ray"}


def shard_vectors(folder: Path) -> np.ndarray:
    """The vector shards of `folder` end to end, float32 [passages, dim]."""
    return np.concatenate([np.load(p, allow_pickle=False) for p in shard_paths(folder, ".npy")])


def exact_top(vectors: np.ndarray, question: np.ndarray, k: int) -> np.ndarray:
    """The numpy oracle: the k passages of highest inner product, best first (ties by row)."""
    scores = vectors @ question
    return np.lexsort((np.arange(len(scores)), -scores))[:k]


def assert_same_as_in_process(out: Path, reference: Path, names: list[str]) -> None:
    """The vector shards under `out` and the bundle's index are the in-process build's vectors
    (float32: up to rounding, since other batches pad the passages otherwise)."""
    for name in names:
        shards = shard_vectors(out / "vectors" / name)
        assert np.abs(shards - np.load(reference / name / "vectors.npy")).max() <= 1e-5
        np.testing.assert_array_equal(np.load(out / name / "vectors.npy"), shards)


def written(log: str) -> set[str]:
    """The output shards a run's console says it wrote."""
    return {name for name in SHARDS if f"{name} written" in log}


def test_ray_vectors_are_the_in_process_builds(builds):
    assert_same_as_in_process(builds["ray"], builds["in-process"], DENSE)


@pytest.mark.parametrize("name", DENSE)
def test_the_bundles_top_10_is_exact_search_over_the_ray_vectors(builds, name):
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(builds["ray"]))
    vectors = shard_vectors(builds["ray"] / "vectors" / name)
    questions = load_retriever(name, device="cpu").encode_questions(QUESTIONS)
    ranking = engine.searchers[name].search(QUESTIONS, 10, timeout=60)
    for row, question in enumerate(questions):
        assert list(ranking.ids[row]) == list(exact_top(vectors, question, 10))


def test_the_shard_manifest_names_every_shard_with_its_checksums(builds, corpus):
    folder = builds["ray"] / "vectors" / "dpr"
    manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
    assert [e["shard"] for e in manifest["shards"]] == SHARDS
    assert [e["source"] for e in manifest["shards"]] == [p.name for p in shard_paths(corpus, ".parquet")]
    for i, entry in enumerate(manifest["shards"]):
        assert entry["rows"] == 100 and (entry["first_id"], entry["last_id"]) == (str(100 * i + 1), str(100 * i + 100))
        assert entry["sha256"] == sha256_of(folder / entry["shard"])
        assert entry["ids_sha256"] == sha256_of(folder / ids_file(entry["shard"]))
        assert read_ids(folder / ids_file(entry["shard"])).to_pylist() == [str(100 * i + r) for r in range(1, 101)]
    bundle = json.loads((builds["ray"] / "manifest.json").read_text())
    assert not [f for f in bundle["files"] if f.startswith("vectors/")]  # the work folder is not the bundle's


def test_a_build_killed_between_shards_resumes_with_the_missing_ones(builds, corpus, ray_address, tmp_path, capsys):
    out = tmp_path / "out"
    args = index_args(corpus, out, ["dpr"], "--engine", "ray", "--workers", "1", "--dtype", "float32")
    # The first run joins this module's Ray and waits after each shard, so that it dies between two.
    env = {**os.environ, "RAY_ADDRESS": ray_address, PAUSE_ENV: "120"}
    run = subprocess.Popen([sys.executable, "-m", "lfqa_demo", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    manifest = out / "vectors" / "dpr" / SHARDS_MANIFEST
    try:
        assert wait_until(lambda: manifest.exists() and json.loads(manifest.read_text())["shards"], seconds=90)
    finally:
        run.kill()
        log = run.communicate(timeout=30)[1].decode()
    assert written(log) == {SHARDS[0]}, log[-2000:]
    first = (out / "vectors" / "dpr" / SHARDS[0]).stat()
    assert cli.main(args) == 0
    rerun = capsys.readouterr()
    assert written(rerun.err) == set(SHARDS[1:])
    assert "1 kept from an earlier run, 3 encoded" in rerun.out
    again = (out / "vectors" / "dpr" / SHARDS[0]).stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # never rewritten
    assert_same_as_in_process(out, builds["in-process"], ["dpr"])


def test_a_damaged_shard_is_encoded_again_never_taken(builds, corpus, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(builds["ray"] / "vectors", out / "vectors")
    folder = out / "vectors" / "dpr"
    with open(folder / SHARDS[1], "r+b") as file:  # bytes changed on disk: its sha256 no longer matches
        file.seek(200)
        file.write(b"\x7f\x7f\x7f\x7f")
    # Shard 2 as a crash mid-write leaves it: a half-written temporary file, never entered.
    data = (folder / SHARDS[2]).read_bytes()
    (folder / SHARDS[2]).unlink()
    (folder / f".{SHARDS[2]}.tmp").write_bytes(data[: len(data) // 2])
    manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
    manifest["shards"] = [e for e in manifest["shards"] if e["shard"] != SHARDS[2]]
    (folder / SHARDS_MANIFEST).write_text(json.dumps(manifest))
    args = index_args(corpus, out, DENSE, "--engine", "ray", "--workers", "1", "--dtype", "float32")
    assert cli.main(args) == 0
    log = capsys.readouterr()
    assert written(log.err) == {SHARDS[1], SHARDS[2]}  # dpr's; realm's four shards were whole
    assert "realm: vector shards in" in log.out and "4 kept from an earlier run, 0 encoded" in log.out
    assert not list(folder.glob(".*"))  # the temporary file is gone
    assert_same_as_in_process(out, builds["in-process"], DENSE)


def test_shards_made_otherwise_are_never_resumed_from(builds, corpus, tmp_path):
    """Other checkpoints, another dtype or other input shards (`identity`), or a manifest that is
    not one: nothing is kept, and the old shards are removed."""
    folder = tmp_path / "dpr"
    shutil.copytree(builds["ray"] / "vectors" / "dpr", folder)
    identity = json.loads((folder / SHARDS_MANIFEST).read_text())["identity"]
    plan = plan_shards(shard_paths(corpus, ".parquet"), None)
    assert list(kept_shards(folder, "dpr", plan, identity)) == SHARDS  # the same build: all kept
    assert kept_shards(folder, "dpr", plan, {**identity, "dtype": "bfloat16"}) == {}
    assert sorted(p.name for p in folder.iterdir()) == [SHARDS_MANIFEST]
    (folder / SHARDS_MANIFEST).write_text("{not json")
    assert kept_shards(folder, "dpr", plan, identity) == {}
    assert json.loads((folder / SHARDS_MANIFEST).read_text())["shards"] == []


def test_without_ray_the_engine_fails_at_once_and_the_rest_works(corpus, tmp_path):
    code = f"""
import sys
sys.modules["ray"] = None  # as if requirements-build.txt were not installed
from lfqa_demo.__main__ import main
args = ["index", "--corpus", {str(corpus)!r}, "--retrievers", "dpr,bm25", "--dtype", "float32", "--max-passages", "50"]
assert main([*args, "--engine", "ray", "--out", {str(tmp_path / "ray")!r}]) == 2
assert main([*args, "--out", {str(tmp_path / "default")!r}]) == 0
import app  # noqa: F401  (the app never needs Ray either)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "error: --engine ray needs Ray" in done.stderr and "pip install -r requirements-build.txt" in done.stderr
    assert not (tmp_path / "ray").exists()  # nothing read or written before failing
    assert (tmp_path / "default" / "manifest.json").is_file()


def test_one_actor_per_gpu_else_the_cpu_workers_asked_for():
    assert actor_plan({"CPU": 16.0, "GPU": 4.0}, None) == (4, {"num_gpus": 1, "num_cpus": 1})
    assert actor_plan({"CPU": 16.0, "GPU": 4.0}, 2) == (2, {"num_gpus": 1, "num_cpus": 1})
    assert actor_plan({"CPU": 3.0}, None) == (2, {"num_cpus": 1})  # one CPU left for reading the shards
    assert actor_plan({"CPU": 64.0}, 3) == (3, {"num_cpus": 1})
