"""How close passage encoding runs to this CPU's matrix-multiply bound, per family, in one run.

Prints the CPU and its flags, then per precision (bf16 where the CPU has native bf16, and fp32):
- the GEMM rate of the encoder's own matrices (rows = the batch token budget; the best of
  `F.linear` and a weight packed for oneDNN) and the bound: their FLOP-weighted rate;
- per family (full-size random-weight checkpoints, real bundled passages): tokens/s, the
  encoder's GFLOP/s counted from the token rows it actually computes (real tokens; the padding
  of each batch and the last layer's [CLS]-only rows accounted for) and that over the bound,
  for the encoder as it was before packing ("plain", LFQA_PACKED_LINEAR=0) and packed (what
  the app runs where the section's header says so), run in turns so that both see the same
  machine;
- with --profile, where one pass's time goes (matrix multiplies, attention, LayerNorm, GELU,
  element-wise, copies and casts, outside torch ops);
- with --options, the alternatives measured against the current path on one family: SDPA's
  fused attention, other token budgets, torch.compile (inductor, frozen weights) and dynamic
  int8 quantisation, each with its fidelity (cosine to fp32) where it changes the numbers.

    .venv/bin/python benchmarks/bench_encoder_bound.py [--passages 96] [--dtypes bf16,float32]
        [--families retribert,dpr,realm] [--rounds 3] [--profile] [--options] [--json out.json]

The target (issue 23): passage encoding >= 70% of the bf16 bound per family on a CPU with AMX
or AVX512-BF16, and the fp32 path >= 90% of its bound on an AVX2 CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ["LFQA_PACKED_LINEAR"] = "0"  # models load plain; the packed copies are made here (see Encoders)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_retrieval import specs  # noqa: E402
from full_size_checkpoints import default_dir, write_all  # noqa: E402

from lfqa_demo import load_retriever  # noqa: E402
from lfqa_demo.models import bert as bert_module  # noqa: E402
from lfqa_demo.models import packed_linear  # noqa: E402
from lfqa_demo.models.bert import BertConfig  # noqa: E402
from lfqa_demo.models.devices import cpu_flags, cpu_has_fast_bf16  # noqa: E402
from lfqa_demo.models.retrievers import BATCH_TOKENS, DenseRetriever, length_batches  # noqa: E402
from lfqa_demo.retrieval.corpus import load_bundled_corpus  # noqa: E402

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
DTYPES = {"bf16": torch.bfloat16, "float32": torch.float32}


def cpu_line() -> str:
    """The CPU's model name and which of FLAGS it has (Linux /proc/cpuinfo, as devices.py reads it)."""
    flags = cpu_flags()
    if not flags:
        return f"{platform.processor() or 'unknown CPU'} (no /proc/cpuinfo: flags unknown)"
    text = Path("/proc/cpuinfo").read_text()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    have = " ".join(f for f in FLAGS if f in flags)
    return f"{name}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads; flags: {have}"


# -- FLOPs ------------------------------------------------------------------------------------
def layer_linear_shapes(config: BertConfig) -> list[tuple[int, int]]:
    """(in, out) of one encoder layer's matrices: q, k, v, attention output, up, down."""
    h, i = config.hidden_size, config.intermediate_size
    return [(h, h)] * 4 + [(h, i), (i, h)]


def sequence_flops(n: int, config: BertConfig, cls_only: bool = True) -> float:
    """Multiply-add FLOPs (x2) of the encoder over one sequence of n computed rows; with
    `cls_only` the last layer computes keys and values for all rows, the rest for [CLS] alone."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    full = 2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h  # linears + scores and weighted sum
    if not cls_only:
        return layers * full
    last = 2 * n * 2 * h * h + 2 * (2 * h * h + 2 * h * i) + 4 * n * h  # k, v on n rows; q, out, FFN on 1
    return (layers - 1) * full + last


def batch_flops(lengths: list[int], config: BertConfig) -> tuple[float, float]:
    """(useful, computed) FLOPs of encoding sequences of these lengths in the encoder's batches:
    useful counts each sequence's real tokens, computed its padded rows."""
    useful = sum(sequence_flops(n, config) for n in lengths)
    computed = 0.0
    for batch in length_batches(lengths, 64, BATCH_TOKENS):
        padded = max(lengths[i] for i in batch)
        computed += len(batch) * sequence_flops(padded, config)
    return useful, computed


