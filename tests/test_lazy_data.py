"""File-backed data: lazy image folders and manifests read only what is indexed, with the old eager pixels."""

from __future__ import annotations

import builtins
import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from trainables.data import load_source
from trainables.data.decode import decode_image
from trainables.data.keys import ids_for_keys
from trainables.data.lazy import LazyImages
from trainables.data.sources import _to_tensor
from trainables.errors import UserError


def write_folder(root: Path, per_class: int = 4, classes=("cat", "dog")) -> Path:
    """PNGs of mixed sizes and modes (RGB, grayscale, RGBA), seeded noise, so resizing and conversion matter."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = 8 + (i % 3) * 4, 16 - (i % 2) * 6
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            image = image.convert(("RGB", "L", "RGBA")[(i + c) % 3])
            image.save(root / name / f"{i}.png")
    return root


def eager_reference(root: Path, image_size: int) -> torch.Tensor:
    """The former eager ``imagefolder`` loader, verbatim: decode everything up front."""
    import torchvision.datasets as tvd

    folder = tvd.ImageFolder(str(root))
    x = np.stack([np.asarray(folder.loader(p).convert("RGB").resize((image_size, image_size)))
                  for p, _ in folder.samples]).astype(np.uint8)
    return _to_tensor(x, image_size)


@pytest.fixture
def opened(monkeypatch):
    """Paths of image files opened from now on (every read of a local image goes through ``open``)."""
    seen: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        if str(file).endswith(".png"):
            seen.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    return seen


def test_lazy_imagefolder_gives_the_eager_pixels(tmp_path):
    root = write_folder(tmp_path / "imgs")
    reference = eager_reference(root, 12)
    src = load_source(f"imagefolder:{root}", image_size=12)
    assert isinstance(src.images, LazyImages) and src.images.shape == reference.shape == (8, 3, 12, 12)
    assert torch.equal(src.images[torch.arange(8)], reference)
    assert torch.equal(src.images[np.array([7, 0, 7])], reference[[7, 0, 7]])  # order and repeats kept
    assert torch.equal(src.images[3], reference[3]) and src.images[3].dtype == torch.uint8
    assert torch.equal(src.images[2:5], reference[2:5]) and torch.equal(src.images[:, 1], reference[:, 1])
    assert src.keys.tolist() == [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(4)]
    assert src.paths == [str(root / k) for k in src.keys] and src.single_pool and src.class_names == ["cat", "dog"]
    clone = pickle.loads(pickle.dumps(src))  # what Ray's object store and DataLoader workers receive
    assert len(clone.images._cache) == 0 and torch.equal(clone.images[torch.arange(8)], reference)


def test_only_the_requested_files_are_opened(tmp_path, opened):
    root = write_folder(tmp_path / "imgs", per_class=20)
    reference = eager_reference(root, 8)
    opened.clear()  # writing and the reference opened them
    src = load_source(f"imagefolder:{root}", image_size=8)
    assert opened == []  # loading lists files and reads none
    src.images[torch.tensor([3, 25, 3])]
    assert sorted(opened) == sorted([src.paths[3], src.paths[25]])
    src.images[torch.tensor([25])], src.images[3]
    assert len(opened) == 2  # served from the cache
    many = torch.arange(5, 40)  # a threaded read of 35 files
    assert torch.equal(src.images[many], reference[many])
    assert len(opened) == 2 + 35 - 1 and src.images.files_read == 36  # id 25 was cached
    uncached = LazyImages(src.paths, 8, cache_bytes=0)
    uncached[0], uncached[0]
    assert opened[-2:] == [src.paths[0]] * 2


def test_the_cache_is_bounded_in_bytes(tmp_path):
    root = write_folder(tmp_path / "imgs", per_class=5)
    images = LazyImages(load_source(f"imagefolder:{root}", image_size=8).paths, 8, cache_bytes=3 * 8 * 8 * 4)
    images[torch.arange(10)]
    assert images.cache_items == 4 and list(images._cache) == [6, 7, 8, 9]  # least recently used evicted


def _write_manifest(path: Path, rows: list[dict], fmt: str) -> Path:
    table = pa.Table.from_pylist(rows)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        from pyarrow import csv

        csv.write_csv(table, path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_manifest_with_relative_absolute_and_file_uri_paths(tmp_path, fmt):
    root = write_folder(tmp_path / "imgs")
    folder = load_source(f"imagefolder:{root}", image_size=12)
    (tmp_path / "sets").mkdir()
    rows = [
        {"key": "k-dog-1", "path": "../imgs/dog/1.png", "label": "dog", "pool": "test"},  # relative to the file
        {"key": "k-cat-0", "path": (root / "cat/0.png").as_uri(), "label": "cat", "pool": "train"},  # file://
        {"key": "k-cat-2", "path": str(root / "cat/2.png"), "label": "cat", "pool": "TRAIN"},  # absolute
    ]
    m = load_source(f"manifest:{_write_manifest(tmp_path / 'sets' / f'm.{fmt}', rows, fmt)}", image_size=12)
    assert isinstance(m.images, LazyImages)
    assert m.keys.tolist() == ["k-cat-0", "k-cat-2", "k-dog-1"]  # train pool first, file order within a pool
    assert m.pool.tolist() == [0, 0, 1] and m.labels.tolist() == [0, 0, 1] and m.class_names == ["cat", "dog"]
    assert m.paths[0].startswith("file://") and not m.single_pool
    same = ids_for_keys(folder.keys, ["cat/0.png", "cat/2.png", "dog/1.png"])
    assert torch.equal(m.images[torch.arange(3)], folder.images[torch.from_numpy(same)])
    by_uri = load_source(f"manifest:{(tmp_path / 'sets' / f'm.{fmt}').as_uri()}", image_size=12)  # the file too
    assert by_uri.paths[2] == (root / "dog/1.png").as_uri()  # relative to the manifest's URI
    assert torch.equal(by_uri.images[torch.arange(3)], m.images[torch.arange(3)])


def test_manifest_without_pool_is_one_pool_with_integer_labels(tmp_path):
    write_folder(tmp_path / "imgs", per_class=2)
    rows = [{"key": f"{c}{i}", "path": f"imgs/{c}/{i}.png", "label": 3 * j} for j, c in enumerate(("cat", "dog"))
            for i in range(2)]
    m = load_source(f"manifest:{_write_manifest(tmp_path / 'm.csv', rows, 'csv')}", image_size=8)
    assert m.single_pool and m.labels.tolist() == [0, 0, 3, 3] and m.num_classes == 4


def test_keys_stay_when_a_file_is_added(tmp_path):
    root = write_folder(tmp_path / "imgs")
    before = load_source(f"imagefolder:{root}", image_size=8)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "cat" / "-new.png")  # sorts first: ids shift
    after = load_source(f"imagefolder:{root}", image_size=8)
    assert len(after) == len(before) + 1 and after.keys[0] == "cat/-new.png"
    moved = ids_for_keys(after.keys, before.keys)
    assert (moved == before.sample_ids + 1).all()  # every id moved, no key did
    assert torch.equal(after.images[torch.from_numpy(moved)], before.images[torch.arange(len(before))])


BAD_PNG = b"\x89PNG\r\n\x1a\n but not really"


@pytest.mark.parametrize("rows, files, fragment", [
    (None, {}, "manifest not found"),
    (None, {"m.csv": b"\xff\xfe\x00junk"}, "cannot read manifest"),
    ([{"key": "a", "file": "x.png"}], {}, "lacks column(s) path, label"),
    ([{"key": "a", "path": "a.png", "label": 0}, {"key": "a", "path": "a.png", "label": 1}], {"a.png": None},
     "duplicate keys 'a'"),
    ([{"key": "a", "path": "a.png", "label": 0}, {"key": "b", "path": "gone.png", "label": 1}], {"a.png": None},
     "1 image file(s) not found, key(s) 'b'"),
    ([{"key": "a", "path": "a.png", "label": 0, "pool": "val"}], {"a.png": None}, "'val'; use train or test"),
])
def test_bad_manifests_fail_at_load_with_one_message(tmp_path, rows, files, fragment):
    for name, data in files.items():
        if data is None:
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(data)
    if rows is not None:
        _write_manifest(tmp_path / "m.csv", rows, "csv")
    with pytest.raises(UserError) as err:
        load_source(f"manifest:{tmp_path / 'm.csv'}")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_an_undecodable_image_names_its_record(tmp_path):
    (tmp_path / "bad.png").write_bytes(BAD_PNG)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "ok.png")
    rows = [{"key": "fine", "path": "ok.png", "label": 0}, {"key": "broken-7", "path": "bad.png", "label": 1}]
    m = load_source(f"manifest:{_write_manifest(tmp_path / 'm.csv', rows, 'csv')}", image_size=8)
    assert m.images[0].shape == (3, 8, 8)  # loading and reading other records work
    with pytest.raises(UserError, match=r"cannot decode the image of record 'broken-7' \(.*bad.png\)"):
        m.images[torch.tensor([0, 1])]
    with pytest.raises(UserError, match="cannot read the image of record 'gone'"):
        decode_image((tmp_path / "gone.png").as_uri(), 8, key="gone")  # a URI fails when read


def test_unlearning_reads_only_the_forget_set_from_files(tmp_path, opened):
    """memgp with the monitor off reads the forget set and nothing else (issue 20: only needed subsets)."""
    from tests.conftest import tiny_job
    from trainables.jobs.common import load_data, new_model
    from trainables.unlearning import UnlearnJob, unlearn

    root = write_folder(tmp_path / "imgs", per_class=15)
    opened.clear()
    job = tiny_job("simclr", data={"dataset": f"imagefolder:{root}", "image_size": 8, "num_members": 12,
                                   "num_nonmembers": 12, "forget_count": 4}, optim={"epochs": 1, "batch_size": 8})
    source, splits = load_data(job.data)
    model, _ = new_model(job, source, len(splits["member"]))
    assert opened == []
    unlearn(model, source, splits, splits["forget"], UnlearnJob(method="memgp", a=0, b=1, epochs=2, monitor=False,
                                                                 runtime={"progress": False}), pretrain_job=job)
    assert sorted(set(opened)) == sorted(source.paths[i] for i in splits["forget"])
    # the retain stream of a retain-term method is read per draw from files, not gathered whole at the start
    from trainables.unlearning.step_data import StreamDrawer

    drawer = StreamDrawer(dataclasses.replace(source, images=LazyImages(source.paths, 8, cache_bytes=0)),
                          splits["retain"])
    opened.clear()
    drawer.reseed(0)
    images, _ = drawer.draw(3)
    assert len(opened) == 3 and images.shape == (3, 3, 8, 8)
