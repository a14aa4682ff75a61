"""Passage corpora: the bundled one, uploaded files and hub datasets, all as `Corpus`.

Long texts are split into passages of about 100 words that keep their title, as the
wiki_dpr passages of DPR and RAG are; empty and duplicate passages are dropped, and every
passage gets a stable id (the source's id, or a hash of its title and text).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..errors import CorpusError, InvalidTypeError
from ..inputs import clean_text
from ..models.hub import hub_unreachable
from . import uploads
from .uploads import MAX_UPLOAD_BYTES, TEXT_COLUMNS, TITLE_COLUMNS, UPLOAD_SUFFIXES  # noqa: F401 (imported from here)
from .uploads import pick_column as _pick_column  # also used for hub datasets

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUNDLED_DIR = ASSETS / "corpus"
SPLIT_ABOVE_WORDS = 150  # texts longer than this are split...
PASSAGE_WORDS = 100  # ...into passages of about this many words
# No passage is longer than this: 100 words are ~600 characters, and every reader and page works
# on whole passages, so a visitor's text without spaces must not make one of a million.
MAX_PASSAGE_CHARS = 4000


FINGERPRINT_VERSION = b"lfqa-demo corpus v2\n"  # v2: length-prefixed values (v1 joined them with NUL)


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "text": self.text}


def hash_passage(h: "hashlib._Hash", pid: str, title: str, text: str) -> None:
    """Feed one passage into a corpus fingerprint: each value length-prefixed (see Corpus.fingerprint)."""
    for part in (pid, title, text):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)


@dataclass
class Corpus:
    """An ordered list of passages with a name; `fingerprint` identifies its content."""

    name: str
    passages: list[Passage]
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.passages)

    def __getitem__(self, i: int) -> Passage:
        return self.passages[i]

    def __iter__(self) -> Iterator[Passage]:
        return iter(self.passages)

    @property
    def fingerprint(self) -> str:
        """sha256 over ids, titles and texts: equal fingerprints, equal corpora (and indexes).

        Each value is length-prefixed, so no two different corpora hash the same bytes (a
        separator could be swallowed: a title holding NUL once made 14 passages hash as 15)."""
        if self._fingerprint is None:
            h = hashlib.sha256(FINGERPRINT_VERSION)
            for p in self.passages:
                hash_passage(h, p.id, p.title, p.text)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def as_dicts(self) -> list[dict[str, str]]:
        return [p.as_dict() for p in self.passages]


# -- building passages ----------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def split_text(text: str, words: int = PASSAGE_WORDS, split_above: int = SPLIT_ABOVE_WORDS) -> list[str]:
    """Whitespace-normalised text, cut into chunks of about `words` words at sentence ends
    when it has more than `split_above` words (a sentence longer than a chunk is cut by words);
    no chunk is longer than MAX_PASSAGE_CHARS (a "word" of a million characters is cut too)."""
    return [piece for chunk in _split_words(text, words, split_above) for piece in _cut(chunk, MAX_PASSAGE_CHARS)]


def _cut(text: str, limit: int) -> list[str]:
    return [text[i : i + limit] for i in range(0, len(text), limit)] if len(text) > limit else [text]


def _split_words(text: str, words: int, split_above: int) -> list[str]:
    text = " ".join(text.split())
    if len(text.split()) <= split_above:
        return [text] if text else []
    chunks: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        tokens = sentence.split()
        if current and len(current) + len(tokens) > words:
            chunks.append(" ".join(current))
            current = []
        while len(tokens) > words:  # an over-long "sentence" (a list, a table row...)
            chunks.append(" ".join(tokens[:words]))
            tokens = tokens[words:]
        current += tokens
    if current:
        # A short tail joins the previous chunk rather than standing alone.
        if chunks and len(current) < words // 4:
            chunks[-1] += " " + " ".join(current)
        else:
            chunks.append(" ".join(current))
    return chunks


def content_id(title: str, text: str) -> str:
    """A passage's id from its title and text (JSON-encoded together: no separator to swallow)."""
    return "p-" + hashlib.sha1(json.dumps([title, text]).encode("ascii")).hexdigest()[:12]


def build_corpus(
    name: str, records: Iterable[Mapping[str, object]], *, split: bool = True, limit: int | None = None
) -> Corpus:
    """A Corpus from records with "text" and optional "title" / "id"; see the module docstring."""
    passages: list[Passage] = []
    seen_text: set[str] = set()
    seen_id: set[str] = set()
    for record in records:
        title = " ".join(clean_text(str(record.get("title") or "")).split())
        raw_id = record.get("id")
        raw_id = clean_text(str(raw_id)) if raw_id not in (None, "") else None
        text = clean_text(str(record.get("text") or ""))
        chunks = split_text(text) if split else [" ".join(text.split())]
        for n, chunk in enumerate(c for c in chunks if c):
            key = chunk.casefold()
            if key in seen_text:
                continue
            if raw_id is not None:
                pid = raw_id if len(chunks) == 1 else f"{raw_id}-{n}"
            else:
                pid = content_id(title, chunk)
            while pid in seen_id:  # a source with repeated ids: keep every passage addressable
                pid += "+"
            seen_text.add(key)
            seen_id.add(pid)
            passages.append(Passage(pid, title, chunk))
            if limit is not None and len(passages) >= limit:
                return Corpus(name, passages)
    return Corpus(name, passages)


