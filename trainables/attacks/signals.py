"""Per-sample membership signals of a model: what every attack and plot in the suite reads.

For each image (B, 3, S, S) the model is queried in eval mode on
- ``n_views`` augmented views -> the n(n-1)/2 pairwise cosine similarities of its output, sorted ascending
  (EncoderMI, Liu et al., CCS 2021). An overfit encoder maps views of a *member* to nearly the same point.
- the clean image -> a probability vector ``p = softmax(model(x) / T)`` and its confidence features
  (Song & Mittal, USENIX Security 2021): top-1, top-2, top-3, entropy, modified entropy.
  Supervised models: ``model(x)`` are the class logits and T = 1. Encoders: ``model(x)`` is the encoder output the
  attacks see (backbone features by default) and the softmax runs over its D dimensions, as the paper treats the
  encoder "as a supervised model"; the modified entropy then uses the arg-max dimension as the label.
- a per-sample loss. Supervised: cross-entropy with the true label. Encoders: NT-Xent of the first two views
  (positive pair) against a fixed bank of negatives (clean outputs of non-member images, never the sample itself),
  ``-log(exp(c_ab/t) / (exp(c_ab/t) + sum_j exp(c_aj/t)))``; without a bank, ``1 - cos(view_a, view_b)``.

Example:
    >>> sig = compute_signals(model, source, ids, strength=0.2, n_views=10)
    >>> sig.view_cos.shape, sig.confidence_features().shape   # (N, 45), (N, 6)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.data.augment import BatchAugment, normalize
from trainables.data.sources import ImageSource

CONFIDENCE_FEATURES = ("top1", "top2", "top3", "entropy", "mentropy", "loss")


@dataclass
class Signals:
    """Per-sample signals, row i belongs to ``sample_ids[i]``."""

    sample_ids: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64
    view_cos: np.ndarray  # (N, n(n-1)/2) pairwise cosine similarities of the views, sorted ascending
    top3: np.ndarray  # (N, 3) the three largest probabilities, descending
    entropy: np.ndarray  # (N,)
    mentropy: np.ndarray  # (N,) modified entropy (Song & Mittal)
    loss: np.ndarray  # (N,) per-sample loss (see module docstring)
    output: np.ndarray  # (N, D) clean model output (for t-SNE)

    @property
    def cos_mean(self) -> np.ndarray:
        return self.view_cos.mean(1)

    @property
    def top1(self) -> np.ndarray:
        return self.top3[:, 0]

    def confidence_features(self) -> np.ndarray:
        """(N, 6): top-1, top-2, top-3, entropy, modified entropy, loss."""
        return np.column_stack([self.top3, self.entropy, self.mentropy, self.loss])

    def take(self, ids) -> Signals:
        """The rows of ``ids`` (every id must be present), in that order."""
        pos = {int(s): i for i, s in enumerate(self.sample_ids)}
        missing = [int(i) for i in ids if int(i) not in pos]
        if missing:
            raise KeyError(f"no signals for sample ids {missing[:5]}")
        rows = np.array([pos[int(i)] for i in ids], dtype=np.int64)
        return Signals(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def pairwise_cosines(outputs: Tensor) -> Tensor:
    """(B, n, D) outputs of n views -> (B, n(n-1)/2) cosine similarities of all pairs, sorted ascending."""
    z = F.normalize(outputs.float(), dim=-1)
    sims = z @ z.transpose(1, 2)
    i, j = torch.triu_indices(z.shape[1], z.shape[1], offset=1)
    return sims[:, i, j].sort(dim=1).values


def confidence_from_probs(probs: Tensor, label: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """probs (B, C), label (B,) -> top-3 (B, 3), entropy (B,), modified entropy (B,) (Song & Mittal, Eq. 4)."""
    eps = 1e-12
    k = min(3, probs.shape[1])
    top = probs.topk(k, dim=1).values
    top = F.pad(top, (0, 3 - k))
    entropy = -(probs * (probs + eps).log()).sum(1)
    p_y = probs.gather(1, label.view(-1, 1)).squeeze(1)
    others = -(probs * (1 - probs + eps).log()).sum(1) + p_y * (1 - p_y + eps).log()
    mentropy = -(1 - p_y) * (p_y + eps).log() + others
    return top, entropy, mentropy


@torch.no_grad()
def compute_signals(model, source: ImageSource, ids, *, strength: float, hflip: float = 0.5, n_views: int = 10,
                    softmax_temperature: float = 1.0, loss_temperature: float = 0.1,
                    negatives: Tensor | None = None, negative_ids=None, batch_size: int = 256,
                    device: torch.device | str = "cpu", seed: int = 0, task: str = "embed",
                    center: bool = False) -> Signals:
    """Query ``model`` (eval mode, restored after) on the images ``ids`` of ``source``.

    ``negatives``: uint8 images (M, 3, S, S) of the encoder loss bank, ``negative_ids`` their sample ids (a sample
    is never its own negative). The view randomness is seeded by ``seed``: same call, same numbers.
    ``task``: which output is queried (``embed``: what the model exposes to attacks; ``features``; ``head``).
    ``center``: subtract the mean clean output of the negative bank from every output first (post-ReLU
    features all point into one orthant, so their raw cosines sit near 1 for every image).
    """
    offset = 0.0

    def query(x: Tensor) -> Tensor:
        return model(x, task=task).float() - offset
    ids = np.asarray(ids, dtype=np.int64)
    supervised = not getattr(model, "is_contrastive", True)
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    augment = BatchAugment(strength, hflip, source.images.shape[-1])
    bank = bank_ids = None
    if negatives is not None and len(negatives) and not supervised:
        bank = _run(query, normalize(negatives), batch_size, device)
        if center:
            offset = bank.mean(0, keepdim=True)
            bank = bank - offset
        bank = F.normalize(bank, dim=1)
        bank_ids = torch.as_tensor(np.asarray(negative_ids, dtype=np.int64))
    out: dict[str, list[Tensor]] = {k: [] for k in ("view_cos", "top3", "entropy", "mentropy", "loss", "output")}
    try:
        for start in range(0, len(ids), batch_size):
            batch_ids = torch.from_numpy(ids[start:start + batch_size])
            images = source.images[batch_ids].to(device)
            labels = torch.from_numpy(source.labels[batch_ids.numpy()]).to(device)
            clean = query(normalize(images))
            views = torch.stack([query(augment(images, generator=gen)) for _ in range(n_views)], 1)
            out["view_cos"].append(pairwise_cosines(views).cpu())
            if supervised:
                probs = clean.softmax(1)
                label = labels.clamp(max=probs.shape[1] - 1)
                loss = F.cross_entropy(clean, label, reduction="none")
            else:
                probs = (clean / softmax_temperature).softmax(1)
                label = probs.argmax(1)
                loss = _encoder_loss(views[:, 0], views[:, 1], bank, bank_ids, batch_ids, loss_temperature)
            top3, entropy, mentropy = confidence_from_probs(probs, label)
            for key, value in (("top3", top3), ("entropy", entropy), ("mentropy", mentropy), ("loss", loss),
                               ("output", clean)):
                out[key].append(value.cpu())
    finally:
        model.train(was_training)
    cat = {k: (torch.cat(v).numpy() if v else np.zeros((0,))) for k, v in out.items()}
    return Signals(sample_ids=ids, labels=source.labels[ids].astype(np.int64), **cat)


def _run(query, x: Tensor, batch_size: int, device) -> Tensor:
    return torch.cat([query(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)])


def _encoder_loss(view_a: Tensor, view_b: Tensor, bank: Tensor | None, bank_ids: Tensor | None,
                  batch_ids: Tensor, temperature: float) -> Tensor:
    a, b = F.normalize(view_a, dim=1), F.normalize(view_b, dim=1)
    positive = (a * b).sum(1)
    if bank is None:
        return 1 - positive
    negatives = a @ bank.T  # (B, M)
    self_in_bank = batch_ids.view(-1, 1).to(bank_ids.device) == bank_ids.view(1, -1)
    negatives = negatives.masked_fill(self_in_bank.to(negatives.device), float("-inf"))
    logits = torch.cat([positive.view(-1, 1), negatives], 1) / temperature
    return -logits.log_softmax(1)[:, 0]
