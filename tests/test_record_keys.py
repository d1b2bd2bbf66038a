"""Record keys end to end: the split manifest stores them, a checkpoint meets fresh data by key (so adding a file to
an image folder moves no member and no forgotten record), and `unlearn forget --forget-keys` forgets exactly the
named images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from orchestrator.cli import main
from trainables.data import load_source
from trainables.data.align import align_to_manifest
from trainables.data.splits import Splits
from trainables.errors import UserError

SIZE = 8  # images are written and read at 8 px, so the loader's resize is the identity and pixels compare exactly
FORGET = ["--set", "epochs=1", "--set", "monitor=false", "--set", "runtime.progress=false"]


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _write_folder(root: Path) -> dict[str, np.ndarray]:
    """2 classes x 12 distinct noise images; returns key (relative path) -> pixels."""
    pixels = {}
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(12):
            key = f"c{c}/img_{i:02d}.png"
            pixels[key] = _image(100 * c + i)
            Image.fromarray(pixels[key]).save(root / key)
    return pixels


@pytest.fixture(scope="module")
def folder_checkpoint(tmp_path_factory):
    """A tiny model pretrained on the image folder (1 epoch): (folder, checkpoint, pixels by key)."""
    from orchestrator.config import load_job
    from orchestrator.run.jobs import run_pretrain
    from trainables.config import PretrainJob

    root = tmp_path_factory.mktemp("keys")
    pixels = _write_folder(root / "photos")
    job = load_job(PretrainJob, overrides=[
        f"data.dataset=imagefolder:{root / 'photos'}", f"data.image_size={SIZE}", "data.num_members=10",
        "data.num_nonmembers=10", "data.forget_count=2", "model.width=4", "model.proj_dim=8", "optim.batch_size=10",
        "eval.knn_k=3", "eval.linear_probe=false", "runtime.progress=false"], cli_values={"optim.epochs": 1})
    out, _ = run_pretrain(job, root / "ck")
    return root / "photos", out, pixels


def test_the_manifest_stores_keys_and_old_manifests_load_without(tmp_path, digits_source):
    from trainables.config import DataConfig
    from trainables.data import make_splits

    splits = make_splits(digits_source, DataConfig(num_members=20, num_nonmembers=20, forget_count=3))
    splits.save(tmp_path / "s.parquet")
    loaded = Splits.load(tmp_path / "s.parquet")
    assert loaded.keys_of(loaded["forget"]) == [f"train/{i}" for i in splits["forget"]]  # digits: one train pool
    old = pq.read_table(tmp_path / "s.parquet").drop_columns(["key"])  # a manifest from before record keys
    pq.write_table(old, tmp_path / "old.parquet")
    legacy = Splits.load(tmp_path / "old.parquet")
    assert legacy.keys is None and legacy.sizes() == splits.sizes()
    assert align_to_manifest(digits_source, legacy) is digits_source  # positional, as it was made
    with pytest.raises(UserError, match="no record keys"):
        legacy.ids_of(["train/0"])


def test_adding_a_file_moves_no_member_and_forgetting_by_key_hits_those_images(folder_checkpoint, monkeypatch,
                                                                               capsys):
    folder, ck, pixels = folder_checkpoint
    splits = Splits.load(ck / "splits.parquet")
    members = splits.keys_of(splits["member"])
    Image.fromarray(_image(999)).save(folder / "c0" / "aaa_first.png")  # sorts first: every later position shifts
    fresh = load_source(f"imagefolder:{folder}", image_size=SIZE)
    assert fresh.keys[0] == "c0/aaa_first.png" and len(fresh) == 25
    assert fresh.keys[splits["member"]].tolist() != members  # positions alone would now name other images
    aligned = align_to_manifest(fresh, splits)
    assert aligned.keys[splits["member"]].tolist() == members
    assert aligned.images.files_read == 0 and fresh.images.files_read == 0  # lazy: re-indexing reads no file
    for i in splits["member"]:
        np.testing.assert_array_equal(aligned.images[i].permute(1, 2, 0).numpy(), pixels[splits.keys[int(i)]])

    asked = [k for k in members if k not in splits.keys_of(splits["forget"])][:2]
    import trainables.jobs.unlearn as unlearn_job

    seen, real = {}, unlearn_job.run_method

    def spy(model, source, splits_, ids, job, ctx, **kw):
        seen["keys"] = source.keys[ids["forget"]].tolist()
        seen["pixels"] = [source.images[i].permute(1, 2, 0).numpy() for i in ids["forget"]]
        return real(model, source, splits_, ids, job, ctx, **kw)

    monkeypatch.setattr(unlearn_job, "run_method", spy)
    out = ck.parent / "forgot"
    code = main(["forget", "--checkpoint", str(ck), "--forget-keys", ",".join(asked), "--out", str(out), *FORGET])
    assert code == 0, capsys.readouterr().err
    assert sorted(seen["keys"]) == sorted(asked)
    for key, got in zip(seen["keys"], seen["pixels"], strict=True):
        np.testing.assert_array_equal(got, pixels[key])
    after = Splits.load(out / "splits.parquet")
    assert sorted(after.keys_of(after["forget"])) == sorted(asked)  # explicit keys: this run forgets only them
    assert sorted(after.keys_of(after["member"])) == sorted(members)


def test_alignment_fills_positions_and_refuses_missing_or_relabelled_records(digits_source, tmp_path):
    from trainables.config import DataConfig
    from trainables.data import make_splits

    small = digits_source
    splits = make_splits(small, DataConfig(num_members=10, num_nonmembers=10, forget_count=2))
    renamed = {int(i): f"r{int(i)}" for i in splits.keys}
    keyed = Splits(splits.ids, splits.labels, renamed)
    order = np.random.default_rng(0).permutation(len(small))[:1500]  # a shuffled source that lost some records
    listed = np.array(sorted(renamed))
    order = np.unique(np.concatenate([order, listed]))[::-1].copy()
    from dataclasses import replace

    keys = np.array([renamed.get(int(j), f"x{int(j)}") for j in order], dtype=object)
    shuffled = replace(small, images=small.images[order], labels=small.labels[order], pool=small.pool[order],
                       record_keys=keys)
    aligned = align_to_manifest(shuffled, keyed)
    for i in listed:
        assert aligned.keys[i] == renamed[int(i)] and aligned.labels[i] == small.labels[i]
        assert (aligned.images[i] == small.images[i]).all()
    assert len(aligned) == max(len(shuffled), int(listed[-1]) + 1)
    assert sorted(aligned.keys) == sorted(set(aligned.keys))  # every record once (placeholders have their own keys)
    blanks = [i for i, k in enumerate(aligned.keys) if k.startswith("<absent>/")]
    assert len(blanks) == len(aligned) - len(shuffled) > 0 and not set(blanks) & set(listed.tolist())
    gone = replace(shuffled, record_keys=np.where(keys == renamed[int(listed[0])], "gone", keys))
    with pytest.raises(UserError, match="not in"):
        align_to_manifest(gone, keyed)
    relabelled = replace(shuffled, labels=np.where(keys == renamed[int(listed[0])], 99, shuffled.labels))
    with pytest.raises(UserError, match="another label"):
        align_to_manifest(relabelled, keyed)


def test_manifest_with_duplicate_or_missing_keys_is_refused(tmp_path):
    table = pa.table({"sample_id": [0, 1], "split": ["retain", "forget"], "label": [0, 1], "key": ["a", "a"]})
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(UserError, match="twice"):
        Splits.load(tmp_path / "dup.parquet")
    pq.write_table(table.set_column(3, "key", pa.array(["a", None])), tmp_path / "hole.parquet")
    with pytest.raises(UserError, match="without a record key"):
        Splits.load(tmp_path / "hole.parquet")
