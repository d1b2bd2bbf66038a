"""Utility of a model on held-out data: kNN and linear-probe accuracy from backbone features, and, for
classifiers, accuracy on any split (RA / UA / TA in the unlearning literature)."""

from __future__ import annotations

import numpy as np
import torch

from trainables.data.sources import ImageSource
from trainables.models.base import embed_all
from trainables.utility.knn import knn_accuracy
from trainables.utility.linear_probe import linear_probe_accuracy


def _subset(source: ImageSource, ids: np.ndarray):
    idx = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    return source.images[idx], torch.from_numpy(source.labels[idx.numpy()])


def encoder_utility(model, source: ImageSource, bank_ids, query_ids, *, k: int = 200, temperature: float = 0.1,
                    linear_probe: bool = True, device="cpu") -> dict[str, float]:
    """kNN (and linear-probe) accuracy of ``query_ids`` with ``bank_ids`` as the labelled training set."""
    bank_x, bank_y = _subset(source, bank_ids)
    query_x, query_y = _subset(source, query_ids)
    bank_f = embed_all(model, bank_x, task="features", device=device)
    query_f = embed_all(model, query_x, task="features", device=device)
    out = {"knn_acc": knn_accuracy(bank_f, bank_y, query_f, query_y, k=k, temperature=temperature)}
    if linear_probe:
        out["linear_acc"] = linear_probe_accuracy(bank_f.numpy(), bank_y.numpy(), query_f.numpy(), query_y.numpy())
    return out


def classifier_accuracy(model, source: ImageSource, ids, device="cpu") -> float:
    x, y = _subset(source, ids)
    logits = embed_all(model, x, task="head", device=device)
    return float((logits.argmax(1) == y).float().mean())


def correct_per_sample(model, source: ImageSource, splits, forget_ids, *, knn_k: int = 200,
                       knn_temperature: float = 0.1, device="cpu") -> tuple[str, np.ndarray]:
    """Per-sample 0/1 correctness on ``nonmember_eval`` (the same samples for any model of these splits), for a
    paired comparison of two models: encoders the kNN prediction against the retained members (``knn_acc``),
    classifiers the class prediction (``test_acc``). Returns (metric name, (N,) float64)."""
    from trainables.utility.knn import knn_predict

    query_ids = splits["nonmember_eval"]
    query_x, query_y = _subset(source, query_ids)
    if not getattr(model, "is_contrastive", True):
        pred = embed_all(model, query_x, task="head", device=device).argmax(1)
        return "test_acc", (pred == query_y).numpy().astype(np.float64)
    retain = np.setdiff1d(splits["member"], np.asarray(forget_ids, dtype=np.int64))
    bank_x, bank_y = _subset(source, retain)
    bank_f = embed_all(model, bank_x, task="features", device=device)
    query_f = embed_all(model, query_x, task="features", device=device)
    num_classes = int(max(bank_y.max(), query_y.max())) + 1
    pred = knn_predict(query_f, bank_f, bank_y.long(), num_classes, knn_k, knn_temperature)
    return "knn_acc", (pred.cpu() == query_y.long()).numpy().astype(np.float64)
