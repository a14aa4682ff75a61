"""The reference implementation's side of bench_performance.py: transformers 4.40.2, fp32,
eager attention, run in a throwaway virtualenv (never a project dependency). Reads a JSON
job on stdin (checkpoint dirs, passages, questions), prints JSON figures on stdout.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import transformers
from transformers import (
    BertTokenizerFast,
    DPRContextEncoder,
    DPRQuestionEncoder,
    DPRReader,
    DPRReaderTokenizerFast,
    RealmEmbedder,
    RealmReader,
    RetriBertModel,
)

transformers.logging.set_verbosity_error()


def main() -> None:
    job = json.load(sys.stdin)
    dirs, passages, questions, reads = job["dirs"], job["passages"], job["questions"], job["reader_jobs"]
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "threads": torch.get_num_threads()}
    tok = BertTokenizerFast(vocab_file=dirs["vocab"], do_lower_case=True)
    titles = [p["title"] for p in passages]
    texts = [p["text"] for p in passages]
    with torch.no_grad():
        models = {
            "retribert": RetriBertModel.from_pretrained(dirs["retribert"]).eval(),
            "dpr_q": DPRQuestionEncoder.from_pretrained(dirs["dpr_q"]).eval(),
            "dpr_ctx": DPRContextEncoder.from_pretrained(dirs["dpr_ctx"]).eval(),
            "realm": RealmEmbedder.from_pretrained(dirs["realm"]).eval(),
        }

        def encode(family: str, batch: int = 32) -> int:
            tokens = 0
            for s in range(0, len(passages), batch):
                if family == "retribert":
                    enc = tok(texts[s : s + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
                    models["retribert"].embed_answers(enc.input_ids, enc.attention_mask)
                elif family == "dpr":
                    enc = tok(
                        titles[s : s + batch],
                        texts[s : s + batch],
                        padding=True,
                        truncation=True,
                        max_length=256,
                        return_tensors="pt",
                    )
                    models["dpr_ctx"](enc.input_ids, enc.attention_mask, torch.zeros_like(enc.input_ids))
                else:
                    enc = tok(
                        titles[s : s + batch],
                        texts[s : s + batch],
                        padding=True,
                        truncation=True,
                        max_length=288,
                        return_tensors="pt",
                    )
                    models["realm"](**enc)
                tokens += int(enc.attention_mask.sum())
            return tokens

        out["passages_tokens_per_s"] = {}
        for family in ("retribert", "dpr", "realm"):
            rates = []
            for _ in range(job.get("repeats", 1)):  # the median of a few runs, as on our side
                t = time.perf_counter()
                tokens = encode(family)
                rates.append(tokens / (time.perf_counter() - t))
            out["passages_tokens_per_s"][family] = statistics.median(rates)

        def ask(family: str, q: str) -> None:
            if family == "retribert":
                enc = tok([q], truncation=True, max_length=128, return_tensors="pt")
                models["retribert"].embed_questions(enc.input_ids, enc.attention_mask)
            elif family == "dpr":
                enc = tok([q], truncation=True, max_length=256, return_tensors="pt")
                models["dpr_q"](**enc)
            else:
                enc = tok([q], truncation=True, max_length=288, return_tensors="pt")
                models["realm"](**enc)

        out["question_ms"] = {}
        for family in ("retribert", "dpr", "realm"):
            ask(family, questions[0])
            times = []
            for q in questions:
                t = time.perf_counter()
                ask(family, q)
                times.append(1000 * (time.perf_counter() - t))
            out["question_ms"][family] = statistics.median(times)
        del models

        readers = {
            "dpr": DPRReader.from_pretrained(dirs["dpr_reader"]).eval(),
            "realm": RealmReader.from_pretrained(dirs["realm_reader"]).eval(),
        }
        rtok = DPRReaderTokenizerFast(vocab_file=dirs["vocab"], do_lower_case=True)

        def read(name: str, q: str, ps: list[dict]) -> None:
            if name == "dpr":
                enc = rtok(
                    questions=q,
                    titles=[p["title"] for p in ps],
                    texts=[p["text"] for p in ps],
                    padding=True,
                    truncation=True,
                    max_length=350,
                    return_tensors="pt",
                )
                readers["dpr"](**enc)
            else:
                blocks = [f"{p['title']} [SEP] {p['text']}" for p in ps]
                enc = tok(
                    [q] * len(ps),
                    blocks,
                    padding=True,
                    truncation="only_second",
                    max_length=320,
                    return_tensors="pt",
                    return_special_tokens_mask=True,
                )
                block_mask = (enc.token_type_ids == 1) & (enc.special_tokens_mask == 0)
                hidden = readers["realm"].realm(
                    enc.input_ids, attention_mask=enc.attention_mask, token_type_ids=enc.token_type_ids
                )[0]
                readers["realm"].qa_outputs(hidden, block_mask)

        out["reader_ms"] = {}
        for name in ("dpr", "realm"):
            read(name, reads[0]["question"], reads[0]["passages"])
            times = []
            for job_ in reads:
                t = time.perf_counter()
                read(name, job_["question"], job_["passages"])
                times.append(1000 * (time.perf_counter() - t))
            out["reader_ms"][name] = statistics.median(times)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
