"""Checkpoint resolution, strict loading, devices, caching and bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPOS, fixture_dir, write_hub_cache

import lfqa_demo
from lfqa_demo import CheckpointError, CheckpointNotFoundError, RetrieverSpec, load_reader, load_retriever
from lfqa_demo.models import checkpoint_io

ROOT = Path(__file__).resolve().parents[1]


def copy_checkpoint(repo_key: str, dest: Path) -> Path:
    return Path(shutil.copytree(fixture_dir(REPOS[repo_key]), dest))


def realm_spec(directory: Path) -> RetrieverSpec:
    return RetrieverSpec("realm", str(directory))


# -- import and lazy loading ---------------------------------------------------------------------
def test_importing_the_package_and_app_loads_no_model():
    probe = """
import sys, huggingface_hub
calls = []
def spy(name, fn):
    def wrapper(*a, **k):
        calls.append(name)
        return fn(*a, **k)
    return wrapper
huggingface_hub.hf_hub_download = spy("hf_hub_download", huggingface_hub.hf_hub_download)
import lfqa_demo, lfqa_demo.models.loading
import app
app.build_demo()
assert not calls, calls
assert not lfqa_demo.models.registry._loaded
# No weights can have been read: torch itself loads with the first model, not with the app.
assert "torch" not in sys.modules, "torch was imported at start-up"
print("no model loaded")
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no model loaded" in result.stdout


def test_concurrent_first_uses_load_once(monkeypatch):
    reads = []
    original = checkpoint_io.read_state_dict

    def slow_read(files):
        reads.append(files.source)
        time.sleep(0.2)  # widen the race window
        return original(files)

    monkeypatch.setattr("lfqa_demo.models.checkpoint_io.read_state_dict", slow_read)
    results, barrier = [], threading.Barrier(8)

    def first_use():
        barrier.wait()
        results.append(load_retriever("dpr", device="cpu"))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert reads == [REPOS["dpr_q"]]  # the passage encoder loads on first use, not with the retriever
    heads, barrier = [], threading.Barrier(8)

    def first_passage_use():
        barrier.wait()
        heads.append(results[0].passage_head)

    threads = [threading.Thread(target=first_passage_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(heads) == 8 and all(h is heads[0] for h in heads)
    assert sorted(reads) == sorted([REPOS["dpr_q"], REPOS["dpr_ctx"]])


def test_repo_ids_resolve_to_the_cached_snapshot(hub_cache):
    retriever = load_retriever("retribert", device="cpu")
    (files,) = set(retriever.checkpoints)
    assert files.source == REPOS["retribert"] and files.revision == "0123456789abcdef0123456789abcdef01234567"
    assert hub_cache in files.weights.parents


# -- local directories, formats and quirks -------------------------------------------------------
def test_local_directory_is_accepted_and_safetensors_preferred(tmp_path, reference, reference_inputs):
    from safetensors.torch import save_file

    directory = copy_checkpoint("realm", tmp_path / "realm")
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors")
    (directory / "pytorch_model.bin").write_bytes(b"not a checkpoint")  # would fail if read
    retriever = load_retriever(realm_spec(directory), device="cpu")
    assert retriever.checkpoints[0].weights.name == "model.safetensors"
    assert retriever.checkpoints[0].revision == "local"
    got = retriever.encode_questions(reference_inputs["questions"])
    assert np.abs(got - reference["realm_questions"]).max() < 1e-4


def test_old_gamma_beta_layernorm_names_load(tmp_path, reference, reference_inputs):
    directory = copy_checkpoint("realm", tmp_path / "realm")
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in state.items()}
    assert renamed.keys() != state.keys()
    torch.save(renamed, directory / "pytorch_model.bin")
    got = load_retriever(realm_spec(directory), device="cpu").encode_passages(reference_inputs["passages"])
    assert np.abs(got - reference["realm_passages"]).max() < 1e-4


def test_retribert_needs_no_tokenizer_config_and_reads_its_layer_count():
    assert not (fixture_dir(REPOS["retribert"]) / "tokenizer_config.json").exists()
    retriever = load_retriever("retribert", device="cpu")
    q_model = retriever.question_head
    assert len(q_model.bert_query.encoder.layer) == 3  # from config.json (8 in the real checkpoint)
    assert q_model.bert_doc is None  # share_encoders
    assert retriever.dim == 16


def test_realm_uses_gelu_new_and_dpr_gelu():
    from lfqa_demo.models.bert import gelu_new
    from lfqa_demo.models.packed_linear import activation_of

    realm = load_retriever("realm", device="cpu")
    assert activation_of(realm.question_head.realm.encoder.layer[0].intermediate) is gelu_new
    dpr = load_retriever("dpr", device="cpu")
    intermediate = dpr.question_head.question_encoder.bert_model.encoder.layer[0].intermediate
    assert activation_of(intermediate) is torch.nn.functional.gelu


def test_custom_spec_and_max_lengths(reference_inputs):
    spec = RetrieverSpec("dpr", REPOS["dpr_q"], REPOS["dpr_ctx"], max_question_length=8, max_passage_length=16)
    retriever = load_retriever(spec, device="cpu")
    assert max(len(ids) for ids, _ in retriever.tokenize_questions(reference_inputs["questions"])) == 8
    assert max(len(ids) for ids, _ in retriever.tokenize_passages(reference_inputs["passages"])) == 16
    assert load_retriever({"family": "dpr", "question": REPOS["dpr_q"], "passage": REPOS["dpr_ctx"]}, device="cpu").dim == 32
    with pytest.raises(ValueError, match="max_passage_length"):
        RetrieverSpec("dpr", "a/b", "c/d", max_passage_length=1000)
    with pytest.raises(ValueError, match="family must be one of"):
        RetrieverSpec("colbert", "a/b")


# -- broken and missing files ----------------------------------------------------------------------
@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    cache = write_hub_cache(tmp_path / "cache")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def snapshot(cache: Path, repo_key: str) -> Path:
    return next((cache / f"models--{REPOS[repo_key].replace('/', '--')}" / "snapshots").iterdir())


def test_truncated_weights_name_the_repo_and_the_fix(private_cache):
    weights = snapshot(private_cache, "dpr_ctx") / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"facebook/dpr-ctx_encoder-single-nq-base.*download it again"):
        load_retriever("dpr", device="cpu").passage_head  # the passage encoder loads on first use


