"""A registry of image data sets, each served as uint8 images with a stable integer ``sample_id``.

Sample ids are positions in a fixed order: a source's ``train`` pool first, then its ``test`` pool. They never
depend on a seed, so a deletion request naming sample 1234 means the same image in every run.

Specs: ``digits`` (scikit-learn's bundled handwritten digits, no network), ``cifar10``, ``cifar100``, ``svhn``
(torchvision, under ``data_dir``), ``npz:PATH`` (``x_train, y_train, x_test, y_test`` uint8 NHWC) and
``imagefolder:PATH`` (torchvision ``ImageFolder``; one pool) and ``manifest:FILE`` (Parquet or CSV with ``key, path,
label`` and an optional ``pool``; see trainables/data/manifest.py). The last two are file-backed: ``images`` is a
:class:`~trainables.data.lazy.LazyImages` that decodes only the samples a job indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from trainables.errors import UserError

if TYPE_CHECKING:
    from trainables.data.lazy import LazyImages

TRAIN, TEST = 0, 1


@dataclass
class ImageSource:
    """All images of a data set as uint8 NCHW at ``image_size`` (in memory, or read lazily from files), with
    labels, ids and pools."""

    name: str
    images: torch.Tensor | LazyImages  # (N, 3, S, S) uint8; index it by sample ids, never read it whole
    labels: np.ndarray  # (N,) int64
    pool: np.ndarray  # (N,) int8: TRAIN (candidate members) or TEST (candidate non-members)
    class_names: list[str] = field(default_factory=list)
    # A record's stable name, what users speak (see trainables/data/keys.py); None: "<pool>/<index in pool>".
    record_keys: np.ndarray | None = None  # (N,) object (str)
    # File-backed sources: where each image lives (local path or URI), so readers can stream; None: in memory only.
    paths: list[str] | None = None

    @property
    def keys(self) -> np.ndarray:
        """(N,) str keys by sample id: stable across runs, and across adding or removing other records."""
        from trainables.data.keys import builtin_keys

        if self.record_keys is None:  # derived once: callers index it per sample
            self.record_keys = builtin_keys(self.pool)
        return self.record_keys

    @property
    def sample_ids(self) -> np.ndarray:
        return np.arange(len(self.labels), dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def single_pool(self) -> bool:
        return bool((self.pool == TRAIN).all())

    def __len__(self) -> int:
        return len(self.labels)


def _to_tensor(images_nhwc: np.ndarray, image_size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc))
    if x.ndim == 3:  # grayscale
        x = x.unsqueeze(-1)
    x = x.permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x.float(), size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


def _from_pools(name, train_x, train_y, test_x, test_y, image_size, class_names=()) -> ImageSource:
    images = torch.cat([_to_tensor(train_x, image_size), _to_tensor(test_x, image_size)]) if len(test_x) else \
        _to_tensor(train_x, image_size)
    labels = np.concatenate([np.asarray(train_y), np.asarray(test_y)]).astype(np.int64)
    pool = np.concatenate([np.full(len(train_y), TRAIN), np.full(len(test_y), TEST)]).astype(np.int8)
    return ImageSource(name, images, labels, pool, list(class_names))


def load_digits(image_size: int = 32, **_) -> ImageSource:
    """scikit-learn's 1,797 8x8 digits, scaled to 0-255, upsampled, as 3 channels. One pool."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)
    return _from_pools("digits", x, d.target, np.zeros((0, 8, 8), np.uint8), np.zeros(0), image_size,
                       [str(i) for i in range(10)])


def _torchvision_missing(name: str, data_dir: Path) -> UserError:
    return UserError(
        f"{name} files not found under {data_dir}. Download them with "
        f"`--set data.download=true` (needs network), or copy the torchvision layout there "
        f"and point `--set data.data_dir=DIR` at it."
    )


