"""SIGTERM is handled like Ctrl-C (issue 18, case 9): a real `unlearn pretrain` terminated while it writes its
checkpoint exits 143 and leaves no hidden temporary directory and no --out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO_ROOT

# Runs the real CLI in a subprocess; the checkpoint's first file write signals the test, then blocks, so the
# SIGTERM arrives at a known point: inside save_checkpoint, with the hidden .tmp- directory present.
SCRIPT = """
import pathlib, sys, time
import torch
real_save = torch.save
def blocking_save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    pathlib.Path(sys.argv[1]).touch()
    time.sleep(300)
torch.save = blocking_save
from orchestrator.cli import main
sys.exit(main(sys.argv[2:]))
"""
TINY = ["--set", "data.image_size=16", "--set", "data.num_members=60", "--set", "data.num_nonmembers=60",
        "--set", "model.width=4", "--set", "model.proj_dim=8", "--set", "optim.batch_size=30",
        "--set", "optim.epochs=1", "--set", "eval.knn_k=5", "--set", "runtime.progress=false"]


def test_sigterm_while_writing_a_checkpoint_cleans_up(tmp_path):
    marker, out = tmp_path / "writing", tmp_path / "ck" / "simclr"
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(marker), "pretrain", "--dataset", "digits",
                             "--out", str(out), *TINY], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "never reached the checkpoint write"
            time.sleep(0.05)
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(".simclr.tmp-")]  # mid-write indeed
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []  # no .simclr.tmp-* directory, no half checkpoint
