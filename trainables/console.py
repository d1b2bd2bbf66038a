"""What the command line prints: the verbosity (``-q`` / ``-v``), set-up status lines and the progress budget.

Three levels: quiet (errors and each command's final summary), normal (also one progress display per run and,
on a terminal, set-up status lines on stderr), verbose (also every epoch, status lines in logs too, and Ray's own
warnings). The settings live in environment
variables, so Ray workers and tasks started from this process inherit them; ``configure`` sets them.

Example:
    >>> configure(verbosity=QUIET)
    >>> status("loading digits ...")        # printed only at normal verbosity or above
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

QUIET, NORMAL, VERBOSE = 0, 1, 2
_VERBOSITY = "UNLEARN_VERBOSITY"
_PROGRESS_LINES = "UNLEARN_PROGRESS_LINES"  # non-terminal: progress lines per run
_STATUS = "UNLEARN_STATUS"                  # 0: no set-up status lines (the demo prints its own steps)
_PROGRESS = "UNLEARN_PROGRESS"              # 1: progress displays even when quiet (the demo); 0: never
_KEYS = (_VERBOSITY, _PROGRESS_LINES, _STATUS, _PROGRESS)
DEFAULT_PROGRESS_LINES = 20


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def verbosity() -> int:
    return _int(_VERBOSITY, NORMAL)


def progress_lines() -> int:
    """How many progress lines one run may print when stderr is not a terminal (CI, ``ray job submit`` logs)."""
    return max(0, _int(_PROGRESS_LINES, DEFAULT_PROGRESS_LINES))


def progress_enabled() -> bool:
    """Whether runs show their progress display: by default unless quiet."""
    forced = os.environ.get(_PROGRESS)
    return bool(int(forced)) if forced in ("0", "1") else not is_quiet()


def is_quiet() -> bool:
    return verbosity() <= QUIET


def is_verbose() -> bool:
    return verbosity() >= VERBOSE


def configure(*, verbosity: int | None = None, progress_lines: int | None = None,
              status: bool | None = None, progress: bool | None = None) -> None:
    """Set what is printed from now on (also in Ray workers and tasks started afterwards)."""
    for name, value in ((_VERBOSITY, verbosity), (_PROGRESS_LINES, progress_lines),
                        (_STATUS, None if status is None else int(status)),
                        (_PROGRESS, None if progress is None else int(progress))):
        if value is not None:
            os.environ[name] = str(int(value))


def snapshot() -> dict[str, str]:
    """The settings as environment variables, for a process that does not inherit this one's environment."""
    return {k: os.environ[k] for k in _KEYS if k in os.environ}


@contextlib.contextmanager
def scoped(**settings) -> Iterator[None]:
    """``configure(**settings)`` for the duration of a block."""
    saved = {k: os.environ.get(k) for k in _KEYS}
    configure(**settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def status(message: str) -> None:
    """A set-up phase (imports, Ray start, data loading, attack fitting) says what it is doing, on stderr: on a
    terminal at normal verbosity, in logs with ``-v`` only (a script's stderr stays one ``error:`` line)."""
    if _int(_STATUS, 1) and (is_verbose() or (verbosity() >= NORMAL and sys.stderr.isatty())):
        print(message, file=sys.stderr, flush=True)


def info(message: str) -> None:
    """A line of a command's output that is not part of its final summary (hidden by ``-q``)."""
    if verbosity() >= NORMAL:
        print(message, flush=True)


def note(message: str) -> None:
    """A line on stderr worth keeping in a log (e.g. how to resume a run), hidden by ``-q``."""
    if verbosity() >= NORMAL:
        print(message, file=sys.stderr, flush=True)


def debug(message: str) -> None:
    """Details for ``-v`` only, on stderr."""
    if verbosity() >= VERBOSE:
        print(message, file=sys.stderr, flush=True)
