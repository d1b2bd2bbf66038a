"""The CLI: every command explains itself; user errors are one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orchestrator.cli import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--set", "data.image_size=16", "--set", "data.num_members=120", "--set", "model.width=8",
        "--set", "model.proj_dim=16", "--set", "optim.batch_size=60", "--set", "eval.knn_k=10",
        "--set", "runtime.progress=false"]


def unlearn(*args, env=None):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"pretrain", "inspect", "demo"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert len(capsys.readouterr().out) > 200, name


def test_pretrain_then_inspect_end_to_end(tmp_path):
    out = tmp_path / "ck"
    r = unlearn("pretrain", "--method", "byol", "--dataset", "digits", "--epochs", "2", "--out", str(out), *TINY)
    assert r.returncode == 0, r.stderr
    assert "epoch" not in r.stderr and "kNN accuracy" in r.stdout and str(out) in r.stdout  # progress=false
    r = unlearn("inspect", str(out))
    assert r.returncode == 0 and "verified" in r.stdout and "byol" in r.stdout
    history = unlearn("inspect", str(out), "--history").stdout.splitlines()  # kept although progress was off
    assert [line.split()[:2] for line in history[:2]] == [["epoch", "1"], ["epoch", "2"]]
    assert "loss=" in history[0] and history[2] == f"2 epoch(s) in {out / 'meta.json'}"
    meta = json.loads(unlearn("inspect", str(out), "--json").stdout)
    assert meta["config"]["optim"]["epochs"] == 2 and meta["config"]["model"]["width"] == 8


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--set", "optim.learning_rate=0.1"], "unknown config key 'optim.learning_rate'"),
    (["--set", "data.forget_fraction=1.5"], "forget_fraction must be in (0, 1)"),
    (["--set", "data.forget_ids=[999999]"], "not members"),
    (["--dataset", "cifar10", "--set", "data.data_dir=/nonexistent"], "data.download=true"),
    (["--config", "/nonexistent.yaml"], "config file not found"),
])
def test_user_errors_exit_2_and_write_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "ck"
    code = main(["pretrain", "--out", str(out), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and err.startswith("error: ")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_user_error_in_a_real_process_has_no_traceback(tmp_path):
    r = unlearn("pretrain", "--out", str(tmp_path / "ck"), "--set", "optim.learning_rate=0.1")
    assert r.returncode == 2 and r.stderr.strip() == "error: invalid config: unknown config key 'optim.learning_rate'"


def test_unknown_method_is_refused(tmp_path):
    r = unlearn("pretrain", "--method", "dino", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "invalid choice: 'dino'" in r.stderr and "Traceback" not in r.stderr


def test_inspect_refuses_a_tampered_checkpoint(tmp_path):
    out = tmp_path / "ck"
    assert unlearn("pretrain", "--epochs", "1", "--out", str(out), *TINY).returncode == 0
    with open(out / "model.pt", "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\x00" * 8)
    r = unlearn("inspect", str(out))
    assert r.returncode == 2 and "failed verification" in r.stderr and "Traceback" not in r.stderr


def test_out_dir_that_exists_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "keep.txt").write_text("mine")
    assert main(["pretrain", "--epochs", "1", "--out", str(tmp_path / "ck"), *TINY]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "ck" / "keep.txt").read_text() == "mine"
