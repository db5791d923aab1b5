"""``attention-atlas generate``: a model answers a prompt; the folder of the whole sequence.

Writes into ``--out`` (all at once, as ``analyze`` does: a temporary folder moved into place
when everything is written, nothing left behind on failure, an existing analysis replaced
only with ``--force``) what ``attention-atlas analyze`` writes, for prompt + generation
(``attention.npz``, ``tokens.csv`` with a ``generated`` column, ``edges.csv``,
``summary.json`` with ``timings.generate`` and a ``generation`` block), plus
``generation.json``::

    {"prompt": str, "text": str, "prompt_tokens": int,
     "steps": [{"token": str, "id": int, "prob": float, "top": [[token, prob], ...],
                "lens": [token per layer], ...}, ...], ...}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from analysis.options import SPARSIFY_MODES

PROG = "attention-atlas generate"
DEFAULT_MODEL = "smollm2"
GRAPH_VIEWS = ("head", "mean", "max", "rollout")

EPILOG = """\
The prompt goes into the model's chat template when it has one (--no-chat: continued as plain
text). Greedy by default (the most likely token each step); --sample draws, with --temperature,
--top-k, --top-p and --seed (the same seed gives the same text). Generation stops at the end
of the model's turn or after --max-new-tokens.

The graph is drawn on one view of the last pass over prompt + generation (default: the mean
over the heads of the last layer). Layers and heads are 0-based.

Writes into --out: attention.npz, tokens.csv, edges.csv, summary.json, generation.json, all
at once: nothing is left behind when it fails. An existing analysis is replaced only with
--force. Every option is checked before the model loads (layers and heads against the
model before it generates); options that do not apply are reported on stderr. A negative
layer or head counts from the end (-1 = the last).

examples:
  attention-atlas generate --prompt "What is the capital of France?" --out out/
  attention-atlas generate --prompt "Once upon a time" --no-chat --max-new-tokens 40 --out out/
  attention-atlas generate --model ./qwen.gguf --prompt "Hi" --sample --temperature 0.7 --seed 1 --out out/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Let a decoder answer a prompt, record every step, and write the attention "
        "of prompt + answer to files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input")
    prompt = source.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="what the model answers (or continues, with --no-chat)")
    prompt.add_argument("--prompt-file", type=Path, help="read the prompt from this UTF-8 file")
    source.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a decoder: 'smollm2' (the embedded SmolLM2-135M-Instruct, default), a GGUF file, "
        "a local folder or a hub id already in the local cache",
    )
    source.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading pickle (.bin) weights, which can run code",
    )
    chat = source.add_mutually_exclusive_group()
    chat.add_argument(
        "--chat",
        dest="chat",
        action="store_true",
        default=None,
        help="put the prompt in the chat template (default when the model has one)",
    )
    chat.add_argument(
        "--no-chat", dest="chat", action="store_false", help="continue the prompt as plain text"
    )

    gen = parser.add_argument_group("generation")
    gen.add_argument(
        "--max-new-tokens",
        type=int,
        default=32,
        help="generate at most this many tokens (default 32)",
    )
    gen.add_argument(
        "--sample",
        action="store_true",
        help="sample each token instead of taking the most likely one",
    )
    gen.add_argument(
        "--temperature", type=float, default=1.0, help="divides the logits (default 1.0)"
    )
    gen.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="with --sample: keep the k most likely tokens (default 0: all)",
    )
    gen.add_argument(
        "--top-p",
        type=float,
        default=1.0,
        help="with --sample: keep the most likely tokens that cover this probability (default 1.0: all)",
    )
    gen.add_argument(
        "--seed",
        type=int,
        help="with --sample: seed of the draws (default: a random one, written to generation.json)",
    )
    gen.add_argument(
        "--candidates", type=int, default=10, help="top candidates recorded per step (default 10)"
    )
    gen.add_argument(
        "--no-stop", action="store_true", help="go on after the end of the model's turn"
    )

    view = parser.add_argument_group("view and graph")
    view.add_argument(
        "--view",
        choices=GRAPH_VIEWS,
        help="head, mean or max over heads, or rollout (default: mean, or head with --head)",
    )
    view.add_argument("--layer", type=int, default=-1, help="layer (default: the last)")
    view.add_argument("--head", type=int, help="head, for --view head (default 0)")
    view.add_argument("--words", action="store_true", help="merge sub-word tokens into words")
    view.add_argument(
        "--no-special", action="store_true", help="drop special tokens and renormalise rows"
    )
    view.add_argument(
        "--sparsify",
        choices=SPARSIFY_MODES,
        help="edge rule (default coverage: per query, the strongest edges covering --coverage "
        "of its attention)",
    )
    view.add_argument(
        "--coverage",
        type=float,
        help="share of each query's attention the kept edges cover (default 0.9)",
    )
    view.add_argument(
        "--min-weight", type=float, help="drop edges lighter than this (default 0)"
    )
    view.add_argument(
        "--no-graph",
        action="store_true",
        help="skip the graph: edges.csv then lists every nonzero entry",
    )

    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing analysis in --out"
    )
    return parser


