"""lfqa-demo backend: RetriBERT, DPR and REALM retrievers and readers in plain PyTorch.

Importing this package loads no model; `load_retriever` / `load_reader` load on first use.
"""

from .errors import CheckpointError, CheckpointNotFoundError, LfqaError
from .loading import clear_loaded_models, load_reader, load_retriever, model_states
from .readers import DPRReader, DPRReaderLogits, RealmReader, RealmReaderLogits, ReaderInputs
from .retrievers import DenseRetriever, RetrieverSpec

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "DPRReader",
    "DPRReaderLogits",
    "DenseRetriever",
    "LfqaError",
    "ReaderInputs",
    "RealmReader",
    "RealmReaderLogits",
    "RetrieverSpec",
    "clear_loaded_models",
    "load_reader",
    "load_retriever",
    "model_states",
]

from .corpus import Corpus, Passage, QAItem, corpus_from_file, corpus_from_hub, load_bundled_corpus, load_bundled_questions  # noqa: E402
from .answers import Answer, ReadResult  # noqa: E402
from .corpus import passages_from_text  # noqa: E402
from .engine import AnswerReport, Comparison, RetrievalEngine, answer, compare, compare_batch, default_engine  # noqa: E402

__all__ += [
    "Answer", "AnswerReport", "ReadResult", "answer", "passages_from_text",
    "Comparison", "Corpus", "Passage", "QAItem", "RetrievalEngine", "compare", "compare_batch", "corpus_from_file",
    "corpus_from_hub", "default_engine", "load_bundled_corpus", "load_bundled_questions",
]
