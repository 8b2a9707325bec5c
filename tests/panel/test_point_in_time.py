"""Property: the features of week t never depend on anything at or after week t's start."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.panel.build import build_panel
from journeyopt.panel.config import feature_spec
from tests.panel.conftest import CHANNELS, make_logs
from tests.panel.windows import panel_config

ORIGIN = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday
N_WEEKS = 6
CFG = panel_config(as_of=str((ORIGIN + pd.Timedelta(weeks=N_WEEKS)).date()), lapse_weeks=2)
ROLES = ("conversion", "refund", "engagement", "cancellation", "opt_out", "opt_in")
SECONDS = N_WEEKS * 7 * 86400

events = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, SECONDS - 1),
    st.sampled_from(ROLES),
    st.sampled_from([0.0, 10.0, 99.5]),
    st.sampled_from(["", "email", "phone", "sms"]),
)
contacts = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, SECONDS - 1),
    st.sampled_from(["none", "newsletter", "personal_call"]),
    st.sampled_from(["", "email", "phone"]),
)


def _iso(seconds: int) -> str:
    return (ORIGIN + pd.Timedelta(seconds=seconds)).isoformat()


def _logs(
    ev: list[tuple[str, int, str, float, str]], co: list[tuple[str, int, str, str]]
) -> object:
    anchor = ("a", ORIGIN.isoformat(), "engagement", 0.0, "")  # fixes the panel origin
    return make_logs(
        [anchor, *((c, _iso(s), r, v, ch) for c, s, r, v, ch in ev)],
        [(c, _iso(s), a, ch, 1.0, 0.5) for c, s, a, ch in co],
    )


@settings(max_examples=40, deadline=None)
@given(
    ev=st.lists(events, max_size=12),
    co=st.lists(contacts, max_size=6),
    week=st.integers(0, N_WEEKS - 1),
    late_ev=st.lists(events, max_size=4),
    late_co=st.lists(contacts, max_size=3),
)
def test_features_ignore_activity_from_the_week_start_on(
    ev: list[tuple[str, int, str, float, str]],
    co: list[tuple[str, int, str, str]],
    week: int,
    late_ev: list[tuple[str, int, str, float, str]],
    late_co: list[tuple[str, int, str, str]],
) -> None:
    start = week * 7 * 86400
    shift = [(c, start + s % (SECONDS - start), r, v, ch) for c, s, r, v, ch in late_ev]
    shift_co = [(c, start + s % (SECONDS - start), a, ch) for c, s, a, ch in late_co]
    before = build_panel(_logs(ev, co), CFG, CHANNELS)  # type: ignore[arg-type]
    after = build_panel(_logs(ev + shift, co + shift_co), CFG, CHANNELS)  # type: ignore[arg-type]
    features = list(feature_spec(CFG, CHANNELS).feature_names)
    key = ["customer_id", "week"]
    old = before.loc[before["week"] <= week, key + features]
    new = after.loc[after["week"] <= week, key + features]
    merged = old.merge(new, on=key, how="left", suffixes=("", "_new"), validate="1:1")
    for name in features:
        pd.testing.assert_series_equal(
            merged[name], merged[f"{name}_new"], check_names=False, obj=name
        )


RULES_CFG = panel_config(
    as_of=CFG.as_of,
    lapse_weeks=2,
    rule_windows=[2, 5],
    rule_actions=["personal_call"],
    recent_contacts=True,
)


@settings(max_examples=30, deadline=None)
@given(
    ev=st.lists(events, max_size=6),
    co=st.lists(contacts, max_size=10),
    week=st.integers(0, N_WEEKS - 1),
    late_co=st.lists(contacts, max_size=3),
)
def test_the_contact_rules_window_counts_are_point_in_time_and_exact(
    ev: list[tuple[str, int, str, float, str]],
    co: list[tuple[str, int, str, str]],
    week: int,
    late_co: list[tuple[str, int, str, str]],
) -> None:
    """The windows the contact rules name (``panel.rule_windows``, ``panel.rule_actions``)
    count exactly the contacts of the weeks before (a brute-force count over the log), and
    contacts from the week's start on never change them."""
    start = week * 7 * 86400
    shift_co = [(c, start + s % (SECONDS - start), a, ch) for c, s, a, ch in late_co]
    panel = build_panel(_logs(ev, co), RULES_CFG, CHANNELS)  # type: ignore[arg-type]
    after = build_panel(_logs(ev, co + shift_co), RULES_CFG, CHANNELS)  # type: ignore[arg-type]
    spec = feature_spec(RULES_CFG, CHANNELS)
    names = list(spec.rule_feature_names)
    assert names == [
        "contacts_2w",
        "contacts_2w_email",
        "contacts_2w_phone",
        "action_contacts_2w_personal_call",
        "contacts_5w",
        "contacts_5w_email",
        "contacts_5w_phone",
        "action_contacts_5w_personal_call",
        "contact_pattern",
        "contact_pattern_email",
        "contact_pattern_phone",
        "last_contact_action",
    ]
    key = ["customer_id", "week"]
    old = panel.loc[panel["week"] <= week, key + names]
    new = after.loc[after["week"] <= week, key + names]
    merged = old.merge(new, on=key, how="left", suffixes=("", "_new"), validate="1:1")
    for name in names:
        assert (merged[name] == merged[f"{name}_new"]).all(), name
    for row in panel.itertuples(index=False):
        t = int(row.week)
        for w in (2, 5):
            seen = [
                (a, ch)
                for c, s, a, ch in co
                if c == row.customer_id and t - w <= s // (7 * 86400) < t and a != "none"
            ]
            assert getattr(row, f"contacts_{w}w") == sum(ch in CHANNELS for _, ch in seen)
            for ch in CHANNELS:
                assert getattr(row, f"contacts_{w}w_{ch}") == sum(x == ch for _, x in seen)
            calls = sum(a == "personal_call" for a, _ in seen)
            assert getattr(row, f"action_contacts_{w}w_personal_call") == calls
        weeks_ago = {
            t - s // (7 * 86400)
            for c, s, a, ch in co
            if c == row.customer_id and s // (7 * 86400) < t and a != "none" and ch in CHANNELS
        }
        pattern = sum(1 << (k - 1) for k in range(1, 6) if k in weeks_ago)
        assert row.contact_pattern == pattern
        for ch in CHANNELS:  # the same per channel
            through = {
                t - s // (7 * 86400)
                for c, s, a, x in co
                if c == row.customer_id and s // (7 * 86400) < t and a != "none" and x == ch
            }
            assert getattr(row, f"contact_pattern_{ch}") == sum(
                1 << (k - 1) for k in range(1, 6) if k in through
            )
        called = [s for c, s, a, _ in co if c == row.customer_id and a == "personal_call"]
        assert row.last_contact_action == int(any(s // (7 * 86400) < t for s in called))
