"""Entry script of the PyInstaller bundle: the same ``main`` as the ``attention-atlas`` console script."""

import multiprocessing
import sys


def _run() -> int:
    from app.main import main

    return main()


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not start the app again
    sys.exit(_run())
