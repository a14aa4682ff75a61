"""Uploads against hostile files: every bound of `lfqa_demo.retrieval.uploads`, and the reproductions of the
security review (deep JSON, a dictionary-encoded Parquet bomb, file names with brackets).

Hostile files are built here under tmp_path, never committed.
"""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys
import textwrap

import pytest

from lfqa_demo.retrieval import uploads
from lfqa_demo.retrieval.corpus import CorpusError, corpus_from_file, read_jsonl
from lfqa_demo.retrieval.uploads import json_nesting

TEXT = "The Normans built castles across England after the conquest of 1066. " * 8  # ~570 characters


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path, n, start=0):
    return write(
        path,
        "".join(
            json.dumps({"title": f"T{i}", "text": f"passage number {i} about rivers"}) + "\n"
            for i in range(start, start + n)
        ),
    )


def parquet(path, columns, **kwargs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path, **kwargs)
    return path


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the review's reproductions -----------------------------------------------------------------------
def test_json_nested_10000_deep_is_refused_before_parsing(tmp_path, monkeypatch):
    d = 10000
    path = write(tmp_path / "n.json", '{"text": ' + "[" * d + "]" * d + "}")  # segfaulted libarrow
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed before the depth check"))
    with pytest.raises(CorpusError, match=r"n\.json nests arrays or objects 10,001 deep; the limit is 20"):
        corpus_from_file(path)


def test_jsonl_nested_100000_deep_is_refused(tmp_path):
    d = 100000
    path = write(tmp_path / "n.jsonl", '{"text": ' + "[" * d + "]" * d + "}\n")  # was an uncaught RecursionError
    with pytest.raises(CorpusError, match=r"100,001 deep; the limit is 20"):
        corpus_from_file(path)


