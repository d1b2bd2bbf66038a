"""The full evaluation of checkpoints (``unlearn evaluate``): load and cross-check them, run every attack on every
model with one protocol, and format the table.

Roles: the ``--checkpoint`` is ``unlearned`` (meta kind ``unlearn``), ``retrained`` (``retrain``) or ``original``
(``pretrain``: an audit of its members); ``--original`` / ``--retrained`` add the reference models. All are scored on
the forget set of the evaluated checkpoint (``meta["forgotten_ids"]`` = its ``splits["forget"]``) against the same
held-out non-members, with the same views and seeds.

Example:
    >>> ev = evaluate_checkpoints({"unlearned": "runs/u1", "original": "runs/p", "retrained": "runs/r"}, job)
    >>> print(format_table(ev))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from trainables.attacks.config import EvaluateJob
from trainables.attacks.protocol import attack_sets
from trainables.audit.forgetting import ModelReport, evaluate_models
from trainables.audit.metrics import verdict
from trainables.checkpoint import Checkpoint, load_checkpoint, read_meta
from trainables.config import DataConfig, EvalConfig, PretrainJob
from trainables.data.sources import ImageSource
from trainables.data.splits import Splits
from trainables.errors import UserError

ROLE_OF_KIND = {"unlearn": "unlearned", "retrain": "retrained", "pretrain": "original"}
TABLE_METRICS = (("accuracy", "acc"), ("auc", "AUC"), ("precision", "prec"), ("recall", "recall"),
                 ("tpr_at_1fpr", "TPR@1%"), ("tpr_at_01fpr", "TPR@.1%"))


@dataclass
class Evaluation:
    reports: dict[str, ModelReport]
    checkpoints: dict[str, Checkpoint]
    forget_ids: np.ndarray
    job: EvaluateJob
    pretrain_config: dict[str, Any]
    source: ImageSource
    splits: Splits
    primary: str
    wall_time_s: float = 0.0
    shadow_path: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def main_role(self) -> str:
        return next(iter(self.checkpoints))

    def gap_to_retrain(self, attack: str, role: str, metric: str = "accuracy") -> float | None:
        if "retrained" not in self.reports or role == "retrained":
            return None
        return self.reports[role].attacks[attack].value(metric) - self.reports["retrained"].attacks[attack].value(metric)


def role_of(meta: dict[str, Any]) -> str:
    return ROLE_OF_KIND.get(meta.get("kind", "pretrain"), "original")


def forget_ids_of(ck: Checkpoint) -> np.ndarray:
    """The forget set: ``meta["forgotten_ids"]`` and ``splits["forget"]`` must agree when both exist."""
    if ck.splits is None:
        raise UserError(f"checkpoint {ck.path} has no splits.parquet: cannot tell members from non-members")
    forget = ck.splits["forget"]
    listed = ck.meta.get("forgotten_ids")
    if listed is not None and not np.array_equal(np.unique(np.asarray(listed, dtype=np.int64)), forget):
        raise UserError(f"checkpoint {ck.path} is inconsistent: meta.json lists {len(listed)} forgotten ids but its "
                        f"splits.parquet forget split holds {len(forget)} different ones")
    return forget


def _pretrain_config(checkpoints: dict[str, Checkpoint]) -> dict[str, Any]:
    """The pretraining job config (augmentation, data, model): the original's, else any that has one, else the
    parent chain's."""
    order = ["original"] + [r for r in checkpoints if r != "original"]
    for role in order:
        if role in checkpoints and {"augment", "data"} <= set(checkpoints[role].meta.get("config") or {}):
            return checkpoints[role].meta["config"]
    for ck in checkpoints.values():
        parent = (ck.meta.get("parent") or {}).get("path")
        while parent and Path(parent).exists():
            meta = read_meta(parent)
            if {"augment", "data"} <= set(meta.get("config") or {}):
                return meta["config"]
            parent = (meta.get("parent") or {}).get("path")
    raise UserError("none of the checkpoints records its pretraining config (augment, data); cannot query it")


def training_ids(ck: Checkpoint) -> np.ndarray:
    """The samples a checkpoint's weights have seen: all members, except a retrained model (its retain set)."""
    if ck.meta.get("kind") == "retrain":
        return ck.splits["retain"]
    return ck.splits["member"]


def _cross_check(checkpoints: dict[str, Checkpoint], main: str, forget: np.ndarray) -> None:
    main_ck = checkpoints[main]
    for role, ck in checkpoints.items():
        if role == main:
            continue
        if ck.meta.get("dataset") != main_ck.meta.get("dataset"):
            raise UserError(f"--{role} {ck.path} was trained on {ck.meta.get('dataset')!r}, the checkpoint on "
                            f"{main_ck.meta.get('dataset')!r}: not comparable")
        if ck.splits is None:
            raise UserError(f"--{role} {ck.path} has no splits.parquet")
        if not np.array_equal(ck.splits["member"], main_ck.splits["member"]) or not np.array_equal(
                ck.splits["nonmember_eval"], main_ck.splits["nonmember_eval"]):
            raise UserError(f"--{role} {ck.path} uses another member / non-member split (different split seed?)")
        seen = np.intersect1d(training_ids(ck), forget)
        if role == "retrained" and len(seen):
            raise UserError(f"--retrained {ck.path} (kind {ck.meta.get('kind')!r}) was trained on {len(seen)} of the "
                            f"forgotten samples: it is not a model retrained without the forget set")


