"""Ray Data as the reader of file-backed training data on Ray Train (``runtime.stream``; docs/distributed.md).

Instead of every worker decoding the whole data set into memory, the driver passes the trainer one lazy Ray
Dataset per (epoch, rank): ``ray.data.range(n_rank)`` mapped, in Ray Data tasks, to the records that rank reads in
that epoch, decoded to uint8 ``(3, S, S)`` (``trainables/data/decode.py``). The worker's training loader becomes a
:class:`StreamedLoader` over ``ray.train.get_dataset_shard(name).iter_torch_batches(...)``; augmentations still
run on the worker, on the batch, as in memory.

Which records, in which order: exactly the positions the in-memory loader's ``DistributedSampler`` would give
(:func:`trainables.data.distributed.shard_positions`, seeded by ``runtime.seed`` and the epoch), so streamed and
in-memory runs see the same batches and a resumed run the same data. Ray Data itself only has to keep the order
of one dataset's rows: ``ExecutionOptions(preserve_order=True)`` makes its operators emit blocks in input order;
without it (the default) blocks arrive in completion order. Ray's own ``streaming_split`` hands blocks to whichever
worker asks first, and ``random_shuffle(seed=)`` repeats one order every epoch, so neither is used. The worker
checks every batch's sample ids against the expected order and stops if they differ. A dataset per epoch also
makes resume cheap: a restarted worker starts at its checkpoint's epoch and never reads the earlier ones.

Records that cannot be read or decoded do not raise inside Ray Data (that would print a Ray task traceback);
the decode returns the message in an ``error`` column and the worker raises it as a :class:`UserError`, which the
CLI prints as one ``error:`` line.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from trainables import console
from trainables.data.distributed import check_shard_size, shard_positions
from trainables.errors import UserError

ROWS_PER_BLOCK = 256  # one Ray Data task decodes this many records (small tasks cost more than they overlap)


def dataset_name(epoch: int, rank: int) -> str:
    return f"train_e{epoch:05d}_r{rank}"


@dataclass(frozen=True)
class StreamPlan:
    """What the driver streamed: enough for a worker to know its datasets and check what arrives."""

    ids: np.ndarray             # (n,) int64: the training loader's sample ids, in its dataset's order
    drop_last: bool
    epochs: int
    world_size: int
    seed: int
    image_size: int

    def serves(self, loader) -> bool:
        """True for the loader this plan was made for (same records, plain uint8 items, same sampler rule)."""
        dataset = loader.dataset
        return (getattr(dataset, "transform", "?") is None and loader.drop_last == self.drop_last
                and np.array_equal(getattr(dataset, "sample_ids", None), self.ids))


def plan_stream(task, workers: int) -> tuple[StreamPlan, Any] | None:
    """Whether ``task`` streams on ``workers`` workers (``runtime.stream``): its plan and the records, else None."""
    setting = task.job.runtime.stream
    if setting is False or workers < 1:
        return None
    split = task.streamed(task.job) if task.streamed is not None else None
    if split is None or split.source.paths is None:
        if setting is True:
            what = split.source.name if split is not None else f"a {task.kind} job's data"
            raise UserError(f"runtime.stream=true needs file-backed training data (imagefolder:PATH) read with "
                            f"augment.backend=batched by a pretrain or forget job; {what} cannot be streamed "
                            f"(set runtime.stream=auto or false)")
        return None
    job = task.job
    if split.drop_last:  # the same check as the in-memory sharded loader, before anything starts
        check_shard_size(len(split.ids) // workers, len(split.ids), split.batch_size, workers)
    plan = StreamPlan(np.asarray(split.ids, dtype=np.int64), split.drop_last, task.epochs, workers,
                      job.runtime.seed, int(split.source.images.shape[-1]))
    return plan, split.source


def build_datasets(plan: StreamPlan, source) -> dict[str, Any]:
    """One lazy Ray Dataset per (epoch, rank); the records' paths, labels and keys go to the object store once."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()  # Ray Train hands this context to the workers
    context.enable_progress_bars = False          # the loop has its own progress display
    context.print_on_execution_start = False
    if not console.is_verbose():  # "Progress bars disabled ..." and per-dataset notices: Ray Data's INFO lines
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    paths = np.asarray(source.paths, dtype=object)[plan.ids]
    table = ray.put({"paths": paths, "labels": source.labels[plan.ids].astype(np.int64),
                     "keys": np.asarray(source.keys, dtype=object)[plan.ids], "ids": plan.ids})
    n_rank = len(shard_positions(len(plan.ids), rank=0, world_size=plan.world_size, seed=plan.seed, epoch=0,
                                 drop_last=plan.drop_last))  # the same for every rank and epoch
    blocks = max(1, math.ceil(n_rank / ROWS_PER_BLOCK))
    datasets = {}
    for epoch in range(plan.epochs):
        for rank in range(plan.world_size):
            datasets[dataset_name(epoch, rank)] = ray.data.range(n_rank, override_num_blocks=blocks).map_batches(
                decode_rows, batch_format="numpy", batch_size=ROWS_PER_BLOCK,
                fn_kwargs={"table": table, "epoch": epoch, "rank": rank, "world_size": plan.world_size,
                           "seed": plan.seed, "drop_last": plan.drop_last, "image_size": plan.image_size})
    return datasets


