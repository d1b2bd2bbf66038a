"""The building blocks every job shares: its data set and split manifest, a fresh seeded model, and the facts its
checkpoint carries in ``meta.json``. No Ray here."""

from __future__ import annotations

from typing import Any

from trainables.checkpoint import model_spec
from trainables.data import Splits, load_source, make_splits
from trainables.data.sources import ImageSource
from trainables.loops.context import seed_everything
from trainables.models import UnlearnableModel, build_model


def load_data(data_cfg, splits: Splits | None = None) -> tuple[ImageSource, Splits]:
    """The data set and its split manifest (derived from the seed unless given, e.g. from a checkpoint). A given
    manifest's records are found by key, so its sample ids name the same records even if the data set gained or
    lost other records since (:func:`trainables.data.align.align_to_manifest`)."""
    from trainables import console
    from trainables.data.align import align_to_manifest

    console.status(f"loading the {data_cfg.dataset} data ...")
    source = load_source(data_cfg.dataset, data_dir=data_cfg.data_dir, download=data_cfg.download,
                         image_size=data_cfg.image_size)
    if splits is None:
        return source, make_splits(source, data_cfg)
    return align_to_manifest(source, splits), splits


def new_model(job, source: ImageSource, num_train: int) -> tuple[UnlearnableModel, dict[str, Any]]:
    """A freshly initialised model (seeded) and the spec that rebuilds its architecture."""
    seed_everything(job.runtime.seed)
    spec = model_spec(job.method, job.model, max(source.num_classes, 2), num_train)
    return build_model(job.method, job.model, num_classes=spec["num_classes"], num_members=num_train), spec


def checkpoint_meta(job, kind: str, history: list[dict[str, Any]], **extra) -> dict[str, Any]:
    """The job facts stored in ``meta.json`` beside the weights."""
    final = history[-1] if history else {}
    return {
        "kind": kind,
        "method": job.method,
        "backbone": job.model.architecture,
        "dataset": job.data.dataset,
        "split_seed": job.data.split_seed,
        "config": job.model_dump(mode="json"),
        "metrics": {k: v for k, v in final.items() if isinstance(v, (int, float))},
        "history": history,
        **extra,
    }
