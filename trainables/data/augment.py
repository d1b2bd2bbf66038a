"""Augmentations with one strength knob, in two backends that follow the same recipe.

``strength=1`` is the SimCLR CIFAR-10 recipe (random resized crop from 8% of the area, colour jitter 0.4/0.4/0.4/0.1
with p=0.8, grayscale p=0.2, horizontal flip). Lower strength shrinks every term linearly towards "flip only":
the paper's membership inference needs an overfit encoder, and weak augmentation is how it gets one
(the ``overfit`` preset).

- ``per_image``: lightly's ``SimCLRViewTransform`` on PIL images inside the DataLoader (the reference recipe).
- ``batched``: :class:`BatchAugment`, the same ops as batched tensor maths with per-sample random parameters,
  run on the training device (GPU or CPU) after collation; much faster than per-image PIL work.

Example:
    >>> views = ViewMaker(AugmentConfig(strength=0.2), image_size=32)
    >>> a, b = views(uint8_batch, device="cpu", n_views=2)   # two (B, 3, 32, 32) float views
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
_GRAY = torch.tensor([0.299, 0.587, 0.114])


def normalize(images: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) -> float in [-1, 1], the input every model sees (no augmentation)."""
    x = images.float().div_(255.0)
    return (x - 0.5) / 0.5


def recipe(strength: float) -> dict[str, float]:
    """The augmentation parameters a strength in [0, 1] stands for."""
    return {
        "min_scale": round(1.0 - 0.92 * strength, 6),
        "jitter": 0.4 * strength,  # brightness = contrast = saturation
        "hue": 0.1 * strength,
        "jitter_prob": 0.8 if strength > 0 else 0.0,
        "grayscale": 0.2 * strength,
    }


class BatchAugment(torch.nn.Module):
    """Random resized crop, flip, colour jitter and grayscale on a whole batch, parameters drawn per sample.

    Input uint8 or float-in-[0, 1] images (B, 3, H, W); output normalised float (B, 3, size, size).
    """

    def __init__(self, strength: float, hflip: float = 0.5, size: int | None = None):
        super().__init__()
        self.p = recipe(strength)
        self.hflip = hflip
        self.size = size

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        b, dev = x.shape[0], x.device
        u = lambda *shape: torch.rand(*shape, device=dev, generator=generator)  # noqa: E731
        size = self.size or x.shape[-1]
        # Random resized crop + flip as one affine warp per sample.
        area = self.p["min_scale"] + (1 - self.p["min_scale"]) * u(b)
        # Aspect ratio in [3/4, 4/3], narrowed to what fits inside the image at this area (as torchvision's
        # rejection sampling ends up doing): area 1 means the whole image.
        max_log = torch.minimum(torch.full_like(area, math.log(4 / 3)), -torch.log(area))
        log_ratio = (u(b) * 2 - 1) * max_log
        w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
        h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
        cx, cy = (u(b) * 2 - 1) * (1 - w), (u(b) * 2 - 1) * (1 - h)
        flip = torch.where(u(b) < self.hflip, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
        grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        x = self._color(x, u)
        return (x - 0.5) / 0.5

    def _color(self, x: Tensor, u) -> Tensor:
        b = x.shape[0]
        gray_w = _GRAY.to(x.device).view(1, 3, 1, 1)
        j, hue = self.p["jitter"], self.p["hue"]
        if j > 0 or hue > 0:
            on = (u(b) < self.p["jitter_prob"]).float().view(b, 1, 1, 1)
            fac = lambda: 1 + (u(b) * 2 - 1).view(b, 1, 1, 1) * j * on  # noqa: E731  identity when off
            x = (x * fac()).clamp(0, 1)  # brightness
            mean = (x * gray_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
            x = ((x - mean) * fac() + mean).clamp(0, 1)  # contrast
            gray = (x * gray_w).sum(1, keepdim=True)
            x = ((x - gray) * fac() + gray).clamp(0, 1)  # saturation
            if hue > 0:  # rotate the chroma plane of YIQ
                angle = (u(b) * 2 - 1) * hue * 2 * math.pi * on.view(b)
                x = _rotate_hue(x, angle)
        if self.p["grayscale"] > 0:
            g = (u(b) < self.p["grayscale"]).float().view(b, 1, 1, 1)
            gray = (x * gray_w).sum(1, keepdim=True).expand_as(x)
            x = g * gray + (1 - g) * x
        return x


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    c, s = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)


def lightly_view_transform(strength: float, hflip: float, image_size: int):
    """The per-image reference: lightly's SimCLR view transform at the same strength (PIL in, tensor out)."""
    from lightly.transforms import SimCLRViewTransform

    p = recipe(strength)
    return SimCLRViewTransform(
        input_size=image_size, cj_prob=p["jitter_prob"], cj_strength=1.0, cj_bright=p["jitter"],
        cj_contrast=p["jitter"], cj_sat=p["jitter"], cj_hue=p["hue"], min_scale=p["min_scale"],
        random_gray_scale=p["grayscale"], gaussian_blur=0.0, hf_prob=hflip,
        normalize={"mean": list(MEAN), "std": list(STD)},
    )


class ViewMaker:
    """Turns a batch of images into ``n_views`` augmented views on the training device, for either backend.

    With ``backend='per_image'`` the DataLoader's dataset must apply :meth:`dataset_transform` and the batch
    arrives as a list of views; with ``batched`` it arrives as uint8 images.
    """

    def __init__(self, cfg, image_size: int):
        self.backend = cfg.backend
        self.image_size = image_size
        self.strength, self.hflip = cfg.strength, cfg.hflip
        self.batch_augment = BatchAugment(cfg.strength, cfg.hflip, image_size)

    def dataset_transform(self, n_views: int):
        if self.backend != "per_image":
            return None
        from PIL import Image

        view = lightly_view_transform(self.strength, self.hflip, self.image_size)

        def transform(image_uint8: Tensor) -> list[Tensor]:
            pil = Image.fromarray(image_uint8.permute(1, 2, 0).numpy())
            return [view(pil) for _ in range(n_views)]

        return transform

    def __call__(self, batch, device, n_views: int = 2, non_blocking: bool = False) -> list[Tensor]:
        if self.backend == "per_image":
            return [v.to(device, non_blocking=non_blocking) for v in batch[:n_views]]
        images = batch.to(device, non_blocking=non_blocking)
        return [self.batch_augment(images) for _ in range(n_views)]