# Graph options and their defaults (None in the parser, so a given option can be told apart).
GRAPH_DEFAULTS = {"sparsify": "coverage", "coverage": 0.9, "min_weight": 0.0}


def read_prompt(args: argparse.Namespace) -> str:
    """The prompt of --prompt or --prompt-file (bounded, UTF-8, without a BOM)."""
    if args.prompt is not None:
        return args.prompt.removeprefix("\ufeff")
    from analysis.io.text_files import read_text_file

    return read_text_file(args.prompt_file)


def warn(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr)


def _view_kind(args: argparse.Namespace) -> str:
    return args.view or ("head" if args.head is not None else "mean")


def _view_spec(args: argparse.Namespace):
    from analysis.attention.views import ViewSpec

    return ViewSpec(
        kind=_view_kind(args),
        layer=args.layer,
        head=args.head or 0,
        merge_words=args.words,
        drop_special=args.no_special,
    )


def _check_sampling_options(args: argparse.Namespace) -> None:
    if args.sample:
        return
    given = [name for name, value, default in (
        ("--top-k", args.top_k, 0), ("--top-p", args.top_p, 1.0), ("--seed", args.seed, None),
    ) if value != default]  # fmt: skip
    if given:
        verb = "apply" if len(given) > 1 else "applies"
        raise ValueError(f"{', '.join(given)} {verb} only with --sample")


def _check_generation_options(args: argparse.Namespace) -> None:
    """The generation settings, as :func:`analysis.generation.loop.generate` will check them."""
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise ValueError(f"--temperature must be a number above 0, got {args.temperature}")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be at least 0 (0: all tokens), got {args.top_k}")
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be above 0 and at most 1, got {args.top_p}")
    if args.candidates < 0:
        raise ValueError(f"--candidates must be at least 0, got {args.candidates}")
    _check_sampling_options(args)


def _graph_rule(args: argparse.Namespace):
    """The sparsification rule of the graph options (None with --no-graph, which reports
    the graph options it makes useless); ValueError naming the bad option."""
    given = [name for name in GRAPH_DEFAULTS if getattr(args, name) is not None]
    for name, default in GRAPH_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.no_graph:
        if given:
            names = ", ".join("--" + n.replace("_", "-") for n in given)
            warn(f"{names} ignored: --no-graph skips the graph")
        return None
    if "coverage" in given and args.sparsify != "coverage":
        warn(f"--coverage {args.coverage} is ignored: it applies to --sparsify coverage")
    from analysis.graph.rules import SparsifyRule

    try:
        return SparsifyRule(
            mode=args.sparsify,
            coverage=args.coverage if args.sparsify == "coverage" else GRAPH_DEFAULTS["coverage"],
            min_weight=args.min_weight,
        )
    except ValueError as error:
        raise ValueError(
            str(error).replace("min_weight", "--min-weight").replace("coverage", "--coverage")
        ) from None


