"""Weighted kNN classification on frozen features (Wu et al., 2018, "Unsupervised feature learning via
non-parametric instance discrimination"), the standard monitor for self-supervised encoders.

Cosine similarity to a labelled feature bank; each of the k nearest neighbours votes for its class with weight
exp(sim / temperature).

Example:
    >>> acc = knn_accuracy(bank_feats, bank_labels, query_feats, query_labels, k=200, temperature=0.1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def knn_predict(query: Tensor, bank: Tensor, bank_labels: Tensor, num_classes: int, k: int = 200,
                temperature: float = 0.1, chunk: int = 1024) -> Tensor:
    """query (Q, D), bank (N, D), bank_labels (N,) -> predicted labels (Q,)."""
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, len(bank))
    preds = []
    for i in range(0, len(query), chunk):
        q = F.normalize(query[i:i + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_accuracy(bank: Tensor, bank_labels: Tensor, query: Tensor, query_labels: Tensor, k: int = 200,
                 temperature: float = 0.1) -> float:
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    pred = knn_predict(query, bank, bank_labels.long(), num_classes, k, temperature)
    return float((pred == query_labels.long()).float().mean())
