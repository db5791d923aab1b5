"""Writing a command's output folder all at once: nothing half-written, nothing left on failure.

``with output_folder(out, force=False) as tmp:`` checks ``out`` before any work starts (not
empty, not a file, not an existing analysis unless ``force``), gives a temporary folder
beside it to write into, and on success moves it into place (an existing folder replaced
only with ``force``); on failure the temporary folder is removed and ``out`` is untouched.

Examples
--------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "analysis"
>>> with output_folder(out) as tmp:
...     _ = (tmp / "summary.json").write_text("{}")
>>> sorted(p.name for p in out.iterdir())
['summary.json']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from analysis.io.folder import ExportError

# Files any of the commands write: a folder holding one of them is an earlier analysis.
ANALYSIS_FILES = ("summary.json", "attention.npz", "tokens.csv", "edges.csv", "generation.json",
                  "attribution.csv", "attribution.npz")


def check_output_folder(out: str | os.PathLike | None, *, force: bool = False) -> Path:
    """``out`` as a Path if it can become the output folder; ExportError saying why not."""
    if out is None or not str(out).strip():
        raise ExportError("--out is empty: name the folder to write, e.g. --out results/")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ExportError(f"'{path}' is a file; --out must name a folder")
    if path.is_dir() and not force:
        found = [name for name in ANALYSIS_FILES if (path / name).exists()]
        if found:
            raise ExportError(f"'{path}' already holds an analysis ({', '.join(found)}); "
                              "add --force to replace it, or choose another --out")
    existing = path.absolute().parent
    while not existing.exists():  # the folders that will be made: the first existing one decides
        existing = existing.parent
    if not existing.is_dir():
        raise ExportError(f"cannot write '{path}': '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write into '{existing}': permission denied")
    return path


@contextlib.contextmanager
def output_folder(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """A temporary folder to write into, moved to ``out`` when the block succeeds."""
    path = check_output_folder(out, force=force)
    parent = path.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # as a folder made by mkdir would be, not mkdtemp's 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        if any(path.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "previous")
        else:
            path.rmdir()
    try:
        os.replace(tmp, path)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            os.replace(old / "previous", path)
        raise ExportError(f"cannot write '{path}': {error.strerror or error}") from error
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
