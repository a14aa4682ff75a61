"""Prebuilt index bundles: written by `index --out`, loaded by a fresh engine without embedding the
corpus (only a random sample of 8 passages, to check the vectors), and refused (with the reason,
then rebuilt) whenever they do not fit or are damaged. Lying bundles: test_hostile_bundles.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import FAKE_REVISION

from lfqa_demo import __main__ as cli
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.models.retrievers import DenseRetriever
from lfqa_demo.retrieval.bundles import MANIFEST, VECTORS, BundleSource, load_bundle
from lfqa_demo.retrieval.corpus import build_corpus, load_bundled_corpus
from lfqa_demo.status import Origin

DENSE = ("retribert", "dpr", "realm")
QUESTION = "who led the normans?"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Bundles of the bundled corpus for the three default dense retrievers, by the command line."""
    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as mp:  # module scope: set what the autouse fixture sets per test
        from helpers import write_hub_cache

        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("LFQA_DTYPE", "float32")
        mp.setenv("HF_HUB_CACHE", str(write_hub_cache(root / "hf")))
        status = cli.main(
            ["index", "--corpus", "bundled", "--retrievers", ",".join(DENSE), "--cache-dir", str(root / "cache")]
            + ["--out", str(root / "out")]
        )
    assert status == 0
    return root / "out"


@pytest.fixture
def bundles(written, tmp_path) -> Path:
    """A private copy each test may damage."""
    return Path(shutil.copytree(written, tmp_path / "bundles"))


@pytest.fixture
def passages_embedded(monkeypatch) -> list[int]:
    """How many passages were embedded (every call of DenseRetriever.encode_passages, counted)."""
    counted: list[int] = []
    original = DenseRetriever.encode_passages

    def counting(self, passages, **kwargs):
        counted.append(len(passages))
        return original(self, passages, **kwargs)

    monkeypatch.setattr(DenseRetriever, "encode_passages", counting)
    return counted


def edit_manifest(bundle: Path, **changes) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.update(changes)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_index_out_writes_a_self_describing_bundle_per_retriever(written):
    for name in DENSE:
        manifest = json.loads((written / name / MANIFEST).read_text())
        corpus = load_bundled_corpus()
        assert manifest["format_version"] == 1 and manifest["retriever"] == name
        assert manifest["corpus"]["fingerprint"] == corpus.fingerprint and manifest["corpus"]["size"] == len(corpus)
        assert all(c["revision"] == FAKE_REVISION for c in manifest["checkpoints"])
        assert manifest["dtype"] == "torch.float32" and manifest["device"] == "cpu" and manifest["index_kind"] == "flat"
        assert {"torch", "faiss", "numpy", "python", "lfqa_demo"} <= set(manifest["libraries"])
        assert manifest["max_passage_length"] > 0 and manifest["built_at"]
        vectors = np.load(written / name / VECTORS, allow_pickle=False)
        assert vectors.shape == (len(corpus), manifest["dim"]) and vectors.dtype == np.float32
        assert not (written / name / "index.faiss").exists()  # exact: rebuilt from the vectors
    assert sorted(p.name for p in written.iterdir()) == sorted(DENSE)


