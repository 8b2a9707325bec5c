"""A resolved config as MLflow params: flat keys and values within MLflow's limits."""

from __future__ import annotations

from omegaconf import DictConfig

from journeyopt.tracking.params import (
    MAX_PARAM_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    TRUNCATED_MARK,
    flatten_config,
    param_key,
    param_value,
)


def test_flatten_resolves_and_dots_keys(job_config: DictConfig) -> None:
    flat = flatten_config(job_config)
    assert flat == {
        "seed": "3",
        "agent.name": "ppo",
        "agent.lr": "0.0003",
        "agent.net_arch": "[64, 64]",
        "agent.n_steps": "3",  # interpolation resolved (a string after resolution)
        "simulator.world": "coworking",
        "simulator.horizon_weeks": "52",
        "callbacks.0.every": "1000",
        "callbacks.1.every": "5000",
    }


def test_scalars_are_json_except_strings() -> None:
    assert flatten_config({"a": True, "b": None, "c": "text", "d": {}}) == {
        "a": "true",
        "b": "null",
        "c": "text",
        "d": "{}",
    }


def test_long_values_are_cut_and_marked() -> None:
    value = param_value("x" * (MAX_PARAM_VALUE_LENGTH + 1))
    assert len(value) == MAX_PARAM_VALUE_LENGTH
    assert value.endswith(TRUNCATED_MARK)
    assert param_value("y" * MAX_PARAM_VALUE_LENGTH) == "y" * MAX_PARAM_VALUE_LENGTH


def test_long_keys_stay_distinct_and_valid() -> None:
    a, b = param_key("k" * 300 + "a"), param_key("k" * 300 + "b")
    assert len(a) == len(b) == MAX_PARAM_KEY_LENGTH
    assert a != b
    assert param_key("weights[0]*") == "weights_0__"
