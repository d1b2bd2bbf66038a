"""Execute one reproduction task (see :mod:`benchmarks.repro_tasks`) through the Python APIs, write its results rows.

- ``pretrain``: :func:`orchestrator.run.jobs.run_pretrain`, then one ``kind=pretrain`` row (wall time, peak memory).
- ``retrain``: :func:`orchestrator.run.jobs.run_retrain` on the forget set of the task's fraction, one ``kind=retrain`` row.
- ``tune``: :func:`orchestrator.tune.search.run_search` (``unlearn tune``) on the validation protocol; its rows are
  ``tune-trial`` rows, its best config ``OUT/best.yaml``.
- ``cell``: :func:`orchestrator.run.jobs.run_forget`, then :func:`trainables.audit.evaluate.evaluate_checkpoints` on the
  unlearned, original and retrained models (reports of the shared original / retrained models are cached per forget
  set), one ``kind=evaluate`` row per attack with ``experiment``, ``hp_seed``, times and ``extra_json.cell_key``.

Peak memory is the process's maximum resident set (``resource.getrusage``), so run each task in a fresh process
(the driver does) for a per-task figure. Torch runs on one thread: several times faster than two on a busy 2-core
machine.

Example:
    >>> summary = run_task(task.as_dict(), results="runs/results", log_dir="runs/logs")
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def is_checkpoint(path: str | Path) -> bool:
    """A finished checkpoint (they are written atomically: meta.json exists only when complete)."""
    return (Path(path) / "meta.json").is_file()


def is_done(task) -> bool:
    """A pretraining / retraining whose checkpoint exists, a search whose best.yaml exists (cells: see the store)."""
    if task.kind == "tune":
        return (Path(task.out) / "best.yaml").is_file()
    return task.kind != "cell" and is_checkpoint(task.out)


def forget_ids_for(pretrain_dir: str | Path, fraction: float) -> np.ndarray:
    """The forget set of ``fraction`` of the members: the checkpoint's own forget split at its recipe's fraction,
    else drawn by the same split seed (``make_splits``; the member draw does not depend on the fraction)."""
    from trainables.checkpoint import load_checkpoint
    from trainables.config import DataConfig
    from trainables.data import make_splits
    from trainables.jobs.common import load_data

    ck = load_checkpoint(pretrain_dir)
    data = DataConfig.model_validate(ck.meta["config"]["data"])
    if data.forget_fraction == fraction:
        return ck.splits["forget"]
    source, _ = load_data(data, ck.splits)
    splits = make_splits(source, data.model_copy(update={"forget_fraction": fraction}))
    assert np.array_equal(splits["member"], ck.splits["member"]), "member draw moved with the forget fraction"
    return splits["forget"]


def ray_options(task: dict[str, Any]):
    """The run's Ray Train options (``--workers N --gpu --address ... --storage ...``); workers 0: in-process."""
    from orchestrator.run.options import RayOptions

    return RayOptions(**task.get("ray", {}))


