"""Import rules at run time (the static ones are import-linter contracts in pyproject.toml,
checked by `make test`): the window opens without torch, which is imported lazily, in the
background lanes."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_window_modules_load_without_torch():
    code = (
        "import sys, app.main_window, app.main, analysis.attention.views, analysis.io.folder; "
        "bad = [m for m in ('torch', 'transformers', 'captum') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
