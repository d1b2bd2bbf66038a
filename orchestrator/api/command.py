"""Run an ``unlearn`` command in-process from Python values: the seam between the Python API and the CLI.

The API turns its arguments into the command's own argv and parses it with the CLI's parser, so every default, every
check and every message is the CLI's. A parse error raises :class:`UserError` with the one line the CLI prints after
``error:`` (instead of printing usage and exiting). Job-config keyword arguments become ``--set KEY=VALUE`` pairs:
they are validated exactly as ``--set`` is.

Example:
    >>> args = parse(["forget", "--checkpoint=runs/base", "--out=runs/forgot", *set_pairs({"b": 10})])
    >>> args.func(args)                 # what `unlearn forget ...` runs; returns its exit code
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from typing import Any

from trainables.errors import UserError


def _raising_parser_class() -> type[argparse.ArgumentParser]:
    from orchestrator.cli import _Parser

    class RaisingParser(_Parser):
        """The CLI's parser, raising its errors (``argument --epochs: invalid int value: 'x'``) as UserError."""

        def error(self, message: str):
            raise UserError(message)

    return RaisingParser


def parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` (without the program name) parsed by the ``unlearn`` parser; UserError on a parse error."""
    from orchestrator.cli import build_parser

    return build_parser(_raising_parser_class()).parse_args(argv)


def _text(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return value


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.01}, "runtime.device": "cpu"}`` -> ``{"optim.lr": 0.01, "runtime.device": "cpu"}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _text(value)
    return out


def set_pairs(params: Mapping[str, Any]) -> list[str]:
    """Config keyword arguments as the ``--set KEY=VALUE`` arguments the CLI would get (values as YAML)."""
    from orchestrator.config import _yaml_scalar

    return [f"--set={key}={_yaml_scalar(value)}" for key, value in flatten(params).items()]


def flags(**values: Any) -> list[str]:
    """Optional flags: ``None`` / ``False`` leave a flag out, ``True`` gives a bare flag, a list repeats it, and
    anything else is ``--name=value`` (underscores become dashes)."""
    argv: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [f"{flag}={_text(v)}" for v in value]
        else:
            argv.append(f"{flag}={_text(value)}")
    return argv


def path_of(checkpoint: Any, what: str = "checkpoint") -> str:
    """A checkpoint given as a path, an ``os.PathLike`` (the API's :class:`Checkpoint`) or a loaded
    :class:`trainables.checkpoint.Checkpoint` (its ``.path``)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        return os.fspath(checkpoint)
    path = getattr(checkpoint, "path", None)
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    raise UserError(f"{what} must be a checkpoint directory (a path or a Checkpoint), not {type(checkpoint).__name__}")


def id_list(ids: str | os.PathLike | Iterable[int] | None) -> str | None:
    """Sample ids as ``--forget-ids`` / ``--sample-ids`` take them: a comma list, or a file path given as is."""
    if ids is None or isinstance(ids, (str, os.PathLike)):
        return None if ids is None else os.fspath(ids)
    return ",".join(str(i) for i in ids)  # checked by the command, as on the command line


def tag_pairs(tags: Mapping[str, Any] | None) -> list[str] | None:
    """``{"ablation": "eq3"}`` -> the ``--tag KEY=VALUE`` values."""
    from orchestrator.config import _yaml_scalar

    return [f"{k}={_yaml_scalar(_text(v))}" for k, v in flatten(tags).items()] if tags else None