def _row_basics(meta: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": meta.get("dataset"), "model": meta.get("method"), "backbone": meta.get("backbone")}


def _pretrain(task: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    from orchestrator.results.store import make_row
    from orchestrator.run.jobs import run_pretrain
    from trainables.checkpoint import read_meta
    from trainables.config import PretrainJob

    job = PretrainJob.model_validate(task["payload"]["job"])
    every = task["payload"].get("probe_every", 0)
    probes: dict[int, dict[str, float]] = {}
    hook = None
    if every:
        from trainables.jobs.common import load_data

        source, splits = load_data(job.data)

        def hook(epoch: int, metrics: dict, model) -> None:
            if (epoch + 1) % every == 0 or epoch + 1 == job.optim.epochs:
                probes[epoch + 1] = validation_attack(model, source, splits, job)
                print(f"probe after epoch {epoch + 1}: validation-protocol attack {probes[epoch + 1]}", flush=True)

    ray = ray_options(task)
    out, _ = run_pretrain(job, task["out"], workers=ray.workers, use_gpu=ray.use_gpu, ray_options=ray,
                          epoch_hook=hook if ray.workers == 0 else None)
    meta = read_meta(out)
    final = meta["metrics"]
    row = make_row(kind="pretrain", **_row_basics(meta), method="none", experiment="pretrain",
                   num_members=job.data.num_members, checkpoint_uri=str(Path(out).resolve()),
                   wall_time_s=meta["wall_time_s"], hyperparameters=meta["config"],
                   extra={"task": task["name"], "task_key": task["key"], "peak_rss_mb": peak_rss_mb(),
                          "final_loss": final.get("loss"), "images_per_s": final.get("images_per_s"),
                          "validation_probes": probes})
    last = probes[max(probes)] if probes else {}
    return {"wall_time_s": meta["wall_time_s"], "loss": final.get("loss"), **last}, [row]


def validation_attack(model, source, splits, job) -> dict[str, float]:
    """The primary attack on the validation protocol (forget vs half of ``nonmember_ref``, fitted on retain vs the
    other half; ``nonmember_eval`` is never read), for calibrating the overfit recipe without the audit's data."""
    from benchmarks.attack_calibration import validation_view
    from benchmarks.repro_plan import DEFAULT_PRIMARY, PRIMARY_ATTACK
    from trainables.audit.forgetting import evaluate_forgetting

    primary = PRIMARY_ATTACK.get(job.method, DEFAULT_PRIMARY)
    m = evaluate_forgetting(model, source, validation_view(splits), splits["forget"],
                            model_config=job.model_dump(mode="json"),
                            config={"bootstrap": 0, "attacks": [primary, "encodermi_threshold", "confidence"]})
    return {"val_attack_acc": round(m["mia_accuracy"], 4), "val_attack_auc": round(m["mia_auc"], 4)}


def _retrain(task: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    from orchestrator.results.store import make_row
    from orchestrator.run.jobs import run_retrain
    from trainables.checkpoint import read_meta
    from trainables.unlearning.config import UnlearnJob

    p = task["payload"]
    forget = forget_ids_for(p["pretrain"], p["forget_fraction"])
    job = UnlearnJob(method="retrain", monitor=False,
                     runtime={"seed": p["seed"], "num_threads": 1, "device": p.get("device", "cpu"), "progress": True})
    ray = ray_options(task)
    out, _ = run_retrain(p["pretrain"], task["out"], forget, job=job, workers=ray.workers, use_gpu=ray.use_gpu,
                         ray_options=ray)
    meta = read_meta(out)
    row = make_row(kind="retrain", **_row_basics(meta), method="retrain", experiment="retrain",
                   forget_size=len(forget), checkpoint_uri=str(Path(out).resolve()), parent_uri=p["pretrain"],
                   wall_time_s=meta["wall_time_s"], retrain_time_s=meta["wall_time_s"],
                   hyperparameters={"unlearning": meta["unlearning"] | {"forget_ids": None}, **meta["config"]},
                   extra={"task": task["name"], "task_key": task["key"], "peak_rss_mb": peak_rss_mb(),
                          "forget_fraction": p["forget_fraction"]})
    return {"wall_time_s": meta["wall_time_s"]}, [row]


def _cached_reports(cache: Path, paths: dict[str, str], forget: np.ndarray, ejob: dict) -> dict[str, Path]:
    """role -> the cache file of its report: keyed by the model's weights, the forget set and the audit config."""
    from benchmarks.repro_plan import digest
    from trainables.checkpoint import read_meta

    files = {}
    for role, path in paths.items():
        weights = read_meta(path)["sha256"]["model.pt"]
        key = digest({"role": role, "weights": weights, "forget": digest(forget.tolist()), "evaluate": ejob})
        files[role] = cache / f"{role}-{key}.pkl"
    return files


def _save_pickle(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none


def step_times(pretrain_config: dict) -> dict[str, float]:
    """Median seconds of a plain training step, a training + member-gradient-penalty step (Eq. 3) and a
    penalty-only step on the same batch of this recipe (interleaved: ``benchmarks/ray_overhead.py``)."""
    from benchmarks.ray_overhead import gp_step_ratio
    from trainables.config import PretrainJob

    job = PretrainJob.model_validate(pretrain_config)
    times = gp_step_ratio(job, steps=10, warmup=2)
    return {k: v for k, v in times.items() if isinstance(v, float)}


def _cell(task: dict[str, Any], cache: Path) -> tuple[dict[str, Any], list[dict]]:
    from orchestrator.results.evaluation_rows import evaluation_rows
    from orchestrator.run.jobs import run_forget
    from trainables.attacks.config import EvaluateJob
    from trainables.audit.evaluate import evaluate_checkpoints
    from trainables.checkpoint import read_meta
    from trainables.unlearning.config import UnlearnJob

    p = task["payload"]
    forget = forget_ids_for(p["pretrain"], p["forget_fraction"])
    if p["unlearn"] is None:  # a tuned cell: the search's best config + this cell's seed / runtime
        from orchestrator.config import load_job

        job = load_job(UnlearnJob, config_file=p["unlearn_from"], overrides=p["unlearn_overrides"])
    else:
        job = UnlearnJob.model_validate(p["unlearn"])
    if not is_checkpoint(task["out"]):
        ray = ray_options(task)
        run_forget(job, p["pretrain"], task["out"], forget, workers=ray.workers, use_gpu=ray.use_gpu, ray_options=ray)
    ejob = EvaluateJob.model_validate(p["evaluate"])
    paths = {"unlearned": task["out"], "original": p["pretrain"], "retrained": p["retrain"]}
    files = _cached_reports(cache, paths, forget, p["evaluate"])
    precomputed = {}
    for role, f in files.items():
        if role != "unlearned" and f.is_file():
            with open(f, "rb") as fh:
                precomputed[role] = pickle.load(fh)
    t0 = time.perf_counter()
    ev = evaluate_checkpoints({"checkpoint": task["out"], "original": p["pretrain"], "retrained": p["retrain"]}, ejob,
                              precomputed=precomputed, log=lambda m: print(m, flush=True))
    eval_s = time.perf_counter() - t0
    for role, rep in ev.reports.items():
        if role != "unlearned" and role not in precomputed:
            _save_pickle(rep, files[role])
    extra = {"cell_key": task["key"], "cell": task["name"], "label": p["label"], **p["tags"],
             "forget_fraction": p["forget_fraction"], "peak_rss_mb": peak_rss_mb(), "cell_eval_s": eval_s,
             "evaluated_roles": [r for r in ev.reports if r not in precomputed],
             "eval_time_s_per_model": {r: rep.eval_time_s for r, rep in ev.reports.items()}}
    if p["time_steps"]:
        extra["step_times"] = step_times(p["pretrain_job"])
    unlearned, retrained = read_meta(task["out"]), read_meta(p["retrain"])
    extra["unlearn_epoch_samples_per_s"] = [h.get("samples_per_s") for h in unlearned.get("history", [])]
    rows = evaluation_rows(ev, Path(task["out"]))
    for row in rows:
        row.update(experiment=p["experiment"], hp_seed=float(p["seed"]), hp_forget_fraction=p["forget_fraction"],
                   unlearn_time_s=unlearned["wall_time_s"], retrain_time_s=retrained["wall_time_s"],
                   eval_time_s=ev.reports["unlearned"].eval_time_s)
        row["extra_json"] = json.dumps(json.loads(row["extra_json"]) | extra, sort_keys=True, default=str)
    rep = {r: ev.reports[r].attacks[ev.primary] for r in ev.reports}
    util = "knn_acc" if "knn_acc" in ev.reports["original"].utility else "test_acc"
    summary = {f"{r}_acc": rep[r].value("accuracy") for r in rep} | {
        f"{r}_{util}": ev.reports[r].utility.get(util, float("nan")) for r in rep} | {
        "unlearn_s": unlearned["wall_time_s"], "eval_s": eval_s, "utility": util}
    return summary, rows


def _tune(task: dict[str, Any], results: str) -> tuple[dict[str, Any], list[dict]]:
    """``unlearn tune`` through its Python API: trials scored on the validation protocol (forget vs halves of
    ``nonmember_ref``), one ``tune-trial`` row each; the best feasible config goes to ``OUT/best.yaml``."""
    from orchestrator.tune.search import SearchSettings, run_search

    p = task["payload"]
    out = Path(task["out"])
    ray = ray_options(task)
    settings = SearchSettings(checkpoint=p["pretrain"], space=p["space"], samples=p["samples"], out=str(out),
                              results=results, objective=p["objective"], cap=p["cap"], seed=p["seed"],
                              attack=p["attack"], overrides=tuple(p["fixed"]), resume=(out / "search.json").is_file(),
                              gpu=ray.use_gpu, address=ray.address)
    outcome = run_search(settings)
    if outcome.best is None:
        raise RuntimeError(f"the search found no feasible configuration in {len(outcome.finished)} trials")
    r = outcome.best.result
    return {"best": outcome.best_config, "val_attack_acc": r.get("mia_accuracy"),
            "accuracy_drop": r.get("accuracy_drop"), "trials": len(outcome.finished)}, []


def run_task(task: dict[str, Any], *, results: str, work: str, log_dir: str | None = None) -> dict[str, Any]:
    """Run one task; append its rows to ``results``; return a short summary for the progress line. Output goes to
    ``log_dir/<task>.log`` when given."""
    import torch

    from orchestrator.results.store import append

    torch.set_num_threads(1)
    log = contextlib.nullcontext()
    if log_dir:
        path = Path(log_dir) / (task["name"].replace("/", "_") + ".log")
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a", buffering=1)  # noqa: SIM115 - closed below
        log = contextlib.ExitStack()
        log.enter_context(fh)
        log.enter_context(contextlib.redirect_stdout(fh))
        log.enter_context(contextlib.redirect_stderr(fh))
    t0 = time.perf_counter()
    with log:
        print(f"== {task['name']} ({task['kind']}, key {task['key']}) -> {task['out']}", flush=True)
        if task["kind"] == "pretrain":
            summary, rows = _pretrain(task)
        elif task["kind"] == "retrain":
            summary, rows = _retrain(task)
        elif task["kind"] == "tune":
            summary, rows = _tune(task, results)
        else:
            summary, rows = _cell(task, Path(work) / "evalcache")
        append(results, rows)
        print(f"== done in {time.perf_counter() - t0:.0f}s: {summary}", flush=True)
    return summary | {"task_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":  # debugging aid: python -m benchmarks.repro_exec TASK.json RESULTS WORK
    print(run_task(json.loads(Path(sys.argv[1]).read_text()), results=sys.argv[2], work=sys.argv[3]))
