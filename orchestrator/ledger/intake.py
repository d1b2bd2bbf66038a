"""Deletion-request intake: parse ``--sample-ids`` and request files, and check ids against the current model.

Files (``.csv`` or ``.parquet``) have one request per row: ``subject_id`` and ``sample_ids`` (``"1,2,3"``, or a
list column in Parquet), optionally ``request_id`` (an external id: re-importing the same file adds nothing twice)
and ``received_at`` (ISO-8601 time, default now). Or they name records by key: a ``key`` column with one record
per row, and the rows of one ``subject_id`` (and ``request_id`` / ``received_at``, when given) form one request.
Keys are resolved to sample ids against the current model (:mod:`orchestrator.ledger.record_keys`).

Policy for ids that are not members, or that the current model already forgot: the whole input is **rejected**
(UserError, nothing written), naming the ids. A re-sent request with the same ``request_id`` is idempotent instead.

    reqs = read_request_file("requests.csv")
    check_members(reqs, member_ids(current_row))
    ledger.add_requests(reqs, check=reject_forgotten)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from orchestrator.ledger.db import NewRequest, parse_time
from orchestrator.ledger.safe_text import check_id, printable
from trainables.errors import UserError

_SEPARATORS = re.compile(r"[,;\s]+")
MAX_SAMPLE_ID = 2**63 - 1  # sample ids are int64 everywhere (manifests, numpy, the ledger)


def shown_ids(ids, limit: int = 10) -> str:
    """The first ``limit`` sample ids, sorted, for an error message (``1, 2 ... (12 in all)``)."""
    ids = sorted(ids)
    return ", ".join(map(str, ids[:limit])) + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def parse_sample_ids(value, where: str = "--sample-ids") -> tuple[int, ...]:
    """``"1,2,3"`` / ``"1; 2 3"`` / ``[1, 2, 3]`` / ``7`` -> sorted unique ids; UserError on anything else."""
    if isinstance(value, (int, np.integer)):
        items = [value]
    elif isinstance(value, str):
        items = [t for t in _SEPARATORS.split(value.strip().strip("[]")) if t]
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    else:
        items = None
    try:
        ids = sorted({int(str(i).strip()) for i in items})
    except (TypeError, ValueError):
        raise UserError(f"{where}: sample ids must be integers separated by commas, got {value!r}") from None
    if not ids:
        raise UserError(f"{where}: no sample ids given")
    if ids[0] < 0:
        raise UserError(f"{where}: sample ids are non-negative, got {ids[0]}")
    if ids[-1] > MAX_SAMPLE_ID:
        raise UserError(f"{where}: sample id {ids[-1]} is above the largest possible id ({MAX_SAMPLE_ID})")
    return tuple(ids)


def make_request(subject_id, sample_ids, *, request_id=None, received_at=None, where: str = "",
                 keys: tuple[str, ...] | None = None) -> NewRequest:
    """One request by sample ids, or (``keys``, ``sample_ids=None``) by record keys, resolved later."""
    subject = "" if subject_id is None else str(subject_id).strip()
    if not subject or subject.lower() == "nan":
        raise UserError(f"{where}a subject id is required")
    check_id(subject, "subject_id", where)
    if received_at is not None:
        check_received_at(str(received_at), where)
    rid = None if request_id is None or str(request_id).strip() in ("", "nan", "None") else str(request_id).strip()
    if rid is not None:
        check_id(rid, "request_id", where)
    received = None if received_at is None else str(received_at)
    if keys is not None:
        if not keys or any(not k for k in keys):
            raise UserError(f"{where}no record keys, or an empty key")
        return NewRequest(subject, (), rid, received, tuple(keys))
    return NewRequest(subject, parse_sample_ids(sample_ids, where=f"{where}sample_ids"), rid, received)


def check_received_at(text: str, where: str = "") -> None:
    """An ISO-8601 time **with** a zone (``Z`` or ``+HH:MM``): a zoneless time means a different instant on every
    host, and deadlines are computed from it."""
    from datetime import datetime

    try:
        parse_time(text)
        zoned = datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
    except (ValueError, OverflowError):
        raise UserError(f"{where}received_at {printable(text)!r} is not an ISO-8601 time with a zone") from None
    if not zoned:
        raise UserError(f"{where}received_at {printable(text)!r} has no time zone; add one, e.g. "
                        f"{text}Z (UTC) or {text}+02:00")


def read_request_file(path: str | Path) -> list[NewRequest]:
    """One :class:`NewRequest` per row of a CSV or Parquet file; UserError naming the row on bad data."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"request file not found: {p}")
    try:
        if p.suffix.lower() == ".csv":
            df = read_csv_strict(p)
        elif p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        else:
            raise UserError(f"{p}: request files are .csv or .parquet")
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError; UnicodeDecodeError too
        raise UserError(f"cannot read {p}: {exc}") from None
    df = df.rename(columns={"subject": "subject_id"})
    by_key = "key" in df.columns and "sample_ids" not in df.columns
    missing = {"subject_id", "key" if by_key else "sample_ids"} - set(df.columns)
    if missing:
        raise UserError(f"{p} lacks column(s) {', '.join(sorted(missing))} (has: {', '.join(map(str, df.columns))}); "
                        f"requests name sample_ids or, one record per row, a key")
    if df.empty:
        raise UserError(f"{p} holds no requests")
    out = _requests_by_key(df, p) if by_key else []
    for n, row in enumerate([] if by_key else df.to_dict("records"), start=1):
        received = row.get("received_at") or None
        out.append(make_request(row["subject_id"], row["sample_ids"], request_id=row.get("request_id"),
                                received_at=None if received is None else str(received), where=f"{p} row {n}: "))
    ids = [r.request_id for r in out if r.request_id]
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UserError(f"{p}: request_id repeated within the file: {', '.join(dup[:10])}")
    return out


