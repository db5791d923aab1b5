"""``attention-atlas analyze``: the window's analysis, headless, written to a folder."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from analysis.attention.views import ViewSpec
from analysis.options import SPARSIFY_MODES, STACKS, VIEW_KINDS

PROG = "attention-atlas analyze"

EPILOG = """\
Layers, heads and tokens are 0-based. Without --view: one head when --head is given, else the
mean over the heads of --layer (default: the last layer). --view flow needs --query K (a token
index of the run): the graph is then drawn on the rollout matrix up to --layer and tokens.csv
gains a 'flow' column, the max-flow from token K at that layer into each input token.

Writes into --out: attention.npz, tokens.csv, edges.csv, summary.json (see README).

examples:
  attention-atlas analyze --text "The cat sat on the mat." --out out/
  attention-atlas analyze --file q.txt --pair "Where is the cat?" --layer 2 --head 5 --out out/
  attention-atlas analyze --model ./my-gpt2 --text "Hello there" --view rollout --out out/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Analyse the attention of a transformer on a text and write it to files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input")
    text = source.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to analyse")
    text.add_argument("--file", type=Path, help="read the text from this UTF-8 file")
    source.add_argument("--pair", help="a second text (e.g. the context for a question in --text)")
    source.add_argument(
        "--model",
        default="default",
        help="a local model folder or a hub id already in the local cache (default: the embedded all-MiniLM-L6-v2)",
    )
    source.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin) weights, which can run code")
    source.add_argument("--max-tokens", type=int, help="truncate the input to this many tokens")

    view = parser.add_argument_group("view")
    view.add_argument("--view", choices=VIEW_KINDS, help="head, mean or max over heads, rollout, or flow")
    view.add_argument("--layer", type=int, default=-1, help="layer (default: the last)")
    view.add_argument("--head", type=int, help="head, for --view head (default 0)")
    view.add_argument("--query", type=int, help="query token for --view flow")
    view.add_argument("--stack", choices=STACKS, default="self", help="encoder-decoder models: which attention (default: encoder self-attention)")
    view.add_argument("--words", action="store_true", help="merge sub-word tokens into words")
    view.add_argument("--no-special", action="store_true", help="drop special tokens and renormalise rows")

    graph = parser.add_argument_group("graph")
    graph.add_argument("--sparsify", choices=SPARSIFY_MODES, default="coverage", help="edge rule (default: per query, the strongest edges covering --coverage of its attention)")
    graph.add_argument("--coverage", type=float, default=0.9, help="share of each query's attention the kept edges cover (default 0.9)")
    graph.add_argument("--top-k", type=int, default=5, help="edges kept per query with --sparsify top_k (default 5)")
    graph.add_argument("--min-weight", type=float, default=0.0, help="drop edges lighter than this (default 0)")
    graph.add_argument("--self-loops", action="store_true", help="keep a token's attention to itself as an edge")
    graph.add_argument("--resolution", type=float, default=1.0, help="Louvain resolution (default 1.0; higher = smaller communities)")
    graph.add_argument("--seed", type=int, default=0, help="Louvain seed (default 0)")
    graph.add_argument("--no-graph", action="store_true", help="skip the graph: edges.csv then lists every nonzero entry")

    parser.add_argument("--out", type=Path, required=True, help="folder to write (created if missing)")
    return parser


def read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    try:
        return args.file.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ValueError(f"no such file: '{args.file}'") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read '{args.file}': {error}") from error


def view_spec_from_args(args: argparse.Namespace) -> ViewSpec:
    kind = args.view or ("head" if args.head is not None else "mean")
    if kind == "flow" and args.query is None:
        raise ValueError("--view flow needs --query K, the token whose flow to follow")
    return ViewSpec(
        kind=kind,
        layer=args.layer,
        head=args.head or 0,
        stack=args.stack,
        merge_words=args.words,
        drop_special=args.no_special,
        query=args.query,
    )


def sparsify_rule_from_args(args: argparse.Namespace):
    from analysis.graph.rules import SparsifyRule

    return SparsifyRule(
        mode=args.sparsify,
        coverage=args.coverage,
        top_k=args.top_k,
        min_weight=args.min_weight,
        self_loops=args.self_loops,
    )


def analyze(args: argparse.Namespace) -> Path:
    """Run the whole analysis for parsed arguments and write the folder; returns it."""
    from analysis.attention.extract import extract
    from analysis.attention.views import make_view, values_for_view
    from analysis.io.folder import ensure_writable_dir, write_analysis_folder
    from analysis.models.loading import load_model

    text = read_text(args)
    spec = view_spec_from_args(args)
    rule = None if args.no_graph else sparsify_rule_from_args(args)
    ensure_writable_dir(args.out)  # fail before the model loads, not after

    loaded = load_model(args.model, allow_pickle=args.allow_pickle)
    run = extract(loaded, text, args.pair, max_tokens=args.max_tokens)
    if run.notice:
        print(f"note: {run.notice}", file=sys.stderr)

    timings: dict[str, float] = {}
    started = time.perf_counter()
    view = make_view(run, spec)
    timings["view"] = time.perf_counter() - started

    graph = None
    if rule is not None:
        if not view.is_square:
            raise ValueError("a graph needs a square view; use --no-graph for cross-attention")
        from analysis.graph.metrics import analyze_graph

        started = time.perf_counter()
        graph = analyze_graph(view.matrix, rule, resolution=args.resolution, seed=args.seed)
        timings["graph"] = time.perf_counter() - started

    flow = None
    if spec.kind == "flow":
        from analysis.attention.flow import attention_flow
        from analysis.attention.views import stack_attentions

        started = time.perf_counter()
        token_flow = attention_flow(stack_attentions(run, spec.stack), view.spec.query, view.spec.layer)
        flow = values_for_view(view, token_flow, side="col")
        timings["flow"] = time.perf_counter() - started

    return write_analysis_folder(args.out, run, view, graph, flow, timings)


# The headless commands: ``attention-atlas NAME ...`` runs ``main(argv)`` of the module.
COMMANDS = {
    "analyze": "analysis.cli",
    "generate": "analysis.generation.cli",
    "attribute": "analysis.attribution.cli",
}


def command_main(name: str):
    """The ``main(argv) -> int`` of headless command ``name`` (imported on demand)."""
    import importlib

    return importlib.import_module(COMMANDS[name]).main


def error_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def run_command(prog: str, work, args: argparse.Namespace) -> int:
    """``work(args)`` with any failure turned into one clear line on stderr and exit code 2
    (``ATLAS_DEBUG=1`` re-raises, for a traceback); 0 on success."""
    try:
        work(args)
    except Exception as error:  # one clear line, never a traceback, for any failure
        if os.environ.get("ATLAS_DEBUG"):
            raise
        print(f"{prog}: error: {error_line(error)}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work(parsed: argparse.Namespace) -> None:
        folder = analyze(parsed)
        print(f"wrote {folder}/attention.npz, tokens.csv, edges.csv, summary.json")

    return run_command(PROG, work, args)


if __name__ == "__main__":
    sys.exit(main())
