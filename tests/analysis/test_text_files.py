"""Text files are read bounded: regular files only, a size cap, UTF-8 with the BOM dropped."""

import os

import pytest

from analysis.io.text_files import TextFileError, read_text_file


def test_a_regular_utf8_file_is_read_and_its_bom_dropped(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffZoë".encode())
    assert read_text_file(path) == "Zoë"


@pytest.mark.parametrize("special, words", [("/dev/zero", "device"), ("/dev/null", "device")])
def test_devices_are_refused_before_reading(special, words):
    with pytest.raises(TextFileError, match=words):
        read_text_file(special)


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(TextFileError, match="named pipe"):
        read_text_file(fifo)


def test_folders_big_files_missing_files_and_bad_encodings_get_one_sentence(tmp_path):
    with pytest.raises(TextFileError, match="is a folder"):
        read_text_file(tmp_path)
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 101)
    with pytest.raises(TextFileError, match="more than"):
        read_text_file(big, max_bytes=100)
    with pytest.raises(TextFileError, match="no such file"):
        read_text_file(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TextFileError, match="not a UTF-8"):
        read_text_file(bad)
