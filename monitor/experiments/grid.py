"""The grid: one cell per (model, environment, mitigation, seed), one episode per cell.

Why deterministic ids: resume decides what is done by episode id, so the same experiment
name, cell and seed must always give the same id, across processes and machines.
"""

import hashlib
import json
from dataclasses import dataclass

from monitor.experiments.config import ExperimentConfig, ModelEntry
from monitor.specs import episode_spec
from schemas.episode import AgentSpec, EpisodeSpec, VerdictPolicy


@dataclass(frozen=True, slots=True)
class Cell:
    """Where an episode sits in the grid (the ``cell`` object of every result line)."""

    model: str
    environment: str
    mitigation: str
    seed: int

    def as_dict(self) -> dict[str, str | int]:
        return {
            "model": self.model,
            "environment": self.environment,
            "mitigation": self.mitigation,
            "seed": self.seed,
        }


def episode_id(experiment: str, cell: Cell) -> str:
    """``<experiment>-<16 hex>``: a digest of the name and the cell (seed included)."""
    key = json.dumps([experiment, cell.model, cell.environment, cell.mitigation, cell.seed])
    return f"{experiment}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def cells(config: ExperimentConfig) -> list[tuple[Cell, ModelEntry, dict[str, object]]]:
    """Every cell in a stable order, with its model entry and environment options."""
    out = []
    for model in config.models:
        for env in config.environments:
            for mitigation in config.mitigations:
                for seed in config.seed_list:
                    cell = Cell(model.label, env.name, mitigation, seed)
                    out.append((cell, model, dict(env.options)))
    return out


def build_grid(
    config: ExperimentConfig, default_policy: VerdictPolicy | None = None
) -> list[tuple[Cell, EpisodeSpec]]:
    """The episode spec of every cell, in grid order; the config's policy, else
    ``default_policy`` (the settings' worker policy)."""
    grid = []
    for cell, model, env_options in cells(config):
        agent = AgentSpec(kind=model.kind, options=model.agent_options())
        spec = episode_spec(
            episode_id(config.name, cell),
            cell.environment,
            agent,
            seed=cell.seed,
            steps=config.steps,
            mitigation=cell.mitigation,
            env_options=env_options,
            labels={"model": cell.model, "experiment": config.name},
            detector=config.detector,
            policy=config.policy or default_policy,
        )
        grid.append((cell, spec))
    return grid
