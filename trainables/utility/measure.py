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
