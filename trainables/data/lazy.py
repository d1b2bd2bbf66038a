"""File-backed images that index like the uint8 tensor (N, 3, S, S) they stand in for, decoding only what is read.

``ImageSource.images`` is either a tensor (the small built-in sets) or a :class:`LazyImages`. Everything downstream
indexes it by sample id (``images[i]``, ``images[long_tensor]``, ``images[ndarray]``) and reads
``images.shape[-1]``; a lazy one opens only the files of the ids asked for, so a job reads just the splits it
needs (memgp: the forget set; audits: the scored sets) and never the whole data set. A small LRU cache of decoded
images (bounded in bytes) spares re-decoding across epochs; it is never pickled, so handing a source to another
process (Ray's object store, DataLoader workers) ships only the paths.

Example:
    >>> images = LazyImages(["a.png", "b.png"], image_size=32)   # opens nothing yet
    >>> images.shape, len(images)
    (torch.Size([2, 3, 32, 32]), 2)
    >>> # images[1] -> (3, 32, 32) uint8; images[torch.tensor([1, 0])] -> (2, 3, 32, 32)
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from trainables.data.decode import decode_image

DEFAULT_CACHE_BYTES = int(float(os.environ.get("UNLEARN_IMAGE_CACHE_MB", "256")) * 2**20)
_THREADED_FROM = 16  # reads of at least this many uncached files decode on a thread pool (I/O and PIL drop the GIL)


class LazyImages:
    """uint8 images (N, 3, S, S) read on demand from ``paths`` (local paths or URIs, see trainables/data/files.py).

    ``keys`` name the records in errors. ``cache_bytes``: budget of the decoded-image LRU cache (0: none; default
    ``$UNLEARN_IMAGE_CACHE_MB``, 256). ``threads``: decoder threads for batch reads."""

    dtype = torch.uint8
    ndim = 4

    def __init__(self, paths: Sequence[str], image_size: int, *, keys: Sequence[str] | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, threads: int = min(8, os.cpu_count() or 1)):
        self.paths = [str(p) for p in paths]
        self.keys = [str(k) for k in keys] if keys is not None else self.paths
        if len(self.keys) != len(self.paths):
            raise ValueError(f"{len(self.keys)} keys for {len(self.paths)} paths")
        self.image_size = int(image_size)
        self.threads = max(1, int(threads))
        self.cache_items = max(0, int(cache_bytes)) // (3 * self.image_size**2)
        self.files_read = 0  # decoded files since creation (cache misses): a cheap way to see what a job read
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    # ------------------------------------------------------------------ the tensor surface used downstream
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), 3, self.image_size, self.image_size))

    def __len__(self) -> int:
        return len(self.paths)

    def reordered(self, order: Sequence[int]) -> LazyImages:
        """The same files at positions ``order`` (-1: a blank position that no split names; reading it fails with
        its placeholder key). Reads nothing; the cache starts empty."""
        order = [int(j) for j in order]
        paths = [self.paths[j] if j >= 0 else "" for j in order]
        keys = [self.keys[j] if j >= 0 else f"<absent>/{i}" for i, j in enumerate(order)]
        return LazyImages(paths, self.image_size, keys=keys, cache_bytes=self.cache_items * 3 * self.image_size**2,
                          threads=self.threads)

    def __getitem__(self, index) -> torch.Tensor:
        """``int`` -> (3, S, S); a 1-d LongTensor / ndarray / list of ids, a bool mask or a slice -> (n, 3, S, S).
        A tuple indexes the first axis lazily and the rest on the decoded result."""
        if isinstance(index, tuple):
            head, rest = (index[0], index[1:]) if index else (slice(None), ())
            first = self[head]
            return first[(slice(None), *rest)] if first.ndim == 4 else first[rest]
        if isinstance(index, (int, np.integer)) or (torch.is_tensor(index) and index.ndim == 0):
            return self.read([self._check(int(index))])[0]
        return self.read(self._ids(index))

    def read(self, ids: Sequence[int]) -> torch.Tensor:
        """(n, 3, S, S) uint8 for sample ids ``ids`` (in order, repeats allowed)."""
        ids = [int(i) for i in ids]
        out = torch.empty((len(ids), 3, self.image_size, self.image_size), dtype=torch.uint8)
        missing = sorted({i for i in ids if i not in self._cache})
        decoded = dict(zip(missing, self._decode_many(missing), strict=True))
        for row, i in enumerate(ids):
            image = decoded.get(i)
            if image is None:
                image = self._cache[i]
                self._cache.move_to_end(i)
            out[row] = image
        for i, image in decoded.items():
            self._remember(i, image)
        return out

    # ---------------------------------------------------------------------------------------------- helpers
    def _ids(self, index) -> list[int]:
        if isinstance(index, slice):
            return list(range(len(self)))[index]
        array = index.cpu().numpy() if torch.is_tensor(index) else np.asarray(index)
        if array.dtype == bool:
            if array.shape != (len(self),):
                raise IndexError(f"a boolean mask of shape {array.shape} for {len(self)} images")
            return np.flatnonzero(array).tolist()
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise IndexError(f"index images with ints, a 1-d integer array or a slice, not {array.dtype} "
                             f"{array.shape}")
        return [self._check(int(i)) for i in array]

    def _check(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample id {i} is out of range for {len(self)} images")
        return i % len(self)

    def _decode_one(self, i: int) -> torch.Tensor:
        hwc = decode_image(self.paths[i], self.image_size, key=self.keys[i])
        return torch.from_numpy(hwc).permute(2, 0, 1).contiguous()

    def _decode_many(self, ids: list[int]) -> list[torch.Tensor]:
        self.files_read += len(ids)
        if len(ids) < _THREADED_FROM or self.threads == 1:
            return [self._decode_one(i) for i in ids]
        with ThreadPoolExecutor(self.threads) as pool:  # per call: no threads to carry across fork or pickle
            return list(pool.map(self._decode_one, ids))

    def _remember(self, i: int, image: torch.Tensor) -> None:
        if self.cache_items == 0:
            return
        self._cache[i] = image
        self._cache.move_to_end(i)
        while len(self._cache) > self.cache_items:
            self._cache.popitem(last=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict(), "files_read": 0}

    def __repr__(self) -> str:
        return f"LazyImages({len(self)} files, {self.image_size}px, cache {len(self._cache)}/{self.cache_items})"
