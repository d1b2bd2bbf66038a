"""Results-store rows for training jobs: one ``pretrain`` / ``unlearn`` / ``retrain`` row per finished job, built
from the checkpoint the job wrote (its ``meta.json`` and split manifest), so the in-process and Ray Train paths
give the same row.

Stages (``orchestrator/results/store.py``): a pretrained model's metrics are ``before_*`` (it is the original), an
unlearned model's are ``after_*`` (with the kNN monitor taken just before unlearning as ``before_*``), a retrained
model's are ``retrain_*``. Every numeric value of the last epoch goes to ``metrics_json``; the loss components too.

The results path, the same for every command: ``--results PATH`` on the command line, else ``$UNLEARN_RESULTS``,
else ``results`` in the current directory (:func:`results_path`). ``--experiment TAG`` and ``--tag KEY=VALUE`` label the row for the report (docs/results.md).

Example:
    >>> path = results_path(args.results)          # validated before the job starts
    >>> append_job_row(path, "runs/forgot", summary=summary, experiment="ablation", wall_time_s=42.0)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainables.errors import UserError

RESULTS_ENV = "UNLEARN_RESULTS"
DEFAULT_RESULTS = "results"  # when neither --results nor $UNLEARN_RESULTS says otherwise
RESULTS_DEFAULT_HELP = "default: $UNLEARN_RESULTS, else ./results"
STAGE_OF_KIND = {"pretrain": "before", "unlearn": "after", "retrain": "retrain"}
_NOT_METRICS = ("epoch",)


def add_results_args(p, *, default_help: str = RESULTS_DEFAULT_HELP) -> None:
    """``--results``, ``--experiment`` and ``--tag`` for a command that appends rows (cheap: no heavy imports)."""
    g = p.add_argument_group("results store (docs/results.md)")
    g.add_argument("--results", metavar="PATH|URI", help=f"append this run's row to a results store ({default_help})")
    g.add_argument("--experiment", metavar="TAG", help="the row's experiment tag: main, ablation, forget_size, "
                                                       "supervised, baselines, tuned, or your own")
    g.add_argument("--tag", dest="tags", action="append", default=[], metavar="KEY=VALUE",
                   help="a free-form label stored in the row's extra_json (YAML value), e.g. "
                        "--tag ablation='{terms: a+b, equation: eq3}' (repeatable)")


def results_path(arg: str | None, *, write: bool = True) -> str:
    """``--results`` if given, else ``$UNLEARN_RESULTS``, else ``./results``. A path whose filesystem cannot be
    opened (unknown URI scheme, missing credentials library), a local path that is a file, or (``write``) one this
    process cannot write is a UserError now, before any work."""
    from orchestrator.outputs import check_writable_dir
    from orchestrator.results.store import filesystem

    path = arg or os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS
    if path:
        filesystem(path)
        if "://" not in path:
            if os.path.isfile(Path(path).expanduser()):
                raise UserError(f"--results {path} is a file, not a directory (a results store is a folder)")
            if write:
                check_writable_dir(path, "--results")
    return path


def parse_tags(tags: list[str]) -> dict[str, Any]:
    from orchestrator.config import parse_overrides

    return parse_overrides(tags) if tags else {}


def _numeric(values: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (values or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in _NOT_METRICS}


def num_members(checkpoint: Path) -> int | None:
    from trainables.checkpoint import MANIFEST
    from trainables.data.splits import Splits

    manifest = checkpoint / MANIFEST
    return int(len(Splits.load(manifest)["member"])) if manifest.is_file() else None


def job_row(checkpoint: str | Path, *, summary: dict[str, Any] | None = None, experiment: str | None = None,
            extra: dict[str, Any] | None = None, wall_time_s: float | None = None) -> dict[str, Any]:
    """The row of the job that wrote ``checkpoint`` (kind from its ``meta.json``: pretrain, unlearn or retrain).
    ``summary``: what ``run_forget`` returned (adds the kNN monitor before unlearning as ``before_*``)."""
    from orchestrator.results.evaluation_rows import run_hyperparameters, unlearning_method
    from orchestrator.results.store import make_row
    from trainables.checkpoint import read_meta

    path = Path(checkpoint).resolve()
    meta = read_meta(path)
    kind = meta.get("kind", "pretrain")
    stage = STAGE_OF_KIND.get(kind, "after")
    final = _numeric((meta.get("history") or [{}])[-1]) or _numeric(meta.get("metrics"))
    metrics = {stage: final}
    if kind == "unlearn" and (summary or {}).get("before"):
        metrics["before"] = _numeric(summary["before"])
    unlearning = meta.get("unlearning") or {}
    job_time = float(meta["wall_time_s"]) if isinstance(meta.get("wall_time_s"), (int, float)) else None
    times = {"pretrain": {}, "unlearn": {"unlearn_time_s": job_time}, "retrain": {"retrain_time_s": job_time}}
    distributed = meta.get("distributed") or {}
    return make_row(
        kind=kind if kind in STAGE_OF_KIND else "unlearn", dataset=meta.get("dataset"), model=meta.get("method"),
        backbone=meta.get("backbone"), method=unlearning_method(meta), num_members=num_members(path),
        forget_size=int(unlearning["forget_count"]) if "forget_count" in unlearning else None,
        checkpoint_uri=str(path), parent_uri=(meta.get("parent") or {}).get("path"),
        experiment=experiment, wall_time_s=wall_time_s if wall_time_s is not None else job_time,
        hyperparameters=run_hyperparameters(meta), metrics=metrics,
        extra={**({"workers": distributed.get("workers"), "run_name": distributed.get("run_name")}
                  if distributed else {}),
               "forgotten_total": len(meta.get("forgotten_ids") or []), **(extra or {})},
        **times.get(kind, {}),
    )


def append_job_row(results: str | None, checkpoint: str | Path, **kwargs) -> dict[str, Any] | None:
    """Append :func:`job_row` to ``results`` (nothing when ``results`` is None); returns the row."""
    if not results:
        return None
    from orchestrator.results.store import append

    row = job_row(checkpoint, **kwargs)
    append(results, [row])
    return row


def append_from_args(args, checkpoint: str | Path, results: str | None, *, summary: dict[str, Any] | None = None,
                     wall_time_s: float | None = None) -> None:
    """The CLI's tail: append the row and say where it went."""
    if not results:
        return
    from orchestrator.results.finished_runs import row_recorded
    from trainables import console

    try:
        if row_recorded(results, checkpoint):
            console.info(f"results row of {checkpoint} already in {results}")
            return
        append_job_row(results, checkpoint, summary=summary, experiment=args.experiment,
                       extra=parse_tags(args.tags), wall_time_s=wall_time_s)
    except (OSError, UserError) as exc:
        raise UserError(f"the checkpoint {checkpoint} is complete and kept, but its results row was not written to "
                        f"{results} ({exc}); fix the results store and rerun the same command: it appends the row "
                        f"without training again") from None
    console.info(f"results row appended to {results}")


def rerun_note(out) -> None:
    print(f"{out} already holds this job's verified checkpoint (an earlier run whose results row was not "
          f"written): not training again")
