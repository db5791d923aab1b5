"""Attention flow on the embedded model: one query at 128/256/512 tokens of natural English
(this project's README), the C kernel against the igraph implementation it replaced, and
how long a Python thread standing for the window's event loop is held up meanwhile.

Budget (DESIGN.md): flow for one query at 512 tokens <= 3 s, window stall <= 50 ms. The
"stall" column is the longest gap between the ticks of a thread that sleeps 1 ms at a time
while flow runs in another thread (the worker), minus that millisecond: igraph holds the GIL
through each max-flow call, the kernel releases it. The igraph column (the implementation
before the kernel, still the fallback without a C compiler) takes ~1 minute at 512 tokens;
``--quick`` leaves it out there.

Run: ``.venv/bin/python benchmarks/bench_flow.py [--quick]``.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import analysis.attention.flow as flow_module  # noqa: E402
from analysis.attention.extract import extract  # noqa: E402
from analysis.models.loading import load_model  # noqa: E402

BUDGET_S = {512: 3.0}
STALL_BUDGET_S = 0.05


def timed_with_stall(function) -> tuple[float, float, np.ndarray]:
    """Runs ``function`` in a worker thread; returns (seconds, longest stall of this thread
    in seconds, result)."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(function()))
    started = time.perf_counter()
    worker.start()
    last, stall = time.perf_counter(), 0.0
    while worker.is_alive():
        time.sleep(0.001)
        now = time.perf_counter()
        stall = max(stall, now - last - 0.001)
        last = now
    worker.join()
    return time.perf_counter() - started, stall, result[0]


def with_fallback(function):
    def run():
        core, flow_module._flow_core = flow_module._flow_core, None
        try:
            return function()
        finally:
            flow_module._flow_core = core

    return run


def main() -> None:
    quick = "--quick" in sys.argv
    text = re.sub(r"[`#|*\[\]()!]", " ", (ROOT / "README.md").read_text(encoding="utf-8"))
    loaded = load_model("default")
    print(f"attention flow, one query, last layer; kernel: {flow_module.flow_kernel_in_use()}")
    print(
        f"{'tokens':>6} {'query':>5} {'ours s':>8} {'stall ms':>8} {'igraph s':>9} {'stall ms':>8}"
        f" {'speedup':>8} {'max |diff|':>10} {'budget':>7}"
    )
    for tokens in (128, 256, 512):
        run = extract(loaded, text, max_tokens=tokens)
        attentions = run.attentions
        for query in (0, run.num_tokens // 2):
            ours_s, ours_stall, ours = timed_with_stall(
                lambda a=attentions, q=query: flow_module.attention_flow(a, q)
            )
            if quick and tokens > 256:
                before = "skipped".rjust(9) + " " * 9 + " " * 9 + " " * 11
            else:
                theirs_s, theirs_stall, theirs = timed_with_stall(
                    with_fallback(lambda a=attentions, q=query: flow_module.attention_flow(a, q))
                )
                before = (
                    f"{theirs_s:9.3f} {theirs_stall * 1e3:8.0f} {theirs_s / ours_s:7.0f}x"
                    f" {np.abs(ours - theirs).max():10.1e}"
                )
            budget = BUDGET_S.get(tokens)
            verdict = ""
            if budget is not None:
                fine = ours_s <= budget and ours_stall <= STALL_BUDGET_S
                verdict = f"{budget:5.1f} s {'ok' if fine else 'OVER'}"
            print(
                f"{run.num_tokens:>6} {query:>5} {ours_s:8.3f} {ours_stall * 1e3:8.0f} {before}"
                f" {verdict}"
            )


if __name__ == "__main__":
    main()
