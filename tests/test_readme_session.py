"""The README's typical sessions, run for real as a user copies them (at test scale): importing a model of one's
own (a torchvision ResNet-18 on an image folder the test writes), and training one on the embedded digits data.

Every other documented example is parsed and key-checked in test_docs.py; this one is executed end to end,
because it is the one a new user runs first. Only the scale is changed (epochs, members, trials), by options
appended to each line; the lines themselves are taken from README.md, so a README edit that breaks the
session fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Appended to each command (later --set wins), so the session runs in about a minute on 2 cores.
TEST_SCALE = {
    "import": [],
    "pretrain": ["--set", "optim.epochs=2", "--set", "data.num_members=120", "--set", "data.num_nonmembers=120",
                 "--set", "data.image_size=16", "--set", "model.width=8", "--set", "eval.linear_probe=false"],
    "retrain": ["--set", "retrain_epochs=1"],
    "tune": ["--set", "epochs=1"],
    "forget": ["--set", "epochs=1"],
    "evaluate": ["--n-views", "2", "--bootstrap", "50", "--no-plots"],
    "report": [],
}


def _blocks() -> tuple[str, list[list[str]]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A typical session", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in section.split("```bash")[1:]:
        lines = re.sub(r"\\\n\s*", " ", block.split("```", 1)[0]).strip().splitlines()
        commands.append([shlex.split(line, comments=True)[1:] for line in lines if line.strip()])
    return section, commands


def import_session() -> list[list[str]]:
    """The README's first session: import a model, forget two records by key, audit."""
    return _blocks()[1][0]


def typical_session() -> list[list[str]]:
    """The README's second session, with its first line swapped for the no-network line the README offers."""
    section, blocks = _blocks()
    offline = re.search(r"`(unlearn pretrain [^`]+)`", section).group(1)
    commands = blocks[1]
    assert commands[0][0] == "pretrain"
    return [shlex.split(offline)[1:], *commands[1:]]


def write_the_users_files(where: Path, argv: list[str]) -> None:
    """What the import line names: an image folder (cat/, dog/), a ResNet-18 state_dict and the member keys."""
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (where / "photos" / cls).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(where / "photos" / cls /
                                                                                    f"{i:04d}.png")
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), where / argv[argv.index("--weights") + 1])
    keys = [f"{cls}/{i:04d}.png" for cls in ("cat", "dog") for i in range(14)]  # 28 members, 12 held out
    (where / argv[argv.index("--members") + 1]).write_text("\n".join(keys) + "\n")


def at_test_scale(argv: list[str]) -> list[str]:
    argv = list(argv)
    if "--samples" in argv:
        argv[argv.index("--samples") + 1] = "2"
    quiet = [] if argv[0] in ("report", "evaluate", "import") else ["--set", "runtime.progress=false"]
    return argv + TEST_SCALE[argv[0]] + quiet


def test_the_sessions_are_what_the_readme_shows():
    assert [argv[0] for argv in import_session()] == ["import", "forget", "evaluate"]
    assert [argv[0] for argv in typical_session()] == ["pretrain", "retrain", "tune", "forget", "evaluate", "report"]


@pytest.mark.slow
def test_the_readme_import_session_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNLEARN_RESULTS", str(tmp_path / "results"))
    session = import_session()
    write_the_users_files(tmp_path, session[0])
    for argv in session:
        assert main(at_test_scale(argv)) == 0, f"`unlearn {shlex.join(argv)}` failed"
    splits = pd.read_parquet(tmp_path / "runs" / "mine-forgot" / "splits.parquet")
    named = session[1][session[1].index("--forget-keys") + 1].split(",")
    assert sorted(splits.loc[splits.split == "forget", "key"]) == sorted(named)  # exactly the records named
    assert (tmp_path / "runs" / "mine-eval").is_dir()


@pytest.mark.slow
@pytest.mark.ray
def test_the_readme_session_runs_as_written(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNLEARN_RESULTS", str(tmp_path / "results"))
    for argv in typical_session():
        assert main(at_test_scale(argv)) == 0, f"`unlearn {shlex.join(argv)}` failed"
    runs = tmp_path / "runs"
    assert (runs / "tune" / "best.yaml").is_file()
    for checkpoint in ("simclr", "simclr-retrained", "simclr-forgot"):
        assert (runs / checkpoint / "meta.json").is_file()
    report = next((runs / "report").glob("*.html")).read_text()
    assert "forgot" in report or "memgp" in report  # the report names the session's unlearned model