def _load_torchvision(name: str, data_dir: str, download: bool, image_size: int) -> ImageSource:
    import torchvision.datasets as tvd

    root = Path(data_dir).expanduser()
    try:
        if name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
            return _from_pools(name, train.data, train.targets, test.data, test.targets, image_size, train.classes)
        train = tvd.SVHN(str(root), split="train", download=download)
        test = tvd.SVHN(str(root), split="test", download=download)
        to_nhwc = lambda a: a.transpose(0, 2, 3, 1)  # noqa: E731  SVHN stores NCHW
        return _from_pools(name, to_nhwc(train.data), train.labels, to_nhwc(test.data), test.labels, image_size,
                           [str(i) for i in range(10)])
    except RuntimeError as exc:
        if "not found" in str(exc).lower() or "corrupted" in str(exc).lower():
            raise _torchvision_missing(name, root) from None
        raise
    except OSError as exc:  # download failed (no network)
        raise UserError(f"could not download {name} into {root}: {exc}") from None


def load_npz(path: str, image_size: int = 32, **_) -> ImageSource:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"npz file not found: {p}")
    with np.load(p, allow_pickle=False) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise UserError(f"{p} lacks arrays {missing}; expected x_train, y_train, x_test, y_test (uint8 NHWC)")
        x_train, x_test = z["x_train"], z["x_test"]
        if x_train.dtype != np.uint8 or x_train.ndim not in (3, 4):
            raise UserError(f"{p}: x_train must be uint8 NHWC, got {x_train.dtype} {x_train.shape}")
        names = [str(c) for c in z["class_names"]] if "class_names" in z.files else []
        return _from_pools(f"npz:{p}", x_train, z["y_train"], x_test, z["y_test"], image_size, names)


def load_imagefolder(path: str, image_size: int = 32, **_) -> ImageSource:
    """torchvision's ``ImageFolder`` layout (one sub-folder per class), one pool, read lazily: listing the files is
    all that happens here. Keys are the paths relative to the folder (posix), so adding a file moves no key."""
    import torchvision.datasets as tvd

    from trainables.data.lazy import LazyImages

    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"image folder not found: {p}")
    try:
        folder = tvd.ImageFolder(str(p))  # lists files by extension; opens none
    except (FileNotFoundError, RuntimeError) as exc:
        raise UserError(f"cannot read image folder {p}: {exc}") from None
    paths = [file for file, _ in folder.samples]
    keys = np.array([Path(file).relative_to(p).as_posix() for file in paths], dtype=object)
    labels = np.array([t for _, t in folder.samples], dtype=np.int64)
    return ImageSource(f"imagefolder:{p}", LazyImages(paths, image_size, keys=keys), labels,
                       np.full(len(labels), TRAIN, np.int8), list(folder.classes), record_keys=keys, paths=paths)


def load_manifest(path: str, image_size: int = 32, **_) -> ImageSource:
    from trainables.data.manifest import load_manifest as load

    return load(path, image_size=image_size)


BUILTIN: dict[str, Callable[..., ImageSource]] = {
    "digits": load_digits,
    "cifar10": lambda **kw: _load_torchvision("cifar10", **kw),
    "cifar100": lambda **kw: _load_torchvision("cifar100", **kw),
    "svhn": lambda **kw: _load_torchvision("svhn", **kw),
}
PREFIXED: dict[str, Callable[..., ImageSource]] = {"npz": load_npz, "imagefolder": load_imagefolder,
                                                   "manifest": load_manifest}


def dataset_names() -> list[str]:
    return [*BUILTIN, *(f"{p}:PATH" for p in PREFIXED)]


def load_source(spec: str, *, data_dir: str = "~/.cache/unlearn/data", download: bool = False,
                image_size: int = 32) -> ImageSource:
    """Load a data set by spec (see module docstring)."""
    if spec in BUILTIN:
        kwargs = dict(image_size=image_size)
        if spec != "digits":
            kwargs.update(data_dir=data_dir, download=download)
        return BUILTIN[spec](**kwargs)
    prefix, sep, path = spec.partition(":")
    if sep and prefix in PREFIXED and path:
        return PREFIXED[prefix](path, image_size=image_size)
    raise UserError(f"unknown dataset {spec!r}; choose one of: {', '.join(dataset_names())}")
