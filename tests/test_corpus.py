"""Corpora: splitting, ids, uploads in every format, hub datasets, and bad files."""

from __future__ import annotations

import json

import pytest

from lfqa_demo.retrieval.corpus import (
    CorpusError,
    build_corpus,
    corpus_from_file,
    corpus_from_hub,
    split_text,
)


def words(n: int, start: int = 0) -> str:
    """n distinct words in sentences of ten."""
    out = []
    for i in range(start, start + n):
        out.append(f"w{i}" + ("." if (i - start) % 10 == 9 else ""))
    return " ".join(out)


def test_split_text_keeps_short_texts_and_cuts_long_ones_at_sentences():
    assert split_text("  a  short\n text ") == ["a short text"]
    assert split_text("") == []
    chunks = split_text(words(1000))
    assert all(len(c.split()) <= 100 for c in chunks)
    assert " ".join(chunks).split() == words(1000).split()  # nothing lost, order kept
    assert all(c.endswith(".") for c in chunks)  # cut at sentence ends
    run_on = split_text("x " * 450)  # one 450-word "sentence"
    assert [len(c.split()) for c in run_on] == [100, 100, 100, 100, 50]


def test_build_corpus_ids_duplicates_and_empties():
    records = [
        {"id": "a", "title": "T", "text": "Alpha text."},
        {"id": "b", "title": "T", "text": "alpha   TEXT."},  # duplicate after normalisation
        {"title": "U", "text": "   "},  # empty
        {"title": "Long", "text": words(400)},
        {"title": "V", "text": "No id here."},
        {"id": "a", "title": "W", "text": "Same id, other text."},
    ]
    corpus = build_corpus("t", records)
    ids = [p.id for p in corpus]
    assert ids[0] == "a" and len(set(ids)) == len(ids)
    assert not any(p.text.lower() == "alpha text." for p in corpus.passages[1:])
    long = [p for p in corpus if p.title == "Long"]
    assert len(long) == 4 and all(p.id.startswith("p-") for p in long)
    again = build_corpus("t", records)
    assert [p.id for p in again] == ids and again.fingerprint == corpus.fingerprint  # stable
    assert build_corpus("t", records[:1]).fingerprint != corpus.fingerprint


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_upload_and_malformed_lines(tmp_path):
    good = write(
        tmp_path / "c.jsonl",
        "\n".join(json.dumps({"title": f"T{i}", "text": f"passage number {i}"}) for i in range(5)) + "\n",
    )
    corpus = corpus_from_file(good)
    assert len(corpus) == 5 and corpus[2].title == "T2" and corpus[2].text == "passage number 2"
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{not json}\n{"text": "ok2"}\n[1, 2]\n')
    with pytest.raises(CorpusError, match=r"line\(s\) 2, 4 "):
        corpus_from_file(bad)


def test_csv_with_column_mapping_and_missing_text_column(tmp_path):
    path = write(tmp_path / "c.csv", "heading,body,other\nFirst,the first body,x\nSecond,the second body,y\n")
    corpus = corpus_from_file(path)  # "heading" and "body" are recognised
    assert [(p.title, p.text) for p in corpus] == [("First", "the first body"), ("Second", "the second body")]
    mapped = corpus_from_file(path, title_column="other", text_column="body")
    assert mapped[0].title == "x"
    odd = write(tmp_path / "odd.csv", "a,b\n1,2\n")
    with pytest.raises(CorpusError, match=r"No text column.*\['a', 'b'\]"):
        corpus_from_file(odd)
    with pytest.raises(CorpusError, match="'nope' is not in the file"):
        corpus_from_file(path, text_column="nope")


def test_parquet_upload(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["x1", "x2"], "title": ["A", "B"], "text": ["alpha words", "beta words"]}), path)
    corpus = corpus_from_file(path)
    assert [p.id for p in corpus] == ["x1", "x2"]


