"""Work done in the background: plain functions of a JobContext (app.tasks), no widgets.

Each ``*_job(...)`` returns ``job(context)``. The heavy imports (torch, transformers via
analysis.models.loading / analysis.attention.extract; scipy and igraph via analysis.graph)
happen inside these functions, so they run in the lanes' threads and the window opens
without them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

import numpy as np

from analysis.graph.rules import SparsifyRule
from analysis.run import AttentionRun


@dataclass(frozen=True)
class AnalyseRequest:
    source: str
    text: str
    pair: str | None = None
    allow_pickle: bool = False


@dataclass(frozen=True)
class AnalysisResult:
    run: AttentionRun
    thumbnails: np.ndarray  # [L, H, s, s] for the head overview
    head_stats: dict[str, np.ndarray]  # name -> [L, H]
    # The analysis pass's layers as analysis.contributions.record_layers recorded them, so
    # a contribution view needs no second forward pass (None when too large or unsupported).
    capture: object = None


@dataclass(frozen=True)
class GenerateRequest:
    source: str
    prompt: str
    settings: dict  # keyword arguments of analysis.generation.generate_steps
    stop: object = None  # a threading.Event: set, the generation ends early and keeps its tokens


@dataclass(frozen=True)
class GraphRequest:
    matrix: np.ndarray  # the view's matrix
    rule: SparsifyRule
    resolution: float = 1.0
    seed: int = 0
    signed: bool = False  # the view's values may be negative (the graph uses magnitudes)
    force_layout: bool = False  # also lay it out force-directed (that layout is shown)


@dataclass(frozen=True)
class GraphOutcome:
    result: object  # analysis.graph.metrics.GraphResult
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # layouts computed here
    note: str | None = None  # set when the weights are not the view's values (graph_weights)


@dataclass(frozen=True)
class LayeredOutcome:
    graph: object  # analysis.graph.layered.LayeredGraph
    stack: str  # the attention stack it was built from ("self" or "decoder")
    seconds: float


def window_torch_threads() -> int:
    """Intra-op threads torch gets in the window: every core but one, which stays free for
    the GUI thread and the graph lane (``ATLAS_TORCH_THREADS`` overrides). On 2 cores that
    is one thread: two made generation several times slower while the window drew."""
    wanted = os.environ.get("ATLAS_TORCH_THREADS", "").strip()
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores - 1)


def configure_torch() -> None:
    """Set torch's thread count for the window's model lane (once; cheap afterwards)."""
    import torch

    threads = window_torch_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def warm_up_job(source: str):
    """Right after the window opens: import torch and the graph libraries and load the model.

    Importing torch and loading weights hold the GIL for up to ~0.3 s at a time; doing it
    while the person is still typing keeps those pauses out of their first analysis, which
    then costs only the forward pass.
    """

    def job(context):
        context.progress(0.05, "Loading the model in the background…")
        configure_torch()
        import analysis.attention.extract  # noqa: F401  (torch, transformers)
        import analysis.attention.flow  # noqa: F401  (its C kernel, igraph as the fallback)
        import analysis.graph.metrics  # noqa: F401  (scipy, igraph)
        from analysis.models.loading import load_model

        context.progress(0.4, "Loading the model in the background…")
        return load_model(source).facts

    return job


def analyse_job(request: AnalyseRequest):
    """Load the model (cached after the first time), run the text, summarise every head."""

    def job(context):
        context.progress(0.02, "Loading the model…")
        configure_torch()
        from analysis.attention.extract import extract
        from analysis.models.loading import load_model

        loaded = load_model(request.source, allow_pickle=request.allow_pickle)
        context.progress(0.5, f"Running {loaded.facts.name}…")
        run, capture = recorded_extract(loaded, lambda: extract(loaded, request.text, request.pair))
        context.progress(0.85, "Summarising heads…")
        result = replace(summarised(run), capture=capture)
        context.progress(1.0, "Done")
        return result

    return job


# A recorded pass is kept for the contribution views up to this size (MiniLM at 512 tokens:
# ~35 MB; the chat model at 1,024 tokens would need ~420 MB and is not kept).
CAPTURE_KEEP_BYTES = 256 * 2**20


def recorded_extract(loaded, run_model):
    """``(run, capture)``: ``run_model()`` with analysis.contributions.record_layers' read-only
    hooks in, so the contribution views (value norms, ALTI, value zeroing) can reuse this
    forward pass instead of running the model again. ``capture`` is None where the family
    has no adapter (encoder-decoders, unknown layouts), the records exceed
    :data:`CAPTURE_KEEP_BYTES`, or the run stores float16 attentions (the capture would
    need a float32 copy of them)."""
    from analysis.contributions import record_layers

    try:
        recorder = record_layers(loaded)
    except (ValueError, TypeError, AttributeError):
        return run_model(), None
    with recorder:
        run = run_model()
    if recorder.recorded_bytes() > CAPTURE_KEEP_BYTES or run.attentions.dtype != np.float32:
        return run, None
    try:
        capture = recorder.capture(attentions=run.attentions)
    except (ValueError, RuntimeError):
        return run, None
    # the last pass recorded must be the run's own (a generation's lens may run the model too)
    return run, capture if np.array_equal(capture.input_ids, run.input_ids) else None


def summarised(run: AttentionRun) -> AnalysisResult:
    """A run with the head overview's thumbnails and statistics."""
    from analysis.attention.head_stats import head_summary, head_thumbnails

    started = time.perf_counter()
    thumbnails = head_thumbnails(run.attentions)
    stats = head_summary(run.attentions, run.special_mask)
    run.timings["heads"] = time.perf_counter() - started
    return AnalysisResult(run=run, thumbnails=thumbnails, head_stats=stats)


