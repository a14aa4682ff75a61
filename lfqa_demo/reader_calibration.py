"""Fitting the readers' no-answer rules on a QA set, and measuring them on questions they were
not fitted on (`python -m lfqa_demo calibrate-readers`; the rules are calibration.ReaderRule).

Each question (with its gold passage) is read twice by each reader: its top `k` retrieved
passages ("answerable", when they hold its gold passage; otherwise this reading is left out),
and the top `k` of the same retrieval once its gold passage is left out ("unanswerable": the
corpus no longer holds the passage it was written from; another passage may still hold the
answer's words, so the figures are a lower bound on what the rules get right). The questions
are split in two halves by a seeded shuffle: rules and the retrieval calibration are fitted on
the first, and every figure is measured on the second:
- answer accuracy: the share of answerable readings whose answer is given (not "no answer")
  and equals a gold answer (exact match after DPR's/SQuAD's normalisation);
- no-answer precision: of the readings answered "no answer", the share that were unanswerable;
- no-answer recall: of the unanswerable readings, the share answered "no answer".
Rules compared: never saying "no answer" (the readers before this), the retrieval calibration
alone (what a reader without a rule of its own does), and each reader's fitted rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .answer_match import exact_match
from .calibration import (
    ReaderRule,
    ReaderRules,
    RetrievalCalibration,
    calibrate_retrieval,
    fit_reader_rule,
    reader_features,
    reader_identity,
)
from .engine import RetrievalEngine
from .errors import InvalidInputError
from .reading.loading import load_reader
from .retrieval.corpus import QAItem


@dataclass
class Reading:
    """One reading of one question's passages by one reader."""

    question: int  # index into the QA list
    answerable: bool  # its gold passage was among the passages
    best_score: float  # the retriever's top score over these passages
    text: str  # the reader's best span ("" when it found none)
    correct: bool  # the best span equals a gold answer (exact match)
    features: list[float] = field(default_factory=list)  # reader_features without the position


@dataclass
class Outcome:
    """A rule's figures on the held-out readings (module docstring)."""

    rule: str
    answer_accuracy: float
    no_answer_precision: float | None  # None: it never said "no answer"
    no_answer_recall: float
    answerable: int
    unanswerable: int


@dataclass
class CalibrationReport:
    reader: str
    retriever: str
    k: int
    fit_questions: int
    held_questions: int
    retrieval: RetrievalCalibration
    rules: list[ReaderRule]
    outcomes: list[Outcome]


