"""BERT WordPiece tokenization with `tokenizers`, built from a checkpoint's vocab.txt.

The pipeline matches `BertTokenizerFast` (transformers 4.40.2): BertNormalizer (clean
text, CJK characters split, lower-casing with accent stripping when lower-casing),
BertPreTokenizer, WordPiece with "[UNK]", and the `[CLS] A [SEP] (B [SEP])` template with
token types 0/1. We always build it from vocab.txt (every checkpoint here ships one;
REALM ships no tokenizer.json) so there is one code path.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ..errors import CheckpointError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass
class TokenBatch:
    """Padded model inputs, all int64 arrays of shape [n, L] (L = longest row)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def lengths(self) -> np.ndarray:
        return self.attention_mask.sum(axis=1)


def read_vocab(path: Path, expected_size: int | None = None) -> dict[str, int]:
    """vocab.txt as {token: id}, one token a line; CR/LF line ends both accepted."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    vocab: dict[str, int] = {}
    for i, line in enumerate(lines):
        vocab[line.rstrip("\r")] = i  # a repeated token keeps its last id, as BertTokenizer does
    if expected_size is not None and len(lines) != expected_size:
        raise CheckpointError(f"{path} has {len(lines)} entries but config.json says vocab_size {expected_size}.")
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise CheckpointError(f"{path} lacks the special tokens {missing}; is it a BERT WordPiece vocabulary?")
    return vocab


def _encodable(text: str) -> str:
    """`text` with lone surrogates (from JSON escapes like "\\ud800") replaced by U+FFFD, which
    the Rust tokenizer cannot take otherwise; one code unit each, so offsets still hold."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


class WordPieceTokenizer:
    """Lower-casing BERT WordPiece tokenizer; thread-safe (each max length gets its own frozen copy)."""

    def __init__(self, vocab: dict[str, int], *, lowercase: bool = True, chinese_chars: bool = True):
        self.vocab = vocab
        self.lowercase = lowercase
        self.chinese_chars = chinese_chars
        self.pad_id, self.cls_id, self.sep_id = vocab["[PAD]"], vocab["[CLS]"], vocab["[SEP]"]
        self._frozen: dict[int | None, Tokenizer] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path, vocab_size: int | None = None) -> "WordPieceTokenizer":
        """Read vocab.txt and the casing flags of tokenizer_config.json (absent: lower-case, as BERT uncased)."""
        options = {}
        config_path = directory / "tokenizer_config.json"
        if config_path.is_file():
            options = json.loads(config_path.read_text(encoding="utf-8"))
        return cls(
            read_vocab(directory / "vocab.txt", vocab_size),
            lowercase=bool(options.get("do_lower_case", True)),
            chinese_chars=bool(options.get("tokenize_chinese_chars", True)),
        )

    def _build(self, max_length: int | None) -> Tokenizer:
        tok = Tokenizer(models.WordPiece(self.vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        # strip_accents=None means "strip when lower-casing", as BERT uncased does.
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=self.chinese_chars, strip_accents=None, lowercase=self.lowercase
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", self.cls_id), ("[SEP]", self.sep_id)],
        )
        tok.decoder = decoders.WordPiece(prefix="##")
        # As in BertTokenizerFast, special tokens typed in the text are matched before normalisation.
        tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
        if max_length is not None:
            tok.enable_truncation(max_length, strategy="longest_first")
        return tok

    def _tokenizer(self, max_length: int | None) -> Tokenizer:
        # enable_truncation mutates the Rust object, so each max length gets its own copy that
        # is never mutated again; encoding with it from many threads is then safe.
        with self._lock:
            if max_length not in self._frozen:
                self._frozen[max_length] = self._build(max_length)
            return self._frozen[max_length]

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, max_length: int) -> list[Encoding]:
        """`[CLS] text [SEP]` (or `[CLS] text [SEP] pair [SEP]`), truncated longest-first to max_length."""
        if max_length < 3:
            raise ValueError(f"max_length must be at least 3 (room for [CLS] and [SEP]), got {max_length}")
        tok = self._tokenizer(max_length)
        if pairs is None:
            return tok.encode_batch([_encodable(t) for t in texts])
        return tok.encode_batch([(_encodable(a), _encodable(b)) for a, b in zip(texts, pairs)])

    def encode_plain(self, texts: Sequence[str]) -> list[Encoding]:
        """Word pieces with character offsets and no special tokens or truncation (for readers)."""
        return self._tokenizer(None).encode_batch([_encodable(t) for t in texts], add_special_tokens=False)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The word piece of each id ("##" marks a piece that continues a word)."""
        tok = self._tokenizer(None)
        return [tok.id_to_token(int(i)) or "[UNK]" for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer(None).decode(list(ids))

    def pad(self, rows: Sequence[Sequence[int]], type_rows: Sequence[Sequence[int]] | None = None) -> TokenBatch:
        """Right-pad id rows into a TokenBatch; token types default to 0."""
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
            if type_rows is not None:
                types[i, : len(row)] = type_rows[i]
        return TokenBatch(ids, mask, types)
