"""An offline HTML report of one analysis: one self-contained file, no network.

:func:`write_html_report` writes, and :func:`report_html` returns, one HTML page with
inline CSS, inline SVG and a little vanilla JavaScript, and nothing it must fetch (no
CDN, no fonts, no images from elsewhere), so it opens the same in any browser, offline,
and in a notebook (``IPython.display.HTML(report_html(..., fragment=True))``):

* the **heatmap** of the view as inline SVG: one ``<rect class="cell">`` per cell (up to
  256 x 256 cells; a bitmap beyond) whose tooltip says query, key and value, token
  labels on both axes, a colour bar; the script adds a live readout of the cell under
  the mouse (also for the bitmap);
* the **head overview**: every layer x head as a thumbnail (tooltip: the head's
  statistics) and a sortable table of those statistics;
* the **token view**: the text as typed, each token coloured by the attention the
  selected token pays it (click a token to colour by its row instead);
* the **graph**: inline SVG of nodes and edges (communities, node size by PageRank)
  and a sortable table of every token's metrics.

Static content is written by Python (figures from :mod:`analysis.io.figure_data`), so
the page reads without scripts too; the scripts only add sorting, hovering and picking
another token. No Qt here.
"""

from __future__ import annotations

import html
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.io import figure_data as fd

__all__ = ["MAX_SCRIPT_CELLS", "report_html", "write_html_report"]

#: matrices up to this many cells are embedded as numbers for the scripts (hover
#: readout, recolouring the token view); larger ones keep only the static figure
MAX_SCRIPT_CELLS = 512 * 512


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(v: float) -> str:
    v = float(v)
    if not math.isfinite(v):
        return ""
    return fd.format_weight(v) if abs(v) < 1 else f"{v:.4g}"


def _json(data) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def _round(values: np.ndarray) -> list:
    out = []
    for row in np.asarray(values, dtype=np.float64):
        out.append([None if not math.isfinite(v) else float(f"{v:.4g}") for v in row])
    return out


