"""What every ``journeyopt-*`` command shares (``journeyopt.cli.entry``)."""

from __future__ import annotations

import os

import pytest

from journeyopt.cli.entry import report_errors
from journeyopt.errors import ConfigError

BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def test_mlflow_download_bars_are_off_unless_the_user_wants_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(BARS, raising=False)
    assert report_errors(lambda: os.environ[BARS]) == "false"
    monkeypatch.setenv(BARS, "true")
    assert report_errors(lambda: os.environ[BARS]) == "true"


def test_a_journeyopt_error_is_one_line_and_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JOURNEYOPT_DEBUG", raising=False)

    def fail() -> None:
        raise ConfigError("serve.max_batch must be >= 1, got 0")

    with pytest.raises(SystemExit) as exited:
        report_errors(fail)
    assert exited.value.code == ConfigError("x").exit_code != 0
    assert capsys.readouterr().err == "error: serve.max_batch must be >= 1, got 0\n"
