"""Reference sets of model versions: K reference models trained as parallel Ray tasks, stored beside the version's
checkpoint and recorded (with the sha256 of their manifest) in the ledger's ``reference_sets`` table.

Each Ray task runs the Ray-free :func:`trainables.attacks.reference_train.train_reference` on one CPU; a build that
is interrupted keeps its finished models in ``.NAME.partial`` and the same command resumes it. ``workers=0``
trains them one after the other in this process, without Ray. Building twice for
the same version, K and seed returns the recorded set (nothing is trained again).

    set_id, ref = build_reference_set(ledger, version=None, k=4, workers=2)     # None: the current version
    ref = reference_set_for(ledger, version)      # verified against the ledger's sha256 (UserError if not)
    scores = reference_scores(ref, model, source, batch_ids)
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from orchestrator.ledger.db import Ledger, utc_now
from trainables.attacks.reference_set import (
    ReferenceSet,
    check_k,
    design_in_sets,
    model_name,
    open_reference_set,
    write_manifest,
)
from trainables.errors import UserError


def recipe_of(meta: dict[str, Any], uri: str) -> dict[str, Any]:
    """The pretraining job config of a version: its own, else the nearest ancestor's (``meta["parent"]`` links)."""
    from trainables.checkpoint import read_meta

    for _ in range(100):
        config = meta.get("config") or {}
        if meta.get("kind", "pretrain") == "pretrain" and {"augment", "data", "optim"} <= set(config):
            return config
        parent = (meta.get("parent") or {}).get("path")
        if not parent or not Path(parent).exists():
            break
        meta = read_meta(parent)
    raise UserError(f"model {uri}: no pretraining config in its lineage; the reference models need its recipe")


def default_out(uri: str, version: int, k: int, seed: int) -> Path:
    p = Path(uri)
    return p.parent / f"{p.name}.references-v{version}-k{k}-s{seed}"


def recorded_sets(ledger: Ledger, version: int | None = None) -> list[dict[str, Any]]:
    sql, args = "SELECT * FROM reference_sets", ()
    if version is not None:
        sql, args = sql + " WHERE version = ?", (version,)
    rows = [dict(r) for r in ledger.conn.execute(sql + " ORDER BY set_id", args)]
    for r in rows:
        r["detail"] = json.loads(r["detail"])
    return rows


def reference_k_by_version(ledger: Ledger) -> dict[int, int]:
    """K of the newest reference set of every version that has one (for ``models list``)."""
    return {r["version"]: r["k"] for r in recorded_sets(ledger)}


def reference_set_for(ledger: Ledger, version: int) -> ReferenceSet:
    """The newest reference set of ``version``, verified against the ledger's sha256 and its own manifest."""
    rows = recorded_sets(ledger, version)
    if not rows:
        raise UserError(f"model version {version} has no reference set: build one with "
                        f"`unlearn models references build --version {version} --k 4`")
    return open_reference_set(rows[-1]["uri"], expected_sha256=rows[-1]["sha256"])


def _train_all(tasks: list, workers: int, address: str | None, log) -> list[dict[str, Any]]:
    """Run the reference tasks as Ray tasks, at most ``workers`` at once, logging each as it finishes."""
    import ray

    from orchestrator.run.driver import connect_ray
    from trainables.attacks.reference_train import train_reference

    started = connect_ray(address)
    try:
        remote = ray.remote(num_cpus=1)(train_reference)
        queue, running, done, t0 = list(tasks), {}, [], time.perf_counter()
        while queue or running:
            while queue and len(running) < workers:
                task = queue.pop(0)
                running[remote.remote(task)] = task
            ready, _ = ray.wait(list(running), num_returns=1)
            task = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                raise RuntimeError(f"reference model {Path(task.out_dir).name} failed: {exc}") from exc
            done.append(result)
            log(f"reference model {Path(task.out_dir).name} trained ({result['n_in']} samples, "
                f"{result['train_time_s']:.0f} s); {len(done)}/{len(tasks)} done, "
                f"{time.perf_counter() - t0:.0f} s elapsed")
        return done
    finally:
        if started:
            ray.shutdown()


