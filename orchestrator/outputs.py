"""Output locations checked before any work: every command that writes calls these first, so an unwritable
``--out``, ``--results`` or ``--ledger`` fails in a second with one ``error:`` line, not after hours of training.

A location is writable when its nearest existing ancestor is a directory in which this process can create an
entry (probed by creating and removing a hidden directory: ``os.access`` says yes to root on a read-only mount),
no component of the path is an existing file, and every name fits the filesystem (255 bytes on most).

    out = check_new_dir(args.out)                     # a directory to create (absent or empty)
    check_writable_dir("runs/results", "--results")   # a directory to create or append to
    check_writable_file(ledger_path, "--ledger")      # a file to create or update (its directory too: SQLite WAL)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trainables.errors import UserError


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _nearest_existing(path: Path, flag: str) -> Path:
    """The closest ancestor that exists; UserError when one on the way is a file or a name is too long."""
    path = path.expanduser().absolute()
    chain = [path, *path.parents]
    anchor = next(p for p in chain if os.path.lexists(p))
    limit = _name_max(anchor if anchor.is_dir() else anchor.parent)
    for part in path.parts[1:]:
        if len(os.fsencode(part)) > limit:
            raise UserError(f"{flag} {path}: the name {part[:24]}... is {len(os.fsencode(part))} bytes; the "
                            f"filesystem allows {limit}")
    if not anchor.is_dir() and anchor != path:
        raise UserError(f"{flag} {path}: {anchor} is a file, not a directory")
    return anchor


def _probe(folder: Path, flag: str, target: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".unlearn-probe-", dir=folder))
    except OSError as exc:
        raise UserError(f"{flag} {target}: cannot write in {folder} ({exc.strerror}); choose a writable "
                        f"location") from None


def check_writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """A directory that will be created or written into (e.g. a results store)."""
    p = Path(path)
    anchor = _nearest_existing(p, flag)
    if anchor == p.expanduser().absolute() and not anchor.is_dir():
        raise UserError(f"{flag} {p} is a file, not a directory")
    _probe(anchor, flag, p)
    return p


def check_new_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A directory the command creates: it must not exist (or be empty), and its place must be writable."""
    p = Path(path)
    check_writable_dir(p, flag)  # first: it also refuses names too long to even look up
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise UserError(f"{p} already exists and is not empty; choose another {flag}")
    return p


def check_writable_file(path: str | os.PathLike, flag: str) -> Path:
    """A file that will be created or updated in place, with sibling files (SQLite's -wal / -shm)."""
    p = Path(path)
    anchor = _nearest_existing(p, flag)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a directory; name the database file, e.g. {p / 'ledger.sqlite'}")
    _probe(anchor if anchor != p.expanduser().absolute() else anchor.parent, flag, p)
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{flag} {p}: the file is not writable")
    return p


def check_out_dir(out: str | Path) -> Path:
    """A job's ``--out``: refuse an existing, non-empty or unwritable output before any work is done (nothing is
    ever overwritten)."""
    return check_new_dir(out, "--out")
