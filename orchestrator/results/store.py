"""The results store: every run (pretrain, unlearn, retrain, evaluate, Tune trial, scheduled batch) as one Parquet row.

Layout: ``ROOT/kind=<kind>/date=<YYYY-MM-DD>/part-<utc time>-<uuid>.parquet``, hive-style: ``kind`` and ``date``
live in the folder names only (:data:`PARTITIONING`), never inside the files, so ``pandas.read_parquet(ROOT)``,
pyarrow datasets and DuckDB read a store without a type conflict. ``ROOT`` is a local path or any
pyarrow filesystem URI (``s3://bucket/results``, ``gs://...``). Each :func:`append` writes its own uniquely named
file (write to a hidden temporary name, then rename, on local disks; object stores publish a whole object
atomically), so concurrent writers never touch each other's files and nothing is ever read-modified-written.

Schema (:data:`SCHEMA`, version :data:`SCHEMA_VERSION`): a fixed core of typed columns (identity, the common
hyperparameters as ``hp_*``, metrics before / after / retrain with interval columns, times, provenance) plus three
JSON columns for whatever the core does not declare (``hp_json``: every hyperparameter by its dotted config key;
``metrics_json``: every metric; ``extra_json``). Unknown hyperparameters and metrics therefore never break a write.
See docs/results.md.

Example:
    >>> append("runs/results", [{"kind": "evaluate", "dataset": "digits", "after_mia_accuracy": 0.52}])
    >>> df = load("runs/results")              # pandas, Arrow dtypes, exactly SCHEMA
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.durable import fsync_dir, fsync_file
from trainables.errors import UserError

SCHEMA_VERSION = 1
KINDS = ("pretrain", "unlearn", "retrain", "evaluate", "tune-trial", "scheduled-batch")
# Metrics stored as typed columns, each as before_/after_/retrain_ (+ _lo/_hi for those with intervals).
INTERVAL_METRICS = ("mia_accuracy", "mia_precision", "mia_recall", "mia_auc", "mia_tpr_at_1fpr", "mia_tpr_at_01fpr")
POINT_METRICS = ("mia_efficacy", "knn_acc", "linear_acc", "retain_acc", "forget_acc", "test_acc",
                 "forget_cos_mean", "nonmember_cos_mean", "forget_top1", "nonmember_top1", "forget_loss",
                 "nonmember_loss")
STAGES = ("before", "after", "retrain")
# Hyperparameters with a typed column; everything else lives in hp_json (which also holds these).
HP_FLOAT = ("lr", "epochs", "batch_size", "weight_decay", "augment_strength", "width", "temperature", "a", "b", "c",
            "n_views", "forget_fraction", "seed")
HP_STRING = ("optimizer", "form", "train_term_source")

_CORE: list[tuple[str, pa.DataType]] = [
    ("schema_version", pa.int32()),
    ("row_id", pa.string()),
    ("kind", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()),
    ("dataset", pa.string()),
    ("model", pa.string()),
    ("backbone", pa.string()),
    ("method", pa.string()),
    ("attack", pa.string()),
    ("threat_model", pa.string()),
    ("num_members", pa.int64()),
    ("forget_size", pa.int64()),
    ("n_score", pa.int64()),
    ("trial_id", pa.string()),
    ("batch_id", pa.string()),
    ("experiment", pa.string()),
    ("checkpoint_uri", pa.string()),
    ("parent_uri", pa.string()),
    ("original_uri", pa.string()),
    ("retrained_uri", pa.string()),
    ("wall_time_s", pa.float64()),
    ("unlearn_time_s", pa.float64()),
    ("retrain_time_s", pa.float64()),
    ("eval_time_s", pa.float64()),
    ("git_sha", pa.string()),
    ("packages_json", pa.string()),
]
_METRIC_COLUMNS = [f"{stage}_{m}{suffix}" for stage in STAGES for m in INTERVAL_METRICS for suffix in ("", "_lo", "_hi")]
_METRIC_COLUMNS += [f"{stage}_{m}" for stage in STAGES for m in POINT_METRICS]
_GAP_COLUMNS = ["gap_mia_accuracy", "gap_mia_auc", "leakage_vs_chance", "leakage_vs_retrain"]
SCHEMA = pa.schema(
    [pa.field(n, t) for n, t in _CORE]
    + [pa.field(f"hp_{n}", pa.float64()) for n in HP_FLOAT]
    + [pa.field(f"hp_{n}", pa.string()) for n in HP_STRING]
    + [pa.field(n, pa.float64()) for n in _METRIC_COLUMNS + _GAP_COLUMNS]
    + [pa.field(n, pa.string()) for n in ("hp_json", "metrics_json", "extra_json")],
    metadata={"schema_version": str(SCHEMA_VERSION)},
)
COLUMNS = tuple(SCHEMA.names)
# What a file holds: the schema less the partition column (``kind`` is the folder name). Stores written before
# this layout also hold ``kind`` inside each file; :func:`load` reads both (the folder value is the same).
FILE_SCHEMA = SCHEMA.remove(SCHEMA.get_field_index("kind"))
PARTITIONING = ds.partitioning(pa.schema([("kind", pa.string()), ("date", pa.string())]), flavor="hive")


GIT_SHA_ENV = "UNLEARN_GIT_SHA"  # set it where the code runs outside its git checkout (a `ray job submit` copy)


def _git_sha() -> str | None:
    if os.environ.get(GIT_SHA_ENV):
        return os.environ[GIT_SHA_ENV]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


PACKAGES = ("unlearn-orchestrator", "torch", "torchvision", "lightly", "ray", "scikit-learn", "numpy", "pyarrow",
            "pandas", "optuna")


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, Any]:
    """git sha of this code and the package versions, for a row (computed once per process)."""
    from importlib import metadata

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"git_sha": _git_sha(), "packages_json": json.dumps(versions, sort_keys=True)}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"optim.lr": 0.001, ...}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def make_row(*, kind: str, hyperparameters: Mapping[str, Any] | None = None,
             metrics: Mapping[str, Mapping[str, float]] | None = None, extra: Mapping[str, Any] | None = None,
             **columns: Any) -> dict[str, Any]:
    """Build one row. ``hyperparameters``: flat or nested; each whose last key names a declared ``hp_*`` column
    fills it (first one wins), all go to ``hp_json``. ``metrics``: ``{stage: {metric: value}}`` with stage in
    before / after / retrain; declared ones fill typed columns, all go to ``metrics_json``. ``columns``: core
    columns by name (unknown names are an error)."""
    if kind not in KINDS:
        raise UserError(f"unknown result kind {kind!r}; choose one of: {', '.join(KINDS)}")
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise UserError(f"unknown result columns {unknown}; put them in extra=")
    row: dict[str, Any] = {"kind": kind, **columns}
    hp = flatten(hyperparameters or {})
    for dotted, value in hp.items():
        col = f"hp_{dotted.rsplit('.', 1)[-1]}"
        if col in COLUMNS and row.get(col) is None and value is not None:
            is_text = SCHEMA.field(col).type == pa.string()
            if is_text or isinstance(value, (int, float)) and not isinstance(value, bool):
                row[col] = str(value) if is_text else float(value)
    row["hp_json"] = json.dumps({k: _json_safe(v) for k, v in hp.items()}, sort_keys=True, default=str)
    for stage, values in (metrics or {}).items():
        if stage not in STAGES:
            raise UserError(f"unknown metrics stage {stage!r}; choose before, after or retrain")
        for name, value in values.items():
            col = f"{stage}_{name}"
            if col in COLUMNS and row.get(col) is None:
                row[col] = None if value is None else float(value)
    row["metrics_json"] = json.dumps({s: {k: _json_safe(v) for k, v in m.items()} for s, m in (metrics or {}).items()},
                                     sort_keys=True, default=str)
    row["extra_json"] = json.dumps({k: _json_safe(v) for k, v in (extra or {}).items()}, sort_keys=True, default=str)
    return row


def _complete(row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    unknown = [c for c in row if c not in COLUMNS]
    if unknown:
        raise UserError(f"unknown result columns {unknown}; use make_row(..., extra=...) for free-form values")
    if row.get("kind") not in KINDS:
        raise UserError(f"result row kind must be one of {', '.join(KINDS)}, got {row.get('kind')!r}")
    out = {c: row.get(c) for c in COLUMNS}
    out["schema_version"] = SCHEMA_VERSION
    out["row_id"] = out["row_id"] or uuid.uuid4().hex
    out["created_at"] = out["created_at"] or now
    out["status"] = out["status"] or "ok"
    for col in ("hp_json", "metrics_json", "extra_json"):
        out[col] = out[col] or "{}"
    if out["git_sha"] is None and out["packages_json"] is None:
        out.update(provenance())
    for name in SCHEMA.names:  # NaN -> null in float columns, so "missing" has one spelling
        v = out[name]
        if isinstance(v, float) and math.isnan(v):
            out[name] = None
    return out


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in str(path):
        try:
            return pafs.FileSystem.from_uri(str(path))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise UserError(f"cannot open results path {path}: {exc}") from None
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(str(path)))


def to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    records = [_complete(r, now) for r in rows]
    try:
        return pa.Table.from_pylist(records, schema=SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UserError(f"a result value does not fit the results schema: {exc}") from None


def append(path: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Append rows under ``path``; one new file per kind. Returns the written file paths. Safe to call from many
    processes at once: files are uniquely named and published by an atomic rename (local) or a single PUT."""
    table = to_table(rows)
    if table.num_rows == 0:
        return []
    fs, root = filesystem(path)
    written = []
    kinds = table.column("kind").to_pylist()
    for kind in sorted(set(kinds)):
        part = table.filter(pc.equal(table.column("kind"), kind))
        day = part.column("created_at")[0].as_py().strftime("%Y-%m-%d")
        part = part.drop_columns(["kind"]).cast(FILE_SCHEMA)  # the folder name holds it
        folder = f"{root}/kind={kind}/date={day}"
        name = f"part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex}.parquet"
        fs.create_dir(folder, recursive=True)
        target = f"{folder}/{name}"
        if isinstance(fs, pafs.LocalFileSystem):
            tmp = f"{folder}/.{name}.tmp"
            try:
                pq.write_table(part, tmp, filesystem=fs)
                fsync_file(tmp)  # the row survives a power loss once append returns
                os.replace(tmp, target)  # atomic on POSIX; readers ignore dot-files meanwhile
            except BaseException:  # an error, Ctrl-C or SIGTERM: no hidden temporary file left
                Path(tmp).unlink(missing_ok=True)
                raise
            fsync_dir(folder)
        else:
            pq.write_table(part, target, filesystem=fs)
        written.append(target)
    return written


def load(path: str, *, kinds: Iterable[str] | None = None) -> pd.DataFrame:
    """All rows under ``path`` as a DataFrame whose columns are exactly :data:`SCHEMA` (``pd.ArrowDtype``, so
    strings stay Arrow strings, ints stay ints with nulls, timestamps keep UTC). Older files missing newer columns
    read as nulls. An absent path gives an empty frame with the schema."""
    fs, root = filesystem(path)
    kind = fs.get_file_info(root).type
    if kind == pafs.FileType.NotFound:
        return SCHEMA.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    if kind != pafs.FileType.Directory:
        raise UserError(f"results path {path} is a file, not a directory (a results store is a folder)")
    dataset = ds.dataset(root, schema=SCHEMA, format="parquet", filesystem=fs, partitioning=PARTITIONING)
    kinds = list(kinds or [])
    table = dataset.to_table(filter=ds.field("kind").isin(kinds) if kinds else None)
    return table.to_pandas(types_mapper=pd.ArrowDtype)
