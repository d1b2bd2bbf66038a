"""Search spaces: the shipped ones load, switches and int bounds map correctly, and every malformed file fails
with a UserError that names the problem."""

from __future__ import annotations

import pytest

from orchestrator.tune.space import available_spaces, load_space
from tests.tune_helpers import write_space
from trainables.errors import UserError

SHIPPED = {"memgp", "gp", "finetune", "neggrad_plus", "l1_sparse", "alignment_calibration", "random_labels",
           "salun", "scrub"}


def test_every_shipped_space_loads_and_runs_its_method():
    assert SHIPPED <= set(available_spaces())
    for name in SHIPPED:
        space = load_space(name)
        assert space.method == name and space.params and space.description
        assert "lr" in space.params and "epochs" in space.params


def test_memgp_switch_turns_a_off_and_int_bounds_include_the_top():
    space = load_space("memgp")
    assert space.params["a"].zero and "a_zero" in space.tune_space()
    sampled = {"a": 0.3, "a_zero": True, "b": 2.0, "form": "wgan", "train_term_source": "retain", "lr": 1e-3,
               "epochs": 10}
    job = space.job(sampled)
    assert (job.a, job.b, job.form, job.epochs, job.monitor) == (0.0, 2.0, "wgan", 10, False)
    assert space.job(dict(sampled, a_zero=False)).a == 0.3
    epochs = space.tune_space()["epochs"]
    assert (epochs.lower, epochs.upper) == (2, 11)  # tune.randint excludes upper: 10 is reachable
    assert "monitor" not in space.best_config(sampled)


def test_set_fixes_a_searched_key_and_start_points_are_complete():
    space = load_space("memgp", ["epochs=3", "b=5"])
    assert "epochs" not in space.params and space.fixed["epochs"] == 3
    assert space.job({"a": 1.0, "a_zero": False, "form": "squared", "train_term_source": "forget",
                      "lr": 1e-3}).b == 5
    points = space.start_points()
    assert points and all(set(p) == set(space.tune_space()) for p in points)
    assert points[1]["a_zero"] is True  # the "b alone" start point


@pytest.mark.parametrize("params, fixed, message", [
    ({"lr": {"type": "gaussian", "low": 1, "high": 2}}, {}, "unknown type 'gaussian'"),
    ({"lr": {"type": "loguniform", "low": 1e-2, "high": 1e-3}}, {}, "low < high"),
    ({"lr": {"type": "loguniform", "low": 0, "high": 1e-3}}, {}, "low > 0"),
    ({"epochs": {"type": "int", "low": 1.5, "high": 4}}, {}, "integer bounds"),
    ({"form": {"type": "categorical", "values": []}}, {}, "non-empty list"),
    ({"form": {"type": "categorical", "values": ["squared", "bogus"]}}, {}, "form=bogus"),
    ({"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}, {}, "learning_rate"),
    ({"penalty_output": {"type": "categorical", "values": ["embed", "bogus"]}}, {}, "penalty_output=bogus"),
    ({"epochs": {"type": "int", "low": 0, "high": 4}}, {}, "epochs"),
    ({"lr": {"type": "uniform", "low": 1e-4, "high": 1e-2, "step": 2}}, {}, "not ['step']"),
    ({"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}, {"lr": 1e-3}, "both fixed and searched"),
    ({"lr": {"type": "loguniform", "low": "tiny", "high": 1e-2}}, {}, "finite number 'low'"),
])
def test_malformed_space_files_name_the_problem(tmp_path, params, fixed, message):
    path = write_space(tmp_path / "bad.yaml", params, fixed=fixed)
    with pytest.raises(UserError, match="bad.yaml") as err:
        load_space(str(path))
    assert message in str(err.value)


def test_other_bad_spaces(tmp_path):
    with pytest.raises(UserError, match="unknown search space 'nope'.*memgp"):
        load_space("nope")
    (tmp_path / "broken.yaml").write_text("params: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_space(str(tmp_path / "broken.yaml"))
    with pytest.raises(UserError, match="'method'"):
        load_space(str(write_space(tmp_path / "m.yaml", {}, method=None)))
    with pytest.raises(UserError, match="unknown top-level key"):
        (tmp_path / "t.yaml").write_text("method: memgp\nparams: {}\nsearch: {}\n")
        load_space(str(tmp_path / "t.yaml"))
    lr = {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    with pytest.raises(UserError, match="start point 1: lr=0.5 is outside"):
        load_space(str(write_space(tmp_path / "s.yaml", lr, start=[{"lr": 0.5}])))
    with pytest.raises(UserError, match="set by the search"):
        load_space(str(write_space(tmp_path / "r.yaml", lr, fixed={"monitor": True})))
    with pytest.raises(UserError, match="--set method"):
        load_space("memgp", ["method=gp"])
