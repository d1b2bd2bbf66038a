"""The public Python API: cheap to import, the CLI's own validation and messages, and docs/python-api.md runs."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator
from orchestrator.api.command import flags, set_pairs
from orchestrator.cli import main
from orchestrator.config import parse_overrides
from trainables.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
API = ["import_model", "pretrain", "forget", "retrain", "audit", "Ledger", "schedule_run", "Checkpoint", "UserError"]


def test_import_orchestrator_and_every_api_name_loads_neither_torch_nor_ray():
    code = ("import sys, orchestrator\n"
            f"from orchestrator import {', '.join(API)}\n"
            "print(sorted(m for m in ('torch', 'ray', 'pandas', 'pyarrow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_the_api_names_are_listed_and_an_unknown_one_is_an_attribute_error():
    assert set(API) <= set(orchestrator.__all__) and set(API) <= set(dir(orchestrator))
    assert orchestrator.UserError is UserError
    with pytest.raises(AttributeError, match="no attribute 'unlearn_everything'"):
        orchestrator.unlearn_everything  # noqa: B018


def test_config_keywords_become_the_set_arguments_the_cli_would_get():
    params = {"optim": {"lr": 0.01, "epochs": 3}, "runtime.device": "cpu", "attack.attacks": ["confidence"],
              "form": "squared", "subject": "007"}
    pairs = set_pairs(params)
    assert pairs == ["--set=optim.lr=0.01", "--set=optim.epochs=3", "--set=runtime.device=cpu",
                     "--set=attack.attacks=[confidence]", "--set=form=squared", "--set=subject='007'"]
    # parsed back as the CLI parses --set: the same values and types (a numeric-looking string stays a string)
    assert parse_overrides([p.removeprefix("--set=") for p in pairs]) == {
        "optim": {"lr": 0.01, "epochs": 3}, "runtime": {"device": "cpu"}, "attack": {"attacks": ["confidence"]},
        "form": "squared", "subject": "007"}
    assert flags(epochs=2, gpu=True, dry_run=False, config=None, tag=["a=1", "b=2"]) == [
        "--epochs=2", "--gpu", "--tag=a=1", "--tag=b=2"]


def cli_error(capsys, argv: list[str]) -> str:
    """The message the CLI prints after ``error:`` (argparse's own errors exit 2 after the usage line)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ")
    return err.removeprefix("error: ")


@pytest.mark.parametrize("call, argv", [
    # a config value of the wrong type (pydantic, through load_job)
    (lambda out: orchestrator.forget("no-such-ckpt", out=out, method="memgp", b="lots"),
     ["forget", "--checkpoint", "no-such-ckpt", "--out", "{out}", "--method", "memgp", "--set", "b=lots"]),
    # an unknown config key
    (lambda out: orchestrator.pretrain(out, dataset="digits", optim={"learning_rate": 1}),
     ["pretrain", "--out", "{out}", "--dataset", "digits", "--set", "optim.learning_rate=1"]),
    # a key the command does not use
    (lambda out: orchestrator.retrain("no-such-ckpt", out=out, b=1),
     ["retrain", "--checkpoint", "no-such-ckpt", "--out", "{out}", "--set", "b=1"]),
    # an argparse error (a bad flag value), which the CLI prints after its usage line
    (lambda out: orchestrator.pretrain(out, epochs="two"), ["pretrain", "--out", "{out}", "--epochs", "two"]),
    (lambda out: orchestrator.pretrain(out, method="simclr2"), ["pretrain", "--out", "{out}", "--method", "simclr2"]),
    # a bad Ray option and a bad unlearning method
    (lambda out: orchestrator.forget("no-such-ckpt", out=out, workers=-1),
     ["forget", "--checkpoint", "no-such-ckpt", "--out", "{out}", "--workers", "-1"]),
    (lambda out: orchestrator.forget("no-such-ckpt", out=out, method="forget_harder"),
     ["forget", "--checkpoint", "no-such-ckpt", "--out", "{out}", "--method", "forget_harder"]),
    # a missing checkpoint, found after the config is valid
    (lambda out: orchestrator.forget("no-such-ckpt", [1, 2], out=out),
     ["forget", "--checkpoint", "no-such-ckpt", "--forget-ids", "1,2", "--out", "{out}"]),
    (lambda out: orchestrator.audit("no-such-ckpt", out=out), ["evaluate", "--checkpoint", "no-such-ckpt",
                                                              "--out", "{out}"]),
])
def test_a_bad_input_raises_user_error_with_the_message_the_cli_prints_and_writes_nothing(
        tmp_path, monkeypatch, capsys, call, argv):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    expected = cli_error(capsys, [a.replace("{out}", str(out)) for a in argv])
    with pytest.raises(UserError) as exc:
        call(out)
    assert str(exc.value) == expected
    assert not out.exists() and not (tmp_path / "results").exists()


def test_ledger_errors_are_the_cli_errors(tmp_path, capsys):
    missing = tmp_path / "none.sqlite"
    expected = cli_error(capsys, ["requests", "list", "--ledger", str(missing)])
    with pytest.raises(UserError) as exc:
        orchestrator.Ledger(missing).requests()
    assert str(exc.value) == expected
    expected = cli_error(capsys, ["models", "register", str(tmp_path), "--ledger", str(missing)])
    with pytest.raises(UserError) as exc:
        orchestrator.Ledger(missing).register(tmp_path)
    assert str(exc.value) == expected and not missing.exists()


def test_a_checkpoint_handle_verifies_before_it_answers(tmp_path, monkeypatch):
    ck = orchestrator.Checkpoint(tmp_path)
    assert Path(ck) == tmp_path and repr(ck) == f"Checkpoint({str(tmp_path)!r})"
    monkeypatch.chdir(tmp_path)
    assert orchestrator.Checkpoint("x").path == tmp_path / "x"  # absolute: still the same after a chdir
    with pytest.raises(UserError, match="is not a checkpoint: meta.json is missing"):
        ck.kind  # noqa: B018


def test_audit_results_without_out_is_refused(tmp_path):
    with pytest.raises(UserError, match="give out= too"):
        orchestrator.audit(tmp_path, results=tmp_path / "results")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def page_run(tmp_path_factory):
    """Every ``python`` block of docs/python-api.md, in order, in one namespace, in an empty directory:
    (namespace, directory, what it printed). An exception in the page's code fails every test that uses it."""
    page = ROOT / "docs" / "python-api.md"
    blocks = python_blocks(page.read_text())
    assert len(blocks) >= 6
    code = "\n".join(blocks)
    for name in ("import_model(", "forget_keys=", "keys=", "pretrain(", "forget(", "retrain(", "audit(", "Ledger(", ".add_request(", ".requests()",
                 "schedule_run("):
        assert name in code, f"the example no longer shows {name}"
    where, here = tmp_path_factory.mktemp("page"), os.getcwd()
    namespace: dict = {"__name__": "python_api_page"}
    printed = io.StringIO()
    os.chdir(where)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(page), "exec"), namespace)  # noqa: S102  the repository's own documentation
    finally:
        os.chdir(here)
    return namespace, where, printed.getvalue()


