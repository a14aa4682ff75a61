"""Reader benchmark: latency of DPR and REALM `read` for 10 passages per question, on full-size
random-weight checkpoints in the real layout (see full_size_checkpoints.py). Passages are
real-length ones from the bundled corpus. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/bench_readers.py [--questions 10] [--passages 10] [--dtype bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from full_size_checkpoints import checkpoint_dir, default_dir, write_all  # noqa: E402

from lfqa_demo import load_reader  # noqa: E402
from lfqa_demo.retrieval.corpus import load_bundled_corpus, load_bundled_questions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--passages", type=int, default=10)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--checkpoints", type=Path, default=default_dir())
    args = parser.parse_args()
    write_all(args.checkpoints)
    corpus = load_bundled_corpus()
    by_id = {p.id: p for p in corpus}
    qa = load_bundled_questions()[: args.questions]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.passages} passages per question, "
        f"{len(qa)} questions"
    )
    print(f"{'reader':<7} {'dtype':<15} {'load s':>7} {'tokens/q':>9} {'p50 ms':>8} {'p90 ms':>8}")
    for name, key in (("dpr", "dpr_reader"), ("realm", "realm_reader")):
        started = time.perf_counter()
        reader = load_reader(
            name, checkpoint=str(checkpoint_dir(args.checkpoints, key)), device=args.device, dtype=args.dtype
        )
        load_s = time.perf_counter() - started
        times, tokens = [], []
        for i, item in enumerate(qa):
            # The gold passage and its neighbours in the corpus: real lengths, one holds the answer.
            at = corpus.passages.index(by_id[item.passage_id])
            passages = [p.as_dict() for p in corpus.passages[max(0, at - args.passages // 2) :][: args.passages]]
            if i == 0:
                reader.read(item.question, passages)  # warm-up
            started = time.perf_counter()
            reader.read(item.question, passages, top_k=5)
            times.append(1000 * (time.perf_counter() - started))
            tokens.append(int(reader.build_inputs(item.question, passages).attention_mask.sum()))
        times.sort()
        print(
            f"{name:<7} {str(reader.dtype):<15} {load_s:7.1f} {statistics.mean(tokens):9.0f} "
            f"{statistics.median(times):8.0f} "
            f"{times[int(0.9 * (len(times) - 1))]:8.0f}"
        )


if __name__ == "__main__":
    main()
