"""``audit`` from Python: ``unlearn evaluate`` in-process, returning its results rows as a DataFrame.

Example:
    >>> table = audit(forgot, original=base, retrained=ref, attacks=["encodermi_threshold"], bootstrap=100)
    >>> table[["attack", "before_mia_accuracy", "after_mia_accuracy", "retrain_mia_accuracy"]]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from orchestrator.api.checkpoint import Checkpoint
from orchestrator.api.command import flags, parse, path_of, set_pairs, tag_pairs
from trainables.errors import UserError

PathLike = str | os.PathLike


def audit(candidate: PathLike | Checkpoint, *, original: PathLike | Checkpoint | None = None,
          retrained: PathLike | Checkpoint | None = None, attacks: str | list[str] | None = None,
          out: PathLike | None = None, threat_model: str | None = None, shadow: PathLike | Checkpoint | None = None,
          n_views: int | None = None, bootstrap: int | None = None, plots: bool = True,
          config: PathLike | None = None, results: PathLike | None = None, experiment: str | None = None,
          tags: Mapping[str, Any] | None = None, **params: Any):
    """Membership-inference audit of ``candidate``'s forget set, and with the same protocol of ``original`` (before
    unlearning) and ``retrained`` (the reference): ``unlearn evaluate``. Returns a ``pandas.DataFrame`` with one
    row per attack (the first one is the primary), the results store's columns: ``before_*`` = original, ``after_*``
    = candidate, ``retrain_*`` = retrained (``mia_accuracy``, ``mia_auc`` with ``_lo`` / ``_hi`` 95% intervals,
    utility), ``gap_mia_accuracy`` (candidate - retrained) and ``extra_json`` (its ``verdict``);
    ``frame.attrs["report"]`` holds the table the CLI prints.

    With ``out`` (a new directory), writes what the CLI writes (report.txt, metrics.json, signals.parquet, the
    PNGs unless ``plots=False``) and appends the rows to the results store (``results``; default as the CLI's);
    without it, writes nothing. ``attacks``: names in order (docs/evaluation.md); ``params``: EvaluateJob keys
    (``attack={"max_fit": 200}``, ``runtime``, ...)."""
    import pandas as pd

    from orchestrator.commands.evaluate import evaluate

    if out is None and results is not None:
        raise UserError("audit(results=...) appends rows that point at the report files of out=DIR: give out= too "
                        "(without out= nothing is written; the DataFrame is the result)")
    if attacks is not None:
        params = {**params, "attack.attacks": [attacks] if isinstance(attacks, str) else list(attacks)}
    optional = {"original": original, "retrained": retrained, "shadow": shadow}
    argv = ["evaluate", f"--checkpoint={path_of(candidate)}",
            *flags(**{k: path_of(v, k) for k, v in optional.items() if v is not None}),
            *flags(threat_model=threat_model, n_views=n_views, bootstrap=bootstrap, no_plots=not plots,
                   config=config, results=results, experiment=experiment, tag=tag_pairs(tags)),
            *set_pairs(params)]
    args = parse([*argv, f"--out={os.fspath(out) if out is not None else '-'}"])  # the parser requires --out
    if out is None:
        args.out = None  # evaluate() then writes nothing
    done = evaluate(args)
    from orchestrator.results.store import to_table

    frame: pd.DataFrame = to_table(done.rows).to_pandas()
    frame.attrs["report"] = done.table  # the table `unlearn evaluate` prints
    return frame
