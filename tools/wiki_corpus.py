"""Generated corpora in wiki_dpr's layout, for tests and benchmarks at scale (the hub is out of
reach, and 21M real passages would not fit a test anyway).

`facebook/wiki_dpr` (the DPR paper's Dec 2018 Wikipedia, 21,015,300 passages of 100 words) has
the columns `id` (string: "1", "2", ...), `text`, `title` (strings) and, in its `nq` and
`multiset` configs, `embeddings` (a float32 sequence of 768 from DPR's passage encoder). This
writes Parquet shards with that schema, so that the code reading the real shards is the code
the tests run:

- text with a Zipf-like word distribution (rank r has weight 1 / r^1.07, as English roughly
  does), articles of 2-12 passages of ~100 words whose topic words recur, so BM25 means
  something;
- vectors as real encoders give them: clustered by article, anisotropic (a few directions
  carry most of the variance) and unnormalised (norms spread around a mean), for the
  `embeddings` column and for per-retriever vector files (`.npy` shards, row-aligned).

    .venv/bin/python tools/wiki_corpus.py OUT --passages 20000 [--shard-rows 10000] [--dim 768] [--no-embeddings]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WORDS_PER_PASSAGE = 100
VOCABULARY = 30_000
ZIPF_EXPONENT = 1.07
TOPIC_WORDS = 12  # words an article keeps returning to
TOPIC_SHARE = 0.15  # of a passage's words drawn from its article's topic words
SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("title", pa.string()), ("embeddings", pa.list_(pa.float32()))]
)
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


@dataclass(frozen=True)
class Layout:
    """What to generate: `passages` rows in shards of `shard_rows`, vectors of `dim` (0: no
    `embeddings` column), all from `seed`."""

    passages: int
    shard_rows: int = 100_000
    dim: int = 768
    seed: int = 0

    @property
    def shards(self) -> int:
        return -(-self.passages // self.shard_rows)


def vocabulary(size: int = VOCABULARY, seed: int = 0) -> np.ndarray:
    """`size` distinct pronounceable pseudo-words, most frequent first (short words first, as
    in real text)."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    length = 1
    while len(words) < size:
        for _ in range(size * 2):
            words.setdefault("".join(rng.choice(_SYLLABLES, length)), None)
            if len(words) >= size:
                break
        length += 1
    return np.array(list(words)[:size], dtype=object)


