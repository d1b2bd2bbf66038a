"""``unlearn``: the command-line entry point. Each subcommand lives in ``orchestrator/commands/<name>.py``.

User errors (bad input, missing files, tampered checkpoints) print one ``error:`` line and exit 2, no traceback.
Ctrl-C (SIGINT) exits 130 and SIGTERM (``kill``, ``ray job stop``, a pod eviction) exits 143, both after the same
cleanup: temporary checkpoint directories removed, open ledger transactions rolled back.
Global flags: ``-q`` (errors and the final summary only), ``-v`` (every epoch, Ray's warnings), ``--version``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sqlite3
import sys
import threading

from trainables.errors import UserError

# Errors of the machine around the command (a full disk, a read-only mount, a name too long), not of the program:
# one error line like any bad input. The outputs are written atomically, so nothing half-written stays behind.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                      errno.ENOTDIR, errno.EISDIR}
EXIT_BROKEN_PIPE = 141  # what a shell reports for a writer killed by SIGPIPE (`unlearn requests list | head`)

# Modules of orchestrator/commands; order = order in `unlearn --help` (import_model is `unlearn import`).
COMMANDS = ["pretrain", "import_model", "forget", "retrain", "evaluate", "tune", "requests", "models", "schedule",
            "report", "inspect", "demo"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C, so every ``except BaseException`` cleanup runs."""


def _raise_terminated(signum, frame):
    raise Terminated()


def handle_sigterm_like_sigint() -> None:
    """Without this, SIGTERM kills the process on the spot and leaves hidden ``.tmp-*`` directories behind."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
# Commands that import PyTorch (and Ray) before their first line of output.
_HEAVY = {"import", "pretrain", "forget", "retrain", "evaluate", "tune", "schedule", "report", "demo"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: usage + message, exit 2 (as argparse does)
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser(parser_class: type[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
    """The ``unlearn`` parser. ``parser_class`` (a subclass of the CLI's own) changes how parse errors are reported:
    the Python API raises them as :class:`UserError` instead of exiting."""
    parser_class = parser_class or _Parser
    parser = parser_class(
        prog="unlearn",
        description="Machine unlearning for contrastive and supervised image models: pretrain, forget (gradient-"
                    "penalty unlearning and baselines), audit with membership inference, search hyperparameters, "
                    "and run scheduled deletion batches, on a laptop or a Ray cluster.",
        epilog="Run `unlearn COMMAND --help` for the options of a command. Docs: README.md and docs/.",
    )
    from orchestrator import __version__

    parser.add_argument("--version", action="version", version=f"unlearn {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print errors and each command's final summary only")
    loud.add_argument("-v", "--verbose", action="store_true", help="also print every epoch and Ray's own warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"orchestrator.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"orchestrator.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    _add_verbosity_flags(sub)
    return parser


def _add_verbosity_flags(sub) -> None:
    """``-q`` / ``-v`` also after the command (``unlearn demo -q``), in every subcommand and action."""
    for parser in set(sub.choices.values()):
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _add_verbosity_flags(nested[0])
            continue
        loud = parser.add_mutually_exclusive_group()
        loud.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                          help="print errors and the final summary only")
        loud.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="also print every epoch and Ray's own warnings")


def add_config_args(p: argparse.ArgumentParser, *, presets: bool = True, example: str = "optim.lr=0.01") -> None:
    """The config options of a job command: ``--config``, ``--preset`` (pretraining recipes) and ``--set``."""
    p.add_argument("--config", metavar="FILE", help="YAML job config (see docs/config.md)")
    if presets:
        from orchestrator.config import available_presets

        p.add_argument("--preset", metavar="NAME", help=f"a shipped preset: {', '.join(available_presets())} "
                                                        "(docs/config.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one config key, e.g. --set {example} (repeatable; keys: docs/config.md)")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    parser = build_parser()
    args = parser.parse_args(argv)
    from trainables import console

    if args.quiet or args.verbose:  # else: what the caller configured (the demo runs commands in-process)
        console.configure(verbosity=console.QUIET if args.quiet else console.VERBOSE)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    handle_sigterm_like_sigint()
    if args.command in _HEAVY and "torch" not in sys.modules:  # seconds on a busy machine: say so at once
        console.status(f"unlearn {args.command}: loading PyTorch ...")
    try:
        result = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {exc.strerror}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
        return 2
    except sqlite3.OperationalError as exc:  # read-only, locked past the timeout, disk I/O: the ledger's machine
        print(f"error: the ledger database cannot be written: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _quiet_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the interpreter's final flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
