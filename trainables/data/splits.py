"""The split manifest: which sample ids are members, forgotten, retained, or non-members.

- ``forget`` and ``retain`` partition the members (the training set of the original model).
- ``nonmember_ref``: the only non-member data an unlearning method may read (e.g. Eq. 2's interpolation).
- ``nonmember_eval``: held out for attacks and accuracy, never touched by unlearning.
- ``shadow_member`` / ``shadow_nonmember``: disjoint data for a shadow model (optional).

Derived deterministically from a seed; stored as Parquet (``sample_id, split, label, key``). ``key`` is each
record's stable name (:mod:`trainables.data.keys`): when the manifest meets a freshly loaded data set, records are
found by key, not by position (:mod:`trainables.data.align`). Manifests written before keys existed have no ``key``
column: they load with ``keys=None`` and are used positionally, as they were made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trainables.data.sources import TEST, TRAIN, ImageSource
from trainables.errors import UserError

SPLITS = ("retain", "forget", "nonmember_ref", "nonmember_eval", "shadow_member", "shadow_nonmember")
PAPER_MEMBERS = PAPER_NONMEMBERS = 10_000
MANIFEST_SCHEMA = pa.schema([("sample_id", pa.int64()), ("split", pa.string()), ("label", pa.int64()),
                             ("key", pa.string())])
REQUIRED_COLUMNS = ("sample_id", "split", "label")  # ``key`` is optional: older manifests lack it


@dataclass(frozen=True)
class Splits:
    """Sample ids per split (sorted int64 arrays) plus labels and record keys by sample id (``keys`` None: a
    manifest from before record keys)."""

    ids: dict[str, np.ndarray]
    labels: dict[int, int]
    keys: dict[int, str] | None = None

    def __getitem__(self, split: str) -> np.ndarray:
        if split == "member":
            return np.sort(np.concatenate([self.ids["retain"], self.ids["forget"]]))
        if split == "nonmember":
            return np.sort(np.concatenate([self.ids["nonmember_ref"], self.ids["nonmember_eval"]]))
        return self.ids[split]

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.ids.items()}

    def with_forget(self, forget_ids) -> Splits:
        """Same members, a new forget set (e.g. a batch of deletion requests)."""
        forget = _check_forget_ids(forget_ids, self["member"])
        return replace(self, ids=dict(self.ids, forget=forget, retain=np.setdiff1d(self["member"], forget)))

    def keys_of(self, ids) -> list[str] | None:
        """The record keys of ``ids`` (in that order); None for a manifest without keys."""
        return None if self.keys is None else [self.keys[int(i)] for i in ids]

    def ids_of(self, keys, *, members_only: bool = False) -> np.ndarray:
        """Sample ids of record ``keys`` (in that order). UserError for a manifest without keys, and for keys that
        are unknown, repeated, or (``members_only``) not members."""
        from trainables.data.keys import ids_for_keys

        if self.keys is None:
            raise UserError("this checkpoint's split manifest has no record keys (it was written before keys "
                            "existed); name sample ids instead")
        listed = np.array(sorted(self.keys), dtype=np.int64)
        ids = listed[ids_for_keys([self.keys[int(i)] for i in listed], keys, where="the checkpoint's split manifest")]
        outside = [self.keys[int(i)] for i in np.setdiff1d(ids, self["member"])] if members_only else []
        if outside:
            raise UserError(f"{len(outside)} key(s) name records that are not members of the training set: "
                            f"{', '.join(map(repr, outside[:5]))}{' ...' if len(outside) > 5 else ''}")
        return ids

    def to_frame(self) -> pd.DataFrame:
        key = (lambda i: None) if self.keys is None else (lambda i: self.keys[i])
        rows = [(int(i), s, self.labels[int(i)], key(int(i))) for s in SPLITS for i in self.ids[s]]
        return pd.DataFrame(rows, columns=["sample_id", "split", "label", "key"])

    def save(self, path: str | Path) -> None:
        table = pa.Table.from_pandas(self.to_frame(), schema=MANIFEST_SCHEMA, preserve_index=False)
        pq.write_table(table, str(path))

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        try:
            table = pq.read_table(str(path))
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"{path} is not a readable split manifest (Parquet): {exc}") from None
        missing = [n for n in REQUIRED_COLUMNS if n not in table.column_names]
        if missing:
            raise UserError(f"{path} lacks column(s) {', '.join(missing)} of the split manifest")
        names = [n for n in MANIFEST_SCHEMA.names if n in table.column_names]
        try:
            table = table.select(names).cast(pa.schema([MANIFEST_SCHEMA.field(n) for n in names]))
        except (pa.ArrowException, ValueError) as exc:
            raise UserError(f"{path}: the split manifest's columns have the wrong types: {exc}") from None
        if table.column("sample_id").null_count or table.column("label").null_count:
            raise UserError(f"{path}: the split manifest has empty sample ids or labels")
        df = table.to_pandas()
        ids = {s: np.sort(df.loc[df["split"] == s, "sample_id"].to_numpy(np.int64)) for s in SPLITS}
        labels = dict(zip(df["sample_id"].astype(int), df["label"].astype(int), strict=True))
        return cls(ids, labels, _manifest_keys(df, path))


def _manifest_keys(df: pd.DataFrame, path) -> dict[int, str] | None:
    """Keys by sample id; None for a manifest written before keys (no column, or no key at all)."""
    if "key" not in df.columns or df["key"].isna().all():
        return None
    if df["key"].isna().any() or (df["key"] == "").any():
        raise UserError(f"{path}: the split manifest has rows without a record key")
    if df["key"].duplicated().any():
        dup = df.loc[df["key"].duplicated(), "key"].head(3).tolist()
        raise UserError(f"{path}: the split manifest names a record key twice: {', '.join(map(repr, dup))}")
    return dict(zip(df["sample_id"].astype(int), df["key"].astype(str), strict=True))


def _check_forget_ids(forget_ids, members: np.ndarray) -> np.ndarray:
    forget = np.unique(np.asarray(list(forget_ids), dtype=np.int64))
    if len(forget) == 0:
        raise UserError("the forget set is empty: name at least one member sample id")
    not_members = np.setdiff1d(forget, members)
    if len(not_members):
        shown = ", ".join(map(str, not_members[:10])) + (" ..." if len(not_members) > 10 else "")
        raise UserError(f"{len(not_members)} forget ids are not members of the training set: {shown}")
    if len(forget) == len(members):
        raise UserError("the forget set holds every member: nothing would be retained; retrain from scratch instead")
    return forget


def _take(rng: np.random.Generator, pool: np.ndarray, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if n > len(pool):
        raise UserError(f"asked for {n} {what} but only {len(pool)} samples are available")
    perm = rng.permutation(pool)
    return np.sort(perm[:n]), perm[n:]


def make_splits(source: ImageSource, cfg) -> Splits:
    """Derive the split manifest from a :class:`~trainables.config.DataConfig` (deterministic in its seed)."""
    # Independent streams: changing how the forget set is chosen never moves the member / non-member draw.
    rng, rng_forget, rng_ref = (np.random.default_rng([cfg.split_seed, k]) for k in range(3))
    ids = source.sample_ids
    if source.single_pool:  # one pool: members and non-members are drawn from it disjointly
        shadow = cfg.shadow_members + cfg.shadow_nonmembers
        half = (len(ids) - shadow) // 2
        n_mem = cfg.num_members or min(PAPER_MEMBERS, half)
        members, rest = _take(rng, ids, n_mem, "members")
        n_non = cfg.num_nonmembers or min(PAPER_NONMEMBERS, len(rest) - shadow)
        nonmembers, rest = _take(rng, rest, n_non, "non-members")
        shadow_m, rest = _take(rng, rest, cfg.shadow_members, "shadow members")
        shadow_n, _ = _take(rng, rest, cfg.shadow_nonmembers, "shadow non-members")
    else:
        train_pool, test_pool = ids[source.pool == TRAIN], ids[source.pool == TEST]
        members, train_rest = _take(rng, train_pool, cfg.num_members or min(PAPER_MEMBERS, len(train_pool)),
                                    "members")
        nonmembers, test_rest = _take(rng, test_pool,
                                      cfg.num_nonmembers or min(PAPER_NONMEMBERS, len(test_pool)), "non-members")
        shadow_m, _ = _take(rng, train_rest, cfg.shadow_members, "shadow members (unused train pool)")
        shadow_n, _ = _take(rng, test_rest, cfg.shadow_nonmembers, "shadow non-members (unused test pool)")
    if len(nonmembers) < 2:
        raise UserError("need at least 2 non-members (one reference, one evaluation)")

    if cfg.forget_ids is not None:
        forget = _check_forget_ids(cfg.forget_ids, members)
    else:
        n_forget = cfg.forget_count if cfg.forget_count is not None else int(round(cfg.forget_fraction * len(members)))
        if n_forget < 1:
            raise UserError(f"the forget set is empty ({cfg.forget_fraction} of {len(members)} members rounds to 0)")
        if n_forget >= len(members):
            raise UserError(f"forget_count {n_forget} must be smaller than the {len(members)} members")
        forget = np.sort(rng_forget.choice(members, size=n_forget, replace=False))
    n_ref = max(1, min(len(nonmembers) - 1, int(round(cfg.nonmember_ref_fraction * len(nonmembers)))))
    perm = rng_ref.permutation(nonmembers)
    split_ids = {
        "retain": np.setdiff1d(members, forget),
        "forget": forget,
        "nonmember_ref": np.sort(perm[:n_ref]),
        "nonmember_eval": np.sort(perm[n_ref:]),
        "shadow_member": shadow_m,
        "shadow_nonmember": shadow_n,
    }
    labels = {int(i): int(source.labels[i]) for s in split_ids.values() for i in s}
    record_keys = source.keys
    keys = {i: str(record_keys[i]) for i in labels}
    return Splits({k: v.astype(np.int64) for k, v in split_ids.items()}, labels, keys)
