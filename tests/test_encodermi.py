"""EncoderMI and the other attacks on real (tiny) encoders: a memorising encoder is detected, an untrained one is not."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tests.conftest import tiny_job
from trainables.attacks.signals import compute_signals, pairwise_cosines
from trainables.audit.forgetting import evaluate_forgetting
from trainables.data.augment import normalize
from trainables.jobs.common import new_model
from trainables.jobs.pretrain import pretrain_task
from trainables.loops.context import LoopContext

# Memorisation recipe at unit-test size: 100 members, weak augmentation, many epochs, a width-8 CNN at 16 px.
MEMORISE = dict(data={"num_members": 100, "num_nonmembers": 400, "forget_fraction": 0.5},
                optim={"epochs": 150, "lr": 3e-3, "batch_size": 32}, augment={"strength": 0.1},
                eval={"knn_every": 0})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions: one thread is fastest, and two threads on a busy 2-core machine are much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def memorising_encoder(one_thread):
    job = tiny_job("simclr", **MEMORISE)
    t0 = time.perf_counter()
    model, history, spec, source, splits = pretrain_task(job, LoopContext(progress=False, log=lambda m: None))
    return {"job": job, "model": model, "history": history, "spec": spec, "source": source, "splits": splits,
            "train_s": time.perf_counter() - t0}


def test_memorising_encoder_is_detected_by_encodermi(memorising_encoder):
    e = memorising_encoder
    m = evaluate_forgetting(e["model"], e["source"], e["splits"], e["splits"]["forget"],
                            model_config=e["job"].model_dump(mode="json"), config={"bootstrap": 500})
    # measured ~0.74 AUC (50 forget vs 50 non-members); the lower bound of the 95% interval is clear of 0.5
    assert m["encodermi_threshold_auc"] > 0.62 and m["encodermi_threshold_auc_lo"] > 0.5, m
    assert m["encodermi_vector_auc"] > 0.6, m
    assert m["mia_auc"] == m["encodermi_vector_auc"]  # the first configured attack is the primary one
    assert m["forget_cos_mean"] > m["nonmember_cos_mean"]  # members' views agree more
    assert m["n_score"] == 50 and m["n_fit"] == 50


def test_untrained_encoder_is_not_detected(digits_source):
    job = tiny_job("simclr", **MEMORISE)
    from trainables.data import make_splits

    splits = make_splits(digits_source, job.data)
    model, _ = new_model(job, digits_source, len(splits["member"]))
    m = evaluate_forgetting(model, digits_source, splits, splits["forget"], model_config=job.model_dump(mode="json"),
                            config={"bootstrap": 500, "attacks": ["encodermi_threshold", "confidence"]})
    assert m["encodermi_threshold_auc_lo"] < 0.5 < m["encodermi_threshold_auc_hi"], m
    assert m["confidence_auc_lo"] < 0.5 < m["confidence_auc_hi"], m


def test_reference_gives_gap_to_retrain(memorising_encoder):
    e = memorising_encoder
    cfg = {"bootstrap": 0, "n_views": 4, "attacks": ["encodermi_threshold"]}
    kw = dict(model_config=e["job"].model_dump(mode="json"), config=cfg)
    reference = evaluate_forgetting(e["model"], e["source"], e["splits"], e["splits"]["forget"], **kw)
    # a model compared with itself: zero gap; with a metrics dict or with the model object alike
    m = evaluate_forgetting(e["model"], e["source"], e["splits"], e["splits"]["forget"], reference=reference, **kw)
    assert m["mia_gap_to_retrain"] == pytest.approx(0.0) and m["leakage_vs_retrain"] == pytest.approx(0.0)
    m2 = evaluate_forgetting(e["model"], e["source"], e["splits"], e["splits"]["forget"], reference=e["model"], **kw)
    assert m2["mia_accuracy"] == pytest.approx(m["mia_accuracy"]) and m2["mia_gap_to_retrain"] == pytest.approx(0)
    assert "mia_accuracy_lo" not in m  # no bootstrap, no interval keys


def test_signals_are_deterministic_and_shaped(memorising_encoder):
    e = memorising_encoder
    ids = e["splits"]["forget"][:10]
    kw = dict(strength=0.1, n_views=5, negatives=e["source"].images[:8], negative_ids=np.arange(8), seed=3)
    e["model"].train()
    a = compute_signals(e["model"], e["source"], ids, **kw)
    assert e["model"].training  # the mode is restored after the eval-mode queries
    b = compute_signals(e["model"], e["source"], ids, **kw)
    assert a.view_cos.shape == (10, 10) and a.confidence_features().shape == (10, 6)
    np.testing.assert_allclose(a.view_cos, b.view_cos)
    assert (np.diff(a.view_cos, axis=1) >= 0).all()  # sorted ascending
    assert (a.top3.sum(1) <= 1 + 1e-6).all() and (np.diff(a.top3, axis=1) <= 0).all()
    assert np.array_equal(a.take(ids[::-1]).sample_ids, ids[::-1])


def test_pairwise_cosines_by_hand():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # one sample, three views
    got = pairwise_cosines(x)[0].tolist()
    assert got == pytest.approx(sorted([0.0, 2 ** -0.5, 2 ** -0.5]))


def test_supervised_classifier_gets_ra_ua_ta_and_cross_entropy_loss(digits_source):
    job = tiny_job("supervised", optim={"epochs": 5}, eval={"knn_every": 0})
    model, _, _, source, splits = pretrain_task(job, LoopContext(progress=False, log=lambda m: None))
    m = evaluate_forgetting(model, source, splits, splits["forget"], model_config=job.model_dump(mode="json"),
                            config={"bootstrap": 0, "n_views": 3}, utility=True)
    assert {"retain_acc", "forget_acc", "test_acc"} <= set(m) and "knn_acc" not in m
    assert 0.3 < m["test_acc"] <= 1.0  # 5 epochs on digits: far above 10% chance
    ids = splits["forget"][:8]
    sig = compute_signals(model, source, ids, strength=0.3, n_views=3)
    with torch.no_grad():
        logits = model.eval()(normalize(source.images[torch.from_numpy(ids)]), task="head")
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(source.labels[ids]), reduction="none")
    np.testing.assert_allclose(sig.loss, expected.numpy(), rtol=1e-4, atol=1e-5)