def passages_from_text(text: str, title: str = "") -> list[dict[str, str]]:
    """Passages from text a person pasted: blank lines separate paragraphs, long ones are split."""
    if not isinstance(text, str):
        raise InvalidTypeError(f"text must be a string, not {type(text).__name__}")
    return [{"title": title, "text": chunk} for block in re.split(r"\n\s*\n", text) for chunk in split_text(block)]


# -- the bundled corpus and QA sets ------------------------------------------------------------------
@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: tuple[str, ...]
    passage_id: str
    style: str = "factoid"


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON-lines file; malformed lines are reported by number."""
    try:
        with open(path, encoding="utf-8") as f:
            return uploads.parse_json_lines(f, path.name)
    except OSError as exc:  # a QA-set directory named on the command line may lack the file
        raise CorpusError(
            f"{path.parent.name}/{path.name} cannot be read: {exc.strerror or type(exc).__name__}."
        ) from exc


def load_corpus_dir(directory: str | Path, *, name: str | None = None) -> Corpus:
    """A QA-set directory's passages.jsonl ({"id", "title", "text"}), kept whole (gold ids stay valid)."""
    directory = Path(directory)
    return build_corpus(name or directory.name, read_jsonl(directory / "passages.jsonl"), split=False)


def load_qa_set(directory: str | Path) -> list[QAItem]:
    """A QA-set directory's questions.jsonl: {"id", "question", "answers", "passage_id"[, "style"]}."""
    items = []
    for number, r in enumerate(read_jsonl(Path(directory) / "questions.jsonl"), start=1):
        missing = [key for key in ("id", "question", "passage_id") if key not in r]
        if missing:  # a hand-made QA set: name the line and the field instead of a KeyError
            raise CorpusError(f"questions.jsonl: question {number} has no {', '.join(missing)}.")
        answers = r.get("answers") or ([r["answer"]] if r.get("answer") else [])
        items.append(
            QAItem(str(r["id"]), r["question"], tuple(answers), str(r["passage_id"]), r.get("style", "factoid"))
        )
    return items


@dataclass(frozen=True)
class QASet:
    """Questions with their gold answers, named for display; `notes` say what was left out."""

    name: str
    items: tuple[QAItem, ...]
    notes: tuple[str, ...] = ()


QUESTION_COLUMNS = ("question", "query", "questions", "q")
ANSWER_COLUMNS = ("answers", "answer", "gold_answers", "gold_answer", "gold", "target")
PASSAGE_ID_COLUMNS = ("passage_id", "gold_passage_id", "gold_passage")
# Per uploaded QA set: 500 questions are ~70 s of question encoding for three full-size dense
# models in fp32 on 2 cores; more is a job for the command line.
MAX_QA_QUESTIONS = 500
MAX_QA_QUESTION_CHARS = 2000  # as the app's question box
MAX_QA_ANSWERS = 20  # gold answers per question
MAX_QA_ANSWER_CHARS = 500  # gold answers are short spans, not passages


