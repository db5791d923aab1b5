"""``attention-atlas``: the window; ``attention-atlas analyze``: headless; ``--smoke-test OUT``: self-test."""

from __future__ import annotations

import argparse
import os
import sys


def _prepare_environment() -> None:
    """Offline by default; in a bundle, never the network at all."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    if getattr(sys, "frozen", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention-atlas",
        description="Explore the attention of transformer language models offline. "
        "With no arguments, opens the window. Headless commands: 'attention-atlas analyze|generate|attribute --help'.",
    )
    parser.add_argument("--model", help="open with this model (a local folder or a cached hub id)")
    parser.add_argument("--text", help="open with this text and analyse it")
    parser.add_argument("--smoke-test", metavar="OUT", help="self-test: analyse a sample, export into OUT, exit 0 on success")
    parser.add_argument("--settings", metavar="INI", help=argparse.SUPPRESS)  # tests: isolated settings file
    return parser


def main(argv: list[str] | None = None) -> int:
    entry = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    _prepare_environment()
    from analysis.cli import COMMANDS, command_main, set_figure_writer

    if argv and argv[0] in COMMANDS:
        set_figure_writer(write_figures)
        return command_main(argv[0])(argv[1:])
    args = build_parser().parse_args(argv)
    if args.smoke_test:
        from app.smoke import run_smoke_test

        code = run_smoke_test(args.smoke_test, settings_path=args.settings)
    else:
        code = run_window(args)
    # the process's own entry (the console script, the bundle's launcher) passes no argv:
    # leave without the interpreter's teardown; a caller with argv (tests) gets the code
    return leave(code) if entry else code


def write_figures(folder, run, view, graph, formats) -> None:
    """``attention-atlas analyze --figures``: the window's figures, drawn offscreen."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen: draw offscreen
    from widgets.figures import write_figures as draw

    draw(folder, run, view, graph, formats)


def run_window(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow, create_application

    app = create_application(sys.argv[:1])
    settings = QSettings(args.settings, QSettings.IniFormat) if args.settings else QSettings()
    window = MainWindow(settings)
    if args.model:
        window.set_model_source(args.model)
    if args.text:
        window.input_panel.set_texts(args.text)
    window.show()
    if args.text:
        window.analyse()
    return app.exec()


def leave(code: int) -> int:
    """Exit at once with ``code``, without the interpreter's teardown.

    Once the window has closed there is nothing left to do: the settings were saved and
    synced, every export was written when it was asked for. The teardown itself is what can
    go wrong: a lane still inside a long call that cannot be interrupted (a tokenizer, a
    forward pass) holds up the exit, and Python freeing PySide and pyqtgraph objects in an
    arbitrary order (the application before some widget, a lane posting to a deleted host)
    crashed the process after a passing smoke test (exit code 139, seen on a loaded
    machine). So the process leaves here, with its own exit code.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
    return code  # not reached


if __name__ == "__main__":
    sys.exit(main())