def split_questions(qa: Sequence[QAItem], seed: int) -> tuple[list[int], list[int]]:
    """Question indices in two halves (fit, held out), by a shuffle seeded with `seed`."""
    order = list(range(len(qa)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def read_twice(
    engine: RetrievalEngine,
    reader: str,
    retriever: str,
    qa: Sequence[QAItem],
    k: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Reading]:
    """Each question read by `reader` from `retriever`'s top `k`, and from the top `k` without its
    gold passage (two Readings per question, answerable first)."""
    readings: list[Reading] = []
    for i, item in enumerate(qa):
        if progress is not None and i % 10 == 0:
            progress(f"{reader} reading", i, len(qa))
        hits = engine.compare_batch([item.question], [retriever], k=k + 1)[0].results[retriever]
        if hits.error:
            raise InvalidInputError(f"{retriever} cannot retrieve: {hits.error}")
        ranked = hits.hits
        without_gold = [h for h in ranked if h.passage_id != item.passage_id][:k]
        for answerable, chosen in ((True, ranked[:k]), (False, without_gold)):
            if not chosen or (answerable and all(h.passage_id != item.passage_id for h in chosen)):
                continue  # nothing to read; or the gold passage was not retrieved: neither kind for sure
            # Read as given passages: REALM computes its own retriever scores for them, as in the app.
            given = [{"id": h.passage_id, "title": h.title, "text": h.text} for h in chosen]
            result = engine.answer(item.question, readers=[reader], k=len(given), passages=given)
            if reader in result.reader_errors:
                raise InvalidInputError(f"the {reader} reader cannot read: {result.reader_errors[reader]}")
            answers = result.answers[reader].answers
            best = answers[0] if answers else None
            readings.append(
                Reading(
                    i,
                    answerable,
                    float(chosen[0].score),
                    best.text if best else "",
                    bool(best) and exact_match(best.text, item.answers),
                    reader_features(best, None) if best else [],
                )
            )
    if progress is not None:
        progress(f"{reader} reading", len(qa), len(qa))
    return readings


def outcome(name: str, readings: Sequence[Reading], says_no: Callable[[Reading], bool]) -> Outcome:
    """A rule's figures over `readings` (module docstring)."""
    answerable = [r for r in readings if r.answerable]
    unanswerable = [r for r in readings if not r.answerable]
    refused = [r for r in readings if says_no(r)]
    correct = sum(1 for r in answerable if r.correct and not says_no(r))
    return Outcome(
        name,
        correct / len(answerable) if answerable else 0.0,
        sum(1 for r in refused if not r.answerable) / len(refused) if refused else None,
        sum(1 for r in unanswerable if says_no(r)) / len(unanswerable) if unanswerable else 0.0,
        len(answerable),
        len(unanswerable),
    )


def calibrate_reader(
    engine: RetrievalEngine,
    reader: str,
    retriever: str,
    qa: Sequence[QAItem],
    *,
    k: int = 5,
    seed: int = 0,
    qa_name: str = "a QA set",
    progress: Callable[[str, int, int], None] | None = None,
) -> CalibrationReport:
    """Fit `reader`'s rules (with and without the retrieval position) on one half of `qa` and
    measure them, and the baselines, on the other (module docstring)."""
    qa = [item for item in qa if item.passage_id]
    if len(qa) < 4:
        raise InvalidInputError("calibrating a reader needs at least 4 questions with gold passages")
    fit, held = split_questions(qa, seed)
    retrieval = calibrate_retrieval(engine, retriever, [qa[i] for i in fit])
    readings = [r for r in read_twice(engine, reader, retriever, qa, k, progress) if r.features]
    in_fit = set(fit)
    fit_readings = [r for r in readings if r.question in in_fit]
    held_readings = [r for r in readings if r.question not in in_fit]
    identity = reader_identity(load_reader(reader, device=engine.device, dtype=engine.dtype))
    words = f"{len(fit)} questions of {qa_name}, each read twice from {retriever}'s top {k}"

    def features(r: Reading, position: bool) -> list[float]:
        return r.features + ([retrieval.position(r.best_score)] if position else [])

    rules = []
    for position in (True, False):
        rules.append(
            fit_reader_rule(
                reader,
                identity,
                [features(r, position) for r in fit_readings if r.answerable],
                [features(r, position) for r in fit_readings if not r.answerable],
                words + (" (with the retrieval position)" if position else " (the passages alone)"),
            )
        )
    with_position, passages_only = rules
    outcomes = [
        outcome("never says no answer", held_readings, lambda r: False),
        outcome("weak retrieval match", held_readings, lambda r: retrieval.weak(r.best_score)),
        outcome(
            "fitted rule, passages alone",
            held_readings,
            lambda r: passages_only.p_answerable(features(r, False)) < passages_only.cut,
        ),
        outcome(
            "fitted rule, with retrieval",
            held_readings,
            lambda r: with_position.p_answerable(features(r, True)) < with_position.cut,
        ),
    ]
    return CalibrationReport(reader, retriever, k, len(fit), len(held), retrieval, rules, outcomes)


MIN_RULE_ACCURACY = 0.6  # a rule no better than this (balanced accuracy on its fit half) is not kept


def save_rules(report: CalibrationReport, rules: ReaderRules) -> list[ReaderRule]:
    """Write the report's rules that separate answerable from unanswerable readings (balanced
    accuracy of MIN_RULE_ACCURACY or more on their fit half); the others would only add noise (a
    reader without a rule falls back on the weak retrieval match). Returns those written."""
    kept = [rule for rule in report.rules if rule.accuracy >= MIN_RULE_ACCURACY]
    for rule in kept:
        rules.put(rule)
    return kept


def format_report(report: CalibrationReport) -> str:
    """The report as a plain-text table."""
    percent = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    held = report.outcomes[0]
    lines = [
        f"{report.reader} reader, passages from {report.retriever} (top {report.k}): fitted on "
        f"{report.fit_questions} questions, measured on {report.held_questions} others "
        f"({held.answerable} answerable and {held.unanswerable} unanswerable readings)",
        f"  weak retrieval match: best score below {report.retrieval.threshold:.3f} (below every answerable "
        "question's best on the fit half)",
        f"  {'rule':<30} {'answer accuracy':>16} {'no-answer precision':>20} {'no-answer recall':>17}",
    ]
    for o in report.outcomes:
        lines.append(
            f"  {o.rule:<30} {percent(o.answer_accuracy):>16} {percent(o.no_answer_precision):>20} "
            f"{percent(o.no_answer_recall):>17}"
        )
    for rule in report.rules:
        kind = "with retrieval" if rule.uses_position else "passages alone"
        verdict = "kept" if rule.accuracy >= MIN_RULE_ACCURACY else f"not kept (below {MIN_RULE_ACCURACY:.0%})"
        lines.append(f"  fitted rule, {kind}: balanced accuracy {percent(rule.accuracy)} on its fit half: {verdict}")
    return "\n".join(lines)
