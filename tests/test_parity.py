"""The backend against the reference implementation (transformers 4.40.2) on the fixture
checkpoints, loaded by their real repo ids from an offline hub cache."""

from __future__ import annotations

import numpy as np
import pytest

from lfqa_demo import load_reader, load_retriever

TOLERANCE = 1e-4  # max abs difference, fp32, CPU


@pytest.mark.parametrize("family", ["retribert", "dpr", "realm"])
def test_embeddings_match_reference(family, reference, reference_inputs):
    retriever = load_retriever(family, device="cpu")
    questions = retriever.encode_questions(reference_inputs["questions"])
    passages = retriever.encode_passages(reference_inputs["passages"])
    assert questions.dtype == np.float32 and questions.shape == reference[f"{family}_questions"].shape
    assert passages.shape == (len(reference_inputs["passages"]), retriever.dim)
    assert np.abs(questions - reference[f"{family}_questions"]).max() < TOLERANCE
    assert np.abs(passages - reference[f"{family}_passages"]).max() < TOLERANCE


@pytest.mark.parametrize("family", ["retribert", "dpr", "realm"])
def test_retriever_token_ids_match_reference(family, reference_inputs, reference_tokens):
    retriever = load_retriever(family, device="cpu")
    batches = reference_tokens["batches"]
    questions = retriever.tokenize_questions(reference_inputs["questions"])
    passages = retriever.tokenize_passages(reference_inputs["passages"])
    assert [ids for ids, _ in questions] == batches[f"{family}_questions"]
    assert [ids for ids, _ in passages] == batches[f"{family}_passages"]
    # The longest question is cut exactly at the family's max length.
    assert max(len(ids) for ids, _ in questions) == retriever.max_question_length
    if family == "realm":
        assert [types for _, types in passages] == batches["realm_passage_types"]
    else:  # DPR passages are a pair with all-zero types; RetriBERT's are text alone
        assert all(set(types) == {0} for _, types in passages)


def test_dpr_reader_matches_reference(reference, reference_inputs):
    reader = load_reader("dpr", device="cpu")
    for i, question in enumerate(reference_inputs["reader_questions"]):
        out = reader.logits(question, reference_inputs["reader_passages"])
        np.testing.assert_array_equal(out.inputs.input_ids, reference[f"dpr_reader_{i}_input_ids"])
        assert np.abs(out.start - reference[f"dpr_reader_{i}_start"]).max() < TOLERANCE
        assert np.abs(out.end - reference[f"dpr_reader_{i}_end"]).max() < TOLERANCE
        assert np.abs(out.relevance - reference[f"dpr_reader_{i}_relevance"]).max() < TOLERANCE


def test_realm_reader_matches_reference(reference, reference_inputs):
    reader = load_reader("realm", device="cpu")
    assert reader.model.qa_outputs.layer_normalization.eps == 1e-3
    for i, question in enumerate(reference_inputs["reader_questions"]):
        out = reader.logits(question, reference_inputs["reader_passages"], reference_inputs["reader_relevance"])
        np.testing.assert_array_equal(out.inputs.input_ids, reference[f"realm_reader_{i}_input_ids"])
        np.testing.assert_array_equal(out.inputs.token_type_ids, reference[f"realm_reader_{i}_token_type_ids"])
        ref_logits = reference[f"realm_reader_{i}_logits"]
        starts, ends = reference[f"realm_reader_{i}_starts"], reference[f"realm_reader_{i}_ends"]
        block = reference[f"realm_reader_{i}_block_mask"]
        # The reference scores every (start, end) of the row and masks those outside the block
        # with float32's minimum; we list only the valid candidates. Same set, same values.
        valid = block[:, starts] & block[:, ends]  # [n, C_all]
        rows, cols = np.nonzero(valid)
        assert len(out.logits) == len(rows)
        column = {(int(s), int(e)): c for c, (s, e) in enumerate(zip(starts, ends))}
        matched = np.array([ref_logits[r, column[(int(s), int(e))]] for r, s, e in zip(out.passage, out.start, out.end)])
        assert np.abs(out.logits - matched).max() < TOLERANCE
        assert set(zip(out.passage.tolist(), out.start.tolist(), out.end.tolist())) == {
            (int(r), int(starts[c]), int(ends[c])) for r, c in zip(rows, cols)
        }
        best = int(np.argmax(out.logits))
        block_idx, start, end = reference[f"realm_reader_{i}_best"]
        assert (out.passage[best], out.start[best], out.end[best]) == (block_idx, start, end)
