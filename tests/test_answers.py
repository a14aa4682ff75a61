"""Answer extraction: decoding rules against a direct implementation, crafted logits with a
known answer, exact character offsets (property test), windows, merging and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfqa_demo import load_reader, load_retriever
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import InvalidInputError
from lfqa_demo.models.retrievers import DEFAULT_RETRIEVERS
from lfqa_demo.reading.answers import decode_dpr, decode_realm
from lfqa_demo.reading.loading import load_relevance_embedder
from lfqa_demo.retrieval.corpus import build_corpus

PASSAGES = [
    {"title": "Normans", "text": "The Normans were led by Rollo, a Viking chieftain from Scandinavia."},
    {"title": "Tokyo", "text": "東京 is the capital of Japan; café culture thrives there 🙂."},
    {"title": "Nile", "text": "The Nile flows north through Egypt into the Mediterranean Sea."},
]


# -- a direct implementation of the documented rules, for comparison -------------------------------
def words_of(inputs, r):
    return inputs.word_ids[r]


def widen(i, j, w):
    while i > 0 and w[i - 1] >= 0 and w[i - 1] == w[i]:
        i -= 1
    while j + 1 < len(w) and w[j + 1] >= 0 and w[j + 1] == w[j]:
        j += 1
    return i, j


def char_span(inputs, r, i, j):
    i, j = widen(i, j, words_of(inputs, r))
    return int(inputs.char_offsets[r, i, 0]), int(inputs.char_offsets[r, j, 1])


def nested(a, b):
    return a[0] <= b[0] <= b[1] <= a[1] or b[0] <= a[0] <= a[1] <= b[1]


def direct_dpr(start, end, relevance, inputs, texts, top_k, max_tokens):
    """One row per passage. Returns [(passage, char start, char end)] in answer order (before merging)."""
    per_passage = []
    for p in sorted(range(len(texts)), key=lambda p: -relevance[p]):
        first, stop = inputs.text_spans[p]
        spans = [
            (start[p, i] + end[p, j], i, j) for i in range(first, stop) for j in range(i, min(stop, i + max_tokens))
        ]
        kept = []
        for _, i, j in sorted(spans, key=lambda s: -s[0]):
            c = char_span(inputs, p, i, j)
            if not any(nested(c, k) for k in kept):
                kept.append(c)
            if len(kept) == top_k:
                break
        per_passage.append([(p, *c) for c in kept])
    return [lst[n] for n in range(top_k) for lst in per_passage if n < len(lst)]


def direct_realm(out, relevance, inputs, top_k, max_tokens):
    cands = [
        (out.logits[c], int(out.passage[c]), int(out.start[c]), int(out.end[c]))
        for c in range(len(out.logits))
        if out.end[c] - out.start[c] < max_tokens
    ]
    kept = []
    for _, p, i, j in sorted(cands, key=lambda c: -c[0]):
        c = char_span(inputs, p, i, j)
        if not any(q == p and nested(c, k) for q, *k in kept):
            kept.append((p, *c))
    return kept


def dedupe(spans, texts, top_k):
    seen, out = set(), []
    for p, s, e in spans:
        key = " ".join(texts[p][s:e].casefold().split())
        if key and key not in seen and len(out) < top_k:
            seen.add(key)
            out.append((p, s, e))
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_tokens", [1, 4, 10])
def test_dpr_decoding_equals_the_direct_implementation(seed, max_tokens):
    reader = load_reader("dpr", device="cpu")
    inputs = reader.build_inputs("who led the normans?", PASSAGES)
    rng = np.random.default_rng(seed)
    start, end = rng.standard_normal(inputs.input_ids.shape), rng.standard_normal(inputs.input_ids.shape)
    relevance = rng.standard_normal(len(PASSAGES))
    texts = [p["text"] for p in PASSAGES]
    got = decode_dpr(start, end, relevance, inputs, texts, 5, max_tokens)
    expected = dedupe(direct_dpr(start, end, relevance, inputs, texts, 5, max_tokens), texts, 5)
    assert [(a.passage_index, a.start, a.end) for a in got] == expected
    assert got[0].passage_index == int(np.argmax(relevance))  # DPR answers from the most relevant passage


@pytest.mark.parametrize("seed", range(5))
def test_realm_decoding_equals_the_direct_implementation(seed):
    reader = load_reader("realm", device="cpu")
    relevance = np.random.default_rng(seed).standard_normal(len(PASSAGES)).astype(np.float32)
    out = reader.logits("who led the normans?", PASSAGES, relevance)
    out.logits = out.logits + np.random.default_rng(seed).standard_normal(len(out.logits)).astype(np.float32)
    texts = [p["text"] for p in PASSAGES]
    got = decode_realm(out.passage, out.row, out.start, out.end, out.logits, relevance, out.inputs, texts, 5, 10)
    assert [(a.passage_index, a.start, a.end) for a in got] == dedupe(
        direct_realm(out, relevance, out.inputs, 5, 10), texts, 5
    )
    best = int(np.argmax(out.logits))
    expected = char_span(out.inputs, int(out.row[best]), int(out.start[best]), int(out.end[best]))
    assert (got[0].passage_index, got[0].start, got[0].end) == (
        int(out.passage[best]),
        *expected,
    )  # REALM's argmax, widened


def token_index(inputs, row, char):
    """The token of `row` whose text starts at character `char`."""
    return int(np.flatnonzero(inputs.char_offsets[row, :, 0] == char)[0])


def test_crafted_dpr_logits_give_the_known_answer():
    reader = load_reader("dpr", device="cpu")
    inputs = reader.build_inputs("who led the normans?", PASSAGES)
    start = np.zeros(inputs.input_ids.shape)
    end = np.zeros(inputs.input_ids.shape)
    text = PASSAGES[0]["text"]
    s, e = text.index("Rollo"), text.index("Rollo") + len("Rollo")
    start[0, token_index(inputs, 0, s)] = 10
    end[0, np.flatnonzero(inputs.char_offsets[0, :, 1] == e)[0]] = 10
    start[0, : inputs.text_spans[0, 0]] = 100  # question and title tokens must never be chosen
    end[0, : inputs.text_spans[0, 0]] = 100
    start[2, token_index(inputs, 2, PASSAGES[2]["text"].index("Egypt"))] = (
        50  # a better span, in a less relevant passage
    )
    end[2, token_index(inputs, 2, PASSAGES[2]["text"].index("Egypt"))] = 50
    answers = decode_dpr(start, end, np.array([3.0, 1.0, 2.0]), inputs, [p["text"] for p in PASSAGES], 3, 10)
    assert (answers[0].text, answers[0].passage_index, answers[0].start, answers[0].end) == ("Rollo", 0, s, e)
    assert answers[0].score == 20 and answers[0].relevance == 3.0
    assert answers[1].text == "Egypt" and answers[1].passage_index == 2  # then passage 2 (relevance 2)
    assert 0 < answers[1].confidence < 1 and sum(a.confidence for a in answers) <= 1 + 1e-9


def test_spans_are_widened_to_whole_words():
    reader = load_reader("dpr", device="cpu")
    passage = [{"title": "t", "text": "Unbelievably, supercalifragilistic words."}]
    inputs = reader.build_inputs("q", passage)
    first, stop = inputs.text_spans[0]
    pieces = [reader.tokenizer.decode([int(i)]) for i in inputs.input_ids[0, first:stop]]
    inner = first + next(
        k for k in range(1, stop - first) if inputs.word_ids[0, first + k] == inputs.word_ids[0, first + k - 1]
    )
    start = np.zeros(inputs.input_ids.shape)
    end = np.zeros(inputs.input_ids.shape)
    start[0, inner] = end[0, inner] = 10  # a word piece inside a word
    answers = decode_dpr(start, end, np.zeros(1), inputs, [passage[0]["text"]], 1, 10)
    assert answers[0].text in ("Unbelievably", "supercalifragilistic"), pieces


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from(list("abcdeé ñÅçü 東京日本 🙂👍🏽 .,!?-'\"\t\n\u0301\u200b")) | st.characters(),
            min_size=1,
            max_size=120,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_offsets_always_slice_to_the_answer(texts):
    passages = [{"title": "T", "text": t} for t in texts]
    for name in ("dpr", "realm"):
        result = load_reader(name, device="cpu").read("what is it?", passages, top_k=5)
        for a in result:
            assert passages[a.passage_index]["text"][a.start : a.end] == a.text and a.text.strip()
            assert 0 <= a.confidence <= 1
            for p, s, e in a.sources:
                assert " ".join(passages[p]["text"][s:e].casefold().split()) == " ".join(a.text.casefold().split())


def test_windowing_finds_an_answer_past_the_first_window(monkeypatch):
    reader = load_reader("dpr", device="cpu")
    filler = " ".join(f"filler{i % 50} word" for i in range(600))
    passage = [{"title": "Long", "text": filler + " The treasure lies in Zanzibar today. " + filler}]
    target = reader.tokenizer.encode_plain(["zanzibar"])[0].ids[0]
    original = reader.model

    class FindsZanzibar(torch.nn.Module):
        """The real model's shapes, with logits that point at the word 'zanzibar' wherever it is."""

        def forward(self, input_ids, attention_mask, token_type_ids):
            start, end, relevance = original(input_ids, attention_mask, token_type_ids)
            hit = (input_ids == target).float() * 100
            return start + hit, end + hit, relevance

    monkeypatch.setattr(reader, "model", FindsZanzibar())
    inputs = reader.build_inputs("where is the treasure?", passage, overlap=128)
    assert len(inputs.input_ids) > 3 and (inputs.row_passage == 0).all()
    first_window_end = inputs.char_offsets[0, inputs.text_spans[0, 1] - 1, 1]
    answer = reader.read("where is the treasure?", passage, top_k=1)[0]
    assert answer.text.startswith("Zanzibar") and answer.start > first_window_end
    assert passage[0]["text"][answer.start : answer.end] == answer.text
    # Every text token is in some window, and overlapping windows agree on offsets.
    seen = {tuple(o) for r in range(len(inputs.input_ids)) for o in inputs.char_offsets[r] if o[0] >= 0}
    assert len(seen) == len(reader.tokenizer.encode_plain([passage[0]["text"]])[0].ids)


