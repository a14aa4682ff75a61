"""DPR's retrieval accuracy on an NQ-open-layout QA set: the answer matching (DPR's `has_answer`,
answer_match.py) on its edge cases and against a direct implementation of DPR's loop, the bounded
Parquet reader, the hub path cache first and offline, and `python -m lfqa_demo evaluate` end to end
with BM25 on a generated set whose recall is known by construction (tools/nq_open_set.py)."""

from __future__ import annotations

import random
import shutil
import time
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lfqa_demo import __main__ as cli
from lfqa_demo.answer_match import answer_spans, dpr_tokens, has_answer
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import CorpusError
from lfqa_demo.evaluation import clear_evaluation_cache, evaluate_retriever
from lfqa_demo.retrieval.corpus import corpus_from_file
from lfqa_demo.retrieval.nq_open import NQ_OPEN, open_qa_set, qa_from_parquet
from tools.nq_open_set import QA_FILE, RANKS, write_planted_set

NFC, NFD = (lambda s: unicodedata.normalize("NFC", s)), (lambda s: unicodedata.normalize("NFD", s))
COMMIT = "5dd9790a83002ad084ddeb7c420dc716852c6f28"  # any 40 hex digits: the cache's snapshot folder


# -- the matching: DPR's has_answer, match_type "string" ---------------------------------------------
@pytest.mark.parametrize(
    ("passage", "answer", "found"),
    [
        # Articles and punctuation are kept (SQuAD's normalisation is for reader exact match only).
        ("The Beatles were a band", "The Beatles", True),
        ("Beatles were a band", "The Beatles", False),
        ("The Beatles were a band", "Beatles", True),
        # Punctuation marks are tokens of their own: "U.S" (u . s) is inside "U.S." (u . s .).
        ("the U.S. army", "U.S.", True),
        ("the U.S. army", "U.S", True),
        ("the U.S army", "U.S.", False),
        ("the US army", "U.S.", False),
        ("in Paris, France", "Paris", True),
        # Unicode: NFD on both sides, accents are kept.
        (NFD("Beyoncé sang"), NFC("Beyoncé"), True),
        (NFC("Beyoncé sang"), NFD("Beyoncé"), True),
        (NFC("a café"), NFD("café"), True),
        (NFC("a café"), "cafe", False),
        (NFD("a cafe"), NFC("café"), False),
        # Any case; any spacing (spaces and line breaks are not tokens).
        ("Paris is the capital", "PARIS", True),
        ("New\n  York", "new york", True),
        # Whole tokens only: an answer that is part of a word is not found.
        ("a party", "art", False),
        ("a party; art", "art", True),
        ("Artful", "art", False),
        # Numbers: "1,000" is 1 , 000.
        ("it cost 1,000 dollars", "1,000", True),
        ("it cost 11,000 dollars", "1,000", False),
        ("it cost 1,000 dollars", "1000", False),
        ("it cost 1000 dollars", "1,000", False),
        # An answer without tokens matches nothing (DPR's loop would match every passage).
        ("any passage", "", False),
        ("any passage", " \n ", False),
    ],
)
def test_has_answer_follows_dpr(passage, answer, found):
    assert has_answer(passage, [answer]) is found
    spans = answer_spans(passage, [answer])
    assert bool(spans) is found  # the highlighter finds exactly what the matcher does


def test_tokens_are_dprs():
    assert dpr_tokens("U.S.") == ["u", ".", "s", "."]
    assert dpr_tokens("1,000") == ["1", ",", "000"]
    assert dpr_tokens("party's") == ["party", "'", "s"]
    assert dpr_tokens(NFC("Beyoncé")) == [NFD("beyoncé")]  # the combining accent stays in the token
    assert dpr_tokens(" \t\n") == [] and dpr_tokens("") == []
    # Lower-cased per token: a final sigma is final at a token's end.
    assert dpr_tokens("ΟΔΟΣ.") == ["ΟΔΟΣ".lower(), "."] == ["οδος", "."]


def test_several_answers_any_one_is_enough():
    assert has_answer("the Eiffel Tower", ["Statue", "eiffel tower"])
    assert not has_answer("the Eiffel Tower", ["Statue", "tower eiffel"])
    assert not has_answer("the Eiffel Tower", [])


