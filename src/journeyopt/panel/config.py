"""Configuration of the weekly panel: the as-of date and the feature windows.

:class:`PanelConfig` is the schema of the ``panel`` config group (``configs/panel/*.yaml``);
:func:`feature_spec` turns it, with the source's contact channels, into the
:class:`~journeyopt.panel.state.FeatureSpec` shared with the simulator and the scoring API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pandas as pd

from journeyopt.errors import ConfigError
from journeyopt.panel.state import FEATURE_SWITCHES, FeatureSpec


@dataclass(kw_only=True)
class PanelConfig:
    """What the panel covers and how its features are windowed.

    Attributes:
        as_of: ISO 8601 date or instant (UTC if naive) the panel is built at; only complete
            weeks, those ending at or before ``as_of``, get rows. Empty means the timestamp of
            the last event or contact in the logs.
        lapse_weeks: A customer whose last conversion is more than this many weeks ago is
            ``lapsed``, otherwise ``active``. None (``null``, the default): read off the logs
            up to the panel's as-of instant by the rule of
            :func:`journeyopt.panel.suggest.resolve_lapse_weeks` (the 90th percentile of the
            gaps between a customer's conversions) by every command that builds a panel,
            printed and recorded with its settings; a value given here always wins.
        frequency_weeks: Window of the ``frequency`` feature, weeks.
        fatigue_weeks: Window of the contact-fatigue counts ``contacts_<w>w*``, weeks.
        engagement_weeks: Window of the ``engagements_<w>w`` count, weeks.
        rule_windows: More windows (weeks) to count contacts in, for contact rules: columns
            ``contacts_<w>w``, ``contacts_<w>w_<channel>``, ``action_contacts_<w>w_<action>``.
        rule_actions: Actions whose contacts are counted in each of ``rule_windows``.
        recent_contacts: Also give the columns ``contact_pattern`` (contacts in each of the
            last weeks of the longest rule window, as bits) and ``last_contact_action`` (the last
            counted contact's action) that a calibrated state summary with a contact pattern or
            the last action reads; set by the calibration when it needs them.
        conversion_gap: Also give the column ``conversion_gap_weeks`` (weeks between the
            customer's last two weeks with a conversion, 0 before the second) that a calibrated
            state summary with the previous gap between conversions reads; set by the
            calibration when it needs it.
        action_recency: Also give the columns ``weeks_since_action_<action>`` (weeks since
            each of ``rule_actions``' last contact) that a calibrated state summary with the
            last *lasting* action reads; set by the calibration when it needs them.
        lifetime_counts: Also give the columns ``n_engagements`` and ``n_contacts`` (lifetime
            engagement events and contacts) that behaviour types read
            (``calibration.behaviour_types``); set by the calibration when it needs them.
    """

    REQUIRED_HINTS: ClassVar[Mapping[str, str]] = {
        "lapse_weeks": "weeks without a conversion after which a customer counts as lapsed, "
        "longer than almost every gap between two conversions of your repeat customers (e.g. "
        "their 90th percentile, which journeyopt-ingest prints as its suggestion; null derives "
        "it from the logs by that rule)",
        "frequency_weeks": "window of the purchase-frequency feature, weeks, long enough to "
        "hold several conversions of a regular customer (e.g. 52)",
        "fatigue_weeks": "window of the contact counts, weeks: the period your contact caps "
        "are stated in (e.g. 4 for 'at most 2 emails in 4 weeks')",
        "engagement_weeks": "window of the engagement count, weeks: how long an open or a "
        "click still says a customer is interested",
    }
    """What to give for each required field (the message of a config without it)."""

    as_of: str = ""
    lapse_weeks: int | None = None
    frequency_weeks: int
    fatigue_weeks: int
    engagement_weeks: int
    rule_windows: list[int] = field(default_factory=list)
    rule_actions: list[str] = field(default_factory=list)
    recent_contacts: bool = False
    conversion_gap: bool = False
    action_recency: bool = False
    lifetime_counts: bool = False

    def __post_init__(self) -> None:
        for name in ("lapse_weeks", "frequency_weeks", "fatigue_weeks", "engagement_weeks"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"panel.{name} must be >= 1, got {getattr(self, name)}")
        if any(w < 1 for w in self.rule_windows):
            raise ConfigError(f"panel.rule_windows must be >= 1 weeks, got {self.rule_windows}")
        if "none" in self.rule_actions:
            raise ConfigError("panel.rule_actions: 'none' is not a contact to count")
        if self.as_of:
            parse_as_of(self.as_of)


def parse_as_of(value: str | pd.Timestamp) -> pd.Timestamp:
    """An as-of date or instant as a UTC timestamp (naive values are UTC)."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"panel.as_of: not an ISO 8601 date or instant: {value!r}") from err
    if ts is pd.NaT:
        raise ConfigError(f"panel.as_of: not an ISO 8601 date or instant: {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def counting(cfg: PanelConfig, *specs: FeatureSpec) -> PanelConfig:
    """``cfg`` also counting what the features ``specs`` count (their rule windows and
    actions, their feature switches): the panel a world's discrete summary, or contact rules
    made for it, can be read from, whatever ``cfg`` names."""
    windows = [*cfg.rule_windows, *(w for s in specs for w in s.rule_windows)]
    actions = [*cfg.rule_actions, *(a for s in specs for a in s.rule_actions)]
    on: dict[str, Any] = {
        n: getattr(cfg, n) or any(getattr(s, n) for s in specs) for n in FEATURE_SWITCHES
    }
    return replace(
        cfg,
        rule_windows=list(dict.fromkeys(windows)),
        rule_actions=list(dict.fromkeys(actions)),
        **on,
    )


def feature_spec(cfg: PanelConfig, contact_channels: Sequence[str]) -> FeatureSpec:
    """The feature windows of ``cfg`` for a source contacting through ``contact_channels``.

    Raises:
        ConfigError: ``cfg.lapse_weeks`` is still None (derive it from the logs first:
            :func:`journeyopt.panel.suggest.resolve_lapse_weeks`).
    """
    if cfg.lapse_weeks is None:
        raise ConfigError(
            "panel.lapse_weeks is null: it is derived from the logs where a panel is built "
            "(journeyopt.panel.suggest.resolve_lapse_weeks); give the logs or a value"
        )
    return FeatureSpec(
        contact_channels=tuple(contact_channels),
        frequency_weeks=cfg.frequency_weeks,
        fatigue_weeks=cfg.fatigue_weeks,
        engagement_weeks=cfg.engagement_weeks,
        lapse_weeks=cfg.lapse_weeks,
        rule_windows=tuple(dict.fromkeys(cfg.rule_windows)),
        rule_actions=tuple(dict.fromkeys(cfg.rule_actions)),
        recent_contacts=cfg.recent_contacts,
        conversion_gap=cfg.conversion_gap,
        action_recency=cfg.action_recency,
        lifetime_counts=cfg.lifetime_counts,
    )
