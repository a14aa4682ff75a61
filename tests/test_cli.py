"""`python -m lfqa_demo` index, compare and evaluate, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lfqa_demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_index_then_compare_uses_the_cache(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"title": f"T{i}", "text": f"the normans built castle {i} in england"}) for i in range(30)), encoding="utf-8")
    cache = tmp_path / "cache"
    first = run("index", "--corpus", str(corpus), "--retrievers", "dpr,realm,bm25", "--cache-dir", str(cache))
    assert first.returncode == 0, first.stderr
    assert "dpr: flat index of 30 x 32, built" in first.stdout and "realm: flat index of 30 x 16, built" in first.stdout
    second = run("index", "--corpus", str(corpus), "--retrievers", "dpr", "--cache-dir", str(cache))
    assert "dpr: flat index of 30 x 32, cached" in second.stdout
    shown = run("compare", "castle 7", "--corpus", str(corpus), "--retrievers", "dpr,bm25", "-k", "3", "--cache-dir", str(cache), "--gold-answer", "castle 7")
    assert shown.returncode == 0, shown.stderr
    assert "[answer]" in shown.stdout and "dpr vs bm25: overlap@3" in shown.stdout


def test_evaluate_prints_a_table_and_bad_input_exits_2(tmp_path):
    shared = ROOT.parent / "shared" / "data" / "squad2-dev-5"
    out = run("evaluate", "--qa", str(shared), "--retrievers", "bm25,dpr", "--cache-dir", str(tmp_path), "--ks", "1,5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"705 questions, 173 passages ({shared})"
    assert lines[1].split() == ["retriever", "R@1", "psg", "R@5", "psg", "R@1", "ans", "R@5", "ans", "MRR@5"]
    assert lines[2].startswith("bm25") and float(lines[2].split()[2]) >= 0.93
    bad = run("compare", "   ", "--retrievers", "bm25")
    assert bad.returncode == 2 and "empty" in bad.stderr
