"""Augmentations: the strength knob means what it says, both backends produce the same kind of views."""

from __future__ import annotations

import torch

from trainables.config import AugmentConfig
from trainables.data.augment import BatchAugment, ViewMaker, normalize, recipe


def _images(n=16, size=16):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def test_strength_zero_without_flip_is_the_identity():
    x = _images()
    out = BatchAugment(strength=0.0, hflip=0.0)(x)
    assert torch.allclose(out, normalize(x), atol=1e-5)


def test_flip_only_mirrors():
    x = _images()
    out = BatchAugment(strength=0.0, hflip=1.0)(x)
    assert torch.allclose(out, normalize(x).flip(-1), atol=1e-5)


def test_recipe_interpolates_to_the_simclr_cifar_values():
    assert recipe(1.0) == {"min_scale": 0.08, "jitter": 0.4, "hue": 0.1, "jitter_prob": 0.8, "grayscale": 0.2}
    assert recipe(0.0)["min_scale"] == 1.0 and recipe(0.0)["jitter"] == 0.0


def test_views_differ_per_sample_and_stronger_means_further_from_the_original():
    x = _images(64)
    clean = normalize(x)
    dist = {}
    for s in (0.1, 1.0):
        a, b = ViewMaker(AugmentConfig(strength=s, hflip=0.0), 16)(x, "cpu", 2)
        assert a.shape == (64, 3, 16, 16) and not torch.allclose(a, b)
        dist[s] = (a - clean).abs().mean().item()
    assert dist[1.0] > 1.5 * dist[0.1]


def test_per_image_backend_uses_lightly_and_matches_shapes():
    maker = ViewMaker(AugmentConfig(strength=0.5, backend="per_image"), 16)
    transform = maker.dataset_transform(2)
    views = transform(_images(1)[0])
    assert len(views) == 2 and views[0].shape == (3, 16, 16) and views[0].dtype == torch.float32
    assert -1.01 <= views[0].min() and views[0].max() <= 1.01
    batch = [torch.stack([v[i] for v in [views, views]]) for i in range(2)]
    out = maker(batch, "cpu", 2)
    assert out[0].shape == (2, 3, 16, 16)
