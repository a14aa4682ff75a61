"""`python -m lfqa_demo` index, compare and evaluate, through `main(argv)` in this process (the
fixture checkpoints, offline). Three subprocesses: the module runs as a command, the package
imports from outside the repository, and `evaluate` run as a command agrees with the app."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SHARED

from lfqa_demo import __main__ as cli
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.evaluation import (
    MAX_EVAL_K,
    EvaluationReport,
    clear_evaluation_cache,
    evaluate_retriever,
    score_columns,
)
from lfqa_demo.retrieval.corpus import QASet, load_bundled_questions
from ui import evaluation_view

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `python -m lfqa_demo ARGS`, run in this process."""
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"title": f"T{i}", "text": f"the normans built castle {i} in england"}) for i in range(30)
        ),
        encoding="utf-8",
    )
    return path


def test_the_module_runs_as_a_command():
    shown = subprocess.run(
        [sys.executable, "-m", "lfqa_demo", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert all(command in shown.stdout for command in ("index", "evaluate", "compare"))


def test_the_package_is_installed_in_the_venv(tmp_path):
    """scripts/setup.sh installs the package (editable), so it imports from any directory, not
    only from the repository root; PYTHONPATH is cleared so that it cannot stand in for that."""
    python = ROOT / ".venv" / "bin" / "python"
    assert python.exists(), "run scripts/setup.sh first: it creates .venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    shown = subprocess.run(
        [str(python), "-c", "import lfqa_demo; print(lfqa_demo.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert Path(shown.stdout.strip()) == ROOT / "lfqa_demo" / "__init__.py"  # this checkout, not a stale copy


def test_index_then_compare_uses_the_cache(capsys, corpus_file, tmp_path):
    cache = str(tmp_path / "cache")
    status, out, err = run(
        capsys, "index", "--corpus", str(corpus_file), "--retrievers", "dpr,realm,bm25", "--cache-dir", cache
    )
    assert status == 0, err
    assert "dpr: flat index of 30 x 32, built" in out and "realm: flat index of 30 x 16, built" in out
    status, out, err = run(capsys, "index", "--corpus", str(corpus_file), "--retrievers", "dpr", "--cache-dir", cache)
    assert status == 0, err
    assert "dpr: flat index of 30 x 32, cached" in out
    status, out, err = run(
        capsys,
        "compare",
        "castle 7",
        "--corpus",
        str(corpus_file),
        "--retrievers",
        "dpr,bm25",
        "-k",
        "3",
        "--cache-dir",
        cache,
        "--gold-answer",
        "castle 7",
    )
    assert status == 0, err
    assert "[answer]" in out and "dpr vs bm25: overlap@3" in out


def test_index_exits_1_and_names_each_failed_index(capsys, corpus_file, tmp_path, monkeypatch):
    """With no checkpoint files (empty offline hub cache) every dense index fails: exit 1, each
    failure printed with its reason, and a summary naming them."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    status, out, err = run(
        capsys,
        "index",
        "--corpus",
        str(corpus_file),
        "--retrievers",
        "dpr,realm,bm25",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert status == 1
    failed = [line for line in out.splitlines() if ": FAILED: " in line]
    assert [line.split(":")[0] for line in failed] == ["dpr", "realm"]
    assert all("hf download" in line for line in failed)
    assert "2 of 2 dense indexes failed: dpr, realm" in err


def test_index_in_memory_only_says_why(capsys, corpus_file, tmp_path):
    """A cache directory that cannot be created (a file is in the way; root ignores permissions):
    the index is kept in memory and the report says so, with the reason, instead of a path."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("", encoding="utf-8")
    status, out, err = run(
        capsys, "index", "--corpus", str(corpus_file), "--retrievers", "realm", "--cache-dir", str(blocked / "cache")
    )
    assert status == 0, err
    assert "realm: flat index of 30 x 16, built in" in out
    assert out.rstrip().endswith(", in memory only (the index cache cannot be written: Not a directory)")
    assert "None" not in out


def test_evaluate_prints_a_table_and_bad_input_exits_2(capsys, tmp_path):
    shared = SHARED / "data" / "squad2-dev-5"
    status, out, err = run(
        capsys, "evaluate", "--qa", str(shared), "--retrievers", "bm25,dpr", "--cache-dir", str(tmp_path), "--ks", "1,5"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"705 questions, 173 passages ({shared})"
    assert cells(lines[1]) == [
        "retriever",
        "R@1, answer",
        "R@5, answer",
        "MRR@5, answer",
        "R@1, gold passage",
        "R@5, gold passage",
        "MRR@5, gold passage",
    ]
    bm25 = dict(zip(cells(lines[1]), cells(lines[2])))
    assert bm25["retriever"] == "bm25" and float(bm25["R@5, gold passage"]) >= 0.93
    status, out, err = run(capsys, "compare", "   ", "--retrievers", "bm25")
    assert status == 2 and "empty" in err


def cells(line: str) -> list[str]:
    """A table line's cells: columns are two or more spaces apart, and a name ("R@5, answer")
    holds single spaces only."""
    return re.split(r" {2,}", line.strip())


def html_table(summary: str) -> dict[str, dict[str, str]]:
    """The app's summary table: retriever label -> {column name: cell}."""
    rows = re.findall(r"<tr>(.*?)</tr>", summary)
    head = re.findall(r"<th>(.*?)</th>", rows[0])
    return {r[0]: dict(zip(head, r)) for r in (re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in rows[1:])}


def test_the_command_line_and_the_app_give_the_same_mrr_under_the_same_name(tmp_path):
    """BM25 (no weights) on the bundled QA set over the bundled corpus: `python -m lfqa_demo
    evaluate`, run as a command, and the app's path (`evaluate_retriever` called as app.py calls
    it, the summary rendered by ui/evaluation_view.py) show every figure under the same name with
    the same value; in particular "MRR@20, answer" and "MRR@20, gold passage", which differ."""
    shown = subprocess.run(
        [sys.executable, "-m", "lfqa_demo", "evaluate", "--retrievers", "bm25", "--cache-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    cli = dict(zip(cells(lines[1]), cells(lines[2])))
    assert cli["retriever"] == "bm25"

    clear_evaluation_cache()  # computed here, not taken from an earlier test's cache
    engine = RetrievalEngine(retrievers={"bm25": "bm25"}, cache_dir=tmp_path)
    qa = QASet("bundled QA set", tuple(load_bundled_questions()))
    result = evaluate_retriever(engine, qa.items, "bm25", MAX_EVAL_K, timeout=0, check=lambda: None)
    report = EvaluationReport(engine.corpus.name, qa.items, MAX_EVAL_K, {"bm25": result})
    app = html_table(evaluation_view.render_summary(report, qa, engine.corpus.name, len(engine.corpus)))["BM25"]

    assert cli["MRR@20, answer"] == app["MRR@20, answer"] == f"{result.mrr_answer:.3f}"
    assert cli["MRR@20, gold passage"] == app["MRR@20, gold passage"] == f"{result.mrr_passage:.3f}"
    assert cli["MRR@20, answer"] != cli["MRR@20, gold passage"]  # so a bare "MRR" would be ambiguous
    shared = set(cli) & set(app) - {"retriever"}
    assert shared == set(score_columns((1, 5, 20), 20, by_passage=True))
    assert all(cli[name] == app[name] for name in shared)


def test_evaluate_shows_the_whole_error_of_a_retriever_that_could_not_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    status, out, err = run(capsys, "evaluate", "--retrievers", "bm25,dpr", "--cache-dir", str(tmp_path / "cache"))
    assert status == 0, err
    assert "dpr        unavailable (error below)" in out
    (line,) = [line for line in out.splitlines() if line.startswith("dpr: unavailable: ")]
    assert "`hf download facebook/dpr-question_encoder-single-nq-base config.json vocab.txt pytorch_model.bin`" in line
    assert line.endswith("instead of the repo id.")  # the message's last words: nothing was cut


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "q", "--retrievers", "nope"], "unknown retriever 'nope'"),
        (
            ["compare", "q", "--corpus", "{tmp}/missing.jsonl", "--retrievers", "bm25"],
            "missing.jsonl cannot be read: No such file or directory",
        ),
        (["compare", "q", "--corpus", "{tmp}", "--retrievers", "bm25"], "passages.jsonl cannot be read"),
        (["compare", "q", "--corpus", "hub:not an id", "--retrievers", "bm25"], "is not a hub dataset id"),
        (["compare", "q", "-k", "0", "--retrievers", "bm25"], "k must be between 1 and 100"),
        (["compare", "q", "--retrievers", " , "], "--retrievers names no retriever"),
        (["compare", "q", "--model", "mine=bogus:org/name", "--retrievers", "bm25"], "family must be one of"),
        (["compare", "q", "--model", "no-equals-sign", "--retrievers", "bm25"], "is not NAME=FAMILY:QUESTION_CKPT"),
        (["compare", "q", "--dtype", "float8", "--retrievers", "bm25"], "dtype 'float8' is not one of"),
        (
            ["compare", "q", "--model", "mine=sentence:org/name", "--retrievers", "bm25"],
            "--model mine=... is not used: --retrievers does not name 'mine' (add it: --retrievers bm25,mine)",
        ),
        (
            ["evaluate", "--qa", "{tmp}/no-such-dir", "--retrievers", "bm25"],
            "is not a directory holding passages.jsonl",
        ),
    ],
)
def test_bad_input_gives_a_clean_message_and_exit_2(capsys, tmp_path, args, message):
    status, _out, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert status == 2
    assert err.strip().splitlines()[-1].startswith("error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--ks", "1,five"], "argument --ks: '1,five' is not a comma-separated list"),
        (["compare", "q", "--batch-size", "0"], "argument --batch-size: '0' must be at least 1"),
        (["compare", "q", "--index-kind", "lsh"], "argument --index-kind: invalid choice"),
        (["compare"], "the following arguments are required: question"),
    ],
)
def test_a_bad_command_line_is_refused_by_argparse(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bug_is_not_mistaken_for_bad_input(capsys, monkeypatch):
    """Only the package's own errors become "error: ..." and exit 2; a built-in ValueError from a
    bug propagates with its traceback."""

    def broken():
        raise ValueError("a bug")

    monkeypatch.setattr(cli, "load_bundled_corpus", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["compare", "q", "--retrievers", "bm25"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_device_cuda_without_cuda_is_one_line(capsys, tmp_path):
    """It printed ~200 lines of tracebacks, then "internal error (the details are in the server's log)"."""
    status, out, err = run(
        capsys, "index", "--corpus", "bundled", "--retrievers", "dpr", "--device", "cuda", "--cache-dir", str(tmp_path)
    )
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "has no CUDA device; use 'cpu'" in err
