"""PyInstaller runtime hook: runs in the bundle before the app's first import.

The bundle is offline and PySide6-only, whatever the person's environment says; it reads
its model and resources from inside itself and writes only to the user's folders
(QSettings -> the user's config dir, Hugging Face -> ``~/.cache/huggingface`` or $HF_HOME).
"""

import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
os.environ["PYQTGRAPH_QT_LIB"] = "PySide6"
os.environ["QT_API"] = "pyside6"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# A windowed build on Windows/macOS has no stdout/stderr; progress bars (tqdm) and print() would fail.
for _name in ("stdout", "stderr"):
    if getattr(sys, _name, None) is None:
        setattr(sys, _name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
