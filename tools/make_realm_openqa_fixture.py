"""Write the REALM open-QA fixture: a tiny `google/realm-orqa-nq-openqa` in that repo's layout,
and what transformers' `RealmForOpenQA` retrieves from it.

Development only. Runs in the throwaway reference virtualenv (transformers 4.40.2), after
tools/make_fixtures.py (it reuses that script's vocabulary, weights and tokenizer files):

    bash tools/make_fixtures.sh        # runs both

Writes tests/fixtures/hub/google--realm-orqa-nq-openqa/:
  config.json, pytorch_model.bin     RealmForOpenQA's state dict: `embedder.*` (the question
                                     embedder), `reader.*`, and `block_emb` [blocks, 16]
  block_records.npy                  the block texts, an object array of byte strings saved by
                                     np.save as RealmRetriever.save_pretrained saves it (a pickle)
  vocab.txt, tokenizer_config.json, special_tokens_map.json
tests/fixtures/reference/realm_openqa_blocks.json: the blocks' texts (so that no test unpickles),
and tests/fixtures/reference/realm_openqa.json: per question, the block ids RealmForOpenQA's
own forward pass hands its retriever (reader_beam_size of them, best first) and the score of
every block (block_emb @ question projection).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from make_fixtures import HUB, REALM_TINY, REF, SHARED, randomize, save_checkpoint, write_tokenizer_files
from transformers import RealmConfig, RealmForOpenQA, RealmRetriever, RealmTokenizerFast

REPO = HUB / "google--realm-orqa-nq-openqa"
BLOCKS = 60
QUESTIONS = [
    "who conquered england in 1066?",
    "what is the capital of france",
    "Ça va? Über naïve café",
    "when was the university founded",
]


def main() -> None:
    vocab_file = HUB / "google--realm-cc-news-pretrained-embedder" / "vocab.txt"  # make_fixtures.py's vocabulary
    vocab = vocab_file.read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in SHARED.read_text(encoding="utf-8").splitlines()][: BLOCKS - 2]
    texts += ["Ångström, naïve café — résumé of 東京 and 北京", ""]  # non-ASCII bytes, and an empty block
    records = np.array([t.encode("utf-8") for t in texts], dtype=object)  # [blocks] of bytes, as the hub's

    config = RealmConfig(vocab_size=len(vocab), searcher_beam_size=20, num_block_records=BLOCKS, **REALM_TINY)
    model = RealmForOpenQA(config)
    randomize(model, 40)
    with torch.no_grad():
        model.block_emb.copy_(torch.randn(BLOCKS, 16, generator=torch.Generator().manual_seed(41)))
    REPO.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, config, REPO, {})
    write_tokenizer_files(REPO, vocab_file, "realm")
    np.save(REPO / "block_records.npy", records)  # RealmRetriever.save_pretrained's own call

    # The reference: RealmForOpenQA.forward on each question, its retriever call recorded.
    tokenizer = RealmTokenizerFast.from_pretrained(REPO)
    retriever = RealmRetriever.from_pretrained(REPO)  # np.load with pickles allowed: the reference may
    assert [bytes(b) for b in retriever.block_records] == [bytes(b) for b in records]
    model = RealmForOpenQA.from_pretrained(REPO, retriever=retriever).eval()
    handed: list[list[int]] = []

    def recording(block_ids, *args, **kwargs):
        handed.append(block_ids.tolist())
        return retriever(block_ids, *args, **kwargs)

    model.retriever = recording
    reference = []
    with torch.no_grad():
        for question in QUESTIONS:
            inputs = tokenizer([question], return_tensors="pt")
            model(**inputs, return_dict=True)
            projection = model.embedder(**inputs, return_dict=True).projected_score  # [1, 16]
            reference.append(
                {
                    "question": question,
                    "input_ids": inputs.input_ids[0].tolist(),
                    "top_block_ids": handed[-1],
                    "scores": (model.block_emb @ projection[0]).tolist(),
                    "projection": projection[0].tolist(),
                }
            )
    (REF / "realm_openqa.json").write_text(json.dumps(reference, indent=1), encoding="utf-8")
    (REF / "realm_openqa_blocks.json").write_text(json.dumps(texts, ensure_ascii=False, indent=0), encoding="utf-8")
    size = sum(f.stat().st_size for f in REPO.iterdir())
    print(f"{REPO.name}: {size / 1024:.0f} KiB, files {sorted(f.name for f in REPO.iterdir())}")


if __name__ == "__main__":
    main()
