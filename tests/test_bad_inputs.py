"""Every bad input is one ``error:`` line, exit 2, no traceback, and nothing written or changed (issue 18's audit).

One row per case: the argv, the files to plant, the expected exit code and message fragment. "Nothing written /
nothing changed" is checked by hashing the whole working directory (planted checkpoints, the ledger, output
locations) before and after. Commands run in-process (``orchestrator.cli.main``); only the broken-pipe case needs a
real process. A new command gets the same treatment by adding rows to ``CASES``.

Placeholders in argv: ``{tmp}`` the case's directory, ``{ck}`` a verified tiny checkpoint there, ``{bad}`` the
planted checkpoint of the row, ``{ledger}`` a ledger there with ``{ck}`` registered as the current model,
``{ro}`` a directory this process cannot write, ``{m}`` a member sample id of ``{ck}``, ``{mk}`` its record key,
``{nk}`` the key of a non-member.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "data.image_size=16", "--set", "data.num_members=80", "--set", "data.num_nonmembers=80",
        "--set", "model.width=4", "--set", "model.proj_dim=8", "--set", "optim.batch_size=40",
        "--set", "eval.knn_k=5", "--set", "eval.linear_probe=false", "--set", "runtime.progress=false",
        "--epochs", "1"]
FORGET = ["--set", "epochs=1", "--set", "monitor=false", "--set", "runtime.progress=false"]


# ------------------------------------------------------------------------------------------- planting helpers
def _rehash(ck: Path) -> None:
    """Make meta.json's sha256 table match the files again (a crafted checkpoint that passes verification)."""
    from trainables.checkpoint import sha256_file

    meta = json.loads((ck / "meta.json").read_text())
    if isinstance(meta.get("sha256"), dict):
        meta["sha256"] = {k: sha256_file(ck / k) if (ck / k).is_file() and "/" not in k else v
                          for k, v in meta["sha256"].items()}
    (ck / "meta.json").write_text(json.dumps(meta))


def crafted(edit: Callable[[dict], None] | None = None, files: dict[str, bytes] | None = None, *,
            rehash: bool = True, raw_meta: bytes | None = None, remove: tuple[str, ...] = ()):
    """A planter: copy the tiny checkpoint to ``{bad}``, then replace files, edit meta.json, re-hash."""
    def plant(tmp: Path, ck: Path) -> None:
        bad = tmp / "bad"
        shutil.copytree(ck, bad)
        for name, data in (files or {}).items():
            (bad / name).write_bytes(data)
        for name in remove:
            (bad / name).unlink()
        if edit is not None:
            meta = json.loads((bad / "meta.json").read_text())
            edit(meta)
            (bad / "meta.json").write_text(json.dumps(meta))
        if rehash:
            _rehash(bad)
        if raw_meta is not None:
            (bad / "meta.json").write_bytes(raw_meta)
    return plant


def write(name: str, data: bytes):
    def plant(tmp: Path, ck: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    return plant


def both(*planters):
    def plant(tmp: Path, ck: Path) -> None:
        for p in planters:
            p(tmp, ck)
    return plant


def _set(path: str, value):
    def edit(meta: dict) -> None:
        node = meta
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def _del(key: str):
    return lambda meta: meta.pop(key)


def _outside_key(meta: dict) -> None:
    meta["sha256"]["../../etc/hostname"] = "0" * 64


def _symlinked(tmp: Path, ck: Path) -> None:
    crafted()(tmp, ck)
    os.symlink("/etc/hostname", tmp / "bad" / "extra.bin")
    meta = json.loads((tmp / "bad" / "meta.json").read_text())
    meta["sha256"]["extra.bin"] = hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest()
    (tmp / "bad" / "meta.json").write_text(json.dumps(meta))


def _shifted_csv(tmp: Path, ck: Path) -> None:
    """The issue's reproduction with two real members: pandas stored subject bob with the second id."""
    from trainables.data.splits import Splits

    a, b = Splits.load(ck / "splits.parquet")["member"][:2]
    (tmp / "s.csv").write_text(f"subject_id,sample_ids,request_id\nalice,{a},bob,{b},r-shift\n")


def _manifest_without_columns() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"sample_id": [1, 2, 3]}), buf)
    return buf.getvalue()