def test_missing_and_misshaped_weights_name_the_key_and_file(private_cache):
    weights = snapshot(private_cache, "realm") / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    del state["realm.encoder.layer.1.output.dense.weight"]
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match=r"realm\.encoder\.layer\.1\.output\.dense\.weight.*") as err:
        load_retriever("realm", device="cpu")
    assert str(weights) in str(err.value)

    state["realm.encoder.layer.1.output.dense.weight"] = torch.zeros(32, 65)
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match=r"'realm\.encoder\.layer\.1\.output\.dense\.weight'.*\(32, 65\)"):
        load_retriever("realm", device="cpu")


def test_unknown_tensors_are_refused(private_cache):
    weights = snapshot(private_cache, "retribert") / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["bert_query.encoder.layer.7.output.dense.weight"] = torch.zeros(2, 2)
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match="does not know.*layer.7"):
        load_retriever("retribert", device="cpu")


def test_pickles_holding_code_are_refused(private_cache, capfd):
    class Sneaky:
        def __reduce__(self):
            return (print, ("code ran while loading",))

    weights = snapshot(private_cache, "realm") / "pytorch_model.bin"
    torch.save({"realm.x": Sneaky()}, weights)  # a real torch archive whose pickle calls print()
    with pytest.raises(CheckpointError, match="google/realm-cc-news-pretrained-embedder"):
        load_retriever("realm", device="cpu")
    assert "code ran" not in capfd.readouterr().out


def test_offline_with_nothing_cached_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    started = time.monotonic()
    with pytest.raises(CheckpointNotFoundError) as err:
        load_reader("realm", device="cpu")
    message = str(err.value)
    assert "google/realm-orqa-nq-reader" in message and "HF_HUB_OFFLINE" in message and "hf download" in message
    assert time.monotonic() - started < 10


def test_unreachable_hub_fails_once_and_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(CheckpointNotFoundError, match=r"yjernite/retribert-base-uncased.*cannot be reached.*hf download"):
        load_retriever("retribert", device="cpu")


def test_missing_directory_and_bad_names(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="neither an existing directory"):
        load_retriever(RetrieverSpec("realm", str(tmp_path / "nowhere")), device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointNotFoundError, match="lacks: config.json, vocab.txt, model.safetensors or pytorch_model.bin"):
        load_retriever(RetrieverSpec("realm", str(empty)), device="cpu")
    with pytest.raises(ValueError, match="one of"):
        load_retriever("bm42")
    with pytest.raises(ValueError, match="one of"):
        load_reader("retribert")
    with pytest.raises(TypeError, match="name must be"):
        load_retriever(42)


