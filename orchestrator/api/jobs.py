"""``pretrain``, ``forget`` and ``retrain`` from Python: the ``unlearn`` commands of the same names, in-process.

Each runs the command itself (same defaults, checks, progress lines, checkpoint, results row; see
:mod:`orchestrator.api.command`) and returns the written :class:`Checkpoint`. Keyword arguments beyond the named
ones are job-config keys, validated exactly like ``--set`` (nested dicts or dotted names: ``optim={"lr": 0.01}`` or
``**{"optim.lr": 0.01}``). ``ray`` takes the Ray Train flags by name (``{"cpus_per_worker": 0.5, "storage": "s3://..."}``).

Example:
    >>> base = pretrain("runs/base", dataset="digits", epochs=2, data={"image_size": 16, "num_members": 200})
    >>> forgot = forget(base, [3, 17], out="runs/forgot", method="memgp", epochs=1, b=10)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.api.checkpoint import Checkpoint
from orchestrator.api.command import flags, id_list, parse, path_of, set_pairs, tag_pairs

PathLike = str | os.PathLike
Ids = PathLike | Iterable[int]


def _run(command: str, out: PathLike, argv: list[str], *, workers: int, gpu: bool, ray: Mapping[str, Any] | None,
         results: PathLike | None, experiment: str | None, tags: Mapping[str, Any] | None,
         params: Mapping[str, Any]) -> Checkpoint:
    args = parse([command, f"--out={os.fspath(out)}", *argv,
                  *flags(workers=workers, gpu=gpu, results=results, experiment=experiment, tag=tag_pairs(tags)),
                  *flags(**(ray or {})), *set_pairs(params)])
    args.func(args)
    return Checkpoint(args.out)


def pretrain(out: PathLike, *, method: str | None = None, dataset: str | None = None, epochs: int | None = None,
             preset: str | None = None, config: PathLike | None = None, workers: int = 0, gpu: bool = False,
             ray: Mapping[str, Any] | None = None, results: PathLike | None = None, experiment: str | None = None,
             tags: Mapping[str, Any] | None = None, **params: Any) -> Checkpoint:
    """``unlearn pretrain``: train an encoder (``simclr`` (default), ``moco``, ``byol``) or a ``supervised``
    classifier on the members of ``dataset`` and write a checkpoint at ``out`` (must not exist).
    ``params``: PretrainJob keys (``data``, ``model``, ``optim``, ``augment``, ``eval``, ``runtime``)."""
    argv = flags(method=method, dataset=dataset, epochs=epochs, preset=preset, config=config)
    return _run("pretrain", out, argv, workers=workers, gpu=gpu, ray=ray, results=results, experiment=experiment,
                tags=tags, params=params)


def forget(checkpoint: PathLike | Checkpoint, forget_ids: Ids | None = None, *, out: PathLike,
           forget_keys: Iterable[str] | None = None, method: str | None = None, epochs: int | None = None, config: PathLike | None = None, workers: int = 0,
           gpu: bool = False, ray: Mapping[str, Any] | None = None, results: PathLike | None = None,
           experiment: str | None = None, tags: Mapping[str, Any] | None = None, **params: Any) -> Checkpoint:
    """``unlearn forget``: make ``checkpoint`` forget ``forget_ids`` (sample ids, or a file of ids; default: its
    forget split minus what it already forgot) with ``method`` (default: the config's, else the encoder family's or
    the model kind's, ``FAMILY_DEFAULTS`` / ``KIND_DEFAULTS`` in trainables/unlearning/registry.py) and write the
    result at ``out``; the input is only read. ``forget_keys`` names the records by their keys instead
    (docs/data.md). ``params``: UnlearnJob keys (``a``, ``b``, ``form``, ``lr``, ``runtime``, ...;
    docs/unlearning.md)."""
    keys = None if forget_keys is None else ",".join(str(k) for k in forget_keys)
    argv = [f"--checkpoint={path_of(checkpoint)}",
            *flags(method=method, epochs=epochs, config=config, forget_ids=id_list(forget_ids), forget_keys=keys)]
    return _run("forget", out, argv, workers=workers, gpu=gpu, ray=ray, results=results, experiment=experiment,
                tags=tags, params=params)


def retrain(checkpoint: PathLike | Checkpoint, forget_ids: Ids | None = None, *, out: PathLike,
            config: PathLike | None = None, workers: int = 0, gpu: bool = False, ray: Mapping[str, Any] | None = None,
            results: PathLike | None = None, experiment: str | None = None, tags: Mapping[str, Any] | None = None,
            **params: Any) -> Checkpoint:
    """``unlearn retrain``: the reference for every audit. Pretrain afresh on members - forget - already forgotten
    with ``checkpoint``'s own recipe; only ``retrain_epochs`` and ``runtime`` keys apply."""
    argv = [f"--checkpoint={path_of(checkpoint)}", *flags(config=config, forget_ids=id_list(forget_ids))]
    return _run("retrain", out, argv, workers=workers, gpu=gpu, ray=ray, results=results, experiment=experiment,
                tags=tags, params=params)


def import_model(out: PathLike, *, arch: str, weights: PathLike, data: str, members: PathLike | None = None,
                 num_classes: int | None = None, backbone: str | None = None, kind: str | None = None,
                 image_size: int | None = None, results: PathLike | None = None, experiment: str | None = None,
                 tags: Mapping[str, Any] | None = None) -> Checkpoint:
    """``unlearn import``: a model trained elsewhere (``arch``: ``torchvision:NAME``, ``lightly:simclr|moco|byol``
    with ``backbone``, or ``factory:package.module:function``; ``weights``: its state_dict file) becomes a
    checkpoint at ``out`` whose members are the records named in ``members`` (a file of keys); docs/models.md."""
    argv = ["import", f"--out={os.fspath(out)}",
            *flags(arch=arch, weights=os.fspath(weights), data=data, members=members, num_classes=num_classes,
                   backbone=backbone, kind=kind, image_size=image_size, results=results, experiment=experiment,
                   tag=tag_pairs(tags))]
    args = parse(argv)
    args.func(args)
    return Checkpoint(args.out)