def _articles(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """The article (0, 1, ...) of each passage: runs of 2 to 12 passages."""
    lengths = rng.integers(2, 13, size=layout.passages // 2 + 1)
    owners = np.repeat(np.arange(len(lengths)), lengths)[: layout.passages]
    return owners


def _directions(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random rotation [dim, dim] and per-direction scales that decay (anisotropy: the first
    few directions carry most of the variance)."""
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = 1.0 / np.sqrt(1.0 + np.arange(dim, dtype=np.float64))  # [dim]
    return rotation.astype(np.float32), (scales / scales.mean()).astype(np.float32)


def passage_vectors(articles: np.ndarray, dim: int, seed: int) -> Iterator[np.ndarray]:
    """float32 [rows, dim] per chunk of 100,000 `articles`: the article's centre (one of 1,024 topic
    centres plus a shift of its own) and noise, in an anisotropic basis, scaled to spread the
    norms. The same `seed` and `dim` give the same vectors, however the corpus is sharded."""
    rng = np.random.default_rng([seed, dim])
    rotation, scales = _directions(dim, rng)
    offset = rng.standard_normal(dim).astype(np.float32) * 2.0  # a common mean, as real encoders have
    topics = rng.standard_normal((1024, dim)).astype(np.float32)
    shifts = 0.5 * rng.standard_normal((8192, dim)).astype(np.float32)
    topic_of = rng.permutation(1 << 20) % 1024  # article -> topic, spread
    for start in range(0, len(articles), 100_000):
        chunk = articles[start : start + 100_000]
        chunk_rng = np.random.default_rng([seed, dim, start])
        centres = topics[topic_of[chunk % (1 << 20)]] + shifts[chunk % 8192]  # [rows, dim]
        local = (centres + 0.6 * chunk_rng.standard_normal((len(chunk), dim), dtype=np.float32)) * scales
        norms = chunk_rng.lognormal(0.0, 0.15, (len(chunk), 1)).astype(np.float32)
        yield ((local @ rotation.T + offset) * norms).astype(np.float32)


def passages(layout: Layout) -> Iterator[pa.Table]:
    """The corpus as Arrow tables of `layout.shard_rows` rows each, in wiki_dpr's schema."""
    rng = np.random.default_rng(layout.seed)
    words = vocabulary(seed=layout.seed)
    weights = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_EXPONENT
    weights /= weights.sum()
    articles = _articles(layout, rng)
    n_articles = int(articles[-1]) + 1 if layout.passages else 0
    # An article's topic words: drawn from the middle of the vocabulary (content words, not the
    # most frequent function words); its title is two of them.
    topics = rng.integers(200, len(words), size=(n_articles, TOPIC_WORDS))
    vectors = passage_vectors(articles, layout.dim, layout.seed) if layout.dim else None
    pending: list[np.ndarray] = []
    for shard in range(layout.shards):
        start, stop = shard * layout.shard_rows, min((shard + 1) * layout.shard_rows, layout.passages)
        owners = articles[start:stop]
        body = rng.choice(len(words), size=(stop - start, WORDS_PER_PASSAGE), p=weights)
        topical = rng.random((stop - start, WORDS_PER_PASSAGE)) < TOPIC_SHARE
        picks = topics[owners][np.arange(stop - start)[:, None], rng.integers(0, TOPIC_WORDS, body.shape)]
        body = np.where(topical, picks, body)
        texts = [" ".join(words[row]) for row in body]
        titles = [" ".join(w.capitalize() for w in words[topics[a, :2]]) for a in owners]
        columns = {
            "id": [str(i + 1) for i in range(start, stop)],
            "text": texts,
            "title": titles,
            "embeddings": None,
        }
        if vectors is not None:
            while sum(len(p) for p in pending) < stop - start:
                pending.append(next(vectors))
            block = np.concatenate(pending)
            rows, rest = block[: stop - start], block[stop - start :]
            pending = [rest] if len(rest) else []
            columns["embeddings"] = pa.FixedSizeListArray.from_arrays(rows.reshape(-1), layout.dim).cast(
                pa.list_(pa.float32())
            )
            yield pa.table(columns, schema=SCHEMA)
        else:
            del columns["embeddings"]
            yield pa.table(columns, schema=SCHEMA.remove(SCHEMA.get_field_index("embeddings")))


def shard_name(shard: int, shards: int) -> str:
    return f"train-{shard:05d}-of-{shards:05d}.parquet"


def write_corpus(out: str | Path, layout: Layout) -> list[Path]:
    """Write the corpus's Parquet shards into `out` (made if missing); returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, table in enumerate(passages(layout)):
        path = out / shard_name(shard, layout.shards)
        pq.write_table(table, path, row_group_size=10_000)
        paths.append(path)
    return paths


def write_vectors(out: str | Path, layout: Layout, dim: int, seed: int) -> list[Path]:
    """Another retriever's passage vectors for the same corpus (articles from `layout`), as
    row-aligned float32 `.npy` shards of `layout.shard_rows` rows: what `index --vectors` takes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    articles = _articles(layout, np.random.default_rng(layout.seed))
    paths, pending = [], []
    chunks = passage_vectors(articles, dim, seed)
    for shard in range(layout.shards):
        need = min(layout.shard_rows, layout.passages - shard * layout.shard_rows)
        while sum(len(p) for p in pending) < need:
            pending.append(next(chunks))
        block = np.concatenate(pending)
        pending = [block[need:]] if len(block) > need else []
        path = out / f"vectors-{shard:05d}-of-{layout.shards:05d}.npy"
        np.save(path, block[:need], allow_pickle=False)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--shard-rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768, help="the embeddings column's size (DPR's 768)")
    parser.add_argument("--no-embeddings", action="store_true", help="leave the embeddings column out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    layout = Layout(args.passages, args.shard_rows, 0 if args.no_embeddings else args.dim, args.seed)
    paths = write_corpus(args.out, layout)
    print(f"{args.passages:,} passages in {len(paths)} shards under {args.out}")


if __name__ == "__main__":
    main()