def test_bad_input_and_skipped_passages():
    for name in ("dpr", "realm"):
        reader = load_reader(name, device="cpu")
        empty = reader.read("who?", [])
        assert not empty.answers and empty.reason == "no passages to read"
        assert reader.read("who?", [{"text": "  \n "}]).reason == "every passage is empty or whitespace"
        with pytest.raises(ValueError, match="question is empty"):
            reader.read("   ", PASSAGES)
        with pytest.raises(ValueError, match="top_k"):
            reader.read("who?", PASSAGES, top_k=0)
        result = reader.read("who?", [{"text": "   "}, PASSAGES[2]], top_k=3)
        assert result.answers and all(a.passage_index == 1 for a in result)


def test_same_text_from_several_passages_is_listed_once(tmp_path):
    engine = RetrievalEngine(build_corpus("c", [{"text": "placeholder"}]), cache_dir=tmp_path)
    twice = [PASSAGES[0], dict(PASSAGES[0]), PASSAGES[2]]
    report = engine.answer("who led the normans?", passages=twice, readers=("dpr",), top_k=5)
    answers = report.answers["dpr"].answers
    texts = [" ".join(a.text.casefold().split()) for a in answers]
    assert len(texts) == len(set(texts))
    assert any({p for p, _, _ in a.sources} == {0, 1} for a in answers)


