"""`python -m lfqa_demo index --out OUT` for a corpus at scale: where its passages and each
retriever's vectors come from, handed to retrieval/corpus_bundles.py to build the bundle.

Passages: Parquet shards in wiki_dpr's layout (a file or a directory), a hub dataset's Parquet
shards (`hub:facebook/wiki_dpr:psgs_w100.nq.exact`: that config's files only, cache first), or
any other corpus the command line reads (a .jsonl file...). `--max-passages N` keeps the first N.

Vectors, per dense retriever, in this order:
1. `--vectors NAME=PATH` files (vector_files.py), checked for count, dimension and finiteness;
2. for `dpr`, the corpus's own `embeddings` column (wiki_dpr's, made by DPR's passage
   encoder), a sample encoded again when that encoder's weights are here;
3. otherwise encoded here, up to MAX_ENCODED_PASSAGES passages (past that: give --vectors), or
   with `--engine ray` by Ray Data into resumable vector shards (ray_build.py), then read as in 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import pyarrow as pa

from .errors import CheckpointNotFoundError, CorpusError, InvalidInputError
from .models.loading import load_retriever
from .models.retrievers import DenseRetriever, RetrieverSpec
from .retrieval.corpus import Corpus
from .retrieval.corpus_bundles import CorpusManifest, DenseInput, build_corpus_bundle
from .retrieval.shards import shard_paths
from .retrieval.tables import TableCorpus, corpus_batches, parquet_batches
from .retrieval.vector_files import check_vectors, corpus_embeddings, open_vector_files
from .retrieval.vectors import ArrayVectors, PrefixVectors

# Encoding passages here is for small corpora: ~2,000 tokens/s for one full-size encoder on 2
# cores makes 1M passages of ~150 tokens a day's work; Wikipedia's vectors are built elsewhere.
MAX_ENCODED_PASSAGES = 1_000_000
EMBEDDINGS_RETRIEVER = "dpr"  # the retriever the corpus's `embeddings` column belongs to (wiki_dpr: DPR's)
HUB = "hub:"


@dataclass
class PassageSource:
    """Where a bundle's passages come from: Parquet shards, or a corpus already read."""

    name: str
    description: str
    shards: list[Path] | None = None
    corpus: Corpus | None = None

    def batches(self, max_passages: int | None) -> Iterator[pa.RecordBatch]:
        if self.shards is not None:
            return parquet_batches(self.shards, max_passages=max_passages)
        assert self.corpus is not None
        return corpus_batches(self.corpus)


def is_table_source(spec: str) -> bool:
    """Whether `--corpus spec` names Parquet shards (a file, or a directory holding them) or a
    hub dataset: those are read as tables into a corpus bundle."""
    if spec.startswith(HUB):
        return True
    path = Path(spec).expanduser()
    return path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")))


def passage_source(spec: str, read_corpus: Callable[[str], Corpus]) -> PassageSource:
    """The passages `--corpus spec` names (see the module docstring); `read_corpus` reads any
    other source the command line takes."""
    if spec.startswith(HUB):
        repo, _, config = spec[len(HUB) :].partition(":")
        shards = hub_shards(repo, config.partition(":")[0] or None)
        return PassageSource(f"{repo}:{config or 'default'}", spec, shards=shards)
    path = Path(spec).expanduser()
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        return PassageSource(path.name, str(path), shards=shard_paths(path, ".parquet"))
    corpus = read_corpus(spec)
    return PassageSource(corpus.name, spec, corpus=corpus)


def hub_shards(repo_id: str, config: str | None) -> list[Path]:
    """The Parquet shards of a hub dataset's config (files under a folder named after it), from
    the Hugging Face cache when they are there, else downloaded (failing at once offline)."""
    from huggingface_hub import snapshot_download

    from .models.hub import hub_cache_dir, hub_unreachable
    from .retrieval.corpus import check_hub_dataset_id

    check_hub_dataset_id(repo_id)
    patterns = [f"{config}/*.parquet", f"*/{config}/*.parquet"] if config else ["*.parquet", "*/*.parquet"]
    kwargs = dict(repo_type="dataset", cache_dir=hub_cache_dir(), allow_patterns=patterns)
    try:
        root = Path(snapshot_download(repo_id, local_files_only=True, **kwargs))
    except Exception:  # not cached (or not whole): go online once
        why = hub_unreachable()
        if why:
            raise CheckpointNotFoundError(
                f"The Parquet shards of {repo_id} ({config or 'every config'}) are not in the Hugging Face cache "
                f"({hub_cache_dir()}) and {why}. Where the hub can be reached: `hf download {repo_id} --repo-type "
                f"dataset --include '{patterns[0]}' --local-dir DIR`, then `--corpus DIR/{config or ''}`."
            ) from None
        root = Path(snapshot_download(repo_id, **kwargs))  # huggingface_hub shows its own progress bars
    shards = sorted(root.glob(patterns[0])) or sorted(root.glob(patterns[-1]))
    if not shards:
        raise CorpusError(f"{repo_id} has no Parquet files for {config or 'any config'} ({patterns[0]})")
    return shard_paths(shards[0].parent, ".parquet")


