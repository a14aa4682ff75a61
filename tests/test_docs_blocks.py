"""Every fenced code block in README.md and docs/*.md runs here, or says in the Markdown why not.

A block is run as written unless the line right before its opening fence (blank lines may
separate them) is one of these HTML comments, which the rendered page does not show:

    <!-- not run: REASON -->            left out; REASON says why (the model hub, a GPU, minutes...)
    <!-- run by: tests/test_NAME.py -->  another test runs it (the file must exist and name the doc)

A block with neither is run: ```python through the test's own interpreter (the project's .venv)
on stdin, ```bash / ```sh / ```shell with `bash -e -o pipefail`; a block in any other language
(or none) fails until it is marked, so a new example cannot go unrun unnoticed. Each runs in a
fresh scratch checkout (symlinks to this one's files, `../shared` beside it), so that files an
example writes (`indexes/`) stay out of the tree, offline, with HF_HUB_CACHE holding the fixture
checkpoints under the real repo ids (conftest.py), HF_HOME and LFQA_CACHE in temp folders, and
the default precision (no LFQA_DTYPE), as a reader would run them. About 45 s on 2 cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNERS = {
    "python": lambda code: ([sys.executable, "-"], code),
    "bash": lambda code: (["bash", "-e", "-o", "pipefail", "-c", code], None),
}
RUNNERS["sh"] = RUNNERS["shell"] = RUNNERS["bash"]
BLOCK_TIMEOUT_S = 180
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`]*)")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run|run by)\s*:(?P<value>.*?)-->\s*$")
MARKER_LIKE = re.compile(r"<!--\s*(not[ -]?run|run[ -]?by)\b", re.I)
LEFT_OUT = {".git", "indexes", ".pytest_cache"}  # never linked into the scratch checkout


@dataclass(frozen=True)
class Block:
    doc: str  # relative to the repo root, as in the test id
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str | None  # "not run" / "run by", or None
    value: str  # the marker's reason or test file, stripped

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def marker_before(lines: list[str], index: int) -> re.Match | None:
    """The marker on the last non-blank line before lines[index], if that line is one."""
    for previous in reversed(lines[:index]):
        if previous.strip():
            return MARKER.match(previous)
    return None


def find_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body, j = [], i + 1
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent] == " " * indent else lines[j].lstrip())
            j += 1
        marker = marker_before(lines, i)
        blocks.append(
            Block(
                doc=path.relative_to(ROOT).as_posix(),
                line=i + 1,
                lang=opening["lang"].lower(),
                code="\n".join(body) + "\n",
                marker=marker["kind"] if marker else None,
                value=marker["value"].strip() if marker else "",
            )
        )
        i = j + 1
    return blocks


BLOCKS = [block for doc in DOCS for block in find_blocks(doc)]


def test_the_docs_have_code_blocks():
    assert len(DOCS) > 1 and BLOCKS, "no Markdown or no fenced code block found: the parser is broken"


def test_every_marker_is_well_formed_and_stands_before_a_block():
    """A misspelt marker would leave its block unmarked; one with no block after it marks nothing."""
    fences = {(block.doc, block.line) for block in BLOCKS}
    problems = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not MARKER_LIKE.search(line):
                continue
            where = f"{doc.relative_to(ROOT).as_posix()}:{number}"
            if not MARKER.match(line):
                problems.append(f"{where}: not `<!-- not run: REASON -->` or `<!-- run by: tests/FILE.py -->`")
                continue
            following = next((n for n in range(number, len(lines)) if lines[n].strip()), None)
            if following is None or (doc.relative_to(ROOT).as_posix(), following + 1) not in fences:
                problems.append(f"{where}: the marker is not right before a fenced code block")
    assert not problems, "\n".join(problems)


@pytest.fixture()
def scratch_checkout(tmp_path) -> Path:
    """A checkout of symlinks to this one's files, with `../shared` beside it, as in the real layout."""
    checkout = tmp_path / "checkout" / ROOT.name
    checkout.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in LEFT_OUT:
            (checkout / entry.name).symlink_to(entry)
    if (ROOT.parent / "shared").exists():
        (checkout.parent / "shared").symlink_to(ROOT.parent / "shared")
    return checkout


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block(block: Block, hub_cache, tmp_path, scratch_checkout):
    if block.marker == "not run":
        assert block.value, f"{block.id}: `<!-- not run: -->` states no reason"
        pytest.skip(f"not run: {block.value}")
    if block.marker == "run by":
        runner = ROOT / block.value
        assert block.value.startswith("tests/test_") and runner.is_file(), f"{block.id}: no test file {block.value!r}"
        assert Path(block.doc).name in runner.read_text(encoding="utf-8"), f"{block.value} does not name {block.doc}"
        return
    assert block.lang in RUNNERS, (
        f"{block.id}: a ```{block.lang or '(no language)'} block with no runner: run it here, "
        "or put `<!-- not run: REASON -->` right before it"
    )
    command, stdin = RUNNERS[block.lang](block.code)
    env = {
        **{name: value for name, value in os.environ.items() if name != "LFQA_DTYPE"},  # as a reader runs it
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HOME": str(tmp_path / "hf-home"),
        "LFQA_CACHE": str(tmp_path / "lfqa-cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
    }
    done = subprocess.run(
        command,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        cwd=scratch_checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert done.returncode == 0, (
        f"{block.id} ({block.lang}) exited with {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
