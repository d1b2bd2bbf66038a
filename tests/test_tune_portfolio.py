"""`unlearn tune --space portfolio`: the conditional space is built from the method registry (a new method joins by
itself, classifier-only methods stay out of an encoder's portfolio), Optuna samples only the chosen method's keys,
and one Tune run over three cheap classifier methods on digits picks the best feasible trial across them, writes it
as a best.yaml that `forget` and the scheduler accept, and reports each method's best row (console, summary.json,
the report's Tune table)."""

from __future__ import annotations

import json
import re

import optuna
import pytest
import yaml

from orchestrator.cli import main
from orchestrator.tune.outcome import load_trials
from orchestrator.tune.portfolio import SEPARATOR, load_portfolio, portfolio_methods
from tests.tune_helpers import tiny_checkpoint
from trainables.errors import UserError
from trainables.unlearning import registry
from trainables.unlearning.registry import METHODS, MethodInfo

CHEAP = ("finetune", "neggrad_plus", "random_labels")  # classifier methods without a gradient penalty


@pytest.mark.parametrize("kind", ["encoder", "classifier"])
def test_portfolio_holds_exactly_the_registry_methods_with_a_space_for_the_kind(kind):
    space = load_portfolio(kind)
    expected = [name for name, info in METHODS.items() if info.space and kind in info.kinds]
    assert space.methods == expected and "retrain" not in expected
    assert ("random_labels" in space.methods) == (kind == "classifier")  # classifier-only
    for method, sub in space.spaces.items():  # each method under its own yaml space
        assert sub.method == method and sub.name == METHODS[method].space


def test_a_method_added_to_the_registry_joins_the_portfolio(monkeypatch):
    extra = MethodInfo("finetune_copy", "test", METHODS["finetune"].step_ref, primary="retain", space="finetune",
                       kinds=("classifier",))
    monkeypatch.setitem(registry.METHODS, "finetune_copy", extra)
    assert "finetune_copy" in portfolio_methods("classifier") and "finetune_copy" not in portfolio_methods("encoder")


def test_methods_restricts_and_is_checked_against_the_registry_and_the_kind():
    assert load_portfolio("classifier", ["random_labels", "finetune"]).methods == ["finetune", "random_labels"]
    for methods, message in ((["nope"], "unknown method 'nope'"), (["retrain"], "no search space"),
                             (["random_labels"], "does not apply to an encoder"), ([" "], "--methods is empty")):
        with pytest.raises(UserError, match=message):
            load_portfolio("encoder", methods)


def test_sampled_configs_hold_only_the_chosen_methods_keys_and_every_method_starts_once():
    from ray.tune.search.optuna import OptunaSearch

    space = load_portfolio("classifier", CHEAP, overrides=["epochs=2"])
    starts = space.start_points()
    assert [p["method"] for p in starts] == list(CHEAP)
    searcher = OptunaSearch(space=space.optuna_space(), metric="objective", mode="min", points_to_evaluate=starts,
                            sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    seen = []
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        method = config["method"]
        seen.append(method)
        assert set(config) == {"method", method}  # nothing sampled for the other methods
        assert set(config[method]) == set(space.spaces[method].params)
        job = space.job(config)
        assert job.method == method and job.epochs == 2 and job.monitor is False
        best = space.best_config(config)
        assert best["method"] == method and best["epochs"] == 2 and best["lr"] == config[method]["lr"]
        searcher.on_trial_complete(f"t{i}", {"objective": 0.1 * i})
    assert seen[:3] == list(CHEAP)  # the start points first, one per method
    names = {name for t in searcher._ot_study.trials for name in t.params}
    assert all(n == "method" or n.split(SEPARATOR)[0] in CHEAP for n in names)


@pytest.mark.slow
def test_one_tune_run_across_methods_picks_the_best_feasible(ray_session, tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "base", method="supervised")
    out, results = tmp_path / "out", tmp_path / "results"
    code = main(["tune", "--checkpoint", str(checkpoint), "--space", "portfolio", "--methods", ",".join(CHEAP),
                 "--samples", "4", "--cap", "0.3", "--set", "epochs=1", "--seed", "1", "--out", str(out),
                 "--results", str(results), "--attack", "n_views=4", "--attack", "attacks=[confidence]"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    df = load_trials(str(results), experiment=summary["search"])
    assert len(df) == 4 and set(df["method"]) == set(CHEAP)  # a start trial per method, then TPE
    assert (df["space"] == "portfolio").all()
    feasible = df[df["feasible"]]
    config = yaml.safe_load((out / "best.yaml").read_text())
    best = df.set_index("trial_id").loc[summary["best"]["trial_id"]]
    assert config["method"] in CHEAP and config["method"] == best["method"]
    assert best["feasible"] and best["objective"] == feasible["objective"].min()
    assert config["lr"] == pytest.approx(best["sampled"][config["method"]]["lr"])

    # per-method rows: each method's best feasible trial (summary.json, console)
    rows = {r["method"]: r for r in summary["per_method"]}
    assert list(rows) == list(CHEAP)
    for method, group in df.groupby("method"):
        ok = group[group["feasible"]]
        row = rows[method]
        assert row["trials"] == len(group) and row["feasible"] == len(ok)
        if len(ok):
            assert row["best"]["objective"] == ok["objective"].min()
            assert re.search(rf"^  {method}\s+{len(group)} trial\(s\), {len(ok)} feasible  best "
                             rf"{row['best']['trial_id']}", printed.out, re.M)
        else:
            assert row["best"] is None and re.search(rf"^  {method} .*no feasible trial$", printed.out, re.M)
    assert re.search(r"^trial \d/4 \S+  method=(finetune|neggrad_plus|random_labels) ", printed.out, re.M)

    # the report's Tune table: one row per method of the search
    from orchestrator.report.run_tables import tune_searches
    from orchestrator.results.store import load

    table = tune_searches(load(str(results)))[0]
    lines = {line[1]: line for line in table.rows}
    assert set(lines) == set(CHEAP)
    for method, row in rows.items():
        best_cell = lines[method][table.headers.index("best objective")]
        assert best_cell == ("no feasible trial" if row["best"] is None else f"{row['best']['objective']:.3f}")

    # consumers: the scheduler's executor resolves the method from best.yaml; forget runs it
    from orchestrator.ledger.executors import RayExecutor
    from orchestrator.ledger.verification import VerifyConfig

    resolved = RayExecutor().resolve_config(str(out / "best.yaml"), [], VerifyConfig())
    assert resolved["job"]["method"] == config["method"] and resolved["job"]["lr"] == pytest.approx(config["lr"])
    assert main(["forget", "--checkpoint", str(checkpoint), "--config", str(out / "best.yaml"), "--out",
                 str(tmp_path / "forgot"), "--set", "runtime.progress=false"]) == 0
    meta = json.loads((tmp_path / "forgot" / "meta.json").read_text())
    assert meta["unlearning"]["method"] == config["method"]