def qa_from_file(
    path: str | Path,
    *,
    name: str | None = None,
    question_column: str | None = None,
    answer_column: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    limit: int = MAX_QA_QUESTIONS,
) -> QASet:
    """A QA set from an uploaded .jsonl/.json/.csv table with a question column and an answer column.

    Columns are found by name (QUESTION_COLUMNS, ANSWER_COLUMNS, any case) unless named; an "id"
    and a gold "passage_id" column are used when present. An answer is a string, a number, a
    list of them, or SQuAD's {"text": [...]}; in a CSV, "|" separates several answers. The file
    is read by the bounded readers of `uploads` (never `datasets`); questions without an answer
    are left out, and at most `limit` are kept (the set's notes say so). `name` is the visitor's
    file name, used in messages (never the server path). Raises CorpusError.
    """
    path = Path(path)
    shown = uploads.display_name(path, name)

    def choose(columns: list[str]) -> tuple[str, str, str | None, str | None]:
        question = _qa_column(columns, question_column, QUESTION_COLUMNS, "question", shown)
        answer = _qa_column(columns, answer_column, ANSWER_COLUMNS, "answer", shown)
        passage = _pick_column(columns, None, PASSAGE_ID_COLUMNS, "gold passage", required=False)
        return question, answer, "id" if "id" in columns else None, passage

    (question_col, answer_col, id_col, passage_col), rows = uploads.table_rows(path, shown, choose, max_bytes=max_bytes)
    csv_file = path.suffix.lower() == ".csv"
    items: list[QAItem] = []
    unanswered, cut = 0, False
    for number, (where, row) in enumerate(rows, start=1):
        question = qa_text(row.get(question_col), shown, where, question_col, MAX_QA_QUESTION_CHARS)
        if not question:
            raise CorpusError(f"{shown}: {where} has no question in the {question_col!r} column.")
        answers = qa_answers(row.get(answer_col), shown, where, answer_col, split_bars=csv_file)
        if not answers:
            unanswered += 1  # SQuAD 2.0 style unanswerable questions: nothing to find
            continue
        if len(items) == limit:
            cut = True
            break
        qid = qa_text(row.get(id_col), shown, where, id_col, 200) if id_col else ""
        passage_id = qa_text(row.get(passage_col), shown, where, passage_col, 200) if passage_col else ""
        items.append(QAItem(qid or f"q{number}", question, answers, passage_id))
    if not items:
        raise CorpusError(f"{shown} holds no question with an answer (columns {question_col!r} and {answer_col!r}).")
    notes = []
    if unanswered:
        notes.append(
            "1 question without an answer was left out"
            if unanswered == 1
            else f"{unanswered:,} questions without an answer were left out"
        )
    if cut:
        notes.append(f"only the first {limit:,} questions with an answer were kept")
    return QASet(shown, tuple(items), tuple(notes))


def _qa_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, shown: str) -> str:
    """The column named `wanted`, else the first of `candidates` present (any case); else an error
    that names the columns the file has."""
    try:
        found = _pick_column(columns, wanted, candidates, what, required=True)
    except CorpusError:
        listed = uploads.columns_for_message(columns)
        looked = f"{wanted!r}" if wanted else ", ".join(repr(c) for c in candidates)
        raise CorpusError(
            f"{shown}: no {what} column (looked for {looked}); its columns are {listed}. "
            f"A QA file needs a question column and an answer column, e.g. question,answer."
        ) from None
    assert found is not None  # required=True
    return found


