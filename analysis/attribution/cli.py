"""``attention-atlas attribute``: which input tokens drive a model's output, written to a folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from analysis.attribution.options import (
    BASELINES,
    DEFAULT_BASELINE,
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    METHODS,
    TARGET_FUNCTIONS,
)

PROG = "attention-atlas attribute"

TARGET_KIND_CHOICES = ("auto", "next_token", "masked_token", "class", "qa_start", "qa_end", "similarity")

EPILOG = """\
Targets follow the model: the next token of a causal LM (--target TOKEN, default the predicted
one; --contrast B for "target rather than B"), every generated token with --generate N, the
masked token of an MLM head (write the mask token in --text), the class of a classification
head (--label), the answer start/end of a QA head (--kind qa_start|qa_end, --pair context), and
for sentence-embedding models such as the default all-MiniLM-L6-v2 the cosine similarity of
--text and --pair. Scores are signed (positive raises the target) except saliency's norms; the
target function is the log-probability unless --target-function says otherwise.

Writes into --out: attribution.csv (index,token,start,end,score), attribution.npz for
--generate (scores [targets, sources]), summary.json (see README), all at once: nothing is
left behind when it fails. An existing analysis is replaced only with --force. Every option
is checked before the model loads.

examples:
  attention-atlas attribute --text "The movie was great." --pair "A fine film." --method kernel_shap --out out/
  attention-atlas attribute --model smollm2 --text "Madrid is the capital of" --target " Spain" --adaptive --out out/
  attention-atlas attribute --model smollm2 --text "The capital of France is" --generate 8 --out out/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Attribute a model's output to its input tokens and write the scores to files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input")
    text = source.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text (the prompt of a generation)")
    text.add_argument("--file", type=Path, help="read the text from this UTF-8 file")
    source.add_argument("--pair", help="a second text: the other sentence of a similarity, a question's context, a decoder prefix")
    source.add_argument("--model", default="default", help="a model folder, a cached hub id, 'smollm2' or 'default' (the embedded all-MiniLM-L6-v2)")
    source.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin) weights, which can run code")
    source.add_argument("--max-tokens", type=int, help="truncate the input to this many tokens")

    target = parser.add_argument_group("target")
    target.add_argument("--kind", choices=TARGET_KIND_CHOICES, default="auto", help="what to explain (default: what the model does)")
    which = target.add_mutually_exclusive_group()
    which.add_argument("--target", help="the token to explain (next or masked token; default the predicted one)")
    which.add_argument("--generate", type=int, metavar="N", help="generate N tokens greedily and attribute each to the tokens before it")
    target.add_argument("--contrast", help="explain --target rather than this token: f(target) - f(contrast)")
    target.add_argument("--label", help="class to explain (index or name; default the predicted class)")
    target.add_argument("--position", type=int, help="input index: whose next token, which mask, which answer position")
    target.add_argument("--target-function", choices=TARGET_FUNCTIONS, default="log_prob", help="log_prob (default), prob or logit")

    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=METHODS, default="integrated_gradients", help="default integrated_gradients")
    steps = method.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, help=f"Integrated Gradients: Gauss-Legendre nodes (default {DEFAULT_STEPS})")
    steps.add_argument("--adaptive", action="store_true", help="Integrated Gradients: refine the path (nested Simpson panels) until |delta| <= 5%% of |f(x) - f(baseline)| or the step cap")
    method.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help=f"the adaptive mode's step cap (default {DEFAULT_MAX_STEPS})")
    method.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="the adaptive mode's relative tolerance (default 0.05)")
    method.add_argument("--samples", type=int, help=f"LIME / KernelSHAP masks (default {DEFAULT_SAMPLES})")
    method.add_argument("--seed", type=int, default=0, help="LIME / KernelSHAP sampling seed (default 0)")
    method.add_argument("--words", action="store_true", help="report words (sum of their pieces); perturbation methods perturb whole words")
    method.add_argument("--interpolate-first", action="store_true", help="Integrated Gradients on a causal LM: interpolate the first token too (by default it is kept: it is the attention sink, see README)")
    method.add_argument("--baseline", choices=BASELINES, default=DEFAULT_BASELINE, help="what replaces tokens: pad (default), unk or zero embeddings")
    method.add_argument("--faithfulness", action="store_true", help="add ERASER comprehensiveness/sufficiency and AOPC to summary.json")

    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument("--force", action="store_true", help="replace an existing analysis in --out")
    return parser


