"""The scheduler lease: one lock row in the ledger, so a scheduled run and a manual run never process a batch at once.

A run takes the lease (``BEGIN IMMEDIATE``: two runs cannot both see it free), then renews ``heartbeat_at`` from a
background thread every ``timeout_s / 4`` seconds. Another run refuses to start (:class:`LeaseHeld`, exit 75) while
the lease is live. It takes the lease over when the holder is gone:

- its heartbeat is older than the holder's ``timeout_s`` (default 600 s: a crashed or frozen process elsewhere), or
- the holder ran on this host and its pid no longer exists (a crash here is taken over at once).

Every takeover increments ``generation`` (a fencing token). Each scheduler transition calls :meth:`Lease.check`
inside its transaction, so a frozen holder that wakes up after a takeover cannot write: it gets :class:`LeaseLost`.
The token also reaches the candidate checkpoint: it is written into a directory named after the generation and
renamed into ``models/<run name>`` only inside a transaction that passed :meth:`Lease.check`
(:mod:`orchestrator.ledger.fencing`), so a fenced-out holder cannot put files where the live run expects its own.

Clocks: the holder measures its own heartbeat age with ``time.monotonic()`` (immune to NTP steps and manual clock
changes); if it could not renew for ``timeout_s`` (frozen, suspended, starved) it stops at its next
:meth:`check`, since another run may already be taking over. ``heartbeat_at`` in the ledger stays wall time: it
is compared by *other* processes, possibly on other hosts, and wall time is the only clock they share. A wall
clock jump can therefore make another run take over a live holder early; fencing makes that safe (the old holder
can no longer write), never a double write.

    with Lease(ledger_path, timeout_s=600) as lease:    # raises LeaseHeld if another run is live
        with ledger.transaction() as c:
            lease.check(c)                              # raises LeaseLost if taken over meanwhile
            ...
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from orchestrator.ledger.db import Ledger, utc_now
from trainables.errors import UserError

EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later


class LeaseHeld(UserError):
    """Another live run holds the lease."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (it was presumed dead); it must stop writing."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0) but is dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Lease:
    """The named lease in the ledger at ``ledger_path``; a context manager."""

    def __init__(self, ledger_path: str | os.PathLike, *, name: str = "scheduler", timeout_s: float = 600.0,
                 monotonic: Callable[[], float] = time.monotonic):
        if timeout_s <= 0:
            raise UserError(f"lock timeout must be positive, got {timeout_s}")
        self.ledger_path, self.name, self.timeout_s = Path(ledger_path), name, float(timeout_s)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.token = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.generation: int | None = None
        self.lost = False
        self._monotonic = monotonic          # this process's clock for its own heartbeat age (tests pass a fake)
        self._renewed: float | None = None   # monotonic time of the last successful renewal
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _stale(self, row: sqlite3.Row, now: float) -> str | None:
        """Why the holder is presumed dead, or None if it is live."""
        if now - (row["heartbeat_at"] or 0) > (row["timeout_s"] or self.timeout_s):
            return f"heartbeat {now - row['heartbeat_at']:.0f} s old (timeout {row['timeout_s']:.0f} s)"
        if row["host"] == self.host and row["pid"] != self.pid and not pid_alive(row["pid"]):
            return f"process {row['pid']} on this host is gone"
        return None

    def acquire(self) -> Lease:
        try:
            self._take()
        except sqlite3.OperationalError as exc:  # the write lock stayed taken past the busy timeout
            raise LeaseHeld(f"the ledger {self.ledger_path} is locked by another process ({exc}); try again "
                            f"later") from None
        self._renewed = self._monotonic()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _take(self) -> None:
        with Ledger(self.ledger_path) as ledger, ledger.transaction() as c:
            row = c.execute("SELECT * FROM locks WHERE name = ?", (self.name,)).fetchone()
            now = time.time()
            if row is not None and row["owner"] is not None:
                why = self._stale(row, now)
                if why is None:
                    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row["acquired_at"]))
                    raise LeaseHeld(
                        f"another unlearning run holds the {self.name} lock (pid {row['pid']} on {row['host']}, "
                        f"since {since}, last heartbeat {now - row['heartbeat_at']:.0f} s ago); it is taken over "
                        f"automatically once that heartbeat is older than {row['timeout_s']:.0f} s")
                Ledger.event(c, "lease_taken_over", previous=row["owner"], reason=why)
            self.generation = (row["generation"] if row is not None else 0) + 1
            c.execute("INSERT INTO locks (name, owner, host, pid, generation, acquired_at, heartbeat_at, timeout_s) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
                      "host = excluded.host, pid = excluded.pid, generation = excluded.generation, "
                      "acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at, "
                      "timeout_s = excluded.timeout_s",
                      (self.name, self.token, self.host, self.pid, self.generation, now, now, self.timeout_s))

    def _heartbeat(self) -> None:
        with Ledger(self.ledger_path) as ledger:
            while not self._stop.wait(self.timeout_s / 4):
                try:
                    cur = ledger.conn.execute(
                        "UPDATE locks SET heartbeat_at = ? WHERE name = ? AND owner = ? AND generation = ?",
                        (time.time(), self.name, self.token, self.generation))
                except sqlite3.OperationalError:  # busy for longer than the busy timeout: try next beat
                    continue
                if cur.rowcount == 0:
                    self.lost = True
                    return
                self._renewed = self._monotonic()

    def renewal_age_s(self) -> float:
        """Seconds since this holder last renewed its heartbeat, by this process's monotonic clock."""
        return float("inf") if self._renewed is None else self._monotonic() - self._renewed

    def check(self, c: sqlite3.Connection) -> None:
        """Inside a write transaction: raise :class:`LeaseLost` unless this run still holds the lease."""
        row = c.execute("SELECT owner, generation FROM locks WHERE name = ?", (self.name,)).fetchone()
        silent = self.renewal_age_s()
        if silent > self.timeout_s:  # frozen or starved past the timeout: another run may be taking over now
            self.lost = True
            raise LeaseLost(f"this run could not renew the {self.name} lock for {silent:.0f} s (timeout "
                            f"{self.timeout_s:.0f} s: it was suspended or starved), so another run may take over; "
                            f"stopping without writing. The next run continues the batch.")
        if self.lost or row is None or row["owner"] != self.token or row["generation"] != self.generation:
            self.lost = True
            raise LeaseLost(f"the {self.name} lock was taken over by another run (presumed this one dead); "
                            f"stopping without writing. The other run continues the batch.")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with Ledger(self.ledger_path) as ledger, ledger.transaction() as c:
            c.execute("UPDATE locks SET owner = NULL, heartbeat_at = ? WHERE name = ? AND owner = ?",
                      (time.time(), self.name, self.token))

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def describe_lock(ledger: Ledger, name: str = "scheduler") -> str:
    """One line for ``unlearn schedule status``-style output."""
    row = ledger.conn.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
    if row is None or row["owner"] is None:
        return f"{name} lock: free (checked {utc_now()})"
    age = time.time() - row["heartbeat_at"]
    return f"{name} lock: held by pid {row['pid']} on {row['host']} (heartbeat {age:.0f} s ago)"
