"""``attention-atlas analyze``: the window's analysis, headless, written to a folder."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from analysis.attention.views import ViewSpec
from analysis.options import (
    CONTRIBUTION_KINDS,
    LAYERED_VIEW_KINDS,
    SPARSIFY_MODES,
    STACKS,
    THROUGH_KINDS,
    VIEW_KINDS,
)

PROG = "attention-atlas analyze"

EPILOG = """\
Layers, heads and tokens are 0-based; a negative layer, head or query counts from the end
(-1 = the last). Without --view: one head when --head is given, else the mean over the heads
of --layer (default: the last layer). --view flow needs --query K (a token index of the run):
the graph is then drawn on the rollout matrix up to --layer and tokens.csv gains a 'flow'
column, the max-flow from token K at that layer into each input token. --through alti (or
value_norm, value_zeroing) computes rollout and flow through those per-layer contributions
instead of raw attention (they are computed from the model first; value zeroing is slow).
Views whose values exceed 1 (--view max --words) are divided by their largest value for the
graph, and summary.json says so.

Writes into --out: attention.npz, tokens.csv, edges.csv, summary.json (see README), all at
once: nothing is left behind when it fails. An existing analysis is replaced only with
--force. Every option is checked before the model loads; options that do not apply are
reported on stderr.

examples:
  attention-atlas analyze --text "The cat sat on the mat." --out out/
  attention-atlas analyze --file q.txt --pair "Where is the cat?" --layer 2 --head 5 --out out/
  attention-atlas analyze --model ./my-gpt2 --text "Hello there" --view rollout --out out/
  attention-atlas analyze --text "The cat sat." --view flow --query 2 --through alti --out out/
