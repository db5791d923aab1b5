"""Soak: 200 analyses of different texts through the task runner (model lane + graph lane, as
the window runs them), resident memory every 20, then 50 analyses cancelled mid-run.

Prints a table; memory should stay flat (within 10% of the level after the first 20, once
the model and the graph libraries are loaded).

Run: .venv/bin/python benchmarks/soak.py [--analyses 200] [--cancels 50]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.planner import Planner  # noqa: E402
from app.session import Session  # noqa: E402
from app.tasks import TaskKind, TaskRunner, ThreadLanes  # noqa: E402

WORDS = ("the a model reads every token and decides where to look while layers mix what heads found "
         "across sentences questions answers cats mats rivers seas graphs routes").split()


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 120))) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=200)
    parser.add_argument("--cancels", type=int, default=50)
    parser.add_argument("--cancel-scale", type=int, default=1, help="cancelled texts are this many times longer")
    args = parser.parse_args()
    lanes = ThreadLanes.with_queue()
    runner = TaskRunner(lanes)
    session = Session()
    planner = Planner(session, runner)
    rng = random.Random(0)
    rows = []
    started = time.perf_counter()
    for index in range(1, args.analyses + 1):
        session.set_texts(text(rng))
        planner.analyse()
        lanes.drain(300, until=lambda: not runner.is_busy())
        assert session.graph is not None, session.errors
        session.set_spec(layer=rng.randrange(6), head=rng.randrange(12))  # a new graph per analysis
        lanes.drain(300, until=lambda: not runner.is_busy())
        if index % 20 == 0:
            rows.append((index, rss_mb(), time.perf_counter() - started))
    cancelled = 0
    for _ in range(args.cancels):
        session.set_texts(" ".join([text(rng)] * args.cancel_scale))
        task = planner.analyse()
        threading.Event().wait(rng.uniform(0.0, 0.05))
        runner.cancel(session, [TaskKind.ANALYSE])
        lanes.drain(300, until=lambda: not runner.is_busy())
        cancelled += task.cancelled
    after_cancels = rss_mb()
    base = rows[0][1]
    print(f"{'analyses':>9}  {'RSS MB':>8}  {'vs. after 20':>12}  {'seconds':>8}")
    for index, rss, seconds in rows:
        print(f"{index:>9}  {rss:>8.0f}  {(rss / base - 1) * 100:>+11.1f}%  {seconds:>8.1f}")
    print(f"{args.cancels} cancels mid-run ({cancelled} stopped before their result): RSS {after_cancels:.0f} MB "
          f"({(after_cancels / base - 1) * 100:+.1f}%)")
    drift = max(abs(rss / base - 1) for _, rss, _ in rows[1:]) if len(rows) > 1 else 0.0
    print(f"largest drift after the first 20: {drift * 100:.1f}% (budget 10%)")
    lanes.shutdown(2.0)


if __name__ == "__main__":
    main()
