"""The deletion-request ledger from Python: ``unlearn models register``, ``requests add|list`` and ``schedule run``.

Example:
    >>> ledger = Ledger("runs/ledger.sqlite")
    >>> ledger.register(base)                                  # version 1, current (creates the ledger)
    >>> ledger.add_request("alice", [3, 17, 42])               # 'req-000001', pending
    >>> ledger.requests()                                      # DataFrame: request_id, subject_id, status, ...
    >>> outcome = schedule_run(ledger, min_batch=1, dry_run=True)
    >>> outcome.code, outcome.message                          # what `unlearn schedule run` exits with and prints
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from orchestrator.api.checkpoint import Checkpoint
from orchestrator.api.command import flags, id_list, parse, path_of, set_pairs

PathLike = str | os.PathLike


class Ledger:
    """The ledger database at ``path`` (default: ``$UNLEARN_LEDGER``, else the CLI's default), as ``--ledger``
    names it, made absolute. Each call opens and closes its own connection, as a CLI command does."""

    def __init__(self, path: PathLike | None = None):
        from orchestrator.ledger.db import resolve_ledger_path

        # absolute: the same database after a later os.chdir (messages name it so)
        self.path = resolve_ledger_path(os.fspath(path) if path is not None else None).absolute()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def _flag(self) -> str:
        return f"--ledger={self.path}"

    def register(self, checkpoint: PathLike | Checkpoint, *, promote: bool = False, force: bool = False,
                 reason: str | None = None, lock_timeout: float | None = None) -> int:
        """``unlearn models register``: verify and record a checkpoint (the first one becomes current; creates the
        ledger). Returns its model version."""
        from orchestrator.commands.models import register_version

        args = parse(["models", "register", path_of(checkpoint), self._flag(),
                      *flags(promote=promote, force=force, reason=reason, lock_timeout=lock_timeout)])
        version, _row, _added = register_version(args)
        return version

    def add_request(self, subject: str, sample_ids: Iterable[int] | str | None = None, *,
                    keys: Iterable[str] | None = None, request_id: str | None = None,
                    received_at: str | None = None) -> str:
        """``unlearn requests add --subject --keys | --sample-ids``: record one deletion request naming records by
        their keys (or internal sample ids); they must be members of the current model, not yet forgotten.
        Returns its request id (a repeat with the same content is skipped)."""
        from orchestrator.commands.requests import add_requests

        ids = sample_ids if isinstance(sample_ids, str) or sample_ids is None else id_list(sample_ids)
        names = None if keys is None else ",".join(str(k) for k in keys)
        args = parse(["requests", "add", self._flag(), f"--subject={subject}",
                      *flags(sample_ids=ids, keys=names, request_id=request_id, received_at=received_at)])
        [(rid, _added)] = add_requests(args)
        return rid

    def add_requests(self, file: PathLike) -> list[str]:
        """``unlearn requests add --file``: every row of a CSV / Parquet file (subject_id, sample_ids[, request_id,
        received_at]), all or nothing. Returns the request ids newly added."""
        from orchestrator.commands.requests import add_requests

        args = parse(["requests", "add", self._flag(), f"--file={os.fspath(file)}"])
        return [rid for rid, added in add_requests(args) if added]

    def requests(self, status: str | Iterable[str] | None = None):
        """``unlearn requests list --json`` as a ``pandas.DataFrame``, oldest first (``status``: one or more of
        pending, batched, applied, verified, failed)."""
        import pandas as pd

        from orchestrator.ledger.db import Ledger as Database

        wanted = [s.strip() for s in status.split(",") if s.strip()] if isinstance(status, str) else \
            list(status) if status is not None else None
        with Database.open(self.path) as db:
            rows = db.list_requests(status=wanted or None)
            columns = [c[0] for c in db.conn.execute("SELECT * FROM requests LIMIT 0").description]
        return pd.DataFrame(rows, columns=columns)  # the same columns when no request matches

    def request(self, request_id: str) -> dict[str, Any]:
        """One request's ledger row (``unlearn requests show --json``, without its batches)."""
        from orchestrator.ledger.db import Ledger as Database
        from trainables.errors import UserError

        with Database.open(self.path) as db:
            row = db.get_request(request_id)
            if row is None:
                raise UserError(f"no request {request_id!r} in {db.path}")
        return row

    def models(self):
        """``unlearn models list --json`` as a ``pandas.DataFrame`` (one row per model version)."""
        import pandas as pd

        from orchestrator.ledger.db import Ledger as Database

        with Database.open(self.path) as db:
            columns = [c[0] for c in db.conn.execute("SELECT * FROM model_versions LIMIT 0").description]
            return pd.DataFrame(db.list_models(), columns=columns)

    def current_model(self) -> Checkpoint | None:
        """The served model's checkpoint (None before any is registered)."""
        from orchestrator.ledger.db import Ledger as Database

        with Database.open(self.path) as db:
            row = db.current_model()
        return Checkpoint(row["uri"]) if row else None

    def schedule_run(self, **options: Any):
        """:func:`schedule_run` on this ledger."""
        return schedule_run(self, **options)


def schedule_run(ledger: Ledger | PathLike | None = None, *, min_batch: int | None = None,
                 max_age: float | None = None, dry_run: bool = False, config: PathLike | None = None,
                 alpha: float | None = None, max_accuracy_drop: float | None = None,
                 utility_bootstrap: int | None = None, on_no_signal: str | None = None,
                 hold_max_age: float | None = None, hold_max_size: int | None = None, check_earlier: bool = True,
                 attack: dict[str, Any] | None = None, escalate_after: int | None = None,
                 models_dir: PathLike | None = None, storage: str | None = None, workers: int | None = None,
                 gpu: bool = False, executor: str | None = None, results: PathLike | None = None,
                 keep_failed: int | None = None, lock_timeout: float | None = None, **params: Any):
    """``unlearn schedule run``: one scheduling pass over the ledger (resume an open batch, else batch the pending
    requests once ``min_batch`` / ``max_age`` says so, unlearn, verify, promote). Every option is the CLI flag of the
    same name (None: the CLI's default; ``attack``: ``--attack-set`` keys; ``params``: UnlearnJob keys, as
    ``--set``). Returns the scheduler's ``Outcome``: ``code`` (the CLI's exit code: 0 done or nothing to do, 1 the
    batch failed, 3 escalation), ``message`` (what it prints), ``batch_id``, ``version``. Raises
    ``orchestrator.ledger.lease.LeaseHeld`` while another run holds the lock (the CLI's exit 75)."""
    from orchestrator.commands.schedule import schedule_pass

    path = ledger.path if isinstance(ledger, Ledger) else ledger
    attack_pairs = [p.removeprefix("--set=") for p in set_pairs(attack or {})]
    args = parse(["schedule", "run", *flags(ledger=path, min_batch=min_batch, max_age=max_age, dry_run=dry_run,
                                            config=config, alpha=alpha, max_accuracy_drop=max_accuracy_drop,
                                            utility_bootstrap=utility_bootstrap, on_no_signal=on_no_signal,
                                            hold_max_age=hold_max_age, hold_max_size=hold_max_size,
                                            no_check_earlier=not check_earlier, attack_set=attack_pairs or None,
                                            escalate_after=escalate_after, models_dir=models_dir, storage=storage,
                                            workers=workers, gpu=gpu, executor=executor, results=results,
                                            keep_failed=keep_failed, lock_timeout=lock_timeout),
                  *set_pairs(params)])
    return schedule_pass(args)
