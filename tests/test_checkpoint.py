"""The checkpoint format round-trips, is verified on load, and is never overwritten or half-written."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_job

from trainables.checkpoint import load_checkpoint, save_checkpoint, verify_checkpoint
from trainables.errors import UserError
from trainables.jobs.common import checkpoint_meta
from trainables.jobs.pretrain import pretrain_task
from trainables.loops import LoopContext


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job = tiny_job("moco", optim={"epochs": 1})
    model, history, spec, _, splits = pretrain_task(job, LoopContext(progress=False, log=lambda m: None))
    path = tmp_path_factory.mktemp("ck") / "moco"
    save_checkpoint(path, model, spec=spec, meta=checkpoint_meta(job, "pretrain", history), splits=splits,
                    train_state={"epoch": 1, "model_extra": model.extra_state_tensors()})
    return model, path, splits


def test_round_trip_gives_identical_outputs_and_metadata(trained):
    model, path, splits = trained
    ck = load_checkpoint(path, with_train_state=True)
    x = torch.randn(5, 3, 16, 16)
    model.eval(), ck.model.eval()
    assert torch.equal(model(x), ck.model(x))
    assert ck.meta["method"] == "moco" and ck.meta["dataset"] == "digits" and ck.meta["split_seed"] == 0
    assert ck.meta["config"]["model"]["width"] == 8 and "torch" in ck.meta["packages"]
    assert (ck.splits["forget"] == splits["forget"]).all()
    # MoCo's memory bank is not in the state_dict; the train state carries it for an exact resume
    assert torch.equal(ck.model.criterion.memory_bank.bank, model.criterion.memory_bank.bank)


def test_tampered_weights_are_refused(trained, tmp_path):
    import shutil

    _, path, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    state = torch.load(bad / "model.pt", weights_only=True)
    key = next(iter(state))
    state[key] = state[key] + 1e-3
    torch.save(state, bad / "model.pt")
    with pytest.raises(UserError, match="failed verification: sha256 of model.pt"):
        load_checkpoint(bad)


def test_tampered_meta_or_missing_file_is_refused(trained, tmp_path):
    import shutil

    _, path, _ = trained
    bad = tmp_path / "bad2"
    shutil.copytree(path, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["sha256"]["splits.parquet"] = "0" * 64
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="splits.parquet"):
        verify_checkpoint(bad)
    (bad / "model.pt").unlink()
    with pytest.raises(UserError, match="model.pt is missing"):
        verify_checkpoint(bad)
    (bad / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        verify_checkpoint(bad)


def test_existing_checkpoint_is_never_overwritten(trained):
    model, path, _ = trained
    before = (path / "model.pt").read_bytes()
    with pytest.raises(UserError, match="already exists"):
        save_checkpoint(path, model, spec={}, meta={})
    assert (path / "model.pt").read_bytes() == before


def test_failed_write_leaves_nothing_behind(trained, tmp_path):
    model, _, _ = trained

    class Boom:
        def save(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new", model, spec={}, meta={}, splits=Boom())
    assert list(tmp_path.iterdir()) == []
