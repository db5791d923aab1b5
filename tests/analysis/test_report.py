"""The offline HTML report: one self-contained file (no network), the heatmap's cells with
query, key and value, the head overview and its table, the token view, the graph and its
metrics; checked as text and, where Chromium is installed, in headless Chromium."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from analysis.api import build_graph
from analysis.attention.head_stats import head_summary
from analysis.attention.views import ViewSpec, make_view
from analysis.io.report import report_html, write_html_report
from tests.analysis.fake_runs import make_run

TEXT = "The cat sat on the mat."
TOKENS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
OFFSETS = [(0, 0), (0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22), (22, 23), (0, 0)]
WORD_IDS = [None, 0, 1, 2, 3, 4, 5, 6, None]
SPECIAL = [True] + [False] * 7 + [True]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _run(causal: bool = False):
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 9, 9)) ** 3
    if causal:
        a = np.tril(a)
    a /= a.sum(-1, keepdims=True)
    return make_run(a, text=TEXT, tokens=TOKENS, offsets=OFFSETS, word_ids=WORD_IDS, special=SPECIAL, causal=causal)


@pytest.fixture(scope="module")
def analysed():
    run = _run()
    view = make_view(run, ViewSpec(kind="head", layer=1, head=2))
    return run, view, build_graph(view, mode="top_k", top_k=2)


class _Collect(HTMLParser):
    """Tags with their attributes, and the text inside <title> and <text> elements."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.titles: list[str] = []
        self.texts: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if self._in and self._in[-1] == "title":
            self.titles.append(data)
        elif self._in and self._in[-1] == "text":
            self.texts.append(data)


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    return p


def test_report_is_one_self_contained_file(analysed, tmp_path):
    run, view, graph = analysed
    path = write_html_report(tmp_path / "report.html", run, view, graph, title="My report")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>My report</title>" in text
    p = _parse(text)
    for tag, attrs in p.tags:
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name) or ""
            assert not value or value.startswith(("data:", "#")), f"<{tag} {name}={value!r}> fetches something"
        assert tag not in ("link", "iframe", "object", "embed"), f"<{tag}> in a self-contained report"
    assert "@import" not in text and "url(http" not in text
    # the only URLs are XML namespace names, which nothing fetches
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_heatmap_cells_say_query_key_and_value(analysed):
    run, view, graph = analysed
    p = _parse(report_html(run, view, graph))
    cells = [a for t, a in p.tags if t == "rect" and a.get("class") == "cell"]
    assert len(cells) == 81
    cell_titles = [t for t in p.titles if "\nquery " in t]
    assert len(cell_titles) == 81
    first = cell_titles[1]  # row 0 ([CLS]) -> column 1 (the)
    assert first.startswith(f"[CLS] -> the: {view.matrix[0, 1]:.3f}") and first.endswith("query 0 -> key 1")
    for label in ("[CLS]", "cat", "mat", "[SEP]"):
        assert label in p.texts  # axis labels are text in the inline SVG


def test_heads_tokens_graph_and_tables(analysed):
    run, view, graph = analysed
    text = report_html(run, view, graph)
    p = _parse(text)
    tables = {a.get("id", "").rsplit("-", 1)[-1]: a for t, a in p.tags if t == "table"}
    assert {"heads", "metrics"} <= set(tables)
    head_rows = re.search(r'id="[^"]+-heads">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)
    assert head_rows.count("<tr>") == 2 * 3
    metric_rows = re.search(r'id="[^"]+-metrics">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)
    assert metric_rows.count("<tr>") == graph.n
    tiles = [t for t in p.titles if t.startswith("Layer ")]
    assert len(tiles) == 6 and "entropy:" in tiles[0]
    tokens = [a for t, a in p.tags if t == "span" and "tok" in a.get("class", "").split()]
    assert len(tokens) == len(TOKENS)
    sel = [a for a in tokens if "sel" in a["class"].split()]
    assert [a["data-i"] for a in sel] == ["1"]  # the first non-special token by default
    assert "The cat sat on the mat." in re.sub(r"<[^>]+>", "", text.split('class="tokenview"', 1)[1])
    circles = [a for t, a in p.tags if t == "circle"]
    assert len([c for c in circles if c.get("fill") != "none"]) >= graph.n
    stats = head_summary(run.attentions, run.special_mask)
    assert html.escape(f"{stats['entropy'][0, 0]:.3f}") in head_rows


def test_options_fragment_flow_and_causal_models(tmp_path):
    run = _run(causal=True)
    view = make_view(run, ViewSpec(kind="mean", layer=0))
    frag = report_html(run, view, None, fragment=True, selected=3, colormap="blues")
    assert not frag.lstrip().startswith("<!DOCTYPE") and 'class="atlas-report"' in frag
    assert "No graph was computed" in frag
    assert "masked (causal)" in frag
    assert 'data-i="3"' in frag and "attention paid by “sat”" in frag
    flow = np.linspace(0, 1, len(TOKENS))
    flow_view = make_view(run, ViewSpec(kind="flow", layer=1, query=2))
    text = report_html(run, flow_view, None, flow=flow)
    assert "attention flow from “cat”" in text and "Flow into each input token" in text
    with pytest.raises(ValueError, match="colour map"):
        report_html(run, view, colormap="jet")
    with pytest.raises(OSError, match="does not exist"):
        write_html_report(tmp_path / "no" / "r.html", run, view)


def _chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(analysed, tmp_path):
    """Opened from a file with no network, after its scripts ran: every heatmap cell and
    the token labels are in the DOM, the scripts finished (data-ready), and the page is
    not blank."""
    run, view, graph = analysed
    path = write_html_report(tmp_path / "report.html", run, view, graph)
    done = _chromium(["--dump-dom", path.as_uri()], tmp_path)
    dom = done.stdout
    assert dom, done.stderr[-2000:]
    assert 'data-ready="1"' in dom  # the report's script ran to its end
    assert dom.count('class="cell"') == 81
    for label in ("[CLS]", "cat", "mat", "[SEP]"):
        assert f">{label}</text>" in dom
    shot = tmp_path / "shot.png"
    done = _chromium([f"--screenshot={shot}", "--window-size=1400,1000", path.as_uri()], tmp_path)
    assert shot.exists(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a blank page compresses to a few kB