def dense_inputs(
    names: Sequence[str],
    specs: Mapping[str, str | RetrieverSpec],
    source: PassageSource,
    vectors: Mapping[str, Path],
    *,
    device=None,
    dtype=None,
    batch_size: int = 32,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Callable[[TableCorpus], DenseInput]]:
    """For each dense retriever in `names`, how to get its vectors once the passages are written."""
    unknown = sorted(set(vectors) - set(names))
    if unknown:
        raise InvalidInputError(f"--vectors names {', '.join(unknown)}, which --retrievers does not list")
    embeddings = corpus_embeddings(source.shards) if source.shards else None

    def make(name: str) -> Callable[[TableCorpus], DenseInput]:
        def inputs(corpus: TableCorpus) -> DenseInput:
            retriever = load_retriever(specs.get(name, name), device=device, dtype=dtype)
            if name in vectors:
                given = open_vector_files(vectors[name], ids=[p.id for p in corpus] if _keyed(vectors[name]) else None)
                check_vectors(given, count=len(corpus), dim=retriever.dim, name=name)
                return DenseInput(retriever, given)
            if name == EMBEDDINGS_RETRIEVER and embeddings is not None:
                given = PrefixVectors(embeddings, len(corpus)) if embeddings.count > len(corpus) else embeddings
                check_vectors(given, count=len(corpus), dim=retriever.dim, name=name)
                return DenseInput(retriever, given, verify=True)
            return DenseInput(retriever, _encoded(retriever, corpus, name, batch_size, progress))

        return inputs

    return {name: make(name) for name in names}


def encoded_here(names: Sequence[str], vectors: Mapping[str, Path], source: PassageSource) -> list[str]:
    """The dense retrievers among `names` whose vectors this build encodes (the module docstring's
    third case): neither given with --vectors nor, for dpr, the corpus's own embeddings column."""
    has_embeddings = bool(source.shards) and corpus_embeddings(source.shards) is not None
    return [n for n in names if n != "bm25" and n not in vectors and not (n == EMBEDDINGS_RETRIEVER and has_embeddings)]


def _keyed(path: Path) -> bool:
    """Whether vector files at `path` are keyed by id (Parquet with an `id` column): then the
    corpus's ids are needed to put them in order."""
    import pyarrow.parquet as pq

    shards = (
        shard_paths(path, ".parquet")
        if (path.is_dir() and any(path.glob("*.parquet"))) or path.suffix == ".parquet"
        else []
    )
    return bool(shards) and "id" in pq.read_schema(shards[0]).names


def _encoded(retriever: DenseRetriever, corpus: TableCorpus, name: str, batch_size: int, progress) -> ArrayVectors:
    if len(corpus) > MAX_ENCODED_PASSAGES:
        raise CorpusError(
            f"{len(corpus):,} passages are too many to encode here for {name} (at most {MAX_ENCODED_PASSAGES:,}): "
            f"build its vectors elsewhere and give them with --vectors {name}=PATH"
        )
    report = None if progress is None else (lambda done, total: progress(name, done, total))
    vectors = retriever.encode_passages(corpus.as_dicts(), batch_size=batch_size, progress=report)
    return ArrayVectors(vectors, origin="encoded here")


def build(
    out: Path,
    source: PassageSource,
    names: Sequence[str],
    specs: Mapping[str, str | RetrieverSpec],
    vectors: Mapping[str, Path],
    *,
    max_passages: int | None,
    kind: str,
    device=None,
    dtype=None,
    batch_size: int = 32,
    progress: Callable[[str, int, int], None] | None = None,
) -> CorpusManifest:
    """Build the corpus bundle `out` from `source` with the retrievers `names` ("bm25" and dense ones)."""
    dense = [n for n in names if n != "bm25"]
    inputs = dense_inputs(
        dense, specs, source, vectors, device=device, dtype=dtype, batch_size=batch_size, progress=progress
    )
    return build_corpus_bundle(
        out,
        source.name,
        source.batches(max_passages),
        source=source.description + (f" (first {max_passages:,} passages)" if max_passages else ""),
        dense=inputs,
        bm25="bm25" in names,
        kind=kind,
        log_line=lambda line: print(line, file=sys.stderr, flush=True),
    )
