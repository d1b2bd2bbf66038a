"""Combine the per-epoch metrics of data-parallel ranks into one record (what is reported and checkpointed).

Every rank computes its loss terms on its own shard; with equal batches per rank the mean of the ranks' means is
the global mean. Throughputs (``*_per_s``) add up; durations (``*_time_s``) are the slowest rank's. Keys only some
ranks have (the kNN monitor runs on rank 0) keep rank 0's value.

Example:
    >>> merge_rank_metrics([{"epoch": 1, "loss": 1.0, "images_per_s": 50.0, "knn_acc": 0.4},
    ...                     {"epoch": 1, "loss": 3.0, "images_per_s": 40.0}])
    {'epoch': 1, 'loss': 2.0, 'images_per_s': 90.0, 'knn_acc': 0.4}
"""

from __future__ import annotations

from typing import Any

_KEEP = {"epoch"}


def merge_rank_metrics(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """``per_rank[i]`` is rank i's metrics; returns rank 0's dict with the shared numeric keys combined."""
    merged = dict(per_rank[0])
    for key in per_rank[0]:
        values = [m.get(key) for m in per_rank]
        if key in _KEEP or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        if key.endswith("_per_s"):
            merged[key] = float(sum(values))
        elif key.endswith("_time_s"):
            merged[key] = float(max(values))
        else:
            merged[key] = float(sum(values)) / len(values)
    return merged
