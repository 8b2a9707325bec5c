"""Domain randomisation: training on a calibrated world's ensemble draws a member per episode;
worlds without an ensemble are refused with a clear message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from journeyopt.agents.train import train
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.ensemble import EnsembleVecEnv
from journeyopt.errors import ConfigError
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.world import FittedResponses, WorldSpec
from tests.agents.test_train import tiny_config


def _responses(world: WorldSpec, conversion_logit: float) -> FittedResponses:
    """Flat response tables: every contact adds 0.3 to the conversion logit and costs a small
    opt-out risk; members differ by their base conversion logit."""
    n, a = DiscreteLayout.of(world).n_states, world.actions.n_actions
    convert = np.full((n, a), conversion_logit)
    convert[:, 1:] += 0.3
    optout = np.full((n, a), 0.005)
    optout[:, 0] = 0.0
    return FittedResponses(
        convert_logit=convert,
        convert_season=np.zeros(54),
        value=np.full(n, 150.0),
        engage_logit=np.full((n, a), -2.0),
        engage_season=np.zeros(54),
        optout=optout,
        actions_identified=True,
    )


def _calibrated(world: WorldSpec, folder: Path, logits: tuple[float, ...]) -> Path:
    """A calibrated world folder with one member per conversion logit (point estimate: -2.5)."""
    members = tuple(replace(world, responses=_responses(world, x)) for x in logits)
    estimate = replace(world, name="tiny_ensemble", responses=_responses(world, -2.5))
    return CalibratedWorld(estimate, members, {"test": True}).save(folder).parent


def test_training_draws_an_ensemble_member_per_episode(tmp_path: Path, world: WorldSpec) -> None:
    folder = _calibrated(world, tmp_path / "world", (-3.5, -2.5, -1.5))
    cfg = tiny_config(
        tmp_path / "out",
        "ppo",
        f"simulator.world={folder}",
        "train.domain_randomisation=true",
        "simulator.horizon_weeks=2",  # 1024 steps of 16 customers: 32 episodes
        "agent.n_steps=16",
    )
    result = train(cfg)
    population = getattr(result.model.get_env(), "population", None)
    assert isinstance(population, EnsembleVecEnv)
    counts = population.episodes_per_member
    assert counts.shape == (3,) and (counts > 0).all()
    # every reset draws one: the first, one per finished episode, and the model logging's
    assert counts.sum() >= result.timesteps // (16 * 2) + 1
    assert np.isfinite(result.metrics["eval/value_mean"])


def test_plain_world_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "ppo", "train.domain_randomisation=true")
    with pytest.raises(ConfigError, match="domain_randomisation needs a calibrated world"):
        train(cfg)


def test_calibrated_world_without_members_is_refused(tmp_path: Path, world: WorldSpec) -> None:
    folder = _calibrated(world, tmp_path / "world", ())
    cfg = tiny_config(
        tmp_path / "out", "ppo", f"simulator.world={folder}", "train.domain_randomisation=true"
    )
    with pytest.raises(ConfigError, match="no ensemble members"):
        train(cfg)
