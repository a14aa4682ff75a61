"""Open-domain QA sets scored by answer only, in NQ-open's layout: a Parquet table with a
`question` column (string) and an `answer` column (a list of strings), no gold passage.

NQ-open (Lee et al., 2019) is on the hub as `google-research-datasets/nq_open` (once `nq_open`),
config `nq_open`, one file per split: `nq_open/train-00000-of-00001.parquet` (87,925 questions)
and `nq_open/validation-00000-of-00001.parquet` (3,610). The validation split is the set DPR's
Table 2 calls the NQ *test* set (Natural Questions' own test answers are not public).

Sources (`open_qa_set`): `hub:REPO[:SPLIT]` for a repository listed in HUB_QA_SETS, read from
the Hugging Face cache first, downloaded only when it is not there and the hub answers a quick
probe (never huggingface_hub's ~23 s of retries offline: see models/hub.py); a local `.parquet`
file; or a directory holding a split's files (`hf download ... --local-dir DIR` makes one).

The file is read within bounds, as an upload is (uploads.py): its size, rows, stored bytes and
answer count from the metadata before any row is decoded; strings read as dictionaries and
measured per batch before Python strings are made; each question at most MAX_QA_QUESTION_CHARS
characters, at most MAX_QA_ANSWERS answers of MAX_QA_ANSWER_CHARS. Over a bound, a CorpusError
names the row; so does a column of the wrong type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import CorpusError
from . import uploads
from .corpus import MAX_QA_ANSWERS, MAX_QA_QUESTION_CHARS, QAItem, QASet, check_hub_dataset_id, qa_answers, qa_text

HUB = "hub:"
NQ_OPEN = "google-research-datasets/nq_open"
QUESTION_COLUMN, ANSWER_COLUMN = "question", "answer"
DEFAULT_SPLIT = "validation"  # NQ-open's validation split: DPR's "NQ test" (see the module docstring)
MAX_QA_FILE_BYTES = uploads.MAX_UPLOAD_BYTES  # 20 MB: NQ-open's train split takes about 5 MB
MAX_QA_ROWS = uploads.MAX_ROWS  # 200,000: NQ-open's train split has 87,925
BATCH_ROWS = 4096


@dataclass(frozen=True)
class HubQASet:
    """Where a hub QA set keeps each split: `file` with "{split}" in it, relative to the repo."""

    file: str
    splits: tuple[str, ...]


# The QA sets `hub:` reads: one entry per repository (another set in this layout is one more line).
HUB_QA_SETS = {NQ_OPEN: HubQASet("nq_open/{split}-00000-of-00001.parquet", ("train", "validation"))}


def is_open_qa_source(spec: str) -> bool:
    """Whether `--qa spec` names an answer-only QA set (this module's) rather than a QA-set
    directory of passages.jsonl and questions.jsonl."""
    if spec.startswith(HUB):
        return True
    path = Path(spec).expanduser()
    return path.suffix.lower() == ".parquet" or (path.is_dir() and not (path / "questions.jsonl").exists())


def open_qa_set(spec: str, *, limit: int | None = None) -> QASet:
    """The QA set `spec` names (module docstring), its first `limit` questions with an answer."""
    if spec.startswith(HUB):
        repo_id, split = parse_hub_spec(spec)
        files = [hub_qa_file(repo_id, split)]
        name = f"{repo_id}:{split}"
    else:
        path = Path(spec).expanduser()
        files = split_files(path) if path.is_dir() else [path]
        name = path.name
    return qa_from_parquet(files, name=name, limit=limit)


def parse_hub_spec(spec: str) -> tuple[str, str]:
    """(repo id, split) of "hub:REPO[:SPLIT]", checked against HUB_QA_SETS; CorpusError otherwise."""
    repo_id, _, split = spec[len(HUB) :].partition(":")
    known = ", ".join(HUB_QA_SETS)
    if repo_id == "nq_open":  # NQ-open's id before the hub moved it under its organisation
        raise CorpusError(f"NQ-open is now {NQ_OPEN} on the hub: --qa hub:{NQ_OPEN}")
    check_hub_dataset_id(repo_id)
    if repo_id not in HUB_QA_SETS:
        raise CorpusError(
            f"{repo_id!r} is not a QA set this command knows the files of (it knows {known}); download its "
            "Parquet file in NQ-open's layout (question, answer) and pass it: --qa FILE.parquet"
        )
    split = split or DEFAULT_SPLIT
    splits = HUB_QA_SETS[repo_id].splits
    if split not in splits:
        dpr = f" (the set DPR's paper calls NQ test is its {DEFAULT_SPLIT} split)" if repo_id == NQ_OPEN else ""
        raise CorpusError(f"{repo_id} has no split {split[:40]!r}; its splits are {', '.join(splits)}{dpr}")
    return repo_id, split


def split_files(folder: Path, split: str = DEFAULT_SPLIT) -> list[Path]:
    """A directory's Parquet files of `split`: SPLIT-*.parquet in it, else in its sub-folders
    (as `hf download REPO --repo-type dataset --local-dir DIR` lays them out: DIR/nq_open/...)."""
    files = sorted(folder.glob(f"{split}-*.parquet")) or sorted(folder.glob(f"*/{split}-*.parquet"))
    if not files:
        raise CorpusError(f"{folder} holds no {split}-*.parquet file (nor do its sub-folders); pass the file itself")
    return files


# -- the hub, cache first --------------------------------------------------------------------------
def hub_qa_file(repo_id: str, split: str) -> Path:
    """The path of `split`'s file of the hub QA set `repo_id`: from the Hugging Face cache when it
    is there (offline too), else downloaded; CorpusError at once, saying how to get the file,
    when it is not cached and the hub cannot be reached."""
    filename = HUB_QA_SETS[repo_id].file.format(split=split)
    cached = cached_dataset_file(repo_id, filename)
    if cached is not None:
        return cached
    from ..models.hub import hub_cache_dir, hub_unreachable

    why = hub_unreachable()  # HF_HUB_OFFLINE, or one quick probe: never the download's retries
    if why:
        raise CorpusError(
            f"{filename} of {repo_id} is not in the Hugging Face cache ({hub_cache_dir()}) and {why}. "
            + how_to_get(repo_id, filename)
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, repo_type="dataset", cache_dir=hub_cache_dir()))
    except Exception as exc:  # the network, a moved repo, the disk: say what and how to get it by hand
        raise CorpusError(
            f"{filename} of {repo_id} could not be downloaded ({type(exc).__name__}: {str(exc)[:300]}). "
            + how_to_get(repo_id, filename)
        ) from exc


def cached_dataset_file(repo_id: str, filename: str) -> Path | None:
    """`filename` of the hub dataset `repo_id` (its main revision) in the Hugging Face cache
    (HF_HUB_CACHE, then the image's cache: see models/hub.py), or None; never goes online."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from ..models.hub import hub_cache_dir, image_cache_dir

    for cache in dict.fromkeys([hub_cache_dir(), image_cache_dir()]):
        try:
            return Path(hf_hub_download(repo_id, filename, repo_type="dataset", cache_dir=cache, local_files_only=True))
        except LocalEntryNotFoundError:
            continue
    return None


def how_to_get(repo_id: str, filename: str) -> str:
    """What to run to get a hub QA set's file here."""
    from ..models.hub import hub_cache_dir

    return (
        f"To get it, run `hf download {repo_id} {filename} --repo-type dataset` (before huggingface_hub 1.0: "
        f"`huggingface-cli download {repo_id} {filename} --repo-type dataset`) on a machine that can reach the "
        f"hub, then copy its cache ({hub_cache_dir()}) here or set HF_HUB_CACHE to it; or pass the file itself: "
        f"--qa PATH/{Path(filename).name}."
    )


# -- the Parquet table -------------------------------------------------------------------------------
def qa_from_parquet(files: list[Path], *, name: str, limit: int | None = None) -> QASet:
    """The questions of Parquet `files` in NQ-open's layout, in order, as one QA set named `name`:
    questions without an answer are left out, and reading stops after `limit` questions (the
    notes say both). Raises CorpusError on a file over a bound or of another layout."""
    items: list[QAItem] = []
    unanswered, cut = 0, False
    rows = (row for path in files for row in _rows(path))
    for number, (question, answers) in enumerate(rows, start=1):
        if not answers:
            unanswered += 1
            continue
        if limit is not None and len(items) >= limit:
            cut = True
            break
        items.append(QAItem(f"q{number}", question, answers, ""))  # no gold passage: scored by answer only
    if not items:
        raise CorpusError(f"{name} holds no question with an answer")
    notes = [f"{unanswered:,} question{'s' if unanswered > 1 else ''} without an answer left out"] if unanswered else []
    if cut:
        notes.append(f"only the first {limit:,} questions read")
    return QASet(name, tuple(items), tuple(notes))


def _rows(path: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(question, answers) of each row of one file, every bound checked (module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shown = path.name
    uploads.check_file(path, shown, MAX_QA_FILE_BYTES)  # the suffix, the size, the magic bytes
    try:
        with pa.OSFile(os.fspath(path)) as f:  # opened by us: the name is never parsed as a URI or pattern
            parquet = pq.ParquetFile(f)
            answer_leaf = _check_layout(parquet, shown)
        with pa.OSFile(os.fspath(path)) as f:
            # Strings as dictionaries: a batch's size is measured before a Python string exists.
            parquet = pq.ParquetFile(f, read_dictionary=[QUESTION_COLUMN, answer_leaf])
            row, decoded = 0, 0
            for batch in parquet.iter_batches(BATCH_ROWS, columns=[QUESTION_COLUMN, ANSWER_COLUMN], use_threads=False):
                decoded += _measure(batch, shown, row)
                if decoded > uploads.MAX_DECODED_CHARS:
                    raise CorpusError(uploads.too_much_text(shown))
                questions = batch.column(QUESTION_COLUMN).to_pylist()
                answers = batch.column(ANSWER_COLUMN).to_pylist()
                for question, answer in zip(questions, answers):
                    row += 1
                    where = f"row {row:,}"
                    text = qa_text(question, shown, where, QUESTION_COLUMN, MAX_QA_QUESTION_CHARS)
                    if not text:
                        raise CorpusError(f"{shown}: {where} has no question in the {QUESTION_COLUMN!r} column.")
                    yield text, qa_answers(answer, shown, where, ANSWER_COLUMN, split_bars=False)
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{shown} could not be read as Parquet: {uploads.library_error(exc, path, shown)}") from exc


def _check_layout(parquet, shown: str) -> str:
    """The Parquet path of the answer strings ("answer.list.element", or "answer" for one string a
    row), once the metadata shows NQ-open's columns and types within the bounds; CorpusError
    otherwise."""
    import pyarrow as pa

    meta, schema = parquet.metadata, parquet.schema_arrow
    if meta.num_rows > MAX_QA_ROWS:
        raise CorpusError(f"{shown} has {meta.num_rows:,} rows; the limit is {MAX_QA_ROWS:,}.")
    missing = [c for c in (QUESTION_COLUMN, ANSWER_COLUMN) if schema.names.count(c) != 1]  # absent, or twice
    if missing or len(schema.names) > uploads.MAX_COLUMNS:
        listed = uploads.columns_for_message(schema.names[: uploads.MAX_COLUMNS])
        raise CorpusError(
            f"{shown} is not in NQ-open's layout: it needs the columns {QUESTION_COLUMN!r} (text) and "
            f"{ANSWER_COLUMN!r} (a list of texts); its columns are {listed}."
        )
    question_type, answer_type = schema.field(QUESTION_COLUMN).type, schema.field(ANSWER_COLUMN).type
    single = uploads.is_text_type(answer_type)
    listed = (pa.types.is_list(answer_type) or pa.types.is_large_list(answer_type)) and uploads.is_text_type(
        answer_type.value_type
    )
    if not uploads.is_text_type(question_type) or not (single or listed):
        raise CorpusError(
            f"{shown}: the {QUESTION_COLUMN!r} column holds {str(question_type)[:80]} and the {ANSWER_COLUMN!r} "
            f"column {str(answer_type)[:80]}; NQ-open's layout has strings and lists of strings."
        )
    uploads.check_parquet_stored_size(meta, shown)  # a compression bomb is refused here
    # The answer strings' leaf column: its number counts the leaves of the columns before it (a
    # dotted path could also be the name of another top-level column, so it is not searched for).
    leaf = sum(_leaf_count(schema.field(n).type) for n in schema.names[: schema.get_field_index(ANSWER_COLUMN)])
    values = sum(meta.row_group(g).column(leaf).num_values for g in range(meta.num_row_groups))
    if values > meta.num_rows * (MAX_QA_ANSWERS + 1):  # + 1: an empty list still takes a slot
        raise CorpusError(
            f"{shown} holds {values:,} answers for {meta.num_rows:,} rows; at most {MAX_QA_ANSWERS} a row."
        )
    return parquet.schema.column(leaf).path


def _leaf_count(arrow_type) -> int:
    """How many Parquet leaf columns a column of `arrow_type` takes (a struct or list: its children's)."""
    fields = arrow_type.num_fields
    return sum(_leaf_count(arrow_type.field(i).type) for i in range(fields)) if fields else 1


def _measure(batch, shown: str, row: int) -> int:
    """The UTF-8 bytes of a batch's strings (an upper bound on their characters), computed from the
    Arrow data before any is decoded; CorpusError when one string is longer than any question or
    answer may be (a question near MAX_QA_QUESTION_CHARS; the limits themselves are checked later)."""
    import pyarrow.compute as pc

    total = 0
    for name in (QUESTION_COLUMN, ANSWER_COLUMN):
        column = batch.column(name)
        strings = pc.list_flatten(column) if not uploads.is_text_type(column.type) else column
        size, longest = uploads.encoded_text_size(strings)
        if longest > 4 * MAX_QA_QUESTION_CHARS:  # 4 bytes a character at most in UTF-8
            raise CorpusError(
                f"{shown}: a value in the {name!r} column near row {row + 1:,} is {longest:,} bytes long; "
                f"the limit is {MAX_QA_QUESTION_CHARS:,} characters."
            )
        total += size
    return total