def _undecodable_manifest(tmp: Path, ck: Path) -> None:
    """Enough rows for TINY's splits, every one pointing at the same file that only looks like a PNG."""
    (tmp / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    rows = "".join(f"r{i},bad.png,{i % 2}\n" for i in range(200))
    (tmp / "m.csv").write_text("key,path,label\n" + rows)


# ------------------------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    id: str
    argv: list[str]
    fragment: str
    plant: Callable[[Path, Path], None] | None = None
    code: int = 2
    patch: Callable | None = None  # (monkeypatch) -> None, for faults such as a full disk
    env: dict[str, str] = field(default_factory=dict)


def _disk_full_on_save(monkeypatch) -> None:
    import torch

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", full)


def _ledger_disk_full(monkeypatch) -> None:
    import sqlite3

    from orchestrator.ledger.db import Ledger

    def full(*a, **k):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(Ledger, "add_requests", full)


def _weights(make: Callable[[], object], name: str = "w.pt"):
    """Plant a state_dict (``torch.save``) of the module ``make()`` returns, and a members file of digits keys."""
    def plant(tmp: Path, ck: Path) -> None:
        import torch

        torch.save(make().state_dict(), tmp / name)
        (tmp / "m.txt").write_text("train/0\ntrain/1\ntrain/2\n")
    return plant


def _tiny():
    from tests.import_helpers import tiny_classifier

    return tiny_classifier(2)


def _resnet18_10_classes():
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


IMPORT = ["--weights", "{tmp}/w.pt", "--members", "{tmp}/m.txt", "--data", "digits", "--image-size", "16",
          "--out", "{tmp}/imported"]
LONG = "n" * 300
CASES = [
    # case 1: a CSV row that does not match its header fails the whole file
    Case("csv-shifted-row", ["requests", "add", "--file", "{tmp}/s.csv", "--ledger", "{ledger}"], "s.csv line 2",
         _shifted_csv),
    Case("csv-short-row", ["requests", "add", "--file", "{tmp}/s.csv", "--ledger", "{ledger}"], "s.csv line 3",
         write("s.csv", b"subject_id,sample_ids\nalice,\"12\"\nbob\n")),
    Case("csv-not-utf8", ["requests", "add", "--file", "{tmp}/s.csv", "--ledger", "{ledger}"], "cannot read",
         write("s.csv", b"subject_id,sample_ids\n\xff\xfe,1\n")),
    Case("parquet-not-parquet", ["requests", "add", "--file", "{tmp}/s.parquet", "--ledger", "{ledger}"],
         "cannot read", write("s.parquet", b"not parquet")),
    # case 6: tracebacks on bad files and arguments
    Case("meta-not-utf8", ["inspect", "{bad}"], "meta.json", crafted(raw_meta=b"{\"a\": \"\xff\"}")),
    Case("meta-a-list", ["inspect", "{bad}"], "must hold a JSON object", crafted(raw_meta=b"[1, 2]")),
    Case("meta-sha256-a-string", ["inspect", "{bad}"], "sha256", crafted(_set("sha256", "abc"), rehash=False)),
    Case("meta-hash-not-text", ["inspect", "{bad}"], "sha256",
         crafted(lambda m: m["sha256"].update({"model.pt": 5}), rehash=False)),
    Case("meta-forgotten-ids-a-string", ["models", "register", "{bad}", "--ledger", "{tmp}/new.sqlite"],
         "forgotten_ids", crafted(_set("forgotten_ids", "all"))),
    Case("meta-forgotten-ids-not-ints", ["models", "register", "{bad}", "--ledger", "{tmp}/new.sqlite"],
         "forgotten_ids", crafted(_set("forgotten_ids", ["a"]))),
    Case("splits-not-parquet", ["inspect", "{bad}"], "splits.parquet", crafted(files={"splits.parquet": b"junk"})),
    Case("splits-not-parquet-register", ["models", "register", "{bad}", "--ledger", "{tmp}/new.sqlite"],
         "splits.parquet", crafted(files={"splits.parquet": b"junk"})),
    Case("splits-lacks-columns", ["forget", "--checkpoint", "{bad}", "--out", "{tmp}/o", *FORGET], "lacks column",
         crafted(files={"splits.parquet": _manifest_without_columns()})),
    Case("model-spec-missing", ["forget", "--checkpoint", "{bad}", "--out", "{tmp}/o", *FORGET], "model_spec",
         crafted(_del("model_spec"))),
    Case("model-spec-garbage", ["forget", "--checkpoint", "{bad}", "--out", "{tmp}/o", *FORGET], "model_spec",
         crafted(_set("model_spec", "garbage"))),
    Case("model-spec-bad-method", ["evaluate", "--checkpoint", "{bad}", "--out", "{tmp}/o"], "model_spec",
         crafted(_set("model_spec.method", "dino"))),
    Case("config-not-utf8", ["pretrain", "--out", "{tmp}/o", "--config", "{tmp}/c.yaml"], "UTF-8",
         write("c.yaml", b"optim:\n  lr: \xff\n")),
    Case("sample-id-above-int64", ["requests", "add", "--subject", "a", "--sample-ids", "9223372036854775808",
                                   "--ledger", "{ledger}"], "largest possible id"),
    Case("out-unwritable", ["pretrain", "--out", "{ro}/ck", *TINY], "cannot write"),
    Case("forget-out-unwritable", ["forget", "--checkpoint", "{ck}", "--out", "{ro}/o", *FORGET], "cannot write"),
    Case("evaluate-out-unwritable", ["evaluate", "--checkpoint", "{ck}", "--out", "{ro}/o"], "cannot write"),
    # case 7: every output location is checked before any work
    Case("results-unwritable", ["pretrain", "--out", "{tmp}/o", "--results", "{ro}/res", *TINY], "cannot write"),
    Case("forget-results-unwritable", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--results",
                                       "{ro}/res", *FORGET], "cannot write"),
    Case("retrain-out-unwritable", ["retrain", "--checkpoint", "{ck}", "--out", "{ro}/o", "--set", "retrain_epochs=1",
                                    "--set", "runtime.progress=false"], "cannot write"),
    Case("evaluate-results-unwritable", ["evaluate", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--results",
                                         "{ro}/res"], "cannot write"),
    Case("tune-out-unwritable", ["tune", "--checkpoint", "{ck}", "--space", "memgp", "--out", "{ro}/t"],
         "cannot write"),
    Case("tune-portfolio-unknown-method", ["tune", "--checkpoint", "{ck}", "--space", "portfolio", "--methods",
                                           "finetune,nope", "--out", "{tmp}/t"], "unknown method 'nope'"),
    Case("tune-portfolio-method-unfit", ["tune", "--checkpoint", "{ck}", "--space", "portfolio", "--methods",
                                         "random_labels", "--out", "{tmp}/t"], "does not apply to an encoder"),
    Case("tune-methods-without-portfolio", ["tune", "--checkpoint", "{ck}", "--space", "memgp", "--methods",
                                            "finetune", "--out", "{tmp}/t"], "--methods chooses the methods"),
    Case("report-out-unwritable", ["report", "--results", "{tmp}/res", "--out", "{ro}/r"], "cannot write",
         write("res/keep", b"")),
    Case("demo-out-unwritable", ["demo", "--quick", "--out", "{ro}/d"], "cannot write"),
    Case("schedule-models-dir-unwritable", ["schedule", "run", "--ledger", "{ledger}", "--models-dir", "{ro}/m"],
         "cannot write"),
    Case("ledger-disk-full", ["requests", "add", "--subject", "a", "--sample-ids", "{m}", "--ledger", "{ledger}"],
         "database or disk is full", patch=_ledger_disk_full),
    Case("forget-ids-above-int64", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--forget-ids",
                                    "9223372036854775808", *FORGET], "largest possible id"),
    Case("schedule-results-unwritable", ["schedule", "run", "--ledger", "{ledger}", "--results", "{ro}/res"],
         "cannot write"),
    Case("ledger-unwritable-register", ["models", "register", "{ck}", "--ledger", "{ro}/l.sqlite"], "cannot write"),
    Case("ledger-unwritable-add", ["requests", "add", "--subject", "a", "--sample-ids", "{m}",
                                   "--ledger", "{ro}/l.sqlite"], "no ledger"),
    Case("demo-negative-seed", ["demo", "--seed", "-1", "--quick", "--out", "{tmp}/d"], "--seed must be 0 or more"),
    Case("name-over-255-bytes", ["pretrain", "--out", "{tmp}/" + LONG, *TINY], "255"),
    Case("results-name-over-255-bytes", ["pretrain", "--out", "{tmp}/o", "--results", "{tmp}/" + LONG, *TINY],
         "255"),
    Case("out-under-a-file", ["pretrain", "--out", "{tmp}/f/sub", *TINY], "not a directory", write("f", b"x")),
    Case("results-is-a-file", ["pretrain", "--out", "{tmp}/o", "--results", "{tmp}/f", *TINY], "not a directory",
         write("f", b"x")),
    Case("report-results-is-a-file", ["report", "--results", "{tmp}/f", "--out", "{tmp}/r"], "not a directory",
         write("f", b"x")),
    Case("ledger-is-a-directory", ["requests", "list", "--ledger", "{tmp}/d"], "directory",
         write("d/keep", b"x")),
    Case("disk-full-saving-checkpoint", ["pretrain", "--out", "{tmp}/o", *TINY], "No space left",
         patch=_disk_full_on_save),
    Case("register-no-manifest-leaves-no-ledger", ["models", "register", "{bad}", "--ledger", "{tmp}/new.sqlite"],
         "splits.parquet", crafted(remove=("splits.parquet",), edit=lambda m: m["sha256"].pop("splits.parquet"))),
    # case 8: a crafted checkpoint must not reach outside its directory, nor choose data locations or sizes
    Case("sha256-key-outside", ["inspect", "{bad}"], "plain file name", crafted(_outside_key, rehash=False)),
    Case("sha256-key-absolute", ["inspect", "{bad}"], "plain file name",
         crafted(lambda m: m["sha256"].update({"/etc/hostname": "0" * 64}), rehash=False)),
    Case("sha256-key-symlink", ["inspect", "{bad}"], "symbolic link", _symlinked),
    Case("checkpoint-data-location-ignored",
         ["forget", "--checkpoint", "{bad}", "--out", "{tmp}/o", *FORGET], "files not found under {tmp}/opdata",
         crafted(lambda m: m["config"]["data"].update(dataset="cifar10", data_dir="{tmp}/evil", download=True)),
         env={"UNLEARN_DATA_DIR": "{tmp}/opdata"}),
    # file-backed data sets (manifest:FILE): the file, its columns, keys and image files are checked at load
    Case("manifest-missing", ["pretrain", "--out", "{tmp}/o", "--dataset", "manifest:{tmp}/none.csv", *TINY],
         "manifest not found"),
    Case("manifest-not-parquet", ["pretrain", "--out", "{tmp}/o", "--dataset", "manifest:{tmp}/m.parquet", *TINY],
         "cannot read manifest", write("m.parquet", b"junk")),
    Case("manifest-lacks-columns", ["pretrain", "--out", "{tmp}/o", "--dataset", "manifest:{tmp}/m.csv", *TINY],
         "lacks column(s) path, label", write("m.csv", b"key,file\na,x.png\n")),
    Case("manifest-duplicate-keys", ["pretrain", "--out", "{tmp}/o", "--dataset", "manifest:{tmp}/m.csv", *TINY],
         "duplicate keys 'a'", write("m.csv", b"key,path,label\na,x.png,0\na,y.png,1\n")),
    Case("manifest-image-missing", ["pretrain", "--out", "{tmp}/o", "--dataset", "manifest:{tmp}/m.csv", *TINY],
         "not found, key(s) 'k1'", write("m.csv", b"key,path,label\nk1,gone.png,0\n")),
    Case("manifest-image-undecodable", ["pretrain", "--out", "{tmp}/o", "--dataset", "manifest:{tmp}/m.csv",
                                        *TINY], "cannot decode the image of record 'r", _undecodable_manifest),
    # unlearn import: the architecture, the factory, the weights and the members are checked before writing
    Case("import-unknown-torchvision-name", ["import", "--arch", "torchvision:resnet19", *IMPORT],
         "unknown architecture torchvision:resnet19; did you mean resnet18", _weights(_tiny)),
    Case("import-unknown-family", ["import", "--arch", "keras:resnet18", *IMPORT], "unknown architecture "
         "'keras:resnet18'", _weights(_tiny)),
    Case("import-factory-does-not-import", ["import", "--arch", "factory:tests.no_such_module:build", *IMPORT],
         "cannot import tests.no_such_module", _weights(_tiny)),
    Case("import-factory-returns-no-module", ["import", "--arch", "factory:tests.import_helpers:not_a_module",
                                              *IMPORT], "returned a int, not an nn.Module", _weights(_tiny)),
    Case("import-factory-stdlib", ["import", "--arch", "factory:os:getcwd", *IMPORT], "standard-library",
         _weights(_tiny)),
    Case("import-keys-do-not-match", ["import", "--arch", "torchvision:resnet18", *IMPORT],
         "does not match torchvision:resnet18: 102 keys missing (conv1.weight, bn1.weight, bn1.bias ...); "
         "4 unexpected keys (0.weight, 0.bias, 4.weight ...)", _weights(_tiny)),
    Case("import-shapes-do-not-match", ["import", "--arch", "torchvision:resnet18", "--num-classes", "2", *IMPORT],
         "2 keys of another shape (fc.weight: file (10, 512), model (2, 512), fc.bias: file (10,), model (2,))",
         _weights(_resnet18_10_classes)),
    Case("import-members-not-in-data", ["import", "--arch", "factory:tests.import_helpers:tiny_classifier",
                                        *IMPORT], "1 key(s) not in digits: 'photos/7.png'",
         both(_weights(_tiny), write("m.txt", b"train/0\nphotos/7.png\n"))),
    Case("import-weights-missing", ["import", "--arch", "torchvision:resnet18", *IMPORT],
         "weights file not found: {tmp}/w.pt", write("m.txt", b"train/0\n")),
    Case("import-weights-unreadable", ["import", "--arch", "torchvision:resnet18", *IMPORT],
         "cannot read weights file {tmp}/w.pt", both(write("m.txt", b"train/0\n"), write("w.pt", b"junk"))),
    Case("model-spec-factory-stdlib", ["forget", "--checkpoint", "{bad}", "--out", "{tmp}/o", *FORGET],
         "os is a standard-library module", crafted(_set("model_spec.model.arch", "factory:os:system"))),
    Case("model-spec-absurd-width", ["forget", "--checkpoint", "{bad}", "--out", "{tmp}/o", *FORGET], "width",
         crafted(_set("model_spec.model.width", 1_000_000))),
    # record keys: what users name (docs/data.md)
    Case("request-key-not-member", ["requests", "add", "--subject", "a", "--keys", "{nk}", "--ledger", "{ledger}"],
         "not members of the current model"),
    Case("request-key-unknown", ["requests", "add", "--subject", "a", "--keys", "{mk},no/such.png",
                                 "--ledger", "{ledger}"], "1 key(s) not members"),
    Case("request-key-repeated", ["requests", "add", "--subject", "a", "--keys", "{mk},{mk}", "--ledger",
                                  "{ledger}"], "repeated keys"),
    Case("request-key-empty", ["requests", "add", "--subject", "a", "--keys", "{mk},,", "--ledger", "{ledger}"],
         "an empty key"),
    Case("request-keys-and-ids", ["requests", "add", "--subject", "a", "--keys", "{mk}", "--sample-ids", "{m}",
                                  "--ledger", "{ledger}"], "not both"),
    Case("request-key-file-empty", ["requests", "add", "--file", "{tmp}/k.csv", "--ledger", "{ledger}"],
         "holds no requests", write("k.csv", b"subject_id,key\n")),
    Case("request-file-without-key-column", ["requests", "add", "--file", "{tmp}/k.csv", "--ledger", "{ledger}"],
         "lacks column(s) sample_ids", write("k.csv", b"subject_id,name\na,x\n")),
    Case("forget-key-not-member", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--forget-keys", "{nk}",
                                   *FORGET], "not members of the training set"),
    Case("forget-key-unknown", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--forget-keys",
                                "{mk},no/such.png", *FORGET], "not in the checkpoint's split manifest"),
    Case("forget-key-repeated", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--forget-keys", "{mk},{mk}",
                                 *FORGET], "repeated keys"),
    Case("forget-key-file-empty", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--forget-keys-file",
                                   "{tmp}/k.txt", *FORGET], "no keys", write("k.txt", b"\n")),
    Case("forget-key-file-without-key-column", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o",
                                                "--forget-keys-file", "{tmp}/k.csv", *FORGET], "no 'key' column",
         write("k.csv", b"name\nx\n")),
    Case("forget-keys-and-ids", ["forget", "--checkpoint", "{ck}", "--out", "{tmp}/o", "--forget-keys", "{mk}",
                                 "--forget-ids", "{m}", *FORGET], "not several"),
]


