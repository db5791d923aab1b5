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
run). Medians of the repeats.

Then the AOPC table (issue 14): :func:`analysis.attribution.compare_explanations` on a few
sample texts, for the chat model's next token and MiniLM's similarity, of raw attention
(last layer), rollout, flow, value norms, ALTI, value zeroing, Integrated Gradients, Input x
Gradient and occlusion, beside a seeded random importance (the floor). Per explanation and
model: the mean over the texts of AOPC comprehensiveness (higher = more faithful: removing
the tokens it ranks first hurts the target most) and of AOPC sufficiency (lower = more
faithful: those tokens alone keep the target), removed tokens replaced by the PAD token,
bins 1/5/10/20/50%; and the mean Spearman correlation with Integrated Gradients. Units: the
target's, log-probability (nats) for the next token, cosine for the similarity.

Texts (``resources/samples``): for the chat model, each short sample text (and the
question) cut before its last word, plus the case study "The capital of France is"; the
target is the predicted next token, no chat template. For MiniLM, the same sample texts each
paired with a paraphrase written below (the question with its own context), and "The capital
of France is" with the case study's context sentence.

Run: ``.venv/bin/python benchmarks/bench_contributions.py [--repeats 5] [--zeroing-repeats 1]
[--threads N] [--no-chat] [--no-zeroing] [--no-cost] [--no-aopc] [--texts N] [--steps N]
[--json FILE]`` (``--json -`` writes the JSON to stdout after the tables).
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
SAMPLES = ROOT / "resources" / "samples"
SHORT = 200  # characters: the sample texts used for the AOPC table are at most this long
# MiniLM's second texts: a paraphrase of each short sample text (by its name)
PARAPHRASES = {
    "The cat sat on the mat": "A tired cat rested on the rug after hunting a mouse.",
    "Coreference: the trophy and the suitcase": "The suitcase was too small for the trophy.",
    "Agreement across a clause": "Someone lost the keys of the wooden cupboard in the corridor.",
    "Per-token values: Maia explores her world": "The little girl loves discovering everything around her.",
}
CAPITAL = "The capital of France is"
AOPC_METHODS = ("integrated_gradients", "input_x_gradient", "occlusion")
AOPC_VIEWS = ("attention", "rollout", "flow", "value_norm", "alti", "value_zeroing")


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


# --- the AOPC table --------------------------------------------------------------------


def aopc_texts() -> tuple[list[str], list[tuple[str, str]]]:
    """``(chat prompts, MiniLM pairs)`` from the bundled samples (see the module doc)."""
    samples = json.loads((SAMPLES / "samples.json").read_text("utf-8"))
    studies = json.loads((SAMPLES / "case_studies.json").read_text("utf-8"))
    context = next(s["prompt"] for s in studies if "Paris is the capital" in s["prompt"])
    capital_context = context.split("\n")[0].removeprefix("Context: ")
    prompts, pairs = [], []
    for sample in samples:
        if len(sample["text"]) > SHORT:
            continue
        prompts.append(sample["text"].rsplit(" ", 1)[0])
        second = sample.get("pair") or PARAPHRASES.get(sample["name"])
        if second:
            pairs.append((sample["text"], second))
    prompts.append(CAPITAL)
    pairs.append((CAPITAL, capital_context))
    return prompts, pairs


def compare_one(loaded, text: str, pair: str | None, steps: int, views) -> dict:
    """One comparison (with a seeded random importance) as plain numbers per explanation."""
    import numpy as np

    from analysis.attention.extract import extract
    from analysis.attribution import Target, compare_explanations, encode

    target = Target("similarity") if pair is not None else Target()
    run = extract(loaded, text, pair)
    tokens = encode(loaded, text, pair, separate=True).num_tokens if pair is not None else run.num_tokens
    random = np.random.default_rng(len(text)).random(tokens)
    comparison = compare_explanations(loaded, run, target, methods=AOPC_METHODS, views=views, steps=steps,
                                      importances={"random": random})
    out = {"text": text, "pair": pair, "target": comparison.target.description,
           "tokens": comparison.inputs.num_tokens, "candidates": int(comparison.candidates.sum()),
           "explanations": {}}
    for e in comparison.explanations:
        out["explanations"][e.name] = {
            "label": "random (seeded)" if e.name == "random" else e.label,
            "aopc_comprehensiveness": e.faithfulness.aopc_comprehensiveness,
            "aopc_sufficiency": e.faithfulness.aopc_sufficiency,
            "spearman": None if e.spearman != e.spearman else e.spearman,
            "seconds": e.seconds + e.faithfulness_seconds,
            "converged": e.attribution.converged if e.attribution is not None else None,
        }
    return out


