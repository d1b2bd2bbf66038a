"""Executors for the fencing fault test (tests/test_lease_fencing.py), built on the deterministic FakeExecutor.

``PausingExecutor`` (run in a subprocess, the holder to be frozen): on entering ``unlearn`` it creates
``$PAUSE_DIR/paused`` and waits for ``$PAUSE_DIR/go`` before writing its candidate, so the test can SIGSTOP it at
a known point. ``HookedExecutor`` (the live run, in the test process): runs the callables in :data:`BEFORE_UNLEARN`
first, e.g. to resume the frozen holder while the live run is "training".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.ledger_fakes import FakeExecutor

BEFORE_UNLEARN: list[Callable[[], None]] = []


class PausingExecutor(FakeExecutor):
    def unlearn(self, parent, forget_ids, config, out, run_name):
        gate = Path(os.environ["PAUSE_DIR"])
        (gate / "paused").write_text(str(out))
        deadline = time.monotonic() + 300
        while not (gate / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the gate")
            time.sleep(0.05)
        return super().unlearn(parent, forget_ids, config, out, run_name)


class HookedExecutor(FakeExecutor):
    def unlearn(self, parent, forget_ids, config, out, run_name):
        for hook in BEFORE_UNLEARN:
            hook()
        return super().unlearn(parent, forget_ids, config, out, run_name)
