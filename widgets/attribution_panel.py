"""Attribution: which input tokens drive an output, by which method, and how far to trust it.

Controls pick the method, the target (what the loaded model can do), the target function,
the baseline and the method's settings; Run computes it in the background (Esc cancels).
The result shows as the text's tokens coloured with a diverging map centred at 0 (blue
lowers the target, red raises it; saliency has no sign), a bar chart of the strongest
units, and a sentence with f(x), f(baseline) and, for Integrated Gradients, whether the
scores add up (the convergence delta). With "Compare methods" the table lists every
explanation's importance of each token side by side with the ERASER faithfulness figures
(AOPC of comprehensiveness and sufficiency) and the Spearman correlation with the chosen
method: the attribution methods and the attention and contribution views of the target
position (attention, rollout, flow, value norms, ALTI;
analysis.attribution.compare.compare_explanations), so a person sees which explanation is
faithful on this input. A generation's attribution is a matrix [generated
tokens x earlier tokens] shown as a signed heatmap; rows appear as they are computed.

Linked selection goes both ways: clicking a unit selects its token in every view
(``token_selected``), and a token selected elsewhere is framed in the strip, its bar drawn
in bold and its row of the comparison table selected (:meth:`AttributionPanel.set_selected_token`).

Every view exports (the Export button): the strip and the bar chart as PNG, SVG or PDF
(:mod:`analysis.io.figures.attribution`, clean unless asked otherwise), a generation's
matrix like the main heatmap, the scores as CSV (``index,token,start,end,score`` as
``attention-atlas attribute`` writes it; a generation's matrix with one row per generated
token) and the comparison table as shown.

Emits ``run_requested`` (read :meth:`settings`), ``cancel_requested``,
``token_selected(token)`` (a run token, for linked selection) and ``export_requested(what)``
(``"strip"``, ``"bars"``, ``"matrix"``, ``"scores"``, ``"comparison"``).
"""

from __future__ import annotations

import csv
import html
import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from analysis.attribution.options import (
    BASELINE_ITEMS,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    METHOD_DESCRIPTIONS,
    METHOD_ITEMS,
    TARGET_FUNCTION_ITEMS,
    TARGET_ITEMS,
)
from analysis.io.figures.attribution import (
    BAR_COUNT,
    attribution_bars_figure,
    attribution_strip_figure,
    diverging_color,
)
from analysis.io.numbers import format_number
from widgets import figure_export
from widgets.heatmap import AttentionHeatmap

EXPORTS = (  # (what, menu text, tooltip)
    ("strip", "Token strip as PNG, SVG or PDF…", "The text coloured by the scores, with its legend"),
    ("bars", "Bar chart as PNG, SVG or PDF…", f"The {BAR_COUNT} strongest units"),
    ("matrix", "Generation matrix as PNG, SVG or PDF…", "Generated tokens x earlier tokens"),
    ("scores", "Scores as CSV…", "index,token,start,end,score (a generation: its matrix)"),
    ("comparison", "Comparison table as CSV…", "The methods side by side, as shown"),
)


def _combo(items) -> QComboBox:
    box = QComboBox()
    for key, label, tip in items:
        box.addItem(label, key)
        box.setItemData(box.count() - 1, tip, Qt.ToolTipRole)
    return box