def _requests_by_key(df, p: Path) -> list[NewRequest]:
    """One request per (subject_id, request_id, received_at) group of a file with a ``key`` column, in file order."""
    cols = [c for c in ("subject_id", "request_id", "received_at") if c in df.columns]
    df = df.assign(**{c: df[c].astype(str).str.strip() for c in cols},
                   key=df["key"].map(lambda k: "" if k is None else str(k).strip()))
    out = []
    for group, rows in df.groupby(cols, sort=False, dropna=False):
        first = dict(zip(cols, group if isinstance(group, tuple) else (group,), strict=True))
        received = first.get("received_at") or None
        out.append(make_request(first["subject_id"], None, request_id=first.get("request_id"),
                                received_at=None if received in (None, "nan", "None") else received,
                                where=f"{p} rows {int(rows.index[0]) + 1}-{int(rows.index[-1]) + 1}: ",
                                keys=tuple(rows["key"])))
    return out


def read_csv_strict(p: Path):
    """A CSV whose every row has exactly the header's fields, else UserError naming the first bad line: a row with
    an extra field (an unquoted ``12,13``) must not shift its values into other columns (pandas would silently
    take the first field as an index). Blank lines are skipped; every value is a string."""
    import csv

    import pandas as pd

    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = [h.strip() for h in next(reader, [])]
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise UserError(f"{p} line {reader.line_num}: {len(row)} field(s) but the header has "
                                    f"{len(header)} ({','.join(header)}); quote lists of ids (\"12,13\"); "
                                    f"nothing was added")
                rows.append(row)
        except csv.Error as exc:
            raise UserError(f"{p} line {reader.line_num}: {exc}; nothing was added") from None
    if len(set(header)) != len(header):
        raise UserError(f"{p}: a column name is repeated in the header ({','.join(header)})")
    return pd.DataFrame(rows, columns=header, dtype=str)


def check_members(requests: list[NewRequest], members: np.ndarray) -> None:
    """Every id must be a member (training sample) of the current model; otherwise nothing is added."""
    asked = np.array(sorted({i for r in requests for i in r.sample_ids}), dtype=np.int64)
    not_members = np.setdiff1d(asked, members)
    if len(not_members):
        raise UserError(f"{len(not_members)} sample id(s) not members of the current model's training set, so there "
                        f"is nothing to unlearn: {shown_ids(not_members.tolist())}; nothing was added")


def reject_forgotten(c, requests: list[NewRequest]) -> None:
    """Inside the add transaction: refuse ids the current model already forgot (re-sent ``request_id``s excepted)."""
    row = c.execute("SELECT version, forgotten_ids FROM model_versions WHERE is_current = 1").fetchone()
    if row is None:
        raise UserError("no current model: register one with `unlearn models register CHECKPOINT`")
    fresh = [r for r in requests if r.request_id is None
             or c.execute("SELECT 1 FROM requests WHERE request_id = ?", (r.request_id,)).fetchone() is None]
    already = {i for r in fresh for i in r.sample_ids} & set(json.loads(row[1]))
    if already:
        raise UserError(f"{len(already)} sample id(s) already forgotten by the current model (version {row[0]}): "
                        f"{shown_ids(already)}; remove them from the request (nothing was added)")
