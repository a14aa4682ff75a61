"""Retrieval evaluation on a QA set: recall@k by gold passage and by answer string, and MRR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .engine import RetrievalEngine, contains_answer
from .retrieval.corpus import QAItem


@dataclass
class RetrievalScores:
    retriever: str
    questions: int
    recall_passage: dict[int, float]  # k -> share of questions whose gold passage is in the top k
    recall_answer: dict[int, float]  # k -> share with some top-k passage containing a gold answer
    mrr: float  # mean reciprocal rank of the gold passage within the top max(ks); 0 when absent
    error: str | None = None


def evaluate(
    engine: RetrievalEngine,
    qa: Sequence[QAItem],
    retrievers: Sequence[str],
    ks: Sequence[int] = (1, 5, 20),
    batch: int = 64,
) -> list[RetrievalScores]:
    """Score each retriever on `qa` over the engine's corpus (questions run in batches)."""
    depth = max(ks)
    out = []
    for name in retrievers:
        hits_p = {k: 0 for k in ks}
        hits_a = {k: 0 for k in ks}
        rr = 0.0
        error = None
        for start in range(0, len(qa), batch):
            chunk = qa[start : start + batch]
            comparisons = engine.compare_batch([q.question for q in chunk], [name], k=depth)
            for item, comparison in zip(chunk, comparisons):
                result = comparison.results[name]
                if result.error:
                    error = result.error
                    break
                ids = [h.passage_id for h in result.hits]
                answer_ranks = [
                    i for i, h in enumerate(result.hits) if any(contains_answer(h.text, a) for a in item.answers)
                ]
                for k in ks:
                    hits_p[k] += item.passage_id in ids[:k]
                    hits_a[k] += bool(answer_ranks) and answer_ranks[0] < k
                if item.passage_id in ids:
                    rr += 1.0 / (ids.index(item.passage_id) + 1)
            if error:
                break
        n = max(len(qa), 1)
        out.append(
            RetrievalScores(
                name, len(qa), {k: hits_p[k] / n for k in ks}, {k: hits_a[k] / n for k in ks}, rr / n, error
            )
        )
    return out


def format_table(scores: Sequence[RetrievalScores]) -> str:
    """A plain-text table, one row per retriever. A retriever that could not run gets a short row
    and, below the table, its whole error on one line: the error often ends with what to do
    (such as the `hf download ...` command), so it must not be cut."""
    ks = sorted(scores[0].recall_passage) if scores else []
    head = ["retriever"] + [f"R@{k} psg" for k in ks] + [f"R@{k} ans" for k in ks] + [f"MRR@{ks[-1] if ks else ''}"]
    rows = [_score_cells(s, ks) for s in scores if not s.error]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    widths[0] = max([widths[0]] + [len(s.retriever) for s in scores])
    lines = [_table_line(head, widths)]
    for s in scores:
        lines.append(
            f"{s.retriever.ljust(widths[0])}  unavailable (error below)"
            if s.error
            else _table_line(_score_cells(s, ks), widths)
        )
    failures = [f"{s.retriever}: unavailable: {one_line(s.error)}" for s in scores if s.error]
    return "\n".join(lines + ([""] + failures if failures else []))


def one_line(text: str) -> str:
    """`text` with its line breaks turned into spaces (one line per failed retriever)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _score_cells(s: RetrievalScores, ks: Sequence[int]) -> list[str]:
    """The table cells of a retriever that ran: its name, recall by passage and by answer, MRR."""
    return (
        [s.retriever]
        + [f"{s.recall_passage[k]:.3f}" for k in ks]
        + [f"{s.recall_answer[k]:.3f}" for k in ks]
        + [f"{s.mrr:.3f}"]
    )


def _table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells padded to their column widths, two spaces apart."""
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