def test_markdown_upload_uses_headings_as_titles(tmp_path):
    path = write(
        tmp_path / "notes.md",
        "# Rivers\n\nThe Nile is long.\n\n## Deltas\n\nA delta forms\nat a mouth.\n\nMore on deltas.\n",
    )
    corpus = corpus_from_file(path)
    assert [(p.title, p.text) for p in corpus] == [
        ("Rivers", "The Nile is long."),
        ("Deltas", "A delta forms at a mouth."),
        ("Deltas", "More on deltas."),
    ]
    plain = corpus_from_file(write(tmp_path / "plain.txt", "just one paragraph"))
    assert plain[0].title == "plain"


def test_bad_files(tmp_path):
    with pytest.raises(CorpusError, match="binary"):
        corpus_from_file(tmp_path.joinpath("b.jsonl").write_bytes(b"\x00\x01\x02 binary") and tmp_path / "b.jsonl")
    with pytest.raises(CorpusError, match="not a Parquet file"):
        corpus_from_file(write(tmp_path / "fake.parquet", "hello"))
    with pytest.raises(CorpusError, match="unsupported file type .exe"):
        corpus_from_file(write(tmp_path / "x.exe", "hi"))
    with pytest.raises(CorpusError, match="limit is 1 MB"):
        corpus_from_file(write(tmp_path / "big.txt", "word " * 300_000), max_bytes=1_000_000)
    with pytest.raises(CorpusError, match="no passages"):
        corpus_from_file(write(tmp_path / "blank.jsonl", '{"text": ""}\n{"text": "  "}\n'))
    with pytest.raises(CorpusError, match="is empty"):
        corpus_from_file(write(tmp_path / "empty.csv", ""))


def test_hub_dataset_streams_with_a_cap_and_refuses_server_paths(tmp_path):
    data = tmp_path / "my_dataset"
    data.mkdir()
    write(
        data / "train.jsonl",
        "\n".join(json.dumps({"title": f"T{i}", "text": words(30, 100 * i)}) for i in range(50)) + "\n",
    )
    for local in (str(data), "../etc", "text", "json", "csv", "tests/fixtures"):
        with pytest.raises(CorpusError, match="not a hub dataset id"):
            corpus_from_hub(local, split="test")
    corpus = corpus_from_hub(str(data), split="train", max_passages=7, allow_local=True)
    assert len(corpus) == 7 and corpus[0].title == "T0"


def test_hub_dataset_offline_gives_a_clear_error_at_once(monkeypatch):
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: pytest.fail("datasets must not be asked when the hub is offline")
    )
    with pytest.raises(
        CorpusError, match="'someone/missing-dataset' cannot be loaded: HF_HUB_OFFLINE is set.*upload a file"
    ):
        corpus_from_hub("someone/missing-dataset")


def test_hub_dataset_fails_fast_when_the_hub_cannot_be_reached(monkeypatch):
    """Offline without HF_HUB_OFFLINE, `datasets` retried for 23-26 s; one probe answers at once."""
    import socket

    import datasets
    from huggingface_hub import constants

    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: pytest.fail("datasets must not be asked when the hub is unreachable")
    )
    with pytest.raises(CorpusError, match=r"'someone/missing-dataset' cannot be loaded: the hub .* cannot be reached"):
        corpus_from_hub("someone/missing-dataset")


def test_bundled_corpus_and_questions_meet_the_design():
    from lfqa_demo.retrieval.corpus import load_bundled_corpus, load_bundled_questions

    corpus = load_bundled_corpus()
    questions = load_bundled_questions()
    assert len(corpus) >= 500 and len({p.title for p in corpus}) >= 50
    assert all(p.title and 40 <= len(p.text.split()) <= 150 for p in corpus)
    by_id = {p.id: p for p in corpus}
    assert len(by_id) == len(corpus)
    assert {p.id.split("-")[0] for p in corpus} == {
        "science",
        "history",
        "geography",
        "technology",
        "arts",
        "sporthealth",
    }
    assert len(questions) >= 150 and len({q.question for q in questions}) == len(questions)
    eli5 = sum(q.style == "eli5" for q in questions)
    assert 0.28 <= eli5 / len(questions) <= 0.4
    for q in questions:
        assert q.answers and all(a in by_id[q.passage_id].text for a in q.answers), q.id
