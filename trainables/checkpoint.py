"""The checkpoint format: a directory with weights, metadata and the split manifest, verified on load.

    DIR/model.pt         state_dict only, read with ``torch.load(weights_only=True)``: nothing else is unpickled
    DIR/meta.json        method, backbone, dataset, split seed, full job config, package versions, sha256 of files
    DIR/splits.parquet   the split manifest (sample_id, split, label) the model was trained on
    DIR/train_state.pt   optional: optimizer / RNG / memory-bank state for an exact resume (tensors only)

Writes go to a temporary sibling directory that is renamed into place, so a crash never leaves half a checkpoint,
and an existing checkpoint is never overwritten unless asked. The files and the directory entry of the rename are
fsync'ed (a power loss after the write keeps the checkpoint), and a checkpoint is private to its owner (directory
0700, files 0600: weights trained on personal data, and the split manifest names members).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from trainables.data.splits import Splits
from trainables.durable import fsync_dir, fsync_file
from trainables.errors import UserError
from trainables.models import UnlearnableModel, build_model

FORMAT_VERSION = 1
WEIGHTS, META, MANIFEST, TRAIN_STATE = "model.pt", "meta.json", "splits.parquet", "train_state.pt"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("unlearn-orchestrator", "torch", "torchvision", "lightly", "ray", "scikit-learn", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Checkpoint:
    model: UnlearnableModel
    meta: dict[str, Any]
    splits: Splits | None
    path: Path
    train_state: dict[str, Any] | None = field(default=None)


def model_spec(method: str, model_cfg, num_classes: int, num_members: int | None) -> dict[str, Any]:
    """What :func:`build_model` needs to rebuild the architecture; stored in ``meta.json``."""
    return {"method": method, "model": model_cfg.model_dump(mode="json"), "num_classes": num_classes,
            "num_members": num_members}


MAX_CLASSES = 100_000  # model_spec bounds: a crafted meta.json must not make the loader allocate terabytes
MAX_MEMBERS = 10**9


def build_from_spec(spec: Any, where: str = "meta.json") -> UnlearnableModel:
    """Rebuild the architecture of ``model_spec``, every field checked (sizes bounded) before anything is built."""
    from pydantic import ValidationError

    from trainables.config import METHODS, ModelConfig

    def bad(why: str) -> UserError:
        return UserError(f"{where}: model_spec {why}; the checkpoint is corrupt or was not written by this tool")

    if not isinstance(spec, dict):
        raise bad("is missing or not a JSON object")
    if spec.get("method") not in METHODS:
        raise bad(f"method {spec.get('method')!r} is not one of {', '.join(METHODS)}")
    classes, members = spec.get("num_classes"), spec.get("num_members")
    if not isinstance(classes, int) or isinstance(classes, bool) or not 1 <= classes <= MAX_CLASSES:
        raise bad(f"num_classes must be an integer in [1, {MAX_CLASSES}], got {classes!r}")
    if members is not None and (not isinstance(members, int) or isinstance(members, bool)
                                or not 1 <= members <= MAX_MEMBERS):
        raise bad(f"num_members must be an integer in [1, {MAX_MEMBERS}], got {members!r}")
    try:
        model_cfg = ModelConfig.model_validate(spec.get("model"))
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'model'}: {e['msg']}" for e in exc.errors())
        raise bad(f"model is invalid: {details}") from None
    return build_model(spec["method"], model_cfg, num_classes=classes, num_members=members)


def save_checkpoint(out_dir: str | Path, model: UnlearnableModel, *, spec: dict[str, Any], meta: dict[str, Any],
                    splits: Splits | None = None, train_state: dict[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Write atomically. ``meta`` holds job facts (config, dataset, metrics...); file hashes are added here."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} already exists and is not empty; choose another --out (checkpoints are never "
                        f"overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(mode=0o700)
    try:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, tmp / WEIGHTS)
        files = {WEIGHTS: sha256_file(tmp / WEIGHTS)}
        if splits is not None:
            splits.save(tmp / MANIFEST)
            files[MANIFEST] = sha256_file(tmp / MANIFEST)
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE)
            files[TRAIN_STATE] = sha256_file(tmp / TRAIN_STATE)
        full_meta = {
            "format_version": FORMAT_VERSION,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model_spec": spec,
            "packages": package_versions(),
            **meta,
            "sha256": files,
        }
        (tmp / META).write_text(json.dumps(full_meta, indent=2, sort_keys=True, default=str))
        _seal(tmp)
        if out.exists():
            backup = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(backup)
            tmp.rename(out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(out)
        fsync_dir(out.parent)  # the rename itself survives a power loss
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _seal(path: Path) -> None:
    """Make the files of a checkpoint directory private and durable before it is renamed into place."""
    for f in path.iterdir():
        os.chmod(f, 0o600)
        fsync_file(f)
    fsync_dir(path)


def read_meta(path: str | Path) -> dict[str, Any]:
    """``meta.json`` as a dict, checked for the types the tools rely on (UserError otherwise)."""
    p = Path(path)
    if not (p / META).is_file():
        raise UserError(f"{p} is not a checkpoint: {META} is missing")
    try:
        meta = json.loads((p / META).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p / META} is corrupt: {exc}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{p / META} is corrupt: it must hold a JSON object, not a {type(meta).__name__}")
    for key, kind in _META_TYPES.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise UserError(f"{p / META} is corrupt: {key!r} must be a {_TYPE_NAMES[kind]}, not "
                            f"{type(meta[key]).__name__}")
    return meta


_META_TYPES = {"sha256": dict, "model_spec": dict, "config": dict, "metrics": dict, "history": list,
               "forgotten_ids": list, "unlearning": dict, "parent": dict, "distributed": dict, "kind": str,
               "method": str, "backbone": str, "dataset": str}
_TYPE_NAMES = {dict: "JSON object", list: "JSON list", str: "string"}


def _listed_file(p: Path, name: Any, expected: Any) -> Path:
    """A file named in meta.json's sha256 table: a plain name inside the checkpoint directory, not a link."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\x00" in name:
        raise UserError(f"checkpoint {p}: meta.json lists {name!r}, which is not a plain file name inside the "
                        f"checkpoint directory; refusing it")
    if not isinstance(expected, str) or len(expected) != 64:
        raise UserError(f"checkpoint {p}: meta.json's sha256 of {name} is not a sha256 hex digest")
    f = p / name
    if f.is_symlink():
        raise UserError(f"checkpoint {p}: {name} is a symbolic link; a checkpoint holds its own files only")
    return f


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check every listed file against its sha256; return the metadata. Raises UserError on any mismatch."""
    p = Path(path)
    meta = read_meta(p)
    files = meta.get("sha256") or {}
    if WEIGHTS not in files:
        raise UserError(f"{p / META} lists no sha256 for {WEIGHTS}; refusing an unverifiable checkpoint")
    for name, expected in files.items():
        f = _listed_file(p, name, expected)
        if not f.is_file():
            raise UserError(f"checkpoint {p} is incomplete: {name} is missing")
        actual = sha256_file(f)
        if actual != expected:
            raise UserError(f"checkpoint {p} failed verification: sha256 of {name} is {actual[:12]}..., "
                            f"meta.json says {expected[:12]}... (tampered or corrupt)")
    return meta


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  any unpickling problem is a bad file, not a bug
        raise UserError(f"cannot read {path}: {exc}") from None


def load_checkpoint(path: str | Path, *, with_train_state: bool = False) -> Checkpoint:
    p = Path(path)
    if not p.exists():
        raise UserError(f"checkpoint not found: {p}")
    meta = verify_checkpoint(p)
    model = build_from_spec(meta.get("model_spec"), where=str(p / META))
    state = _torch_load(p / WEIGHTS)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"checkpoint {p} does not match its architecture: {exc}") from None
    splits = Splits.load(p / MANIFEST) if (p / MANIFEST).is_file() else None
    train_state = None
    if with_train_state and (p / TRAIN_STATE).is_file():
        train_state = _torch_load(p / TRAIN_STATE)
        model.load_extra_state_tensors(train_state.get("model_extra", {}))
    return Checkpoint(model, meta, splits, p, train_state)
