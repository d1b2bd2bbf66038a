"""The README's typical session, run for real as a user copies it (on the embedded digits data, at test scale).

Every other documented example is parsed and key-checked in test_docs.py; this one is executed end to end,
because it is the one a new user runs first. Only the scale is changed (epochs, members, trials), by options
appended to each line; the lines themselves are taken from README.md, so a README edit that breaks the
session fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Appended to each command (later --set wins), so the session runs in about a minute on 2 cores.
TEST_SCALE = {
    "pretrain": ["--set", "optim.epochs=2", "--set", "data.num_members=120", "--set", "data.num_nonmembers=120",
                 "--set", "data.image_size=16", "--set", "model.width=8", "--set", "eval.linear_probe=false"],
    "retrain": ["--set", "retrain_epochs=1"],
    "tune": ["--set", "epochs=1"],
    "forget": ["--set", "epochs=1"],
    "evaluate": ["--n-views", "2", "--bootstrap", "50", "--no-plots"],
    "report": [],
}


def typical_session() -> list[list[str]]:
    """The README's session, with its first line swapped for the no-network line the README offers."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## A typical session", 1)[1].split("\n## ", 1)[0]
    offline = re.search(r"`(unlearn pretrain [^`]+)`", section).group(1)
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    lines = re.sub(r"\\\n\s*", " ", block).strip().splitlines()
    commands = [shlex.split(line, comments=True) for line in lines if line.strip()]
    assert commands[0][:2] == ["unlearn", "pretrain"]
    commands[0] = shlex.split(offline)
    return [argv[1:] for argv in commands]


def at_test_scale(argv: list[str]) -> list[str]:
    argv = list(argv)
    if "--samples" in argv:
        argv[argv.index("--samples") + 1] = "2"
    return argv + TEST_SCALE[argv[0]] + (["--set", "runtime.progress=false"] if argv[0] not in ("report", "evaluate") else [])


def test_the_session_is_what_the_readme_shows():
    steps = [argv[0] for argv in typical_session()]
    assert steps == ["pretrain", "retrain", "tune", "forget", "evaluate", "report"]


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
