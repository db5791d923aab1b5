"""What the contribution measures cost on top of the plain forward pass.

Budget (DESIGN.md): value norms and ALTI <= 2x the plain forward. For 64, 256 and 512 tokens
of natural text on the embedded default model (MiniLM), and 256 tokens on the embedded chat
model (SmolLM2-135M, when it loads), it times, interleaved in one run and after a warm-up:

- ``forward``: ``model(input_ids, output_attentions=True)`` under ``torch.inference_mode()``;
- ``capture``: :func:`analysis.contributions.capture_layers` (the same forward with hooks);
- ``value norms``, ``ALTI``: :func:`value_norms` and :func:`alti` on that capture;
- ``value zeroing``: :func:`value_zeroing` on it (about ``T`` forward passes; fewer repeats).

Ratios are to the plain forward: ``alone`` is the measure on a capture (what it adds to an
extraction whose own pass :func:`record_layers` recorded), ``+cap`` is ``capture_layers``
(a second, hooked pass) plus the measure (what ``contributions_for_run`` costs on a bare
run). Medians of the repeats. Run:
``.venv/bin/python benchmarks/bench_contributions.py [--repeats 5] [--zeroing-repeats 1]
[--threads N] [--no-chat] [--no-zeroing]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from analysis.contributions import alti, capture_layers, value_norms, value_zeroing  # noqa: E402
from analysis.models.loading import load_model  # noqa: E402

BUDGET = 2.0
SIZES = (64, 256, 512)
CHAT_SIZES = (256,)


def sample_ids(loaded, tokens: int) -> list[int]:
    """``tokens`` ids of natural text (the bundled samples, repeated), specials included."""
    samples = json.loads((ROOT / "resources" / "samples" / "samples.json").read_text("utf-8"))
    text = " ".join(s["text"] + (" " + s["pair"] if s.get("pair") else "") for s in samples)
    while len(loaded.tokenizer(text, verbose=False)["input_ids"]) < tokens:
        text = text + " " + text
    ids = loaded.tokenizer(text, truncation=True, max_length=tokens)["input_ids"]
    assert len(ids) == tokens, f"wanted {tokens} tokens, got {len(ids)}"
    return ids


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(loaded, tokens: int, repeats: int, zeroing_repeats: int) -> dict[str, float]:
    """Median seconds of each step at ``tokens`` tokens, the steps interleaved."""
    ids = sample_ids(loaded, tokens)
    batch = torch.tensor([ids])

    def forward():
        with torch.inference_mode():
            loaded.model(input_ids=batch, output_attentions=True)

    capture = capture_layers(loaded, ids)
    steps = {
        "forward": forward,
        "capture": lambda: capture_layers(loaded, ids),
        "value norms": lambda: value_norms(capture),
        "ALTI": lambda: alti(capture),
    }
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed(step))
    medians = {name: statistics.median(values) for name, values in times.items()}
    if zeroing_repeats > 0:
        medians["value zeroing"] = statistics.median(
            timed(lambda: value_zeroing(loaded, capture)) for _ in range(zeroing_repeats)
        )
    return medians


def row(label: str, tokens: int, m: dict[str, float]) -> tuple[str, float, float]:
    """One table line, the worst ratio of a measure alone and the worst with the capture."""
    fwd = m["forward"]
    cells = [
        f"{label:<8}",
        f"{tokens:>6}",
        f"{fwd:>8.4f}",
        f"{m['capture']:>8.4f} {m['capture'] / fwd:>5.2f}x",
    ]
    alone = with_capture = 0.0
    for name in ("value norms", "ALTI"):
        alone = max(alone, m[name] / fwd)
        with_capture = max(with_capture, (m["capture"] + m[name]) / fwd)
        cells.append(
            f"{m[name]:>8.4f} {m[name] / fwd:>5.2f}x {(m['capture'] + m[name]) / fwd:>5.2f}x"
        )
    if "value zeroing" in m:
        vz = m["value zeroing"]
        cells.append(f"{vz:>8.2f} {vz / fwd:>6.1f}x")
    else:
        cells.append(f"{'-':>16}")
    return " | ".join(cells), alone, with_capture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--zeroing-repeats", type=int, default=1)
    parser.add_argument("--no-zeroing", action="store_true", help="skip value zeroing")
    parser.add_argument("--no-chat", action="store_true", help="skip the chat model")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default, all cores)"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    zeroing = 0 if args.no_zeroing else args.zeroing_repeats
    models = [("MiniLM", "default", SIZES)]
    if not args.no_chat:
        models.append(("SmolLM2", "smollm2", CHAT_SIZES))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of "
        f"{args.repeats} (value zeroing: {zeroing}) after a warm-up; seconds"
    )
    header = (
        f"{'model':<8} | {'tokens':>6} | {'forward':>8} | {'fwd+capture':>15} | "
        f"{'value norms  alone  +cap':>24} | {'ALTI  alone  +cap':>24} | "
        f"{'value zeroing':>16}"
    )
    print(header)
    print("-" * len(header))
    worst_alone = worst_with = 0.0
    for label, source, sizes in models:
        try:
            loaded = load_model(source)
        except Exception as exc:  # the chat model's package may be missing
            print(f"{label:<8} | not measured: {exc}")
            continue
        for tokens in sizes:
            line, alone, with_capture = row(
                label, tokens, measure(loaded, tokens, args.repeats, zeroing)
            )
            worst_alone = max(worst_alone, alone)
            worst_with = max(worst_with, with_capture)
            print(line, flush=True)
    print(
        "alone: the measure on a capture, x the plain forward (what it adds when the "
        "extraction's own pass is recorded with record_layers); +cap: capture_layers (a "
        "second, hooked pass) + the measure, x the plain forward."
    )
    for name, worst in (("alone", worst_alone), ("+cap", worst_with)):
        verdict = "ok" if worst <= BUDGET else "OVER"
        print(
            f"budget value norms, ALTI <= {BUDGET}x forward ({name}): worst {worst:.2f}x {verdict}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