def test_a_fresh_engine_loads_the_bundles_without_embedding_the_corpus(bundles, tmp_path, passages_embedded):
    engine = RetrievalEngine(cache_dir=tmp_path / "empty-cache", bundles=str(bundles))
    prebuilt = engine.compare(QUESTION, list(DENSE), k=5)
    assert passages_embedded == [8, 8, 8]  # a random sample each, to check the vectors that came from the bundles
    for name in DENSE:
        index = engine.built_index(name)
        assert index.origin == "prebuilt" and index.note is None
        state = engine.index_states()[name]
        assert state.ready and state.origin is Origin.PREBUILT and state.note is None
    built = RetrievalEngine(cache_dir=tmp_path / "other-cache").compare(QUESTION, list(DENSE), k=5)
    assert passages_embedded  # this one did embed
    for name in DENSE:
        a, b = prebuilt.results[name], built.results[name]
        assert [h.passage_id for h in a.hits] == [h.passage_id for h in b.hits]
        np.testing.assert_allclose([h.score for h in a.hits], [h.score for h in b.hits], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            {"checkpoints": [{"source": "facebook/dpr-question_encoder-single-nq-base", "revision": "f" * 40}]},
            "other checkpoints",
        ),
        ({"corpus": {"name": "elsewhere", "fingerprint": "0" * 64, "size": 552}}, "another corpus"),
        ({"format_version": 2}, "version 2"),
        ({"max_passage_length": 17}, "max_passage_length 17"),
    ],
)
def test_a_bundle_that_does_not_fit_is_refused_with_the_reason_and_rebuilt(
    bundles, tmp_path, passages_embedded, change, reason
):
    edit_manifest(bundles / "dpr", **change)
    engine = RetrievalEngine(cache_dir=tmp_path / "cache", bundles=str(bundles))
    result = engine.compare(QUESTION, ["dpr"], k=3).results["dpr"]
    assert result.error is None and len(result.hits) == 3
    assert passages_embedded == [552]  # rebuilt here
    index = engine.built_index("dpr")
    assert index.origin == "built" and reason in index.refused
    state = engine.index_states()["dpr"]
    assert state.origin is Origin.REBUILT and reason in state.note


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove", "manifest"])
def test_a_damaged_or_truncated_bundle_is_refused(bundles, tmp_path, passages_embedded, damage):
    vectors = bundles / "realm" / VECTORS
    if damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[: vectors.stat().st_size // 2])
    elif damage == "flip":
        data = bytearray(vectors.read_bytes())
        data[-5] ^= 0xFF
        vectors.write_bytes(bytes(data))
    elif damage == "remove":
        vectors.unlink()
    else:
        (bundles / "realm" / MANIFEST).write_text('{"format": "lfqa-demo index bundle", "format_v')
    engine = RetrievalEngine(cache_dir=tmp_path / "cache", bundles=str(bundles))
    assert engine.compare(QUESTION, ["realm"], k=3).results["realm"].error is None
    assert passages_embedded == [552]
    note = engine.built_index("realm").refused
    assert ("damaged or truncated" in note) if damage != "manifest" else ("manifest.json is malformed" in note)


def test_another_dtype_is_accepted_and_said(bundles, tmp_path, passages_embedded):
    edit_manifest(bundles / "retribert", dtype="torch.bfloat16")
    engine = RetrievalEngine(cache_dir=tmp_path / "cache", bundles=str(bundles))
    engine.compare(QUESTION, ["retribert"], k=3)
    assert passages_embedded == [8]  # the sample check only
    state = engine.index_states()["retribert"]
    assert state.origin is Origin.PREBUILT and "prebuilt in bfloat16" in state.note


def test_an_approximate_index_travels_with_its_faiss_file(tmp_path, passages_embedded):
    corpus = build_corpus(
        "small", [{"title": f"T{i % 5}", "text": f"castle {i} built by the normans"} for i in range(400)]
    )
    engine = RetrievalEngine(corpus, cache_dir=tmp_path / "cache", index_kind="ivf")
    index = engine.index("dpr")
    from lfqa_demo.retrieval.bundles import write_bundle

    folder = write_bundle(tmp_path / "b" / "dpr", engine.retriever("dpr"), corpus, index)
    assert (folder / "index.faiss").is_file()
    loaded = load_bundle(folder, engine.retriever("dpr"), corpus)
    assert loaded.kind == "ivf" and len(loaded) == 400
    q = engine.retriever("dpr").encode_questions(["normans"])
    np.testing.assert_array_equal(loaded.search(q, 5)[1], index.search(q, 5)[1])
    with pytest.raises(Exception, match="this server builds 'flat'"):  # a bundle may not change the search
        load_bundle(folder, engine.retriever("dpr"), corpus, kind="flat")
    (folder / "index.faiss").write_bytes((folder / "index.faiss").read_bytes()[:100])
    with pytest.raises(Exception, match="damaged or truncated"):
        load_bundle(folder, engine.retriever("dpr"), corpus)


def test_a_hub_bundle_repo_is_read_from_the_cache(written, hub_cache, tmp_path, passages_embedded):
    """LFQA_INDEXES=hub:org/name: the dataset repo's snapshot in the Hugging Face cache is used offline."""
    repo = hub_cache / "datasets--lfqa--bundled-indexes"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(FAKE_REVISION)
    shutil.copytree(written, repo / "snapshots" / FAKE_REVISION, dirs_exist_ok=True)
    engine = RetrievalEngine(cache_dir=tmp_path / "cache", bundles="hub:lfqa/bundled-indexes")
    assert engine.compare(QUESTION, ["dpr"], k=3).results["dpr"].error is None
    assert passages_embedded == [8] and engine.built_index("dpr").origin == "prebuilt"
    # Pinned to a commit: that snapshot, or nothing (then the index is built here).
    pinned = RetrievalEngine(cache_dir=tmp_path / "cache", bundles=f"hub:lfqa/bundled-indexes@{FAKE_REVISION}")
    assert pinned.compare(QUESTION, ["realm"], k=3).results["realm"].error is None and passages_embedded == [8, 8]
    other = RetrievalEngine(cache_dir=tmp_path / "cache2", bundles=f"hub:lfqa/bundled-indexes@{'f' * 40}")
    assert other.compare(QUESTION, ["realm"], k=3).results["realm"].error is None
    assert passages_embedded == [8, 8, 552] and "not in the Hugging Face cache" in other.built_index("realm").refused


def test_a_hub_bundle_repo_that_cannot_be_fetched_fails_fast_and_the_index_is_built(tmp_path, passages_embedded):
    import time

    started = time.monotonic()
    with pytest.raises(Exception, match="HF_HUB_OFFLINE is set.*--out DIR"):
        BundleSource("hub:nobody/no-such-indexes").directory()
    assert time.monotonic() - started < 5
    engine = RetrievalEngine(cache_dir=tmp_path / "cache", bundles="hub:nobody/no-such-indexes")
    assert engine.compare(QUESTION, ["dpr"], k=3).results["dpr"].error is None
    assert passages_embedded == [552] and "HF_HUB_OFFLINE is set" in engine.built_index("dpr").refused


def test_push_to_hub_needs_out_and_fails_fast_offline(capsys, tmp_path):
    assert cli.main(["index", "--retrievers", "dpr", "--push-to-hub", "org/name"]) == 2
    assert "--out" in capsys.readouterr().err
    status = cli.main(
        ["index", "--retrievers", "dpr", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o")]
        + ["--push-to-hub", "org/name"]
    )
    assert status == 2 and "Cannot push to hub:org/name: HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert (tmp_path / "o" / "dpr" / MANIFEST).is_file()  # the bundles were written before the push failed
