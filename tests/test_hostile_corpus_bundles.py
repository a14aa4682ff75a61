"""Corpus bundles (LFQA_CORPORA) whose every byte is hostile: what the owner of a hub repo can
publish, or a folder the operator unpacked. Each test is one attack. A test that passes shows the
attack refused with a reason (a failure would show it succeeding: a crash, a hang, memory
out of proportion to the file, a file read outside the bundle, another corpus answering, or
markup from the manifest rendered in the page)). A hostile bundle vouches for its own files: the
manifest's sizes and sha256 are rewritten to match whatever was tampered with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from lfqa_demo import __main__ as cli
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import CorpusError, InvalidInputError
from lfqa_demo.retrieval import tables
from lfqa_demo.retrieval.corpus import Corpus, Passage, load_bundled_corpus
from lfqa_demo.retrieval.corpus_bundles import _file_entries, describe, open_corpus_bundle
from lfqa_demo.sessions import EngineRegistry, open_standing_corpora
from tools.wiki_corpus import Layout, write_corpus, write_vectors

ROOT = Path(__file__).resolve().parents[1]
PASSAGES = 1_000
DIMS = {"dpr": 32}  # the fixture DPR's dimension


def _build(root: Path, kind: str) -> Path:
    layout = Layout(PASSAGES, shard_rows=500, dim=0)
    if not (root / "wiki").exists():
        write_corpus(root / "wiki", layout)
    given = {n: write_vectors(root / f"given-{n}", layout, d, seed=1)[0].parent for n, d in DIMS.items()}
    out = root / f"bundle-{kind}"
    argv = ["index", "--corpus", str(root / "wiki"), "--retrievers", "dpr,bm25", "--index-kind", kind]
    assert cli.main([*argv, "--out", str(out), *(f"--vectors={n}={p}" for n, p in given.items())]) == 0
    return out


@pytest.fixture(scope="module")
def bundles(hub_cache, tmp_path_factory) -> dict[str, Path]:
    """Two clean bundles of the same 1,000 generated passages (DPR and BM25): exact and compressed."""
    root = tmp_path_factory.mktemp("hostile-corpus-bundles")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("LFQA_DTYPE", "float32")
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        return {kind: _build(root, kind) for kind in ("exact", "compressed")}


@pytest.fixture
def bundle(bundles, tmp_path) -> Path:
    """A copy of the exact bundle, to tamper with."""
    return Path(shutil.copytree(bundles["exact"], tmp_path / "bundle"))


def vouch(folder: Path, edit=lambda m: None, extra_files: dict | None = None) -> dict:
    """Rewrite the manifest as its hostile author would: every file's size and sha256 made to
    match, `edit(manifest)` applied, and `extra_files` listed first."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    files = {n: e.model_dump(exclude_none=True) for n, e in _file_entries(folder).items() if n != "manifest.json"}
    manifest["files"] = {**(extra_files or {}), **files}
    path.write_text(json.dumps(manifest))
    return manifest


def rewrite_passages(folder: Path, change, compression: str | None = "zstd") -> None:
    """passages.arrow again, batch 0 replaced by `change(batch 0)`, written with `compression`."""
    path = folder / "passages.arrow"
    reader = ipc.open_file(pa.memory_map(str(path)))
    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    del reader
    batches[0] = change(batches[0])
    schema = tables.SCHEMA.with_metadata({b"lfqa.batch_rows": str(tables.BATCH_ROWS).encode()})
    with ipc.new_file(str(path), schema, options=ipc.IpcWriteOptions(compression=compression)) as writer:
        for batch in batches:
            writer.write_batch(batch)


