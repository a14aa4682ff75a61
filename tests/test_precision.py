"""Reduced precision keeps what matters: bf16 embeddings stay within cosine 0.999 of fp32 and
the top-10 passages of the bundled corpus overlap >= 0.9 (fixture models, all families)."""

from __future__ import annotations

import numpy as np
import pytest

from lfqa_demo import load_retriever
from lfqa_demo.retrieval.corpus import load_bundled_corpus, load_bundled_questions


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("family", ["retribert", "dpr", "realm"])
def test_bf16_stays_close_to_fp32(family):
    passages = load_bundled_corpus().as_dicts()
    questions = [q.question for q in load_bundled_questions()][:60]
    out = {}
    for dtype in ("float32", "bfloat16"):
        retriever = load_retriever(family, device="cpu", dtype=dtype)
        out[dtype] = (retriever.encode_questions(questions), retriever.encode_passages(passages))
    (q32, p32), (q16, p16) = out["float32"], out["bfloat16"]
    assert cosine(q32, q16).min() >= 0.999 and cosine(p32, p16).min() >= 0.999
    top32 = np.argsort(-(q32 @ p32.T), axis=1)[:, :10]
    top16 = np.argsort(-(q16 @ p16.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top32, top16)])
    assert overlap >= 0.9, overlap
