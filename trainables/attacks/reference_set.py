"""A reference set on disk: K models trained with a parent model's recipe on random halves of its data pool.

Layout (every file's sha256 in the manifest; the manifest's own sha256 is what the ledger records)::

    DIR/manifest.json        k, seed, method, the recipe (the parent's pretraining config), the parent version and
                             its meta.json sha256, pool and IN-set sizes, per model its seed and time, sha256 of files
    DIR/ref-00/model.pt      a checkpoint (trainables.checkpoint): weights, meta.json (its IN-set: ``in_ids``),
    DIR/ref-00/meta.json     and the parent's split manifest
    DIR/ref-00/splits.parquet
    ...

The IN-sets (:func:`design_in_sets`): every member of the parent is IN for exactly ``K // 2`` references (Carlini et
al. 2022's balanced design), so it is OUT for ``K - K // 2 >= 1``; each reference is filled up to the parent's
training-set size with non-members drawn at random (each IN for at most ``K // 2``), so its recipe (samples, steps
per epoch, epochs) is the parent's own, and every non-member is OUT for at least as many as a member. Any later deletion batch (members) and the held-out
non-members it is compared with are therefore scored without training anything new.

Example:
    >>> ref = open_reference_set("runs/pretrained.references", expected_sha256=row["sha256"])
    >>> ref.k, ref.in_mask_for(ids).shape                     # K, (N, K)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from trainables.errors import UserError

MANIFEST = "manifest.json"
FORMAT = "unlearn-reference-set/1"
MIN_K = 2


def check_k(k: int) -> int:
    if k < MIN_K:
        raise UserError(f"a reference set needs K >= {MIN_K} models (each sample must be OUT for at least one), "
                        f"got K={k}")
    return k


def model_name(i: int) -> str:
    return f"ref-{i:02d}"


def design_in_sets(member_ids, nonmember_ids, k: int, in_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pool_ids (P,), in_mask (K, P) bool)``: each member IN for exactly ``k // 2`` models, each model topped
    up to ``in_size`` samples with random non-members, none IN for more than ``k // 2`` (seeded)."""
    check_k(k)
    members = np.unique(np.asarray(member_ids, dtype=np.int64))
    nonmembers = np.setdiff1d(np.asarray(nonmember_ids, dtype=np.int64), members)
    pool = np.concatenate([members, nonmembers])
    rng = np.random.default_rng([seed, 41])
    mask = np.zeros((k, len(pool)), dtype=bool)
    # For every member, a random order of the K models; it is IN for the first k // 2 (balanced across samples).
    order = rng.random((k, len(members))).argsort(0).argsort(0)
    mask[:, : len(members)] = order < k // 2
    used = np.zeros(len(nonmembers), dtype=int)
    for m in range(k):
        # the least-used non-members first (random among equals), never IN for more than k // 2 models
        order = rng.permutation(len(nonmembers))
        order = order[np.argsort(used[order], kind="stable")]
        order = order[used[order] < k // 2]
        pick = order[: max(0, in_size - int(mask[m].sum()))]
        mask[m, len(members) + pick] = True
        used[pick] += 1
    return pool, mask


def file_digests(root: Path, names: list[str]) -> dict[str, str]:
    from trainables.checkpoint import sha256_file

    return {name: sha256_file(root / name) for name in names}


@dataclass
class ReferenceSet:
    """An opened, verified reference set (see the module docstring)."""

    path: Path
    manifest: dict[str, Any]
    sha256: str  # of manifest.json

    @property
    def k(self) -> int:
        return int(self.manifest["k"])

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def recipe(self) -> dict[str, Any]:
        return self.manifest["recipe"]

    @property
    def names(self) -> list[str]:
        return [m["name"] for m in self.manifest["models"]]

    @cached_property
    def in_ids(self) -> list[np.ndarray]:
        from trainables.checkpoint import read_meta

        return [np.asarray(read_meta(self.path / name)["in_ids"], dtype=np.int64) for name in self.names]

    def in_mask_for(self, ids) -> np.ndarray:
        """(N, K) bool: reference k was trained on sample ``ids[n]``."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.column_stack([np.isin(ids, inside) for inside in self.in_ids])

    def load_model(self, i: int):
        from trainables.checkpoint import load_checkpoint

        return load_checkpoint(self.path / self.names[i]).model

    def splits(self):
        from trainables.checkpoint import MANIFEST as SPLITS
        from trainables.data.splits import Splits

        return Splits.load(self.path / self.names[0] / SPLITS)


def open_reference_set(path: str | Path, *, expected_sha256: str | None = None) -> ReferenceSet:
    """Open and verify a reference set: the manifest against ``expected_sha256`` (the ledger's record), every file
    against the manifest, K >= 2. Any mismatch is a :class:`UserError` (exit 2)."""
    from trainables.checkpoint import sha256_file

    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise UserError(f"{root} is not a reference set: {MANIFEST} is missing (build one with "
                        f"`unlearn models references build`)")
    digest = sha256_file(root / MANIFEST)
    if expected_sha256 is not None and digest != expected_sha256:
        raise UserError(f"reference set {root}: {MANIFEST} has sha256 {digest[:12]}..., the ledger records "
                        f"{expected_sha256[:12]}... (modified after it was built); rebuild it")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{root / MANIFEST} is corrupt: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{root / MANIFEST}: unknown format {manifest.get('format')!r} (expected {FORMAT})")
    check_k(int(manifest.get("k", 0)))
    if len(manifest.get("models", [])) != int(manifest["k"]):
        raise UserError(f"{root / MANIFEST} lists {len(manifest.get('models', []))} models but K={manifest['k']}")
    for name, expected in (manifest.get("files") or {}).items():
        f = root / name
        if not f.is_file():
            raise UserError(f"reference set {root} is incomplete: {name} is missing")
        if sha256_file(f) != expected:
            raise UserError(f"reference set {root} failed verification: sha256 of {name} differs from its "
                            f"manifest (tampered or corrupt); rebuild it")
    return ReferenceSet(root, manifest, digest)


def write_manifest(root: Path, *, k: int, seed: int, recipe: dict[str, Any], parent: dict[str, Any],
                   models: list[dict[str, Any]], pool_size: int, in_size: int) -> str:
    """Write ``root/manifest.json`` listing the sha256 of every file under ``root``; returns its sha256."""
    import time

    from trainables.checkpoint import sha256_file

    names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {"format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "k": k,
                "seed": seed, "method": recipe.get("method"), "recipe": recipe, "parent": parent,
                "models": models, "pool_size": pool_size, "in_size": in_size, "files": file_digests(root, names)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return sha256_file(root / MANIFEST)