"""

FIGURE_FORMATS = ("png", "svg", "pdf")
_figure_writer = None  # set by the application (app.main): analysis/ itself draws nothing


def set_figure_writer(writer) -> None:
    """``writer(folder, run, view, graph, formats)`` draws the figures ``--figures`` asks for
    (the desktop application registers its own; analysis/ imports no drawing code)."""
    global _figure_writer
    _figure_writer = writer


def figure_formats(text: str | None) -> list[str]:
    """``"png,svg"`` -> ``["png", "svg"]``; ValueError naming the bad one."""
    if text is None:
        return []
    formats = [part.strip().lower().lstrip(".") for part in text.split(",") if part.strip()]
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats:
        raise ValueError(f"--figures takes a comma-separated list of {', '.join(FIGURE_FORMATS)}, got {text!r}")
    return list(dict.fromkeys(formats))


# Graph options and their defaults (None in the parser, so a given option can be told apart).
GRAPH_DEFAULTS = {"sparsify": "coverage", "coverage": 0.9, "top_k": 5, "min_weight": 0.0, "resolution": 1.0,
                  "seed": 0}


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
    text.add_argument("--file", type=Path, help="read the text from this UTF-8 file (at most 2 MB)")
    source.add_argument("--pair", help="a second text (e.g. the context for a question in --text)")
    source.add_argument(
        "--model",
        default="default",
        help="'minilm' (the embedded all-MiniLM-L6-v2, default), 'smollm2' (the embedded chat model), "
        "a local model folder, a GGUF file, or a hub id already in the local cache",
    )
    source.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin) weights, which can run code")
    source.add_argument("--max-tokens", type=int, help="truncate the input to this many tokens")

    view = parser.add_argument_group("view")
    view.add_argument("--view", choices=VIEW_KINDS, help="head, mean or max over heads, rollout, flow, or the "
                      "contributions value_norm, alti, value_zeroing (computed from the model; value zeroing is slow)")
    view.add_argument("--layer", type=int, default=-1, help="layer (default: the last)")
    view.add_argument("--head", type=int, help="head, for --view head (default 0)")
    view.add_argument("--query", type=int, help="query token for --view flow")
    view.add_argument("--through", choices=THROUGH_KINDS, help="for --view rollout and flow: the per-layer "
                      "matrices they go through: attention (default: 0.5 * mean of heads + 0.5 * identity), "
                      "value_norm (the same rule on value norms), alti or value_zeroing (as they are: they "
                      "include the residual)")
    view.add_argument("--stack", choices=STACKS, default="self", help="encoder-decoder models: which attention (default: encoder self-attention)")
    view.add_argument("--words", action="store_true", help="merge sub-word tokens into words")
    view.add_argument("--no-special", action="store_true", help="drop special tokens and renormalise rows")

    graph = parser.add_argument_group("graph")
    graph.add_argument("--sparsify", choices=SPARSIFY_MODES, help="edge rule (default: coverage: per query, the strongest edges covering --coverage of its attention)")
    graph.add_argument("--coverage", type=float, help="share of each query's attention the kept edges cover (default 0.9)")
    graph.add_argument("--top-k", type=int, help="edges kept per query with --sparsify top_k (default 5)")
    graph.add_argument("--min-weight", type=float, help="drop edges lighter than this (default 0)")
    graph.add_argument("--self-loops", action="store_true", help="keep a token's attention to itself as an edge")
    graph.add_argument("--resolution", type=float, help="Louvain resolution (default 1.0; higher = smaller communities)")
    graph.add_argument("--seed", type=int, help="Louvain seed (default 0)")
    graph.add_argument("--no-graph", action="store_true", help="skip the graph: edges.csv then lists every nonzero entry")

    parser.add_argument("--figures", help="also draw figures: a comma-separated list of png, svg, pdf "
                        "(heatmap.*, graph.*, heads.* in --out)")
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument("--force", action="store_true", help="replace an existing analysis in --out")
    return parser


def read_text(args: argparse.Namespace) -> str:
    """The text of --text or --file (bounded, UTF-8, without a BOM)."""
    if args.text is not None:
        return args.text.removeprefix("\ufeff")
    from analysis.io.text_files import read_text_file

    return read_text_file(args.file)


def warn(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr)


def checked_args(args: argparse.Namespace) -> argparse.Namespace:
    """Check every option before the model loads (ValueError with one sentence) and report
    those that do not apply; fills in the graph defaults."""
    given = {name for name in GRAPH_DEFAULTS if getattr(args, name) is not None}
    for name, default in GRAPH_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    kind = args.view or ("head" if args.head is not None else "mean")
    if kind == "flow" and args.query is None:
        raise ValueError("--view flow needs --query K, the token whose flow to follow")
    if args.head is not None and kind != "head":
        warn(f"--head {args.head} is ignored: it applies to --view head, not --view {kind}")
    if args.query is not None and kind != "flow":
        warn(f"--query {args.query} is ignored: it applies to --view flow")
    if args.through is not None and kind not in LAYERED_VIEW_KINDS:
        warn(f"--through {args.through} is ignored: it applies to --view rollout and --view flow")
    elif args.through not in (None, "attention") and args.stack != "self":
        raise ValueError(f"--through {args.through} needs --stack self: contributions are computed for "
                         "the self-attention stack only")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    if args.no_graph:
        ignored = sorted(given | {"self_loops"} if args.self_loops else given)
        if ignored:
            warn(f"{', '.join('--' + n.replace('_', '-') for n in ignored)} ignored: --no-graph skips the graph")
    else:
        if not (args.resolution > 0 and args.resolution == args.resolution and args.resolution != float("inf")):
            raise ValueError(f"--resolution must be a positive number, got {args.resolution}")
        if "top_k" in given and args.sparsify != "top_k":
            warn(f"--top-k {args.top_k} is ignored: it applies to --sparsify top_k")
        if "coverage" in given and args.sparsify != "coverage":
            warn(f"--coverage {args.coverage} is ignored: it applies to --sparsify coverage")
        sparsify_rule_from_args(args)  # checks coverage, top-k, min-weight
    args.figure_formats = figure_formats(args.figures)
    if args.figure_formats and _figure_writer is None:
        raise ValueError("--figures needs the desktop application's drawing code: run it as `attention-atlas analyze`")
    from analysis.io.output_dir import check_output_folder

    check_output_folder(args.out, force=args.force)
    return args


def view_spec_from_args(args: argparse.Namespace) -> ViewSpec:
    kind = args.view or ("head" if args.head is not None else "mean")
    return ViewSpec(
        kind=kind,
        layer=args.layer,
        head=args.head or 0,
        stack=args.stack,
        merge_words=args.words,
        drop_special=args.no_special,
        query=args.query,
        through=(args.through or "attention") if kind in LAYERED_VIEW_KINDS else "attention",
    )


def contribution_needed(spec: ViewSpec) -> str | None:
    """The contribution kind the view needs computed (its own kind, or what rollout and flow
    go through), or None."""
    if spec.kind in CONTRIBUTION_KINDS:
        return spec.kind
    if spec.kind in LAYERED_VIEW_KINDS and spec.through != "attention":
        return spec.through
    return None


def resolved_spec(spec: ViewSpec, run) -> ViewSpec:
    """Negative head and query count from the end, as negative layers do."""
    from dataclasses import replace

    from analysis.attention.views import stack_attentions

    attentions = stack_attentions(run, spec.stack)
    heads, tokens = attentions.shape[1], attentions.shape[-2]
    head = spec.head + heads if spec.head < 0 else spec.head
    query = spec.query + tokens if spec.query is not None and spec.query < 0 else spec.query
    return replace(spec, head=head, query=query)


def sparsify_rule_from_args(args: argparse.Namespace):
    from analysis.graph.rules import SparsifyRule

    mode = args.sparsify or GRAPH_DEFAULTS["sparsify"]
    top_k = args.top_k if args.top_k is not None else GRAPH_DEFAULTS["top_k"]
    coverage = args.coverage if args.coverage is not None else GRAPH_DEFAULTS["coverage"]
    min_weight = args.min_weight if args.min_weight is not None else GRAPH_DEFAULTS["min_weight"]
    try:
        return SparsifyRule(mode=mode, coverage=coverage if mode == "coverage" else GRAPH_DEFAULTS["coverage"],
                            top_k=top_k if mode == "top_k" else GRAPH_DEFAULTS["top_k"], min_weight=min_weight,
                            self_loops=args.self_loops)
    except ValueError as error:
        raise ValueError(str(error).replace("top_k", "--top-k").replace("min_weight", "--min-weight")
                         .replace("coverage", "--coverage")) from None


def extracted(loaded, text: str, args: argparse.Namespace, *, recorded: bool):
    """``(run, capture)``: the extraction, and with ``recorded`` its own forward pass as
    :func:`analysis.contributions.record_layers` recorded it (None otherwise), so the
    contributions need no second pass."""
    from analysis.attention.extract import extract

    if not recorded:
        return extract(loaded, text, args.pair, max_tokens=args.max_tokens), None
    from analysis.contributions import record_layers

    with record_layers(loaded) as recorder:
        run = extract(loaded, text, args.pair, max_tokens=args.max_tokens)
    return run, recorder.capture(attentions=run.attentions)


def analyze(args: argparse.Namespace) -> Path:
    """Run the whole analysis for parsed arguments and write the folder; returns it."""
    from analysis.attention.views import make_view, values_for_view
    from analysis.io.folder import write_analysis_folder
    from analysis.io.output_dir import output_folder
    from analysis.models.loading import load_model

    args = checked_args(args)
    text = read_text(args)
    rule = None if args.no_graph else sparsify_rule_from_args(args)

    loaded = load_model(args.model, allow_pickle=args.allow_pickle)
    needed = contribution_needed(view_spec_from_args(args))
    timings: dict[str, float] = {}
    run, capture = extracted(loaded, text, args, recorded=needed is not None)
    if run.notice:
        print(f"note: {run.notice}", file=sys.stderr)

    spec = resolved_spec(view_spec_from_args(args), run)
    if needed is not None:
        import dataclasses

        from analysis.contributions import contributions_for_run, run_contributions

        started = time.perf_counter()
        arrays = contributions_for_run(loaded, run, kinds=(needed,), capture=capture)
        del capture
        run = dataclasses.replace(run, contributions=run_contributions(arrays))
        timings["contributions"] = time.perf_counter() - started
    started = time.perf_counter()
    view = make_view(run, spec)
    timings["view"] = time.perf_counter() - started
    if view.matrix.size == 0:
        raise ValueError("the view has no tokens left (every token was a special token and --no-special "
                         "dropped them); analyse without --no-special")

    graph = None
    if rule is not None:
        if not view.is_square:
            raise ValueError("a graph needs a square view; use --no-graph for cross-attention")
        from analysis.graph.metrics import analyze_graph
        from analysis.graph.rules import graph_weights

        started = time.perf_counter()
        weights = graph_weights(view.matrix, signed=view.signed)
        if weights.note:
            warn(f"graph: {weights.note}")
        graph = analyze_graph(weights.matrix, rule, resolution=args.resolution, seed=args.seed)
        timings["graph"] = time.perf_counter() - started

    flow = None
    if view.spec.kind == "flow":
        from analysis.attention.capacities import layer_capacities
        from analysis.attention.flow import attention_flow

        started = time.perf_counter()
        spec = view.spec
        capacities = layer_capacities(run, spec.through, upto_layer=spec.layer, stack=spec.stack)
        token_flow = attention_flow(layers=capacities, query=spec.query, layer=spec.layer)
        flow = values_for_view(view, token_flow, side="col")
        timings["flow"] = time.perf_counter() - started

    with output_folder(args.out, force=args.force) as folder:
        write_analysis_folder(folder, run, view, graph, flow, timings)
        if args.figure_formats:
            _figure_writer(folder, run, view, graph, args.figure_formats)
    return Path(args.out)


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
        line = error_line(error)
        if "only pickle weights" in line and "--allow-pickle" not in line:
            line = line.replace("Allow pickle weights to load it anyway.",
                                "Add --allow-pickle to load it anyway, if you trust where it came from.")
        print(f"{prog}: error: {line}", file=sys.stderr)
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