# -- the GEMM bound ---------------------------------------------------------------------------
def _seconds(fn, min_seconds: float = 0.3) -> float:
    """The median time of fn over a few timed rounds of enough calls to last ~min_seconds."""
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        fn()
        calls += 1
    per_round = max(1, int(calls * min_seconds / 0.05 / 3))
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - start) / per_round)
    return statistics.median(rounds)


def gemm_rates(config: BertConfig, dtype: torch.dtype, rows: int = BATCH_TOKENS) -> dict[str, float]:
    """GFLOP/s per distinct (in, out) shape of the encoder at `rows` rows, and "bound": the
    FLOP-weighted rate of one layer's six matrices (its time is the sum of theirs)."""
    torch.manual_seed(0)
    rates: dict[str, float] = {}
    with torch.inference_mode():
        for k, n in sorted(set(layer_linear_shapes(config))):
            x = torch.randn(rows, k, dtype=dtype)
            linear = torch.nn.Linear(k, n).to(dtype).requires_grad_(False)
            best = _seconds(lambda: F.linear(x, linear.weight, linear.bias))
            if packed_linear.packed_kernels_work(dtype):
                packed = packed_linear.PackedLinear(linear)
                best = min(best, _seconds(lambda: packed(x)))
            rates[f"{k}x{n}"] = 2 * rows * k * n / best / 1e9
    shapes = layer_linear_shapes(config)
    total = sum(2 * rows * k * n for k, n in shapes)
    rates["bound"] = total / sum(2 * rows * k * n / (rates[f"{k}x{n}"] * 1e9) for k, n in shapes) / 1e9
    return rates


def app_packs(dtype: torch.dtype) -> bool:
    """Whether the app, without LFQA_PACKED_LINEAR set, packs models in `dtype` on this CPU."""
    saved = os.environ.pop("LFQA_PACKED_LINEAR", None)
    try:
        return packed_linear.packing_applies("cpu", dtype)
    finally:
        if saved is not None:
            os.environ["LFQA_PACKED_LINEAR"] = saved


# -- the encoders -----------------------------------------------------------------------------
@dataclass
class Encoders:
    """One family's retriever, and its passage module plain and packed (what the loader does now)."""

    retriever: DenseRetriever
    variants: dict[str, torch.nn.Module]

    @classmethod
    def load(cls, family: str, root: Path, dtype: torch.dtype) -> "Encoders":
        retriever = load_retriever(specs(root)[family], device="cpu", dtype=dtype)
        plain = retriever.passage_head
        variants = {"plain": plain}
        if packed_linear.packed_kernels_work(dtype):
            variants["packed"] = copy.deepcopy(plain)
            packed_linear.pack_encoder_linears(variants["packed"])
        return cls(retriever, variants)

    @contextlib.contextmanager
    def using(self, name: str):
        saved = self.retriever._passage_head
        self.retriever._passage_head = self.variants[name]
        try:
            yield self.retriever
        finally:
            self.retriever._passage_head = saved

    @property
    def config(self) -> BertConfig:
        return next(m for m in self.variants["plain"].modules() if isinstance(m, bert_module.BertModel)).config


def encode_rate(retriever: DenseRetriever, passages: list[dict], tokens: int, **kw) -> float:
    start = time.perf_counter()
    retriever.encode_passages(passages, **kw)
    return tokens / (time.perf_counter() - start)


def measure_family(enc: Encoders, passages: list[dict], rounds: int) -> dict[str, float]:
    """Median tokens/s of each variant, the variants taking turns (the machine's speed wanders)."""
    tokens = sum(len(ids) for ids, _ in enc.retriever.tokenize_passages(passages))
    for name in enc.variants:
        with enc.using(name) as r:
            r.encode_passages(passages[:8])  # warm: first-call allocations, oneDNN primitives
    rates: dict[str, list[float]] = {name: [] for name in enc.variants}
    for _ in range(rounds):
        for name in enc.variants:
            with enc.using(name) as r:
                rates[name].append(encode_rate(r, passages, tokens))
    return {name: statistics.median(v) for name, v in rates.items()}


# -- the profile ------------------------------------------------------------------------------
KINDS = {
    "matrix multiplies": ("aten::addmm", "aten::mm", "mkldnn::_linear_pointwise", "aten::linear"),
    "attention (bmm, softmax)": ("aten::bmm", "aten::_softmax", "aten::baddbmm", "aten::_scaled_dot_product"),
    "LayerNorm": ("aten::native_layer_norm",),
    "GELU": ("aten::gelu",),
    "element-wise (add, mul, tanh)": ("aten::add", "aten::mul", "aten::rsub", "aten::sub", "aten::tanh"),
    "copies and casts": ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous"),
    "embeddings": ("aten::index_select", "aten::embedding"),
}


