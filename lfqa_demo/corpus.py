"""Passage corpora: the bundled one, uploaded files and hub datasets, all as `Corpus`.

Long texts are split into passages of about 100 words that keep their title, as the
wiki_dpr passages of DPR and RAG are; empty and duplicate passages are dropped, and every
passage gets a stable id (the source's id, or a hash of its title and text).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .errors import CorpusError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_DIR = ASSETS / "corpus"
SPLIT_ABOVE_WORDS = 150  # texts longer than this are split...
PASSAGE_WORDS = 100  # ...into passages of about this many words
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt", ".md")
TEXT_COLUMNS = ("text", "passage", "content", "body", "context", "document", "paragraph")
TITLE_COLUMNS = ("title", "heading", "name", "subject")


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "text": self.text}


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
        """sha256 over ids, titles and texts: equal fingerprints, equal corpora (and indexes)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for p in self.passages:
                for part in (p.id, p.title, p.text):
                    h.update(part.encode("utf-8"))
                    h.update(b"\0")
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def as_dicts(self) -> list[dict[str, str]]:
        return [p.as_dict() for p in self.passages]


# -- building passages ----------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def split_text(text: str, words: int = PASSAGE_WORDS, split_above: int = SPLIT_ABOVE_WORDS) -> list[str]:
    """Whitespace-normalised text, cut into chunks of about `words` words at sentence ends
    when it has more than `split_above` words (a sentence longer than a chunk is cut by words)."""
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
    return "p-" + hashlib.sha1(f"{title}\0{text}".encode("utf-8")).hexdigest()[:12]


def build_corpus(name: str, records: Iterable[Mapping[str, object]], *, split: bool = True, limit: int | None = None) -> Corpus:
    """A Corpus from records with "text" and optional "title" / "id"; see the module docstring."""
    passages: list[Passage] = []
    seen_text: set[str] = set()
    seen_id: set[str] = set()
    for record in records:
        title = " ".join(str(record.get("title") or "").split())
        raw_id = record.get("id")
        chunks = split_text(str(record.get("text") or "")) if split else [" ".join(str(record.get("text") or "").split())]
        for n, chunk in enumerate(c for c in chunks if c):
            key = chunk.casefold()
            if key in seen_text:
                continue
            if raw_id not in (None, ""):
                pid = str(raw_id) if len(chunks) == 1 else f"{raw_id}-{n}"
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
        raise TypeError(f"text must be a string, not {type(text).__name__}")
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
    records, bad = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                bad.append(number)
                continue
            if not isinstance(value, dict):
                bad.append(number)
                continue
            records.append(value)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise CorpusError(f"{path.name}: line(s) {shown} are not JSON objects; fix or remove them.")
    return records


def load_corpus_dir(directory: str | Path, *, name: str | None = None) -> Corpus:
    """A QA-set directory's passages.jsonl ({"id", "title", "text"}), kept whole (gold ids stay valid)."""
    directory = Path(directory)
    return build_corpus(name or directory.name, read_jsonl(directory / "passages.jsonl"), split=False)


def load_qa_set(directory: str | Path) -> list[QAItem]:
    """A QA-set directory's questions.jsonl: {"id", "question", "answers", "passage_id"[, "style"]}."""
    items = []
    for r in read_jsonl(Path(directory) / "questions.jsonl"):
        answers = r.get("answers") or ([r["answer"]] if r.get("answer") else [])
        items.append(QAItem(str(r["id"]), r["question"], tuple(answers), str(r["passage_id"]), r.get("style", "factoid")))
    return items


def load_bundled_corpus() -> Corpus:
    """The corpus that ships in assets/corpus (original text, CC BY-SA 4.0; see the README)."""
    return load_corpus_dir(BUNDLED_DIR, name="bundled")


def load_bundled_questions() -> list[QAItem]:
    return load_qa_set(BUNDLED_DIR)


# -- uploads --------------------------------------------------------------------------------------
def _pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, required: bool) -> str | None:
    if wanted:
        if wanted not in columns:
            raise CorpusError(f"The {what} column {wanted!r} is not in the file; its columns are {columns}.")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for c in candidates:
        if c in lowered:
            return lowered[c]
    if required:
        raise CorpusError(f"No {what} column found (looked for {list(candidates)}); the file's columns are {columns}. Name the column to use.")
    return None


