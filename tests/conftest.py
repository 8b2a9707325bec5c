"""Fixtures shared by every test package (loaded as pytest plugins)."""

pytest_plugins = ["fixtures_mlflow"]