def run_isolated(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (a crash or a hang there is the finding, not the test run's end)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


READ_EVERY_ROW = """
    import sys
    from lfqa_demo.errors import CorpusError
    from lfqa_demo.retrieval.corpus_bundles import open_corpus_bundle
    try:
        corpus = open_corpus_bundle(sys.argv[1] if len(sys.argv) > 1 else {folder!r}).corpus
        for i in range(len(corpus)):
            corpus[i]
        print("read every row")
    except CorpusError as exc:
        print("refused:", exc)
"""


# -- one bad LFQA_CORPORA entry must not stop the app --------------------------------------------------
def test_a_nul_byte_in_a_listed_file_name_is_refused_and_the_others_still_open(bundles, bundle):
    vouch(bundle, extra_files={"bm25/x\u0000y": {"bytes": 1, "sha256": "0" * 64}})
    engines, refused, _ = open_standing_corpora([str(bundles["exact"]), str(bundle)])  # raises ValueError today
    assert len(engines) == 1 and str(bundle) in refused


def test_a_listed_file_name_too_long_for_the_disk_is_refused(bundle):
    from lfqa_demo.retrieval.bundle_downloads import complete

    vouch(bundle, extra_files={"bm25/" + "é" * 190: {"bytes": 1, "sha256": "0" * 64}})  # 380 bytes: ENAMETOOLONG
    assert complete(bundle) is False  # a hub bundle's folder: checked at every start (raises OSError today)
    engines, refused, _ = open_standing_corpora([str(bundle)])
    assert not engines and str(bundle) in refused


def test_a_column_name_that_is_not_utf8_is_refused(bundle):
    path = bundle / "passages.arrow"
    path.write_bytes(path.read_bytes().replace(b"title", b"\x94itle"))  # the schema's, at the start and in the footer
    vouch(bundle)
    engines, refused, _ = open_standing_corpora([str(bundle)])  # UnicodeDecodeError today: the app does not start
    assert not engines and "passages.arrow" in refused[str(bundle)]


# -- passages.arrow: crashes and memory ------------------------------------------------------------------
@pytest.mark.parametrize("offsets", ["past the buffer", "going back"])
def test_passage_offsets_that_lie_are_refused_not_a_crash(bundle, offsets):
    """An uncompressed batch whose text offsets point 1 GiB past its buffer (SIGSEGV today) or
    run backwards (std::length_error, SIGABRT today) when a search reads the passage."""
    rewrite_passages(
        bundle, lambda b: pa.record_batch([b[0], b[1], pa.array(["abcdefg"] * len(b))], tables.SCHEMA), None
    )
    path = bundle / "passages.arrow"
    raw = bytearray(path.read_bytes())
    honest = np.arange(tables.BATCH_ROWS + 1, dtype=np.int32) * 7
    at = raw.find(honest.tobytes())
    lie = honest.copy()
    if offsets == "past the buffer":
        lie[1:] = honest[-1]
        lie[5], lie[6] = 1 << 30, (1 << 30) + (1 << 20)
    else:
        lie[5], lie[6] = 800, 10
    raw[at : at + lie.nbytes] = lie.tobytes()
    path.write_bytes(raw)
    vouch(bundle)
    done = run_isolated(READ_EVERY_ROW.format(folder=str(bundle)))
    assert done.returncode == 0, f"the process died ({done.returncode}): {done.stderr[-300:]}"
    assert done.stdout.startswith("refused:")


def test_a_compression_bomb_batch_is_refused(bundle):
    """128 passages of 512 KiB of one letter: zstd keeps batch 0 in a few KB; reading any of its
    passages decompresses 64 MiB (and the cache keeps 256 such batches)."""
    big = "a" * (512 << 10)
    rewrite_passages(bundle, lambda b: pa.record_batch([b[0], b[1], pa.array([big] * len(b))], tables.SCHEMA))
    assert (bundle / "passages.arrow").stat().st_size < 2 * (1 << 20)
    vouch(bundle)
    corpus = open_corpus_bundle(bundle).corpus
    with pytest.raises(CorpusError):
        corpus[0]


# -- another corpus answering ----------------------------------------------------------------------------
def _registry_with(bundle: Path, fingerprint: str) -> EngineRegistry:
    vouch(bundle, lambda m: m["corpus"].update(fingerprint=fingerprint, name="hostile"))
    engines, refused, _ = open_standing_corpora([str(bundle)])
    assert engines, refused
    bm25_only = lambda corpus: RetrievalEngine(corpus, retrievers={"bm25": "bm25"})  # noqa: E731
    return EngineRegistry(load_bundled_corpus(), make_engine=bm25_only, standing=engines)


def test_a_bundle_cannot_claim_the_bundled_corpus_fingerprint(bundle):
    bundled = load_bundled_corpus()
    registry = _registry_with(bundle, bundled.fingerprint)
    assert "hostile" in [r.name for r in registry.standing_refs]
    assert registry.engine(registry.bundled_ref).corpus.name == bundled.name  # "Use the bundled corpus"


def test_a_bundle_cannot_answer_for_an_upload_with_its_fingerprint(bundle):
    upload = Corpus("victim.jsonl", [Passage("v1", "Victim", "the visitor's own passage about apples")])
    registry = _registry_with(bundle, upload.fingerprint)  # a public file's fingerprint is known to anyone
    ref = registry.register(upload, session="s1", name="victim.jsonl")
    assert len(registry.engine(ref).corpus) == 1


# -- markup from the manifest ----------------------------------------------------------------------------
def test_a_corpus_name_cannot_put_an_image_or_a_link_in_the_corpus_tab(bundle):
    from lfqa_demo.sessions import CorpusRef
    from ui.tabs.corpus import bundle_info

    name = "Wiki ![x](https://tracker.example/p.png) [Sign in again](https://evil.example/login)"
    vouch(bundle, lambda m: m["corpus"].update(name=name))
    # gr.Markdown would render it: every visitor's browser would fetch the image. A shown name is one
    # plain line without Markdown's brackets, so the manifest is refused.
    with pytest.raises(CorpusError, match="corpus.name"):
        open_corpus_bundle(bundle)
    vouch(bundle, lambda m: m["corpus"].update(name="Wiki: the Dec 2018 dump, 100-word passages"))
    opened = open_corpus_bundle(bundle)
    shown = bundle_info(CorpusRef(opened.corpus.fingerprint, opened.corpus.name, PASSAGES), describe(opened))
    assert "Wiki: the Dec 2018 dump, 100-word passages" in shown


# -- indexes ---------------------------------------------------------------------------------------------
def _dpr_index(folder: Path):
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(folder), retrievers={"dpr": "dpr"})
    return engine.index("dpr", timeout=60)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_exact_vectors_that_are_not_finite_are_refused(bundle, value):
    vectors = np.load(bundle / "dpr" / "vectors.npy")
    vectors[:] = value
    np.save(bundle / "dpr" / "vectors.npy", vectors)
    vouch(bundle)
    with pytest.raises(CorpusError):  # today: served, every search of the column empty, no reason given
        _dpr_index(bundle)


def test_an_unlisted_link_out_of_the_bundle_is_refused(bundle, tmp_path):
    outside = tmp_path / "outside.npy"
    shutil.move(bundle / "dpr" / "vectors.npy", outside)
    (bundle / "dpr" / "vectors.npy").symlink_to(outside)
    (bundle / "dpr" / "README").write_text("x")
    manifest = vouch(bundle)
    manifest["files"].pop("dpr/vectors.npy")  # listed: only the README
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError):
        _dpr_index(bundle)


