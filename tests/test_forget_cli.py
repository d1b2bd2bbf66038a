"""`unlearn forget` / `unlearn retrain` on the CLI: lineage conventions of the output checkpoint, config files,
and clear exit-2 errors that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.cli import main
from orchestrator.run.jobs import run_pretrain
from tests.conftest import tiny_job
from trainables.checkpoint import load_checkpoint, sha256_file, verify_checkpoint
from trainables.losses import Penalty

FAST = ["--set", "runtime.progress=false"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "base"
    run_pretrain(tiny_job("simclr", optim={"epochs": 2}), out)
    return out


def snapshot(path: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(path.iterdir())}


def forget(base, out, *extra) -> int:
    return main(["forget", "--checkpoint", str(base), "--out", str(out), *FAST, *extra])


def test_forget_writes_a_child_checkpoint_with_the_lineage_conventions(base, tmp_path, capsys):
    before = snapshot(base)
    child = tmp_path / "child"
    assert forget(base, child, "--method", "memgp", "--epochs", "2", "--set", "a=1") == 0
    captured = capsys.readouterr()
    assert "epoch" not in captured.err  # runtime.progress=false: no progress lines
    assert "forgot 40 samples, retained 160" in captured.out
    assert "knn_acc" in captured.out and "->" in captured.out  # before -> after summary
    assert snapshot(base) == before  # the input is only read

    parent = load_checkpoint(base)
    meta = verify_checkpoint(child)
    loaded = load_checkpoint(child)
    assert meta["kind"] == "unlearn"
    assert meta["parent"]["sha256"] == parent.meta["sha256"]["model.pt"]
    assert Path(meta["parent"]["path"]) == base.resolve()
    assert meta["config"] == parent.meta["config"]
    assert meta["model_spec"] == parent.meta["model_spec"]
    assert meta["forgotten_ids"] == parent.splits["forget"].tolist()
    assert meta["unlearning"]["method"] == "memgp" and meta["unlearning"]["a"] == 1.0
    assert meta["unlearning"]["forget_count"] == 40 and meta["unlearning"]["epochs"] == 2
    assert [h["epoch"] for h in meta["history"]] == [1, 2] and "memgp" in meta["history"][0]
    assert meta["wall_time_s"] > 0
    np.testing.assert_array_equal(loaded.splits["forget"], parent.splits["forget"])
    np.testing.assert_array_equal(loaded.splits["member"], parent.splits["member"])
    np.testing.assert_array_equal(loaded.splits["nonmember_eval"], parent.splits["nonmember_eval"])
    assert any(not torch.equal(v, parent.model.state_dict()[k]) for k, v in loaded.model.state_dict().items())

    # A second round forgets more: the forgotten set accumulates; ids already forgotten are refused.
    more = parent.splits["retain"][:5]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(map(str, more)))
    grandchild = tmp_path / "grandchild"
    assert forget(child, grandchild, "--forget-ids", str(ids_file), "--epochs", "1") == 0
    meta2 = verify_checkpoint(grandchild)
    expected = sorted(set(parent.splits["forget"].tolist()) | set(more.tolist()))
    assert meta2["forgotten_ids"] == expected
    assert meta2["unlearning"]["forget_ids"] == more.tolist()
    np.testing.assert_array_equal(load_checkpoint(grandchild).splits["forget"], expected)
    assert meta2["parent"]["sha256"] == meta["sha256"]["model.pt"]
    capsys.readouterr()

    assert forget(child, tmp_path / "again", "--epochs", "1") == 2
    assert "already forgot every id of its forget split" in capsys.readouterr().err
    assert forget(grandchild, tmp_path / "again", "--forget-ids", str(more[0]), "--epochs", "1") == 2
    assert "already forgotten by an earlier unlearning run" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_config_file_of_flat_keys_and_set_precedence(base, tmp_path):
    best = tmp_path / "best.yaml"
    best.write_text("method: gp\na: 0.5\nb: 2.0\nc: 0.1\nform: wgan\nepochs: 1\nlr: 0.002\n")
    out = tmp_path / "out"
    assert forget(base, out, "--config", str(best), "--set", "b=3") == 0
    unlearning = verify_checkpoint(out)["unlearning"]
    assert (unlearning["method"], unlearning["a"], unlearning["b"], unlearning["c"]) == ("gp", 0.5, 3.0, 0.1)
    assert (unlearning["form"], unlearning["lr"]) == ("wgan", 0.002)
    assert {"train", "gp", "norm"} <= set(verify_checkpoint(out)["history"][0])


def test_retrain_command_writes_a_retrain_checkpoint(base, tmp_path, capsys):
    out = tmp_path / "retrained"
    assert main(["retrain", "--checkpoint", str(base), "--out", str(out), *FAST, "--set", "retrain_epochs=1"]) == 0
    meta = verify_checkpoint(out)
    assert meta["kind"] == "retrain" and meta["unlearning"]["method"] == "retrain"
    assert meta["model_spec"]["num_members"] == 160  # a fresh model sized for the retain set
    assert len(meta["history"]) == 1
    assert meta["forgotten_ids"] == load_checkpoint(base).splits["forget"].tolist()
    assert "retrain on a simclr model" in capsys.readouterr().out


def _nan_penalty(model, x, form="squared", **estimator):
    from trainables.losses.member_gradient_penalty import member_gradient_penalty as real

    penalty = real(model, x, form, **estimator)
    return Penalty(penalty.loss * float("nan"), penalty.grad_norms)


@pytest.mark.parametrize("args, message", [
    (["--method", "nope"], "unknown unlearning method 'nope'; choose one of: gp, memgp, retrain"),
    (["--method", "random_labels"], "random_labels needs a supervised classifier"),
    (["--method", "salun"], "salun needs a supervised classifier"),
    (["--method", "scrub", "--set", "scrub_alpha=0", "--set", "scrub_gamma=0"], "scrub_alpha and scrub_gamma are both 0"),
    (["--forget-ids", ""], "the forget set is empty"),
    (["--forget-ids", "EMPTYFILE"], "the forget set is empty"),
    (["--forget-ids", "NONMEMBER"], "forget ids are not members of the training set"),
    (["--forget-ids", "1,x"], "'x' is not an integer sample id"),
    (["--forget-ids", "missing/ids.txt"], "forget-ids file not found"),
    (["--set", "penalty_output=label_logprob"], "penalty_output=label_logprob: a simclr encoder has no labels"),
    (["--set", "nosuchkey=1"], "unknown config key 'nosuchkey'"),
    (["--set", "form=cubic"], "form"),
    (["--set", "b=1e12"], "epoch 1: loss term 'total' exploded"),
    (["--method", "memgp", "--set", "a=0", "--set", "explode_limit=1e-3"], "epoch 1: loss term 'memgp' exploded"),
    (["NAN"], "epoch 1: loss term 'memgp' became nan"),
])
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(base, tmp_path, capsys, monkeypatch, args,
                                                                   message):
    splits = load_checkpoint(base).splits
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    replace = {"EMPTYFILE": str(empty), "NONMEMBER": str(splits["nonmember_eval"][0])}
    args = [replace.get(a, a) for a in args]
    if args == ["NAN"]:
        monkeypatch.setattr("trainables.unlearning.penalty_methods.member_gradient_penalty", _nan_penalty)
        args = ["--method", "memgp"]  # the penalty the patch replaces is memgp's
    out = tmp_path / "out"
    assert forget(base, out, "--epochs", "1", *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["empty.txt"]  # no half-written temp directory either


def test_missing_checkpoint_and_existing_out_are_refused(base, tmp_path, capsys):
    assert forget(tmp_path / "nowhere", tmp_path / "out") == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert forget(base, base) == 2
    assert "already exists" in capsys.readouterr().err
    assert json.loads((base / "meta.json").read_text())["kind"] == "pretrain"
