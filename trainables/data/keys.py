"""Record keys: the stable string name of each sample, what users name in deletion requests.

Integer ``sample_id`` stays the internal index (a position in a source's fixed order). A key does not move when
other records are added or removed: the relative file path for image folders, the ``key`` column of a manifest,
and ``"<pool>/<index within pool>"`` (``train/0``, ``test/17``) for the built-in sets, whose pools never change.

Example:
    >>> import numpy as np
    >>> builtin_keys(np.array([0, 0, 1], dtype=np.int8)).tolist()
    ['train/0', 'train/1', 'test/0']
    >>> ids_for_keys(np.array(["a", "b", "c"], dtype=object), ["c", "a"]).tolist()
    [2, 0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from trainables.errors import UserError

POOL_NAMES = ("train", "test")  # indexed by trainables.data.sources.TRAIN / TEST


def builtin_keys(pool: np.ndarray) -> np.ndarray:
    """Keys ``"<pool>/<index within pool>"`` for sources whose pools have a fixed order. (N,) object."""
    pool = np.asarray(pool)
    keys = np.empty(len(pool), dtype=object)
    for code, name in enumerate(POOL_NAMES):
        where = np.flatnonzero(pool == code)
        keys[where] = [f"{name}/{i}" for i in range(len(where))]
    return keys


def shown_keys(values: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` keys, quoted, for an error message (``'a', 'b' ... (12 in all)``)."""
    head = ", ".join(repr(str(v)) for v in values[:limit])
    return head + (f" ... ({len(values)} in all)" if len(values) > limit else "")


def ids_for_keys(all_keys: Sequence[str], keys: Iterable[str], *, where: str = "the data set") -> np.ndarray:
    """Sample ids (positions in ``all_keys``) of ``keys``, in the order given. Unknown or repeated keys: UserError."""
    keys = [str(k) for k in keys]
    repeated = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) != len(keys) else []
    if repeated:
        raise UserError(f"repeated keys: {shown_keys(repeated)}")
    index = {str(k): i for i, k in enumerate(all_keys)}
    if len(index) != len(all_keys):
        raise UserError(f"{where} has duplicate record keys; every record needs its own key")
    unknown = [k for k in keys if k not in index]
    if unknown:
        raise UserError(f"{len(unknown)} key(s) not in {where}: {shown_keys(unknown)}")
    return np.array([index[k] for k in keys], dtype=np.int64)


def read_key_file(path: str | Path) -> list[str]:
    """Keys from a file: Parquet or CSV with a ``key`` column, or plain text with one key per line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"key file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq", ".csv"):
        import pandas as pd

        try:
            frame = pd.read_parquet(p) if suffix != ".csv" else pd.read_csv(p, dtype=str, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001  (pandas raises many types for unreadable files)
            raise UserError(f"cannot read key file {p}: {exc}") from None
        if "key" not in frame.columns:
            raise UserError(f"{p} has no 'key' column (columns: {', '.join(map(str, frame.columns))})")
        keys = [str(k) for k in frame["key"].tolist()]
    else:
        try:
            keys = [line.strip() for line in p.read_text().splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read key file {p}: {exc}") from None
        keys = [k for k in keys if k and not k.startswith("#")]
    if not keys or any(k == "" for k in keys):
        raise UserError(f"{p}: no keys, or an empty key")
    return keys


def parse_keys(text: str, where: str = "--keys") -> list[str]:
    """``"cat/1.png,dog/7.png"`` -> keys in the order given (a key holding a comma goes in a key file instead)."""
    keys = [k.strip() for k in str(text).split(",")]
    if not any(keys) or "" in keys:
        raise UserError(f"{where}: an empty key in {text!r}; give keys separated by commas, e.g. train/3,train/17")
    return keys