def generate_job(request: GenerateRequest):
    """Generate token by token (each token sent as a partial result), then one forward pass
    over prompt + generation gives the run. A stop keeps the tokens generated so far; a
    cancel (a newer request, closing the window) drops everything."""

    def job(context):
        context.progress(0.02, "Loading the model…")
        configure_torch()
        from analysis.generation import generate_steps, generation_run
        from analysis.models.loading import load_model

        loaded = load_model(request.source)
        stop = request.stop
        total = request.settings.get("max_new_tokens", 32)

        def on_token(step) -> None:
            context.send_partial(step)
            context.report(0.05 + 0.85 * (step.index + 1) / max(total, 1), "Generating…")

        generation = generate_steps(loaded, request.prompt, on_token=on_token,
                                    cancelled=lambda: context.is_cancelled() or (stop is not None and stop.is_set()),
                                    **request.settings)
        context.check()
        context.report(0.92, "Reading prompt and answer once more…")
        run, capture = recorded_extract(loaded, lambda: generation_run(loaded, generation))
        return replace(summarised(run), capture=capture)

    return job


def contributions_job(run: AttentionRun, kind: str, allow_pickle: bool = False, capture=None):
    """One contribution measure of ``run``, from the model the run was made with: what its
    view shows and its per-layer matrices (analysis.contributions.run_contributions: rollout
    and flow go through those); cancellable, with progress (value zeroing is slow). With
    ``capture`` (the analysis pass, :func:`recorded_extract`) the model does not run again
    for value norms and ALTI."""

    def job(context):
        from analysis.contributions import contributions_for_run, run_contributions
        from analysis.models.loading import load_model

        context.progress(0.01, "Loading the model…")
        configure_torch()
        loaded = load_model(run.model.source, allow_pickle=allow_pickle)
        label = {"value_norm": "value norms", "alti": "ALTI", "value_zeroing": "value zeroing"}[kind]
        arrays = contributions_for_run(
            loaded, run, kinds=(kind,), cancelled=context.is_cancelled, capture=capture,
            progress=lambda fraction: context.report(0.02 + 0.98 * fraction, f"Computing {label}…"))
        return run_contributions(arrays)

    return job


def attribute_job(run: AttentionRun, settings: dict):
    """An attribution of ``run``'s input (panel settings: method, target, ...). A generation
    target sends its rows as partial results. "compare" runs
    analysis.attribution.compare.compare_explanations: the chosen method, Integrated
    Gradients, Input x Gradient and occlusion, and the attention and contribution views of
    the target position (attention, rollout, flow, value norms, ALTI), each scored for
    faithfulness (ERASER AOPC) and correlated (Spearman) with the chosen method."""

    def job(context):
        from analysis.attribution import Target, attribute, attribute_generation, from_run
        from analysis.models.loading import load_model

        context.progress(0.01, "Loading the model…")
        configure_torch()
        loaded = load_model(run.model.source)
        inputs = from_run(run, loaded)
        common = dict(baseline=settings["baseline"], steps=settings["steps"], adaptive=settings["adaptive"],
                      n_samples=settings["samples"], seed=settings["seed"], words=settings["words"],
                      cancelled=context.is_cancelled)
        method = settings["method"]
        if settings["target"] == "generation":
            if run.prompt_length is None:
                raise ValueError("this run is not a generation: generate first (the Generate panel), then attribute "
                                 "its tokens")
            result = attribute_generation(
                loaded, inputs, method, target_function=settings["function"],
                progress=lambda f: context.report(f, "Attributing the generated tokens…"),
                on_row=lambda row, scores: context.send_partial((row, scores)), **common)
            return {"generation": result}
        target = Target(settings["target"], token=settings["token"], contrast=settings["contrast"],
                        function=settings["function"])
        if settings["compare"]:
            comparison = compared(loaded, run, target, method, common, context)
            return {"attribution": comparison["main"], "comparison": comparison}
        if settings["target"] == "similarity":  # each text is encoded on its own, as the model embeds it
            inputs = run.text
            common["pair"] = run.pair
        result = attribute(loaded, inputs, target, method,
                           progress=lambda f: context.report(f, f"Attributing with {method}…"), **common)
        return {"attribution": result, "comparison": None}

    return job