def checked_args(args: argparse.Namespace) -> tuple[str, object]:
    """Check every option that needs no model (ValueError with one sentence), report those
    that do not apply; returns ``(prompt, graph rule or None)``."""
    prompt = read_prompt(args)
    if not prompt.strip():
        raise ValueError("the prompt is empty: type something for the model to answer")
    _check_generation_options(args)
    kind = _view_kind(args)
    if args.head is not None and kind != "head":
        warn(f"--head {args.head} is ignored: it applies to --view head, not --view {kind}")
    rule = _graph_rule(args)
    from analysis.io.output_dir import check_output_folder

    check_output_folder(args.out, force=args.force)
    return prompt, rule


def _fitted_spec(args: argparse.Namespace, facts):
    """The view spec with a negative layer or head counted from the end, checked against the
    model's layers and heads (before it generates)."""
    from dataclasses import replace

    spec = _view_spec(args)
    layers, heads = facts.num_layers, facts.num_heads
    if not -layers <= spec.layer < layers:
        raise ValueError(f"--layer {spec.layer} is out of range: {facts.name} has layers 0..{layers - 1}")
    if spec.kind == "head" and not -heads <= spec.head < heads:
        raise ValueError(f"--head {spec.head} is out of range: {facts.name} has heads 0..{heads - 1}")
    return replace(spec, layer=spec.layer % layers, head=spec.head % heads if heads else spec.head)


def run_generate(args: argparse.Namespace, *, stream=None) -> Path:
    """Generate for parsed arguments and write the folder; returns it."""
    import time

    from analysis.attention.views import make_view
    from analysis.generation.loop import generate
    from analysis.io.folder import write_analysis_folder, write_json
    from analysis.io.output_dir import output_folder
    from analysis.models.loading import load_model

    prompt, rule = checked_args(args)  # everything that needs no model, before it loads

    loaded = load_model(args.model, allow_pickle=args.allow_pickle)
    spec = _fitted_spec(args, loaded.facts)

    def show(step) -> None:
        if stream is not None and step.text:
            stream.write(step.text)
            stream.flush()

    run = generate(
        loaded,
        prompt,
        chat=args.chat,
        max_new_tokens=args.max_new_tokens,
        sample=args.sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop_at_end_of_turn=not args.no_stop,
        on_token=show,
        top=args.candidates,
    )
    if stream is not None:
        stream.write("\n")
    if run.notice:
        print(f"note: {run.notice}", file=sys.stderr)

    if spec.drop_special and all(run.special_mask):  # before make_view, which would fail on it
        raise ValueError(
            "the view has no tokens left (every token was a special token and --no-special "
            "dropped them); generate without --no-special"
        )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    view = make_view(run, spec)
    timings["view"] = time.perf_counter() - started
    graph = None
    if rule is not None:
        from analysis.graph.metrics import analyze_graph
        from analysis.graph.rules import graph_weights

        started = time.perf_counter()
        weights = graph_weights(view.matrix, signed=view.signed)
        if weights.note:
            warn(f"graph: {weights.note}")
        graph = analyze_graph(weights.matrix, rule)
        timings["graph"] = time.perf_counter() - started

    generation = run.generation
    with output_folder(args.out, force=args.force) as folder:
        write_analysis_folder(folder, run, view, graph, None, timings)
        summary_path = folder / "summary.json"
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary["generation"] = {
            "prompt_tokens": generation.prompt_length,
            "generated_tokens": len(generation.steps),
            "chat": generation.chat,
            "stop_reason": generation.stop_reason,
            "first_token_seconds": round(generation.first_token_seconds, 6),
            "lens_kernel": generation.lens_kernel,
            **generation.settings,
        }
        write_json(summary_path, summary)
        write_json(folder / "generation.json", generation.to_dict())
    return Path(args.out)


def main(argv: list[str] | None = None) -> int:
    from analysis.cli import run_command

    args = build_parser().parse_args(argv)

    def work(parsed: argparse.Namespace) -> None:
        folder = run_generate(parsed, stream=sys.stdout)
        print(f"wrote {folder}/attention.npz, tokens.csv, edges.csv, summary.json, generation.json")

    return run_command(PROG, work, args)


if __name__ == "__main__":
    sys.exit(main())
