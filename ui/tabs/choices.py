"""The pickers' choices: (shown label, backend name) pairs, and the bundled example questions."""

from __future__ import annotations

from lfqa_demo.retrieval.corpus import QAItem, load_bundled_questions
from lfqa_demo.service import READERS
from ui.render import label


def compare_choices(offered: tuple[str, ...]) -> list[tuple[str, str]]:
    """The retriever pickers' choices: the service's `offered` names (RETRIEVERS, less those only
    a corpus bundle serves where no corpus holds one)."""
    return [(label(name), name) for name in offered]


READER_CHOICES = [(label(name), name) for name in READERS]
EXAMPLES = load_bundled_questions()


def dense_choices(dense: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(label(name), name) for name in dense]


def example_items(style: str | None = None, n: int = 6) -> list[QAItem]:
    """`n` bundled QA items (of one style, if given), spread over the set."""
    picked = [q for q in EXAMPLES if style is None or q.style == style]
    step = max(1, len(picked) // n)
    return picked[::step][:n]
