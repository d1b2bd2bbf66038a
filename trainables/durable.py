"""Durability helpers: a rename or a new file survives a power loss only once the file *and* the directory entry
pointing to it are flushed (POSIX ``fsync`` on the file, then on its directory).

    fsync_file(path)          # the bytes of a file just written
    fsync_dir(path.parent)    # the directory entry of a file just created or renamed
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (e.g. certain network mounts) refuse fsync on directories
        pass
    finally:
        os.close(fd)


def fsync_new_files(paths: list[str | os.PathLike]) -> None:
    """Flush files just written and their directories (each directory once)."""
    dirs = []
    for p in paths:
        fsync_file(p)
        parent = Path(p).parent
        if parent not in dirs:
            dirs.append(parent)
    for d in dirs:
        fsync_dir(d)
