"""SalUn and SCRUB: their defining mechanics, with numbers (tiny digits classifier), the per-run state taken from
the parent and kept across a resume, and both methods from the CLI."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orchestrator.cli import main
from orchestrator.run.jobs import run_pretrain
from tests.conftest import tiny_job
from trainables.checkpoint import verify_checkpoint
from trainables.data.augment import ViewMaker, normalize
from trainables.errors import UserError
from trainables.jobs.unlearn import prepare_unlearning
from trainables.loops.context import LoopContext
from trainables.models.base import embed_all
from trainables.unlearning import UnlearnJob, salun, scrub, unlearn
from trainables.unlearning.prepared import PrepareData
from trainables.unlearning.step_data import StepData
from trainables.utility.measure import classifier_accuracy

QUIET = {"progress": False}


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A tiny classifier that fits its members (forget accuracy 1.0, test ~0.87 measured), saved as a checkpoint."""
    pjob = tiny_job("supervised", optim={"epochs": 25, "lr": 5e-3}, augment={"strength": 0.0})
    path = tmp_path_factory.mktemp("clf") / "base"
    run_pretrain(pjob, path)
    run = prepare_unlearning(UnlearnJob(method="salun"), path)
    return {"path": path, "pjob": run.pretrain_job, "model": run.checkpoint.model, "source": run.source,
            "splits": run.checkpoint.splits, "ids": run.plan.split_ids(run.checkpoint.splits)}


def prepare_data(parent, batch_size: int = 16) -> PrepareData:
    return PrepareData(parent["source"], parent["ids"], torch.device("cpu"), batch_size)


def test_saliency_mask_is_exactly_the_top_fraction_of_weights_by_forget_gradient(parent):
    model = copy.deepcopy(parent["model"])
    grads = salun.forget_gradients(model, prepare_data(parent, batch_size=16))  # 40 forget samples: 3 batches
    # The batched sum equals the gradient of the mean forget cross-entropy in one batch (eval mode).
    forget = torch.from_numpy(parent["ids"]["forget"])
    model.eval()
    x = normalize(parent["source"].images[forget])
    y = torch.from_numpy(parent["source"].labels[forget.numpy()]).long()
    names = list(grads)
    params = dict(model.named_parameters())
    full = torch.autograd.grad(F.cross_entropy(model(x, task="head"), y), [params[n] for n in names])
    for name, g in zip(names, full, strict=True):
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-7)
    assert set(names) == {n for n, p in model.named_parameters() if p.requires_grad}

    flat = torch.cat([g.abs().flatten() for g in grads.values()]).numpy()
    order = np.argsort(-flat, kind="stable")  # brute force: a full sort, largest first
    for fraction in (0.05, 0.3, 0.5, 1.0):
        masks = salun.saliency_mask(grads, fraction)
        k = int(round(fraction * flat.size))
        expected = np.zeros(flat.size, dtype=bool)
        expected[order[:k]] = True
        if k < flat.size:
            assert flat[order[k - 1]] > flat[order[k]]  # no tie at the threshold: the top-k set is unique
        got = torch.cat([m.flatten() for m in masks.values()]).numpy()
        assert got.sum() == k
        np.testing.assert_array_equal(got, expected)
        assert all(masks[n].shape == grads[n].shape for n in names)


def run_with_states(parent, job, model=None, resume=None):
    """unlearn(), recording the train state (with the prepared state) and the weights after every epoch."""
    model = model if model is not None else copy.deepcopy(parent["model"])
    saved = []

    def on_epoch_end(epoch, metrics, train_state_fn):
        saved.append({"state": copy.deepcopy(train_state_fn()), "weights": copy.deepcopy(model.state_dict())})

    ctx = LoopContext(progress=False, on_epoch_end=on_epoch_end, resume=resume)
    out, history = unlearn(model, parent["source"], parent["splits"], parent["ids"]["forget"], job, ctx,
                           pretrain_job=parent["pjob"], retain_ids=parent["ids"]["retain"])
    return out, history, saved


def test_salun_moves_only_the_masked_weights_and_forgets(parent):
    # AdamW's weight decay moves every weight it holds, masked or not: only the restore keeps the rest in place.
    job = UnlearnJob(method="salun", salun_fraction=0.3, epochs=2, lr=3e-3, optimizer="adamw", weight_decay=0.1,
                     batch_size=16, runtime=QUIET)
    model, history, saved = run_with_states(parent, job)
    masks = {k.removeprefix("mask."): v for k, v in saved[-1]["state"]["prepared"].items()}
    expected = salun.saliency_mask(salun.forget_gradients(copy.deepcopy(parent["model"]), prepare_data(parent)),
                                   0.3)
    assert masks.keys() == expected.keys()
    assert all(torch.equal(masks[n], expected[n]) for n in masks)  # the parent's mask
    before = parent["model"].state_dict()
    moved = kept = total_masked = 0
    for name, p in model.named_parameters():
        changed = p.detach() != before[name]
        assert not torch.any(changed & ~masks[name]), f"{name}: a weight outside the mask moved"
        moved += int((changed & masks[name]).sum())
        total_masked += int(masks[name].sum())
        kept += int((~masks[name]).sum())
    assert moved > 0.9 * total_masked and kept > 0
    assert classifier_accuracy(parent["model"], parent["source"], parent["ids"]["forget"]) == 1.0
    assert history[-1]["forget_acc"] < 0.9


