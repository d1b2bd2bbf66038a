"""The reproduction's tasks: a pretraining, a retraining, or a cell (unlearn + audit), with their keys and paths.

Tasks are built and validated in the driver (every job config checked before any work) and executed by
:mod:`benchmarks.repro_exec`, usually in a fresh process each (so the peak memory measured is the task's own).
A task is a plain JSON-able record so it crosses process boundaries as-is.

Work directory layout (``--work``):

    pretrain/<model>-s<seed>-<key>/            original models (the overfit recipe)
    retrain/<model>-s<seed>-f<pct>-<key>/      retrained without the forget set (the reference)
    forget/<model>-s<seed>-f<pct>-<label>-<key>/   unlearned models
    tune/<model>-s<seed>-<key>/                `unlearn tune` searches (best.yaml, summary.json, Tune state)
    evalcache/<key>.pkl                        attack reports of original / retrained / unlearned models
    logs/<task>.log                            per-epoch lines of each task

Example:
    >>> tasks = build_tasks(build_plan(settings), settings, work=Path("/tmp/w"))
    >>> [t.kind for t in tasks][:3]
    ['pretrain', 'retrain', 'cell']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.repro_plan import DEFAULT_PRIMARY, PRIMARY_ATTACK, Cell, Settings, digest, pretrain_overrides


@dataclass
class Task:
    kind: str  # pretrain | retrain | tune | cell
    name: str
    key: str
    out: str  # the checkpoint it writes (a cell: its unlearned model)
    deps: list[str] = field(default_factory=list)  # names of tasks that must finish first
    payload: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pretrain_job(settings: Settings, model: str, seed: int):
    from orchestrator.config import load_job
    from trainables.config import PretrainJob

    return load_job(PretrainJob, preset="overfit", overrides=pretrain_overrides(settings, model, seed))


def _runtime_overrides(cell: Cell, settings: Settings) -> list[str]:
    return [f"runtime.seed={cell.seed}", "runtime.num_threads=1", f"runtime.device={settings.device}",
            "monitor=false"] + list(settings.unlearn_overrides)


def unlearn_job(cell: Cell, settings: Settings):
    """The cell's UnlearnJob: its keys, the run's ``--unlearn-set`` overrides, seed, one thread, no monitor (the
    audit measures utility)."""
    from orchestrator.config import load_job
    from trainables.unlearning.config import UnlearnJob

    keys = dict(cell.unlearn)
    config_file = keys.pop("config_file", None)
    sets = [f"{k}={v}" for k, v in keys.items()]
    return load_job(UnlearnJob, config_file=config_file, overrides=sets + _runtime_overrides(cell, settings))


def pretrain_task(settings: Settings, model: str, seed: int, work: Path, tasks: dict[str, Task]) -> Task:
    """The pretraining of ``model`` at ``seed`` (added to ``tasks`` once)."""
    name = f"pretrain/{model}/s{seed}"
    if name not in tasks:
        config = pretrain_job(settings, model, seed).model_dump(mode="json")
        key = digest(config)
        tasks[name] = Task("pretrain", name, key, str(work / "pretrain" / f"{model}-s{seed}-{key[:10]}"),
                           payload={"job": config, "probe_every": settings.probe_every})
    return tasks[name]


def tune_task(cell: Cell, settings: Settings, work: Path, tasks: dict[str, Task]) -> Task:
    """The search (``unlearn tune``'s :func:`~orchestrator.tune.search.run_search`) on the original model of the
    search's seed, added to ``tasks`` once per model; scored on the validation protocol only."""
    search = cell.unlearn["tune"]
    seed = search["seed"]
    pname = pretrain_task(settings, cell.model, seed, work, tasks).name
    name = f"tune/{cell.model}/s{seed}" + ("" if cell.label == "tuned" else f"/{search['space']}")
    if name not in tasks:
        primary = PRIMARY_ATTACK.get(cell.model, DEFAULT_PRIMARY)
        attack = {"bootstrap": 0, "attacks": [primary, "encodermi_threshold", "confidence"]}
        fixed = ["runtime.num_threads=1"] + list(settings.unlearn_overrides)
        key = digest({"pretrain": tasks[pname].key, "search": search, "attack": attack, "fixed": fixed})
        tasks[name] = Task("tune", name, key, str(work / "tune" / f"{cell.model}-s{seed}-{key[:10]}"), deps=[pname],
                           payload={"pretrain": tasks[pname].out, **search, "attack": attack, "fixed": fixed})
    return tasks[name]


def evaluate_job(model: str, settings: Settings):
    """The audit: every attack, the model type's primary attack first, bootstrap intervals, no plots."""
    from orchestrator.config import load_job
    from trainables.attacks.config import ATTACKS, EvaluateJob

    primary = PRIMARY_ATTACK.get(model, DEFAULT_PRIMARY)
    attacks = [primary] + [a for a in ATTACKS if a != primary]
    sets = [f"attack.attacks={attacks}", "runtime.num_threads=1",
            f"runtime.device={'auto' if settings.gpu else 'cpu'}", "plots=false"]
    return load_job(EvaluateJob, overrides=sets + list(settings.attack_overrides))


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100):02d}"