def test_dictionary_encoded_parquet_bomb_is_refused_from_metadata(tmp_path):
    """8 million dictionary-encoded copies of one text, zstd: 4.9 GB and 242 s through `datasets`."""
    path = tmp_path / "bomb.parquet"
    # Built in a child process, so that building it does not raise this process's peak memory.
    script = f"""
        import pyarrow as pa, pyarrow.parquet as pq
        text = {TEXT!r}
        column = pa.DictionaryArray.from_arrays([0] * 8_000_000, [text])
        pq.write_table(pa.table({{"text": column}}), {str(path)!r}, compression="zstd")
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=120)
    assert path.stat().st_size < 2_000_000
    import pyarrow.parquet  # noqa: F401 (imported before measuring: loading the library is not parsing)

    before = max_rss_mb()
    with pytest.raises(CorpusError, match=r"bomb\.parquet has 8,000,000 rows; the limit is 200,000"):
        corpus_from_file(path)
    grown = max_rss_mb() - before
    print(f"\npeak RSS before {before:.0f} MB, after {before + grown:.0f} MB: grew {grown:.1f} MB")
    assert grown < 200


@pytest.mark.parametrize(
    "name, decoy",
    [("x[1].jsonl", "x1.jsonl"), ("[x].csv", "x.csv"), ("[x].parquet", "x.parquet"), ("a*b?.json", "aab1.json")],
)
def test_file_names_are_never_patterns(tmp_path, name, decoy):
    path = tmp_path / name
    rows = [{"title": f"T{i}", "text": f"passage number {i}"} for i in range(3)]
    if name.endswith(".jsonl"):
        write(path, "".join(json.dumps(r) + "\n" for r in rows))
    elif name.endswith(".json"):
        write(path, json.dumps(rows))
    elif name.endswith(".csv"):
        write(path, "title,text\n" + "".join(f"{r['title']},{r['text']}\n" for r in rows))
    else:
        parquet(path, {"title": [r["title"] for r in rows], "text": [r["text"] for r in rows]})
    (tmp_path / decoy).write_text("decoy")  # what the name would match as a glob pattern
    corpus = corpus_from_file(path)
    assert len(corpus) == 3 and [p.title for p in corpus] == ["T0", "T1", "T2"] and corpus.name == name


# -- JSON ---------------------------------------------------------------------------------------------
def test_json_nesting_scan_ignores_strings_and_starts_each_line_afresh():
    assert json_nesting(b'{"a": "[[[{{{", "b\\"[": ["\\\\", [1]]}', per_line=False) == (3, 3)
    assert json_nesting(b'[[[\n{"x": 1}\n', per_line=True).depth == 3  # the broken line does not deepen the next
    assert json_nesting(b'"unclosed [\n[[1]]\n', per_line=True) == (2, 2)
    assert json_nesting(b"", per_line=True) == (0, 0)


def test_json_shapes_that_are_accepted(tmp_path):
    rows = [{"title": "A", "text": "alpha words"}, {"title": "B", "text": "beta words"}]
    shapes = {
        "list.json": rows,
        "wrapped.json": {"data": rows},
        "columns.json": {"title": ["A", "B"], "text": ["alpha words", "beta words"]},
    }
    for name, value in shapes.items():
        corpus = corpus_from_file(write(tmp_path / name, json.dumps(value)))
        assert [(p.title, p.text) for p in corpus] == [("A", "alpha words"), ("B", "beta words")], name
    lines = corpus_from_file(
        write(tmp_path / "lines.json", "".join(json.dumps(r) + "\n" for r in rows))
    )  # JSON lines named .json
    assert [p.title for p in lines] == ["A", "B"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"just a string"', "odd.json is a string; a .json upload must be"),
        ("null", "odd.json is null; a .json upload must be"),
        ("[1, 2]", "item 1 is a number, not an object"),
        ('{"version": 1, "data": [{"text": "x"}]}', "is an object with keys \\['version', 'data'\\]"),
        ('{"text": ["a", "b"], "title": ["A"]}', "must be of equal length"),
        ('{"text": "a single record"}', "is an object with keys"),
    ],
)
def test_json_shapes_that_are_refused_say_which_are_accepted(tmp_path, value, expected):
    with pytest.raises(CorpusError, match=expected) as caught:
        corpus_from_file(write(tmp_path / "odd.json", value))
    if "equal length" not in expected:
        assert "list of objects" in str(caught.value) and '{"data": [...]}' in str(caught.value)


def test_values_must_be_strings_or_numbers(tmp_path):
    with pytest.raises(CorpusError, match=r"item 2 has an object in the 'text' column; .* strings or numbers"):
        corpus_from_file(write(tmp_path / "t.json", json.dumps([{"text": "fine"}, {"text": {"nested": 1}}])))
    with pytest.raises(CorpusError, match=r"line 3 has a list in the 'title' column"):
        corpus_from_file(write(tmp_path / "t.jsonl", '{"text": "a"}\n\n{"text": "b", "title": ["x"]}\n'))
    numbers = corpus_from_file(write(tmp_path / "n.jsonl", '{"id": 7, "title": 2024, "text": 3.5}\n'))
    assert (numbers[0].id, numbers[0].title, numbers[0].text) == ("7", "2024", "3.5")


def test_malformed_json_lines_are_reported_by_number(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"text": [\n{"text": "ok"}\n{"text": "ok2"\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl: line\(s\) 1, 3 are not JSON objects"):
        corpus_from_file(path)
    with pytest.raises(CorpusError, match=r"line\(s\) 1, 3 "):
        read_jsonl(path)  # the same reader for the bundled corpus


def test_json_container_and_row_caps(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_JSON_CONTAINERS", 1_000)
    with pytest.raises(CorpusError, match="holds 2,001 JSON objects and arrays; the limit is 1,000"):
        corpus_from_file(write(tmp_path / "many.json", "[" + ",".join(['{"text": "x"}'] * 2000) + "]"))
    monkeypatch.setattr(uploads, "MAX_ROWS", 10)
    with pytest.raises(CorpusError, match="has 11 rows; the limit is 10"):
        corpus_from_file(write(tmp_path / "rows.json", json.dumps({"text": [f"t{i}" for i in range(11)]})))
    with pytest.raises(CorpusError, match="has 11 rows; the limit is 10"):
        corpus_from_file(jsonl(tmp_path / "rows.jsonl", 11))
    assert len(corpus_from_file(jsonl(tmp_path / "ten.jsonl", 10))) == 10


# -- CSV ----------------------------------------------------------------------------------------------
def test_csv_with_a_huge_field_is_refused_and_the_csv_limit_is_left_alone(tmp_path):
    limit_before = csv.field_size_limit()
    path = write(tmp_path / "huge.csv", "title,text\nA,short\nB," + "x" * (uploads.MAX_TEXT_CHARS + 10) + "\n")
    with pytest.raises(CorpusError, match=r"huge\.csv: a value near line 3 is longer than 1,000,000 characters"):
        corpus_from_file(path)
    assert csv.field_size_limit() == limit_before
    big = write(
        tmp_path / "big.csv", "title,text\nA," + " ".join(f"w{i}" for i in range(100_000)) + "\n"
    )  # 589,000 characters: over csv's default
    assert len(corpus_from_file(big)) == 1000  # 100,000 words in passages of 100
    assert csv.field_size_limit() == limit_before


def test_too_many_columns(tmp_path):
    header = ",".join(["text"] + [f"c{i}" for i in range(1000)])
    with pytest.raises(CorpusError, match=r"wide\.csv has 1,001 columns; the limit is 1,000"):
        corpus_from_file(write(tmp_path / "wide.csv", header + "\n" + "hello" + "," * 1000 + "\n"))
    with pytest.raises(CorpusError, match="more than 1,000 different keys"):
        corpus_from_file(
            write(tmp_path / "wide.jsonl", "".join(json.dumps({"text": "t", f"k{i}": 1}) + "\n" for i in range(1001)))
        )
    with pytest.raises(CorpusError, match=r"wide\.parquet has 1,001 columns"):
        corpus_from_file(parquet(tmp_path / "wide.parquet", {"text": ["t"], **{f"c{i}": [i] for i in range(1000)}}))


def test_csv_rows_and_lines(tmp_path, monkeypatch):
    with pytest.raises(CorpusError, match=r"line 3 has 3 values but the header names 2 columns"):
        corpus_from_file(write(tmp_path / "extra.csv", "title,text\nA,alpha\nB,beta,gamma\n"))
    quoted = corpus_from_file(write(tmp_path / "quoted.csv", 'title,text\n"A, the first","two\nlines"\n\nB,\n'))
    assert [(p.title, p.text) for p in quoted] == [("A, the first", "two lines")]  # B has no text
    monkeypatch.setattr(uploads, "MAX_ROWS", 2)
    with pytest.raises(CorpusError, match="more than 2 rows"):
        corpus_from_file(write(tmp_path / "rows.csv", "text\na\nb\nc\n"))


def test_unicode_and_byte_order_marks(tmp_path):
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes("\ufefftitel,title,text\nx,Zürich,Ünïcödé — 東京 ✓\n".encode("utf-8"))
    corpus = corpus_from_file(csv_path)
    assert (corpus[0].title, corpus[0].text) == ("Zürich", "Ünïcödé — 東京 ✓")
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes(
        "\ufeff".encode() + json.dumps({"title": "東京", "text": '["quoted"] 🙂'}, ensure_ascii=False).encode()
    )
    assert [(p.title, p.text) for p in corpus_from_file(jsonl_path)] == [("東京", '["quoted"] 🙂')]
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text\n".encode() + "café ".encode("latin-1") * 10)
    with pytest.raises(CorpusError, match=r"latin1\.csv is not UTF-8 text.*save it as UTF-8"):
        corpus_from_file(latin1)


# -- Parquet ------------------------------------------------------------------------------------------
def test_parquet_of_a_few_hundred_rows_loads(tmp_path):
    n = 300
    path = parquet(
        tmp_path / "ok.parquet",
        {
            "id": [f"p{i}" for i in range(n)],
            "heading": [f"H{i % 7}" for i in range(n)],
            "text": [f"passage {i} about the rivers of Europe" for i in range(n)],
            "score": list(range(n)),
        },
        row_group_size=64,
    )
    corpus = corpus_from_file(path)
    assert (
        len(corpus) == n
        and corpus[299].id == "p299"
        and corpus[8].title == "H1"
        and corpus[5].text.startswith("passage 5 ")
    )


def test_parquet_text_column_of_numbers_is_refused(tmp_path):
    path = parquet(tmp_path / "ints.parquet", {"title": ["a", "b"], "text": [1, 2]})
    with pytest.raises(CorpusError, match=r"the text column 'text' holds int64 values; it must hold strings"):
        corpus_from_file(path)
    listy = parquet(tmp_path / "lists.parquet", {"text": ["a", "b"], "title": [["x"], ["y"]]})
    with pytest.raises(
        CorpusError,
        match=r"the title column 'title' holds list<element: string> values; it must hold strings or numbers",
    ):
        corpus_from_file(listy)


@pytest.mark.parametrize("dictionary", [True, False])
def test_parquet_whose_decoded_text_is_over_the_cap_is_refused_before_decoding(tmp_path, monkeypatch, dictionary):
    import pyarrow as pa

    rows = 20_000  # within MAX_ROWS, but 20,000 x 570 characters = 11 MB of text
    column = pa.DictionaryArray.from_arrays([0] * rows, [TEXT]) if dictionary else pa.array([TEXT] * rows)
    path = parquet(tmp_path / "wide.parquet", {"text": column}, compression="zstd")
    monkeypatch.setattr(uploads, "MAX_DECODED_CHARS", 5_000_000)
    decoded, checked_records = [], uploads.checked_records

    def counted(rows, *args):  # count the rows that were turned into Python values
        return checked_records((decoded.append(row) or row for row in rows), *args)

    monkeypatch.setattr(uploads, "checked_records", counted)
    with pytest.raises(CorpusError, match=r"wide\.parquet holds more than 5,000,000 characters of text"):
        corpus_from_file(path)
    assert len(decoded) < 5_000_000 / len(TEXT)  # refused before the batch that crosses the cap was decoded


def test_parquet_value_over_the_per_value_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_TEXT_CHARS", 1_000)
    path = parquet(tmp_path / "long.parquet", {"text": ["short", "y" * 1_001]})
    with pytest.raises(
        CorpusError, match=r"a value in the 'text' column near row 1 is 1,001 bytes long; the limit is 1,000"
    ):
        corpus_from_file(path)


def test_parquet_compression_bomb_is_refused_from_metadata(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_PARQUET_DATA_BYTES", 1_000_000)
    path = parquet(tmp_path / "zeros.parquet", {"text": ["a" * 2_000_000]}, compression="zstd", use_dictionary=False)
    assert path.stat().st_size < 10_000
    with pytest.raises(CorpusError, match=r"zeros.parquet takes 2 MB uncompressed; the limit is 1 MB"):
        corpus_from_file(path)


def test_broken_parquet_message_names_the_visitors_file_not_the_server_path(tmp_path):
    path = tmp_path / "upload-1234.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 100 + b"PAR1")
    with pytest.raises(CorpusError) as caught:
        corpus_from_file(path, name="C:\\Users\\me\\notes.parquet")
    message = str(caught.value)
    assert (
        message.startswith("notes.parquet could not be read as Parquet")
        and str(tmp_path) not in message
        and "upload-1234" not in message
    )


# -- the passage cap and names ------------------------------------------------------------------------
def test_passage_cap_cuts_and_says_how_many_were_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_PASSAGES", 5)
    path = jsonl(tmp_path / "server-temp-name.jsonl", 12)
    corpus = corpus_from_file(path, name="notes.jsonl")
    assert len(corpus) == 5 and corpus.name == "notes.jsonl (first 5 passages)" and corpus[4].title == "T4"
    exact = corpus_from_file(jsonl(tmp_path / "five.jsonl", 5))
    assert len(exact) == 5 and exact.name == "five.jsonl"
    assert len(corpus_from_file(path, limit=8)) == 8  # an explicit limit (the command line) is the caller's choice


def test_messages_use_the_visitors_file_name(tmp_path):
    path = write(tmp_path / "tmpab12cd.csv", "a,b\n1,2\n")
    with pytest.raises(CorpusError) as caught:
        corpus_from_file(path, name="my data.csv")
    assert "tmpab12cd" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    with pytest.raises(CorpusError, match=r"^my notes\.jsonl holds no passages"):
        corpus_from_file(write(tmp_path / "tmp1.jsonl", '{"text": ""}\n'), name="/home/visitor/my notes.jsonl")


def test_a_parquet_column_with_a_dot_in_its_name_is_still_bounded(tmp_path):
    """Columns were matched to the metadata by the first part of their path: "t.x" escaped the
    uncompressed-size check and a 13 KB file cost 1.2 GB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dot.parquet"
    pq.write_table(
        pa.table({"t.x": ["a" * 80_000_000], "title": ["x"]}), path, compression="zstd", use_dictionary=False
    )
    assert path.stat().st_size < 200_000
    with pytest.raises(CorpusError, match="uncompressed"):
        corpus_from_file(path, text_column="t.x")


def test_a_text_file_of_millions_of_paragraphs_is_refused(tmp_path):
    path = tmp_path / "b.txt"
    path.write_bytes(b"a\n\n" * 300_000)
    with pytest.raises(CorpusError, match="more than 200,000 paragraphs"):
        corpus_from_file(path)