def find_original(meta: dict[str, Any]) -> Path:
    """The pretrained model at the root of an unlearned checkpoint's lineage (``meta["parent"]`` links), with each
    link's recorded weight sha256 checked."""
    link = meta.get("parent") or {}
    for _ in range(100):
        path = link.get("path")
        if not path or not Path(path).exists():
            raise UserError(f"an unlearned model is always compared with its original, but its parent {path!r} is "
                            f"not available: pass --original DIR")
        parent = read_meta(path)
        if link.get("sha256") and parent.get("sha256", {}).get("model.pt") != link["sha256"]:
            raise UserError(f"the parent checkpoint {path} has other weights than the unlearned model records "
                            f"(sha256 mismatch): pass --original DIR explicitly")
        if parent.get("kind", "pretrain") == "pretrain":
            return Path(path)
        link = parent.get("parent") or {}
    raise UserError("the parent chain of this checkpoint does not end in a pretrained model")


def load_shadow(path: str | Path, main_splits: Splits):
    ck = load_checkpoint(path)
    if ck.meta.get("train_split") != "shadow_member":
        raise UserError(f"--shadow {path} is not a shadow model (meta train_split is {ck.meta.get('train_split')!r}, "
                        f"expected 'shadow_member')")
    if ck.splits is None or not np.array_equal(ck.splits["shadow_member"], main_splits["shadow_member"]):
        raise UserError(f"--shadow {path} was trained on other shadow members than this checkpoint's splits")
    return ck.model


def train_shadow(pretrain_config: dict[str, Any], source: ImageSource, splits: Splits, out: Path | None, *, device,
                 log) -> Any:
    """A shadow encoder: the target's recipe on ``shadow_member`` (saved to ``out`` for reuse when given)."""
    from trainables.checkpoint import save_checkpoint
    from trainables.jobs.common import checkpoint_meta
    from trainables.jobs.pretrain import pretrain_task
    from trainables.loops.context import LoopContext

    job = PretrainJob.model_validate(pretrain_config)
    log(f"training a shadow {job.method} model on {len(splits['shadow_member'])} shadow members "
        f"({job.optim.epochs} epochs)")
    t0 = time.perf_counter()
    ctx = LoopContext(device=device, progress=job.runtime.progress, log=log)
    model, history, spec, _, _ = pretrain_task(job, ctx, source=source, splits=splits, train_split="shadow_member")
    if out is not None:
        meta = checkpoint_meta(job, "pretrain", history, train_split="shadow_member",
                               wall_time_s=time.perf_counter() - t0)
        save_checkpoint(out, model, spec=spec, meta=meta, splits=splits)
    return model


def evaluate_checkpoints(paths: dict[str, str | Path | None], job: EvaluateJob, *, shadow: str | Path | None = None,
                         shadow_out: Path | None = None, log=print,
                         precomputed: dict[str, ModelReport] | None = None) -> Evaluation:
    """``paths``: role -> checkpoint dir; the first is the evaluated checkpoint (its role from its meta kind).
    ``precomputed``: role -> a report of that role's model from an earlier call with the same job and forget set
    (e.g. the original and retrained models shared by many unlearning runs); those roles are not scored again. Its
    fit / score ids must equal this call's (checked)."""
    from trainables.jobs.common import load_data
    from trainables.loops.context import resolve_device

    t0 = time.perf_counter()
    items = [(r, p) for r, p in paths.items() if p]
    main_ck = load_checkpoint(items[0][1])
    checkpoints = {role_of(main_ck.meta): main_ck}
    notes = []
    if role_of(main_ck.meta) == "unlearned" and not paths.get("original"):
        original = find_original(main_ck.meta)
        items.append(("original", original))
        notes.append(f"original model: {original} (from the checkpoint's parent chain)")
    for role, path in items[1:]:
        if role in checkpoints:
            raise UserError(f"the checkpoint is itself the {role} model (meta kind {main_ck.meta.get('kind')!r}); "
                            f"drop --{role}")
        checkpoints[role] = load_checkpoint(path)
    main = next(iter(checkpoints))
    forget = forget_ids_of(main_ck)
    _cross_check(checkpoints, main, forget)
    config = _pretrain_config(checkpoints)
    job = job.model_copy(update={"attack": job.attack.for_model(config.get("method"))})  # classifiers: confidence
    from trainables.data.locations import operator_data

    try:
        data_cfg = operator_data(DataConfig.model_validate(config["data"]), log=log)  # never the checkpoint's place
    except ValidationError as exc:
        raise UserError(f"the checkpoint's data config (meta.json config.data) is invalid: {exc}") from None
    source, splits = load_data(data_cfg, main_ck.splits)
    device = resolve_device(job.runtime.device)
    # validate the protocol (e.g. shadow splits present) before any expensive work such as training a shadow
    attack_sets(splits, forget, threat_model=job.attack.threat_model, seed=job.attack.seed, max_fit=job.attack.max_fit)
    shadow_model = None
    if job.attack.threat_model == "shadow":
        shadow_model = load_shadow(shadow, splits) if shadow else train_shadow(config, source, splits, shadow_out,
                                                                              device=device, log=log)
    order = [r for r in ("original", "unlearned", "retrained") if r in checkpoints]
    precomputed = {r: rep for r, rep in (precomputed or {}).items() if r in order and r != main}
    models = {r: checkpoints[r].model.to(device) for r in order if r not in precomputed}
    fresh = evaluate_models(models, source, splits, forget, config=job.attack, model_config=config,
                            shadow_model=shadow_model, utility=job.utility, eval_cfg=utility_config(job, config),
                            device=device,
                            log=log)
    sets = next(iter(fresh.values())).sets
    for role, rep in precomputed.items():
        if not (np.array_equal(rep.sets.fit_ids, sets.fit_ids) and np.array_equal(rep.sets.score_ids, sets.score_ids)):
            raise UserError(f"the precomputed {role} report was scored on other samples than this evaluation")
    reports = {r: fresh[r] if r in fresh else precomputed[r] for r in order}
    if main == "original":
        notes.append("pretrained checkpoint: the 'forget' split is audited as members (no unlearning yet)")
    return Evaluation(reports, {r: checkpoints[r] for r in [main] + [r for r in order if r != main]}, forget, job,
                      config, source, splits, job.attack.attacks[0], time.perf_counter() - t0,
                      str(shadow or shadow_out or "") or None, notes)


