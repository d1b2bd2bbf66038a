"""What the command line prints: bounded progress in logs, -q / -v, --version, Tune's trial lines, refused keys."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from trainables import console
from trainables.loops.progress import RunProgress, line_epochs


@pytest.mark.parametrize("epochs", [1, 2, 7, 20, 21, 150, 1600])
def test_a_run_prints_at_most_the_line_budget_evenly_and_always_its_last_epoch(epochs):
    marks = line_epochs(epochs, 20)
    assert len(marks) == min(20, epochs) and max(marks) == epochs and min(marks) >= 1
    if epochs >= 20:  # evenly spaced: gaps differ by at most one epoch
        gaps = {b - a for a, b in zip(sorted(marks), sorted(marks)[1:], strict=False)}
        assert max(gaps) - min(gaps) <= 1
    resumed = line_epochs(epochs, 20, start_epoch=epochs // 2)
    assert all(e > epochs // 2 for e in resumed) and (not resumed or max(resumed) == epochs)


def run_lines(epochs: int, *, enabled: bool = True, **settings) -> list[str]:
    lines: list[str] = []
    with console.scoped(**settings):
        progress = RunProgress("memgp ", epochs=epochs, steps_per_epoch=2, enabled=enabled, log=lines.append)
        for epoch in range(epochs):
            assert list(progress.batches([1, 2], epoch)) == [1, 2]
            progress.end_epoch(epoch, {"epoch": epoch + 1, "loss": 1.0 / (epoch + 1), "memgp": 0.5,
                                       "epoch_time_s": 0.1, "samples_per_s": 640.0})
    return lines


def test_progress_lines_in_a_log_quiet_verbose_and_off(capsys):
    lines = run_lines(150)  # a captured stderr is not a terminal: lines, no bar
    assert len(lines) == 20 and lines[-1].startswith("memgp epoch 150/150 loss=0.0067 memgp=0.5000")
    assert "640 samples/s" in lines[0] and "ETA" in lines[0] and "ETA" not in lines[-1]
    assert "epoch_time_s" not in lines[0] and "samples_per_s" not in lines[0]
    assert len(run_lines(150, verbosity=console.VERBOSE)) == 150
    assert run_lines(150, verbosity=console.QUIET) == []
    assert run_lines(150, enabled=False) == []  # runtime.progress=false
    assert len(run_lines(150, verbosity=console.QUIET, progress=True, progress_lines=3)) == 3  # the demo
    assert capsys.readouterr().err == ""  # lines go through the run's log function only


def test_status_lines_stay_out_of_logs_unless_verbose(capsys):
    console.status("loading the digits data ...")
    assert capsys.readouterr().err == ""  # not a terminal: a script's stderr stays one error line
    with console.scoped(verbosity=console.VERBOSE):
        console.status("loading the digits data ...")
    assert capsys.readouterr().err == "loading the digits data ...\n"


def test_version_and_global_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("unlearn 0.")
    with console.scoped():
        assert main(["-q", "inspect", "/nonexistent"]) == 2
        assert console.is_quiet()
    assert not console.is_quiet()


def test_tune_trial_line_shows_the_values_as_applied():
    from orchestrator.tune.space import load_space
    from orchestrator.tune.trial_lines import trial_line

    space = load_space("memgp", ["epochs=5"])
    config = {"a": 0.316, "a_zero": True, "b": 12.345, "form": "wgan", "train_term_source": "forget", "lr": 0.0012}
    line = trial_line(space, "knn_acc", config, {"status": "ok", "objective": 0.031, "mia_accuracy": 0.531,
                                                 "accuracy_drop": 0.021, "feasible": True},
                      trial_id="7a1c_00002", done=3, samples=6)
    assert line == ("trial 3/6 7a1c_00002  a=0 b=12.3 form=wgan train_term_source=forget lr=0.0012  objective "
                    "0.031  attack acc 0.531  knn_acc drop +0.021  feasible")
    assert "a=0" in line and "a_zero" not in line and "epochs" not in line  # fixed keys are not searched
    assert space.best_config(config)["a"] == 0.0  # what best.yaml gets


def test_retrain_refuses_keys_it_does_not_use(tmp_path, capsys):
    assert main(["retrain", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "b=10"]) == 2
    err = capsys.readouterr().err
    assert err == "error: unlearn retrain does not use b; its keys: retrain_epochs, runtime.*\n"
    assert not (tmp_path / "r").exists()


def test_evaluate_offers_no_preset_it_would_reject(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "--preset" not in text and "--set attack.n_views=6" in text and "95%%" not in text
