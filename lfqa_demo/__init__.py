"""lfqa-demo backend: RetriBERT, DPR and REALM retrievers and readers in plain PyTorch, BM25,
corpora, faiss indexes and the comparison engine.

Importing this package loads no model; `load_retriever` / `load_reader` load on first use.
"""

from .engine import RetrievalEngine
from .errors import CheckpointError, CheckpointNotFoundError, CorpusError, LfqaError
from .models.loading import load_retriever
from .models.registry import clear_loaded_models, model_states
from .models.retrievers import DenseRetriever, RetrieverSpec
from .reading.answers import Answer, ReadResult
from .reading.loading import load_reader
from .reading.readers import DPRReader, DPRReaderLogits, ReaderInputs, RealmReader, RealmReaderLogits
from .results import AnswerReport, Comparison
from .retrieval.corpus import (
    Corpus,
    Passage,
    QAItem,
    corpus_from_file,
    corpus_from_hub,
    load_bundled_corpus,
    load_bundled_questions,
    passages_from_text,
)

__all__ = [
    "Answer",
    "AnswerReport",
    "CheckpointError",
    "CheckpointNotFoundError",
    "Comparison",
    "Corpus",
    "CorpusError",
    "DPRReader",
    "DPRReaderLogits",
    "DenseRetriever",
    "LfqaError",
    "Passage",
    "QAItem",
    "ReadResult",
    "ReaderInputs",
    "RealmReader",
    "RealmReaderLogits",
    "RetrievalEngine",
    "RetrieverSpec",
    "answer",
    "clear_loaded_models",
    "compare",
    "compare_batch",
    "corpus_from_file",
    "corpus_from_hub",
    "default_engine",
    "load_bundled_corpus",
    "load_bundled_questions",
    "load_reader",
    "load_retriever",
    "model_states",
    "passages_from_text",
]


def default_engine() -> RetrievalEngine:
    """The engine over the bundled corpus: the app's own (one registry of engines per process,
    lfqa_demo.sessions.default_registry), created on first use."""
    from .sessions import default_registry

    return default_registry().bundled


def compare(*args, **kwargs) -> Comparison:
    """`RetrievalEngine.compare` on the bundled corpus's engine; same arguments."""
    return default_engine().compare(*args, **kwargs)


def compare_batch(*args, **kwargs) -> list[Comparison]:
    """`RetrievalEngine.compare_batch` on the bundled corpus's engine; same arguments."""
    return default_engine().compare_batch(*args, **kwargs)


def answer(*args, **kwargs) -> AnswerReport:
    """`RetrievalEngine.answer` on the bundled corpus's engine; same arguments."""
    return default_engine().answer(*args, **kwargs)
