"""Config loading: defaults < preset < file < flags < --set; every unknown key is an error."""

from __future__ import annotations

import pytest

from orchestrator.config import available_presets, load_job, parse_overrides
from trainables.config import PretrainJob
from trainables.errors import UserError


def test_precedence_and_types(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("optim:\n  lr: 0.5\n  epochs: 7\ndata:\n  num_members: 50\n")
    job = load_job(PretrainJob, config_file=str(f), preset="overfit", overrides=["optim.lr=0.25"],
                   cli_values={"optim.epochs": 9, "method": None})
    assert job.optim.lr == 0.25 and job.optim.epochs == 9  # --set beats flag beats file
    assert job.data.num_members == 50 and job.augment.strength == 0.2  # file + preset
    assert job.method == "simclr"  # flag left unset keeps the default


def test_overrides_parse_yaml_values():
    assert parse_overrides(["a.b=1", "a.c=[1, 2]", "d=true", "e=text"]) == {
        "a": {"b": 1, "c": [1, 2]}, "d": True, "e": "text"}
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["novalue"])


@pytest.mark.parametrize("data, needle", [
    ({"optim": {"lrr": 1}}, "unknown config key 'optim.lrr'"),
    ({"bogus": 1}, "unknown config key 'bogus'"),
    ({"optim": {"lr": -1}}, "optim.lr"),
    ({"method": "dino"}, "method"),
])
def test_invalid_configs_name_the_key(data, needle):
    from orchestrator.config import validate

    with pytest.raises(UserError, match=needle):
        validate(PretrainJob, data)


def test_presets_exist_and_unknown_preset_is_an_error(tmp_path):
    assert {"overfit", "demo"} <= set(available_presets())
    with pytest.raises(UserError, match="unknown preset 'nope'"):
        load_job(PretrainJob, preset="nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="mapping"):
        load_job(PretrainJob, config_file=str(bad))