def test_answer_end_to_end(tmp_path):
    corpus = build_corpus(
        "c", PASSAGES * 1 + [{"title": "Extra", "text": f"filler passage number {i}"} for i in range(10)]
    )
    engine = RetrievalEngine(corpus, cache_dir=tmp_path)
    report = engine.answer("who led the normans?", retriever="realm", k=4)
    assert len(report.passages) == 4 and report.retriever == "realm"
    assert not (report.retriever_error or report.reader_errors or report.relevance_errors)
    assert set(report.answers) == {"dpr", "realm"}
    for name, result in report.answers.items():
        assert result.answers and report.timings_ms[f"read_{name}"] > 0
        for a in result:
            assert report.passages[a.passage_index].text[a.start : a.end] == a.text
    realm_best = report.answers["realm"][0]
    assert realm_best.relevance == pytest.approx(
        report.passages[realm_best.passage_index].score
    )  # REALM adds its retriever score
    pasted = engine.answer("who led the normans?", passages=PASSAGES, readers=("realm",))
    assert pasted.retriever is None and "realm_relevance" in pasted.timings_ms and pasted.answers["realm"].answers
    with pytest.raises(ValueError, match="empty"):
        engine.answer("  ")


def test_realm_relevance_comes_from_the_embedder_it_is_handed():
    question, realm, dpr = "who led the normans?", load_reader("realm", device="cpu"), load_reader("dpr", device="cpu")
    assert load_relevance_embedder(dpr, None) is None and dpr.prior_relevance(question, PASSAGES, None, []) is None
    # Passages the REALM embedder retrieved: its scores are the relevance, nothing to load.
    assert load_relevance_embedder(realm, DEFAULT_RETRIEVERS["realm"]) is None
    assert realm.prior_relevance(question, PASSAGES, DEFAULT_RETRIEVERS["realm"], [1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    embedder = load_relevance_embedder(realm, DEFAULT_RETRIEVERS["dpr"])
    expected = embedder.encode_passages(PASSAGES) @ embedder.encode_questions([question])[0]
    np.testing.assert_allclose(realm.prior_relevance(question, PASSAGES, None, [], embedder), expected, rtol=1e-6)
    for wrong in (None, load_retriever("dpr", device="cpu")):
        with pytest.raises(InvalidInputError, match="needs the .* embedder"):
            realm.prior_relevance(question, PASSAGES, None, [], wrong)
