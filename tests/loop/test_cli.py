"""``journeyopt-cycle`` reports bad input on one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import journeyopt.cli.cycle as cycle_cli


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["week=2024-03-11", "data.path={missing}"], "error: {missing}: no such file or folder"),
        (["week=someday", "data.path={missing}"], "error: week: not an ISO 8601 date: 'someday'"),
        (
            ["week=2024-03-11", "data.path={missing}", "drift.retrain_on=[weather]"],
            "error: drift.retrain_on: unknown checks ['weather']",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], message: str
) -> None:
    missing = tmp_path / "nowhere"
    GlobalHydra.instance().clear()
    with initialize_config_module("journeyopt.configs", version_base="1.3"):
        cfg = compose(
            "cycle",
            overrides=[
                *(o.format(missing=missing) for o in overrides),
                f"work_dir={tmp_path / 'cycles'}",
                "tracking=off",
                "data=coworking",  # the demo's source and business settings, as a user gives theirs
                "panel=coworking",
                "calibration=coworking",
            ],
        )
    with pytest.raises(SystemExit) as exit_info:
        cycle_cli.main.__wrapped__(cfg)  # type: ignore[attr-defined]
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith(message.format(missing=missing))
    assert not (tmp_path / "cycles").exists()
