"""The folder tree is the architecture: these tests keep it true (no Ray in trainables/, no import circle, few
top-level orchestrator modules, one method registry that every other place agrees with)."""

from __future__ import annotations

import ast
import re
from importlib import resources
from pathlib import Path

import yaml

from trainables.unlearning.config import UnlearnJob
from trainables.unlearning.registry import FAMILY_DEFAULTS, KIND_DEFAULTS, KINDS, METHODS, STEP_METHODS

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return out


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_trainables_never_imports_ray_or_the_orchestrator():
    offenders = [f"{p.relative_to(ROOT)}: {m}" for p in sorted((ROOT / "trainables").rglob("*.py"))
                 for m in _imports(p) if m.split(".")[0] in ("ray", "orchestrator")]
    assert not offenders, "trainables/ is the Ray-free worker side; move these to orchestrator/:\n" + "\n".join(offenders)


def test_orchestrator_has_wings_and_few_top_level_modules():
    top = sorted(p.name for p in (ROOT / "orchestrator").glob("*.py"))
    assert len(top) <= 8, f"orchestrator/ should keep at most 8 top-level modules, found {top}"
    for wing in ("run", "tune", "ledger", "results", "commands", "report"):
        assert (ROOT / "orchestrator" / wing / "__init__.py").is_file(), wing


def test_no_import_circle_between_modules():
    """Module-level imports (lazy imports inside functions are how a heavy dependency is deferred, not a circle)."""
    graph: dict[str, set[str]] = {}
    for pkg in ("orchestrator", "trainables"):
        for p in (ROOT / pkg).rglob("*.py"):
            graph[_module(p)] = {m for m in _imports(p, top_level_only=True) if m.split(".")[0] == pkg}
    for node, deps in graph.items():  # `from pkg import submodule` depends on the submodule, not on pkg's __init__
        graph[node] = {d for d in deps if not any(o.startswith(d + ".") for o in deps & set(graph))} or deps
    names = set(graph)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            target = dep if dep in names else None
            if target is None or (f"{node}.".startswith(f"{target}.")):  # a package's own __init__ is no circle
                continue
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_method_is_declared_once_and_every_place_agrees():
    fields = set(UnlearnJob.model_fields)
    docs = (ROOT / "docs" / "unlearning.md").read_text()
    docs = docs[docs.index("| method | loss per step |"):]
    docs = docs[:docs.index("\n\n")]  # the methods table only
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)`[^\n]*\| ([a-z, ]+) \|$", docs, re.M)}
    spaces = {p.name.removesuffix(".yaml"): yaml.safe_load(p.read_text())
              for p in resources.files("search_spaces").iterdir() if p.name.endswith(".yaml")}
    declared_spaces = {m.space for m in METHODS.values() if m.space}
    for name, method in METHODS.items():
        assert set(method.kinds) <= set(KINDS), name
        assert set(method.params) <= fields, f"{name} reads keys UnlearnJob does not have: {set(method.params) - fields}"
        assert name in rows, f"docs/unlearning.md's methods table has no row for {name}"
        assert [k.strip() for k in rows[name].split(",")] == list(method.kinds), f"docs kinds of {name}"
        if method.step_ref is not None:
            assert callable(method.step), name
        if method.prepare_ref is not None:
            assert callable(method.prepare), name
        if method.space is not None:
            assert spaces[method.space]["method"] == name, f"search_spaces/{method.space}.yaml is not for {name}"
    assert set(rows) <= set(METHODS), f"docs rows for unknown methods: {set(rows) - set(METHODS)}"
    for space, content in spaces.items():
        assert content["method"] in METHODS, f"search_spaces/{space}.yaml names an unknown method"
        assert space in declared_spaces or content["method"] in METHODS, space
    assert set(STEP_METHODS) == {n for n, m in METHODS.items() if m.step_ref}
    description = UnlearnJob.model_fields["method"].description
    assert description.startswith("one of: " + ", ".join(METHODS) + ";")
    # one default per model kind, a method that supports it, a valid job, and named where the key is documented
    assert set(KIND_DEFAULTS) == set(KINDS)
    for kind, keys in KIND_DEFAULTS.items():
        assert METHODS[keys["method"]].supports(kind), kind
        UnlearnJob.model_validate(keys)
        assert f"{keys['method']} for {kind}s" in description
    # an encoder family's own default: a pretraining method that makes an encoder, a method for encoders, named too
    from trainables.config import METHODS as PRETRAIN_METHODS

    for family, keys in FAMILY_DEFAULTS.items():
        assert family in PRETRAIN_METHODS and family != "supervised", family
        assert METHODS[keys["method"]].supports("encoder"), family
        UnlearnJob.model_validate(keys)
        assert f"{keys['method']} for {family}" in description


def test_the_cli_offers_exactly_the_registered_methods(capsys):
    from orchestrator.cli import main

    try:
        main(["forget", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    for name in METHODS:
        assert name in text
