"""One merge of what feature specs count (rules, a world's summary, a practice's state): the
spec's own windows first, every switch either has on, the panel config alike."""

from __future__ import annotations

from dataclasses import replace

from journeyopt.panel.config import counting
from journeyopt.panel.state import FEATURE_SWITCHES
from tests.panel.windows import feature_windows, panel_config


def test_counting_extends_without_reordering_and_keeps_every_switch() -> None:
    own = feature_windows(contact_channels=("email", "phone"), rule_windows=(4,))
    other = replace(
        own, rule_windows=(2, 4), rule_actions=("call",), recent_contacts=True, lifetime_counts=True
    )
    merged = own.counting(other)
    assert merged.rule_windows == (4, 2) and merged.rule_actions == ("call",)
    assert merged.recent_contacts and merged.lifetime_counts
    assert not merged.conversion_gap and not merged.action_recency
    assert merged.without_counts() == own.without_counts()
    assert own.counting() == own and merged.counting(own) == merged
    cfg = counting(panel_config(rule_windows=[5]), other)
    assert cfg.rule_windows == [5, 2, 4] and cfg.rule_actions == ["call"]
    assert [getattr(cfg, n) for n in FEATURE_SWITCHES] == [True, False, False, True]
