"""Closing the window while work runs: bounded wait, exit code 0, no Qt abort."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys, time
    from PySide6.QtCore import QSettings, QTimer
    from app.main_window import MainWindow, create_application
    from app.tasks import TaskKind
    qapp = create_application(sys.argv[:1])
    window = MainWindow(QSettings(sys.argv[1], QSettings.IniFormat), warm_up=False)
    window.show()
    def endless(request):  # noqa: ARG001
        def job(context):
            while True:          # a call that never checks for cancellation
                time.sleep(0.05)
        return job
    import app.jobs as jobs
    jobs.analyse_job = endless
    window.input_panel.set_texts("word " * 200_000)
    window.analyse()
    def close():
        assert window.host.runner.is_busy(kinds=[TaskKind.ANALYSE])
        window.close()
    QTimer.singleShot(300, close)
    from app.main import leave
    sys.exit(leave(qapp.exec()))
""")


def test_closing_during_a_long_call_exits_cleanly_and_quickly(tmp_path):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "s.ini")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
                                                      "ATLAS_DATA_DIR": str(tmp_path / "data")})
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert "QThread" not in done.stderr and "Destroyed while thread" not in done.stderr
    assert elapsed < 30  # not a timing budget: a hang would run into the 60 s timeout
