"""Import rules (DESIGN.md): analysis never imports Qt; widgets never import torch;
the window opens without torch (it is imported lazily, in the worker)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT = ("PySide6", "PyQt5", "PyQt6", "PySide2", "pyqtgraph", "qtpy", "superqt")
TORCH = ("torch", "transformers", "captum", "tokenizers", "safetensors")


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Top-level package of every import (module level or nested) in each file of a folder."""
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_analysis_imports_no_qt():
    offenders = {f: n & set(QT) for f, n in imported_modules("analysis").items() if n & set(QT)}
    assert not offenders, f"analysis/ must stay Qt-free: {offenders}"


def test_widgets_import_no_torch_and_no_app():
    offenders = {f: n & {*TORCH, "app"} for f, n in imported_modules("widgets").items() if n & {*TORCH, "app"}}
    assert not offenders, f"widgets/ must not import torch/transformers or app: {offenders}"


def test_the_window_modules_load_without_torch():
    code = (
        "import sys, app.main_window, app.main, analysis.attention.views, analysis.io.folder; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