def _train_here(tasks: list, log) -> list[dict[str, Any]]:
    """``--workers 0``: one after the other in this process, no Ray (debugging, tests)."""
    from trainables.attacks.reference_train import train_reference

    done = []
    for task in tasks:
        done.append(train_reference(task))
        log(f"reference model {Path(task.out_dir).name} trained ({done[-1]['n_in']} samples, "
            f"{done[-1]['train_time_s']:.0f} s); {len(done)}/{len(tasks)} done")
    return done


def build_reference_set(ledger: Ledger, version: int | None = None, *, k: int, workers: int | None = None,
                        seed: int = 0, out: str | Path | None = None, address: str | None = None,
                        log=print) -> tuple[int, ReferenceSet, bool]:
    """Train (or reuse) the K reference models of ``version``; returns ``(set_id, reference set, newly_built)``."""
    from orchestrator.ledger.versions import require_current, verify_model
    from trainables.attacks.reference_train import ReferenceTask
    from trainables.checkpoint import MANIFEST, read_meta
    from trainables.data.splits import Splits

    check_k(k)
    if workers is not None and workers < 0:
        raise UserError(f"--workers must be 0 (in this process) or more, got {workers}")
    row = require_current(ledger) if version is None else ledger.get_model(version)
    if row is None:
        raise UserError(f"no model version {version}; see `unlearn models list`")
    meta = verify_model(row)
    for rec in recorded_sets(ledger, row["version"]):
        if rec["k"] == k and rec["seed"] == seed and (out is None or Path(out).resolve() == Path(rec["uri"])):
            log(f"model version {row['version']} already has this reference set: {rec['uri']} (reused)")
            return rec["set_id"], open_reference_set(rec["uri"], expected_sha256=rec["sha256"]), False
    recipe = recipe_of(meta, row["uri"])
    target = Path(out).resolve() if out else default_out(row["uri"], row["version"], k, seed).resolve()
    if target.exists():
        raise UserError(f"{target} already exists; choose another --out or remove it")
    splits_path = Path(row["uri"]) / MANIFEST
    splits = Splits.load(splits_path)
    members = splits["member"]
    pool, mask = design_in_sets(members, splits["nonmember"], k, len(members), seed)
    partial = target.parent / f".{target.name}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    tasks = []
    for m in range(k):
        out_dir = partial / model_name(m)
        in_ids = tuple(int(i) for i in pool[mask[m]])
        if (out_dir / "meta.json").is_file() and tuple(read_meta(out_dir).get("in_ids", ())) == in_ids:
            continue  # finished by an earlier, interrupted build
        shutil.rmtree(out_dir, ignore_errors=True)
        tasks.append(ReferenceTask(recipe, str(splits_path), in_ids, str(out_dir), seed=seed * 1009 + m + 1))
    n_workers = min(k if workers is None else workers, max(len(tasks), 1))
    log(f"training {len(tasks)} of {k} reference models for version {row['version']} ({recipe.get('method')}, "
        f"{len(members)} samples each, {recipe['optim']['epochs']} epochs) "
        + (f"on {n_workers} Ray workers" if n_workers else "in this process"))
    results = (_train_all(tasks, n_workers, address, log) if n_workers else _train_here(tasks, log)) if tasks else []
    times = {Path(r["out_dir"]).name: r["train_time_s"] for r in results}
    models = [{"name": model_name(m), "seed": seed * 1009 + m + 1, "n_in": int(mask[m].sum()),
               "train_time_s": times.get(model_name(m))} for m in range(k)]
    parent = {"version": row["version"], "uri": row["uri"], "sha256": row["sha256"]}
    write_manifest(partial, k=k, seed=seed, recipe=recipe, parent=parent, models=models, pool_size=len(pool),
                   in_size=len(members))
    partial.rename(target)
    ref = open_reference_set(target)
    with ledger.transaction() as c:
        cur = c.execute("INSERT INTO reference_sets (version, uri, sha256, k, seed, created_at, detail) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (row["version"], str(target), ref.sha256, k, seed, utc_now(),
                         json.dumps({"pool_size": len(pool), "in_size": len(members),
                                     "train_time_s": sum(t for t in times.values() if t)})))
        Ledger.event(c, "reference_set_built", version=row["version"], set_id=cur.lastrowid, uri=str(target), k=k)
    return cur.lastrowid, ref, True
