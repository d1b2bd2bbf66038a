"""Import a model trained elsewhere (``unlearn import``): its state_dict, its architecture (an adapter spec, see
``trainables/models/adapters``) and the keys of its real training set become a normal checkpoint.

    ck = plan_import(ImportRequest(arch="torchvision:resnet18", weights="r18.pt", dataset="imagefolder:photos",
                                   members_file="train_keys.txt"))
    save_imported(ck, "runs/imported")

Everything is read and checked before anything is written: the weights (``torch.load(weights_only=True)``), their
keys and shapes against the architecture, that the model runs on the data's images and reproduces the user's own
network's outputs, and that every member key is in the data. The split manifest: members = the user's keys (the
``retain`` split), ``forget`` empty until a deletion request names some, non-members = every other sample, split
into ``nonmember_ref`` / ``nonmember_eval`` by a seeded draw (``data.nonmember_ref_fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from trainables.checkpoint import model_spec, save_checkpoint, sha256_file
from trainables.config import PretrainJob
from trainables.data.keys import ids_for_keys, read_key_file
from trainables.data.sources import TRAIN, ImageSource
from trainables.data.splits import Splits
from trainables.errors import UserError
from trainables.models import UnlearnableModel, build_model
from trainables.models.adapters import adapter_for
from trainables.models.adapters.base import rename_keys, user_state

SHOWN = 3  # mismatching keys named in an error


@dataclass
class ImportRequest:
    arch: str                         # torchvision:NAME | lightly:simclr|moco|byol | factory:package.module:function
    weights: str                      # a state_dict file
    job: PretrainJob                  # data (dataset, image size), the recipe for retraining, augmentation...
    backbone: str | None = None       # lightly: torchvision:NAME
    num_classes: int | None = None    # default: the rows of the file's last 2-D weight (classifiers)
    kind: str | None = None           # encoder | classifier (factory; default: classifier with --num-classes)
    members_file: str | None = None   # keys of the training set (default: a two-pool data set's train pool)


@dataclass
class ImportedModel:
    model: UnlearnableModel
    spec: dict[str, Any]
    job: PretrainJob
    splits: Splits
    facts: dict[str, Any] = field(default_factory=dict)  # meta["imported"]


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``path`` (tensors only: ``weights_only=True``); a ``{"state_dict": ...}`` wrapper and DDP's
    ``module.`` prefix are unwrapped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"weights file not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  any unpickling problem is a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read weights file {p} (a state_dict saved with torch.save): {first}") from None
    for wrapper in ("state_dict", "model_state_dict", "model"):  # a training checkpoint holding the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict) and \
                not all(isinstance(v, torch.Tensor) for v in state.values()):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not state:
        raise UserError(f"{p} holds a {type(state).__name__}, not a state_dict (a dict of parameter tensors)")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise UserError(f"{p} is not a state_dict: entry {bad!r} holds a {type(state[bad]).__name__}, not a tensor")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_user_state(model: UnlearnableModel, state: dict[str, torch.Tensor], arch: str, where: str) -> None:
    """Load the user's weights into ``model`` (keys renamed by its adapter); UserError naming the first few missing
    or unexpected keys and shape mismatches, in the file's own key names."""
    adapter, _ = adapter_for(arch)
    native = adapter.native_state(model, state)
    own = model.state_dict()
    back = {d: s for s, d in model.user_key_prefixes.items()}  # model key -> the file's name, for messages

    def users(key: str) -> str:
        return next(iter(rename_keys({key: None}, back)))

    for key in own:  # BatchNorm counters are bookkeeping; files saved without them still load
        if key.endswith("num_batches_tracked") and key not in native:
            native[key] = own[key]
    missing = [k for k in own if k not in native]
    unexpected = [k for k in native if k not in own]
    shapes = [k for k in own if k in native and tuple(native[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys missing ({_names([users(k) for k in missing])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_names([users(k) for k in unexpected])})")
        if shapes:
            parts.append(f"{len(shapes)} keys of another shape ("
                         + ", ".join(f"{users(k)}: file {tuple(native[k].shape)}, model {tuple(own[k].shape)}"
                                     for k in shapes[:SHOWN]) + (" ..." if len(shapes) > SHOWN else "") + ")")
        raise UserError(f"{where} does not match {arch}: " + "; ".join(parts))
    model.load_state_dict(native)


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (" ..." if len(keys) > SHOWN else "")


def member_ids(source: ImageSource, members_file: str | None, dataset: str) -> np.ndarray:
    """Sample ids of the model's training set: the keys in ``members_file``, else a two-pool set's train pool."""
    if members_file is not None:
        return np.sort(ids_for_keys(source.keys, read_key_file(members_file), where=dataset))
    if source.single_pool:
        raise UserError(f"--members FILE is required for {dataset}: it is one pool of images, and only you know "
                        f"which of them trained the model (a file of their keys, one per line)")
    return np.flatnonzero(source.pool == TRAIN).astype(np.int64)


def import_splits(source: ImageSource, members: np.ndarray, *, ref_fraction: float, seed: int) -> Splits:
    """Members = ``members`` (all retained), forget empty, non-members = every other sample (ref / eval halves)."""
    rest = np.setdiff1d(source.sample_ids, members)
    if len(members) < 2:
        raise UserError(f"the model's training set holds {len(members)} sample(s) of the data; name at least 2")
    if len(rest) < 2:
        raise UserError(f"only {len(rest)} sample(s) of the data are not members; the audits need non-members "
                        f"(at least 2: one reference, one evaluation): add held-out images to the data set")
    perm = np.random.default_rng([seed, 2]).permutation(rest)
    n_ref = max(1, min(len(rest) - 1, int(round(ref_fraction * len(rest)))))
    empty = np.zeros(0, dtype=np.int64)
    ids = {"retain": members.astype(np.int64), "forget": empty, "nonmember_ref": np.sort(perm[:n_ref]),
           "nonmember_eval": np.sort(perm[n_ref:]), "shadow_member": empty, "shadow_nonmember": empty}
    labels = {int(i): int(source.labels[i]) for s in ids.values() for i in s}
    all_keys = source.keys
    keys = {i: str(all_keys[i]) for i in labels}  # users name records by key from here on
    return Splits(ids, labels, keys)


def resolve_method(req: ImportRequest) -> str:
    """The method recorded for the model (it fixes the kind: ``supervised`` is the classifier)."""
    adapter, name = adapter_for(req.arch)
    if adapter.family == "":
        raise UserError(f"unknown architecture {req.arch!r}; expected torchvision:NAME, lightly:simclr|moco|byol or "
                        f"factory:package.module:function")
    if req.backbone is not None and adapter.family != "lightly":
        raise UserError(f"--backbone is for lightly architectures; {req.arch} brings its own")
    if adapter.family == "torchvision":
        from trainables.models.adapters.torchvision_models import (
            build_torchvision_name_error,
            torchvision_names,
        )

        if name not in torchvision_names():
            build_torchvision_name_error(name)
        if req.kind == "encoder":
            raise UserError(f"{req.arch} is a classifier; for an encoder use lightly:simclr --backbone {req.arch} or a "
                            f"factory")
        return "supervised"
    if adapter.family == "lightly":
        if req.kind == "classifier":
            raise UserError(f"{req.arch} is an encoder; a classifier is torchvision:NAME or a factory")
        if name not in adapter.methods:
            raise UserError(f"unknown architecture {req.arch}; choose lightly:simclr, lightly:moco or lightly:byol")
        if req.backbone is None:
            raise UserError(f"{req.arch} needs its backbone: --backbone torchvision:NAME (e.g. torchvision:resnet18)")
        return name
    from trainables.models.adapters.factory import load_factory

    load_factory(name)  # a factory that does not import fails here, before the data is read
    kind = req.kind or ("classifier" if req.num_classes is not None else "encoder")
    return "supervised" if kind == "classifier" else "simclr"


def infer_num_classes(req: ImportRequest, state: dict[str, torch.Tensor], source: ImageSource) -> int:
    """``--num-classes``, else the rows of the file's last 2-D weight (a classifier's head), else the data's."""
    if req.num_classes is not None:
        return req.num_classes
    last = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(last[-1].shape[0]) if last else max(source.num_classes, 2)


@torch.no_grad()
def check_runs(model: UnlearnableModel, source: ImageSource, arch: str, num_classes: int) -> torch.Tensor:
    """The model's output on two images of the data (eval mode); UserError when it cannot process them."""
    from trainables.data.augment import normalize

    x = normalize(source.images[:2])
    size = source.images.shape[-1]
    model.eval()
    try:
        out = model(x, task="head")
    except Exception as exc:  # noqa: BLE001  the user's architecture refusing the data's images
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"{arch} cannot process the data's {size}x{size} images ({type(exc).__name__}: {first}); "
                        f"set --image-size to what the model was trained on") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise UserError(f"{arch} returns {type(out).__name__} {tuple(getattr(out, 'shape', ()))} for a batch of "
                        f"images, not a (batch, dim) tensor")
    if not model.is_contrastive and int(source.labels.max()) >= num_classes:
        raise UserError(f"the data has {int(source.labels.max()) + 1} classes but {arch} has {num_classes} outputs "
                        f"(--num-classes)")
    return out


def reference_output(req: ImportRequest, model: UnlearnableModel, num_classes: int,
                     source: ImageSource) -> torch.Tensor | None:
    """The user's own network (built as they would, loaded with their file) on the same two images: the adapted
    model must reproduce it. None where the adapter keeps the layout as it is (lightly, encoders)."""
    from trainables.data.augment import normalize
    from trainables.models.adapters.factory import call_factory
    from trainables.models.adapters.torchvision_models import build_torchvision

    adapter, name = adapter_for(req.arch)
    if adapter.family == "torchvision":
        net = build_torchvision(name, num_classes=num_classes)
    elif adapter.family == "factory" and resolve_method(req) == "supervised":
        net, _ = call_factory(name, num_classes)
    else:
        return None
    net.load_state_dict(user_state(model))  # the adapted model's weights under the file's names: a round trip
    net.eval()
    with torch.no_grad():
        return net(normalize(source.images[:2]))


def plan_import(req: ImportRequest, *, source: ImageSource | None = None) -> ImportedModel:
    """Read and check everything ``unlearn import`` needs; writes nothing."""
    from trainables.loops.context import seed_everything

    method = resolve_method(req)
    state = read_weights(req.weights)
    data = req.job.data
    if source is None:
        from trainables import console
        from trainables.data import load_source

        console.status(f"loading the {data.dataset} data ...")
        source = load_source(data.dataset, data_dir=data.data_dir, download=data.download, image_size=data.image_size)
    members = member_ids(source, req.members_file, data.dataset)
    splits = import_splits(source, members, ref_fraction=data.nonmember_ref_fraction, seed=data.split_seed)
    num_classes = infer_num_classes(req, state, source)
    model_update: dict[str, Any] = {"arch": req.arch, "arch_backbone": req.backbone}
    if adapter_for(req.arch)[0].family == "lightly":
        from trainables.models.adapters.lightly_models import head_widths

        model_update.update(head_widths(state))
    job = req.job.model_copy(update={
        "method": method, "model": req.job.model.model_copy(update=model_update),
        "data": data.model_copy(update={"num_members": len(members), "num_nonmembers": len(source) - len(members)}),
    })
    try:  # the updated sections checked like a config file (e.g. a head narrower than model.proj_dim allows)
        job = PretrainJob.model_validate(job.model_dump())
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{req.arch} from {req.weights}: {details}") from None
    seed_everything(job.runtime.seed)
    spec = model_spec(method, job.model, num_classes, len(members))
    model = build_model(method, job.model, num_classes=num_classes, num_members=len(members))
    load_user_state(model, state, req.arch, str(Path(req.weights).expanduser()))
    out = check_runs(model, source, req.arch, num_classes)
    facts: dict[str, Any] = {"arch": req.arch, "backbone": req.backbone, "weights": str(Path(req.weights).resolve()),
                             "weights_sha256": sha256_file(Path(req.weights).expanduser()), "members": len(members),
                             "members_file": str(Path(req.members_file).resolve()) if req.members_file else None,
                             "kind": model.kind, "num_classes": num_classes}
    reference = reference_output(req, model, num_classes, source)
    if reference is not None:
        diff = float((reference.float() - out.float()).abs().max())
        scale = float(reference.float().abs().max()) or 1.0
        if diff > 1e-4 * max(1.0, scale):  # float32 rounding of the same operations is far below this
            raise UserError(f"{req.arch}: the adapted model does not reproduce the network's own output (max "
                            f"difference {diff:.3g}); its last nn.Linear with {num_classes} outputs must be the "
                            f"network's final operation")
        facts["max_output_difference"] = diff
    model.train()
    return ImportedModel(model, spec, job, splits, facts)


def save_imported(imported: ImportedModel, out: str | Path) -> Path:
    """Write the checkpoint (atomic; never over an existing one). ``meta["kind"]`` is ``pretrain``: to every
    other command an imported model is an original model; ``meta["imported"]`` says where it came from."""
    from trainables.jobs.common import checkpoint_meta

    meta = checkpoint_meta(imported.job, "pretrain", [], imported=imported.facts)
    return save_checkpoint(out, imported.model, spec=imported.spec, meta=meta, splits=imported.splits)