def validate(args: argparse.Namespace):
    """Every check that needs no model; returns the Target. Raises ValueError."""
    from analysis.attribution.methods import check_options
    from analysis.attribution.targets import Target

    if args.steps is not None and args.method != "integrated_gradients":
        raise ValueError("--steps is a setting of --method integrated_gradients")
    if args.adaptive and args.method != "integrated_gradients":
        raise ValueError("--adaptive is a setting of --method integrated_gradients")
    if args.samples is not None and args.method not in ("lime", "kernel_shap"):
        raise ValueError("--samples is a setting of --method lime and kernel_shap")
    if args.generate is not None:
        if args.generate < 1:
            raise ValueError("--generate needs a positive number of tokens")
        if args.contrast is not None or args.label is not None or args.position is not None:
            raise ValueError("--generate attributes every generated token: --contrast, --label and --position do not apply")
        if args.pair is not None:
            raise ValueError("--generate continues --text alone: drop --pair")
        if args.kind not in ("auto", "next_token"):
            raise ValueError("--generate needs a causal language model target, not --kind " + args.kind)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError("--max-tokens must be positive")
    label = args.label
    if label is not None and label.lstrip("-").isdigit():
        label = int(label)
    target = Target(
        kind=args.kind,
        token=args.target,
        contrast=args.contrast,
        position=args.position,
        label=label,
        function=args.target_function,
    )
    check_options(
        args.method,
        baseline=args.baseline,
        steps=args.steps if args.steps is not None else DEFAULT_STEPS,
        max_steps=args.max_steps,
        tolerance=args.tolerance,
        n_samples=args.samples if args.samples is not None else DEFAULT_SAMPLES,
        target=None if args.generate is not None else target,
    )
    return target


def read_text(args: argparse.Namespace) -> str:
    from analysis.cli import read_text as read

    return read(args)


def attribute_to_folder(args: argparse.Namespace) -> Path:
    """Run the attribution for parsed arguments and write the folder; returns it."""
    from analysis.io.output_dir import check_output_folder, output_folder

    started = time.perf_counter()
    text = read_text(args)
    if not text.strip():
        raise ValueError("the text is empty: give --text or --file with something to attribute")
    target = validate(args)
    check_output_folder(args.out, force=args.force)  # fail before the model loads, not after

    from analysis.attribution.export import write_attribution_folder
    from analysis.attribution.faithfulness import faithfulness
    from analysis.attribution.generation import attribute_generation, generate_greedy
    from analysis.attribution.methods import attribute
    from analysis.attribution.results import TargetInfo
    from analysis.attribution.targets import Target
    from analysis.models.loading import load_model

    loaded = load_model(args.model, allow_pickle=args.allow_pickle)
    loaded_at = time.perf_counter()
    settings = dict(
        baseline=args.baseline,
        steps=args.steps if args.steps is not None else DEFAULT_STEPS,
        adaptive=args.adaptive,
        tolerance=args.tolerance,
        max_steps=args.max_steps,
        n_samples=args.samples if args.samples is not None else DEFAULT_SAMPLES,
        seed=args.seed,
        words=args.words,
        keep_first=not args.interpolate_first,
    )
    timings = {"load": float(loaded.load_seconds), "load_wait": loaded_at - started}
    faith = None
    if args.generate is not None:
        gen_started = time.perf_counter()
        inputs = generate_greedy(loaded, text, args.generate)
        timings["generate"] = time.perf_counter() - gen_started
        result = attribute_generation(loaded, inputs, args.method, target_function=args.target_function, **settings)
        if args.faithfulness:
            faith_started = time.perf_counter()
            token_scores = result.scores[:, result.units.token_units]
            faith = [
                faithfulness(loaded, Target("generation", function=args.target_function), inputs, token_scores[r],
                             baseline=args.baseline, row=r)
                for r in range(result.num_rows)
            ]
            timings["faithfulness"] = time.perf_counter() - faith_started
    else:
        result = attribute(loaded, text, target, args.method, pair=args.pair, max_tokens=args.max_tokens, **settings)
        if result.inputs.truncated:
            print("note: the input was truncated to the model's limit", file=sys.stderr)
        if args.faithfulness:
            faith_started = time.perf_counter()
            info: TargetInfo = result.target
            faith = faithfulness(loaded, info, result.inputs, result.token_scores, baseline=args.baseline)
            timings["faithfulness"] = time.perf_counter() - faith_started
    timings["total"] = time.perf_counter() - started
    with output_folder(args.out, force=args.force) as folder:
        write_attribution_folder(folder, result, model=loaded.facts.name, faithfulness=faith, timings=timings)
    return Path(args.out)


def main(argv: list[str] | None = None) -> int:
    from analysis.cli import run_command

    args = build_parser().parse_args(argv)

    def work(parsed: argparse.Namespace) -> None:
        folder = attribute_to_folder(parsed)
        extra = ", attribution.npz" if parsed.generate is not None else ""
        print(f"wrote {folder}/attribution.csv{extra}, summary.json")

    return run_command(PROG, work, args)


if __name__ == "__main__":
    sys.exit(main())
