"""Ranking one corpus with several retrievers side by side: at once (`rank`), or column by column
as their indexes become ready (`live`). Called by `RetrievalEngine`, which checks the input
first: what arrives here is typed and trusted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

from .answer_match import has_answer
from .errors import failure_message
from .results import Comparison, Hit, RetrieverResult, agreement
from .retrieval.searchers import Ranking
from .status import Phase

if TYPE_CHECKING:
    from .engine import RetrievalEngine


def rank(
    engine: RetrievalEngine,
    questions: list[str],
    names: list[str],
    k: int,
    gold: Sequence[str | None],
    timeout: float | None,
) -> list[Comparison]:
    """Each question's top `k` from each retriever (each encodes all questions in one batch);
    timings are per question (the batch's time divided evenly). A retriever that fails, or whose
    index is not ready within `timeout`, gives its column an error; the others go on."""
    corpus = engine.corpus
    per_name: dict[str, RetrieverResult | Ranking] = {}
    for name in names:
        try:
            per_name[name] = engine.searchers[name].search(questions, k, timeout)
        except Exception as exc:  # one retriever failing never takes the other columns down
            per_name[name] = RetrieverResult(name, [], 0.0, 0.0, error=failure_message(exc))
    comparisons = []
    n = max(len(questions), 1)
    for row, question in enumerate(questions):
        results = {}
        for name in names:
            got = per_name[name]
            if isinstance(got, RetrieverResult):
                results[name] = got
                continue
            hits = [
                Hit(
                    rank + 1,
                    corpus[j].id,
                    corpus[j].title,
                    corpus[j].text,
                    float(s),
                    None if not gold[row] else has_answer(corpus[j].text, [gold[row]]),
                )
                for rank, (s, j) in enumerate(zip(got.scores[row], got.ids[row]))
                if 0 <= j < len(corpus)  # -1: fewer hits; past the end: a hostile prebuilt faiss index
            ]
            results[name] = RetrieverResult(
                name,
                hits,
                1000 * got.encode_seconds / n,
                1000 * got.search_seconds / n,
                score_kind=engine.searchers[name].score_kind,
            )
        comparisons.append(Comparison(question, k, results, agreement(results, k), gold[row] or None))
    return comparisons


def live(
    engine: RetrievalEngine, question: str, names: list[str], k: int, gold: str | None, budget_s: float
) -> Iterator[Comparison]:
    """The comparison step by step: first every retriever whose index is ready (BM25 at once),
    then again each time another index is ready; a column still indexing carries its status in
    `pending`. After `budget_s` seconds the builds still running go on in the background (their
    status says so). Closing the generator early stops the builds nobody else waits for."""
    done: list[str] | None = None
    for builds, _ in engine.watch_builds(names, budget_s):
        failed = {n: b for n, b in builds.items() if b.finished and b.state != Phase.READY}
        pending = {n: b for n, b in builds.items() if not b.finished}
        ready = [n for n in names if n not in pending and n not in failed]
        if ready != done:  # search again only when another column became ready
            done = ready
            base = rank(engine, [question], ready, k, [gold], None)[0] if ready else Comparison(question, k, {})
        results = {}
        for n in names:
            if n in failed:
                results[n] = RetrieverResult(n, [], 0.0, 0.0, error=failure_message(failed[n].error, logged=True))
            elif n in pending:
                results[n] = RetrieverResult(n, [], 0.0, 0.0, pending=pending[n].status())
            else:
                results[n] = base.results[n]
        yield Comparison(question, k, results, base.agreement, gold or None)
