"""The model picker: the embedded models, recent folders and files, cached hub models and
GGUF models found on this computer.

Finding models walks folders (Ollama's, LM Studio's, llama.cpp's, the Hugging Face cache),
which can take a while on a slow or network disk, so it runs on a thread of its own: the
picker opens at once with the embedded and recent models, and the found ones join the list
when the scan is done (:attr:`ModelPicker.scanned`). The scan thread touches no Qt object
(a signal emitted from it while the window is being destroyed can crash the process): it
leaves its result in a plain attribute, and a timer of the picker's, on the GUI thread,
picks it up.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox

DEFAULT_SOURCE = "default"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2 (embedded)"
CHAT_SOURCE = "smollm2"
CHAT_MODEL_NAME = "SmolLM2-135M-Instruct (embedded)"
OPEN_FOLDER = "__open__"
OPEN_FILE = "__open_file__"
MAX_RECENT = 8


def model_display_name(source: str) -> str:
    return Path(source).name if os.path.isdir(source) or source.lower().endswith(".gguf") else source


def scan_local_models(holder: list) -> None:
    """Append ``(GGUF models found, cached hub ids)`` to ``holder`` (runs on the scan thread:
    plain Python only)."""
    from analysis.models import discovery
    from analysis.models.hub_cache import cached_hub_models

    try:
        found = discovery.find_gguf_models()
    except OSError:
        found = []
    try:
        hub = cached_hub_models()
    except OSError:
        hub = []
    holder.append((found, hub))


class ModelPicker(QComboBox):
    """A combo box of model sources; ``currentData()`` is the source, or OPEN_FOLDER."""

    scanned = Signal()  # the models found on this computer are in the list
    POLL_MS = 100

    def __init__(self, settings: QSettings) -> None:
        super().__init__()
        self.settings = settings
        self.setMinimumWidth(260)
        self.setToolTip("The model to analyse with: the embedded default, a local folder, a GGUF file, "
                        "or a cached hub model")
        self._gguf: list = []
        self._hub: list[str] = []
        self._scan: threading.Thread | None = None
        self._scan_result: list | None = None  # the scan thread appends (GGUF models, hub ids)
        self._poll = QTimer(self)
        self._poll.setInterval(self.POLL_MS)
        self._poll.timeout.connect(self._collect_scan)

    def start_scan(self) -> None:
        """Look for local models in the background (once at a time)."""
        if self._scan is not None and self._scan.is_alive():
            return
        holder: list = []  # the thread's only output: a plain list, no Qt object
        self._scan_result = holder
        self._scan = threading.Thread(target=scan_local_models, args=(holder,), name="atlas-model-scan",
                                      daemon=True)
        self._scan.start()
        self._poll.start()

    def _collect_scan(self) -> None:
        holder = self._scan_result
        if not holder:
            if self._scan is None or not self._scan.is_alive():
                self._poll.stop()  # the thread died without a result
            return
        self._poll.stop()
        found, hub = holder[0]
        self._scan_result = None
        self._gguf, self._hub = list(found), list(hub)
        self.fill(self.source(), scan=False)
        self.scanned.emit()

    def recent(self) -> list[str]:
        value = self.settings.value("model/recent") or []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def remember(self, source: str) -> None:
        if source == DEFAULT_SOURCE:
            return
        recent = [source, *[s for s in self.recent() if s != source]][:MAX_RECENT]
        self.settings.setValue("model/recent", recent)

    def fill(self, current: str, *, scan: bool = True) -> None:
        """The list: the embedded models, recent ones, and those found by the last scan (a
        new scan starts in the background unless ``scan`` is False)."""
        self.blockSignals(True)
        self.clear()
        self.addItem(DEFAULT_MODEL_NAME, DEFAULT_SOURCE)
        self.setItemData(0, "The embedded sentence-transformers/all-MiniLM-L6-v2 (6 layers × 12 heads; an encoder)",
                         Qt.ToolTipRole)
        self.addItem(CHAT_MODEL_NAME, CHAT_SOURCE)
        self.setItemData(1, "The embedded chat model: a Llama decoder, 30 layers × 9 heads (3 key/value heads); "
                            "it generates", Qt.ToolTipRole)
        sources = [DEFAULT_SOURCE, CHAT_SOURCE]
        found = [(m.name, str(m.path), f"{m.path} ({m.where}, {m.size / 1e6:.0f} MB)") for m in self._gguf]
        entries = [(model_display_name(s), s, s) for s in [*self.recent(), *self._hub]] + found
        for name, source, tip in entries:
            if source not in sources:
                sources.append(source)
                self.addItem(name, source)
                self.setItemData(self.count() - 1, tip, Qt.ToolTipRole)
        if current not in sources:
            self.addItem(model_display_name(current), current)
        self.addItem("Open model folder…", OPEN_FOLDER)
        self.addItem("Open model file (.gguf)…", OPEN_FILE)
        self.setCurrentIndex(max(0, self.findData(current)))
        self.blockSignals(False)
        if scan:
            self.start_scan()

    def source(self) -> str:
        source = self.currentData()
        return DEFAULT_SOURCE if source in (None, OPEN_FOLDER, OPEN_FILE) else str(source)

    def set_source(self, source: str) -> None:
        """Show ``source`` as the chosen model (added to the list when new)."""
        if self.findData(source) < 0:
            self.fill(source, scan=False)
        blocked = self.blockSignals(True)
        self.setCurrentIndex(self.findData(source))
        self.blockSignals(blocked)
