"""``manifest:FILE`` data sets: a Parquet or CSV table naming each record's key, image file and label.

Columns: ``key`` (the record's stable name, what deletion requests use), ``path`` (relative to the manifest's own
location, absolute, or a URI such as ``s3://bucket/img/1.png`` or ``file:///data/1.png``), ``label`` (integers, or
class names: then classes are the sorted names) and an optional ``pool`` (``train`` / ``test``; without it, one
pool). The manifest itself may be a local path or a URI. Images are read lazily (trainables/data/lazy.py); local
files are checked to exist here, so a missing one fails at load with its key; remote ones fail when read.

Sample ids are positions after a stable sort by pool (train rows first, in file order, then test rows).

Example (``m.csv``)::

    key,path,label,pool
    cat-001,img/cat/1.png,cat,train
    dog-007,s3://bucket/dog/7.png,dog,test
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from trainables.data.files import exists, is_uri, join, read_bytes
from trainables.data.keys import POOL_NAMES, shown_keys
from trainables.data.sources import TRAIN, ImageSource
from trainables.errors import UserError

REQUIRED = ("key", "path", "label")


def _read_table(location: str) -> pa.Table:
    suffix = Path(location.split("?", 1)[0]).suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise UserError(f"manifest {location}: use a .parquet or .csv file (columns key, path, label[, pool])")
    if not is_uri(location) and not Path(location).is_file():
        raise UserError(f"manifest not found: {location}")
    try:
        data = read_bytes(location)
        if suffix == ".csv":
            from pyarrow import csv

            text = {name: pa.string() for name in ("key", "path", "pool")}
            return csv.read_csv(io.BytesIO(data), convert_options=csv.ConvertOptions(column_types=text))
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowException) as exc:  # pyarrow's I/O errors are OSErrors too
        raise UserError(f"cannot read manifest {location}: {exc}") from None


def _column(table: pa.Table, name: str, location: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        raise UserError(f"manifest {location}: column {name!r} has {column.null_count} empty value(s)")
    return np.asarray(column.to_pylist(), dtype=object)


def _labels(table: pa.Table, location: str) -> tuple[np.ndarray, list[str]]:
    column = table.column("label")
    if column.null_count:
        raise UserError(f"manifest {location}: column 'label' has {column.null_count} empty value(s)")
    if pa.types.is_integer(column.type):
        labels = column.to_numpy().astype(np.int64)
        if len(labels) and labels.min() < 0:
            raise UserError(f"manifest {location}: labels must be 0 or more (found {int(labels.min())})")
        return labels, [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    names = np.asarray([str(v) for v in column.to_pylist()], dtype=object)
    classes = sorted(set(names))
    return np.searchsorted(np.asarray(classes, dtype=object), names).astype(np.int64), classes


def _pools(table: pa.Table, location: str) -> np.ndarray:
    if "pool" not in table.column_names:
        return np.full(table.num_rows, TRAIN, np.int8)
    values = [str(v).strip().lower() for v in _column(table, "pool", location)]
    bad = sorted({v for v in values if v not in POOL_NAMES})
    if bad:
        raise UserError(f"manifest {location}: column 'pool' holds {shown_keys(bad)}; use train or test")
    return np.array([POOL_NAMES.index(v) for v in values], dtype=np.int8)


def load_manifest(location: str, image_size: int = 32) -> ImageSource:
    """The file-backed :class:`ImageSource` a manifest describes (see the module docstring); every problem with
    the file is a :class:`UserError` naming it."""
    from trainables.data.lazy import LazyImages

    location = location if is_uri(location) else str(Path(location).expanduser())
    table = _read_table(location)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise UserError(f"manifest {location} lacks column(s) {', '.join(missing)} (has: "
                        f"{', '.join(table.column_names) or 'none'}); it needs key, path, label[, pool]")
    if table.num_rows == 0:
        raise UserError(f"manifest {location} has no rows")
    keys = np.asarray([str(k) for k in _column(table, "key", location)], dtype=object)
    if (keys == "").any():
        raise UserError(f"manifest {location}: {int((keys == '').sum())} row(s) have an empty key")
    unique, counts = np.unique(keys, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"manifest {location}: duplicate keys {shown_keys(unique[counts > 1].tolist())}; every record "
                        f"needs its own key")
    labels, classes = _labels(table, location)
    pool = _pools(table, location)
    paths = [join(location, str(p)) for p in _column(table, "path", location)]
    absent = [k for k, p in zip(keys, paths, strict=True) if not exists(p)]
    if absent:
        raise UserError(f"manifest {location}: {len(absent)} image file(s) not found, key(s) {shown_keys(absent)}")
    order = np.argsort(pool, kind="stable")  # sample ids: the train pool first, then the test pool
    keys, paths = keys[order], [paths[i] for i in order]
    return ImageSource(f"manifest:{location}", LazyImages(paths, image_size, keys=keys), labels[order], pool[order],
                       classes, record_keys=keys, paths=paths)
