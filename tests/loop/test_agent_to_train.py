"""Which agent a weekly cycle re-trains: the champion's SB3 algorithm when it has one, the
configured agent otherwise (a today's-practice champion is not an algorithm to re-train)."""

from __future__ import annotations

from journeyopt.agents.practice_model import PRACTICE_NAME
from journeyopt.loop.cycle import agent_to_train
from journeyopt.tracking.sb3_policy import ALGORITHMS

CONFIGURED = {"algorithm": "MaskablePPO", "learning_rate": 0.0003}


def test_a_champion_of_another_algorithm_is_retrained_with_its_own() -> None:
    other = next(name for name in ALGORITHMS if name != CONFIGURED["algorithm"])
    assert agent_to_train(CONFIGURED, other) == {"algorithm": other}


def test_the_same_algorithm_keeps_the_configured_settings() -> None:
    assert agent_to_train(CONFIGURED, "MaskablePPO") == CONFIGURED


def test_today_s_practice_or_no_champion_trains_the_configured_agent() -> None:
    assert PRACTICE_NAME not in ALGORITHMS
    assert agent_to_train(CONFIGURED, PRACTICE_NAME) == CONFIGURED
    assert agent_to_train(CONFIGURED, "") == CONFIGURED