def reference_tokens(text: str) -> list[str]:
    """DPR's SimpleTokenizer written out character by character from the Unicode categories:
    a run of L/N/M characters is one token; any other character outside Z/C is a token alone."""
    tokens, run = [], ""
    for char in unicodedata.normalize("NFD", text):
        kind = unicodedata.category(char)[0]
        if kind in "LNM":
            run += char
            continue
        if run:
            tokens.append(run)
            run = ""
        if kind not in "ZC":
            tokens.append(char)
    return [t.lower() for t in tokens + ([run] if run else [])]


def reference_has_answer(text: str, answers: list[str]) -> bool:
    """DPR's loop: does an answer's token list equal some window of the passage's token list."""
    words = reference_tokens(text)
    for answer in answers:
        wanted = reference_tokens(answer)
        if wanted and any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1)):
            return True
    return False


def test_matches_a_direct_implementation_of_dprs_loop_on_random_text():
    """Random strings over letters, digits, combining marks, punctuation, symbols, separators,
    controls, CJK and an astral character: the tokens and every match agree with the oracle."""
    alphabet = "aAbBeE01 ,.'-\u0301\u0308\u00e9\u00c9\u00a0\u2003\t\n\u200b\u3000日本\U0001f600ΣσςİI_$\u00bd\u2162"
    rng = random.Random(0)
    for _ in range(3000):
        passage = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        start = rng.randint(0, len(passage))
        cut = passage[start : start + rng.randint(1, 6)]  # part of the passage: found, or cut mid-token
        answer = cut if rng.random() < 0.5 else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        assert dpr_tokens(passage) == reference_tokens(passage), repr(passage)
        assert has_answer(passage, [answer]) == reference_has_answer(passage, [answer]), (passage, answer)
        assert bool(answer_spans(passage, [answer])) == has_answer(passage, [answer]), (passage, answer)


def test_answer_spans_point_into_the_original_text():
    text = NFC("Visit the café of Beyoncé; the café, not a party.")
    assert [text[a:b] for a, b in answer_spans(text, [NFD("CAFÉ"), "art"])] == [NFC("café"), NFC("café")]
    assert [text[a:b] for a, b in answer_spans(text, [NFD("of Beyoncé")])] == [NFC("of Beyoncé")]


# -- the generated set ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return write_planted_set(tmp_path_factory.mktemp("nq-set"))


def test_the_generated_set_ranks_each_answer_where_it_was_planted(planted, tmp_path):
    """BM25 finds each answer at its planted rank, past the decoys a looser matcher would take
    ("party" for "art", "Beyonce" for "Beyoncé", "11,000" for "1,000", "Beatles" for "The Beatles")."""
    clear_evaluation_cache()
    qa = open_qa_set(str(planted.qa))
    assert (qa.items[2].answers, qa.items[6].answers) == (("art",), ("The Beatles",))
    engine = RetrievalEngine(corpus_from_file(planted.corpus), retrievers={"bm25": "bm25"}, cache_dir=tmp_path)
    assert evaluate_retriever(engine, qa.items, "bm25", max_k=100).answer_ranks == RANKS


# -- the Parquet reader ------------------------------------------------------------------------------
def write_qa(path, columns: dict, schema: pa.Schema | None = None):
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


def test_the_reader_keeps_answered_questions_and_says_what_it_left_out(tmp_path):
    path = write_qa(
        tmp_path / "qa.parquet",
        {
            "question": ["who?", "what?", "when?", "where?"],
            "answer": [["Ann", "ann", " "], [], ["1999"], ["here"]],
            "extra": [1, 2, 3, 4],  # other columns are ignored
        },
    )
    qa = qa_from_parquet([path], name="qa")
    assert [(i.id, i.question, i.answers, i.passage_id) for i in qa.items] == [
        ("q1", "who?", ("Ann", "ann"), ""),
        ("q3", "when?", ("1999",), ""),
        ("q4", "where?", ("here",), ""),
    ]
    assert qa.notes == ("1 question without an answer left out",)
    capped = qa_from_parquet([path], name="qa", limit=2)
    assert len(capped.items) == 2 and capped.notes[-1] == "only the first 2 questions read"
    single = write_qa(tmp_path / "single.parquet", {"question": ["who?"], "answer": ["Ann"]})  # one string a row
    assert qa_from_parquet([single], name="s").items[0].answers == ("Ann",)


