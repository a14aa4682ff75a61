"""Prebuilt bundles and index cache entries that lie (issue 17, parts 4 to 6): the exact
reproductions, each refused with the reason and the index then built here, never an "internal
error" and never used silently. A hostile bundle vouches for its files (sizes and sha256 match):
what the owner of a hub repo can publish. Hostile files are built here, in tmp_path."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lfqa_demo import load_retriever
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.models.retrievers import DenseRetriever
from lfqa_demo.retrieval.bundles import load_bundle
from lfqa_demo.retrieval.corpus import build_corpus, corpus_from_file, load_bundled_corpus
from lfqa_demo.retrieval.indexes import build_index, make_faiss_index
from ui.states import status_words

QUESTION = "who led the normans?"
ROOT = Path(__file__).resolve().parents[1]
# The fixture DPR embeds 32-d (128 bytes a vector): ten million claimed vectors are 1.4 GB.
CLAIMED = 10_000_000
SMALL = 120  # passages: the first of the bundled corpus (real text, so that passages embed apart)


@pytest.fixture(scope="module")
def built(hub_cache, tmp_path_factory) -> Path:
    """root/small.jsonl, bundles of it for DPR and RetriBERT by the command line (root/out), and
    the index cache that built them (root/cache), which also gets DPR's IVF index: an engine that
    refuses a bundle takes the index from there instead of embedding the corpus again."""
    from lfqa_demo import __main__ as cli

    root = tmp_path_factory.mktemp("lying-bundles")
    with open(root / "small.jsonl", "w", encoding="utf-8") as f:
        for passage in load_bundled_corpus().passages[:SMALL]:
            f.write(json.dumps({"title": passage.title, "text": passage.text}) + "\n")
    with pytest.MonkeyPatch.context() as mp:  # module scope: set what the autouse fixture sets per test
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("LFQA_DTYPE", "float32")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        status = cli.main(
            ["index", "--corpus", str(root / "small.jsonl"), "--retrievers", "dpr,retribert"]
            + ["--cache-dir", str(root / "cache"), "--out", str(root / "out")]
        )
        build_index(load_retriever("dpr", device="cpu"), small_corpus(root), kind="ivf", cache_dir=root / "cache")
    assert status == 0
    return root


def small_corpus(built: Path):
    return corpus_from_file(built / "small.jsonl")


@pytest.fixture
def passages_embedded(monkeypatch) -> list[int]:
    """How many passages each call of DenseRetriever.encode_passages embedded."""
    counted: list[int] = []
    original = DenseRetriever.encode_passages

    def counting(self, passages, **kwargs):
        counted.append(len(passages))
        return original(self, passages, **kwargs)

    monkeypatch.setattr(DenseRetriever, "encode_passages", counting)
    return counted


def hostile_bundle(
    built: Path,
    tmp_path: Path,
    name: str = "dpr",
    *,
    vectors: np.ndarray | None = None,
    faiss_file: bytes | None = None,
    manifest_text: str | None = None,
    **changes,
) -> Path:
    """A copy of the `name` bundle with files replaced and a manifest that vouches for them."""
    root = Path(shutil.copytree(built / "out", tmp_path / "bundles"))
    bundle = root / name
    if vectors is not None:
        np.save(bundle / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    if faiss_file is not None:
        (bundle / "index.faiss").write_bytes(faiss_file)
    manifest = json.loads((bundle / "manifest.json").read_text()) | changes
    if "files" not in changes:
        manifest["files"] = {
            p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in bundle.iterdir()
            if p.name != "manifest.json"
        }
    (bundle / "manifest.json").write_text(manifest_text if manifest_text is not None else json.dumps(manifest))
    return root


def bundle_vectors(built: Path, name: str = "dpr") -> np.ndarray:
    return np.load(built / "out" / name / "vectors.npy")


def reference_ids(built: Path, name: str, kind: str) -> list[str]:
    """The top 5 for QUESTION from an index built here (read from the fixture's cache)."""
    engine = RetrievalEngine(small_corpus(built), cache_dir=built / "cache", index_kind=kind)
    return [h.passage_id for h in engine.compare(QUESTION, [name], k=5).results[name].hits]


def refused(built: Path, bundles: Path, name: str = "dpr", kind: str = "auto") -> str:
    """Serve QUESTION with the bundles: the answer must be right (from the index built here, read
    from the fixture's cache) and the state must say the prebuilt index was not used, and why."""
    engine = RetrievalEngine(small_corpus(built), cache_dir=built / "cache", bundles=str(bundles), index_kind=kind)
    result = engine.compare(QUESTION, [name, "bm25"], k=5).results[name]
    assert result.error is None and len(result.hits) == 5
    status = engine.searchers[name].status()
    assert status.ready and status.note and engine.built_index(name).refused == status.note, status
    assert engine.built_index(name).origin == "cache"
    state = status_words(status)
    assert [h.passage_id for h in result.hits] == reference_ids(built, name, kind)
    return state


# -- 4a: manifests are data: typed, bounded, any malformed field refused ----------------------------
def _nested(built: Path) -> str:
    manifest = (built / "out" / "dpr" / "manifest.json").read_text()
    return manifest[:-1] + ', "nested": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize(
    "attack, reason",
    [
        # these four made the DPR column "internal error" on every request
        (lambda built: {"manifest_text": _nested(built)}, "recursion limit"),  # RecursionError
        (lambda built: {"checkpoints": ["x", 1]}, "checkpoints"),  # AttributeError
        (lambda built: {"build_seconds": "abc"}, "build_seconds"),  # ValueError
        (lambda built: {"corpus": "bundled"}, "corpus"),  # AttributeError
        # refused before too, but as a mismatch: now as a malformed field
        (lambda built: {"dim": True}, "dim"),
        (lambda built: {"files": {"vectors.npy": {"bytes": -1, "sha256": "x"}}}, "files"),
        # a 2 MB manifest was read whole and used
        (lambda built: {"libraries": {"x": "y" * 2_000_000}}, "larger than"),
    ],
    ids=["nested-100000", "checkpoints-x-1", "build-seconds-abc", "corpus-str", "dim-bool", "files", "2-mb"],
)
def test_a_malformed_manifest_is_refused_with_the_reason_and_the_index_built(built, tmp_path, attack, reason):
    bundles = hostile_bundle(built, tmp_path, **attack(built))
    state = refused(built, bundles)
    assert reason in state and "manifest" in state, state


