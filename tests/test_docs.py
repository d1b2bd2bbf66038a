"""Docs that cannot go stale: the generated references match, and every example in the docs and in `--help`
parses with today's parser and names only config keys its command takes; the cheap ones run for real."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from orchestrator.cli import build_parser, main
from orchestrator.config import load_job, parse_overrides
from orchestrator.docs_gen import cli_reference as cli_docs
from orchestrator.docs_gen import config_reference as config_docs
from trainables.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_DOCSTRINGS = sorted((ROOT / "orchestrator" / "commands").glob("*.py"))


def test_config_reference_is_generated_from_the_models_and_presets():
    assert (ROOT / "docs" / "config.md").read_text() == config_docs.generate(), \
        "docs/config.md is stale: run `make docs`"


def test_readme_command_reference_is_generated_from_the_parser():
    readme = (ROOT / "README.md").read_text()
    assert readme == cli_docs.render(readme), "README.md's command reference is stale: run `make docs`"


def test_the_config_reference_lists_every_key_with_its_default():
    from trainables.config import PretrainJob

    text = config_docs.generate()
    assert "| `optim.lr` | `0.001` |" in text and "| `b` | `1` |" in text and "| `attack.n_views` | `10` |" in text
    for name in ("demo", "overfit"):  # presets: their keys as shipped
        assert f"### `{name}`" in text
    assert "`optim.lr=0.003`, `optim.epochs=150`" in text  # what overfit.yaml says (an old doc said 1e-3 / 100)
    assert text.count("| `data.") == len(PretrainJob.model_fields["data"].annotation.model_fields)


def code_examples(text: str) -> list[str]:
    """``unlearn ...`` / ``python -m orchestrator ...`` lines of fenced code blocks (continuations joined,
    comments and a ``$ `` prompt removed); an example followed by its ``error:`` line shows a refusal and is left
    out (``test_the_documented_error_messages_are_what_the_commands_print`` runs those)."""
    out, in_block, buf = [], False, ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        stripped = line.strip()
        if not in_block and not stripped.startswith("unlearn "):
            continue
        if buf:
            buf += " " + stripped
        elif re.match(r"^(\$ )?(unlearn|python -m orchestrator) ", stripped):
            buf = stripped
        else:
            continue
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        if not (i + 1 < len(lines) and lines[i + 1].startswith("error: ")):
            out.append(re.sub(r"\s+#.*$", "", buf.removeprefix("$ ")))
        buf = ""
    return out


def docstring_examples(path: Path) -> list[str]:
    """The indented ``unlearn ...`` lines of a command module's docstring."""
    doc = path.read_text().split('"""')[1]
    joined = re.sub(r"\s*\\+\n\s*", " ", doc)  # continuation lines (``\\`` in a non-raw docstring)
    return [re.sub(r"\s+#.*$", "", line.strip()) for line in joined.splitlines() if line.startswith("    unlearn ")]


def all_examples() -> list[tuple[str, str]]:
    found = [(p.name, ex) for p in DOCS for ex in code_examples(p.read_text())]
    found += [(p.name, ex) for p in COMMAND_DOCSTRINGS for ex in docstring_examples(p)]
    return [(where, ex) for where, ex in found if " ... " not in ex and "python -m orchestrator." not in ex]


def argv_of(example: str) -> list[str]:
    argv = shlex.split(example)
    return argv[1:] if argv[0] == "unlearn" else argv[3:]  # python -m orchestrator ...