def _fmt(v: float, lo: float, hi: float) -> str:
    return f"{v:.3f} [{lo:.2f},{hi:.2f}]" if np.isfinite(lo) else f"{v:.3f}"


def utility_config(job, pretrain_config: dict) -> EvalConfig:
    """The kNN / probe settings of the utility: ``eval.*`` when the evaluation sets them, else the model's own
    pretraining settings, so that "knn_acc" of a model means one thing in its checkpoint and in its audit."""
    if "eval" in job.model_fields_set:
        return job.eval
    return EvalConfig.model_validate(pretrain_config.get("eval") or {})


def format_table(ev: Evaluation) -> str:
    """Attack metrics (value [95% CI]) per attack and model, gap to retrain, signals, utility, verdicts."""
    roles = list(ev.reports)
    sets = next(iter(ev.reports.values())).sets
    lines = [f"membership inference ({ev.job.attack.threat_model} threat model): {len(sets.score_members)} forget "
             f"samples vs {len(sets.score_nonmembers)} held-out non-members; attacks fitted on "
             f"{len(sets.fit_members)} + {len(sets.fit_nonmembers)} disjoint samples; {ev.job.attack.bootstrap} "
             f"bootstrap resamples"]
    head = f"{'attack':<20} {'model':<10} " + " ".join(f"{h:<17}" if h in ('acc', 'AUC') else f"{h:>7}"
                                                     for _, h in TABLE_METRICS) + f" {'MIA-eff':>7} {'gap_to_retrain':>14}"
    lines += [head, "-" * len(head)]
    for attack in ev.reports[roles[0]].attacks:
        for i, role in enumerate(roles):
            res = ev.reports[role].attacks[attack]
            cells = []
            for key, h in TABLE_METRICS:
                v, lo, hi = res.metrics[key]
                cells.append(f"{_fmt(v, lo, hi):<17}" if h in ("acc", "AUC") else f"{v:>7.3f}")
            gap = ev.gap_to_retrain(attack, role)
            gap_s = f"{gap:+.3f}" if gap is not None else "-"
            lines.append(f"{attack if i == 0 else '':<20} {role:<10} " + " ".join(cells)
                         + f" {res.mia_efficacy:>7.3f} {gap_s:>14}")
    lines.append("")
    means = {r: ev.reports[r].signal_means() for r in roles}
    util_keys = sorted({k for r in roles for k in ev.reports[r].utility})
    keys = list(next(iter(means.values()))) + util_keys
    lines.append(f"{'signal / utility':<20} " + " ".join(f"{r:>10}" for r in roles))
    for key in keys:
        vals = [means[r].get(key, ev.reports[r].utility.get(key, float("nan"))) for r in roles]
        lines.append(f"{key:<20} " + " ".join(f"{v:>10.4f}" for v in vals))
    lines.append("")
    for role in roles:
        acc = ev.reports[role].attacks[ev.primary].metrics["accuracy"]
        lines.append(f"{role}: {ev.primary} accuracy {_fmt(*acc)} -> {verdict(*acc)}")
    lines += [f"note: {n}" for n in ev.notes]
    return "\n".join(lines)
