"""Selectors for what to look at: view kind, layer, head, stack, the source rollout and flow
go through, words, specials, colour scale."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from analysis.attention.views import ViewSpec
from analysis.options import LAYERED_VIEW_KINDS, STACK_ITEMS, THROUGH_ITEMS, VIEW_ITEMS


class ViewControls(QWidget):
    """Emits ``changed`` (debounced a little, so holding an arrow key does not queue work)."""

    changed = Signal()
    display_changed = Signal()  # colour scale or map: repaint only

    def __init__(self, colormaps: tuple[str, ...] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind_box = QComboBox()
        for key, name, tip in VIEW_ITEMS:
            self.kind_box.addItem(name, key)
            self.kind_box.setItemData(self.kind_box.count() - 1, tip, 3)  # Qt.ToolTipRole
        self.kind_box.setToolTip("What to show: one head, a reduction over heads, or across layers")
        self.layer_spin = QSpinBox()
        self.layer_spin.setToolTip("Layer (0 = closest to the input). PgUp/PgDn")
        self.layer_spin.setPrefix("layer ")
        self.head_spin = QSpinBox()
        self.head_spin.setToolTip("Head of the layer. Up/Down in the box, or click a head in the overview")
        self.head_spin.setPrefix("head ")
        self.stack_box = QComboBox()
        for key, name, tip in STACK_ITEMS:
            self.stack_box.addItem(name, key)
            self.stack_box.setItemData(self.stack_box.count() - 1, tip, 3)
        self.stack_box.setToolTip("Encoder-decoder models: encoder self-, decoder self- or cross-attention")
        self.through_box = QComboBox()
        for key, name, tip in THROUGH_ITEMS:
            self.through_box.addItem(f"through {name}", key)
            self.through_box.setItemData(self.through_box.count() - 1, tip, 3)
        self.through_box.setToolTip("Rollout and flow: the per-layer matrices they go through, raw attention "
                                    "(with half added for the residual) or a contribution measure (computed from "
                                    "the model on first use)")
        self.words_check = QCheckBox("Words")
        self.words_check.setToolTip("Merge sub-word tokens into words (keys summed, queries averaged)")
        self.special_check = QCheckBox("Hide specials")
        self.special_check.setToolTip("Drop special tokens such as [CLS] and [SEP] and renormalise each row")
        self.log_check = QCheckBox("Log scale")
        self.log_check.setToolTip("Colour by log10 of the weight, to see small weights")
        self.colormap_box = QComboBox()
        self.colormap_box.addItems(list(colormaps))
        self.colormap_box.setToolTip("Colour map of the heatmap")

        # Two rows, so the window still fits a 1280-pixel screen beside the docks.
        what = QHBoxLayout()
        for widget in (QLabel("View"), self.kind_box, self.layer_spin, self.head_spin, self.through_box,
                       self.stack_box):
            what.addWidget(widget)
        what.addStretch(1)
        how = QHBoxLayout()
        for widget in (self.words_check, self.special_check, self.log_check, self.colormap_box):
            how.addWidget(widget)
        how.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.addLayout(what)
        layout.addLayout(how)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(15)
        self._debounce.timeout.connect(self.changed)
        for signal in (self.kind_box.currentIndexChanged, self.layer_spin.valueChanged, self.head_spin.valueChanged,
                       self.stack_box.currentIndexChanged, self.through_box.currentIndexChanged,
                       self.words_check.toggled, self.special_check.toggled):
            signal.connect(self._on_any_change)
        self.log_check.toggled.connect(self.display_changed)
        self.colormap_box.currentIndexChanged.connect(self.display_changed)
        self.set_limits(1, 1, has_decoder=False)

    def _on_any_change(self, *_):
        self._update_enabled()
        self._debounce.start()

    def _update_enabled(self) -> None:
        self.head_spin.setEnabled(self.kind() == "head")
        layered = self.kind() in LAYERED_VIEW_KINDS
        self.head_spin.setVisible(not layered)  # one place for head or source: the row fits 1280 px
        self.through_box.setVisible(layered)

    def set_limits(self, layers: int, heads: int, *, has_decoder: bool) -> None:
        """Fit the selectors to a model; keeps the current values where they still exist."""
        blockers = [w.blockSignals(True) for w in (self.layer_spin, self.head_spin, self.stack_box)]
        self.layer_spin.setRange(0, max(0, layers - 1))
        self.head_spin.setRange(0, max(0, heads - 1))
        self.stack_box.setVisible(has_decoder)
        if not has_decoder:
            self.stack_box.setCurrentIndex(0)
        for widget, old in zip((self.layer_spin, self.head_spin, self.stack_box), blockers, strict=True):
            widget.blockSignals(old)
        self._update_enabled()

    def kind(self) -> str:
        return self.kind_box.currentData()

    def spec(self) -> ViewSpec:
        """The view the controls ask for (the flow query is the session's, not theirs)."""
        return ViewSpec(kind=self.kind(), layer=self.layer_spin.value(), head=self.head_spin.value(),
                        stack=self.stack(), merge_words=self.words_check.isChecked(),
                        drop_special=self.special_check.isChecked(), through=self.through())

    def through(self) -> str:
        """The source rollout and flow go through (``analysis.options.THROUGH_KINDS``)."""
        return self.through_box.currentData()

    def set_spec(self, spec: ViewSpec) -> None:
        """Show ``spec`` without emitting ``changed`` (it comes from the session)."""
        widgets = (self.kind_box, self.layer_spin, self.head_spin, self.stack_box, self.words_check,
                   self.special_check, self.through_box)
        blocked = [w.blockSignals(True) for w in widgets]
        self.kind_box.setCurrentIndex(max(0, self.kind_box.findData(spec.kind)))
        if spec.layer >= 0:
            self.layer_spin.setValue(spec.layer)
        else:
            self.layer_spin.setValue(self.layer_spin.maximum() + 1 + spec.layer)
        self.head_spin.setValue(spec.head)
        self.stack_box.setCurrentIndex(max(0, self.stack_box.findData(spec.stack)))
        self.words_check.setChecked(spec.merge_words)
        self.special_check.setChecked(spec.drop_special)
        self.through_box.setCurrentIndex(max(0, self.through_box.findData(spec.through)))
        for widget, old in zip(widgets, blocked, strict=True):
            widget.blockSignals(old)
        self._update_enabled()

    def stack(self) -> str:
        return self.stack_box.currentData()

    def set_head(self, layer: int, head: int) -> None:
        """Select one head (as a click in the head overview does)."""
        self.kind_box.setCurrentIndex(0)
        self.layer_spin.setValue(layer)
        self.head_spin.setValue(head)

    def set_kind(self, kind: str) -> None:
        self.kind_box.setCurrentIndex(self.kind_box.findData(kind))

    def flush(self) -> None:
        """Emit a pending change now (tests, scripted use)."""
        if self._debounce.isActive():
            self._debounce.stop()
            self.changed.emit()
