"""Fixtures shared by every test package (loaded as pytest plugins)."""

pytest_plugins = ["tests.fixtures_mlflow"]
