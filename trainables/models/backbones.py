"""Backbones: ResNet-18 with the CIFAR stem (torchvision) and a small CNN for CPU runs.

Both map (B, 3, S, S) images to (B, D) features. Plain BatchNorm or GroupNorm only: SyncBatchNorm has no double
backward, and the gradient penalty needs one.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(min(8, channels), channels)


def small_cnn(width: int = 32, norm: str = "batch") -> tuple[nn.Module, int]:
    """Four 3x3 conv stages (width, 2w, 4w, 8w; stride 2 from the second), global average pool. D = 8 * width."""
    layers: list[nn.Module] = []
    c_in = 3
    for i, c_out in enumerate([width, 2 * width, 4 * width, 8 * width]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                   _norm(norm, c_out), nn.ReLU(inplace=True)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


def resnet18_cifar(norm: str = "batch") -> tuple[nn.Module, int]:
    """torchvision ResNet-18 with the CIFAR stem: 3x3 stride-1 first conv, no max-pool, no fc. D = 512."""
    from torchvision.models import resnet18

    norm_layer = nn.BatchNorm2d if norm == "batch" else (lambda c: nn.GroupNorm(min(32, c), c))
    net = resnet18(weights=None, norm_layer=norm_layer)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net, 512


def build_backbone(name: str, width: int = 32, norm: str = "batch") -> tuple[nn.Module, int]:
    if name == "small_cnn":
        return small_cnn(width, norm)
    if name == "resnet18":
        return resnet18_cifar(norm)
    raise ValueError(f"unknown backbone {name!r}")


@torch.no_grad()
def feature_dim(backbone: nn.Module, image_size: int = 32) -> int:
    was = backbone.training
    backbone.eval()
    d = backbone(torch.zeros(2, 3, image_size, image_size)).shape[1]
    backbone.train(was)
    return d