# -- devices and dtypes ---------------------------------------------------------------------------
def test_device_and_dtype_arguments(reference, reference_inputs):
    r32 = load_retriever("realm", device=torch.device("cpu"), dtype="float32")
    assert r32 is load_retriever("realm", device="cpu", dtype=torch.float32)
    rbf = load_retriever("realm", device="cpu", dtype="bf16")
    assert rbf is not r32 and rbf.dtype == torch.bfloat16
    got = rbf.encode_questions(reference_inputs["questions"])
    assert got.dtype == np.float32 and np.abs(got - reference["realm_questions"]).max() < 0.2
    with pytest.raises(ValueError, match="dtype"):
        load_retriever("realm", device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="device"):
        load_retriever("realm", device="toaster")


def test_automatic_device_and_precision_policy(monkeypatch):
    from lfqa_demo.models.devices import cpu_has_fast_bf16, resolve_device, resolve_dtype

    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device(None).type == expected
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32  # LFQA_DTYPE=float32 in the tests
    monkeypatch.setenv("LFQA_DTYPE", "auto")
    assert resolve_dtype(None, torch.device("cpu")) == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    assert resolve_dtype(None, torch.device("mps")) == torch.float32
    monkeypatch.setenv("LFQA_DTYPE", "fp16")
    assert resolve_dtype(None, torch.device("cpu")) == torch.float16
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32  # an argument beats the variable


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["retribert", "dpr", "realm"])
def test_bad_input(family):
    retriever = load_retriever(family, device="cpu")
    assert retriever.encode_questions([]).shape == (0, retriever.dim)
    assert retriever.encode_passages([]).shape == (0, retriever.dim)
    empty = retriever.encode_questions([""])
    assert empty.shape == (1, retriever.dim) and np.isfinite(empty).all()
    assert np.isfinite(retriever.encode_passages([{"title": "", "text": ""}, {"text": "no title"}])).all()
    long = retriever.tokenize_questions(["word " * 2000])[0][0]
    assert len(long) == retriever.max_question_length and long[-1] == retriever.question_tokenizer.sep_id
    with pytest.raises(TypeError, match="questions must be a list"):
        retriever.encode_questions("a single string")
    with pytest.raises(TypeError, match=r"questions\[1\] must be a string"):
        retriever.encode_questions(["ok", None])
    with pytest.raises(TypeError, match=r'passages\[0\]\["text"\] must be a string'):
        retriever.encode_passages([{"title": "t", "text": 3}])
    with pytest.raises(TypeError, match=r"passages\[0\] must be a"):
        retriever.encode_passages(["just text"])


@pytest.mark.parametrize("name", ["dpr", "realm"])
def test_reader_bad_input(name):
    reader = load_reader(name, device="cpu")
    with pytest.raises(TypeError, match="question must be a string"):
        reader.logits(7, [{"title": "a", "text": "b"}])
    with pytest.raises(TypeError, match="passages must be a list"):
        reader.logits("q", {"title": "a", "text": "b"})
    empty = reader.logits("q", [])
    assert len(empty.inputs.input_ids) == 0
    out = reader.logits("word " * 500, [{"title": "t", "text": "the normans " * 400}])
    assert out.inputs.input_ids.shape[1] == reader.max_length
    assert out.inputs.text_spans[0, 0] == reader.max_question_length + 4  # [CLS] q [SEP] t [SEP]


def test_a_failed_load_is_not_retried_at_once(tmp_path, monkeypatch):
    from lfqa_demo.models import loading, registry
    from lfqa_demo.status import ModelKey, Phase

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    calls = []
    original = loading.resolve_checkpoint
    monkeypatch.setattr(loading, "resolve_checkpoint", lambda *a, **k: calls.append(a) or original(*a, **k))
    for _ in range(3):
        with pytest.raises(CheckpointNotFoundError):
            load_retriever("realm", device="cpu")
    assert len(calls) == 1
    state = lfqa_demo.model_states()[ModelKey.retriever("realm")]
    assert state.phase is Phase.FAILED and "realm" in state.note.lower()
    monkeypatch.setattr(registry, "RETRY_AFTER_S", 0.0)
    with pytest.raises(CheckpointNotFoundError):
        load_retriever("realm", device="cpu")
    assert len(calls) == 2
