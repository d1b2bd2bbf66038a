"""Line a freshly loaded data set up with a checkpoint's split manifest by record key.

A manifest's sample ids are the id space of its whole lineage: meta.json's ``forgotten_ids``, the ledger's requests
and batches all name them. A data set loaded later may order its records differently (a file added to an image
folder shifts every later position), so instead of trusting positions, the source is re-indexed: the record whose
key the manifest lists under id ``i`` is placed at position ``i``. Records the manifest does not list (e.g. a new
file) fill the remaining positions; positions nothing can fill hold blank placeholders that no split names.

    source = align_to_manifest(load_source("imagefolder:photos"), checkpoint.splits)
    source.keys[checkpoint.splits["forget"]]   # the same records as when the checkpoint was made

A manifest without keys (written before keys existed) is used positionally, as it was made.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from trainables.data.keys import shown_keys
from trainables.data.lazy import LazyImages
from trainables.data.sources import TRAIN, ImageSource
from trainables.data.splits import Splits
from trainables.errors import UserError

PLACEHOLDER = "<absent>/{}"  # key of a position that no record of the fresh data set fills


def align_to_manifest(source: ImageSource, splits: Splits) -> ImageSource:
    """``source`` re-indexed so that each manifest id holds the record of its manifest key (see module doc)."""
    if splits.keys is None:
        return source
    ids = np.array(sorted(splits.keys), dtype=np.int64)
    wanted = np.array([splits.keys[int(i)] for i in ids], dtype=object)
    fresh = source.keys
    if len(ids) == 0 or (ids[-1] < len(source) and (fresh[ids] == wanted).all()):
        return source  # nothing moved: the common case (built-in sets, unchanged folders)
    index = {str(k): i for i, k in enumerate(fresh)}
    if len(index) != len(fresh):
        raise UserError(f"{source.name} has duplicate record keys; every record needs its own key")
    missing = [k for k in wanted if k not in index]
    if missing:
        raise UserError(f"{len(missing)} record(s) of the checkpoint's split manifest are not in {source.name}: "
                        f"{shown_keys(missing)}; restore them (records are matched by key)")
    found = np.array([index[k] for k in wanted], dtype=np.int64)
    relabelled = [str(wanted[j]) for j in np.flatnonzero(source.labels[found] != [splits.labels[int(i)] for i in ids])]
    if relabelled:
        raise UserError(f"{len(relabelled)} record(s) have another label in {source.name} than in the checkpoint's "
                        f"split manifest: {shown_keys(relabelled)}")
    order = np.full(max(len(source), int(ids[-1]) + 1), -1, dtype=np.int64)
    order[ids] = found
    rest = np.setdiff1d(np.arange(len(source)), found)  # records the manifest does not list, in their own order
    holes = np.flatnonzero(order < 0)
    order[holes[:len(rest)]] = rest[:len(holes)]
    return _reindexed(source, order)


def _reindexed(source: ImageSource, order: np.ndarray) -> ImageSource:
    """The records of ``source`` at positions ``order`` (-1: a blank placeholder in no split)."""
    real = order >= 0
    if isinstance(source.images, LazyImages):  # file-backed: reorder the paths, read nothing
        images = source.images.reordered(order)
    elif real.all():
        images = source.images[torch.from_numpy(order)]
    else:
        images = torch.zeros((len(order), *source.images.shape[1:]), dtype=source.images.dtype)
        images[torch.from_numpy(np.flatnonzero(real))] = source.images[torch.from_numpy(order[real])]
    take = np.where(real, order, 0)
    keys = source.keys[take].astype(object)
    keys[~real] = [PLACEHOLDER.format(i) for i in np.flatnonzero(~real)]
    labels = np.where(real, source.labels[take], 0).astype(np.int64)
    pool = np.where(real, source.pool[take], TRAIN).astype(np.int8)
    paths = None if source.paths is None else [source.paths[j] if j >= 0 else "" for j in order]
    return replace(source, images=images, labels=labels, pool=pool, record_keys=keys, paths=paths)
