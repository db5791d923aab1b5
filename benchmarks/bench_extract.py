"""Extraction overhead against the bare forward pass, on the embedded default model.

Budget (DESIGN.md): ``extract`` <= 1.3x ``model(**inputs, output_attentions=True)``.
For 64, 256 and 512 tokens it times, interleaved, the bare forward (tokenized once, under
``torch.inference_mode()``) and the whole ``extract`` call (tokenization, forward, stacking
the attentions into one numpy array), takes the median of the repeats after a warm-up
and prints a table.
Run: ``.venv/bin/python benchmarks/bench_extract.py [--repeats 5] [--threads N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from analysis.attention.extract import extract  # noqa: E402
from analysis.models.loading import load_model  # noqa: E402

BUDGET = 1.3
SIZES = (64, 256, 512)


def text_of(loaded, tokens: int) -> str:
    """A text the model reads as exactly ``tokens`` tokens (specials included)."""
    specials = loaded.tokenizer.num_special_tokens_to_add(pair=False)
    text = " ".join(["word"] * (tokens - specials))
    count = len(loaded.tokenizer(text)["input_ids"])
    assert count == tokens, f"wanted {tokens} tokens, got {count}"
    return text


def bare_forward(loaded, inputs) -> float:
    """Seconds for ``model(**inputs, output_attentions=True)`` alone."""
    start = time.perf_counter()
    with torch.inference_mode():
        loaded.model(**inputs, output_attentions=True)
    return time.perf_counter() - start


def full_extract(loaded, text: str) -> float:
    """Seconds for the whole ``extract`` call."""
    start = time.perf_counter()
    extract(loaded, text)
    return time.perf_counter() - start


def measure(loaded, tokens: int, repeats: int) -> tuple[float, float]:
    """Median ``(bare forward, extract)`` seconds at ``tokens`` tokens, interleaved."""
    text = text_of(loaded, tokens)
    inputs = loaded.tokenizer(text, return_tensors="pt")
    bare_forward(loaded, inputs)  # warm-up
    full_extract(loaded, text)
    bare, full = [], []
    for _ in range(repeats):
        bare.append(bare_forward(loaded, inputs))
        full.append(full_extract(loaded, text))
    return statistics.median(bare), statistics.median(full)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default, all cores)"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    loaded = load_model()
    print(
        f"model: {loaded.facts.name}, {loaded.facts.num_layers} layers x "
        f"{loaded.facts.num_heads} heads; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {args.repeats} after a warm-up"
    )
    print(f"{'tokens':>6} | {'bare forward s':>14} | {'extract s':>9} | {'ratio':>5} | budget")
    print(f"{'-' * 6}-+-{'-' * 14}-+-{'-' * 9}-+-{'-' * 5}-+-------")
    worst = 0.0
    for tokens in SIZES:
        bare, full = measure(loaded, tokens, args.repeats)
        ratio = full / bare
        worst = max(worst, ratio)
        verdict = "ok" if ratio <= BUDGET else "OVER"
        print(f"{tokens:>6} | {bare:>14.4f} | {full:>9.4f} | {ratio:>5.2f} | {verdict}")
    print(f"budget: extract <= {BUDGET}x bare forward; worst ratio {worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
