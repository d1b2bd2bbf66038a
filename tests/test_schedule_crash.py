"""Crash at each phase of a scheduled run (``os._exit`` in a real subprocess), run again, check the ledger.

Setup shared by every phase: a base model, one batch already verified (version 2), three new pending requests,
one of which repeats an id of a pending request. Each case copies that ledger, runs ``unlearn schedule run`` in a
subprocess with ``UNLEARN_CRASH_AT=<phase>`` (killed, exit 137), runs it again, and asserts: every request pending or verified,
none lost, none applied twice, exactly one current model whose lineage covers exactly the verified requests, the
same batch resumed (no second batch), and for a crash during training the Ray-Train-style resume by run name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from orchestrator.ledger.scheduler import CRASH_ENV, CRASH_EXIT, CRASH_PHASES
from tests.conftest import REPO_ROOT
from tests.ledger_fakes import ledger_problems, make_base_checkpoint
from trainables.checkpoint import read_meta
from trainables.data.splits import Splits

FAKE = ["--executor", "tests.ledger_fakes:FakeExecutor"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A ledger directory at rest: version 2 current (batch 1 verified), 3 requests pending."""
    root = tmp_path_factory.mktemp("crash")
    base = make_base_checkpoint(root / "pretrained")
    members = [int(i) for i in Splits.load(base / "splits.parquet")["member"]]
    ledger = root / "template" / "ledger.sqlite"
    run = ["--ledger", str(ledger)]
    assert main(["models", "register", str(base), *run]) == 0
    assert main(["requests", "add", "--subject", "s0", "--sample-ids", f"{members[0]},{members[1]}", *run]) == 0
    assert main(["schedule", "run", *FAKE, "--storage", str(root / "ray_runs_template"), *run]) == 0
    for n, chunk in enumerate([members[2:4], members[4:5], members[3:6]], start=1):  # members[3] asked twice
        assert main(["requests", "add", "--subject", f"s{n}", "--sample-ids", ",".join(map(str, chunk)), *run]) == 0
    return ledger.parent


def schedule_run(ledger, crash_at: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1", CRASH_ENV: crash_at}
    cmd = [sys.executable, "-m", "orchestrator", "schedule", "run", "--ledger", str(ledger), *FAKE,
           "--storage", str(ledger.parent / "ray_runs")]
    return subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("phase", CRASH_PHASES)
def test_crash_at_each_phase_then_rerun_is_consistent(template, tmp_path, phase, capsys):
    work = tmp_path / "ledger"
    shutil.copytree(template, work, ignore=shutil.ignore_patterns("models"))  # version 2 stays in the template
    ledger = work / "ledger.sqlite"

    crashed = schedule_run(ledger, crash_at=phase)
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    assert f"crash injected at {phase}" in crashed.stderr
    with Ledger(ledger) as led:  # the crash left a consistent state too: nothing half-promoted
        assert led.current_model()["version"] == 2
        batch_state = led.get_batch(2)["state"]
    assert batch_state == {"after_batching": "batched", "during_training": "batched", "after_training": "batched",
                           "before_verification": "trained", "after_verification": "verified",
                           "after_promotion": "verified"}[phase]

    # The re-run goes through the same entry point in this process (a second subprocess would only add ~5 s of
    # imports); the crashed process is gone, so its lease is taken over at once.
    capsys.readouterr()
    assert main(["schedule", "run", "--ledger", str(ledger), *FAKE, "--storage", str(work / "ray_runs")]) == 0
    rerun = capsys.readouterr().out
    assert f"resuming batch 2 from state {batch_state}" in rerun
    assert ledger_problems(ledger) == []
    with Ledger(ledger) as led:
        assert [r["status"] for r in led.list_requests()] == ["verified"] * 4  # none lost
        assert [b["state"] for b in led.list_batches()] == ["done", "done"]  # the same batch, resumed
        current = led.current_model()
        assert (current["version"], current["parent"], current["batch_id"]) == (3, 2, 2)
        meta = read_meta(current["uri"])
    assert meta["epochs_run"] == [1, 2]  # every epoch trained exactly once
    assert meta["resumed"] is (phase == "during_training")
    assert ("adopting the checkpoint" in rerun) is (phase == "after_training")
    # one candidate written for the batch, in this ledger's models directory, nothing half-written beside it
    assert [p.name for p in (work / "models").iterdir()] == [Path(current["uri"]).name]
    assert Path(current["uri"]).parent == (work / "models").resolve()
