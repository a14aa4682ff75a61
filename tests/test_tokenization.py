"""Tokenizer parity with the reference fast tokenizers on hard strings (accents, CJK, control
characters, emoji, typed special tokens, empty titles, inputs past the max length)."""

from __future__ import annotations

import pytest
from helpers import REPOS, fixture_dir

from lfqa_demo.models.tokenization import WordPieceTokenizer, read_vocab

FAMILY_REPO = {"retribert": "retribert", "dpr": "dpr_ctx", "realm": "realm", "realm_reader": "realm_reader"}


@pytest.fixture(scope="module", params=sorted(FAMILY_REPO))
def family_tokenizer(request):
    return request.param, WordPieceTokenizer.from_directory(fixture_dir(REPOS[FAMILY_REPO[request.param]]))


@pytest.mark.parametrize("max_length", [8, 64, 288, 512])
def test_single_and_pair_ids_match_reference(family_tokenizer, max_length, reference_inputs, reference_tokens):
    family, tok = family_tokenizer
    cases = reference_tokens["cases"]
    singles = tok.encode(reference_inputs["singles"], max_length=max_length)
    assert [e.ids for e in singles] == cases[f"{family}/single/{max_length}"]
    firsts, seconds = zip(*reference_inputs["pairs"])
    pairs = tok.encode(firsts, seconds, max_length=max_length)
    assert [e.ids for e in pairs] == cases[f"{family}/pair/{max_length}"]
    assert [e.type_ids for e in pairs] == cases[f"{family}/pair_types/{max_length}"]


def test_plain_pieces_match_reference(family_tokenizer, reference_inputs, reference_tokens):
    family, tok = family_tokenizer
    assert [e.ids for e in tok.encode_plain(reference_inputs["singles"])] == reference_tokens["cases"][f"{family}/plain"]


def test_crlf_vocab_reads_like_lf(tmp_path):
    crlf = fixture_dir(REPOS["realm_reader"]) / "vocab.txt"
    assert b"\r\n" in crlf.read_bytes()
    lf = tmp_path / "vocab.txt"
    lf.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\n"))
    vocab = read_vocab(crlf)
    assert vocab == read_vocab(lf)
    assert not any("\r" in token for token in vocab)
    assert (vocab["[PAD]"], vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"]) == (0, 100, 101, 102, 103)


def test_vocab_size_must_match_config(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", encoding="utf-8")
    assert len(read_vocab(vocab, expected_size=6)) == 6
    with pytest.raises(ValueError, match="vocab_size 30522"):
        read_vocab(vocab, expected_size=30522)


def test_tokenizer_is_safe_across_threads_and_lengths(family_tokenizer):
    from concurrent.futures import ThreadPoolExecutor

    _, tok = family_tokenizer
    text = "the normans conquered england " * 50
    expected = {n: tok.encode([text], max_length=n)[0].ids for n in (8, 32, 128)}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: (n, tok.encode([text], max_length=n)[0].ids), [8, 32, 128] * 20))
    assert all(ids == expected[n] and len(ids) == n for n, ids in results)


def test_lone_surrogates_do_not_break_tokenization(family_tokenizer):
    _, tok = family_tokenizer
    (enc,) = tok.encode(["caf\ud800e text"], max_length=16)
    assert enc.ids[0] == tok.cls_id and len(enc.ids) > 3
    (plain,) = tok.encode_plain(["ab \udfff cd"])
    last = [o for o, w in zip(plain.offsets, plain.word_ids) if w == plain.word_ids[-1]]
    assert (last[0][0], last[-1][1]) == (5, 7)  # "cd": offsets still index the original string