def kl_on(student, teacher, source, ids, temperature) -> float:
    """Eval-mode KL_T(teacher || student) over a split, clean images."""
    images = source.images[torch.from_numpy(ids)]
    s, t = embed_all(student, images, task="head"), embed_all(teacher.module, images, task="head")
    return float(scrub.distill_kl(s, t, temperature))


def scrub_steps(student, teacher, parent, split, job, n_steps, lr):
    ids = parent["ids"][split]
    views = ViewMaker(parent["pjob"].augment, parent["source"].images.shape[-1])
    optimizer = torch.optim.SGD(student.parameters(), lr=lr)
    student.train()
    for i in range(n_steps):
        batch = torch.from_numpy(ids[16 * i:16 * (i + 1)])
        data = StepData(parent["source"].images[batch], torch.from_numpy(parent["source"].labels[batch.numpy()]),
                        batch, torch.device("cpu"), views, {}, split=split, state=teacher)
        terms = scrub.scrub_step(student, data, job)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()


def test_scrub_max_steps_raise_the_kl_on_forget_and_min_steps_lower_it_on_retain(parent):
    job = UnlearnJob(method="scrub", runtime=QUIET)
    teacher = scrub.prepare(copy.deepcopy(parent["model"]), prepare_data(parent), job, None)
    student = copy.deepcopy(parent["model"])
    source, ids, t = parent["source"], parent["ids"], job.scrub_temperature
    assert kl_on(student, teacher, source, ids["forget"], t) == 0.0  # the student starts as the teacher
    forget_kl = [0.0]
    for _ in range(2):
        scrub_steps(student, teacher, parent, "forget", job, n_steps=2, lr=0.05)
        forget_kl.append(kl_on(student, teacher, source, ids["forget"], t))
    assert forget_kl[1] > 0.01 and forget_kl[2] > forget_kl[1]
    retain_before = kl_on(student, teacher, source, ids["retain"], t)
    scrub_steps(student, teacher, parent, "retain", job, n_steps=8, lr=0.05)
    retain_after = kl_on(student, teacher, source, ids["retain"], t)
    assert retain_before > 0.01 and retain_after < 0.5 * retain_before
    assert torch.equal(teacher.module.state_dict()["classifier.weight"],
                       parent["model"].state_dict()["classifier.weight"])  # the teacher never moves


def test_scrub_walks_forget_then_retain_in_its_first_msteps_epochs(parent):
    job = UnlearnJob(method="scrub", epochs=3, scrub_msteps=2, batch_size=16, monitor=False, runtime=QUIET)
    _, history, _ = run_with_states(parent, job)
    assert ["forget_kl" in h for h in history] == [True, True, False]
    assert all({"retain_kl", "retain_ce"} <= set(h) for h in history)


@pytest.mark.parametrize("method", ["salun", "scrub"])
def test_a_resumed_run_keeps_the_parents_state_and_the_uninterrupted_result(parent, method):
    job = UnlearnJob(method=method, epochs=2, scrub_msteps=1, lr=3e-3, batch_size=16, monitor=False, runtime=QUIET)
    full, full_history, saved = run_with_states(parent, job)
    resumed_model = copy.deepcopy(parent["model"])
    resumed_model.load_state_dict(saved[0]["weights"])
    resumed, history, resaved = run_with_states(parent, job, model=resumed_model, resume=saved[0]["state"])
    assert [h["epoch"] for h in history] == [1, 2]
    first, again = saved[-1]["state"]["prepared"], resaved[-1]["state"]["prepared"]
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    for key, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    # What a prepare on the resumed weights would give differs, so the test tells the two apart.
    at_resume = copy.deepcopy(parent["model"])
    at_resume.load_state_dict(saved[0]["weights"])
    hook = salun.prepare if method == "salun" else scrub.prepare
    recomputed = hook(at_resume, prepare_data(parent), job, None).tensors()
    assert any(not torch.equal(recomputed[k], first[k]) for k in first)
    if method == "scrub":
        parent_state = parent["model"].state_dict()
        assert all(torch.equal(first["teacher." + k], v) for k, v in parent_state.items())
    with pytest.raises(UserError, match="holds no prepared state"):
        stale = {k: v for k, v in saved[0]["state"].items() if k != "prepared"}
        run_with_states(parent, job, model=at_resume, resume=stale)


def test_salun_and_scrub_keys_are_validated():
    with pytest.raises(ValueError, match="salun_fraction"):
        UnlearnJob(method="salun", salun_fraction=0)
    with pytest.raises(ValueError, match="salun_fraction"):
        UnlearnJob(method="salun", salun_fraction=1.5)
    with pytest.raises(ValueError, match="scrub_alpha and scrub_gamma are both 0"):
        UnlearnJob(method="scrub", scrub_alpha=0, scrub_gamma=0)
    with pytest.raises(ValueError, match="scrub_temperature"):
        UnlearnJob(method="scrub", scrub_temperature=0)