def _check_file(path: Path, max_bytes: int) -> str:
    suffix = path.suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise CorpusError(f"{path.name}: unsupported file type {suffix or '(none)'}; use one of {', '.join(UPLOAD_SUFFIXES)}.")
    size = path.stat().st_size
    if size > max_bytes:
        raise CorpusError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if size == 0:
        raise CorpusError(f"{path.name} is empty.")
    head = path.read_bytes()[:8192]
    if suffix == ".parquet":
        if not head.startswith(b"PAR1"):
            raise CorpusError(f"{path.name} is not a Parquet file.")
    elif b"\0" in head:
        raise CorpusError(f"{path.name} looks like a binary file, not {suffix} text.")
    else:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not merely a character cut at the 8 KiB boundary
                raise CorpusError(f"{path.name} is not UTF-8 text.") from exc
    return suffix


def _markdown_records(text: str, default_title: str) -> list[dict[str, str]]:
    """Paragraphs of a text/Markdown document; a '# heading' titles the paragraphs under it."""
    records, title = [], default_title
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip().splitlines()
        while lines and lines[0].lstrip().startswith("#"):
            title = lines.pop(0).lstrip("# ").strip() or title
        if lines:
            records.append({"title": title, "text": " ".join(lines)})
    return records


def corpus_from_file(
    path: str | Path,
    *,
    title_column: str | None = None,
    text_column: str | None = None,
    name: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    limit: int | None = None,
) -> Corpus:
    """A Corpus from a .jsonl/.json/.csv/.parquet table or a .txt/.md document (loaded with `datasets`).

    Raises CorpusError with a message for the user on a bad file; nothing else changes.
    """
    path = Path(path)
    suffix = _check_file(path, max_bytes)
    name = name or path.name
    if suffix in (".txt", ".md"):
        records = _markdown_records(path.read_text(encoding="utf-8", errors="replace"), path.stem)
    else:
        if suffix == ".jsonl":
            read_jsonl(path)  # malformed lines are reported by number before datasets sees them
        records = _table_records(path, suffix, title_column, text_column)
    corpus = build_corpus(name, records, limit=limit)
    if not len(corpus):
        raise CorpusError(f"{path.name} holds no passages with text.")
    return corpus


def _table_records(path: Path, suffix: str, title_column: str | None, text_column: str | None) -> list[dict]:
    from datasets import Dataset

    loader = {".jsonl": Dataset.from_json, ".json": Dataset.from_json, ".csv": Dataset.from_csv, ".parquet": Dataset.from_parquet}[suffix]
    with tempfile.TemporaryDirectory(prefix="lfqa-upload-") as cache:  # no trace left in the datasets cache
        try:
            table = loader(str(path), cache_dir=cache, keep_in_memory=True)
        except Exception as exc:  # pyarrow / pandas parse errors
            raise CorpusError(f"{path.name} could not be read as {suffix[1:]}: {str(exc).splitlines()[0][:300]}") from exc
        columns = list(table.column_names)
        text_col = _pick_column(columns, text_column, TEXT_COLUMNS, "text", required=True)
        title_col = _pick_column(columns, title_column, TITLE_COLUMNS, "title", required=False)
        id_col = "id" if "id" in columns else None
        return [
            {"id": row.get(id_col) if id_col else None, "title": row.get(title_col) if title_col else "", "text": row[text_col]}
            for row in table
        ]


# -- hub datasets ---------------------------------------------------------------------------------
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
    dataset = dataset.strip()
    looks_local = dataset.startswith((".", "/", "~", "\\")) or Path(dataset).expanduser().exists() or ".." in dataset
    if looks_local and not allow_local:
        raise CorpusError(f"{dataset!r} is not a hub dataset id; reading server paths is only possible from the command line.")
    if not re.fullmatch(r"[\w.\-/~]+", dataset):
        raise CorpusError(f"{dataset!r} is not a valid dataset id.")
    from datasets import load_dataset

    try:
        rows = load_dataset(dataset, config, split=split, streaming=True)
        columns = list(rows.column_names or [])
        if not columns:  # some streamed datasets only know their columns after the first row
            columns = list(next(iter(rows)))
        text_col = _pick_column(columns, text_column, TEXT_COLUMNS, "text", required=True)
        title_col = _pick_column(columns, title_column, TITLE_COLUMNS, "title", required=False)
        id_col = "id" if "id" in columns else None
        records = ({"id": r.get(id_col) if id_col else None, "title": r.get(title_col, "") if title_col else "", "text": r[text_col]} for r in rows)
        corpus = build_corpus(f"{dataset}:{config or 'default'}:{split}", records, limit=max_passages)
    except CorpusError:
        raise
    except Exception as exc:
        raise CorpusError(f"Could not load the dataset {dataset!r} (config {config!r}, split {split!r}): {type(exc).__name__}: {str(exc)[:300]}") from exc
    if not len(corpus):
        raise CorpusError(f"The dataset {dataset!r} gave no passages with text.")
    return corpus
