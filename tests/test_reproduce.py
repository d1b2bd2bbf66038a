"""benchmarks/reproduce.py on digits at unit size: cells run through the Python APIs, rows carry the conventions the
report needs, a re-run skips finished cells, the Markdown tables are generated from the store, bad input exits 2."""

from __future__ import annotations

import json

import pytest

from benchmarks import make_benchmarks_md, reproduce
from benchmarks.repro_plan import build_plan
from orchestrator.results.store import load

TINY = ["--data", "digits", "--members", "100", "--seeds", "0", "--probe-every", "1",
        "--set", "data.image_size=16", "--set", "model.width=8", "--set", "model.proj_dim=32",
        "--set", "optim.epochs=2", "--set", "optim.batch_size=32", "--unlearn-set", "epochs=1",
        "--unlearn-set", "batch_size=32", "--attack-set", "attack.n_views=4", "--attack-set", "attack.bootstrap=20",
        "--in-process"]


@pytest.mark.slow
def test_one_headline_model_end_to_end_and_resume(tmp_path, capsys):
    args = TINY + ["--work", str(tmp_path / "w"), "--tables", "main", "--models", "simclr"]
    assert reproduce.main(args) == 0
    out = capsys.readouterr().out
    assert "2 cells, 0 already" in out and "done  main/simclr/s0/memgp: attack" in out

    df = load(str(tmp_path / "w" / "results"))
    assert sorted(df["kind"].value_counts().items()) == [("evaluate", 8), ("pretrain", 1), ("retrain", 1)]
    ev = df[df["kind"] == "evaluate"]
    assert set(ev["experiment"]) == {"main"} and set(ev["hp_seed"]) == {0.0}
    assert set(ev["method"]) == {"memgp", "gp"} and set(ev["model"]) == {"simclr"}
    extra = [json.loads(x) for x in ev["extra_json"]]
    assert {e["cell"] for e in extra} == {"main/simclr/s0/memgp", "main/simclr/s0/gp"}
    assert sum(e["primary"] for e in extra) == 2  # one primary row (encodermi_vector) per cell
    assert all(e["peak_rss_mb"] > 50 for e in extra)
    # the original and retrained models are audited once and reused by the second cell
    assert {e["cell"]: len(e["evaluated_roles"]) for e in extra} == {"main/simclr/s0/memgp": 3, "main/simclr/s0/gp": 1}
    assert "step_times" in next(e for e in extra if e["cell"].endswith("memgp"))
    row = ev[ev["attack"] == "encodermi_vector"].iloc[0]
    for col in ("before_mia_accuracy", "after_mia_accuracy", "retrain_mia_accuracy", "before_knn_acc",
                "unlearn_time_s", "retrain_time_s", "eval_time_s"):
        assert row[col] == row[col], col  # not null
    pre = json.loads(df[df["kind"] == "pretrain"]["extra_json"].iloc[0])
    assert set(pre["validation_probes"]) == {"1", "2"}  # the validation-protocol attack per epoch

    assert reproduce.main(args) == 0  # resume: nothing left to do
    assert "2 cells, 2 already" in capsys.readouterr().out
    assert len(load(str(tmp_path / "w" / "results"))) == len(df)

    # the per-example attack of the same cell: K reference models of the original, then LiRA on all three models
    from benchmarks import per_example

    pe = TINY + ["--work", str(tmp_path / "w"), "--tables", "main", "--models", "simclr", "--k", "2"]
    assert per_example.main(pe + ["--cells", "main/nosuch"]) == 2
    assert "no cell of the plan matches" in capsys.readouterr().err
    assert per_example.main(pe + ["--cells", "main/memgp"]) == 0
    lira = load(str(tmp_path / "w" / "results"), kinds=["evaluate"])
    lira = lira[lira["experiment"] == "per_example"]
    assert len(lira) == 1 and lira["attack"].iloc[0] == "lira"
    for col in ("before_mia_auc", "after_mia_auc", "retrain_mia_auc"):
        assert 0 <= lira[col].iloc[0] <= 1, col
    capsys.readouterr()
    assert per_example.main(pe + ["--cells", "main/memgp"]) == 0  # resumed: nothing trained or appended again
    assert "done already" in capsys.readouterr().out
    assert len(load(str(tmp_path / "w" / "results"), kinds=["evaluate"])) == len(df[df["kind"] == "evaluate"]) + 1

    md = tmp_path / "BENCHMARKS.md"
    assert make_benchmarks_md.main(["--results", str(tmp_path / "w" / "results"), "--out", str(md)]) == 0
    text = md.read_text()
    assert "| SimCLR | memgp | lira |" in text  # the per-example table
    assert "| SimCLR | memgp |" in text and "| SimCLR | *retrained* |" in text
    assert "**missed**" in text  # a 2-epoch model cannot reach the 0.75 attack target
    md.write_text(text.replace("## headline", "## headline\n\nprose kept"))
    make_benchmarks_md.main(["--results", str(tmp_path / "w" / "results"), "--out", str(md)])
    assert "prose kept" in md.read_text()


