"""The experiment YAML: bad fields are named in the error, the grid and ids are stable."""

from pathlib import Path

import pytest

from monitor.experiments.config import ConfigError, load_config, parse_config
from monitor.experiments.grid import build_grid
from tests.experiment_helpers import small_config

BASE = {
    "name": "x",
    "models": [{"kind": "reference"}],
    "environments": ["homeostasis"],
    "trials": 2,
}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"environments": ["nowhere"]}, "environments.0.name", "unknown environment"),
        ({"mitigations": ["reminder-every-x"]}, "mitigations", "unknown mitigation"),
        ({"stepz": 3}, "stepz", "Extra inputs"),
        ({"seeds": [1]}, "(top level)", "exactly one of 'seeds'"),
        ({"models": [{"kind": "openai-compatible", "model": "m"}]}, "models.0", "base_url"),
        ({"models": [{"kind": "reference"}, {"kind": "reference"}]}, "(top level)", "twice"),
        ({"detector": {"n_consecutive": 0}}, "detector.n_consecutive", "greater than"),
        ({"trials": 0}, "trials", "greater than"),
    ],
)
def test_bad_fields_are_named(change, field, words):
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, **change}, "exp.yaml")
    message = str(err.value)
    assert f"{field}:" in message and words in message and "exp.yaml" in message


def test_load_config_reports_yaml_errors(tmp_path: Path):
    path = tmp_path / "e.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_grid_order_ids_and_specs_are_deterministic():
    config = small_config(detector={"n_consecutive": 4, "ri_threshold": 0.4})
    grid = build_grid(config)
    assert len(grid) == 2 * 1 * 2 * 2
    assert [s.episode_id for _, s in grid] == [s.episode_id for _, s in build_grid(config)]
    assert len({s.episode_id for _, s in grid}) == len(grid)
    cell, spec = grid[-1]
    assert (cell.model, cell.mitigation, cell.seed) == ("drifting", "savepoint-recovery", 2)
    assert spec.seed == 2 and spec.mitigation == "savepoint-recovery" and spec.steps == 30
    assert spec.agent is not None and spec.agent.options == {"flip_step": 12}
    assert spec.detector.n_consecutive == 4 and spec.detector.ri_threshold == 0.4
    # the id depends on the experiment name and the cell, nothing else
    renamed = build_grid(small_config(name="other"))
    assert grid[0][1].episode_id != renamed[0][1].episode_id
    more_steps = build_grid(small_config(steps=50))
    assert grid[0][1].episode_id == more_steps[0][1].episode_id


def test_model_shortcuts_fold_into_options():
    config = parse_config(
        {
            **BASE,
            "models": [
                {
                    "kind": "openai-compatible",
                    "model": "m",
                    "base_url": "http://h/v1",
                    "temperature": 0.7,
                    "options": {"structured": "off"},
                }
            ],
        }
    )
    _, spec = build_grid(config)[0]
    assert spec.agent is not None
    assert spec.agent.options == {
        "structured": "off",
        "model": "m",
        "base_url": "http://h/v1",
        "temperature": 0.7,
    }
    assert build_grid(config)[0][0].model == "m"
