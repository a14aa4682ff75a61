"""Write the test fixtures: tiny random-weight checkpoints in each real hub repo's layout,
and the reference implementation's outputs on hard inputs.

Development only. Runs in a throwaway virtualenv holding transformers 4.40.2 (the last
release with RetriBERT, DPR and REALM), never in the project's environment:

    bash tools/make_fixtures.sh        # makes the venv, then runs this script

Writes tests/fixtures/hub/<org>--<name>/ (one folder per default hub repo, with that repo's
file list and quirks) and tests/fixtures/reference/ (inputs.json, tokens.json, *.npz).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    BertTokenizer,
    BertTokenizerFast,
    DPRConfig,
    DPRContextEncoder,
    DPRContextEncoderTokenizerFast,
    DPRQuestionEncoder,
    DPRQuestionEncoderTokenizerFast,
    DPRReader,
    DPRReaderTokenizerFast,
    RealmConfig,
    RealmEmbedder,
    RealmReader,
    RealmTokenizerFast,
    RetriBertConfig,
    RetriBertModel,
    RetriBertTokenizerFast,
)

assert transformers.__version__ == "4.40.2", transformers.__version__

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "tests" / "fixtures" / "hub"
REF = ROOT / "tests" / "fixtures" / "reference"
SHARED = ROOT.parent / "shared" / "data" / "squad2-dev-5" / "passages.jsonl"

TINY = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=512, type_vocab_size=2)
# REALM: gelu_new; the reader's span LayerNorm has eps 1e-3.
REALM_TINY = dict(
    num_hidden_layers=2,
    hidden_act="gelu_new",
    retriever_proj_size=16,
    span_hidden_size=24,
    max_span_width=10,
    reader_layer_norm_eps=1e-3,
    reader_beam_size=5,
    **TINY,
)

# ---- hard inputs ---------------------------------------------------------------------------
LONG = " ".join(["the normans conquered england in 1066 and built castles"] * 80)  # ~800 pieces
QUESTIONS = [
    "who was the norse leader?",
    "",
    "Ça va? Über naïve café résumé Ångström",
    "北京是中国的首都吗？東京",
    "emoji 🙂 test 👍🏽 and ❤️",
    "control\x00chars\x07 here\tand\r\nthere\x1b",
    "   lots   of    spaces   ",
    "[SEP] special [CLS] tokens [sep] [MASK]",
    "ﬁne ligature ＦＵＬＬＷＩＤＴＨ ½ ™",
    "Ελληνικά and Кириллица and مرحبا and สวัสดีครับ",
    "e\u0301 combining, zero\u200bwidth, \ufeffbom and nbsp\xa0here",
    "don't stop-believing; e.g. U.S.A. costs $3.14 (approx.)",
    "supercalifragilisticexpialidocious" * 4,
    LONG,
]
PASSAGES = [
    {
        "title": "Normans",
        "text": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
        "a region in France. Their leader was Rollo.",
    },
    {"title": "", "text": "A passage with an empty title about Ça va and naïve cafés."},
    {"title": "東京", "text": "東京は日本の首都です。Tokyo is the capital of Japan 🙂."},
    {"title": "Empty text", "text": ""},
    {"title": "Control\x00 title", "text": "Tabs\tand\r\nnewlines\x07 and [SEP] inside the text."},
    {"title": "Long", "text": LONG},
    {"title": "Ελληνικά", "text": "Ελληνικά and Кириллица and مرحبا and สวัสดีครับ ½ ™ ＦＵＬＬ"},
]
READER_QUESTIONS = ["who was the norse leader?", "Ça va? où est le café 東京"]
READER_PASSAGES = [PASSAGES[0], PASSAGES[1], PASSAGES[2], PASSAGES[4], PASSAGES[5]]  # reader_beam_size 5
READER_RELEVANCE = [1.5, -0.25, 0.0, 2.0, -3.0]


def build_vocab(path: Path, size: int = 1500) -> list[str]:
    """A small uncased WordPiece vocabulary trained on SQuAD paragraphs and the hard inputs,
    laid out like bert-base-uncased: [PAD]=0, [unused0..98], [UNK]=100, [CLS], [SEP], [MASK]."""
    texts = [json.loads(line)["text"] for line in SHARED.read_text(encoding="utf-8").splitlines()]
    texts += QUESTIONS[:-2] + [p["text"] for p in PASSAGES[:-2]]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=size - 99, special_tokens=specials, limit_alphabet=200)
    tok.train_from_iterator(texts, trainer)
    learned = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    rest = [t for t, _ in learned if t not in specials]
    rest.remove("東") if "東" in rest else None  # keep one CJK character unknown: [UNK] must match too
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + rest
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return vocab


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Replace the init with weights large enough that every term matters (biases, LN, eps)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight") or name.endswith("layer_normalization.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "dense_intermediate" in name:
                # small span activations, so that the reader's LayerNorm eps 1e-3 shows.
                p.copy_(0.03 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.25 * torch.randn(p.shape, generator=g))


def save_checkpoint(model: torch.nn.Module, config, folder: Path, extra: dict[str, torch.Tensor]) -> None:
    """config.json and pytorch_model.bin as a plain torch.save of the state dict (as the 2020-21
    uploads are), plus the unused tensors those files carry."""
    folder.mkdir(parents=True, exist_ok=True)
    config.architectures = [type(model).__name__]
    config.save_pretrained(folder)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state.update(extra)
    torch.save(state, folder / "pytorch_model.bin")


def unused_extras(prefix: str, hidden: int, g: torch.Generator, pooler: bool) -> dict[str, torch.Tensor]:
    extra = {f"{prefix}.embeddings.position_ids": torch.arange(512).unsqueeze(0)}
    if pooler:  # DPR files keep BERT's pooler although DPR reads h_CLS
        extra[f"{prefix}.pooler.dense.weight"] = torch.randn(hidden, hidden, generator=g)
        extra[f"{prefix}.pooler.dense.bias"] = torch.randn(hidden, generator=g)
    return extra


def write_tokenizer_files(folder: Path, vocab_file: Path, kind: str) -> None:
    """Each repo's tokenizer files: RetriBERT tokenizer.json + vocab.txt only; DPR adds a
    one-line tokenizer_config.json; REALM has no tokenizer.json."""
    shutil.copy(vocab_file, folder / "vocab.txt")
    if kind in ("retribert", "dpr"):
        BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)._tokenizer.save(
            str(folder / "tokenizer.json")
        )
    if kind == "dpr":
        (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}', encoding="utf-8")
    if kind.startswith("realm"):
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "RealmTokenizer"}),
            encoding="utf-8",
        )
        (folder / "special_tokens_map.json").write_text(
            json.dumps(
                {
                    "unk_token": "[UNK]",
                    "sep_token": "[SEP]",
                    "pad_token": "[PAD]",
                    "cls_token": "[CLS]",
                    "mask_token": "[MASK]",
                }
            ),
            encoding="utf-8",
        )
    if kind == "realm-reader":  # the real vocab.txt of this repo has CRLF line ends
        (folder / "vocab.txt").write_bytes(vocab_file.read_bytes().replace(b"\n", b"\r\n"))


def main() -> None:
    torch.manual_seed(0)
    shutil.rmtree(HUB, ignore_errors=True)
    shutil.rmtree(REF, ignore_errors=True)
    HUB.mkdir(parents=True)
    REF.mkdir(parents=True)
    vocab_file = REF / "vocab.txt"
    vocab = build_vocab(vocab_file)
    V = len(vocab)
    g = torch.Generator().manual_seed(1)
    dirs = {}

    # RetriBERT: 3 layers here (8 in the real one), shared encoders, 16-d projections.
    d = dirs["retribert"] = HUB / "yjernite--retribert-base-uncased"
    cfg = RetriBertConfig(
        vocab_size=V, num_hidden_layers=3, projection_dim=16, share_encoders=True, hidden_act="gelu", **TINY
    )
    m = RetriBertModel(cfg)
    randomize(m, 10)
    save_checkpoint(m, cfg, d, unused_extras("bert_query", 32, g, pooler=False))
    write_tokenizer_files(d, vocab_file, "retribert")

    # DPR: three repos, projection_dim 0.
    for key, repo, cls, prefix, seed in [
        (
            "dpr_q",
            "facebook--dpr-question_encoder-single-nq-base",
            DPRQuestionEncoder,
            "question_encoder.bert_model",
            20,
        ),
        ("dpr_ctx", "facebook--dpr-ctx_encoder-single-nq-base", DPRContextEncoder, "ctx_encoder.bert_model", 21),
        ("dpr_reader", "facebook--dpr-reader-single-nq-base", DPRReader, "span_predictor.encoder.bert_model", 22),
    ]:
        d = dirs[key] = HUB / repo
        cfg = DPRConfig(vocab_size=V, num_hidden_layers=2, projection_dim=0, hidden_act="gelu", **TINY)
        m = cls(cfg)
        randomize(m, seed)
        save_checkpoint(m, cfg, d, unused_extras(prefix, 32, g, pooler=True))
        write_tokenizer_files(d, vocab_file, "dpr")

    realm_cfg = dict(vocab_size=V, **REALM_TINY)
    d = dirs["realm"] = HUB / "google--realm-cc-news-pretrained-embedder"
    cfg = RealmConfig(**realm_cfg)
    m = RealmEmbedder(cfg)
    randomize(m, 30)
    save_checkpoint(m, cfg, d, unused_extras("realm", 32, g, pooler=False))
    write_tokenizer_files(d, vocab_file, "realm")
    d = dirs["realm_reader"] = HUB / "google--realm-orqa-nq-reader"
    cfg = RealmConfig(**realm_cfg)
    m = RealmReader(cfg)
    randomize(m, 31)
    save_checkpoint(m, cfg, d, unused_extras("realm", 32, g, pooler=False))
    write_tokenizer_files(d, vocab_file, "realm-reader")

    write_reference(dirs)
    for d in sorted(HUB.iterdir()):
        print(
            f"{d.name}: {sum(f.stat().st_size for f in d.iterdir()) / 1024:.0f} KiB, files "
            f"{sorted(f.name for f in d.iterdir())}"
        )
    print(f"reference: {sum(f.stat().st_size for f in REF.iterdir()) / 1024:.0f} KiB")


def batch_tokens(enc) -> list[list[int]]:
    return [[int(t) for t, m in zip(ids, mask) if m] for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]


def write_reference(dirs: dict[str, Path]) -> None:
    titles = [p["title"] for p in PASSAGES]
    texts = [p["text"] for p in PASSAGES]
    out: dict[str, np.ndarray] = {}
    tokens: dict[str, list] = {}

    with torch.no_grad():
        # RetriBERT: questions and passage *texts*, max length 128, no token types.
        tok = RetriBertTokenizerFast.from_pretrained(dirs["retribert"])
        model = RetriBertModel.from_pretrained(dirs["retribert"]).eval()
        q = tok(QUESTIONS, padding=True, truncation=True, max_length=128, return_tensors="pt")
        p = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        out["retribert_questions"] = model.embed_questions(q.input_ids, q.attention_mask).numpy()
        out["retribert_passages"] = model.embed_answers(p.input_ids, p.attention_mask).numpy()
        tokens["retribert_questions"], tokens["retribert_passages"] = batch_tokens(q), batch_tokens(p)

        # DPR: [CLS] title [SEP] text [SEP] with token types forced to 0, as the original DPR.
        qtok = DPRQuestionEncoderTokenizerFast.from_pretrained(dirs["dpr_q"])
        ctok = DPRContextEncoderTokenizerFast.from_pretrained(dirs["dpr_ctx"])
        qm = DPRQuestionEncoder.from_pretrained(dirs["dpr_q"]).eval()
        cm = DPRContextEncoder.from_pretrained(dirs["dpr_ctx"]).eval()
        q = qtok(QUESTIONS, padding=True, truncation=True, max_length=256, return_tensors="pt")
        p = ctok(titles, texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        out["dpr_questions"] = qm(q.input_ids, q.attention_mask, torch.zeros_like(q.input_ids)).pooler_output.numpy()
        out["dpr_passages"] = cm(p.input_ids, p.attention_mask, torch.zeros_like(p.input_ids)).pooler_output.numpy()
        tokens["dpr_questions"], tokens["dpr_passages"] = batch_tokens(q), batch_tokens(p)

        # REALM embedder: a BERT pair with types 0/1, max length 288.
        tok = RealmTokenizerFast.from_pretrained(dirs["realm"])
        model = RealmEmbedder.from_pretrained(dirs["realm"]).eval()
        q = tok(QUESTIONS, padding=True, truncation=True, max_length=288, return_tensors="pt")
        p = tok(titles, texts, padding=True, truncation=True, max_length=288, return_tensors="pt")
        out["realm_questions"] = model(**q).projected_score.numpy()
        out["realm_passages"] = model(**p).projected_score.numpy()
        tokens["realm_questions"], tokens["realm_passages"] = batch_tokens(q), batch_tokens(p)
        tokens["realm_passage_types"] = [
            [int(t) for t, m in zip(ty, mask) if m] for ty, mask in zip(p["token_type_ids"], p["attention_mask"])
        ]

        # DPR reader: its own tokenizer builds [CLS] q [SEP] title [SEP] text, cut at 350.
        tok = DPRReaderTokenizerFast.from_pretrained(dirs["dpr_reader"])
        model = DPRReader.from_pretrained(dirs["dpr_reader"]).eval()
        for i, question in enumerate(READER_QUESTIONS):
            enc = tok(
                questions=question,
                titles=[p["title"] for p in READER_PASSAGES],
                texts=[p["text"] for p in READER_PASSAGES],
                padding=True,
                truncation=True,
                max_length=350,
                return_tensors="pt",
            )
            res = model(**enc)
            out[f"dpr_reader_{i}_input_ids"] = enc.input_ids.numpy()
            out[f"dpr_reader_{i}_start"] = res.start_logits.numpy()
            out[f"dpr_reader_{i}_end"] = res.end_logits.numpy()
            out[f"dpr_reader_{i}_relevance"] = res.relevance_logits.numpy()

        # REALM reader: [CLS] q [SEP] title [SEP] text [SEP] as a pair (q, "title [SEP] text"),
        # block truncated to fit 320; candidate spans inside the text only.
        tok = RealmTokenizerFast.from_pretrained(dirs["realm_reader"])
        model = RealmReader.from_pretrained(dirs["realm_reader"]).eval()
        assert model.qa_outputs.layer_normalization.eps == 1e-3
        sep = tok.sep_token_id
        for i, question in enumerate(READER_QUESTIONS):
            blocks = [f"{p['title']} [SEP] {p['text']}" for p in READER_PASSAGES]
            enc = tok(
                [question] * len(blocks),
                blocks,
                padding=True,
                truncation="only_second",
                max_length=320,
                return_tensors="pt",
            )
            block_mask = torch.zeros_like(enc.input_ids, dtype=torch.bool)
            for r, (ids, types) in enumerate(zip(enc.input_ids.tolist(), enc.token_type_ids.tolist())):
                seps = [j for j, t in enumerate(ids) if t == sep and types[j] == 1]
                block_mask[r, seps[0] + 1 : seps[-1]] = True  # after the title's [SEP], before the last
            relevance = torch.tensor(READER_RELEVANCE)
            hidden = model.realm(enc.input_ids, attention_mask=enc.attention_mask, token_type_ids=enc.token_type_ids)[0]
            logits, starts, ends = model.qa_outputs(hidden, block_mask)
            logits = logits + relevance[:, None]  # as RealmReader.forward does
            full = model(**enc, relevance_score=relevance, block_mask=block_mask)
            out[f"realm_reader_{i}_input_ids"] = enc.input_ids.numpy()
            out[f"realm_reader_{i}_token_type_ids"] = enc.token_type_ids.numpy()
            out[f"realm_reader_{i}_block_mask"] = block_mask.numpy()
            out[f"realm_reader_{i}_logits"] = logits.numpy()
            out[f"realm_reader_{i}_starts"] = starts.numpy()
            out[f"realm_reader_{i}_ends"] = ends.numpy()
            out[f"realm_reader_{i}_best"] = np.array([int(full.block_idx), int(full.start_pos), int(full.end_pos)])

    # Tokenizer-only parity: every hard string as a single sequence and as (title, text) pairs,
    # at several max lengths, with the fast tokenizer of each family (REALM's built from vocab.txt).
    singles = QUESTIONS + [p["title"] for p in PASSAGES] + [p["text"] for p in PASSAGES]
    pair_list = [(a, b) for a in QUESTIONS[:6] for b in QUESTIONS[:6]] + [(p["title"], p["text"]) for p in PASSAGES]
    families = {
        "retribert": RetriBertTokenizerFast.from_pretrained(dirs["retribert"]),
        "dpr": DPRContextEncoderTokenizerFast.from_pretrained(dirs["dpr_ctx"]),
        "realm": RealmTokenizerFast.from_pretrained(dirs["realm"]),
        "realm_reader": RealmTokenizerFast.from_pretrained(dirs["realm_reader"]),
    }
    cases = {}
    for fam, tok in families.items():
        for max_length in (8, 64, 288, 512):
            cases[f"{fam}/single/{max_length}"] = tok(singles, truncation=True, max_length=max_length)["input_ids"]
            enc = tok(
                [a for a, _ in pair_list],
                [b for _, b in pair_list],
                truncation=True,
                max_length=max_length,
                return_token_type_ids=True,
            )
            cases[f"{fam}/pair/{max_length}"] = enc["input_ids"]
            cases[f"{fam}/pair_types/{max_length}"] = enc["token_type_ids"]
        cases[f"{fam}/plain"] = tok(singles, add_special_tokens=False)["input_ids"]
    slow = BertTokenizer(str(REF / "vocab.txt"), do_lower_case=True)
    differs = [s for s in singles if slow(s)["input_ids"] != families["dpr"](s)["input_ids"]]
    print(
        f"slow BertTokenizer differs from the fast one on {len(differs)} of {len(singles)} strings: "
        f"{[d[:30] for d in differs]}"
    )

    np.savez_compressed(REF / "outputs.npz", **out)
    (REF / "inputs.json").write_text(
        json.dumps(
            {
                "questions": QUESTIONS,
                "passages": PASSAGES,
                "reader_questions": READER_QUESTIONS,
                "reader_passages": READER_PASSAGES,
                "reader_relevance": READER_RELEVANCE,
                "singles": singles,
                "pairs": pair_list,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    (REF / "tokens.json").write_text(json.dumps({"batches": tokens, "cases": cases}), encoding="utf-8")
    (REF / "vocab.txt").unlink()


if __name__ == "__main__":
    sys.exit(main())