def qa_text(value: object, shown: str, where: str, column: str, limit: int) -> str:
    """A question, answer or id value as stripped text: a string or a number, at most `limit` characters."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CorpusError(f"{shown}: {where} has {uploads.json_kind(value)} in the {column!r} column; use text.")
    text = " ".join(clean_text(str(value)).split())
    if len(text) > limit:
        raise CorpusError(
            f"{shown}: {where} has {len(text):,} characters in the {column!r} column; the limit is {limit:,}."
        )
    return text


def qa_answers(value: object, shown: str, where: str, column: str, *, split_bars: bool) -> tuple[str, ...]:
    """The gold answers of one row (empty ones dropped, duplicates once), at most MAX_QA_ANSWERS."""
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        value = value["text"]  # SQuAD's {"text": [...], "answer_start": [...]}
    if isinstance(value, str) and split_bars:
        value = value.split("|")
    values = value if isinstance(value, list) else [value]
    if len(values) > MAX_QA_ANSWERS:
        raise CorpusError(
            f"{shown}: {where} has {len(values):,} answers in the {column!r} column; the limit is {MAX_QA_ANSWERS}."
        )
    answers = (qa_text(v, shown, where, column, MAX_QA_ANSWER_CHARS) for v in values)
    return tuple(dict.fromkeys(a for a in answers if a))


def load_bundled_corpus() -> Corpus:
    """The corpus that ships in assets/corpus (original text, CC BY-SA 4.0; see the README)."""
    return load_corpus_dir(BUNDLED_DIR, name="bundled")


def load_bundled_questions() -> list[QAItem]:
    """The bundled QA set (read once per process: the app's examples and its evaluation share it)."""
    return list(_bundled_questions())


@functools.lru_cache(maxsize=1)
def _bundled_questions() -> tuple[QAItem, ...]:
    return tuple(load_qa_set(BUNDLED_DIR))


# -- uploads --------------------------------------------------------------------------------------
def corpus_from_file(
    path: str | Path,
    *,
    title_column: str | None = None,
    text_column: str | None = None,
    name: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    limit: int | None = None,
) -> Corpus:
    """A Corpus from a .jsonl/.json/.csv/.parquet table or a .txt/.md document.

    The file is read by the bounded readers of `uploads` (never by `datasets`, never globbed):
    see there for the limits. `name` is the visitor's file name, used for the corpus and in
    messages (the server path never is). At most `limit` passages are kept (MAX_UPLOAD_PASSAGES
    when None); when the file held more, the corpus name says how many were kept.
    Raises CorpusError with a message for the user on a bad file; nothing else changes.
    """
    path = Path(path)
    shown = uploads.display_name(path, name)
    records = uploads.upload_records(
        path, shown=shown, title_column=title_column, text_column=text_column, max_bytes=max_bytes
    )
    keep = uploads.MAX_UPLOAD_PASSAGES if limit is None else limit
    corpus = build_corpus(name or path.name, records, limit=keep + 1)  # one more tells whether some were cut
    if len(corpus) > keep:
        corpus = Corpus(f"{corpus.name} (first {keep:,} passages)", corpus.passages[:keep])
    if not len(corpus):
        raise CorpusError(f"{shown} holds no passages with text.")
    return corpus


# -- hub datasets ---------------------------------------------------------------------------------
# A hub repository id: "org/name", each part at most 96 characters (the hub's own limit).
HUB_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
HUB_NAME = re.compile(r"[\w.-]{1,64}")  # a config or split name


def check_hub_dataset_id(dataset: str) -> str:
    """`dataset` if it names a hub repository ("org/name"), else CorpusError.

    `datasets.load_dataset` also takes its packaged builders ("text", "json", "csv"...), which
    read files from the server's working directory, and local paths: a web visitor may name
    neither, so only the "org/name" form of a hub repository passes, and nothing that exists
    on this machine under that name."""
    if len(dataset) > 200 or not HUB_DATASET_ID.fullmatch(dataset) or ".." in dataset or "--" in dataset:
        shown = dataset if len(dataset) <= 80 else dataset[:77] + "..."
        raise CorpusError(
            f"{shown!r} is not a hub dataset id: give one in the form 'org/name', such as 'rajpurkar/squad'."
        )
    if Path(dataset).exists():
        raise CorpusError(
            f"{dataset!r} is not a hub dataset id; reading server paths is only possible from the command line."
        )
    return dataset


def corpus_from_hub(
    dataset: str,
    config: str | None = None,
    split: str = "train",
    *,
    title_column: str | None = None,
    text_column: str | None = None,
    max_passages: int = 10_000,
    allow_local: bool = False,
) -> Corpus:
    """A Corpus from a hub dataset (streamed, stopping at `max_passages` passages).

    A local path is refused unless `allow_local` (command line only): web visitors must not
    be able to make the server read its own files.
    """
    if not isinstance(dataset, str) or not dataset.strip():
        raise CorpusError("Give a dataset id such as 'org/name'.")
    if isinstance(max_passages, bool) or not isinstance(max_passages, int) or max_passages < 1:
        raise CorpusError(f"max_passages must be a whole number of at least 1, not {max_passages!r}.")
    dataset = dataset.strip()
    # The command line may read the machine's own files; everyone else names a hub repository.
    is_local = allow_local and (Path(dataset).expanduser().exists() or dataset.startswith((".", "/", "~")))
    if not is_local:
        check_hub_dataset_id(dataset)
    for what, value in (("config", config), ("split", split)):
        if value is not None and (not isinstance(value, str) or not HUB_NAME.fullmatch(value)):
            raise CorpusError(
                f"The {what} must be a name of letters, digits, '_', '-' or '.' (at most 64), such as 'train'."
            )
    if not is_local:
        unreachable = hub_unreachable()
        if unreachable:
            raise CorpusError(
                f"The dataset {dataset!r} cannot be loaded: {unreachable}. Hub datasets are streamed from the hub, "
                f"so on this server use the bundled corpus or upload a file; on a machine with hub access, "
                f"`hf download --repo-type dataset {dataset}` and pass the files to `python -m lfqa_demo ... "
                "--corpus FILE`."
            )
    from datasets import load_dataset

    try:
        rows = load_dataset(dataset, config, split=split, streaming=True)
        columns = list(rows.column_names or [])
        if not columns:  # some streamed datasets only know their columns after the first row
            columns = list(next(iter(rows)))
        text_col = _pick_column(columns, text_column, TEXT_COLUMNS, "text", required=True)
        title_col = _pick_column(columns, title_column, TITLE_COLUMNS, "title", required=False)
        id_col = "id" if "id" in columns else None
        records = (
            {
                "id": r.get(id_col) if id_col else None,
                "title": r.get(title_col, "") if title_col else "",
                "text": r[text_col],
            }
            for r in rows
        )
        corpus = build_corpus(f"{dataset}:{config or 'default'}:{split}", records, limit=max_passages)
    except CorpusError:
        raise
    except Exception as exc:
        raise CorpusError(
            f"Could not load the dataset {dataset!r} (config {config!r}, split {split!r}): "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    if not len(corpus):
        raise CorpusError(f"The dataset {dataset!r} gave no passages with text.")
    return corpus