@pytest.mark.parametrize("method", ["salun", "scrub"])
def test_forget_cli_runs_salun_and_scrub_and_forget_accuracy_falls(parent, tmp_path, capsys, method):
    out = tmp_path / method
    code = main(["forget", "--checkpoint", str(parent["path"]), "--out", str(out), "--method", method,
                 "--epochs", "3", "--set", "runtime.progress=false", "--set", "lr=0.003", "--set", "batch_size=16"])
    assert code == 0, capsys.readouterr().err
    meta = verify_checkpoint(out)
    assert meta["unlearning"]["method"] == method
    before = classifier_accuracy(parent["model"], parent["source"], parent["ids"]["forget"])
    assert before == 1.0 and meta["history"][-1]["forget_acc"] < before


def test_a_run_with_no_method_named_gets_its_model_kinds_default(parent, tmp_path, monkeypatch, capsys):
    """The default method is per model kind; a method named anywhere (a flag, a config file, --set) is kept."""
    from orchestrator.ledger.executors import RayExecutor
    from orchestrator.ledger.scheduler import with_kind_default
    from orchestrator.ledger.verification import VerifyConfig
    from trainables.unlearning import registry
    from trainables.unlearning.config import with_default_method

    # a default that differs from memgp and from every key's own default, so that the test tells them apart
    monkeypatch.setitem(registry.KIND_DEFAULTS, "classifier", {"method": "scrub", "scrub_msteps": 1, "lr": 0.002})
    assert prepare_unlearning(UnlearnJob(epochs=2), parent["path"]).job.method == "scrub"
    assert prepare_unlearning(UnlearnJob(method="memgp"), parent["path"]).job.method == "memgp"
    encoder = with_default_method(UnlearnJob(epochs=2, lr=0.01), "encoder")
    assert (encoder.method, encoder.b, encoder.epochs) == (registry.KIND_DEFAULTS["encoder"]["method"],
                                                          registry.KIND_DEFAULTS["encoder"]["b"], 2)
    kept = with_default_method(UnlearnJob(epochs=2, lr=0.01), "classifier")  # the user's keys win
    assert (kept.method, kept.scrub_msteps, kept.epochs, kept.lr) == ("scrub", 1, 2, 0.01)
    assert "method" in kept.model_fields_set  # resolved once
    assert with_default_method(UnlearnJob(), "classifier").lr == 0.002
    with pytest.raises(UserError, match="classifier default method scrub: .*both 0"):
        with_default_method(UnlearnJob(scrub_alpha=0, scrub_gamma=0), "classifier")

    out = tmp_path / "default"
    argv = ["forget", "--checkpoint", str(parent["path"]), "--out", str(out), "--epochs", "1",
            "--set", "runtime.progress=false", "--set", "batch_size=16", "--results", str(tmp_path / "store")]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    assert verify_checkpoint(out)["unlearning"]["method"] == "scrub"
    # its results row lost: the same command recognises the finished run (resolved the same way) and only
    # writes the row again
    import shutil

    shutil.rmtree(tmp_path / "store")
    capsys.readouterr()
    assert main(argv) == 0
    assert "already holds this job's verified checkpoint" in capsys.readouterr().out

    # The scheduler freezes the method into the batch config from the parent it unlearns.
    unnamed = RayExecutor().resolve_config(None, ["epochs=2", "lr=0.01"], VerifyConfig())
    named = RayExecutor().resolve_config(None, ["method=memgp"], VerifyConfig())
    assert "method" not in unnamed["job"] and named["job"]["method"] == "memgp"
    frozen = with_kind_default(unnamed, {"uri": str(parent["path"])})["job"]
    assert (frozen["method"], frozen["scrub_msteps"], frozen["epochs"], frozen["lr"]) == ("scrub", 1, 2, 0.01)
    assert with_kind_default(named, {"uri": str(parent["path"])}) == named


@pytest.mark.parametrize("family", ["byol", "simclr"])
def test_an_encoder_family_with_a_default_of_its_own_gets_it_and_the_others_the_encoder_default(family, tmp_path):
    """FAMILY_DEFAULTS wins over KIND_DEFAULTS for checkpoints pretrained with that method (a random tiny model, no
    training: only its meta decides the default); the user's keys still win over either."""
    from tests.ledger_fakes import make_base_checkpoint
    from trainables.unlearning import registry

    path = make_base_checkpoint(tmp_path / family, seed=3, method=family)
    expected = registry.FAMILY_DEFAULTS.get(family, registry.KIND_DEFAULTS["encoder"])
    resolved = prepare_unlearning(UnlearnJob(epochs=2), path).job
    assert resolved.method == expected["method"] and resolved.lr == expected["lr"] and resolved.epochs == 2
    assert registry.default_key({"method": family}) == (family if family in registry.FAMILY_DEFAULTS else "encoder")
    assert registry.default_key({"method": "supervised"}) == "classifier"