def test_a_fifo_in_the_bundle_does_not_hang_bm25(bundle):
    data = bundle / "bm25" / "data.csc.index.npy"
    data.unlink()
    os.mkfifo(data)
    manifest = vouch(bundle)
    manifest["files"].pop("bm25/data.csc.index.npy", None)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code = f"""
        from lfqa_demo.errors import CorpusError
        from lfqa_demo.retrieval.corpus_bundles import open_corpus_bundle
        try:
            open_corpus_bundle({str(bundle)!r}).bm25()
        except CorpusError as exc:
            print("refused:", exc)
    """
    try:
        done = run_isolated(code, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("opening the BM25 index blocked on a FIFO (its lock then blocks every BM25 search)")
    assert done.stdout.startswith("refused:"), done.stderr[-300:]


def test_a_vocab_column_past_int64_is_refused_with_a_reason(bundle):
    path = bundle / "bm25" / "vocab.index.json"
    vocab = json.loads(path.read_text())
    vocab[next(iter(vocab))] = 1 << 70
    path.write_text(json.dumps(vocab))
    vouch(bundle)
    with pytest.raises(CorpusError):  # OverflowError today: "internal error"
        open_corpus_bundle(bundle).bm25()


def test_a_refused_bm25_index_is_not_opened_again_on_every_search(bundle, monkeypatch):
    """A vocab.index.json of up to 1 GiB is parsed whole before it is refused: each search doing
    it again (37 MB took 5-7 s a search here) keeps a core busy and BM25 waiting on its lock."""
    from lfqa_demo.retrieval import bm25

    path = bundle / "bm25" / "vocab.index.json"
    vocab = json.loads(path.read_text())
    first, second = list(vocab)[:2]
    vocab[second] = vocab[first]  # one column named twice: refused after the whole parse
    path.write_text(json.dumps(vocab))
    vouch(bundle)
    reads = []
    original = bm25._read_json
    monkeypatch.setattr(bm25, "_read_json", lambda d, n, limit: reads.append(n) or original(d, n, limit))
    engine = RetrievalEngine(corpus_bundle=open_corpus_bundle(bundle), retrievers={"bm25": "bm25"})
    for _ in range(3):
        with pytest.raises(CorpusError):
            engine.searchers["bm25"].search(["question"], 5)
    assert reads.count(bm25.VOCAB_FILE) == 1


# -- refused as they should be ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../outside", "/etc/hostname", "bm25/../../outside"])
def test_names_outside_the_bundle_are_refused(bundle, name):
    vouch(bundle, extra_files={name: {"bytes": 1, "sha256": "0" * 64}})
    with pytest.raises(CorpusError, match="outside the bundle|should match pattern"):
        open_corpus_bundle(bundle)


def test_a_pickled_vectors_file_is_refused(bundle):
    np.save(bundle / "dpr" / "vectors.npy", np.array([object()] * 3, dtype=object))  # pickled by default
    vouch(bundle)
    with pytest.raises(CorpusError, match="cannot be read"):
        _dpr_index(bundle)


def test_a_scalar_quantizer_shorter_than_its_dimension_is_refused(bundles, tmp_path):
    import faiss

    folder = Path(shutil.copytree(bundles["compressed"], tmp_path / "bundle"))
    path = folder / "dpr" / "candidates.faiss"
    index = faiss.read_index(str(path))
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.sq.trained.resize(1)  # a search would read 2 x d floats from it
    faiss.write_index(index, str(path))
    record = json.loads((folder / "dpr" / "compressed.json").read_text())
    record["files"]["candidates.faiss"] = path.stat().st_size
    (folder / "dpr" / "compressed.json").write_text(json.dumps(record))
    vouch(folder)
    with pytest.raises(CorpusError, match="candidates.faiss"):
        _dpr_index(folder)


@pytest.mark.parametrize("settings", [{"nprobe": 10**9, "depth": 100}, {"nprobe": 1, "depth": 10**9}])
def test_compressed_settings_past_their_bounds_are_refused(bundles, tmp_path, settings):
    folder = Path(shutil.copytree(bundles["compressed"], tmp_path / "bundle"))
    path = folder / "dpr" / "compressed.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "settings": settings}))
    vouch(folder)
    with pytest.raises(CorpusError, match="compressed.json"):
        _dpr_index(folder)


def test_a_manifest_over_a_mib_is_refused(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "padding": "x" * (1 << 20)}))
    with pytest.raises(CorpusError, match="larger than"):
        open_corpus_bundle(bundle)


@pytest.mark.parametrize("name", ["/etc/passwd", str(Path.home()), "ｗｉｋｉ", ["a"], None])
def test_a_visitor_cannot_name_a_corpus_the_server_does_not_offer(bundle, name):
    engines, _, _ = open_standing_corpora([str(bundle)])
    registry = EngineRegistry(load_bundled_corpus(), make_engine=lambda c: RetrievalEngine(c), standing=engines)
    with pytest.raises(InvalidInputError, match="no corpus named"):
        registry.use_standing(name, "s1")


def test_the_clean_bundle_reads_every_row(bundle):
    """The clean bundle reads every row (the tests above fail for their tampering, not the fixture)."""
    done = run_isolated(READ_EVERY_ROW.format(folder=str(bundle)))
    assert done.returncode == 0 and done.stdout.startswith("read every row"), done.stderr[-300:]