@pytest.mark.parametrize(
    ("columns", "schema", "message"),
    [
        ({"question": [1, 2], "answer": [["a"], ["b"]]}, None, "'question' column holds int64"),
        ({"question": ["q"], "answer": [[1]]}, None, "'answer' column list<.*int64>"),
        ({"q": ["q"], "answer": [["a"]]}, None, r"needs the columns 'question' \(text\) and 'answer'"),
        # The answers counted from the metadata in their own leaf column, past a struct and a
        # top-level column named like that leaf's path.
        (
            {"meta": [{"a": 1, "b": "x"}], "answer.list.element": ["x"], "question": ["q"], "answer": [["a"] * 25]},
            None,
            "holds 25 answers for 1 rows",
        ),
        ({"question": ["q" * 10_000], "answer": [["a"]]}, None, "is 10,000 bytes long; the limit is 2,000"),
        ({"question": ["q" * 2_001], "answer": [["a"]]}, None, "row 1 has 2,001 characters in the 'question'"),
        ({"question": ["q"], "answer": [["a" * 501]]}, None, "row 1 has 501 characters in the 'answer'"),
        ({"question": ["q"], "answer": [["a"] * 25]}, None, "25 answers for 1 rows; at most 20 a row"),
        ({"question": ["q", " "], "answer": [["a"], ["b"]]}, None, "row 2 has no question"),
    ],
)
def test_a_hostile_parquet_file_is_refused_with_the_reason(tmp_path, columns, schema, message):
    path = write_qa(tmp_path / "qa.parquet", columns, schema)
    with pytest.raises(CorpusError, match=message):
        qa_from_parquet([path], name="qa")


def test_a_file_that_is_not_parquet_or_too_big_is_refused(tmp_path, monkeypatch):
    from lfqa_demo.retrieval import nq_open

    fake = tmp_path / "qa.parquet"
    fake.write_bytes(b"not parquet at all")
    with pytest.raises(CorpusError, match="qa.parquet is not a Parquet file"):
        qa_from_parquet([fake], name="qa")
    path = write_qa(tmp_path / "big.parquet", {"question": ["q"], "answer": [["a"]]})
    monkeypatch.setattr(nq_open, "MAX_QA_FILE_BYTES", 100)
    with pytest.raises(CorpusError, match="big.parquet is .* MB; the limit is"):
        qa_from_parquet([path], name="qa")


def test_a_dictionary_bomb_is_measured_before_it_is_decoded(tmp_path):
    """200,000 rows that all point at one 1,500-character dictionary value: a small file that
    would decode to 300 M characters. Refused by the running total, batch by batch."""
    value = "x" * 1_500
    questions = pa.DictionaryArray.from_arrays(pa.array([0] * 200_000, pa.int32()), pa.array([value]))
    answers = pa.array([["a"]] * 200_000)
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"question": questions, "answer": answers}), path)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(CorpusError, match="more than 64,000,000 characters"):
        qa_from_parquet([path], name="bomb")


def test_a_local_directory_in_the_hubs_layout(planted):
    qa = open_qa_set(str(planted.qa.parents[1]))  # DIR/nq_open/validation-00000-of-00001.parquet
    assert len(qa.items) == len(RANKS) and qa.items[0].question.startswith("what is ")


# -- the hub: cache first, offline fails fast --------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Nothing may go online: huggingface_hub's download only with local_files_only, and the
    image's cache (searched after HF_HUB_CACHE) empty."""
    import huggingface_hub

    from lfqa_demo.models import hub

    real = huggingface_hub.hf_hub_download

    def local_only(*args, **kwargs):
        assert kwargs.get("local_files_only"), "tried to download"
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", local_only)
    monkeypatch.setattr(hub, "image_cache_dir", lambda: tmp_path / "no-image-cache")


