"""``attention-atlas --smoke-test OUT``: the packaged app's self-test, run here from source."""

import csv
import importlib.util
import json
from pathlib import Path

from PySide6.QtGui import QImage

from app.main import main


def test_smoke_test_analyses_switches_and_exports_everything(qapp, tmp_path, capsys):
    out = tmp_path / "smoke"
    assert main(["--smoke-test", str(out), "--settings", str(tmp_path / "s.ini")]) == 0
    printed = capsys.readouterr().out
    assert "smoke test passed" in printed and "6 layers x 12 heads" in printed
    assert QImage(str(out / "heatmap.png")).width() == 1200
    assert QImage(str(out / "graph.png")).width() == 1200
    assert QImage(str(out / "window.png")).width() > 0
    assert "<svg" in (out / "heatmap.svg").read_text(errors="ignore")[:2000]
    from analysis.io.folder import read_matrix_csv

    matrix, row_labels, col_labels, _meta = read_matrix_csv(out / "matrix.csv")
    assert matrix.shape == (len(row_labels), len(col_labels)) and row_labels == col_labels
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    assert (summary["view"]["layer"], summary["view"]["head"]) == (2, 3)
    with open(out / "analysis" / "tokens.csv", newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert {"pagerank", "betweenness", "community"} <= set(header)

    # packaging/check_smoke.py (make package-test) accepts this output, and refuses it when
    # the graph step fell back from the C kernels (a bundle built without them)
    path = Path(__file__).resolve().parents[2] / "packaging" / "check_smoke.py"
    spec = importlib.util.spec_from_file_location("check_smoke", path)
    check_smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_smoke)
    assert check_smoke.check_output(out) == []
    summary["graph"]["kernels"] = "scipy/igraph fallback (paths, Louvain; C extension not built)"
    (out / "analysis" / "summary.json").write_text(json.dumps(summary))
    assert any("C kernels" in problem for problem in check_smoke.check_output(out))


def test_smoke_test_reports_an_output_folder_it_cannot_create(qapp, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--smoke-test", str(blocker / "out")]) != 0
    assert "cannot create" in capsys.readouterr().err


def test_the_process_entry_leaves_with_the_smoke_tests_exit_code(tmp_path):
    """The console script's path (main() without argv) exits through app.main.leave: the
    code of the smoke test, without the interpreter's teardown of Qt objects (which crashed
    once after a passing smoke test)."""
    import subprocess
    import sys

    out = tmp_path / "smoke"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from app.main import main; sys.argv[1:] = sys.argv[1:]; main()",
         "--smoke-test", str(out), "--settings", str(tmp_path / "s.ini")],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
             "ATLAS_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "smoke test passed" in done.stdout and (out / "analysis" / "summary.json").is_file()
