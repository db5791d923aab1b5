"""Check what ``attention-atlas --smoke-test OUT`` wrote (``make package-test``).

    python packaging/check_smoke.py OUT [--bundle dist/attention-atlas --marker FILE]

Every expected file must exist and be non-empty; images must be PNGs, the CSVs must have a
header and at least one row. With ``--bundle`` and ``--marker`` it also fails when anything
inside the bundle folder is newer than the marker (the app must never write into itself) or
when the bundle holds a dangling symlink.
Standard library only: it runs with any Python 3.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

EXPECTED = [
    "heatmap.png",
    "heatmap.svg",
    "matrix.csv",
    "graph.png",
    "window.png",
    "analysis/tokens.csv",
    "analysis/edges.csv",
    "analysis/summary.json",
    "analysis/attention.npz",
]
REQUIRED = {"heatmap.png", "matrix.csv", "graph.png", "window.png", "analysis/tokens.csv"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_output(out: Path) -> list[str]:
    problems = []
    for name in EXPECTED:
        path = out / name
        if not path.is_file() or path.stat().st_size == 0:
            if name in REQUIRED:
                problems.append(f"{name}: missing or empty")
            else:
                print(f"note: {name} missing or empty (not required)")
            continue
        if name.endswith(".png") and path.read_bytes()[:8] != PNG_MAGIC:
            problems.append(f"{name}: not a PNG file")
        elif name.endswith(".csv"):
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            if len(rows) < 2:
                problems.append(f"{name}: fewer than one data row")
            elif name == "analysis/tokens.csv" and "token" not in rows[0]:
                problems.append(f"{name}: no 'token' column in header {rows[0]}")
        elif name.endswith(".json"):
            try:
                summary = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as error:
                problems.append(f"{name}: not JSON ({error})")
            else:
                kernels = ((summary or {}).get("graph") or {}).get("kernels", "")
                if name == "analysis/summary.json" and not kernels.startswith("C ("):
                    problems.append(f"{name}: the graph did not use the C kernels ({kernels!r})")
                elif "fallback" in kernels:
                    problems.append(f"{name}: part of the graph step fell back: {kernels!r}")
        print(f"ok   {name} ({path.stat().st_size} bytes)")
    return problems


def check_bundle_untouched(bundle: Path, marker: Path) -> list[str]:
    since = marker.stat().st_mtime
    newer = [
        p for p in [bundle, *bundle.rglob("*")] if p.lstat().st_mtime > since
    ]  # folders too: a new or deleted file
    if newer:
        shown = ", ".join(str(p.relative_to(bundle)) or "." for p in newer[:10])
        return [f"the app wrote {len(newer)} path(s) inside its bundle {bundle}: {shown}"]
    print(f"ok   nothing inside {bundle} changed while the app ran")
    dangling = [p for p in bundle.rglob("*") if p.is_symlink() and not p.exists()]
    if dangling:
        return [
            f"dangling symlinks in the bundle: {', '.join(str(p.relative_to(bundle)) for p in dangling)}"
        ]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder given to --smoke-test")
    parser.add_argument("--bundle", type=Path, help="the bundle folder (dist/attention-atlas)")
    parser.add_argument("--marker", type=Path, help="a file touched just before the app started")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        print(f"check_smoke: {args.out} is not a folder", file=sys.stderr)
        return 1
    problems = check_output(args.out)
    if args.bundle and args.marker:
        problems += check_bundle_untouched(args.bundle, args.marker)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("smoke output check: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