def profile_pass(retriever: DenseRetriever, passages: list[dict]) -> dict[str, float]:
    """Seconds of one encoding pass by kind of work (self time of torch ops; the rest of the
    wall time is outside torch ops: tokenization, padding, Python)."""
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        retriever.encode_passages(passages)
    wall = time.perf_counter() - start
    out = {kind: 0.0 for kind in KINDS} | {"other torch ops": 0.0}
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        kind = next((k for k, names in KINDS.items() if event.key.startswith(names)), "other torch ops")
        out[kind] += seconds
    out["outside torch ops"] = max(0.0, wall - sum(out.values()))
    out["wall"] = wall
    return out


# -- the options ------------------------------------------------------------------------------
@contextlib.contextmanager
def sdpa_attention():
    """The encoder with SDPA's fused attention in bf16 on the CPU (bert.py uses two matmuls there)."""
    original = bert_module.BertSelfAttention.forward

    def forward(self, x, mask_bias, queries=None):
        b, t, h = x.shape
        q_in = x if queries is None else queries

        def heads(y, n):
            return y.view(b, n, self.num_heads, h // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.query(q_in), q_in.shape[1]), heads(self.key(x), t), heads(self.value(x), t)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_bias)
        return y.transpose(1, 2).reshape(b, q_in.shape[1], h)

    bert_module.BertSelfAttention.forward = forward
    try:
        yield
    finally:
        bert_module.BertSelfAttention.forward = original


class _Compiled(torch.nn.Module):
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.compiled = torch.compile(module.embed_passages, dynamic=True)

    def embed_passages(self, *args):
        return self.compiled(*args)


def options(family: str, root: Path, passages: list[dict], rounds: int) -> list[tuple[str, float, float, str]]:
    """(option, tokens/s, tokens/s of the current path measured beside it, note) rows."""
    enc = Encoders.load(family, root, torch.bfloat16)
    current = "packed" if "packed" in enc.variants else "plain"
    tokens = sum(len(ids) for ids, _ in enc.retriever.tokenize_passages(passages))
    fp32 = load_retriever(specs(root)[family], device="cpu", dtype=torch.float32)
    reference = torch.from_numpy(fp32.encode_passages(passages))  # (n, dim) float32

    def cosine(vectors) -> float:
        return F.cosine_similarity(torch.from_numpy(vectors), reference).min().item()

    def turns(label: str, setup, note: str = "", **kw) -> tuple[str, float, float, str]:
        ours, base = [], []
        for _ in range(rounds):
            with enc.using(current) as r:
                base.append(encode_rate(r, passages, tokens))
            with setup() as r:
                ours.append(encode_rate(r, passages, tokens, **kw))
        return label, statistics.median(ours), statistics.median(base), note

    rows = []
    with enc.using(current) as r:
        rows.append(
            ("current (" + current + ")", 0.0, 0.0, f"min cosine to fp32 {cosine(r.encode_passages(passages)):.5f}")
        )

    @contextlib.contextmanager
    def fused_attention():
        with sdpa_attention(), enc.using(current) as r:
            yield r

    rows.append(turns("SDPA fused attention in bf16", fused_attention))
    for budget in (512, 2048, 4096):

        @contextlib.contextmanager
        def same():
            with enc.using(current) as r:
                yield r

        rows.append(turns(f"token budget {budget} (now {BATCH_TOKENS})", same, batch_tokens=budget))

    import torch._inductor.config as inductor

    inductor.freezing = True  # weights folded in as constants and packed for oneDNN
    enc.variants["compiled"] = _Compiled(enc.variants["plain"])
    start = time.perf_counter()
    with enc.using("compiled") as r:
        r.encode_passages(passages)  # compiles, then recompiles as shapes first vary
    compile_s = time.perf_counter() - start
    with enc.using("compiled") as r:
        note = f"compile + first pass {compile_s:.0f} s; min cosine to fp32 {cosine(r.encode_passages(passages)):.5f}"
    rows.append(turns("torch.compile (inductor, frozen, dynamic)", lambda: enc.using("compiled"), note))

    with contextlib.redirect_stderr(open(os.devnull, "w")):
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(fp32.passage_head), {torch.nn.Linear}, dtype=torch.qint8
        )

    @contextlib.contextmanager
    def int8():
        saved = fp32._passage_head
        fp32._passage_head = quantized
        try:
            yield fp32
        finally:
            fp32._passage_head = saved

    with int8() as r:
        note = f"min cosine to fp32 {cosine(r.encode_passages(passages)):.5f}; torch marks the API deprecated"
    rows.append(turns("dynamic int8 (fp32 model, qint8 linears)", int8, note))
    return rows


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=96, help="bundled passages encoded per pass")
    parser.add_argument("--dtypes", default="bf16,float32", help="bf16 is skipped on a CPU without native bf16")
    parser.add_argument("--families", default="retribert,dpr,realm")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per variant (the median is reported)")
    parser.add_argument("--profile", action="store_true", help="where one pass's time goes, per family")
    parser.add_argument("--options", action="store_true", help="measure the alternatives (minutes: compiles)")
    parser.add_argument("--options-family", default="dpr")
    parser.add_argument("--checkpoints", type=Path, default=default_dir())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    write_all(args.checkpoints)
    passages = load_bundled_corpus().as_dicts()[: args.passages]
    print(f"CPU: {cpu_line()}")
    print(f"torch {torch.__version__}; {len(passages)} bundled passages per pass; batches of ~{BATCH_TOKENS} tokens")
    report: dict = {"cpu": cpu_line(), "torch": torch.__version__, "passages": len(passages), "rows": []}
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name.strip()]
        if dtype == torch.bfloat16 and not cpu_has_fast_bf16():
            print("\nbf16: skipped, this CPU has no native bf16 (avx512_bf16 / amx_bf16); the app runs fp32 here")
            continue
        print(f"\n== {dtype_name} (the app packs {dtype_name} on this CPU: {'yes' if app_packs(dtype) else 'no'})")
        print(
            f"{'family':10s} {'variant':7s} {'tokens/s':>9s} {'GFLOP/s':>8s} {'padding':>8s} "
            f"{'bound GFLOP/s':>13s} {'of bound':>8s}"
        )
        for family in args.families.split(","):
            enc = Encoders.load(family, args.checkpoints, dtype)
            lengths = [len(ids) for ids, _ in enc.retriever.tokenize_passages(passages)]
            useful, computed = batch_flops(lengths, enc.config)
            per_token = useful / sum(lengths)
            gemm = gemm_rates(enc.config, dtype)  # right before this family's runs: same machine state
            rates = measure_family(enc, passages, args.rounds)
            for variant, rate in rates.items():
                gflops = rate * per_token / 1e9
                row = {
                    "dtype": dtype_name,
                    "family": family,
                    "variant": variant,
                    "tokens_per_s": rate,
                    "gflops": gflops,
                    "padding": computed / useful - 1,
                    "bound_gflops": gemm["bound"],
                    "of_bound": gflops / gemm["bound"],
                    "gemm": gemm,
                    "mflop_per_token": per_token / 1e6,
                }
                report["rows"].append(row)
                print(
                    f"{family:10s} {variant:7s} {rate:9.0f} {gflops:8.0f} {row['padding']:8.1%} "
                    f"{gemm['bound']:13.0f} {row['of_bound']:8.1%}"
                )
            shapes = ", ".join(f"{k} {v:.0f}" for k, v in gemm.items() if k != "bound")
            print(f"{'':10s} GEMM GFLOP/s at {BATCH_TOKENS} rows: {shapes}; {per_token / 1e6:.0f} MFLOP a token")
            if args.profile:
                best = max(rates, key=rates.get)
                with enc.using(best) as r:
                    spent = profile_pass(r, passages)
                wall = spent.pop("wall")
                parts = ", ".join(f"{k} {v / wall:.0%}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
                print(f"{'':10s} profile of {best} ({wall:.2f} s, profiler on): {parts}")
                report.setdefault("profiles", {})[f"{dtype_name}/{family}"] = spent | {"wall": wall}
    if args.options:
        if not cpu_has_fast_bf16():
            print("\noptions: skipped (they are bf16 options; this CPU has no native bf16)")
        else:
            print(f"\n== options, bf16, {args.options_family} (each against the current path, in turns)")
            print(f"{'option':45s} {'tokens/s':>9s} {'current':>8s} {'ratio':>6s}  note")
            for label, ours, base, note in options(args.options_family, args.checkpoints, passages, args.rounds):
                figures = f"{ours:9.0f} {base:8.0f} {ours / base:6.2f}" if base else f"{'':9s} {'':8s} {'':6s}"
                print(f"{label:45s} {figures}  {note}")
                report.setdefault("options", []).append(
                    {"option": label, "tokens_per_s": ours, "current": base, "note": note}
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