def _table(uid: str, name: str, header: Sequence[str], rows: Sequence[Sequence], numeric: Sequence[bool],
           tips: Sequence[str] | None = None, caption: str = "") -> str:
    """A sortable table: click a column title to sort (numbers by value)."""
    ths = []
    for k, title in enumerate(header):
        tip = f' title="{_e(tips[k])}"' if tips and tips[k] else ""
        ths.append(f'<th data-col="{k}" data-num="{int(numeric[k])}"{tip}>{_e(title)}</th>')
    body = []
    for row in rows:
        tds = []
        for k, value in enumerate(row):
            if numeric[k]:
                v = float(value)
                shown = str(value) if isinstance(value, (int, np.integer)) else _num(v)
                tds.append(f'<td class="num" data-v="{v!r}">{_e(shown)}</td>')
            else:
                tds.append(f"<td>{_e(value)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable" id="{uid}-{name}">{cap}<thead><tr>{"".join(ths)}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def _token_weights(run, view, flow, selected: int | None) -> tuple[np.ndarray | None, int | None, str]:
    """Weights per run token for the token view, the selected run token and a caption."""
    if view.spec.stack != "self":
        return None, None, "The token view colours self-attention; this view is another stack."
    if flow is not None and view.spec.kind == "flow":
        query = view.spec.query
        return np.asarray(flow, dtype=np.float64), query, (
            f"Colour = attention flow from “{run.labels[query]}” (token {query}) into each token.")
    if selected is None:
        candidates = [g[0] for g in view.row_tokens if not run.special_mask[g[0]]] or [view.row_tokens[0][0]]
        selected = int(candidates[0])
    row = next((r for r, g in enumerate(view.row_tokens) if selected in g), None)
    if row is None:
        return None, None, f"Token {selected} is not a row of this view."
    weights = np.zeros(run.num_tokens)
    for value, group in zip(view.matrix[row], view.col_tokens, strict=True):
        weights[list(group)] = value
    return weights, selected, f"Colour = attention paid by “{run.labels[selected]}” (token {selected}) to each token."


def _tokens_html(run, weights, selected) -> str:
    colors = fd.token_colors(weights, selected, run.num_tokens)
    parts = ['<p class="tokens">']
    for piece in fd.token_pieces(run.text, run.pair, run.labels, run.offsets, run.segment_ids, run.special_mask):
        if piece[0] == "text":
            parts.append(_e(piece[1]).replace("\n", "<br>"))
        elif piece[0] == "pair":
            parts.append('</p><hr><p class="tokens">')
        else:
            _, i, text, chip = piece
            style = f' style="background:{colors[i]}"' if colors[i] else ""
            tip = f"{run.labels[i]} · {fd.format_weight(float(weights[i]))}" if weights is not None else f"{i} {run.labels[i]}"
            cls = "tok chip" if chip else "tok"
            if i == selected:
                cls += " sel"
            parts.append(f'<span class="{cls}" data-i="{i}" title="{_e(tip)}"{style}>{_e(text)}</span>')
    parts.append("</p>")
    return "".join(parts)


def report_html(run, view, graph=None, *, head_stats: Mapping[str, np.ndarray] | None = None, flow=None,
                title: str | None = None, colormap: str = "viridis", selected: int | None = None,
                graph_layout: str = "arc", positions: np.ndarray | None = None, fragment: bool = False) -> str:
    """The report as HTML text (see the module docstring for what it holds).

    Parameters
    ----------
    run, view : the :class:`~analysis.run.AttentionRun` and the
        :class:`~analysis.attention.views.AttentionView` shown.
    graph : the view's :class:`~analysis.graph.metrics.GraphResult`, optional.
    head_stats : ``{name: [layers, heads]}`` statistics of the head overview (default:
        computed with :func:`analysis.attention.head_stats.head_summary`).
    flow : attention flow per run token (a flow view colours the token view by it).
    title : the page's title (default: the view's).
    colormap : one of :data:`analysis.io.figure_data.COLORMAP_NAMES` for the heatmap and
        the head overview (signed views use the diverging map).
    selected : the run token whose row colours the token view (default: the first
        non-special token).
    graph_layout, positions : "arc" or "circular" (or node positions ``[n, 2]``).
    fragment : a ``<div>`` with its own style and script (for notebooks) instead of a
        whole document.

    Returns
    -------
    str : HTML; every resource inline.
    """
    from analysis.attention.head_stats import head_summary, head_thumbnails

    if colormap not in fd.COLORMAP_NAMES or colormap == "signed":
        raise ValueError(f"unknown colour map {colormap!r}; choose one of "
                         f"{', '.join(n for n in fd.COLORMAP_NAMES if n != 'signed')}")
    uid = "atlas-" + uuid.uuid4().hex[:8]
    title = view.title if title is None else str(title)
    signed = bool(getattr(view, "signed", False))
    m = np.asarray(view.matrix, dtype=np.float64)
    n_rows, n_cols = m.shape

    heat = fd.heatmap_figure(m, view.row_labels, view.col_labels, masked=view.masked, title="", signed=signed,
                             colormap=colormap)
    heat_svg = fd.to_svg(heat, standalone=False, css_class="fig heatmap")
    stats = dict(head_stats) if head_stats is not None else head_summary(run.attentions, run.special_mask)
    heads = fd.heads_figure(head_thumbnails(run.attentions, 32), colormap=colormap, masked=bool(run.model.is_causal),
                            stats=stats, title="", bitmap=True)
    heads_svg = fd.to_svg(heads, standalone=False, css_class="fig heads")
    header, rows = fd.head_table(stats)
    tips = ["layer (0-based)", "head (0-based)"] + [fd.format_head_stat(k, 0).split(":")[0] for k in header[2:]]
    head_rows = [[r[0], r[1], *(100 * v if k == "special_share" else v for k, v in zip(header[2:], r[2:], strict=True))]
                 for r in rows]
    head_header = ["layer", "head"] + [{"special_share": "special tokens (%)", "entropy": "entropy (nats)",
                                        "mean_distance": "mean distance (tokens)"}.get(k, k.replace("_", " "))
                                       for k in header[2:]]
    heads_table = _table(uid, "heads", head_header, head_rows, [True] * len(head_header), tips,
                         "Every head's statistics (click a column title to sort)")

    weights, sel, caption = _token_weights(run, view, flow, selected)
    tokens = _tokens_html(run, weights, sel)

    graph_block = "<p class=\"muted\">No graph was computed for this view.</p>"
    if graph is not None:
        from analysis.graph.layout import arc_layout, circular_layout

        layout = graph_layout if graph_layout in ("arc", "circular") else "arc"
        pos = positions if positions is not None else (arc_layout(graph.n) if layout == "arc" else circular_layout(graph.n))
        metric = "pagerank" if "pagerank" in graph.metrics else None
        gfig = fd.graph_figure(view.row_labels if len(view.row_labels) == graph.n else [str(i) for i in range(graph.n)],
                               graph.sources, graph.targets, graph.weights, pos, layout=layout,
                               communities=graph.communities, size_values=graph.metrics.get(metric) if metric else None,
                               size_metric=metric, metric_values=graph.metrics, title="")
        names = list(graph.metrics)
        labels = view.row_labels if len(view.row_labels) == graph.n else [str(i) for i in range(graph.n)]
        mrows = [[i, labels[i], int(graph.communities[i]), *(float(graph.metrics[k][i]) for k in names)]
                 for i in range(graph.n)]
        rule = graph.rule.describe() if hasattr(graph.rule, "describe") else str(graph.rule)
        facts = (f"{graph.n} tokens, {len(graph.sources):,} edges kept ({_e(rule)}), "
                 f"modularity {graph.modularity:.3f}, density {graph.density:.3f}")
        graph_block = (
            f'<p class="muted">{facts}. Edge i → j: token i attends to token j.</p>'
            + fd.to_svg(gfig, standalone=False, css_class="fig graph")
            + _table(uid, "metrics", ["index", "token", "community", *names], mrows,
                     [True, False, True] + [True] * len(names), None, "Every token's graph metrics (click to sort)")
        )

    flow_block = ""
    if flow is not None:
        fv = np.asarray(flow, dtype=np.float64)
        frows = [[i, run.labels[i], float(fv[i])] for i in range(len(fv))]
        flow_block = ("<section><h2>Attention flow</h2>"
                      + _table(uid, "flow", ["token index", "token", "flow"], frows, [True, False, True], None,
                               "Flow into each input token") + "</section>")

    data = {"rows": list(view.row_labels), "cols": list(view.col_labels), "meta": heat.meta,
            "signed": signed, "labels": list(run.labels), "stack": view.spec.stack,
            "masked": None if view.masked is None else np.asarray(view.masked).astype(int).tolist()
            if n_rows * n_cols <= MAX_SCRIPT_CELLS else None}
    if n_rows * n_cols <= MAX_SCRIPT_CELLS:
        data["matrix"] = _round(m)
        data["rowOf"] = [next((r for r, g in enumerate(view.row_tokens) if i in g), -1) for i in range(run.num_tokens)]
        data["colTokens"] = [list(g) for g in view.col_tokens]
        data["special"] = [bool(x) for x in run.special_mask]
        data["flowView"] = view.spec.kind == "flow"

    model = run.model
    facts = (f"{_e(model.name)} · {model.architecture} · {model.num_layers} layers × {model.num_heads} heads · "
             f"{run.num_tokens} tokens · view: {_e(view.spec.describe())}")
    notice = f'<p class="notice">{_e(run.notice)}</p>' if getattr(run, "notice", None) else ""
    body = f"""<div class="atlas-report" id="{uid}">
<header><h1>{_e(title)}</h1><p class="muted">{facts}</p>{notice}</header>
<section><h2>Heatmap</h2>
<p class="muted">Row i, column j: how much query token i attends to key token j (rows sum to 1{
    ", signed values" if signed else ""}). Hover a cell for its value.</p>
<div class="readout" id="{uid}-readout">&nbsp;</div>
{heat_svg}</section>
<section><h2>Tokens</h2><p class="muted" id="{uid}-caption">{_e(caption)}</p>
<p class="muted small">Click a token to colour the text by the attention it pays.</p>
<div class="tokenview" id="{uid}-tokens">{tokens}</div></section>
<section><h2>Heads</h2><p class="muted">Every layer (rows) × head (columns) of the self-attention;
each tile from 0 to its own maximum. Hover a tile for its statistics.</p>
{heads_svg}{heads_table}</section>
<section><h2>Graph</h2>{graph_block}</section>
{flow_block}
<footer class="muted small">Made offline by Attention Atlas. Conventions: A[i, j] is how much query token i
attends to key token j; graph edge i → j has weight A[i, j]; communities by Louvain on A + Aᵀ.</footer>
<script type="application/json" id="{uid}-data">{_json(data)}</script>
<script>{_SCRIPT.replace("__UID__", uid)}</script>
</div>"""
    style = f"<style>{_STYLE}</style>"
    if fragment:
        return style + body
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title>{style}</head><body>{body}</body></html>\n")


def write_html_report(path: str | os.PathLike, run, view, graph=None, *,
                      head_stats: Mapping[str, np.ndarray] | None = None, flow=None, title: str | None = None,
                      **options) -> Path:
    """Write :func:`report_html` (a whole document) to ``path``; ``options`` are its
    other keywords (``colormap``, ``selected``, ``graph_layout``, ``positions``).
    Returns the path. ``OSError`` with a sentence naming the file when it cannot be
    written."""
    text = report_html(run, view, graph, head_stats=head_stats, flow=flow, title=title, **options)
    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"Cannot write the report to {os.fspath(path)!r}: the folder {os.fspath(path.parent)!r} does not exist")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OSError(f"Cannot write the report to {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    return path


_STYLE = """
.atlas-report{font-family:'DejaVu Sans',Verdana,'Liberation Sans',Arial,Helvetica,sans-serif;color:#1f2933;
 max-width:1400px;margin:0 auto;padding:12px 20px;line-height:1.4;background:#fff}
.atlas-report h1{font-size:1.5em;margin:.2em 0}
.atlas-report h2{font-size:1.2em;margin:1.2em 0 .3em;border-bottom:1px solid #d9e2ec;padding-bottom:.2em}
.atlas-report .muted{color:#52606d}.atlas-report .small{font-size:.85em}
.atlas-report .notice{color:#8a5a00}
.atlas-report svg.fig{max-width:100%;height:auto;display:block}
.atlas-report .readout{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:.9em;min-height:1.4em}
.atlas-report .scroll{max-height:420px;overflow:auto;margin:.6em 0;border:1px solid #d9e2ec}
.atlas-report table{border-collapse:collapse;font-size:.85em}
.atlas-report th,.atlas-report td{padding:2px 8px;border-bottom:1px solid #eef2f6;text-align:left}
.atlas-report td.num{text-align:right;font-variant-numeric:tabular-nums}
.atlas-report th{position:sticky;top:0;background:#f5f7fa;cursor:pointer;user-select:none}
.atlas-report th[data-dir="asc"]::after{content:" ▲"}.atlas-report th[data-dir="desc"]::after{content:" ▼"}
.atlas-report caption{text-align:left;color:#52606d;padding:4px}
.atlas-report p.tokens{white-space:pre-wrap;font-size:1.15em;line-height:1.9}
.atlas-report .tok{cursor:pointer;border-radius:2px}
.atlas-report .tok.chip{font-size:.75em;background:#e4e4e4;padding:0 .3em;margin:0 .15em}
.atlas-report .tok.sel{font-weight:bold;text-decoration:underline;color:#1e5ac8}
.atlas-report rect.cell:hover{stroke:#000;stroke-width:1}
"""

_SCRIPT = r"""
(function(){
var root=document.getElementById("__UID__");if(!root)return;
var dataEl=document.getElementById("__UID__-data");var D=dataEl?JSON.parse(dataEl.textContent):{};
function fmt(v){if(v===null||v===undefined)return "masked";var a=Math.abs(v);
 return (v===0||a>=1e-3)?v.toFixed(3):v.toExponential(1);}
// sortable tables
root.querySelectorAll("table.sortable").forEach(function(t){
 t.querySelectorAll("th").forEach(function(th){th.addEventListener("click",function(){
  var col=+th.dataset.col,num=th.dataset.num==="1",dir=th.dataset.dir==="asc"?"desc":"asc";
  t.querySelectorAll("th").forEach(function(o){delete o.dataset.dir;});th.dataset.dir=dir;
  var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=a.cells[col],y=b.cells[col],r;
   if(num){r=parseFloat(x.dataset.v)-parseFloat(y.dataset.v);}else{r=x.textContent.localeCompare(y.textContent);}
   return dir==="asc"?r:-r;});
  rows.forEach(function(r){body.appendChild(r);});});});});
// heatmap readout under the mouse
var svg=root.querySelector("svg.heatmap"),out=document.getElementById("__UID__-readout"),M=D.meta;
if(svg&&M&&out){svg.addEventListener("mousemove",function(ev){
 var p=svg.createSVGPoint();p.x=ev.clientX;p.y=ev.clientY;var q=p.matrixTransform(svg.getScreenCTM().inverse());
 var j=Math.floor((q.x-M.x0)/M.cell),i=Math.floor((q.y-M.y0)/M.cell);
 if(i<0||j<0||i>=M.rows||j>=M.cols){out.innerHTML="&nbsp;";return;}
 var v=D.matrix?D.matrix[i][j]:undefined;var masked=D.masked&&D.masked[i][j];
 out.textContent=D.rows[i]+" \u2192 "+D.cols[j]+": "+(masked?"masked (causal)":(v===undefined?"":fmt(v)))+
  "   (query "+i+", key "+j+")";});
 svg.addEventListener("mouseleave",function(){out.innerHTML="&nbsp;";});}
// token view: click a token to colour by its row
var tv=document.getElementById("__UID__-tokens"),cap=document.getElementById("__UID__-caption");
function blend(a){a=Math.max(0,Math.min(1,a));var c=[255,140,0];
 return "rgb("+Math.round(255*(1-a)+c[0]*a)+","+Math.round(255*(1-a)+c[1]*a)+","+Math.round(255*(1-a)+c[2]*a)+")";}
if(tv&&D.matrix&&D.stack==="self"&&!D.flowView){tv.addEventListener("click",function(ev){
 var el=ev.target.closest?ev.target.closest(".tok"):null;if(!el)return;var tok=+el.dataset.i,row=D.rowOf[tok];
 if(row===undefined||row<0)return;var w=new Array(D.labels.length).fill(0);
 D.matrix[row].forEach(function(v,c){D.colTokens[c].forEach(function(t){w[t]=v||0;});});
 var peak=0;w.forEach(function(v,t){if(t!==tok&&v>peak)peak=v;});if(!(peak>0))peak=1;
 tv.querySelectorAll(".tok").forEach(function(s){var t=+s.dataset.i,v=w[t];
  s.style.background=blend(v>0?Math.pow(v/peak,0.8):0);s.title=D.labels[t]+" \u00b7 "+fmt(v);
  s.classList.toggle("sel",t===tok);});
 if(cap)cap.textContent="Colour = attention paid by \u201c"+D.labels[tok]+"\u201d (token "+tok+") to each token.";});}
root.dataset.ready="1";
})();
"""