def build_tasks(cells: list[Cell], settings: Settings, work: Path) -> list[Task]:
    """Tasks in run order: each pretraining / retraining right before the first cell that needs it."""
    tasks: dict[str, Task] = {}
    timed: set[str] = set()
    for cell in cells:
        pre = pretrain_task(settings, cell.model, cell.seed, work, tasks)
        pname, pkey, pconfig = pre.name, pre.key, pre.payload["job"]
        rkey = digest({"pretrain": pkey, "forget_fraction": cell.forget_fraction})
        rname = f"retrain/{cell.model}/s{cell.seed}/f{_pct(cell.forget_fraction)}"
        if rname not in tasks:
            out = work / "retrain" / f"{cell.model}-s{cell.seed}-f{_pct(cell.forget_fraction)}-{rkey[:10]}"
            tasks[rname] = Task("retrain", rname, rkey, str(out), deps=[pname],
                                payload={"pretrain": pre.out, "seed": cell.seed, "device": settings.device,
                                         "forget_fraction": cell.forget_fraction})
        ejob = evaluate_job(cell.model, settings).model_dump(mode="json")
        deps = [pname, rname]
        if "tune" in cell.unlearn:  # the job comes from the search's best.yaml, known only when it has run
            tune = tune_task(cell, settings, work, tasks)
            deps.append(tune.name)
            ujob = None
            identity = {"tune": tune.key, "overrides": _runtime_overrides(cell, settings)}
        else:
            ujob = unlearn_job(cell, settings).model_dump(mode="json")
            identity = ujob
        fkey = digest({"pretrain": pkey, "forget_fraction": cell.forget_fraction, "unlearn": identity})
        ckey = digest({"experiment": cell.experiment, "forget": fkey, "evaluate": ejob, "tags": cell.tags})
        # one step-time measurement per encoder recipe: its first headline memgp cell
        time_steps = cell.experiment == "main" and cell.label == "memgp" and cell.model not in timed
        if time_steps:
            timed.add(cell.model)
        tasks[cell.name] = Task(
            "cell", cell.name, ckey, str(work / "forget" / f"{cell.model}-s{cell.seed}-f{_pct(cell.forget_fraction)}"
                                                           f"-{cell.label}-{fkey[:10]}"),
            deps=deps,
            payload={"experiment": cell.experiment, "model": cell.model, "seed": cell.seed, "label": cell.label,
                     "forget_fraction": cell.forget_fraction, "tags": cell.tags, "unlearn": ujob, "evaluate": ejob,
                     "unlearn_from": str(Path(tasks[deps[-1]].out) / "best.yaml") if ujob is None else None,
                     "unlearn_overrides": _runtime_overrides(cell, settings),
                     "pretrain": tasks[pname].out, "retrain": tasks[rname].out, "pretrain_job": pconfig,
                     "time_steps": time_steps},
        )
    return list(tasks.values())
