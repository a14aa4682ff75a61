"""lfqa-demo backend: RetriBERT, DPR and REALM retrievers and readers in plain PyTorch.

Importing this package loads no model; `load_retriever` / `load_reader` load on first use.
"""

from .errors import CheckpointError, CheckpointNotFoundError, LfqaError
from .loading import clear_loaded_models, load_reader, load_retriever
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
]
