"""Test configuration: headless Qt, no network, shared tiny fixtures."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tests.chat_model import chat_cache_dir, chat_loaded  # noqa: E402, F401  (session fixtures: the embedded chat model)