def data_config():
    """Every worker gets an unsplit iterator over every dataset (it reads only its own rank's), in order."""
    from ray.data import ExecutionOptions
    from ray.train import DataConfig

    return DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True))


_TABLES: dict[str, dict[str, np.ndarray]] = {}


def _table(table) -> dict[str, np.ndarray]:
    import ray

    if not isinstance(table, ray.ObjectRef):
        return table
    key = table.hex()
    if key not in _TABLES:  # once per Ray Data worker process
        _TABLES.clear()
        _TABLES[key] = ray.get(table)
    return _TABLES[key]


@lru_cache(maxsize=4)
def _positions(n: int, rank: int, world_size: int, seed: int, epoch: int, drop_last: bool) -> np.ndarray:
    return shard_positions(n, rank=rank, world_size=world_size, seed=seed, epoch=epoch, drop_last=drop_last)


def decode_rows(batch: dict[str, np.ndarray], *, table, epoch: int, rank: int, world_size: int, seed: int,
                drop_last: bool, image_size: int) -> dict[str, np.ndarray]:
    """Ray Data map: row ``i`` of rank ``rank``'s epoch-``epoch`` dataset -> that record, decoded.

    Returns ``image`` (b, 3, S, S) uint8, ``label`` and ``sample_id`` (b,) int64, ``error`` (b,) str ("" if fine).
    """
    from trainables.data.decode import decode_image

    t = _table(table)
    positions = _positions(len(t["ids"]), rank, world_size, seed, epoch, drop_last)[batch["id"]]
    images = np.zeros((len(positions), 3, image_size, image_size), dtype=np.uint8)
    errors = np.full(len(positions), "", dtype=object)
    for i, p in enumerate(positions):
        try:
            images[i] = decode_image(t["paths"][p], image_size, key=str(t["keys"][p])).transpose(2, 0, 1)
        except UserError as exc:
            errors[i] = str(exc)
    return {"image": images, "label": t["labels"][positions], "sample_id": t["ids"][positions],
            "error": errors.astype(str)}


def _collate():
    from ray.data.collate_fn import NumpyBatchCollateFn

    class Collate(NumpyBatchCollateFn):
        """A Ray Data batch -> the in-memory loader's tuple (copied: Ray's arrays are read-only), plus errors."""

        def __call__(self, batch: dict[str, np.ndarray]):
            return (torch.from_numpy(np.array(batch["image"])), torch.from_numpy(np.array(batch["label"])),
                    torch.from_numpy(np.array(batch["sample_id"])), batch["error"])

    return Collate()


class StreamedLoader:
    """A rank's training loader on a streaming run: the in-memory sharded loader's length, sampler and batch
    size, with the batches read from Ray Data. Yields ``(images (B, 3, S, S) uint8, labels, sample_ids)``.

    ``sampler.set_epoch(e)`` (what :func:`trainables.loops.context.set_loader_epoch` calls) selects the epoch;
    ``shard_for(name)`` returns a Ray ``DataIterator`` (default ``ray.train.get_dataset_shard``).
    """

    def __init__(self, sharded, plan: StreamPlan, rank: int, shard_for: Callable[[str], Any] | None = None):
        self.dataset, self.sampler = sharded.dataset, sharded.sampler
        self.batch_size, self.drop_last, self.pin_memory = sharded.batch_size, sharded.drop_last, sharded.pin_memory
        self.generator = None
        self.plan, self.rank = plan, rank
        self._shard_for = shard_for

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if self._shard_for is None:
            import ray.train

            self._shard_for = ray.train.get_dataset_shard
        epoch = int(self.sampler.epoch)
        expected = torch.from_numpy(self.dataset.sample_ids[np.fromiter(self.sampler, dtype=np.int64)])
        shard = self._shard_for(dataset_name(epoch, self.rank))
        seen = 0
        for images, labels, ids, errors in shard.iter_torch_batches(
                batch_size=self.batch_size, drop_last=self.drop_last, collate_fn=_collate(), prefetch_batches=2,
                pin_memory=self.pin_memory):
            bad = [e for e in errors if e]
            if bad:
                raise UserError(f"epoch {epoch + 1}: {bad[0]}" + (f" (and {len(bad) - 1} more in this batch)"
                                                                 if len(bad) > 1 else ""))
            if not torch.equal(ids, expected[seen:seen + len(ids)]):
                raise RuntimeError(f"Ray Data delivered rank {self.rank}'s epoch {epoch} out of order at record "
                                   f"{seen}; the run would not be reproducible")
            seen += len(ids)
            yield images, labels, ids
