"""When evidence is weak: a retriever's best match, and a reader's best answer, against
thresholds measured on a QA set rather than guessed.

Two calibrations, both from questions whose gold passage is known (a corpus's QA set):
- `RetrievalCalibration`, per retriever and corpus: the best hit's score for each question as
  asked ("answerable"), and the best score once its gold passage is left out of the corpus
  ("unanswerable": the next best hit that is not the gold passage). A best score lower than every
  answerable question's is a *weak match* (`weak_cut`); `position(score)` says where a score
  sits among the answerable questions' best scores (0 = below all, 1 = above all).
- `ReaderRule`, per reader checkpoint: a logistic model of P(answerable) on the reader's own
  evidence for its best answer (its span score and its passage relevance: DPR's start+end and
  relevance logits, REALM's span logit and retriever score), plus the retrieval position when
  the passages were retrieved. It is fitted on one half of the questions, each read twice (its
  retrieved passages, and the same retrieval with the gold passage left out); its probability
  cut lets through 95% of that half's answerable readings (answers first: a wrong "no answer"
  hides what the passages hold), and a rule whose balanced accuracy there is under 60% is not
  kept (`python -m lfqa_demo calibrate-readers` fits and reports on the other half).

`no_answer(...)` applies them: a calibrated reader says "no answer" when its P(answerable) falls
below its cut; a reader without a calibration says it when the retriever's best match is weak
(the retrieval calibration alone); without either, it cannot say it (None).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import InvalidInputError
from .reading.answers import Answer

if TYPE_CHECKING:
    from .engine import RetrievalEngine
    from .retrieval.corpus import QAItem

_log = logging.getLogger(__name__)
CALIBRATION_BATCH = 32  # questions per search call while calibrating a retriever
RULE_REFUSED_SHARE = 0.05  # a reader rule's cut refuses at most this share of the answerable readings it was fitted on
WEAK_SHARE = 0.0  # a weak match: a best score lower than all but this share of answerable questions' best


def balanced_cut(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The threshold t that best separates `positives` (>= t) from `negatives` (< t) by balanced
    accuracy, (share of positives kept + share of negatives below) / 2; among equals, the midpoint
    between neighbouring values nearest the middle of the best run. Never above every value."""
    pos, neg = np.sort(np.asarray(positives, float)), np.sort(np.asarray(negatives, float))
    if not len(pos) or not len(neg):
        raise InvalidInputError("a cut needs scores of both kinds")
    values = np.unique(np.concatenate([pos, neg]))
    # Below every value (nothing refused), or between two neighbours; never above every value,
    # which would refuse everything (what a tie between inseparable groups used to pick).
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2])  # [m]
    kept = 1.0 - np.searchsorted(pos, cuts, side="left") / len(pos)  # share of positives >= cut
    below = np.searchsorted(neg, cuts, side="left") / len(neg)  # share of negatives < cut
    score = (kept + below) / 2
    best = np.flatnonzero(score >= score.max() - 1e-12)
    return float(cuts[best[len(best) // 2]])


@dataclass(frozen=True)
class RetrievalCalibration:
    """Where a retriever's best score sits for answerable and unanswerable questions (module
    docstring). Scores are the retriever's own (BM25's, or a dense inner product)."""

    retriever: str
    answerable: tuple[float, ...]  # sorted best-hit scores, the gold passage in the corpus
    unanswerable: tuple[float, ...]  # sorted best scores with the gold passage left out
    threshold: float  # a best score below this is a weak match (weak_cut)

    def weak(self, score: float) -> bool:
        return not math.isfinite(score) or score < self.threshold

    def position(self, score: float) -> float:
        """The share of answerable questions whose best score is at or below `score` (0..1; 0
        for a score that is not a number)."""
        if not math.isfinite(score):
            return 0.0
        return float(np.searchsorted(np.asarray(self.answerable), score, side="right") / len(self.answerable))

    def as_json(self) -> dict:
        return {
            "retriever": self.retriever,
            "questions": len(self.answerable),
            "threshold": self.threshold,
            "answerable_median": float(np.median(self.answerable)),
            "unanswerable_median": float(np.median(self.unanswerable)),
        }


def best_scores(engine: RetrievalEngine, name: str, qa: Sequence[QAItem], timeout: float | None = None):
    """Per question, (best hit's score, best score of a hit that is not its gold passage; 0 when
    the retriever found nothing else): one search of the top 2 per question, in batches."""
    pairs: list[tuple[float, float]] = []
    for start in range(0, len(qa), CALIBRATION_BATCH):
        chunk = qa[start : start + CALIBRATION_BATCH]
        comparisons = engine.compare_batch([q.question for q in chunk], [name], k=2, timeout=timeout)
        for item, comparison in zip(chunk, comparisons):
            result = comparison.results[name]
            if result.error:
                raise InvalidInputError(f"{name} cannot be calibrated: {result.error}")
            hits = result.hits
            if not hits:
                pairs.append((0.0, 0.0))
                continue
            other = next((h.score for h in hits if h.passage_id != item.passage_id), 0.0)
            pairs.append((float(hits[0].score), float(other)))
    return pairs


def calibrate_retrieval(
    engine: RetrievalEngine, name: str, qa: Sequence[QAItem], timeout: float | None = None
) -> RetrievalCalibration:
    """Retriever `name`'s calibration over the engine's corpus from `qa`'s questions (each with
    its gold passage id): one search per question (module docstring)."""
    qa = [item for item in qa if item.passage_id]
    if len(qa) < 2:
        raise InvalidInputError("a retrieval calibration needs at least 2 questions with gold passages")
    pairs = best_scores(engine, name, qa, timeout)
    answerable = sorted(p[0] for p in pairs if math.isfinite(p[0]))
    unanswerable = sorted(p[1] for p in pairs if math.isfinite(p[1]))
    if len(answerable) < 2 or not unanswerable:
        raise InvalidInputError(f"{name} gave too few finite scores to be calibrated")
    return RetrievalCalibration(name, tuple(answerable), tuple(unanswerable), weak_cut(answerable))


def weak_cut(answerable: Sequence[float], share: float = WEAK_SHARE) -> float:
    """The best score below which only `share` of the answerable questions fall (by default none:
    a weak match is weaker than every answerable question's best). Chosen to keep answers, not to
    balance errors: the cut that separated the two groups best (balanced accuracy) sent 27% of the
    bundled corpus's answerable questions below it, 40 of 45 with their gold passage among the top
    5 the readers read, and even 5% sent one of the page's example questions (its weakest)."""
    ordered = np.sort(np.asarray(answerable, dtype=float))
    return float(ordered[min(int(share * len(ordered)), len(ordered) - 1)])


# -- readers -----------------------------------------------------------------------------------


def reader_identity(reader) -> str:
    """What a reader rule is fitted to: the reader's family, its checkpoints (source and revision)
    and dtype. Another checkpoint, revision or dtype needs its own rule."""
    return json.dumps(
        {
            "family": reader.family.name,
            "checkpoints": [[f.source, f.revision] for f in reader.checkpoints],
            "dtype": str(reader.dtype),
        },
        sort_keys=True,
    )


def reader_features(answer: Answer, position: float | None) -> list[float]:
    """The evidence a reader rule weighs: the best answer's span score and passage relevance, and
    the retrieval position when there is one."""
    features = [float(answer.score), float(answer.relevance)]
    return features + ([float(position)] if position is not None else [])


@dataclass(frozen=True)
class ReaderRule:
    """P(answerable) = sigmoid(bias + sum(weights * (features - mean) / scale)); below `cut`: no
    answer. `uses_position`: the features include the retrieval position (retrieved passages)."""

    reader: str
    identity: str  # the reader checkpoint's identity (reader_identity): a rule fits one checkpoint only
    uses_position: bool
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    cut: float
    fitted_on: str  # what it was fitted on, in words ("84 questions of ..., read twice")
    accuracy: float = 0.0  # its balanced accuracy on the readings it was fitted on

    def p_answerable(self, features: Sequence[float]) -> float:
        z = self.bias + sum(
            w * (x - m) / s for w, x, m, s in zip(self.weights, features, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression of y (0/1) [n] on standardised x [n, d], by
    Newton's method with a small L2 penalty (it stays finite on separable data)."""
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])  # [n, d + 1]: the bias last
    w = np.zeros(d + 1)
    penalty = np.diag([l2] * d + [0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -60, 60)))  # [n]
        gradient = a.T @ (p - y) + penalty @ w
        hessian = (a * (p * (1 - p))[:, None]).T @ a + penalty + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w[:d], float(w[d])


def fit_reader_rule(
    reader: str, identity: str, answerable: list[list[float]], unanswerable: list[list[float]], fitted_on: str
) -> ReaderRule:
    """A ReaderRule from the features of answerable and unanswerable readings (reader_features)."""
    x = np.asarray(answerable + unanswerable, dtype=float)  # [n, d]
    y = np.asarray([1.0] * len(answerable) + [0.0] * len(unanswerable))
    if not len(answerable) or not len(unanswerable):
        raise InvalidInputError("a reader rule needs answerable and unanswerable readings")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    weights, bias = fit_logistic((x - mean) / scale, y)
    rule = ReaderRule(
        reader, identity, x.shape[1] == 3, tuple(mean), tuple(scale), tuple(weights), bias, 0.5, fitted_on
    )
    p_yes = [rule.p_answerable(f) for f in answerable]
    p_no = [rule.p_answerable(f) for f in unanswerable]
    # Answers first, as for the weak match: the cut lets through all but RULE_REFUSED_SHARE of the
    # answerable readings it was fitted on; what it catches of the unanswerable ones is its recall.
    cut = min(max(weak_cut(p_yes, RULE_REFUSED_SHARE), 0.0), 1.0)
    accuracy = (np.mean([p >= cut for p in p_yes]) + np.mean([p < cut for p in p_no])) / 2
    return ReaderRule(**{**asdict(rule), "cut": cut, "accuracy": float(accuracy)})


class ReaderRules:
    """Reader rules by checkpoint identity, in one JSON file ({identity: {"with_retrieval": rule,
    "passages_only": rule}}); a missing file holds none. A file that cannot be read, or a rule in
    it that is malformed, is logged once and left out: a bad file never stops a reader."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._rules: dict[str, dict[str, ReaderRule]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, ReaderRule]]:
        with self._lock:
            if self._rules is None:
                self._rules = _read_rules(self.path)
            return self._rules

    def get(self, identity: str, with_retrieval: bool) -> ReaderRule | None:
        kinds = self._load().get(identity, {})
        return kinds.get("with_retrieval" if with_retrieval else "passages_only")

    def put(self, rule: ReaderRule) -> None:
        """Add (or replace) `rule` and write the file (under a temporary name, then renamed)."""
        rules = self._load()
        with self._lock:
            rules.setdefault(rule.identity, {})["with_retrieval" if rule.uses_position else "passages_only"] = rule
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = {i: {k: asdict(r) for k, r in kinds.items()} for i, kinds in rules.items()}
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            partial.replace(self.path)


def _read_rules(path: Path) -> dict[str, dict[str, ReaderRule]]:
    """The rules in `path`; what cannot be read is logged and left out."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _log.warning("%s is not a reader calibration file (%s): no reader rules", path.name, exc)
        return {}
    if not isinstance(raw, dict):
        _log.warning("%s does not hold an object of reader rules: no reader rules", path.name)
        return {}
    rules: dict[str, dict[str, ReaderRule]] = {}
    for identity, kinds in raw.items():
        for kind, value in kinds.items() if isinstance(kinds, dict) else []:
            try:
                rule = parse_rule(value)
            except InvalidInputError as exc:
                _log.warning("a reader rule in %s is left out: %s", path.name, exc)
                continue
            if kind == ("with_retrieval" if rule.uses_position else "passages_only") and rule.identity == identity:
                rules.setdefault(identity, {})[kind] = rule
    return rules


def parse_rule(value: object) -> ReaderRule:
    """A ReaderRule from its JSON form, every field checked (types, finite numbers, matching
    lengths, positive scales, a cut in [0, 1]); InvalidInputError says what is wrong."""
    if not isinstance(value, dict):
        raise InvalidInputError("a reader rule is not an object")
    uses_position = value.get("uses_position")
    if not isinstance(uses_position, bool):
        raise InvalidInputError("uses_position must be true or false")
    n = 2 + uses_position

    def number(v: object, key: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidInputError(f"{key} holds {type(v).__name__}, not a number")
        try:
            x = float(v)
        except OverflowError as exc:
            raise InvalidInputError(f"{key} is out of range") from exc
        if not math.isfinite(x) or abs(x) > 1e12:
            raise InvalidInputError(f"{key} is not a finite number of sensible size")
        return x

    def numbers(key: str) -> tuple[float, ...]:
        items = value.get(key)
        if not isinstance(items, list) or len(items) != n:
            raise InvalidInputError(f"{key} must be a list of {n} numbers (the rule's features)")
        return tuple(number(v, key) for v in items)

    scale = numbers("scale")
    if any(x <= 0 for x in scale):
        raise InvalidInputError("scale must be positive")
    cut = number(value.get("cut"), "cut")
    if not 0.0 <= cut <= 1.0:
        raise InvalidInputError("cut must lie in [0, 1]")
    texts = {k: value.get(k) for k in ("reader", "identity", "fitted_on")}
    if not all(isinstance(t, str) and len(t) <= 10_000 for t in texts.values()):
        raise InvalidInputError("reader, identity and fitted_on must be text")
    return ReaderRule(
        texts["reader"],
        texts["identity"],
        uses_position,
        numbers("mean"),
        scale,
        numbers("weights"),
        number(value.get("bias"), "bias"),
        cut,
        texts["fitted_on"],
        number(value.get("accuracy", 0.0), "accuracy"),
    )


# -- the verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoAnswer:
    """Why a reader says there is no answer in the passages: `basis` "reader" (its calibrated
    rule: `p_answerable` below `cut`) or "weak match" (no rule for this reader; the retriever's best
    score `best_score` is below its calibrated `threshold`)."""

    basis: str
    p_answerable: float | None = None
    cut: float | None = None
    best_score: float | None = None
    threshold: float | None = None
    questions: int | None = None  # how many answerable questions the threshold comes from


def no_answer(
    best: Answer | None,
    rule: ReaderRule | None,
    retrieval: RetrievalCalibration | None,
    best_score: float | None,
) -> NoAnswer | None:
    """The verdict on a reader's best answer (module docstring): a NoAnswer, or None to answer.
    `retrieval` and `best_score` (the retriever's top score) are None for passages not retrieved."""
    if best is None:
        return None
    position = retrieval.position(best_score) if retrieval is not None and best_score is not None else None
    if rule is not None and rule.uses_position == (position is not None):
        p = rule.p_answerable(reader_features(best, position))
        return NoAnswer("reader", p_answerable=p, cut=rule.cut) if p < rule.cut else None
    if retrieval is not None and best_score is not None and retrieval.weak(best_score):
        return NoAnswer(
            "weak match", best_score=best_score, threshold=retrieval.threshold, questions=len(retrieval.answerable)
        )
    return None