def test_the_python_api_page_runs(page_run):
    namespace, where, printed = page_run
    assert "invalid config: b: Input should be a valid number" in printed
    table, base, forgot = namespace["table"], namespace["base"], namespace["forgot"]
    assert table.shape[0] == 2 and table["after_mia_accuracy"].between(0, 1).all()
    assert forgot.parent == base and sorted(p.name for p in (where / "runs").iterdir()) == [
        "base", "forgot", "ledger.sqlite", "mine", "mine-forgot", "retrained"]  # audit() without out= wrote nothing
    assert namespace["mine"].kind == "pretrain" and namespace["mine"].meta["imported"]["members"] == 300
    assert namespace["request_id"] == "req-000001" and namespace["version"] == 1
    ledger = namespace["ledger"]
    assert ledger.requests("verified").empty and ledger.requests("verified").columns.equals(
        namespace["requests"].columns)
    assert ledger.models().version.tolist() == [1] and ledger.current_model() == base
    assert ledger.request("req-000001")["sample_ids"] == namespace["forget_ids"][:3]


def test_audit_with_out_writes_the_cli_files_and_returns_the_rows_it_appended(page_run, tmp_path):
    from orchestrator.results import store

    namespace = page_run[0]
    out, results = tmp_path / "audit", tmp_path / "results"
    table = orchestrator.audit(namespace["forgot"], original=namespace["base"], attacks="confidence", n_views=4,
                               bootstrap=20, plots=False, out=out, results=results, experiment="api")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "report.txt", "signals.parquet"]
    assert (out / "report.txt").read_text() == table.attrs["report"] + "\n"
    stored = store.load(str(results), kinds=["evaluate"])
    assert stored.shape[0] == 1 and stored["experiment"].tolist() == ["api"] == table["experiment"].tolist()
    assert stored["after_mia_accuracy"].tolist() == table["after_mia_accuracy"].tolist()