@pytest.mark.parametrize("extra, message", [
    (["--members", "5"], "--members must be at least 10"),
    (["--tables", "main,tabel9"], "unknown table"),
    (["--forget-fractions", "0.2,1.5"], "--forget-fractions must lie in (0, 1)"),
    (["--unlearn-set", "nosuchkey=1"], "nosuchkey"),
    (["--model-set", "mocco:optim.epochs=3"], "--model-set expects MODEL:KEY=VALUE"),
    (["--model-set", "moco"], "--model-set expects MODEL:KEY=VALUE"),
    (["--only", "main/memgp,main/nosuch"], "--only names no cell of the plan: main/nosuch"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, extra, message):
    work = tmp_path / "w"
    assert reproduce.main(TINY + ["--work", str(work)] + extra) == 2
    assert message in capsys.readouterr().err
    assert not work.exists()


def test_a_model_set_changes_only_that_models_pretraining(tmp_path):
    from benchmarks.repro_tasks import build_tasks

    def pretrain_jobs(argv):
        settings = reproduce.settings_from(reproduce.parse_args(TINY + ["--work", str(tmp_path)] + argv))
        tasks = build_tasks(build_plan(settings), settings, tmp_path)
        return {t.name: (t.key, t.payload["job"]) for t in tasks if t.kind == "pretrain"}

    base = pretrain_jobs(["--models", "simclr,moco", "--set", "optim.epochs=3"])
    moco = pretrain_jobs(["--models", "simclr,moco", "--set", "optim.epochs=3",
                          "--model-set", "moco:optim.epochs=5", "--model-set", "moco:data.num_members=40"])
    assert moco["pretrain/simclr/s0"] == base["pretrain/simclr/s0"]  # same key: finished runs stay reusable
    key, job = moco["pretrain/moco/s0"]
    assert key != base["pretrain/moco/s0"][0]
    assert (job["optim"]["epochs"], job["data"]["num_members"]) == (5, 40)  # after --set


def test_only_keeps_the_named_cells_and_what_they_need(tmp_path):
    from benchmarks.repro_tasks import build_tasks

    args = reproduce.parse_args(TINY + ["--work", str(tmp_path), "--models", "simclr,moco", "--seeds", "0,1",
                                        "--tables", "main,methods,tuned"])
    settings = reproduce.settings_from(args)
    tasks = build_tasks(build_plan(settings), settings, tmp_path)
    kept = reproduce.only_cells(tasks, ("methods/default", "tuned/tuned"))
    cells = sorted(t.name for t in kept if t.kind == "cell")
    assert cells == sorted(f"{e}/{m}/s{s}/{label}" for e, label in [("methods", "default"), ("tuned", "tuned")]
                           for m in ("simclr", "moco") for s in (0, 1))
    names = {t.name for t in kept}
    assert {"pretrain/moco/s1", "retrain/moco/s1/f20", "tune/simclr/s0"} <= names  # what the cells need
    assert not any(t.kind == "cell" and "memgp" in t.name for t in kept) and len(kept) < len(tasks)
    assert [t.name for t in kept] == [t.name for t in tasks if t.name in names]  # run order kept
    assert reproduce.only_cells(tasks, ()) == tasks


def test_plan_order_keys_and_dependencies(tmp_path):
    from benchmarks.repro_plan import Settings, build_plan
    from benchmarks.repro_tasks import build_tasks

    settings = Settings(data="digits", members=100, seeds=(0, 1), models=("simclr",), forget_fractions=(0.1, 0.2),
                        tables=("main", "supervised", "ablation", "forget_size", "baselines", "tuned"))
    cells = build_plan(settings)
    assert [c.name for c in cells[:3]] == ["main/simclr/s0/memgp", "main/simclr/s0/gp", "supervised/supervised/s0/memgp"]
    ablation = [c for c in cells if c.experiment == "ablation"]
    assert len(ablation) == 13 and {c.tags["ablation"]["equation"] for c in ablation} == {"eq2", "eq3"}
    tasks = build_tasks(cells, settings, tmp_path)
    again = build_tasks(build_plan(settings), settings, tmp_path)
    assert [(t.name, t.key, t.out) for t in tasks] == [(t.name, t.key, t.out) for t in again]  # deterministic
    by_name = {t.name: t for t in tasks}
    order = [t.name for t in tasks]
    for t in tasks:  # every dependency comes first
        assert all(order.index(d) < order.index(t.name) for d in t.deps), t.name
    # one retraining per forget set; the 20% cells of main and forget_size share the unlearned checkpoint
    assert sorted(n for n in by_name if n.startswith("retrain/simclr/s0")) == ["retrain/simclr/s0/f10",
                                                                                "retrain/simclr/s0/f20"]
    assert by_name["forget_size/simclr/s0/memgp"].out == by_name["main/simclr/s0/memgp"].out
    assert by_name["forget_size/simclr/s0/memgp"].key != by_name["main/simclr/s0/memgp"].key
    # tuned cells of every seed wait for one search on the first seed's original model
    assert by_name["tuned/simclr/s1/tuned"].deps[-1] == "tune/simclr/s0"
    assert by_name["tune/simclr/s0"].deps == ["pretrain/simclr/s0"]
    baselines = {(c.model, c.label) for c in cells if c.experiment == "baselines"}
    assert ("supervised", "random_labels") in baselines and ("simclr", "alignment_calibration") in baselines
    assert ("supervised", "alignment_calibration") not in baselines and ("simclr", "random_labels") not in baselines


def test_methods_table_runs_every_registered_method_of_the_kind_on_every_seed_and_judges_it(monkeypatch):
    import pandas as pd

    from benchmarks import benchmark_tables as bt
    from benchmarks.repro_plan import Settings, build_plan, table_methods
    from trainables.unlearning import registry

    cells = build_plan(Settings(data="digits", seeds=(0, 1), models=("simclr",),
                                tables=("supervised", "methods")))
    methods = {(c.model, c.seed, c.label) for c in cells if c.experiment == "methods"}
    assert {label for model, _, label in methods if model == "supervised"} == {*table_methods("supervised"), "default"}
    assert {"salun", "scrub", "random_labels", "memgp", "gp"} <= set(table_methods("supervised"))
    assert "salun" not in table_methods("simclr") and "alignment_calibration" in table_methods("simclr")
    assert len(methods) == 2 * (len(table_methods("supervised")) + len(table_methods("simclr")) + 2)
    default = next(c for c in cells if c.experiment == "methods" and c.model == "supervised" and c.label == "default")
    assert default.unlearn == registry.KIND_DEFAULTS["classifier"]

    def row(label, seed, after, retrained, acc_after, ran=None):
        ran = ran or {"method": label}  # what the cell ran, as its row records it (seeds differ in runtime.seed)
        hp = {f"unlearning.{k}": v for k, v in {**ran, "runtime.seed": seed}.items()}
        return {"experiment": "methods", "model": "supervised", "label": label, "hp_seed": seed,
                "method": ran["method"], "hp_json": json.dumps(hp),
                "before_mia_accuracy": 0.85, "after_mia_accuracy": after, "retrain_mia_accuracy": retrained,
                "gap_mia_accuracy": after - retrained, "before_test_acc": 0.47, "after_test_acc": acc_after,
                "retrain_test_acc": 0.46, "unlearn_time_s": 10.0, "extra": {}}

    # scrub: within 0.05 of retrained and of chance on both seeds, drop 4 points; memgp: attack stays at 0.83;
    # one seed on each side of the retrained model must not cancel out (per-seed distances)
    scrub = {"method": "scrub"}
    frame = pd.DataFrame([row("default", 0, 0.52, 0.49, 0.43, scrub), row("default", 1, 0.50, 0.51, 0.43, scrub),
                          row("scrub", 0, 0.52, 0.49, 0.43), row("scrub", 1, 0.50, 0.51, 0.43),
                          row("memgp", 0, 0.83, 0.49, 0.45), row("memgp", 1, 0.84, 0.51, 0.44),
                          row("salun", 0, 0.58, 0.49, 0.43), row("salun", 1, 0.42, 0.51, 0.43)])
    table = bt.methods_table(frame)
    lines = {line.split(" | ")[1]: line for line in table.splitlines()[2:]}
    assert lines["scrub"].endswith("| 2 | met |") and "0.020 ± 0.014 (2)" in lines["scrub"]
    assert lines["memgp"].endswith("missed: gap, chance |") and lines["salun"].endswith("missed: gap, chance |")
    assert list(lines)[:5] == ["*original*", "default", "scrub", "salun", "memgp"]  # closest to retrained first
    monkeypatch.setitem(registry.KIND_DEFAULTS, "classifier", {"method": "scrub"})
    targets = {line.split(" | ")[1]: line for line in bt.targets_table(frame).splitlines()[2:]}
    assert targets["scrub, the product default"].endswith("| all met |")
    assert targets["defaults (a=1, b=1)"].endswith("| missed: gap, chance |")
    # a default of the paper's method at other weights is judged on its own cells, not on the paper's
    # cells of a default the code has since moved away from are judged apart, under the method they ran
    earlier = {"method": "memgp", "b": 7.0}
    frame = pd.concat([frame, pd.DataFrame([row("default", 0, 0.60, 0.49, 0.40, earlier),
                                            row("default", 1, 0.62, 0.51, 0.40, earlier)])], ignore_index=True)
    targets = {line.split(" | ")[1]: line for line in bt.targets_table(frame).splitlines()[2:]}
    assert targets["scrub, the product default"].endswith("| all met |") and "0.510 ± 0.014 (2)" in targets[
        "scrub, the product default"]
    assert targets["memgp, an earlier default"].endswith("| missed: gap, chance |")
    # a default of the paper's method at other weights is judged on its own cells, not on the paper's
    monkeypatch.setitem(registry.KIND_DEFAULTS, "classifier", earlier)
    targets = {line.split(" | ")[1]: line for line in bt.targets_table(frame).splitlines()[2:]}
    assert "| 0.610 ± 0.014 (2) |" in targets["memgp, the product default"]  # its cells, not the paper's 0.835
    assert targets["scrub, an earlier default"].endswith("| all met |")
    assert targets["defaults (a=1, b=1)"].endswith("| missed: gap, chance |")


def test_benchmarks_md_blocks_select_tables_and_rename_them():
    from benchmarks.make_benchmarks_md import select
    from trainables.errors import UserError

    tables = {"targets": "T", "methods": "M", "headline": "H"}
    assert select(tables, None) == tables
    assert select(tables, "methods,targets=kind_targets") == {"methods": "M", "kind_targets": "T"}
    with pytest.raises(UserError, match="no table 'tabel'"):
        select(tables, "tabel")


def test_benchmarks_md_from_an_empty_store_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    from benchmarks.make_benchmarks_md import main

    out = tmp_path / "BENCHMARKS.md"
    assert main(["--results", str(tmp_path / "no-results"), "--out", str(out)]) == 2
    assert "no evaluated cells" in capsys.readouterr().err and not out.exists()


# the committed stores and the blocks of BENCHMARKS.md each one fills (the commands BENCHMARKS.md gives)
COMMITTED_TABLES = [
    ("benchmarks/results_store/cifar10",
     "targets=kind_targets,headline=kind_headline,methods,tuned=kind_tuned,per_example,calibration=kind_calibration"),
    ("benchmarks/results_store/cifar10-repeat", "targets=repeat_targets,per_example=repeat_per_example"),
    ("benchmarks/results_store/cifar10-byol", "targets=byol_targets,headline=byol_headline,per_example=byol_per_example"),
]


def test_benchmarks_md_tables_are_what_the_committed_stores_generate(tmp_path):
    """A row added to or dropped from a committed store, or a change to how a table is judged, shows up here until
    BENCHMARKS.md is regenerated."""
    from pathlib import Path

    from benchmarks.make_benchmarks_md import main

    root = Path(__file__).resolve().parents[1]
    committed = (root / "BENCHMARKS.md").read_text()
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(committed)
    for store, blocks in COMMITTED_TABLES:
        assert main(["--results", str(root / store), "--source-name", store, "--out", str(out),
                     "--blocks", blocks]) == 0
    assert out.read_text() == committed
