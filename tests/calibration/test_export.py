"""``export=<name>``: the calibrated world and its card copied to a worlds folder, loaded by
``load_world`` and stepped through the envs; existing folders refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hydra import compose, initialize_config_dir

from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.config import register_configs
from journeyopt.calibration.export import export_target, export_world
from journeyopt.calibration.pipeline import CalibrationResult
from journeyopt.cli.calibrate import run
from journeyopt.errors import ConfigError, OutputExistsError
from journeyopt.sim.env import CustomerJourneyEnv
from journeyopt.sim.vec_env import PopulationVecEnv
from journeyopt.sim.world import load_world

from .conftest import CONFIGS


def cdnow_overrides(out: Path, exports: Path, *extra: str) -> list[str]:
    return [
        "data=cdnow_sample",
        "panel=cdnow",
        "calibration=cdnow",
        "calibration.ensemble_size=1",
        "calibration.holdout_runs=1",
        "tracking=off",
        f"output_dir={out}",
        f"export_dir={exports}",
        *extra,
    ]


def test_cli_exports_a_world_that_loads_and_steps(tmp_path: Path) -> None:
    register_configs()
    exports = tmp_path / "simulators"
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("calibrate", overrides=cdnow_overrides(tmp_path / "a", exports, "export=cd"))
        result = run(cfg)
        assert result.exported == exports / "cd"
        # the hold-out figures are on the card beside BG/NBD's; with the recency cap inside the
        # 38 fitted weeks the world forecasts far too few purchase weeks (about -30 %, see
        # experiments/cdnow_calibration), which the card states rather than this test hiding it
        assert -1.0 < result.metrics["sim/holdout_conversions_rel_error"] < 0.0
        assert -0.2 < result.metrics["sim/holdout_conversions_rel_error_bgnbd"] < -0.05
        assert "BG/NBD" in (exports / "cd" / "card.md").read_text()
        files = {p.name for p in (exports / "cd").iterdir()}
        assert {"world.yaml", "responses.npz", "calibration.json", "card.md", "card.png"} <= files
        assert not list((exports / "cd").rglob("*.pkl"))
        # a second calibration into another output folder must not replace the export ...
        again = compose(
            "calibrate", overrides=cdnow_overrides(tmp_path / "b", exports, "export=cd")
        )
        with pytest.raises(OutputExistsError, match="overwrite=true"):
            run(again)
        assert not (tmp_path / "b").exists()  # refused before any work
    world = load_world(exports / "cd")
    assert world.discrete.tenure_cap_weeks == 104  # the CDNOW world tracks tenure
    assert len(CalibratedWorld.load(exports / "cd").members) == 1
    env = CustomerJourneyEnv(world, horizon_weeks=3, pool_size=40)
    check_env(env, skip_render_check=True)
    vec = PopulationVecEnv(world, n_customers=32, horizon_weeks=2, pool_size=100, seed=0)
    vec.reset()
    for _ in range(2):
        _, rewards, dones, _ = vec.step(np.zeros(32, np.int64))
    assert dones.all() and np.isfinite(rewards).all()


def test_export_replaces_an_earlier_export_only_with_overwrite(
    small_calibration: CalibrationResult, tmp_path: Path
) -> None:
    target = export_target("mini", tmp_path)
    export_world(small_calibration.output_dir, target, overwrite=False)
    (target / "members" / "99.npz").write_bytes(b"stale")
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        export_world(small_calibration.output_dir, target, overwrite=False)
    export_world(small_calibration.output_dir, target, overwrite=True)
    assert not (target / "members" / "99.npz").exists()
    loaded = CalibratedWorld.load(target)
    assert len(loaded.members) == len(small_calibration.estimate.calibrated.members)
    # today's practice estimated from the logs travels with the world, members included
    assert (target / "practice.npz").is_file() and loaded.world.logged_practice is not None
    assert all(m.logged_practice is not None for m in loaded.members)
    env = PopulationVecEnv(load_world(target), n_customers=16, horizon_weeks=2, seed=0)
    env.reset()
    _, rewards, _, _ = env.step(np.ones(16, np.int64))
    assert np.isfinite(rewards).all()


def test_export_never_replaces_a_ground_truth_world(
    small_calibration: CalibrationResult, small_world_path: Path
) -> None:
    with pytest.raises(OutputExistsError, match="not calibrated"):
        export_world(small_calibration.output_dir, small_world_path.parent, overwrite=True)


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_export_name_must_be_a_plain_folder_name(name: str) -> None:
    with pytest.raises(ConfigError, match="plain world name"):
        export_target(name, "/tmp")