def aopc_table(models: list[tuple[str, str, str]], texts: int, steps: int, zeroing: bool) -> dict:
    """Every model's comparisons over its texts, printed as they finish; the means after."""
    import numpy as np

    prompts, pairs = aopc_texts()
    views = AOPC_VIEWS if zeroing else tuple(v for v in AOPC_VIEWS if v != "value_zeroing")
    results: dict[str, dict] = {}
    for label, source, kind in models:
        try:
            loaded = load_model(source)
        except Exception as exc:  # the chat model's package may be missing
            print(f"{label}: not measured: {exc}")
            continue
        cases = [(t, None) for t in prompts] if kind == "next token" else list(pairs)
        runs = []
        for text, pair in cases[:texts]:
            started = time.perf_counter()
            runs.append(compare_one(loaded, text, pair, steps, views))
            print(f"  {label}: {text[:48]!r:<52} {runs[-1]['target'][:40]:<42} "
                  f"{runs[-1]['tokens']:>3} tokens {time.perf_counter() - started:6.1f} s", flush=True)
        names = list(runs[0]["explanations"])
        means = {}
        for name in names:
            rows = [r["explanations"][name] for r in runs]
            spearman = [r["spearman"] for r in rows if r["spearman"] is not None]
            means[name] = {
                "label": rows[0]["label"],
                "aopc_comprehensiveness": float(np.mean([r["aopc_comprehensiveness"] for r in rows])),
                "aopc_sufficiency": float(np.mean([r["aopc_sufficiency"] for r in rows])),
                "spearman_with_ig": float(np.mean(spearman)) if spearman else None,
                "seconds": float(np.mean([r["seconds"] for r in rows])),
            }
        converged = sum(bool(r["explanations"]["integrated_gradients"]["converged"]) for r in runs)
        results[label] = {"target": kind, "texts": len(runs), "ig_converged": converged, "ig_steps": steps,
                          "means": means, "runs": runs}
    print_aopc(results)
    return results


def print_aopc(results: dict) -> None:
    if not results:
        return
    labels = list(results)
    names = list(dict.fromkeys(n for r in results.values() for n in r["means"]))
    titles = [f"{label} {results[label]['target']} ({results[label]['texts']} texts)" for label in labels]
    head = f"{'explanation':<26}" + "".join(f" | {title:^31}" for title in titles)
    sub = f"{'':<26}" + "".join(f" | {'comp':>7} {'suff':>7} {'rho IG':>7} {'s':>7}" for _ in labels)
    print()
    print("Mean AOPC over the texts: comprehensiveness (higher = more faithful), sufficiency (lower = "
          "more faithful), Spearman with IG, seconds per text")
    print(head)
    print(sub)
    print("-" * len(head))
    for name in names:
        cells = []
        label = next(r["means"][name]["label"] for r in results.values() if name in r["means"])
        for model in labels:
            m = results[model]["means"].get(name)
            if m is None:
                cells.append(f" | {'-':>7} {'-':>7} {'-':>7} {'-':>7}")
                continue
            rho = "-" if m["spearman_with_ig"] is None else f"{m['spearman_with_ig']:.2f}"
            cells.append(f" | {m['aopc_comprehensiveness']:>7.3f} {m['aopc_sufficiency']:>7.3f} {rho:>7} "
                         f"{m['seconds']:>7.2f}")
        print(f"{label:<26}" + "".join(cells))
    for model, r in results.items():
        print(f"{model}: Integrated Gradients ({r['ig_steps']} steps) converged on {r['ig_converged']} of "
              f"{r['texts']} texts (|delta| <= 5% of |f(x) - f(baseline)|)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--zeroing-repeats", type=int, default=1)
    parser.add_argument("--no-zeroing", action="store_true", help="skip value zeroing")
    parser.add_argument("--no-chat", action="store_true", help="skip the chat model")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost table")
    parser.add_argument("--no-aopc", action="store_true", help="skip the AOPC table")
    parser.add_argument("--texts", type=int, default=8, help="AOPC table: at most this many texts per model")
    parser.add_argument("--steps", type=int, default=32, help="AOPC table: Integrated Gradients' steps")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON ('-': stdout)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default, all cores)"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if not args.no_cost:
        report["cost"] = cost_table(args)
    if not args.no_aopc:
        chat = [] if args.no_chat else [("SmolLM2", "smollm2", "next token")]
        report["aopc"] = aopc_table([*chat, ("MiniLM", "default", "similarity")], args.texts, args.steps,
                                    zeroing=not args.no_zeroing)
    if args.json:
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", "utf-8")
            print(f"wrote {args.json}")
    return 0


def cost_table(args) -> dict:
    """The cost table (printed); its medians by model and size."""
    zeroing = 0 if args.no_zeroing else args.zeroing_repeats
    models = [("MiniLM", "default", SIZES)]
    if not args.no_chat:
        models.append(("SmolLM2", "smollm2", CHAT_SIZES))
    measured: dict = {}
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
            medians = measure(loaded, tokens, args.repeats, zeroing)
            measured.setdefault(label, {})[str(tokens)] = medians
            line, alone, with_capture = row(label, tokens, medians)
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
    return {"seconds": measured, "worst_alone": worst_alone, "worst_with_capture": worst_with}


if __name__ == "__main__":
    raise SystemExit(main())