def compared(loaded, run: AttentionRun, target, method: str, common: dict, context) -> dict:
    """The panel's comparison: :func:`analysis.attribution.compare.compare_explanations`
    with the chosen method first, as the table shows it (rows: the comparison's tokens)."""
    from analysis.attribution.compare import DEFAULT_METHODS, compare_explanations

    step = {"text": "Comparing explanations…"}
    comparison = compare_explanations(
        loaded, run, target, methods=[method, *[m for m in DEFAULT_METHODS if m != method]],
        baseline=common["baseline"], steps=common["steps"], adaptive=common["adaptive"],
        n_samples=common["n_samples"], seed=common["seed"], words=common["words"],
        progress=lambda fraction: context.report(fraction, step["text"]), cancelled=context.is_cancelled,
        on_step=lambda sentence: step.update(text=sentence))
    explanations = comparison.explanations
    return {
        "object": comparison,
        "main": comparison[method].attribution,
        "labels": tuple(comparison.inputs.labels),
        "tokens": tuple(comparison.inputs.tokens),
        "scores": {e.name: e.importance for e in explanations},
        "faithfulness": {e.name: e.faithfulness for e in explanations},
        "spearman": {e.name: e.spearman for e in explanations},
        "titles": {e.name: e.label for e in explanations},
        "descriptions": {e.name: e.description for e in explanations},
        "note": comparison.position_note,
        "skipped": dict(comparison.skipped),
    }


def graph_job(request: GraphRequest):
    """Sparsify, measure and partition one view's graph (and lay it out force-directed when
    that layout is shown, so the GUI thread never does)."""

    def job(context):
        from analysis.graph.metrics import analyze_graph
        from analysis.graph.rules import graph_weights

        context.progress(0.1, "Building the graph…")
        weights = graph_weights(request.matrix, signed=request.signed)
        result = analyze_graph(weights.matrix, request.rule, resolution=request.resolution, seed=request.seed)
        positions = {}
        if request.force_layout:
            context.progress(0.7, "Laying out the graph…")
            positions = force_layout_job(result, request.seed)(context)
        return GraphOutcome(result=result, positions=positions, note=weights.note)

    return job


def force_layout_job(result, seed: int = 0):
    """The force-directed layout of a computed graph: ``{"force": [n, 2]}``."""

    def job(context):
        from analysis.graph.layout import force_layout

        context.check()
        return {"force": force_layout(result.n, result.sources, result.targets, result.weights, seed=seed)}

    return job


def _source(run: AttentionRun, stack: str, layer: int, through: str) -> dict:
    """What the flow, layered graph and route functions take: the stack's raw attentions
    (through attention: the functions add the residual themselves, as always), else
    ``layers=`` the per-layer capacities through a contribution (computed here, on the lane:
    ``L T^2`` float64 is large for a long text)."""
    from analysis.attention.views import stack_attentions

    if through == "attention":
        return {"attentions": stack_attentions(run, stack)}
    from analysis.attention.capacities import layer_capacities

    return {"layers": layer_capacities(run, through, upto_layer=layer, stack=stack)}


def flow_job(run: AttentionRun, query: int, layer: int, *, stack: str = "self", through: str = "attention"):
    """Attention flow from ``query`` at ``layer`` into every input token, through attention
    or a contribution's per-layer matrices."""

    def job(context):
        from analysis.attention.flow import attention_flow

        return attention_flow(
            query=query,
            layer=layer,
            progress=lambda fraction: context.report(fraction, "Computing attention flow…"),
            cancelled=context.is_cancelled,
            **_source(run, stack, layer, through),
        )

    return job


def path_job(matrix: np.ndarray, source: int, target: int, widest: bool, rule: SparsifyRule, *,
             signed: bool = False):
    """The most probable (or widest) path from view row ``source`` to ``target`` on the
    view's graph (the same weights as the graph: analysis.graph.rules.graph_weights)."""

    def job(context):
        from analysis.graph.paths import most_probable_path, widest_path
        from analysis.graph.rules import graph_weights

        finder = widest_path if widest else most_probable_path
        return finder(graph_weights(matrix, signed=signed).matrix, source, target, rule)

    return job


def layered_job(run: AttentionRun, layer: int, rule: SparsifyRule, stack: str, max_edges: int | None = None, *,
                through: str = "attention"):
    """The graph across layers (tokens at every level, input to ``layer``) for the canvas."""

    def job(context):
        from analysis.graph.layered import CANVAS_EDGE_LIMIT, layered_graph

        context.progress(0.1, "Building the graph across layers…")
        started = time.perf_counter()
        graph = layered_graph(layer=layer, rule=rule, max_edges=max_edges or CANVAS_EDGE_LIMIT,
                              **_source(run, stack, layer, through))
        return LayeredOutcome(graph=graph, stack=stack, seconds=time.perf_counter() - started)

    return job


def route_job(run: AttentionRun, query: int, target: int, layer: int, *, stack: str = "self",
              through: str = "attention"):
    """The most probable route from ``query`` at the top of ``layer`` down to input ``target``."""

    def job(context):
        from analysis.graph.paths import layered_route

        return layered_route(query=query, target=target, layer=layer, **_source(run, stack, layer, through))

    return job