@pytest.mark.parametrize("offline", [True, False])
def test_an_empty_cache_fails_fast_saying_how_to_get_the_file(no_network, monkeypatch, tmp_path, capsys, offline):
    """With HF_HUB_OFFLINE set, or with the hub's one quick probe failing (monkeypatched: nothing
    here goes online), exit 2 at once with the commands that get the file."""
    from lfqa_demo.models import hub

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    if not offline:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(hub, "hub_unreachable", lambda: "the hub (https://huggingface.co) cannot be reached (x)")
    started = time.perf_counter()
    status = cli.main(["evaluate", "--qa", f"hub:{NQ_OPEN}", "--retrievers", "bm25"])
    err = capsys.readouterr().err
    assert status == 2 and time.perf_counter() - started < 5
    why = "HF_HUB_OFFLINE is set" if offline else "the hub (https://huggingface.co) cannot be reached (x)"
    assert f"nq_open/validation-00000-of-00001.parquet of {NQ_OPEN} is not in the Hugging Face cache" in err
    assert f"and {why}. To get it, run" in err
    assert f"`hf download {NQ_OPEN} nq_open/validation-00000-of-00001.parquet --repo-type dataset`" in err
    assert f"`huggingface-cli download {NQ_OPEN} nq_open/validation-00000-of-00001.parquet --repo-type dataset`" in err
    assert "Traceback" not in err


def test_hub_specs_are_checked(capsys):
    for spec, message in [
        ("hub:nq_open", f"NQ-open is now {NQ_OPEN}"),
        (f"hub:{NQ_OPEN}:test", "has no split 'test'; its splits are train, validation (the set DPR's paper"),
        ("hub:org/other", "'org/other' is not a QA set this command knows"),
        ("hub:../x", "is not a hub dataset id"),
    ]:
        assert cli.main(["evaluate", "--qa", spec, "--retrievers", "bm25"]) == 2
        assert message in capsys.readouterr().err


def put_in_hub_cache(cache, planted) -> None:
    """The QA file where the hub's cache keeps it: datasets--ORG--NAME/{refs/main, snapshots/REV/FILE}."""
    root = cache / f"datasets--{NQ_OPEN.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    (root / "snapshots" / COMMIT / "nq_open").mkdir(parents=True)
    shutil.copy(planted.qa, root / "snapshots" / COMMIT / QA_FILE)


def cells(line: str) -> list[str]:
    return line.split()


def test_the_command_line_reports_the_planted_recall_from_the_hub_cache(
    no_network, planted, monkeypatch, tmp_path, capsys
):
    """`evaluate --qa hub:google-research-datasets/nq_open` offline, the file in the hub cache's
    exact layout: top-1/5/20/100 answer recall of BM25 as planted."""
    put_in_hub_cache(tmp_path / "hub", planted)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    clear_evaluation_cache()
    argv = ["evaluate", "--qa", f"hub:{NQ_OPEN}", "--corpus", str(planted.corpus), "--retrievers", "bm25"]
    status = cli.main([*argv, "--cache-dir", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"10 questions ({NQ_OPEN}:validation), {planted.passages} passages (corpus.parquet)"
    assert lines[1].split("  ")[0] == "retriever" and "R@100, answer" in lines[1] and "MRR@100, answer" in lines[1]
    expected = [f"{planted.recall(k):.3f}" for k in (1, 5, 20, 100)]
    assert expected == ["0.200", "0.400", "0.600", "0.800"]
    assert cells(lines[2])[:5] == ["bm25", *expected]


def test_max_questions_and_a_corpus_bundle_give_the_same_figures(planted, tmp_path, capsys):
    """A corpus bundle (`index --out`) over the same passages scores as the Parquet file does;
    --max-questions 4 scores the first four (ranks 1, 1, 2, 5) and says so."""
    bundle = tmp_path / "bundle"
    assert cli.main(["index", "--corpus", str(planted.corpus), "--retrievers", "bm25", "--out", str(bundle)]) == 0
    capsys.readouterr()
    clear_evaluation_cache()
    argv = ["evaluate", "--qa", str(planted.qa), "--corpus", str(bundle), "--retrievers", "bm25", "--ks", "1,5"]
    assert cli.main([*argv, "--max-questions", "4", "--cache-dir", str(tmp_path / "cache")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 questions (validation-00000-of-00001.parquet), 160 passages")
    assert lines[1] == "note: only the first 4 questions read"
    assert cells(lines[3]) == ["bm25", "0.500", "1.000", "0.675"]  # MRR@5 = (1 + 1 + 1/2 + 1/5) / 4
