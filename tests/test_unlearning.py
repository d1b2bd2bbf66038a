"""Unlearning methods through the one interface (in-process, tiny models on digits)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import tiny_job
from trainables.data.augment import normalize
from trainables.errors import UserError
from trainables.jobs.pretrain import pretrain_task
from trainables.loops.context import LoopContext
from trainables.losses import member_gradient_penalty
from trainables.models.base import embed_all
from trainables.unlearning import UnlearnJob, check_compatible, unlearn
from trainables.unlearning.loop import balanced_batch_size
from trainables.unlearning.registry import STEP_METHODS
from trainables.unlearning.terms import random_other_labels

QUIET = {"progress": False}


@pytest.fixture(scope="module")
def pretrained():
    """A tiny SimCLR encoder trained on 200 digits (the parent of every test here)."""
    job = tiny_job("simclr", optim={"epochs": 3})
    model, _, _, source, splits = pretrain_task(job, LoopContext(progress=False))
    return job, model, source, splits


def fresh(pretrained):
    job, model, source, splits = pretrained
    return job, copy.deepcopy(model), source, splits


class SpyImages:
    """Stands in for ``ImageSource.images`` and records every sample id read from it."""

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.shape = images.shape
        self.touched: set[int] = set()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        ids = torch.arange(len(self.images))[index]
        self.touched.update(int(i) for i in ids.reshape(-1))
        return self.images[index]


def spy_on(source):
    spy = SpyImages(source.images)
    return dataclasses.replace(source, images=spy), spy


def penalty_on(model, source, ids) -> float:
    x = normalize(source.images[torch.from_numpy(ids)])
    model.eval()
    return float(member_gradient_penalty(model, x, "squared").loss.detach())


def test_memgp_lowers_the_penalty_on_the_forget_set(pretrained):
    pjob, model, source, splits = fresh(pretrained)
    forget = splits["forget"]
    before = penalty_on(model, source, forget)
    job = UnlearnJob(method="memgp", a=0, b=1, epochs=3, lr=3e-3, monitor=False, runtime=QUIET)
    model, history = unlearn(model, source, splits, forget, job, pretrain_job=pjob)
    after = penalty_on(model, source, forget)
    assert after < 0.5 * before
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["memgp"] < history[0]["memgp"]
    assert {"loss", "memgp", "grad_norm", "epoch_time_s"} <= set(history[0])


@pytest.mark.parametrize("source_of_train_term", ["forget", "retain"])
def test_gp_reads_only_forget_reference_and_its_train_source(pretrained, source_of_train_term):
    pjob, model, source, splits = fresh(pretrained)
    spied, spy = spy_on(source)
    job = UnlearnJob(method="gp", a=1, b=1, c=0.1, epochs=1, monitor=False, train_term_source=source_of_train_term,
                     runtime=QUIET)
    _, history = unlearn(model, spied, splits, splits["forget"], job, pretrain_job=pjob)
    touched = np.array(sorted(spy.touched))
    assert len(np.intersect1d(touched, splits["nonmember_eval"])) == 0
    assert len(np.intersect1d(touched, splits["nonmember_ref"])) > 0
    assert set(splits["forget"]) <= spy.touched
    allowed = np.union1d(splits["forget"], splits["nonmember_ref"])
    if source_of_train_term == "retain":
        allowed = np.union1d(allowed, splits["retain"])
        assert len(np.intersect1d(touched, splits["retain"])) > 0
    assert np.setdiff1d(touched, allowed).size == 0
    assert {"train", "gp", "norm", "grad_norm"} <= set(history[0])


def test_retrain_never_sees_a_forget_sample(pretrained):
    pjob, model, source, splits = fresh(pretrained)
    spied, spy = spy_on(source)
    job = UnlearnJob(method="retrain", retrain_epochs=1, runtime=QUIET)
    new_model, history = unlearn(model, spied, splits, splits["forget"], job, pretrain_job=pjob)
    assert new_model is not model
    assert len(history) == 1
    assert spy.touched & set(splits["retain"].tolist())
    assert not spy.touched & set(splits["forget"].tolist())


def test_resume_from_an_epoch_state_gives_the_uninterrupted_result(pretrained):
    pjob, model, source, splits = fresh(pretrained)
    start = copy.deepcopy(model.state_dict())
    job = UnlearnJob(method="memgp", a=1, b=1, epochs=2, monitor=False, runtime=QUIET)
    saved = {}

    def on_epoch_end(epoch, metrics, train_state_fn):
        if epoch == 0:
            saved["state"] = copy.deepcopy(train_state_fn())
            saved["weights"] = copy.deepcopy(model.state_dict())

    full, full_history = unlearn(model, source, splits, splits["forget"], job,
                                 LoopContext(progress=False, on_epoch_end=on_epoch_end), pretrain_job=pjob)
    assert saved["state"]["epoch"] == 1
    resumed_model = copy.deepcopy(pretrained[1])
    resumed_model.load_state_dict(saved["weights"])
    assert not torch.equal(saved["weights"]["backbone.0.weight"], start["backbone.0.weight"])
    resumed, history = unlearn(resumed_model, source, splits, splits["forget"], job,
                               LoopContext(progress=False, resume=saved["state"]), pretrain_job=pjob)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["loss"] == pytest.approx(full_history[1]["loss"], rel=1e-5)
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_head_is_frozen_when_no_term_reaches_it_and_restored_after(pretrained):
    pjob, model, source, splits = fresh(pretrained)
    head_before = copy.deepcopy(model.projection_head.state_dict())
    job = UnlearnJob(method="memgp", a=0, b=1, epochs=1, monitor=False, runtime=QUIET)
    model, _ = unlearn(model, source, splits, splits["forget"], job, pretrain_job=pjob)
    for key, value in model.projection_head.state_dict().items():
        if value.is_floating_point():  # weights untouched (BatchNorm counters aside: eval mode keeps those too)
            assert torch.equal(value, head_before[key])
    assert all(p.requires_grad for p in model.projection_head.parameters())
    assert model.embed_output == "features"


def test_embed_output_override_is_used_then_restored(pretrained):
    pjob, model, source, splits = fresh(pretrained)
    head_before = copy.deepcopy(model.projection_head.state_dict())
    job = UnlearnJob(method="memgp", b=1, epochs=1, embed_output="projection", monitor=False, runtime=QUIET)
    model, _ = unlearn(model, source, splits, splits["forget"], job, pretrain_job=pjob)
    changed = [k for k, v in model.projection_head.state_dict().items() if not torch.equal(v, head_before[k])]
    assert changed  # the penalty on the projection reached the head
    assert model.embed_output == "features"


def test_a_single_forget_sample_works(pretrained):
    pjob, model, source, splits = fresh(pretrained)
    job = UnlearnJob(method="memgp", a=1, b=1, epochs=1, runtime=QUIET)
    _, history = unlearn(model, source, splits, splits["forget"][:1], job, pretrain_job=pjob)
    assert np.isfinite(history[0]["memgp"])
    assert "knn_acc" in history[-1] and "forget_knn_acc" in history[-1]


@pytest.mark.parametrize("method", ["finetune", "neggrad_plus", "l1_sparse", "alignment_calibration"])
def test_baselines_run_and_log_their_components(pretrained, method):
    pjob, model, source, splits = fresh(pretrained)
    job = UnlearnJob(method=method, epochs=1, monitor=False, runtime=QUIET)
    before = copy.deepcopy(model.backbone.state_dict())
    model, history = unlearn(model, source, splits, splits["forget"], job, pretrain_job=pjob)
    expected = {"finetune": {"retain"}, "neggrad_plus": {"retain", "forget"}, "l1_sparse": {"retain", "l1"},
                "alignment_calibration": {"retain", "forget_agreement"}}[method]
    assert expected | {"loss"} <= set(history[0])
    assert any(not torch.equal(v, before[k]) for k, v in model.backbone.state_dict().items())


def test_random_labels_teaches_each_forget_sample_its_fixed_wrong_label():
    # before ~0.10 (chance), after ~0.25 with CE on the wrong labels 2.5 -> 2.0 (measured)
    pjob = tiny_job("supervised", optim={"epochs": 4})
    model, _, _, source, splits = pretrain_task(pjob, LoopContext(progress=False))
    ids = torch.from_numpy(splits["forget"])
    true = torch.from_numpy(source.labels[splits["forget"]])
    wrong = random_other_labels(true, ids, 10, seed=0)
    assert not torch.any(wrong == true)
    assert torch.equal(wrong, random_other_labels(true, ids, 10, seed=0))  # fixed per sample id

    def hit_rate(m) -> float:
        return float((embed_all(m, source.images[ids], task="head").argmax(1) == wrong).float().mean())

    before = hit_rate(model)
    job = UnlearnJob(method="random_labels", epochs=10, lr=3e-3, batch_size=16, runtime=QUIET)
    model, history = unlearn(model, source, splits, splits["forget"], job, pretrain_job=pjob)
    assert {"forget_random", "retain", "forget_acc", "test_acc"} <= set(history[-1])
    assert history[-1]["forget_random"] < history[0]["forget_random"] - 0.3
    assert hit_rate(model) >= 2 * before


def test_incompatible_requests_are_user_errors(pretrained):
    _, model, _, splits = pretrained
    ids = {"forget": splits["forget"], "retain": splits["retain"], "nonmember_ref": np.zeros(0, np.int64)}
    with pytest.raises(UserError, match="random_labels needs a supervised classifier"):
        check_compatible(UnlearnJob(method="random_labels"), model, ids)
    with pytest.raises(UserError, match="nonmember_ref split is empty"):
        check_compatible(UnlearnJob(method="gp"), model, ids)
    with pytest.raises(UserError, match="has no logits"):
        check_compatible(UnlearnJob(method="memgp", embed_output="logits"), model, ids)
    with pytest.raises(UserError, match="forget set is empty"):
        check_compatible(UnlearnJob(method="memgp"), model, dict(ids, forget=np.zeros(0, np.int64)))


def test_unlearn_job_validation():
    with pytest.raises(ValueError, match="choose one of: gp, memgp, retrain"):
        UnlearnJob(method="forgetful")
    with pytest.raises(ValueError, match="penalty_output"):
        UnlearnJob(method="memgp", penalty_output="max_logit")
    with pytest.raises(ValueError, match="every loss weight"):
        UnlearnJob(method="gp", a=0, b=0, c=0)
    assert UnlearnJob(method="memgp").eval_mode and not UnlearnJob(method="finetune").eval_mode
    assert not UnlearnJob(method="memgp", model_mode="train").eval_mode


def test_balanced_batch_size():
    assert balanced_batch_size(120, 128) == 120
    assert balanced_batch_size(130, 128) == 65  # two equal batches, never a lone sample
    assert balanced_batch_size(129, 64) == 43
    assert balanced_batch_size(64, 16, world_size=2) == 16
    assert balanced_batch_size(1, 128) == 1


def test_finite_difference_memgp_follows_the_exact_run(pretrained):
    # Same seeds, SGD: per-step gradients agree to ~0.5% (tests/test_losses.py), so two epochs of the penalty
    # trajectory agree to ~1% while the penalty itself falls by far more.
    pjob, _, source, splits = pretrained
    runs = {}
    for estimator in ("exact", "finite_difference"):
        _, model, _, _ = fresh(pretrained)
        job = UnlearnJob(method="memgp", a=1, b=1, epochs=2, optimizer="sgd", lr=0.05, gp_estimator=estimator,
                         monitor=False, runtime=QUIET)
        runs[estimator] = unlearn(model, source, splits, splits["forget"], job, pretrain_job=pjob)
    exact, fd = runs["exact"][1], runs["finite_difference"][1]
    assert exact[-1]["memgp"] < 0.8 * exact[0]["memgp"]
    for e, f in zip(exact, fd, strict=True):
        assert f["memgp"] == pytest.approx(e["memgp"], rel=0.02)
        assert f["train"] == pytest.approx(e["train"], rel=0.02)


_SPIED: list = []


def _spy_memgp_step(model, data, job):
    """memgp's step, recording what each step computed (the registry names steps as "module:function")."""
    terms = STEP_METHODS["memgp"].step(model, data, job)
    _SPIED.append((data.step, {k: float(v.detach()) for k, v in terms.items()}))
    return terms


