"""`attention-atlas analyze --figures` draws the window's figures into the analysis folder."""

import xml.etree.ElementTree as ET

from PySide6.QtGui import QImage

from app.main import main


def test_analyze_writes_heatmap_graph_and_heads_figures(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["analyze", "--text", "The cat sat on the mat.", "--layer", "2", "--head", "5",
                 "--figures", "png,svg,pdf", "--out", str(out)]) == 0
    for name in ("heatmap", "graph", "heads"):
        assert QImage(str(out / f"{name}.png")).width() > 200
        ET.parse(out / f"{name}.svg")
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert (out / "summary.json").exists()


def test_a_bad_figure_format_is_refused_before_the_model_loads(tmp_path, capsys):
    assert main(["analyze", "--text", "x", "--figures", "png,tiff", "--out", str(tmp_path / "o")]) == 2
    assert "--figures takes" in capsys.readouterr().err and not (tmp_path / "o").exists()
