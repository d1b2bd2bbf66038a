"""The API's result type: a checkpoint directory (what ``pretrain`` / ``forget`` / ``retrain`` wrote), with its
verified metadata at hand and the model loaded only on request.

Example:
    >>> ck = Checkpoint("runs/base")
    >>> ck.kind, ck.method, ck.metrics["knn_acc"]      # meta.json, verified (sha256 of every file) on first use
    >>> ck.splits()                                     # the split manifest: sample_id, split, label
    >>> loaded = ck.load()                              # model + meta + Splits (trainables.checkpoint.Checkpoint)
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any


class Checkpoint(os.PathLike):
    """A checkpoint directory. It is ``os.PathLike``: pass it wherever a path goes (``forget(ck, ...)``,
    ``Ledger.register(ck)``, ``open(Path(ck) / "meta.json")``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().absolute()  # the same directory after a later os.chdir

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    @cached_property
    def meta(self) -> dict[str, Any]:
        """``meta.json``, after every listed file matched its sha256 (UserError if tampered or not a checkpoint)."""
        from trainables.checkpoint import verify_checkpoint

        return verify_checkpoint(self.path)

    @property
    def kind(self) -> str:
        """``pretrain``, ``unlearn`` or ``retrain``."""
        return str(self.meta.get("kind", "pretrain"))

    @property
    def method(self) -> str | None:
        """The model's pretraining method (``simclr``, ``moco``, ``byol``, ``supervised``)."""
        return self.meta.get("method")

    @property
    def unlearning_method(self) -> str | None:
        """The unlearning method that wrote it (``memgp``, ``retrain``, ...), None for a pretrained model."""
        return (self.meta.get("unlearning") or {}).get("method")

    @property
    def dataset(self) -> str | None:
        return self.meta.get("dataset")

    @property
    def metrics(self) -> dict[str, Any]:
        """The final metrics (kNN accuracy, loss components, ...) recorded by the job."""
        return dict(self.meta.get("metrics") or {})

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every epoch's metrics of the job that wrote it."""
        return list(self.meta.get("history") or [])

    @property
    def forgotten_ids(self) -> list[int]:
        """Every sample id this model has forgotten (its whole lineage)."""
        return [int(i) for i in self.meta.get("forgotten_ids") or []]

    @property
    def parent(self) -> Checkpoint | None:
        """The checkpoint it was unlearned from, if recorded."""
        path = (self.meta.get("parent") or {}).get("path")
        return Checkpoint(path) if path else None

    def splits(self):
        """The split manifest as a ``pandas.DataFrame``: one row per sample (``sample_id``, ``split``, ``label``,
        and whatever else the manifest records), read after the checkpoint was verified."""
        import pyarrow.parquet as pq

        from trainables.checkpoint import MANIFEST

        self.meta  # noqa: B018  verified first
        return pq.read_table(self.path / MANIFEST).to_pandas()

    def load(self):
        """The model, meta and splits in memory (:class:`trainables.checkpoint.Checkpoint`), verified."""
        from trainables.checkpoint import load_checkpoint

        return load_checkpoint(self.path)

