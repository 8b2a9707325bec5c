"""``journeyopt-rollout`` asks only for what the command reads: a ``rollback`` (no decision log
to measure) needs neither a source (``data=``) nor panel windows (``panel=``); ``status`` and
``advance`` measure the canary on the logs and stop on one line, exit 2, naming the missing
choice. Real Hydra, the command's real ``main`` and a real (empty) MLflow registry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

import journeyopt.cli.rollout as rollout_cli


def _rollout(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *given: str,
) -> tuple[int, list[str]]:
    """``journeyopt-rollout <given>`` on an empty sqlite store: exit code and stderr lines."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOURNEYOPT_DEBUG", raising=False)
    store = [
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    monkeypatch.setattr(sys, "argv", ["journeyopt-rollout", *given, *store])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exited:
        rollout_cli.main()
    return int(exited.value.code or 0), capsys.readouterr().err.strip().splitlines()


def test_a_rollback_needs_no_source_and_no_panel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past the configuration without ``data=``/``panel=``: the registry is what it reads (an
    empty one has no champion, a one-line exit 2 about that, not about a panel)."""
    code, err = _rollout(tmp_path, monkeypatch, capsys, "rollback", "reason=complaints")
    assert code == 2, err  # MLflow logs creating the store above the one line
    assert err[-1] == "error: no champion in the registry (journey-policy): nothing to roll"
    assert not any("Traceback" in line or "panel" in line for line in err), err


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ([], "error: no data chosen: measuring the canary (decisions=...) reads your logs: "),
        (["data=coworking"], "error: no panel chosen: measuring the canary (decisions=...) "),
    ],
)
@pytest.mark.parametrize("command", ["status", "advance", "rollback"])
def test_measuring_the_canary_names_the_missing_choice(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    given: list[str],
    said: str,
) -> None:
    """With a decision log to measure (a rollback given one measures too), the source and the
    panel windows are needed, and asked for before the registry is read."""
    code, err = _rollout(
        tmp_path, monkeypatch, capsys, command, "decisions=d", "reason=why", *given
    )
    assert code == 2 and len(err) == 1 and err[0].startswith(said), err
    assert f"{'data' if not given else 'panel'}=<name>" in err[0]
    assert not (tmp_path / "mlflow.db").exists()
