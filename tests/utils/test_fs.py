"""Outputs appear whole or not at all, folders included (styleforge.utils.fs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from styleforge.errors import StyleforgeError
from styleforge.utils.fs import (
    atomic_path,
    folder_removed_on_failure,
    missing_folders,
    write_bytes_atomic,
    write_together,
)


def test_missing_folders_lists_what_creating_a_folder_would_make(tmp_path: Path) -> None:
    assert missing_folders(tmp_path / "a" / "b") == [tmp_path / "a", tmp_path / "a" / "b"]
    assert missing_folders(tmp_path) == []


def test_a_failed_write_removes_the_folders_it_created(tmp_path: Path) -> None:
    target = tmp_path / "out" / "sub" / "x.bin"
    with pytest.raises(RuntimeError), atomic_path(target):
        raise RuntimeError("the body failed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("kept")
    with pytest.raises(RuntimeError), atomic_path(target):
        raise RuntimeError("again")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep.txt"]  # only what this write made went


def test_a_run_folder_is_removed_when_the_run_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), folder_removed_on_failure(tmp_path / "run" / "inner"):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StyleforgeError), folder_removed_on_failure(tmp_path / "run") as run:
        write_bytes_atomic(run / "checkpoint.pt", b"saved")
        raise StyleforgeError("later failure")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"saved"  # what was written stays


def test_outputs_written_together_appear_all_or_none(tmp_path: Path) -> None:
    (tmp_path / "old.png").write_bytes(b"old")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with pytest.raises(StyleforgeError, match="blocked"):
        write_together([(tmp_path / "old.png", b"new image"), (blocked, b"log")])  # the second cannot replace a folder
    assert (tmp_path / "old.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "old.png"]  # no temporary left
    write_together([(tmp_path / "old.png", b"new image"), (tmp_path / "log.csv", b"log")])
    assert (tmp_path / "old.png").read_bytes() == b"new image" and (tmp_path / "log.csv").read_bytes() == b"log"


def test_recorded_figures_merge_and_unreadable_ones_count_as_absent(tmp_path: Path) -> None:
    from styleforge.utils.fs import read_figures, record_figures

    path = tmp_path / "cache" / "figures.json"
    assert read_figures(path) == {}
    record_figures(path, a=1.5)
    record_figures(path, b=2)
    assert read_figures(path) == {"a": 1.5, "b": 2.0}
    path.write_text('{"a": "fast", "b": null, "c": true, "d": 3}')
    assert read_figures(path) == {"d": 3.0}
    path.write_text("not json")
    assert read_figures(path) == {}
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    record_figures(blocked / "figures.json", a=1.0)  # its folder cannot be made: the figures are lost, nothing raised
    assert blocked.read_text() == "x"
