"""A QA set in NQ-open's layout over a small generated corpus, where BM25 ranks each question's
first answer-bearing passage at a rank fixed in advance: the expected top-k answer recall of
`python -m lfqa_demo evaluate --qa ... --retrievers bm25` is then known exactly.

How the ranks are fixed: question i asks about a made-up term (its tag) that only its own block
of passages holds. The j-th passage of a block holds the tag (depth - j + 1) times, and every
passage has the same number of BM25 terms (title and text, as bm25_terms counts them), so BM25
ranks the block in order (for one term and equal lengths its score grows with the term's count)
and no passage outside the block is a hit. The answer is planted in the passage at the question's
rank; a question whose rank is None has its answer in a passage of no block (the corpus holds it,
no hit does).

Passages ranked above the answer hold decoys that a looser matcher than DPR's `has_answer` would
count (answer_match.py): "party" for the answer "art", "Beyonce" for "Beyoncé" (planted in NFD
form), "11,000" for "1,000", "Beatles" for "The Beatles" (DPR removes no article).

Files: `corpus.parquet` (wiki_dpr's columns: id, title, text) and
`nq_open/validation-00000-of-00001.parquet` (question: string, answer: list of strings), the
path the hub's google-research-datasets/nq_open uses.

    .venv/bin/python tools/nq_open_set.py OUT
"""

from __future__ import annotations

import argparse
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from lfqa_demo.retrieval.bm25 import bm25_terms

# Where BM25 ranks each question's first answer-bearing passage (None: not a hit at all), chosen so
# that R@1, R@5, R@20 and R@100 differ and each cut-off has a question on it and one just past it.
RANKS: tuple[int | None, ...] = (1, 1, 2, 5, 6, 20, 21, 100, None, None)
TERMS_PER_PASSAGE = 120  # BM25 terms of every passage, title included: more than the deepest block's tag count
QA_FILE = "nq_open/validation-00000-of-00001.parquet"
CORPUS_FILE = "corpus.parquet"
# Answers with a decoy (what sits in the passages ranked above the answer), by question number;
# the other questions get a made-up word as their answer.
DECOYS = {2: ("art", "party"), 3: ("Beyoncé", "Beyonce"), 4: ("1,000", "11,000"), 6: ("The Beatles", "Beatles")}
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


@dataclass(frozen=True)
class PlantedSet:
    """What `write_planted_set` wrote, and the recall it was built to give."""

    corpus: Path
    qa: Path
    ranks: tuple[int | None, ...]
    passages: int

    def recall(self, k: int) -> float:
        """The share of questions whose answer BM25 ranks in the top k."""
        return sum(r is not None and r <= k for r in self.ranks) / len(self.ranks)


def made_up_word(n: int, prefix: str) -> str:
    """A distinct pronounceable word for each n (never an English stopword: it starts with `prefix`)."""
    syllables = []
    while True:
        n, digit = divmod(n, len(_SYLLABLES))
        syllables.append(_SYLLABLES[digit])
        if n == 0:
            return prefix + "".join(syllables)


def _passage(title: str, words: list[str], serial: int) -> dict[str, str]:
    """A passage of exactly TERMS_PER_PASSAGE BM25 terms: `words`, then filler words (which no
    question asks about), unique by `serial`."""
    filler, text = 0, " ".join(words)
    while len(bm25_terms(f"{title} {text}")) < TERMS_PER_PASSAGE:
        text += f" {made_up_word(serial * 1000 + filler, 'x')}"
        filler += 1
    if len(bm25_terms(f"{title} {text}")) != TERMS_PER_PASSAGE:
        raise ValueError(f"passage {serial} has more than {TERMS_PER_PASSAGE} terms")
    return {"id": str(serial), "title": title, "text": text}


def _answer(question: int) -> tuple[str, str | None]:
    """(the answer as the QA set gives it, the decoy above it or None)."""
    answer, decoy = DECOYS.get(question, (made_up_word(question, "a").capitalize(), None))
    return answer, decoy


def _planted(answer: str) -> str:
    """The answer as a passage holds it: NFD, so that only NFD-normalised matching finds "Beyoncé"."""
    return unicodedata.normalize("NFD", answer)


def planted_records(ranks: Sequence[int | None] = RANKS) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    """(passages, questions) of the set; see the module docstring."""
    passages: list[dict[str, str]] = []
    questions: list[dict[str, object]] = []
    for q, rank in enumerate(ranks):
        tag = made_up_word(q, "t")
        question = f"what is {tag}"
        if bm25_terms(question) != [tag]:
            raise ValueError(f"question {question!r} must have one BM25 term, its tag")
        answer, decoy = _answer(q)
        depth = rank or 1
        for j in range(1, depth + 1):
            words = [tag] * (depth - j + 1)
            if j == rank:
                words.append(_planted(answer))
            elif decoy is not None:
                words.append(decoy)
            passages.append(_passage(f"Block {q}", words, len(passages) + 1))
        if rank is None:  # the answer is in the corpus, in a passage no question's term reaches
            passages.append(_passage(f"Block {q}", [_planted(answer)], len(passages) + 1))
        questions.append({"question": question, "answer": [answer]})
    return passages, questions


def write_planted_set(out: str | Path, ranks: Sequence[int | None] = RANKS) -> PlantedSet:
    """Write the corpus and the QA set under `out` (made if missing)."""
    out = Path(out)
    passages, questions = planted_records(ranks)
    corpus, qa = out / CORPUS_FILE, out / QA_FILE
    qa.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(passages), corpus)
    schema = pa.schema([("question", pa.string()), ("answer", pa.list_(pa.string()))])
    pq.write_table(pa.Table.from_pylist(questions, schema=schema), qa)
    return PlantedSet(corpus, qa, tuple(ranks), len(passages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    planted = write_planted_set(parser.parse_args().out)
    recall = ", ".join(f"R@{k} {planted.recall(k):.3f}" for k in (1, 5, 20, 100))
    print(f"{planted.passages} passages in {planted.corpus}, {len(planted.ranks)} questions in {planted.qa}: {recall}")


if __name__ == "__main__":
    main()