# -- 4b: vectors of the right shape but the wrong content -------------------------------------------
@pytest.mark.parametrize(
    "name, damage, reason",
    [
        # rows shuffled: "ready; prebuilt", and the wrong passages. RetriBERT: the fixture DPR embeds
        # nearly every passage alike (median cosine 0.988 between two passages; a real one does not),
        # so 8 rows drawn from its shuffled rows could all pass. RetriBERT's: 7 of 120 rolled rows keep
        # cosine >= 0.99, so a sample of 8 always finds one that does not.
        ("retribert", lambda v: np.roll(v, 1, axis=0), "do not match"),
        ("dpr", lambda v: np.full_like(v, np.nan), "not finite"),  # 0 hits
        ("dpr", lambda v: np.where(np.arange(v.shape[1]) % 2, np.inf, -np.inf) * np.ones_like(v), "not finite"),
        ("dpr", lambda v: np.where(np.arange(len(v))[:, None] == 7, np.inf, v), "not finite"),  # one row
        ("dpr", lambda v: v * 3, "do not match"),  # every score tripled, ranking kept: still not these vectors
    ],
    ids=["shuffled", "nan", "inf", "one-inf-row", "scaled"],
)
def test_vectors_of_the_right_shape_and_wrong_content_are_refused(built, tmp_path, name, damage, reason):
    bundles = hostile_bundle(built, tmp_path, name, vectors=damage(bundle_vectors(built, name)))
    state = refused(built, bundles, name)
    assert reason in state, state


def test_an_honest_bundle_is_checked_on_a_random_sample_of_a_few_passages(built):
    retriever, corpus = load_retriever("dpr", device="cpu"), small_corpus(built)
    seen: list[list[str]] = []
    original = DenseRetriever.encode_passages

    def recording(self, passages, **kwargs):
        seen.append(sorted(p["text"] for p in passages))
        return original(self, passages, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DenseRetriever, "encode_passages", recording)
        first = load_bundle(built / "out" / "dpr", retriever, corpus)
        second = load_bundle(built / "out" / "dpr", retriever, corpus)
    assert first.origin == second.origin == "prebuilt"
    assert [len(s) for s in seen] == [8, 8] and seen[0] != seen[1]  # a liar cannot know which rows


