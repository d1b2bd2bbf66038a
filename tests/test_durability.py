"""fsync where a power loss could undo a write (issue 18, case 9): the checkpoint's files, its directory and the
directory entry of its rename; each results file and the directory it was renamed into."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def fsyncs(monkeypatch):
    """Every fsync'ed path, in order (files by name, directories with a trailing '/')."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        seen.append(path + "/" if stat.S_ISDIR(os.fstat(fd).st_mode) else path)
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_a_checkpoint_is_fsynced_before_and_after_its_rename(tmp_path, fsyncs):
    from tests.ledger_fakes import make_base_checkpoint

    out = make_base_checkpoint(tmp_path / "ck" / "base")
    tmp_dirs = [p for p in fsyncs if Path(p).name.startswith(".base.tmp-") and p.endswith("/")]
    files = {Path(p).name for p in fsyncs if not p.endswith("/")}
    assert {"model.pt", "meta.json", "splits.parquet"} <= files
    assert len(tmp_dirs) == 1  # the new directory's entries, before the rename
    assert fsyncs[-1] == f"{out.parent}/"  # the rename itself, last


def test_a_results_file_and_its_directory_are_fsynced(tmp_path, fsyncs):
    from orchestrator.results.store import append
    from tests.test_results_store import _row

    written = append(str(tmp_path / "results"), [_row(1)])
    assert len(written) == 1
    target = Path(written[0])
    tmp_file = [p for p in fsyncs if Path(p).name.endswith(".parquet.tmp")]
    assert len(tmp_file) == 1 and fsyncs[-1] == f"{target.parent}/"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
