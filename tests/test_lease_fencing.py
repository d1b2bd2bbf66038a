"""Fencing (issue 18, case 4): a scheduler frozen past the lock timeout and taken over cannot write.

The fault test freezes a real ``unlearn schedule run`` subprocess with SIGSTOP while it is about to write its
candidate, ages its heartbeat past the timeout (what the frozen time would do), lets a second run take the lease
over, resumes the frozen one (while the live run trains, or after it promoted), and checks: the frozen run exits 75
without writing ``models/<run>``, the live run promotes its own candidate, nothing is left beside it, and the ledger
is consistent. The unit tests pin the monotonic self-fence and the staging-directory rules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from orchestrator.ledger.fencing import install_candidate, remove_stale_staging, staging_dir
from orchestrator.ledger.lease import Lease, LeaseLost
from tests import fence_fakes
from tests.conftest import REPO_ROOT
from tests.ledger_fakes import ledger_problems, make_base_checkpoint
from trainables.checkpoint import read_meta
from trainables.data.splits import Splits


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained")


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the holder exited early ({proc.returncode}): {proc.communicate()}")
        assert time.monotonic() < deadline, "the holder never reached its pause point"
        time.sleep(0.05)


@pytest.mark.parametrize("resume_at", ["during_live_training", "after_live_promotion"])
def test_frozen_holder_is_fenced_and_the_live_run_promotes(tmp_path, base_ckpt, monkeypatch, capsys, resume_at):
    ledger = tmp_path / "ledger" / "ledger.sqlite"
    storage = tmp_path / "ray_runs"
    members = [int(i) for i in Splits.load(base_ckpt / "splits.parquet")["member"]]
    assert main(["models", "register", str(base_ckpt), "--ledger", str(ledger)]) == 0
    assert main(["requests", "add", "--subject", "s", "--sample-ids", f"{members[0]},{members[1]}",
                 "--ledger", str(ledger)]) == 0
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1", "PAUSE_DIR": str(gate),
           "FAKE_WRITER": "frozen"}
    frozen = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "schedule", "run", "--ledger", str(ledger), "--storage", str(storage),
         "--executor", "tests.fence_fakes:PausingExecutor"],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(gate / "paused", frozen)
        os.kill(frozen.pid, signal.SIGSTOP)  # frozen: no heartbeat, no progress
        (gate / "go").touch()                # it would write its candidate as soon as it runs again
        with Ledger(ledger) as led:          # the frozen time passing: its heartbeat is now an hour old
            led.conn.execute("UPDATE locks SET heartbeat_at = heartbeat_at - 3600")

        def resume_frozen() -> None:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.wait(timeout=120)

        monkeypatch.setattr(fence_fakes, "BEFORE_UNLEARN",
                            [resume_frozen] if resume_at == "during_live_training" else [])
        monkeypatch.setenv("FAKE_WRITER", "live")
        capsys.readouterr()
        live = main(["schedule", "run", "--ledger", str(ledger), "--storage", str(storage),
                     "--executor", "tests.fence_fakes:HookedExecutor"])
        if resume_at == "after_live_promotion":
            resume_frozen()
    finally:
        if frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.kill()
    out, err = frozen.communicate()
    assert live == 0, capsys.readouterr()
    assert "version 2 is now current" in capsys.readouterr().out
    assert frozen.returncode == 75, out + err
    assert "taken over by another run" in err and "Traceback" not in err

    with Ledger(ledger) as led:
        run_name = led.get_batch(1)["run_name"]
        current = led.current_model()
        assert [b["state"] for b in led.list_batches()] == ["done"]
        assert len(led.events("lease_taken_over")) == 1
    models = ledger.parent / "models"
    assert current["version"] == 2 and Path(current["uri"]) == (models / run_name).resolve()
    assert [p.name for p in models.iterdir()] == [run_name]  # the frozen run's staging directory is gone
    assert read_meta(models / run_name)["written_by"] == "live"
    assert ledger_problems(ledger) == []


def test_a_holder_silent_past_its_timeout_by_its_monotonic_clock_stops(tmp_path):
    now = [1000.0]
    path = tmp_path / "ledger.sqlite"
    Ledger(path, create=True).close()
    lease = Lease(path, timeout_s=3600, monotonic=lambda: now[0]).acquire()
    try:
        with Ledger(path) as led:
            with led.transaction() as c:
                lease.check(c)  # renewed 0 s ago
            now[0] += 3601      # frozen for longer than the timeout; the wall clock and the ledger row are unchanged
            with pytest.raises(LeaseLost, match="could not renew"), led.transaction() as c:
                lease.check(c)
    finally:
        lease.release()


def test_install_candidate_renames_only_for_the_current_generation(tmp_path):
    path = tmp_path / "ledger.sqlite"
    models = tmp_path / "models"
    old = Lease(path, timeout_s=30)
    Ledger(path, create=True).close()
    old.acquire()
    old._stop.set()
    with Ledger(path) as led:
        led.conn.execute("UPDATE locks SET heartbeat_at = heartbeat_at - 31, host = 'elsewhere'")
    new = Lease(path, timeout_s=30).acquire()
    try:
        stale = staging_dir(models, "run-1", old.generation)
        mine = staging_dir(models, "run-1", new.generation)
        for d in (stale, mine):
            d.mkdir(parents=True)
            (d / "model.pt").write_text(d.name)
        with Ledger(path) as led:
            with pytest.raises(LeaseLost):
                install_candidate(led, old, stale, models / "run-1")
            assert not stale.exists() and not (models / "run-1").exists()
            stale.mkdir()  # left by a crashed older holder, plus a partial write of it
            (models / f".{stale.name}.tmp-0a1b2c3d").mkdir()
            (models / ".other-run.g000001").mkdir()
            removed = remove_stale_staging(models, "run-1", new.generation)
            assert sorted(p.name for p in removed) == sorted([stale.name, f".{stale.name}.tmp-0a1b2c3d"])
            install_candidate(led, new, mine, models / "run-1")
        assert (models / "run-1" / "model.pt").read_text() == mine.name
        assert sorted(p.name for p in models.iterdir()) == [".other-run.g000001", "run-1"]
    finally:
        new.release()
