"""What the scheduler calls to unlearn a batch and to verify the result: a small interface, one real implementation.

    class Executor(Protocol):
        def resolve_config(config_file, overrides, verify) -> dict            # validated, JSON, frozen per batch
        def unlearn(parent, forget_ids, config, out, run_name) -> Path       # writes a checkpoint at ``out``
        def verify(candidate, parent, batch_ids, all_forgotten_ids, config) -> VerificationResult

:class:`RayExecutor` (the default, ``--executor ray``) runs :func:`orchestrator.run.jobs.run_forget` (Ray Train when
``workers > 0``, named ``run_name`` under ``storage_path`` so a re-run after a crash resumes; the output directory
is ``models_dir/<run_name>`` too) and measures the
per-sample evidence of the gate with :func:`trainables.audit.gate_scores.gate_scores`. ``--executor MODULE:CALLABLE``
plugs in another one (the tests use a deterministic fake); the callable receives the keyword arguments of
:func:`load_executor`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from orchestrator.config import load_job
from orchestrator.ledger.verification import GateScores, VerificationResult, VerifyConfig, decide
from trainables.errors import UserError
from trainables.unlearning.config import UnlearnJob  # torch-free


class Executor(Protocol):
    def resolve_config(self, config_file: str | None, overrides: list[str],
                       verify: VerifyConfig) -> dict[str, Any]: ...

    def unlearn(self, parent: Path, forget_ids: list[int], config: dict[str, Any], out: Path,
                run_name: str) -> Path: ...

    def verify(self, candidate: Path, parent: Path, batch_ids: list[int], all_forgotten_ids: list[int],
               config: dict[str, Any]) -> VerificationResult: ...


def load_executor(spec: str = "ray", **kwargs) -> Executor:
    """``ray`` or ``MODULE:CALLABLE``; kwargs: workers, use_gpu, storage_path."""
    if spec == "ray":
        return RayExecutor(**kwargs)
    module_name, sep, attr = spec.partition(":")
    if not sep or not attr:
        raise UserError(f"--executor must be 'ray' or MODULE:CALLABLE, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load executor {spec!r}: {exc}") from None
    return factory(**kwargs)


class RayExecutor:
    """The real path: ``run_forget`` (in-process for ``workers=0``, Ray Train otherwise) + the attack suite."""

    def __init__(self, *, workers: int = 0, use_gpu: bool = False, storage_path: str | Path | None = None):
        self.workers, self.use_gpu, self.storage_path = workers, use_gpu, storage_path

    def resolve_config(self, config_file, overrides, verify: VerifyConfig) -> dict[str, Any]:
        job = load_job(UnlearnJob, config_file=config_file, overrides=overrides)
        # no method named: only the keys set, so that the scheduler can add the parent model kind's defaults
        dumped = job.model_dump(mode="json", exclude_unset="method" not in job.model_fields_set)
        return {"job": dumped, "verify": verify.model_dump(mode="json")}

    def unlearn(self, parent, forget_ids, config, out, run_name) -> Path:
        from orchestrator.run.jobs import run_forget

        job = UnlearnJob.model_validate(config["job"])
        path, _ = run_forget(job, parent, out, forget_ids, workers=self.workers, use_gpu=self.use_gpu,
                             ray_options=self.ray_options(run_name, Path(out).parent / run_name))
        return Path(path)

    def ray_options(self, run_name: str, final: Path | None = None):
        """The Ray Train run is named after the batch, under ``storage_path``: a re-run of the batch resumes it.
        ``final`` (the candidate's place once installed) identifies the run instead of the per-generation staging
        directory ``out``, so a run that took the lease over resumes the same Ray Train run."""
        from orchestrator.run.options import RayOptions

        storage = None if self.storage_path is None else str(self.storage_path)
        return RayOptions(workers=self.workers, use_gpu=self.use_gpu, storage=storage, run_name=run_name,
                          run_key=None if final is None else str(final.resolve()))

    def verify(self, candidate, parent, batch_ids, all_forgotten_ids, config) -> VerificationResult:
        """Per-sample scores of the candidate and the parent on the batch, the held-out non-members and the
        earlier batches' ids, per-sample utility of both; then :func:`orchestrator.ledger.verification.decide`."""
        from trainables.audit.forgetting import as_attack_config
        from trainables.audit.gate_scores import gate_scores
        from trainables.checkpoint import load_checkpoint
        from trainables.config import PretrainJob
        from trainables.jobs.common import load_data
        from trainables.loops.context import resolve_device
        from trainables.utility.measure import correct_per_sample

        cfg = VerifyConfig.model_validate(config["verify"])
        cand, par = load_checkpoint(candidate), load_checkpoint(parent)
        pretrain = PretrainJob.model_validate(cand.meta["config"])
        from trainables.data.locations import operator_data

        source, _ = load_data(operator_data(pretrain.data), cand.splits)  # the operator's data location
        job = config.get("job")
        device = resolve_device(UnlearnJob.model_validate(job).runtime.device if job else "cpu")
        attack_config = as_attack_config(cfg.attack).for_model(pretrain.method)  # classifiers: confidence first
        earlier = sorted(set(all_forgotten_ids) - set(batch_ids))
        results = gate_scores({"candidate": cand.model, "parent": par.model}, source, cand.splits,
                              sorted(batch_ids), earlier, config=attack_config, model_config=cand.meta["config"],
                              device=device)
        # Utility of both models on the same samples with the same retain bank, so the drop is paired.
        knn = {"knn_k": pretrain.eval.knn_k, "knn_temperature": pretrain.eval.knn_temperature}
        metric, before = correct_per_sample(par.model, source, cand.splits, all_forgotten_ids, device=device, **knn)
        _, after = correct_per_sample(cand.model, source, cand.splits, all_forgotten_ids, device=device, **knn)
        by_model = {role: {r: (res.set_ids[r], res.sample_scores[r]) for r in res.sample_scores}
                    for role, res in results.items()}
        return decide(GateScores(attack_config.attacks[0], by_model["candidate"], by_model["parent"], before, after,
                                 metric), cfg)
