"""Generation on the embedded chat model (SmolLM2-135M-Instruct) against bare ``model.generate``.

Budgets (DESIGN.md): ``generate`` <= 1.2x ``model.generate`` with the same settings; the
chat model on a 1,024-token text, analysed, within 2.5 GB resident. Printed side by side:

- token loop: ours (``generate_steps``: per step the top-10 candidates and the logit lens of
  all 30 layers; also without the lens) against ``lm.generate`` with the same prompt, the
  same number of new tokens, greedy and sampled (temperature 0.8, top-k 50, top-p 0.9),
  interleaved, median and best of the repeats after a warm-up;
- first-token latency (ours: ``first_token_seconds``; bare: ``generate(max_new_tokens=1)``);
- the one forward pass over prompt + generation (``generation_run``) against the bare
  ``model(ids, output_attentions=True)``;
- load time cold (GGUF -> float32 conversion into an empty cache) and warm (from the cache),
  each in a fresh process;
- peak resident memory of a fresh process that loads the chat model and analyses a
  1,024-token text (``extract``, the mean view of the last layer, the head statistics and thumbnails, layer and head switches), with
  the float16 storage the run uses above 256 MiB, and for comparison with float32 forced.

Run: ``.venv/bin/python benchmarks/bench_generate.py [--repeats 5] [--tokens 32] [--threads N]``.
The conversion cache used here is a temporary folder; the user's cache is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GENERATE_BUDGET = 1.2
RSS_BUDGET_GB = 2.5
PROMPT = "Write a long story about a dragon who learns to paint."
SAMPLING = dict(temperature=0.8, top_k=50, top_p=0.9)


def _child(kind: str, threads: int) -> None:
    """Runs in a fresh process; prints one JSON line."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from analysis.models.loading import load_model

    def peak_gb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9

    started = time.perf_counter()
    loaded = load_model("smollm2")
    load_s = time.perf_counter() - started
    result = {"load_s": load_s, "converted": loaded.converted, "peak_loaded_gb": peak_gb()}
    if kind.startswith("rss"):
        from analysis.attention import extract as extract_module
        from analysis.attention.head_stats import head_summary
        from analysis.attention.views import ViewSpec, make_view

        if kind == "rss32":
            extract_module.FLOAT16_ABOVE_BYTES = 1 << 62
        text = " ".join(["word"] * 1024)
        started = time.perf_counter()
        run = extract_module.extract(loaded, text)
        result["peak_extract_gb"] = peak_gb()
        view = make_view(run, ViewSpec(kind="mean"))
        from analysis.graph.metrics import analyze_graph

        analyze_graph(view.matrix)
        result["peak_view_graph_gb"] = peak_gb()
        result["analyse_s"] = time.perf_counter() - started
        head_summary(run.attentions, run.special_mask)
        from analysis.attention.head_stats import head_thumbnails

        head_thumbnails(run.attentions)  # the head overview's mosaic
        for layer in (0, 10, 20, -1):  # browsing: switch layers and heads, as the window slices
            for spec in (ViewSpec(kind="head", layer=layer, head=3), ViewSpec(kind="max", layer=layer)):
                make_view(run, spec)
        result.update(
            tokens=run.num_tokens,
            dtype=str(run.attentions.dtype),
            attention_gb=run.attentions.nbytes / 1e9,
            peak_head_stats_gb=peak_gb(),
        )
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(json.dumps(result))