class AttributionPanel(QWidget):
    """See the module docstring."""

    run_requested = Signal()
    cancel_requested = Signal()
    token_selected = Signal(int)
    export_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result = None
        self._selected_unit: int | None = None
        self._shown: tuple | None = None  # (labels, scores, token_units, signed) of the strip
        self.method_box = _combo(METHOD_ITEMS)
        self.method_box.setCurrentIndex(self.method_box.findData("integrated_gradients"))
        self.target_box = _combo(TARGET_ITEMS)
        self.token_edit = QLineEdit()
        self.token_edit.setPlaceholderText("the model's prediction")
        self.token_edit.setToolTip("Next/masked token: the token to explain (leading space included, e.g. ' Paris')")
        self.contrast_edit = QLineEdit()
        self.contrast_edit.setPlaceholderText("none")
        self.contrast_edit.setToolTip("A foil: explain 'token rather than this one' = logit(token) − logit(foil)")
        self.function_box = _combo(TARGET_FUNCTION_ITEMS)
        self.baseline_box = _combo(BASELINE_ITEMS)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(2, 4096)
        self.steps_spin.setValue(DEFAULT_STEPS)
        self.steps_spin.setToolTip("Integrated Gradients: Gauss-Legendre nodes along the path")
        self.adaptive_check = QCheckBox("Adaptive")
        self.adaptive_check.setChecked(True)
        self.adaptive_check.setToolTip("Refine the path where the scores do not yet add up, until they add up to f(x) − f(baseline) within 5%")
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(10, 20000)
        self.samples_spin.setValue(DEFAULT_SAMPLES)
        self.samples_spin.setToolTip("LIME / KernelSHAP: random masks evaluated")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("LIME / KernelSHAP: the same seed gives the same scores")
        self.words_check = QCheckBox("Words")
        self.words_check.setToolTip("Score words (the sum of their pieces) instead of tokens")
        self.compare_check = QCheckBox("Compare methods")
        self.compare_check.setToolTip("Also run Integrated Gradients, Input×Gradient and occlusion and read the "
                                      "attention, rollout, flow, value-norm and ALTI importance of the target "
                                      "position; score each one's faithfulness (ERASER AOPC) and correlate it "
                                      "with the chosen method (Spearman)")
        self.run_button = QPushButton("Attribute")
        self.run_button.setToolTip("Compute the attribution (Ctrl+Shift+A)")
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.summary = QLabel("Analyse or generate, then pick a method and a target and press Attribute.")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("attributionSummary")
        self.strip = QTextBrowser()
        self.strip.setOpenLinks(False)
        self.strip.anchorClicked.connect(lambda url: self.token_selected.emit(int(url.toString().lstrip("#t"))))
        self.strip.setMinimumHeight(60)
        self.strip.setMaximumHeight(150)  # a few lines of text; the chart and the table need the room
        self.strip.setToolTip("Each unit coloured by its score: red raises the target, blue lowers it; click one "
                              "to select its token in the other views")
        self.legend = QLabel()
        self.bars = pg.PlotWidget(background="w")
        self.bars.setMinimumHeight(160)
        self.bars.getPlotItem().hideButtons()
        self.bars.setToolTip(f"The {BAR_COUNT} units with the largest |score|, sorted")
        self.table = QTableWidget(0, 0)
        self.table.setMinimumHeight(140)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setToolTip("Methods side by side: faithfulness (AOPC: comprehensiveness high and sufficiency "
                              "low is better) and Spearman correlation with the first method")
        self.matrix = AttentionHeatmap()
        self.matrix.setVisible(False)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save the attribution's views as figures, its scores as CSV")
        self.export_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export_button)
        self.export_actions = {}
        for what, text, tip in EXPORTS:
            action = menu.addAction(text)
            action.setToolTip(tip)
            action.triggered.connect(lambda _=False, w=what: self.export_requested.emit(w))
            self.export_actions[what] = action
        self.export_button.setMenu(menu)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.method_box.currentIndexChanged.connect(self._update_enabled)
        self.target_box.currentIndexChanged.connect(self._update_enabled)
        self._bar_order: list[int] = []
        self._build_layout()
        self._update_enabled()
        self._update_exports()

    def _build_layout(self) -> None:
        # The panel shares a column a third of the window wide with the graph: every row must
        # fit about 380 px (combo boxes shrink to their text, settings go on two rows).
        for box in (self.method_box, self.target_box, self.function_box, self.baseline_box):
            box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
        for edit in (self.token_edit, self.contrast_edit):
            edit.setMinimumWidth(60)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("Method", self.method_box)
        form.addRow("Target", self.target_box)
        tokens = QHBoxLayout()
        tokens.addWidget(self.token_edit)
        tokens.addWidget(QLabel("rather than"))
        tokens.addWidget(self.contrast_edit)
        form.addRow("Token", tokens)
        functions = QHBoxLayout()
        functions.addWidget(self.function_box)
        functions.addWidget(self.baseline_box)
        form.addRow("Function, baseline", functions)
        steps = QHBoxLayout()
        for widget in (self.steps_spin, self.adaptive_check):
            steps.addWidget(widget)
        form.addRow("Steps", steps)
        samples = QHBoxLayout()
        for widget in (self.samples_spin, self.seed_spin):
            samples.addWidget(widget)
        form.addRow("Samples, seed", samples)
        options = QHBoxLayout()
        for widget in (self.words_check, self.compare_check):
            options.addWidget(widget)
        form.addRow("", options)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.description)
        layout.addWidget(self.summary)
        layout.addWidget(self.strip, 1)
        layout.addWidget(self.legend)
        layout.addWidget(self.bars, 2)
        layout.addWidget(self.matrix, 3)
        layout.addWidget(self.table, 3)

    def _update_enabled(self, *_) -> None:
        method, target = self.method_box.currentData(), self.target_box.currentData()
        self.description.setText(METHOD_DESCRIPTIONS.get(method, ""))
        self.steps_spin.setEnabled(method == "integrated_gradients")
        self.adaptive_check.setEnabled(method == "integrated_gradients")
        self.samples_spin.setEnabled(method in ("lime", "kernel_shap"))
        self.seed_spin.setEnabled(method in ("lime", "kernel_shap"))
        token_target = target in ("next_token", "masked_token")
        self.token_edit.setEnabled(token_target)
        self.contrast_edit.setEnabled(token_target)
        self.function_box.setEnabled(target != "similarity")

    # What the person asked for -----------------------------------------------------------------------
    def settings(self) -> dict:
        """The attribution the controls ask for (app.jobs.attribute_job reads it)."""
        return {
            "method": self.method_box.currentData(),
            "target": self.target_box.currentData(),
            "token": self.token_edit.text() or None,
            "contrast": self.contrast_edit.text() or None,
            "function": self.function_box.currentData(),
            "baseline": self.baseline_box.currentData(),
            "steps": self.steps_spin.value(),
            "adaptive": self.adaptive_check.isChecked(),
            "samples": self.samples_spin.value(),
            "seed": self.seed_spin.value(),
            "words": self.words_check.isChecked(),
            "compare": self.compare_check.isChecked(),
        }

    def set_targets(self, kinds) -> None:
        """Offer only the targets the loaded model can be asked for."""
        model = self.target_box.model()
        for row in range(self.target_box.count()):
            model.item(row).setEnabled(self.target_box.itemData(row) in kinds)
        if kinds and self.target_box.currentData() not in kinds:
            self.target_box.setCurrentIndex(self.target_box.findData(kinds[0]))  # the model's own task first

    def set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _update_exports(self) -> None:
        result = self._result
        generation = result is not None and hasattr(result, "target_labels")
        for what, action in self.export_actions.items():
            enabled = result is not None
            if what == "matrix":
                enabled = generation
            elif what == "comparison":
                enabled = self.table.rowCount() > 0
            action.setEnabled(enabled)
        self.export_button.setEnabled(result is not None)

    # Results ------------------------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.summary.setText(text)

    def show_attribution(self, result, comparison: dict | None = None) -> None:
        """An ``analysis.attribution.Attribution`` (and the comparison of methods, if any)."""
        self._result = result
        self._selected_unit = None
        self.matrix.setVisible(False)
        labels, scores = result.units.labels, np.asarray(result.scores, dtype=np.float64)
        self.summary.setText(self._summary_text(result))
        self._fill_strip(labels, scores, result.units.token_units, signed=result.method != "saliency")
        self._fill_bars(labels, scores)
        self._fill_table(labels, comparison)
        self._update_exports()

    def show_generation_row(self, row: int, scores: np.ndarray, labels) -> None:
        """A row of a generation's matrix, as it arrives."""
        self.summary.setText(f"Attributing generated token {row + 1}…")

    def show_generation(self, result) -> None:
        """An ``analysis.attribution.GenerationAttribution``: the signed matrix."""
        self._result = result
        self._selected_unit = None
        scores = np.nan_to_num(np.asarray(result.scores, dtype=np.float64))
        self.matrix.setVisible(True)
        self.matrix.set_matrix(scores, list(result.target_labels), list(result.units.labels),
                               masked=np.isnan(result.scores), title=f"{result.method}: generated × earlier tokens",
                               signed=True)
        bad = int((~np.asarray(result.converged, dtype=bool)).sum())
        text = (f"{result.num_rows} generated tokens attributed by {result.method} "
                f"({result.target_function}).")
        if result.method == "integrated_gradients":
            text += (" Every row adds up to f(x) − f(baseline) within 5%." if bad == 0 else
                     f" {bad} of {result.num_rows} rows do NOT add up (the integral did not converge): "
                     "their scores are not yet a trustworthy explanation.")
        self.summary.setText(text)
        totals = np.nansum(np.abs(result.scores), axis=0)
        self._fill_strip(result.units.labels, totals, result.units.token_units, signed=False)
        self._fill_bars(result.units.labels, totals)
        self.table.setRowCount(0)
        self._update_exports()

    def _summary_text(self, result) -> str:
        target = result.target
        what = getattr(target, "description", None) or getattr(target, "kind", "the target")
        text = (f"{what}: f(x) = {format_number(result.f_x, 4)}, f(baseline) = {format_number(result.f_baseline, 4)}"
                f" ({result.baseline} baseline).")
        if result.delta is not None:
            gap = abs(result.f_x - result.f_baseline)
            share = result.delta / gap if gap > 0 else float("nan")
            text += (f" The scores add up to f(x) − f(baseline) within {format_number(result.delta, 3)}"
                     f" ({format_number(100 * share, 2)}%)")
            if result.steps:
                text += f", {result.steps} steps"
            text += "."
            if result.converged is False:
                text += (" It did NOT converge: the scores do not add up, so they are not yet an explanation "
                         "to trust (try more steps, another baseline, or another method).")
        return text

    def _fill_strip(self, labels, scores: np.ndarray, token_units, *, signed: bool) -> None:
        self._shown = (tuple(labels), np.asarray(scores, dtype=np.float64), np.asarray(token_units), signed)
        finite = np.abs(scores[np.isfinite(scores)]) if len(scores) else np.zeros(0)
        scale = float(finite.max()) if finite.size else 0.0
        first_token = {}
        for token, unit in enumerate(np.asarray(token_units)):
            first_token.setdefault(int(unit), token)
        parts = []
        for unit, (label, value) in enumerate(zip(labels, scores, strict=True)):
            colour = diverging_color(value if signed else abs(value), scale)
            title = html.escape(f"{label}: {format_number(value, 4)}")
            text = html.escape(label)
            if unit == self._selected_unit:  # linked selection: the token chosen in another view
                text = f"<b><u>{text}</u></b>"
            parts.append(f'<a href="#t{first_token.get(unit, 0)}" style="text-decoration:none;color:black;'
                         f'background:{colour}" title="{title}">{text}</a>')
        self._strip_source = "<p style='line-height:160%'>" + " ".join(parts) + "</p>"
        self.strip.setHtml(self._strip_source)
        low = f"{format_number(-scale, 3)} lowers" if signed else "0"
        self.legend.setText(
            f"<span style='background:{diverging_color(-scale, scale)}'>&nbsp;{low}&nbsp;</span> "
            f"<span style='background:#ffffff'>&nbsp;0&nbsp;</span> "
            f"<span style='background:{diverging_color(scale, scale)}'>&nbsp;{format_number(scale, 3)} raises&nbsp;</span>")

    def _fill_bars(self, labels, scores: np.ndarray) -> None:
        plot = self.bars.getPlotItem()
        plot.clear()
        order = np.argsort(-np.abs(np.nan_to_num(scores)))[:BAR_COUNT][::-1]
        values = np.nan_to_num(scores[order])
        brushes = [pg.mkBrush(diverging_color(v, float(np.abs(values).max() or 1))) for v in values]
        pens = [pg.mkPen("#1f4fd1", width=3) if int(j) == self._selected_unit else pg.mkPen("#555") for j in order]
        self._bar_order = [int(j) for j in order]
        plot.addItem(pg.BarGraphItem(x0=0, y=np.arange(len(order)), height=0.8, width=values, brushes=brushes,
                                     pens=pens))
        plot.getAxis("left").setTicks([[(i, labels[j]) for i, j in enumerate(order)]])
        plot.setLabel("bottom", "score")

    def _fill_table(self, labels, comparison: dict | None) -> None:
        """Explanations side by side: AOPC comprehensiveness and sufficiency, Spearman with
        the chosen method, then each token's importance (rows: the comparison's tokens)."""
        if not comparison:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            return
        methods = list(comparison["scores"])
        titles = comparison.get("titles", {})
        tokens = list(comparison.get("labels", labels))
        rows = ["AOPC comprehensiveness", "AOPC sufficiency", f"Spearman with {titles.get(methods[0], methods[0])}",
                *tokens]
        self.table.setColumnCount(len(methods))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels([titles.get(m, m) for m in methods])
        self.table.setVerticalHeaderLabels(rows)
        descriptions = comparison.get("descriptions", {})
        for column, method in enumerate(methods):
            header = self.table.horizontalHeaderItem(column)
            if header is not None and method in descriptions:
                header.setToolTip(descriptions[method])
            faith = comparison["faithfulness"].get(method)
            values = [faith.aopc_comprehensiveness if faith else float("nan"),
                      faith.aopc_sufficiency if faith else float("nan"),
                      comparison["spearman"].get(method, float("nan")),
                      *comparison["scores"][method]]
            for row, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(format_number(value, 4)))
        note = comparison.get("note")
        skipped = comparison.get("skipped") or {}
        extra = " ".join([note or "", *[f"{name}: {why}" for name, why in skipped.items()]]).strip()
        self.table.setToolTip("Explanations side by side: faithfulness (AOPC: comprehensiveness high and "
                              "sufficiency low is better), Spearman correlation with the chosen method, then "
                              "each token's importance." + (f"\n{extra}" if extra else ""))

    # Linked selection -----------------------------------------------------------------------------------
    def set_selected_token(self, token: int | None) -> None:
        """Frame the unit of run token ``token`` (selected in another view): bold in the
        strip, a bold outline in the bar chart, its row selected in the comparison table."""
        unit = None
        if token is not None and self._shown is not None:
            token_units = self._shown[2]
            if 0 <= int(token) < len(token_units):
                unit = int(token_units[int(token)])
        if unit == self._selected_unit:
            return
        self._selected_unit = unit
        if self._shown is None:
            return
        labels, scores, token_units, signed = self._shown
        self._fill_strip(labels, scores, token_units, signed=signed)
        self._fill_bars(labels, scores)
        if self.table.rowCount() > 3:  # the comparison's rows are tokens
            blocked = self.table.blockSignals(True)
            self.table.clearSelection()
            if token is not None and 3 + int(token) < self.table.rowCount():
                self.table.selectRow(3 + int(token))
            self.table.blockSignals(blocked)

    def selected_unit(self) -> int | None:
        return self._selected_unit

    def bar_pen_widths(self) -> dict[int, float]:
        """Unit -> outline width of its bar (tests: the selected unit's bar is bold)."""
        items = [i for i in self.bars.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
        if not items:
            return {}
        pens = items[0].opts.get("pens") or []
        return {unit: pg.mkPen(pen).widthF() for unit, pen in zip(self._bar_order, pens, strict=False)}

    def _on_table_selection(self) -> None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if len(rows) != 1 or self._shown is None:
            return
        token = next(iter(rows)) - 3  # the comparison's rows are tokens
        if 0 <= token < len(self._shown[2]):
            self.token_selected.emit(int(token))

    # Figures and files ------------------------------------------------------------------------------------
    def _notes(self) -> list[str]:
        text = self.summary.text()
        return [text] if text else []

    def _figure_scores(self) -> np.ndarray:
        """The shown scores with special tokens' units as NaN: the figures grey them and
        leave them out of the bar chart (they are never scored, their 0 is no finding)."""
        scores = np.array(self._shown[1], dtype=np.float64)
        segments = getattr(getattr(self._result, "units", None), "segments", None)
        if segments is not None and len(segments) == len(scores):
            scores[np.asarray(segments) == -1] = np.nan
        return scores

    def strip_figure(self, *, include_highlight: bool = False, title: str | None = None):
        """The strip as a figure (clean: no selected unit, unless ``include_highlight``)."""
        if self._shown is None:
            raise ValueError("nothing to export: no attribution is shown")
        labels, _scores, _units, signed = self._shown
        scores = self._figure_scores()
        return attribution_strip_figure(
            labels, scores, signed=signed, title=title or self._title(), notes=self._notes(),
            selected=self._selected_unit if include_highlight else None, metrics=figure_export.figure_metrics())

    def bars_figure(self, *, include_highlight: bool = False, title: str | None = None):
        """The bar chart as a figure (the strongest units)."""
        if self._shown is None:
            raise ValueError("nothing to export: no attribution is shown")
        labels, scores = self._shown[0], self._figure_scores()
        return attribution_bars_figure(labels, scores, title=title or self._title(), notes=self._notes(),
                                       metrics=figure_export.figure_metrics())

    def export_figure(self, what: str, path, *, width: int | None = None, dpi: float | None = None,
                      include_highlight: bool = False, title: str | None = None):
        """Write the ``strip``, ``bars`` or ``matrix`` view as PNG, SVG or PDF (by extension)."""
        if what == "matrix":
            if not self.matrix.isVisible() or self._result is None:
                raise ValueError("nothing to export: no generation matrix is shown")
            return self.matrix.export_figure(path, width=width, dpi=dpi, include_highlight=include_highlight,
                                             title=title)
        make = {"strip": self.strip_figure, "bars": self.bars_figure}[what]
        return figure_export.write_figure(make(include_highlight=include_highlight, title=title), path,
                                          width=width, dpi=dpi)

    def export_scores_csv(self, path: str | os.PathLike) -> None:
        """The scores as CSV: ``index,token,start,end,score`` per unit (as ``attention-atlas
        attribute`` writes ``attribution.csv``); a generation: one row per generated token,
        one column per earlier unit (empty where a unit comes after the token)."""
        result = self._result
        if result is None:
            raise ValueError("nothing to export: no attribution is shown")
        path = figure_export.check_writable(path, "CSV")
        if hasattr(result, "target_labels"):
            matrix = np.asarray(result.scores, dtype=np.float64)
            with open(path, "w", newline="", encoding="utf-8") as handle:
                out = csv.writer(handle)
                out.writerow(["generated", "token", *[f"{j}:{label}" for j, label in enumerate(result.units.labels)]])
                for row, label in enumerate(result.target_labels):
                    out.writerow([row, label, *["" if not np.isfinite(v) else format_number(v) for v in matrix[row]]])
            return
        from analysis.io.folder import write_tokens_csv

        spans = [(int(a), int(b)) for a, b in np.asarray(result.units.spans).reshape(-1, 2)]
        write_tokens_csv(path, result.units.labels, spans, {"score": np.asarray(result.scores, dtype=np.float64)})

    def export_comparison_csv(self, path: str | os.PathLike) -> None:
        """The comparison table as shown (rows: AOPC figures, Spearman, then each unit)."""
        if self.table.rowCount() == 0:
            raise ValueError("nothing to export: no comparison is shown (tick Compare methods and attribute)")
        path = figure_export.check_writable(path, "CSV")
        with open(path, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            columns = [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]
            out.writerow(["row", *columns])
            for r in range(self.table.rowCount()):
                header = self.table.verticalHeaderItem(r)
                cells = [self.table.item(r, c) for c in range(self.table.columnCount())]
                out.writerow([header.text() if header else r, *[c.text() if c else "" for c in cells]])

    def _title(self) -> str:
        result = self._result
        if result is None:
            return "attribution"
        target = getattr(result, "target", None)
        what = getattr(target, "description", None) or "the generated tokens"
        return f"{result.method.replace('_', ' ')} · {what}"

    # Accessors (tests, exports) -------------------------------------------------------------------------
    def result(self):
        return self._result

    def strip_html(self) -> str:
        """The strip's HTML as the panel wrote it (the selected unit in ``<b><u>``)."""
        return getattr(self, "_strip_source", "")
