"""Reading a person's text file: regular files only, bounded, UTF-8 (a BOM is dropped).

A device (``/dev/zero``), a named pipe, a socket or a folder is refused before it is opened
(opening a pipe would block; reading a device would never end), and at most
``MAX_TEXT_BYTES`` are read: a larger file is refused, not silently cut. The same rule holds
in the window (File → Open text, drag and drop) and on the command line (``--file``).

Examples
--------
>>> from pathlib import Path
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "t.txt"
>>> _ = path.write_bytes("\\ufeffHello".encode("utf-8"))
>>> read_text_file(path)
'Hello'
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_TEXT_BYTES = 2_000_000  # about 400 pages: far more than any model reads at once


class TextFileError(ValueError):
    """A text file cannot be read; the message says why and what to do."""


def read_text_file(path: str | os.PathLike, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes, without a BOM.

    Raises
    ------
    TextFileError
        For a missing file, a folder, a device, a pipe or socket, a file over ``max_bytes``,
        or one that is not UTF-8; the message names the file.
    """
    file = Path(path)
    name = f"'{file}'"
    try:
        info = file.stat()
    except FileNotFoundError:
        raise TextFileError(f"no such file: {name}") from None
    except OSError as error:
        raise TextFileError(f"cannot open {name}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise TextFileError(f"{name} is a folder, not a text file; choose a .txt file inside it")
    if not stat.S_ISREG(info.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise TextFileError(f"{name} is {kind}, not a regular file; save the text to a file and open that")
    if info.st_size > max_bytes:
        raise TextFileError(f"{name} is {info.st_size / 1e6:.1f} MB, more than the {max_bytes / 1e6:.0f} MB "
                            "a text may have; open a shorter text")
    try:
        with open(file, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise TextFileError(f"cannot read {name}: {error.strerror or error}") from None
    if len(data) > max_bytes:  # it grew after stat, or the size was not known
        raise TextFileError(f"{name} is more than the {max_bytes / 1e6:.0f} MB a text may have; open a shorter text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TextFileError(f"{name} is not a UTF-8 text file; save it as UTF-8 and open it again") from None
