"""The pickers' choices: (shown label, backend name) pairs, and the bundled example questions."""

from __future__ import annotations

from lfqa_demo.retrieval.corpus import QAItem, load_bundled_questions
from lfqa_demo.service import READERS, RETRIEVERS
from ui.render import label

COMPARE_CHOICES = [(label(name), name) for name in RETRIEVERS]
READER_CHOICES = [(label(name), name) for name in READERS]
EXAMPLES = load_bundled_questions()


def dense_choices(dense: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(label(name), name) for name in dense]


def example_items(style: str | None = None, n: int = 6) -> list[QAItem]:
    """`n` bundled QA items (of one style, if given), spread over the set."""
    picked = [q for q in EXAMPLES if style is None or q.style == style]
    step = max(1, len(picked) // n)
    return picked[::step][:n]
