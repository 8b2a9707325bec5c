"""The ``tracking`` config group: schema validation, URI resolution, composition."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from journeyopt.cli.entry import to_object
from journeyopt.errors import ConfigError
from journeyopt.tracking.config import TrackingConfig, register_configs


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("experiment", " ", "experiment must not be empty"),
        ("registered_model", "", "registered_model must not be empty"),
        ("flush_every_seconds", -1.0, "flush_every_seconds must be >= 0"),
        ("max_buffered_metrics", 0, r"max_buffered_metrics must be in 1\.\.1000"),
        ("max_buffered_metrics", 1001, r"max_buffered_metrics must be in 1\.\.1000"),
    ],
)
def test_invalid_settings_are_config_errors(field: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrackingConfig(**{field: value})  # type: ignore[arg-type]


def test_uri_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert TrackingConfig().resolved_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert TrackingConfig().resolved_tracking_uri() == "http://127.0.0.1:5999"
    assert TrackingConfig().resolved_registry_uri() == "http://127.0.0.1:5999"
    explicit = TrackingConfig(tracking_uri="sqlite:///x.db", registry_uri="sqlite:///r.db")
    assert explicit.resolved_tracking_uri() == "sqlite:///x.db"
    assert explicit.resolved_registry_uri() == "sqlite:///r.db"


@pytest.mark.parametrize(("choice", "enabled"), [("mlflow", True), ("off", False)])
def test_group_options_compose(choice: str, enabled: bool) -> None:
    register_configs()
    with initialize_config_module(config_module="journeyopt.configs", version_base="1.3"):
        cfg = compose(config_name=f"tracking/{choice}")
    settings = to_object(cfg.tracking, TrackingConfig)
    assert settings.enabled is enabled
    assert settings.registered_model == "journey-policy"