# ---------------------------------------------------------------------------------------------- the harness
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny pretrained checkpoint (trained once for the module) and its member ids."""
    from orchestrator.config import load_job
    from orchestrator.run.jobs import run_pretrain
    from trainables.config import PretrainJob
    from trainables.data.splits import Splits

    root = tmp_path_factory.mktemp("base")
    pairs = [TINY[i + 1] for i in range(0, len(TINY) - 2, 2)]
    job = load_job(PretrainJob, overrides=pairs, cli_values={"optim.epochs": 1})
    out, _ = run_pretrain(job, root / "ck")
    return out, int(Splits.load(out / "splits.parquet")["member"][0])


def _unwritable_dir(tmp: Path) -> Path | None:
    """A directory this process cannot create files in: chmod 555 for a normal user; sysfs when root."""
    if os.geteuid() != 0:
        d = tmp / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    try:
        (Path("/sys") / "unlearn-probe").mkdir()
    except OSError:
        return Path("/sys")
    return None


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content hash (links by target); SQLite's transient -wal/-shm aside."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.endswith(("-wal", "-shm")):
            continue
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def run_case(case: Case, tmp: Path, base, capsys, monkeypatch) -> tuple[int, str, str]:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.versions import register_checkpoint

    ck = tmp / "ck"
    shutil.copytree(base[0], ck)
    with Ledger(tmp / "ledger" / "l.sqlite", create=True) as ledger:
        register_checkpoint(ledger, ck)
    ro = _unwritable_dir(tmp)
    if ro is None and "{ro}" in " ".join(case.argv):
        pytest.skip("no unwritable directory on this machine")
    from trainables.data.splits import Splits

    splits = Splits.load(ck / "splits.parquet")
    values = {"tmp": str(tmp), "ck": str(ck), "bad": str(tmp / "bad"), "ledger": str(tmp / "ledger" / "l.sqlite"),
              "ro": str(ro), "m": str(base[1]), "mk": splits.keys[base[1]],
              "nk": splits.keys[int(splits["nonmember_eval"][0])]}
    if case.plant is not None:
        case.plant(tmp, ck)
    if (tmp / "bad" / "meta.json").is_file() and b"{tmp}" in (tmp / "bad" / "meta.json").read_bytes():
        (tmp / "bad" / "meta.json").write_text(_fill((tmp / "bad" / "meta.json").read_text(), values))
        _rehash(tmp / "bad")
    for key, value in case.env.items():
        monkeypatch.setenv(key, _fill(value, values))
    monkeypatch.setenv("UNLEARN_RESULTS", "")
    if case.patch is not None:
        case.patch(monkeypatch)
    before = tree_digest(tmp)
    capsys.readouterr()
    try:
        code = main([_fill(a, values) for a in case.argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert tree_digest(tmp) == before, f"{case.id}: files were written or changed"
    return code, _fill(case.fragment, values), err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line_and_changes_nothing(case, tmp_path, base, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, fragment, err = run_case(case, tmp_path, base, capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert lines and lines[-1].startswith("error: ") and fragment in lines[-1], err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------------- cases with other checks
def test_intake_does_not_need_the_served_models_files(tmp_path, base, capsys):
    """Case 5: with the current checkpoint gone, a deletion request is still recorded (against the ledger's copy of
    the member set), and a non-member is still refused."""
    from orchestrator.ledger.db import Ledger

    ck = tmp_path / "ck"
    shutil.copytree(base[0], ck)
    ledger = str(tmp_path / "l.sqlite")
    assert main(["models", "register", str(ck), "--ledger", ledger]) == 0
    shutil.rmtree(ck)
    assert main(["requests", "add", "--subject", "alice", "--sample-ids", str(base[1]), "--ledger", ledger]) == 0
    assert main(["requests", "add", "--subject", "bob", "--sample-ids", "99999", "--ledger", ledger]) == 2
    assert "not members" in capsys.readouterr().err
    with Ledger(ledger) as db:
        assert [(r["subject_id"], r["sample_ids"]) for r in db.list_requests()] == [("alice", [base[1]])]


def test_an_old_ledger_is_back_filled_with_its_member_set(tmp_path, base):
    """Case 5: a ledger written before member sets existed gets them from its readable checkpoints."""
    import sqlite3

    import numpy as np

    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.member_sets import recorded_members
    from orchestrator.ledger.versions import register_checkpoint
    from trainables.data.splits import Splits

    ck = tmp_path / "ck"
    shutil.copytree(base[0], ck)
    path = tmp_path / "l.sqlite"
    with Ledger(path, create=True) as ledger:
        register_checkpoint(ledger, ck)
    conn = sqlite3.connect(path)  # back to the schema-1 ledger of before
    conn.execute("DROP TABLE model_members")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Ledger(path) as ledger:
        members = recorded_members(ledger.conn, 1)
    assert np.array_equal(members, Splits.load(ck / "splits.parquet")["member"])


def test_a_lost_results_row_is_appended_by_the_rerun_without_training_again(tmp_path, capsys, monkeypatch):
    """Case 7: the disk fills up after training, while the row is written: the checkpoint is kept, the error says
    to rerun; the rerun recognises its own verified checkpoint, appends only the row, and trains nothing."""
    from orchestrator.results import store as results
    from orchestrator.run import jobs

    out, store = tmp_path / "ck", tmp_path / "res"
    argv = ["pretrain", "--out", str(out), "--results", str(store), *TINY]
    real_append = results.append

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(results, "append", full)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "complete and kept" in err and "rerun the same command" in err
    assert (out / "model.pt").is_file() and len(results.load(str(store))) == 0
    monkeypatch.setattr(results, "append", real_append)
    monkeypatch.setattr(jobs, "run_pretrain", lambda *a, **k: pytest.fail("trained again"))
    assert main(argv) == 0
    assert "not training again" in capsys.readouterr().out
    df = results.load(str(store))
    assert list(df["checkpoint_uri"]) == [str(out.resolve())] and list(df["kind"]) == ["pretrain"]
    assert main(argv) == 0 and "already in" in capsys.readouterr().out  # a third run adds no second row
    assert len(results.load(str(store))) == 1
    monkeypatch.undo()
    other = [*argv[:-1], "2"]  # another job (2 epochs) still refuses the existing --out
    assert main(other) == 2 and "already exists" in capsys.readouterr().err


def test_csv_with_quoted_lists_still_reads(tmp_path):
    from orchestrator.ledger.intake import read_request_file

    (tmp_path / "r.csv").write_text('subject_id,sample_ids,request_id\nalice,"12,13",r1\n\nbob,7,r2\n')
    reqs = read_request_file(tmp_path / "r.csv")
    assert [(r.subject_id, r.sample_ids, r.request_id) for r in reqs] == [("alice", (12, 13), "r1"),
                                                                           ("bob", (7,), "r2")]


def test_requests_list_into_a_closed_pipe_exits_quietly(tmp_path, base):
    """`unlearn requests list | head -1` must not print a BrokenPipeError traceback."""
    from orchestrator.ledger.db import Ledger, NewRequest
    from orchestrator.ledger.versions import register_checkpoint

    with Ledger(tmp_path / "l.sqlite", create=True) as ledger:
        register_checkpoint(ledger, base[0])
        ledger.add_requests([NewRequest(f"s{i}", (base[1],)) for i in range(3000)])
    cmd = (f"{sys.executable} -m orchestrator requests list --ledger {tmp_path / 'l.sqlite'} | head -1")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.stdout.startswith("REQUEST") and r.stderr == "", r.stderr
    assert r.returncode in (0, 141)  # quiet: exit 0, or the shell's SIGPIPE status