def check_keys(args) -> None:
    """The example's --set / --attack keys validated against the config of its command."""
    from trainables.attacks.config import AttackConfig, EvaluateJob
    from trainables.config import PretrainJob
    from trainables.unlearning.config import UnlearnJob

    overrides = [o for o in getattr(args, "overrides", []) if "$" not in o]
    command = args.command + (f" {args.action}" if getattr(args, "action", None) else "")
    if command == "pretrain":
        load_job(PretrainJob, preset=args.preset, overrides=overrides)
    elif command == "forget":
        load_job(UnlearnJob, overrides=overrides, cli_values={"method": args.method, "epochs": args.epochs})
    elif command in ("schedule run", "tune"):
        load_job(UnlearnJob, overrides=overrides)
    elif command == "retrain":
        from orchestrator.commands.retrain import RETRAIN_KEYS

        load_job(UnlearnJob, overrides=overrides, cli_values={"method": "retrain"}, allowed=RETRAIN_KEYS)
    elif command == "evaluate":
        load_job(EvaluateJob, overrides=overrides)
    elif command == "import":
        from orchestrator.commands.import_model import ALLOWED_KEYS

        load_job(PretrainJob, overrides=overrides, allowed=ALLOWED_KEYS)
    attack = getattr(args, "attack_overrides", [])
    if attack:
        AttackConfig.model_validate(parse_overrides(attack))


def test_there_are_examples_to_check():
    examples = all_examples()
    commands = {argv_of(ex)[0] for _, ex in examples}
    assert len(examples) >= 40 and {"pretrain", "forget", "retrain", "evaluate", "tune", "schedule", "requests",
                                     "models", "report", "demo"} <= commands


@pytest.mark.parametrize("where, example", all_examples())
def test_every_documented_example_parses_and_names_only_keys_its_command_takes(where, example):
    parser = build_parser()
    try:
        args = parser.parse_args(argv_of(example))
    except SystemExit:
        pytest.fail(f"{where}: `{example}` is rejected by the parser")
    try:
        check_keys(args)
    except UserError as exc:
        # a reference set is a directory of the reader's; its keys were accepted if only its absence is reported
        if "reference_set=" not in example or "reference set" not in str(exc):
            raise


def help_texts() -> list[tuple[str, str]]:
    """(command, --help text) of every command and action."""
    parser = build_parser()
    out = []
    for name, (sub, _) in cli_docs._subparsers(parser).items():
        actions = cli_docs._subparsers(sub)
        for action, (leaf, _) in (actions or {"": (sub, "")}).items():
            out.append((f"{name} {action}".strip(), leaf.format_help()))
    return out


@pytest.mark.parametrize("command, text", help_texts())
def test_every_set_example_in_help_is_valid_for_its_command(command, text):
    parser = build_parser()
    flat = " ".join(text.split())
    examples = re.findall(r"(--set|--attack-set|--attack) ([a-z][\w.]*=[^\s,;)]+)", flat)
    for flag, pair in examples:
        base = ["--checkpoint", "c", "--out", "o"] if command in ("forget", "retrain", "evaluate", "tune") else []
        base += ["--space", "memgp"] if command == "tune" else []
        base += ["--out", "o"] if command in ("pretrain", "report") else []
        base += ["--arch", "a", "--weights", "w", "--data", "d", "--out", "o"] if command == "import" else []
        args = parser.parse_args([*command.split(), *base, flag, pair])
        check_keys(args)
    assert "%%" not in text  # argparse does not %-format descriptions


def test_the_documented_error_messages_are_what_the_commands_print(tmp_path, capsys):
    """docs/config.md's two error examples, run for real: each is one `error:` line, and nothing is written."""
    blocks = re.findall(r"\$ (unlearn [^\n]+)\n(error: [^\n]+)", (ROOT / "docs" / "config.md").read_text())
    assert len(blocks) == 2
    for command, expected in blocks:
        argv = [a.replace("runs/", f"{tmp_path}/runs/") if a.startswith("runs/") else a for a in argv_of(command)]
        argv = [f"{tmp_path}/x" if a == "x" else a for a in argv]
        assert main(argv) == 2
        assert capsys.readouterr().err == expected + "\n"
    assert list(tmp_path.iterdir()) == []


def test_version_is_the_package_version(capsys):
    from orchestrator import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"unlearn {__version__}\n"