# -- 5: faiss files: size claims bounded by the file, the quantizer checked ------------------------
def claim_ivf_list(data: bytes, vectors: int) -> bytes:
    """A serialised IVF index whose first inverted list claims `vectors` vectors."""
    at = data.find(b"ilar")
    # "ilar", nlist, code_size, then "full" (a vector of nlist sizes) or "sprs" ((list, size) pairs)
    offset = at + 32 if data[at + 20 : at + 24] == b"full" else at + 40
    out = bytearray(data)
    struct.pack_into("<Q", out, offset, vectors)
    return bytes(out)


def claim_flat(data: bytes, floats: int) -> bytes:
    """A serialised flat index whose vector array claims `floats` floats."""
    assert data[:4] == b"IxFI"
    out = bytearray(data)
    struct.pack_into("<Q", out, 37, floats)  # after "IxFI", d, ntotal, 2 dummies, is_trained, metric
    return bytes(out)


def ivf_file(vectors: np.ndarray, nlist_quantizer: int | None = None) -> bytes:
    """An IVF-Flat index of `vectors` (its quantizer cut to `nlist_quantizer` centroids)."""
    import faiss

    index = make_faiss_index(vectors, "ivf")
    if nlist_quantizer is not None:
        centroids = index.quantizer.reconstruct_n(0, index.nlist)
        short = faiss.IndexFlatIP(index.d)
        short.add(centroids[:nlist_quantizer])
        index = faiss.IndexIVFFlat(short, index.d, index.nlist, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True
        index.add(vectors)
    return faiss.serialize_index(index).tobytes()


MEASURE = """
import json, sys
from pathlib import Path

import lfqa_demo.retrieval.indexes as indexes

def peak():  # VmHWM, not ru_maxrss: that one starts from the parent's size at fork
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024

grown = []
load_cached = indexes._load_cached
def measured(*args, **kwargs):
    before = peak()
    try:
        return load_cached(*args, **kwargs)
    finally:
        grown.append(peak() - before)
indexes._load_cached = measured

if sys.argv[1] == "bundle":
    from lfqa_demo import load_retriever
    from lfqa_demo.retrieval.bundles import load_bundle
    from lfqa_demo.retrieval.corpus import corpus_from_file
    retriever, corpus = load_retriever("dpr", device="cpu"), corpus_from_file(sys.argv[3])
    before = peak()
    try:
        load_bundle(Path(sys.argv[2]), retriever, corpus, kind="ivf")
        outcome = "accepted"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    grown.append(peak() - before)
else:
    from lfqa_demo.__main__ import main
    outcome = main(sys.argv[2:])
print(json.dumps({"outcome": outcome, "grown_mb": grown}))
"""


def measured_run(*args: str) -> dict:
    """Run MEASURE in a fresh process (its peak memory is its own): the outcome, how much the peak
    grew while a bundle or a cache entry was read (MB), and what it logged."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"log": done.stderr}


def test_an_ivf_list_claiming_ten_million_vectors_is_refused_before_anything_is_allocated(built, tmp_path):
    forged = claim_ivf_list(ivf_file(bundle_vectors(built)), CLAIMED)
    bundles = hostile_bundle(built, tmp_path, faiss_file=forged, index_kind="ivf")
    state = refused(built, bundles, kind="ivf")
    assert "faiss index cannot be read" in state, state
    run = measured_run("bundle", str(bundles / "dpr"), str(built / "small.jsonl"))
    assert "cannot be read" in run["outcome"] and max(run["grown_mb"]) < 200, run  # it was +1.3 GB


def test_an_ivf_whose_quantizer_has_too_few_centroids_is_refused(built, tmp_path):
    forged = ivf_file(bundle_vectors(built), nlist_quantizer=1)
    state = refused(built, hostile_bundle(built, tmp_path, faiss_file=forged, index_kind="ivf"), kind="ivf")
    assert "a quantizer of 1 centroids for 3 lists" in state, state


def test_an_ivf_whose_lists_live_in_another_file_is_refused_without_touching_it(built, tmp_path):
    """faiss's "on disk" lists name a file; faiss opens it when it reads the index (read-only here),
    and reading a list past that file's end would kill the process."""
    import faiss

    vectors = bundle_vectors(built)
    honest = faiss.deserialize_index(np.frombuffer(ivf_file(vectors), dtype=np.uint8))
    victim = tmp_path / "victim.txt"
    victim.write_text("not an inverted list")
    lists = faiss.OnDiskInvertedLists(honest.nlist, honest.code_size, str(tmp_path / "lists.ondisk"))
    index = faiss.IndexIVFFlat(honest.quantizer, honest.d, honest.nlist, faiss.METRIC_INNER_PRODUCT)
    index.replace_invlists(lists, False)  # not owned: `lists` is freed by Python, once
    index.add(vectors)
    (tmp_path / "lists.ondisk").unlink()
    os.symlink(victim, tmp_path / "lists.ondisk")
    forged = faiss.serialize_index(index).tobytes()
    state = refused(built, hostile_bundle(built, tmp_path, faiss_file=forged, index_kind="ivf"), kind="ivf")
    assert "keeps its inverted lists in a OnDiskInvertedLists" in state, state
    assert victim.read_text() == "not an inverted list"


def forge_cache_entry(entry: Path, data: bytes) -> None:
    """Replace the entry's index.faiss, with its meta.json's checksum (and size) made to match."""
    (entry / "index.faiss").write_bytes(data)
    meta = json.loads((entry / "meta.json").read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    if "bytes" in meta:
        meta["bytes"] = len(data)
    (entry / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "kind, claim",
    [("ivf", lambda data: claim_ivf_list(data, CLAIMED)), ("flat", lambda data: claim_flat(data, 350_000_000))],
    ids=["ivf-list-10M-vectors", "flat-1.4-GB"],
)
def test_the_command_line_reads_a_cache_entry_claiming_more_than_its_file_without_allocating(
    built, tmp_path, kind, claim
):
    cache = Path(shutil.copytree(built / "cache", tmp_path / "cache"))
    corpus, retriever = small_corpus(built), load_retriever("dpr", device="cpu")
    entry = build_index(retriever, corpus, kind=kind, cache_dir=cache).path
    forge_cache_entry(entry, claim((entry / "index.faiss").read_bytes()))
    run = measured_run(
        "cli", "index", "--corpus", str(built / "small.jsonl"), "--retrievers", "dpr", "--index-kind", kind,
        "--cache-dir", str(cache),
    )  # fmt: skip
    assert run["outcome"] == 0 and max(run["grown_mb"]) < 200, run  # it was +1.3 GB
    assert "the cached index dpr-" in run["log"] and "cannot be read (RuntimeError)" in run["log"]
    rebuilt = build_index(retriever, corpus, kind=kind, cache_dir=cache)  # the rebuilt entry replaced it
    assert rebuilt.from_cache and rebuilt.path == entry


# -- 6: the index cache checks its own entries ------------------------------------------------------
@pytest.fixture(scope="module")
def two_entries_built(hub_cache, tmp_path_factory) -> Path:
    """RetriBERT's and REALM's indexes of one small corpus in one cache (both embed in the same dim)."""
    cache = tmp_path_factory.mktemp("two-entries")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("LFQA_DTYPE", "float32")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        for name in ("retribert", "realm"):
            build_index(load_retriever(name, device="cpu"), tiny_corpus(), cache_dir=cache)
    return cache


def tiny_corpus():
    return build_corpus("tiny", [p.as_dict() for p in load_bundled_corpus().passages[:20]])


@pytest.fixture
def two_entries(two_entries_built, tmp_path):
    """A private copy of the two entries: (corpus, retribert, its index, realm's index), in tmp_path."""
    shutil.copytree(two_entries_built, tmp_path, dirs_exist_ok=True)
    corpus = tiny_corpus()
    retribert, realm = load_retriever("retribert", device="cpu"), load_retriever("realm", device="cpu")
    a, b = build_index(retribert, corpus, cache_dir=tmp_path), build_index(realm, corpus, cache_dir=tmp_path)
    assert a.from_cache and b.from_cache and a.dim == b.dim and len(a) == len(b)
    return corpus, retribert, a, b


def test_swapped_cache_files_are_refused_and_rebuilt(two_entries, tmp_path, caplog):
    """Swapping RetriBERT's and REALM's index.faiss, checksums updated, was accepted."""
    corpus, retribert, a, b = two_entries
    expected = retribert.encode_passages(corpus.as_dicts())
    mine, theirs = (a.path / "index.faiss").read_bytes(), (b.path / "index.faiss").read_bytes()
    forge_cache_entry(a.path, theirs)
    forge_cache_entry(b.path, mine)
    with caplog.at_level(logging.WARNING):
        rebuilt = build_index(retribert, corpus, cache_dir=tmp_path)
    assert not rebuilt.from_cache and rebuilt.origin == "built" and rebuilt.path == a.path
    np.testing.assert_allclose(rebuilt.vectors(), expected, atol=1e-5)
    assert "do not match the stored vectors" in caplog.text
    again = build_index(retribert, corpus, cache_dir=tmp_path)  # the rebuilt entry replaced the bad one
    assert again.from_cache and again.origin == "cache"
    np.testing.assert_allclose(again.vectors(), expected, atol=1e-5)


def test_swapped_cache_entries_are_refused_by_their_metadata(two_entries, tmp_path, caplog):
    corpus, retribert, a, b = two_entries
    os.replace(a.path, tmp_path / "aside")
    os.replace(b.path, a.path)
    os.replace(tmp_path / "aside", b.path)
    with caplog.at_level(logging.WARNING):
        rebuilt = build_index(retribert, corpus, cache_dir=tmp_path)
    assert not rebuilt.from_cache
    np.testing.assert_allclose(rebuilt.vectors(), retribert.encode_passages(corpus.as_dicts()), atol=1e-5)
    assert "was built for something else (retriever 'realm'; family 'realm'" in caplog.text


@pytest.mark.parametrize(
    "change, rebuilt",
    [
        ({"size": "20"}, True),
        ({"checkpoints": ["x", 1]}, True),
        ({"build_seconds": "abc"}, True),  # was a ValueError out of build_index
        ({"dim": True}, True),
        ({"format": 1.0}, True),
        ({"unknown": [[[[[[[[[[]]]]]]]]]] * 3}, False),  # a field it does not know is ignored
    ],
    ids=["size-str", "checkpoints", "build-seconds", "dim-bool", "format-float", "unknown-field"],
)
def test_a_malformed_cache_meta_is_rebuilt_not_raised(two_entries, tmp_path, change, rebuilt):
    corpus, retribert, a, _ = two_entries
    meta = json.loads((a.path / "meta.json").read_text()) | change
    (a.path / "meta.json").write_text(json.dumps(meta))
    assert build_index(retribert, corpus, cache_dir=tmp_path).from_cache is not rebuilt
    assert build_index(retribert, corpus, cache_dir=tmp_path).from_cache


def test_a_deeply_nested_cache_meta_is_rebuilt(two_entries, tmp_path):
    corpus, retribert, a, _ = two_entries
    (a.path / "meta.json").write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert not build_index(retribert, corpus, cache_dir=tmp_path).from_cache


# IVF-PQ trains 256 centroids a sub-quantizer: it needs 256 passages or more.
@pytest.mark.parametrize("kind, size", [("flat", 120), ("hnsw", 120), ("ivf", 120), ("ivfpq", 300)])
def test_an_honest_cache_entry_of_every_kind_passes_its_checks(tmp_path, kind, size, passages_embedded):
    corpus = build_corpus("small", [p.as_dict() for p in load_bundled_corpus().passages[:size]])
    retriever = load_retriever("retribert", device="cpu")
    built = build_index(retriever, corpus, kind=kind, cache_dir=tmp_path)
    assert passages_embedded == [size]
    again = build_index(retriever, corpus, kind=kind, cache_dir=tmp_path)
    assert again.from_cache and passages_embedded == [size, 8]  # a sample of 8, drawn at random
    q = retriever.encode_questions([QUESTION])
    np.testing.assert_array_equal(again.search(q, 5)[1], built.search(q, 5)[1])
