"""``attention-atlas --smoke-test OUT``: the real window, the real worker, real exports.

Analyses the first sample on the default model through the same signals the UI uses, selects
another layer and head, waits for the graph, exports the heatmap PNG/SVG, the matrix CSV, the
graph image and the analysis folder (tokens.csv with metrics), and a screenshot of the window.
Prints what it wrote; exits non-zero with the reason on any failure.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

TIMEOUT_S = 240


class SmokeFailure(RuntimeError):
    pass


def wait_for(app, signal, window, what: str, timeout_s: float = TIMEOUT_S, trigger=None) -> None:
    """Run the event loop until ``signal`` fires (after calling ``trigger``), or fail."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    outcome: dict[str, str] = {}

    def done(*_):
        outcome.setdefault("ok", "1")
        loop.quit()

    def error(message: str):
        outcome.setdefault("error", message)
        loop.quit()

    signal.connect(done)
    window.error_shown.connect(error)
    QTimer.singleShot(int(timeout_s * 1000), lambda: (outcome.setdefault("error", f"timed out after {timeout_s:.0f} s"), loop.quit()))
    if trigger is not None:
        trigger()
    if not outcome:
        loop.exec()
    signal.disconnect(done)
    window.error_shown.disconnect(error)
    if "error" in outcome:
        raise SmokeFailure(f"{what}: {outcome['error']}")


def run_smoke_test(out: str, settings_path: str | None = None) -> int:
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow, create_application
    from resources import sample_texts

    started = time.perf_counter()
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"smoke test: cannot create '{out_dir}': {error}", file=sys.stderr)
        return 2
    app = create_application(sys.argv[:1])
    ini = settings_path or str(Path(tempfile.mkdtemp(prefix="atlas-smoke-")) / "settings.ini")
    window = MainWindow(QSettings(ini, QSettings.IniFormat))
    window.resize(1600, 1000)
    window.show()
    try:
        sample = sample_texts()[0]
        window.set_model_source("default")
        window.input_panel.set_texts(sample["text"], sample.get("pair"))
        wait_for(app, window.graph_ready, window, "analysing the first sample", trigger=window.analyse)
        run = window.result.run
        print(f"analysed {run.num_tokens} tokens with {run.model.name}: {run.num_layers} layers x {run.num_heads} heads")
        layer, head = min(2, run.num_layers - 1), min(3, run.num_heads - 1)
        wait_for(app, window.graph_ready, window, f"switching to layer {layer} head {head}",
                 trigger=lambda: (window.view_controls.set_head(layer, head), window.view_controls.flush()))
        spec = window.view.spec
        if (spec.layer, spec.head) != (layer, head):
            raise SmokeFailure(f"the view shows layer {spec.layer} head {spec.head}, not {layer}/{head}")
        app.processEvents()
        exports = {
            "heatmap.png": lambda p: window.export_heatmap(p, width=1200, dpi=150),
            "heatmap.svg": window.export_heatmap,
            "matrix.csv": window.export_matrix,
            "graph.png": lambda p: window.export_graph_image(p, width=1200),
            "analysis": window.export_folder,
        }
        for name, export in exports.items():
            if not export(str(out_dir / name)):
                raise SmokeFailure(f"exporting {name} failed")
        window.grab().save(str(out_dir / "window.png"))
        expected = ["heatmap.png", "heatmap.svg", "matrix.csv", "graph.png", "window.png",
                    "analysis/attention.npz", "analysis/tokens.csv", "analysis/edges.csv", "analysis/summary.json"]
        missing = [name for name in expected if not (out_dir / name).is_file() or (out_dir / name).stat().st_size == 0]
        if missing:
            raise SmokeFailure(f"missing or empty: {', '.join(missing)}")
        for name in expected:
            print(f"wrote {out_dir / name} ({(out_dir / name).stat().st_size} bytes)")
    except SmokeFailure as failure:
        print(f"smoke test FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        window.close()
    print(f"smoke test passed in {time.perf_counter() - started:.1f} s")
    return 0
