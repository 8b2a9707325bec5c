"""The behaviour policy of the logs: staff rules and logged propensities."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from journeyopt.sim.behaviour import StaffRules, explore, staff_actions
from journeyopt.sim.world import WorldSpec

NAN = np.nan


def _features(**columns: list[float]) -> dict[str, np.ndarray]:
    n = len(next(iter(columns.values())))
    base = {
        "n_conversions": np.zeros(n),
        "recency_weeks": np.full(n, NAN),
        "weeks_since_engagement": np.full(n, NAN),
        "contacts_4w_email": np.zeros(n),
        "contacts_4w_phone": np.zeros(n),
        "opted_out_email": np.zeros(n, bool),
        "opted_out_phone": np.zeros(n, bool),
    }
    base.update({k: np.asarray(v) for k, v in columns.items()})
    return base


def test_staff_rules(world: WorldSpec) -> None:
    names = world.actions.names
    # freelancer prospect engaged, corporate customer engaged, corporate called recently,
    # lapsed freelancer, lapsed freelancer opted out of e-mail, active startup
    features = _features(
        n_conversions=[0, 3, 3, 2, 2, 4],
        recency_weeks=[NAN, 2, 2, 40, 40, 3],
        weeks_since_engagement=[1, 1, 1, NAN, NAN, 5],
        contacts_4w_phone=[0, 0, 1, 0, 0, 0],
        opted_out_email=[False, False, False, False, True, False],
    )
    segment = np.array([0, 2, 2, 0, 0, 1])
    rules = StaffRules()
    campaign_week = [names[a] for a in staff_actions(world, rules, features, segment, 26)]
    assert campaign_week == [
        "personal_call",
        "personal_call",
        "none",  # called within the fatigue window: not called again; no newsletter this week
        "discount_offer",
        "none",
        "none",
    ]
    quiet_week = [names[a] for a in staff_actions(world, rules, features, segment, 27)]
    assert quiet_week == ["personal_call", "personal_call", "none", "none", "none", "none"]
    newsletter_week = [names[a] for a in staff_actions(world, rules, features, segment, 28)]
    assert newsletter_week[2:] == ["newsletter", "newsletter", "none", "newsletter"]


def test_exploration_frequencies_match_the_logged_propensities() -> None:
    n, eps = 200_000, 0.3
    allowed = np.ones((n, 5), bool)
    allowed[: n // 2, 1:4] = False  # half opted out of e-mail: none and call remain
    staff = np.where(np.arange(n) < n // 2, 4, 1)
    actions, propensity = explore(staff, allowed, eps, np.random.default_rng(0))
    assert allowed[np.arange(n), actions].all()
    for half in (slice(0, n // 2), slice(n // 2, n)):
        a, p = actions[half], propensity[half]
        for action in np.unique(a):
            freq = np.mean(a == action)
            assert freq == pytest.approx(p[a == action][0], abs=0.01)
    np.testing.assert_allclose(propensity[: n // 2][actions[: n // 2] == 4], 0.7 + 0.3 / 2)


def test_exploration_refuses_bad_input() -> None:
    allowed = np.array([[True, False]])
    with pytest.raises(ValueError, match="not allowed"):
        explore(np.array([1]), allowed, 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="epsilon"):
        explore(np.array([0]), allowed, 1.5, np.random.default_rng(0))


def test_staff_rules_follow_the_call_channel_of_the_catalogue(world: WorldSpec) -> None:
    """A source whose calls go through a channel not named ``phone`` gets the same staff
    decisions, read from that channel's fatigue count (it used to need ``contacts_4w_phone``)."""
    channels = tuple("tel" if c == "phone" else c for c in world.channels)
    renamed = dataclasses.replace(
        world,
        channels=channels,
        actions=dataclasses.replace(
            world.actions,
            channels=tuple("tel" if c == "phone" else c for c in world.actions.channels),
        ),
        features=dataclasses.replace(world.features, contact_channels=channels),
    )
    features = _features(
        weeks_since_engagement=[1, 1], contacts_4w_phone=[0, 1], opted_out_email=[False, False]
    )
    features["contacts_4w_tel"] = features.pop("contacts_4w_phone")
    features["opted_out_tel"] = features.pop("opted_out_phone")
    segment = np.array([2, 2])
    names = renamed.actions.names
    acts = [names[a] for a in staff_actions(renamed, StaffRules(), features, segment, 27)]
    assert acts == ["personal_call", "none"]  # the second was called within the window
