"""The behaviour policy of the logs: today's practice (declarative rules) and logged
propensities."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from journeyopt.errors import ConfigError
from journeyopt.sim.behaviour import explore
from journeyopt.sim.config import PracticeRuleConfig, StaffRulesConfig, shipped_practice
from journeyopt.sim.practice import Practice, PracticeRule
from journeyopt.sim.world import WorldSpec, world_from_dict
from tests.sim.worlds import raw_coworking, renamed

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
    practice = shipped_practice("coworking").practice_for(world, "staff")

    def staff_actions(week: int) -> list[str]:
        return [names[a] for a in practice.actions(world, features, segment, week)]

    campaign_week = staff_actions(26)
    assert campaign_week == [
        "personal_call",
        "personal_call",
        "none",  # called within the fatigue window: not called again; no newsletter this week
        "discount_offer",
        "none",
        "none",
    ]
    quiet_week = staff_actions(27)
    assert quiet_week == ["personal_call", "personal_call", "none", "none", "none", "none"]
    newsletter_week = staff_actions(28)
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


def test_a_practice_reads_the_fatigue_count_of_the_channel_it_names(world: WorldSpec) -> None:
    """A source whose calls go through a channel not named ``phone`` describes its practice
    with that channel's fatigue count (``contacts_4w_tel``); nothing assumes ``phone``."""
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
    rule = PracticeRule(
        "personal_call", when={"weeks_since_engagement": (None, 1), "contacts_4w_tel": (None, 0)}
    )
    practice = Practice((rule,)).check(renamed, "staff")
    acts = [names[a] for a in practice.actions(renamed, features, segment, 27)]
    assert acts == ["personal_call", "none"]  # the second was called within the window


def _renamed_world(world: WorldSpec) -> WorldSpec:
    """The coworking world under another business's names: actions and customer types."""
    names = {
        "newsletter": "mailing",
        "discount_offer": "voucher",
        "personal_call": "ring",
        "freelancer": "retail",
        "startup_team": "smb",
        "corporate_team": "key_account",
    }

    return world_from_dict(renamed(raw_coworking(), names))


def test_a_practice_is_any_business_s_own_rule_list(world: WorldSpec) -> None:
    """Another business's practice, in its own names: call lapsed key accounts, a voucher two
    weeks after each monthly mailing, the mailing every 4 weeks. First match wins."""
    renamed = _renamed_world(world)
    staff = StaffRulesConfig(
        rules=[
            PracticeRuleConfig(action="ring", segments=["key_account"], lifecycle=["lapsed"]),
            PracticeRuleConfig(action="voucher", every_weeks=4, offset_weeks=2),
            PracticeRuleConfig(action="mailing", every_weeks=4),
        ]
    )
    practice = staff.practice_for(renamed, "evaluation.staff")
    features = _features(
        n_conversions=[3, 3, 0, 3],
        recency_weeks=[40, 40, NAN, 2],
        weeks_since_engagement=[NAN, NAN, NAN, NAN],
    )
    features["lifecycle"] = np.array([2, 2, 0, 1], np.int8)  # lapsed, lapsed, prospect, active
    segment = np.array([2, 0, 2, 1])  # key account, retail, key account, smb
    names = renamed.actions.names

    def week(t: int) -> list[str]:
        return [names[a] for a in practice.actions(renamed, features, segment, t)]

    assert week(0) == ["ring", "mailing", "mailing", "mailing"]
    assert week(1) == ["ring", "none", "none", "none"]
    assert week(2) == ["ring", "voucher", "voucher", "voucher"]
    features["opted_out_phone"] = np.array([True, False, False, False])
    assert week(2)[0] == "voucher"  # the call's channel is opted out: the next rule that fits


def test_an_empty_practice_contacts_nobody(world: WorldSpec) -> None:
    features = _features(n_conversions=[0, 3], recency_weeks=[NAN, 2])
    actions = Practice().actions(world, features, np.array([0, 1]), 0)
    assert actions.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            PracticeRuleConfig(action="personal_call"),
            r"rules\[0\]\.action='personal_call' is not an action",
        ),
        (
            PracticeRuleConfig(action="ring", segments=["Firma"]),
            r"rules\[0\]\.segments names customer type\(s\) \['Firma'\]",
        ),
        (
            PracticeRuleConfig(action="ring", when={"contacts_8w_phone": [None, 0]}),
            r"rules\[0\]\.when names feature\(s\) \['contacts_8w_phone'\]",
        ),
        (PracticeRuleConfig(action="ring", lifecycle=["dormant"]), r"unknown lifecycle stage"),
        (
            PracticeRuleConfig(action="ring", every_weeks=4, offset_weeks=4),
            r"offset_weeks must be in 0\.\.3",
        ),
        (
            PracticeRuleConfig(action="ring", when={"recency_weeks": [10, 2]}),
            r"min 10\.0 is above max 2\.0",
        ),
        (PracticeRuleConfig(action="ring", when={"recency_weeks": [10]}), r"must be \[min, max\]"),
    ],
)
def test_a_practice_the_world_cannot_follow_is_refused_naming_the_rule(
    world: WorldSpec, rule: PracticeRuleConfig, message: str
) -> None:
    """A rule naming what the world does not have would silently never fire, and the baseline
    would be weaker than the practice it stands for: one clear line instead."""
    with pytest.raises(ConfigError, match=message):
        StaffRulesConfig(rules=[rule]).practice_for(_renamed_world(world), "evaluation.staff")
