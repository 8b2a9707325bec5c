"""Overlap diagnostics judge the support of every action a target policy uses materially."""

from __future__ import annotations

import numpy as np
import pytest

from journeyopt.evaluation.ope.diagnostics import OverlapThresholds, action_support, diagnose
from journeyopt.evaluation.ope.sequential import Trajectories


def _logs(n_customers: int, explored_calls: int, target_call_share: float) -> Trajectories:
    """One logged week over actions (none, mail, call): the logging policy mails everyone
    except ``explored_calls`` random calls; the target calls ``target_call_share`` of the
    customers (those first) and mails the rest."""
    rng = np.random.default_rng(0)
    action = np.ones((n_customers, 1), np.int64)
    called = rng.choice(n_customers, explored_calls, replace=False)
    action[called, 0] = 2
    share = explored_calls / n_customers
    propensity = np.where(action == 2, share, 1 - share)
    target = np.zeros((n_customers, 1, 3))
    calls = np.arange(n_customers) < int(target_call_share * n_customers)
    target[calls, 0, 2] = 1.0
    target[~calls, 0, 1] = 1.0
    reward = rng.normal(10.0, 1.0, (n_customers, 1))
    return Trajectories(action, reward, propensity.astype(np.float64), target, 0.99)


def test_a_policy_leaning_on_a_barely_explored_action_fails_naming_it() -> None:
    data = _logs(5000, explored_calls=60, target_call_share=0.10)  # ~6 supporting calls
    found = diagnose(data, np.zeros(5000, np.int64), ("all",), None, ("none", "mail", "call"))
    row = found.actions.iloc[2]
    assert row.judged and 0 < row.supporting < 30
    assert not found.passed
    assert any("action 'call'" in r and "logged decisions took it" in r for r in found.reasons)
    assert found.overall["ess_share"] > 0.01  # the overall ESS alone would have passed it


def test_enough_supporting_decisions_pass() -> None:
    data = _logs(5000, explored_calls=600, target_call_share=0.10)  # ~60 supporting calls
    found = diagnose(data, np.zeros(5000, np.int64), ("all",), None, ("none", "mail", "call"))
    assert found.actions.iloc[2].supporting >= 30
    assert not any("action" in r for r in found.reasons)


def test_an_action_below_the_material_share_is_reported_not_judged() -> None:
    data = _logs(5000, explored_calls=60, target_call_share=0.02)
    table = action_support(data, min_action_share=0.05)
    assert not bool(table.iloc[2].judged)
    assert int(table.logged.sum()) == 5000
    found = diagnose(data, np.zeros(5000, np.int64), ("all",))
    assert not any("action" in r for r in found.reasons)


def test_support_threshold_zero_disables_the_check() -> None:
    data = _logs(5000, explored_calls=60, target_call_share=0.10)
    found = diagnose(
        data, np.zeros(5000, np.int64), ("all",), OverlapThresholds(min_action_support=0)
    )
    assert not any("action" in r for r in found.reasons)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"min_action_support": -1}, "min_action_support"), ({"min_action_share": 0}, "share")],
)
def test_invalid_thresholds(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OverlapThresholds(**kwargs)  # type: ignore[arg-type]
