"""Data registry and split manifest: deterministic, disjoint, validated; real loader code on tiny on-disk data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from trainables.config import DataConfig
from trainables.data import SPLITS, Splits, load_source, make_splits
from trainables.errors import UserError


def _splits(source, **kw):
    return make_splits(source, DataConfig(**kw))


def test_digits_is_three_channel_uint8_at_requested_size():
    src = load_source("digits", image_size=24)
    assert src.images.shape == (1797, 3, 24, 24)
    assert str(src.images.dtype) == "torch.uint8"
    assert src.images.max() > 200 and src.num_classes == 10
    assert (src.images[:, 0] == src.images[:, 2]).all()  # grayscale replicated
    np.testing.assert_array_equal(src.sample_ids, np.arange(1797))


def test_splits_are_deterministic_disjoint_and_sized(digits_source):
    a = _splits(digits_source, num_members=400, num_nonmembers=600, split_seed=3)
    b = _splits(digits_source, num_members=400, num_nonmembers=600, split_seed=3)
    c = _splits(digits_source, num_members=400, num_nonmembers=600, split_seed=4)
    for s in SPLITS:
        np.testing.assert_array_equal(a[s], b[s])
    assert not np.array_equal(a["member"], c["member"])
    all_ids = np.concatenate([a[s] for s in SPLITS])
    assert len(all_ids) == len(np.unique(all_ids))  # disjoint
    assert len(a["member"]) == 400 and len(a["forget"]) == 80 and len(a["retain"]) == 320
    assert len(a["nonmember_ref"]) == 300 and len(a["nonmember_eval"]) == 300
    assert set(a["forget"]) <= set(a["member"])


def test_changing_the_forget_set_never_moves_members_or_nonmembers(digits_source):
    a = _splits(digits_source, num_members=300, forget_fraction=0.2)
    b = _splits(digits_source, num_members=300, forget_count=7)
    for s in ("member", "nonmember_ref", "nonmember_eval"):
        np.testing.assert_array_equal(a[s], b[s])
    assert len(b["forget"]) == 7


def test_paper_default_shape_on_a_two_pool_source(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.integers(0, 255, (120, 8, 8, 3), dtype=np.uint8), y_train=rng.integers(0, 10, 120),
             x_test=rng.integers(0, 255, (80, 8, 8, 3), dtype=np.uint8), y_test=rng.integers(0, 10, 80))
    src = load_source(f"npz:{path}", image_size=8)
    s = _splits(src)  # defaults: all (up to 10k) train images are members, test images non-members, 20% forget
    assert len(s["member"]) == 120 and len(s["nonmember"]) == 80 and len(s["forget"]) == 24
    assert s["member"].max() < 120 <= s["nonmember"].min()  # ids: train pool first, then test pool


def test_forget_ids_and_with_forget(digits_source):
    s = _splits(digits_source, num_members=100)
    ids = s["member"][:5].tolist()
    t = _splits(digits_source, num_members=100, forget_ids=ids)
    np.testing.assert_array_equal(t["forget"], sorted(ids))
    u = s.with_forget(ids[:2])
    assert len(u["forget"]) == 2 and len(u["retain"]) == 98
    np.testing.assert_array_equal(u["member"], s["member"])


@pytest.mark.parametrize("kwargs, needle", [
    ({"forget_fraction": 1.5}, "forget_fraction must be in (0, 1)"),
    ({"forget_fraction": 0.0}, "forget_fraction must be in (0, 1)"),
])
def test_bad_forget_fraction_is_a_config_error(kwargs, needle):
    from orchestrator.config import validate
    from trainables.config import PretrainJob

    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        validate(PretrainJob, {"data": kwargs})


def test_forget_ids_that_are_not_members_are_refused(digits_source):
    s = _splits(digits_source, num_members=100)
    outsider = int(s["nonmember"][0])
    with pytest.raises(UserError, match="not members"):
        _splits(digits_source, num_members=100, forget_ids=[int(s["member"][0]), outsider])
    with pytest.raises(UserError, match="not members"):
        s.with_forget([outsider])


def test_empty_forget_set_is_refused(digits_source):
    s = _splits(digits_source, num_members=100)
    with pytest.raises(UserError, match="empty"):
        s.with_forget([])
    with pytest.raises(UserError, match="empty"):
        _splits(digits_source, num_members=4, forget_fraction=0.01)


def test_too_many_members_is_a_clear_error(digits_source):
    with pytest.raises(UserError, match="only"):
        _splits(digits_source, num_members=5000)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UserError, match="unknown dataset 'mnist'.*cifar10"):
        load_source("mnist")


def test_manifest_round_trips_through_parquet(tmp_path, digits_source):
    s = _splits(digits_source, num_members=100, shadow_members=20, shadow_nonmembers=20)
    s.save(tmp_path / "m.parquet")
    t = Splits.load(tmp_path / "m.parquet")
    for name in SPLITS:
        np.testing.assert_array_equal(s[name], t[name])
    assert t.labels == s.labels
    df = t.to_frame()
    assert list(df.columns) == ["sample_id", "split", "label", "key"]
    assert t.keys == s.keys and t.keys[int(s["forget"][0])] == f"train/{int(s['forget'][0])}"


def _write_cifar10(root, n_per_batch=6):
    """A tiny directory in the real CIFAR-10 python format (pickled batches + meta)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 255, (n_per_batch, 3072), dtype=np.uint8)
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, "labels": list(rng.integers(0, 10, n_per_batch))}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return n_per_batch


def test_cifar10_loader_reads_the_real_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    n = _write_cifar10(tmp_path)
    # Our tiny files cannot match the published md5 sums; everything else is torchvision's real parser.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    src = load_source("cifar10", data_dir=str(tmp_path), image_size=32)
    assert len(src) == 6 * n and src.images.shape[1:] == (3, 32, 32)
    assert (src.pool == 0).sum() == 5 * n and src.class_names[0] == "c0"
    s = _splits(src)
    assert len(s["member"]) == 5 * n and len(s["nonmember"]) == n


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_missing_torchvision_files_say_how_to_get_them(tmp_path, name):
    with pytest.raises(UserError, match="data.download=true"):
        load_source(name, data_dir=str(tmp_path), download=False)


def test_imagefolder_and_npz_errors(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    src = load_source(f"imagefolder:{tmp_path / 'imgs'}", image_size=16)
    assert src.images.shape == (6, 3, 16, 16) and src.class_names == ["cat", "dog"] and src.single_pool
    with pytest.raises(UserError, match="not found"):
        load_source(f"npz:{tmp_path / 'nope.npz'}")
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(UserError, match="lacks arrays"):
        load_source(f"npz:{tmp_path / 'bad.npz'}")