def test_lazy_penalty_runs_every_kth_step_with_k_times_the_weight(pretrained):
    from trainables.unlearning.loop import step_loop

    pjob, model, source, splits = fresh(pretrained)
    seen = _SPIED
    seen.clear()
    method = dataclasses.replace(STEP_METHODS["memgp"], step_ref=f"{__name__}:_spy_memgp_step")
    ids = {"forget": splits["forget"], "retain": splits["retain"], "nonmember_ref": splits["nonmember_ref"],
           "nonmember_eval": splits["nonmember_eval"]}
    job = UnlearnJob(method="memgp", a=1, b=0.5, epochs=2, batch_size=10, gp_every=3, monitor=False, runtime=QUIET)
    _, history = step_loop(job, model, source, method, ids, LoopContext(progress=False), augment=pjob.augment)
    steps = [s for s, _ in seen]
    assert steps == list(range(len(seen))) and len(seen) >= 6  # the run's step counter, across epochs
    for step, terms in seen:
        if step % 3 == 0:
            assert terms["loss"] == pytest.approx(terms["train"] + 3 * 0.5 * terms["memgp"], rel=1e-5)
        else:
            assert "memgp" not in terms and terms["loss"] == pytest.approx(terms["train"], rel=1e-6)
    first_epoch = [t["memgp"] for s, t in seen[: len(seen) // 2] if "memgp" in t]
    assert history[0]["memgp"] == pytest.approx(np.mean(first_epoch), rel=1e-5)  # averaged over its own steps


def test_estimator_lazy_and_sync_batchnorm_validation():
    assert UnlearnJob(method="memgp").gp_every == 1
    with pytest.raises(ValueError, match="nothing to optimise"):
        UnlearnJob(method="memgp", a=0, gp_every=4)
    with pytest.raises(ValueError, match="SyncBatchNorm has no double backward"):
        UnlearnJob(method="memgp", sync_batchnorm=True, gp_estimator="exact")
    with pytest.raises(ValueError, match="SyncBatchNorm has no double backward"):
        UnlearnJob(method="memgp", sync_batchnorm=True, model_mode="train")  # auto: exact in train mode
    UnlearnJob(method="memgp", sync_batchnorm=True)  # auto: finite_difference in eval mode
    UnlearnJob(method="memgp", sync_batchnorm=True, gp_estimator="finite_difference", model_mode="train")
    UnlearnJob(method="finetune", sync_batchnorm=True)
    with pytest.raises(ValueError):
        UnlearnJob(method="memgp", gp_estimator="guess")


def test_sync_batchnorm_is_swapped_in_for_the_run_and_back(pretrained):
    from torch import nn

    from trainables.unlearning.sync_batchnorm import synced_batchnorm

    _, model, _, _ = fresh(pretrained)
    before = [type(m) for m in model.modules()]
    weight = model.backbone[1].weight
    with synced_batchnorm(model, enabled=True, device_type="cuda") as inside:  # the swap itself; no forward
        assert isinstance(inside.backbone[1], nn.SyncBatchNorm) and inside.backbone[1].weight is weight
        assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in inside.modules())
    assert [type(m) for m in model.modules()] == before
    with pytest.raises(UserError, match="needs an accelerator"), synced_batchnorm(model, enabled=True):
        pass  # DDP refuses SyncBatchNorm on CPU