def _in_fresh_process(kind: str, cache: Path, threads: int) -> dict:
    env = {**os.environ, "ATLAS_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--threads", str(threads)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed(function):
    """``(wall seconds, CPU seconds of this process, value)``. CPU time (all threads: the
    lens worker's too) is what the work costs when other programs share the cores."""
    started, cpu_started = time.perf_counter(), time.process_time()
    value = function()
    return time.perf_counter() - started, time.process_time() - cpu_started, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per generation")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.threads)
        return 0

    cache = Path(tempfile.mkdtemp(prefix="atlas-bench-cache-"))
    cold = _in_fresh_process("load", cache, args.threads)
    warm = _in_fresh_process("load", cache, args.threads)
    rss16 = _in_fresh_process("rss", cache, args.threads)
    rss32 = _in_fresh_process("rss32", cache, args.threads)

    os.environ["ATLAS_CACHE_DIR"] = str(cache)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from analysis.generation import generate_steps, generation_run
    from analysis.models.loading import load_model

    loaded = load_model("smollm2")
    lm = loaded.lm_model
    n = args.tokens
    probe = generate_steps(loaded, PROMPT, max_new_tokens=n)
    ids = torch.tensor([list(probe.prompt_ids)])
    mask = torch.ones_like(ids)

    def bare(sample: bool, tokens: int = n):
        with torch.inference_mode():
            if sample:
                torch.manual_seed(0)
                return lm.generate(
                    ids, attention_mask=mask, max_new_tokens=tokens, do_sample=True, **SAMPLING
                )
            return lm.generate(ids, attention_mask=mask, max_new_tokens=tokens, do_sample=False)

    def ours(sample: bool, lens: bool = True):
        options = dict(sample=True, seed=0, **SAMPLING) if sample else {}
        return generate_steps(loaded, PROMPT, max_new_tokens=n, lens=lens, **options)

    rows = []
    for sample in (False, True):
        label = "sampled" if sample else "greedy"
        bare(sample), ours(sample), ours(sample, lens=False)  # warm-up
        times = {"bare": [], "ours": [], "nolens": []}
        cpu = {"bare": [], "ours": [], "nolens": []}
        counts = set()
        for _ in range(args.repeats):
            for key, function in (
                ("bare", lambda s=sample: bare(s)),
                ("ours", lambda s=sample: ours(s)),
                ("nolens", lambda s=sample: ours(s, lens=False)),
            ):
                seconds, cpu_seconds, out = _timed(function)
                times[key].append(seconds)
                cpu[key].append(cpu_seconds)
                if key == "bare":
                    counts.add(("bare", out.shape[1] - ids.shape[1]))
                elif key == "ours":
                    counts.add(("ours", len(out.steps)))
                    kernel = out.lens_kernel
        rows.append((label, times, cpu, sorted(counts), kernel))

    first_ours = [ours(False).first_token_seconds for _ in range(args.repeats)]
    first_bare = [_timed(lambda: bare(False, 1))[0] for _ in range(args.repeats)]

    full_ids = torch.tensor([list(probe.ids)])
    run_s, bare_fwd = [], []
    for _ in range(args.repeats):
        run_s.append(_timed(lambda: generation_run(loaded, probe))[0])
        with torch.inference_mode():
            bare_fwd.append(
                _timed(lambda: loaded.model(input_ids=full_ids, output_attentions=True))[0]
            )

    med = statistics.median
    print(
        f"model: {loaded.facts.name}, {loaded.facts.num_layers} layers x {loaded.facts.num_heads} "
        f"heads ({loaded.facts.num_kv_heads} kv); torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; prompt {probe.prompt_length} tokens, {n} new tokens; median (best) of {args.repeats}"
    )
    print()
    print(
        f"{'token loop':<10} | {'model.generate s':>17} | {'ours s':>15} | {'ratio':>11} | "
        f"{'ours, no lens s':>16} | CPU s: generate, ours, no lens (ratio) | tokens | lens kernel"
    )
    print("-" * 150)
    worst = worst_cpu = 0.0
    for label, times, cpu, counts, kernel in rows:
        ratio = med(times["ours"]) / med(times["bare"])
        best_ratio = min(times["ours"]) / min(times["bare"])
        cpu_ratio = med(cpu["ours"]) / med(cpu["bare"])
        worst, worst_cpu = max(worst, ratio), max(worst_cpu, cpu_ratio)
        tokens = ", ".join(f"{who} {c}" for who, c in counts)
        print(
            f"{label:<10} | {med(times['bare']):>8.3f} ({min(times['bare']):.3f}) | "
            f"{med(times['ours']):>7.3f} ({min(times['ours']):.3f}) | {ratio:>4.2f} ({best_ratio:.2f}) | "
            f"{med(times['nolens']):>7.3f} ({min(times['nolens']):.3f}) | "
            f"{med(cpu['bare']):.3f}, {med(cpu['ours']):.3f}, {med(cpu['nolens']):.3f} ({cpu_ratio:.2f}) | "
            f"{tokens} | {kernel}"
        )
    print(
        f"budget: ours <= {GENERATE_BUDGET}x model.generate: wall {'ok' if worst <= GENERATE_BUDGET else 'OVER'} "
        f"(worst median ratio {worst:.2f}), CPU {'ok' if worst_cpu <= GENERATE_BUDGET else 'OVER'} "
        f"(worst median ratio {worst_cpu:.2f})"
    )
    print()
    print(
        f"first token       | model.generate(max_new_tokens=1) {med(first_bare):.3f} s | ours {med(first_ours):.3f} s"
    )
    print(
        f"one forward pass  | bare model(ids, output_attentions=True) {med(bare_fwd):.3f} s | "
        f"generation_run {med(run_s):.3f} s ({len(probe.ids)} tokens)"
    )
    print(
        f"load              | cold (GGUF -> cache) {cold['load_s']:.2f} s | warm (cache) {warm['load_s']:.2f} s  [fresh processes; converted: {cold['converted']}, {warm['converted']}]"
    )
    print(
        f"1,024 tokens      | peak RSS (GB) of a fresh process after: load | extract | + mean view "
        f"and its graph | + head statistics (budget {RSS_BUDGET_GB} GB)"
    )
    for name, result in (("float16 (as stored)", rss16), ("float32 forced", rss32)):
        analysed = result["peak_view_graph_gb"]
        verdict = "ok" if analysed <= RSS_BUDGET_GB else "OVER"
        print(
            f"  {name:<19} | {result['peak_loaded_gb']:.2f} | {result['peak_extract_gb']:.2f} | "
            f"{analysed:.2f} ({verdict}) | {result['peak_head_stats_gb']:.2f} | attentions "
            f"{result['attention_gb']:.2f} GB {result['dtype']}, analysed in {result['analyse_s']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
