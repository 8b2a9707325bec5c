"""Contract tests of the contact rules (masks, reasons, guard)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.panel.state import (
    CustomerState,
    FeatureSpec,
    WeekActivity,
    advance,
    state_features,
)
from journeyopt.sim.rules import (
    COOLDOWN,
    FREQUENCY_CAP,
    INELIGIBLE,
    MIN_GAP,
    NOT_ELIGIBLE,
    OPTED_OUT,
    QUIET_WEEK,
    ActionCatalog,
    Cap,
    ContactRules,
    Eligibility,
    QuietWeeks,
    rule_feature_spec,
)
from tests.panel.windows import feature_windows

SPEC = feature_windows(contact_channels=("email", "phone"))
CATALOG = ActionCatalog(
    names=("none", "newsletter", "discount_offer", "personal_call"),
    channels=("", "email", "email", "phone"),
    costs=(0.0, 0.05, 1.0, 6.0),
)
RULES = ContactRules(CATALOG, SPEC, frequency_caps={"email": 2, "phone": 1}, cooldown_weeks=1)


def features(**overrides: list[float]) -> dict[str, np.ndarray]:
    n = len(next(iter(overrides.values()))) if overrides else 1
    base: dict[str, np.ndarray] = {
        "recency_weeks": np.full(n, np.nan),
        "contacts_4w_email": np.zeros(n),
        "contacts_4w_phone": np.zeros(n),
        "opted_out_email": np.zeros(n, bool),
        "opted_out_phone": np.zeros(n, bool),
    }
    base.update({k: np.asarray(v) for k, v in overrides.items()})
    return base


def test_fresh_customer_may_get_every_action() -> None:
    assert RULES.masks(features()).all()


def test_opt_out_of_one_channel_masks_only_that_channel() -> None:
    codes = RULES.reasons(features(opted_out_email=[True]))
    assert codes[0].tolist() == [0, OPTED_OUT, OPTED_OUT, 0]


def test_opted_out_everywhere_leaves_only_none() -> None:
    masks = RULES.masks(features(opted_out_email=[True], opted_out_phone=[True]))
    assert masks[0].tolist() == [True, False, False, False]


def test_frequency_cap_counts_the_channel_window() -> None:
    codes = RULES.reasons(features(contacts_4w_email=[1, 2], contacts_4w_phone=[1, 0]))
    assert codes[0].tolist() == [0, 0, 0, FREQUENCY_CAP]
    assert codes[1].tolist() == [0, FREQUENCY_CAP, FREQUENCY_CAP, 0]


def test_cooldown_after_conversion() -> None:
    codes = RULES.reasons(features(recency_weeks=[1.0, 2.0]))
    assert codes[0].tolist() == [0, COOLDOWN, COOLDOWN, COOLDOWN]
    assert codes[1].tolist() == [0, 0, 0, 0]


def test_unreachable_channel_is_ineligible() -> None:
    codes = RULES.reasons(features(), reachable=np.array([[True, False]]))
    assert codes[0].tolist() == [0, 0, 0, INELIGIBLE]


def test_opt_out_is_reported_before_other_reasons() -> None:
    f = features(opted_out_email=[True], contacts_4w_email=[5], recency_weeks=[1.0])
    assert RULES.reasons(f)[0, 1] == OPTED_OUT


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frequency_caps": {"sms": 1}}, "unknown channel"),
        ({"frequency_caps": {"email": -1}}, ">= 0"),
        ({"cooldown_weeks": -1}, "cooldown_weeks"),
    ],
)
def test_invalid_rules_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ContactRules(CATALOG, SPEC, **kwargs)  # type: ignore[arg-type]


def test_catalog_requires_none_first() -> None:
    with pytest.raises(ValueError, match="none"):
        ActionCatalog(names=("newsletter",), channels=("email",), costs=(0.1,))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.booleans(),
            st.integers(0, 4),
            st.integers(0, 3),
            st.one_of(st.just(float("nan")), st.floats(1, 60)),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_guard_never_lets_a_forbidden_contact_through(rows: list[tuple]) -> None:
    out_e, out_p, n_email, n_phone, recency, action = map(np.array, zip(*rows, strict=True))
    f = features(
        opted_out_email=out_e,
        opted_out_phone=out_p,
        contacts_4w_email=n_email,
        contacts_4w_phone=n_phone,
        recency_weeks=recency,
    )
    guarded, overridden = RULES.guard(action, f)
    masks = RULES.masks(f)
    assert masks[np.arange(len(rows)), guarded].all()
    assert (guarded[overridden] == 0).all()
    assert (guarded[~overridden] == action[~overridden]).all()
    email_actions = np.isin(guarded, [1, 2])
    assert not (email_actions & out_e).any()
    assert not ((guarded == 3) & (out_p | (n_phone >= 1))).any()


def test_a_cap_over_all_channels_together() -> None:
    """'At most 2 contacts per person in any 4 weeks, all channels together'."""
    rules = ContactRules(CATALOG, SPEC, total_cap=2)
    f = features(contacts_4w_email=[1, 1, 0], contacts_4w_phone=[0, 1, 0])
    f["contacts_4w"] = np.array([1, 2, 0])
    codes = rules.reasons(f)
    assert (codes[0] == 0).all() and (codes[2] == 0).all()
    assert (codes[1, 1:] == FREQUENCY_CAP).all() and codes[1, 0] == 0


def test_a_minimum_gap_between_contacts_of_any_channel() -> None:
    rules = ContactRules(CATALOG, SPEC, min_gap_weeks=3)
    f = features(contacts_4w_email=[0, 0, 0, 0])
    f["weeks_since_contact"] = np.array([1.0, 2.0, 3.0, np.nan])  # nan: never contacted
    codes = rules.reasons(f)
    assert (codes[:2, 1:] == MIN_GAP).all()
    assert (codes[2:, 1:] == 0).all()
    assert (codes[:, 0] == 0).all()


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 3),
    gap=st.integers(0, 4),
    email=st.integers(0, 4),
    phone=st.integers(0, 4),
    since=st.one_of(st.none(), st.integers(1, 6)),
    recency=st.one_of(st.none(), st.integers(1, 6)),
)
def test_the_guard_never_lets_a_broken_rule_through(
    total: int, gap: int, email: int, phone: int, since: int | None, recency: int | None
) -> None:
    rules = ContactRules(
        CATALOG, SPEC, {"email": 2, "phone": 1}, 1, total_cap=total, min_gap_weeks=gap
    )
    f = features(
        contacts_4w_email=[email],
        contacts_4w_phone=[phone],
        recency_weeks=[np.nan if recency is None else recency],
    )
    f["contacts_4w"] = np.array([email + phone])
    f["weeks_since_contact"] = np.array([np.nan if since is None else since], np.float64)
    for action in range(CATALOG.n_actions):
        chosen, _ = rules.guard(np.array([action]), f)
        if chosen[0] == 0:
            continue
        channel_count = email if CATALOG.channels[action] == "email" else phone
        cap = 2 if CATALOG.channels[action] == "email" else 1
        assert channel_count < cap and email + phone < total
        assert since is None or gap <= 1 or since >= gap
        assert recency is None or recency > 1


# --- caps over any set of channels or actions, each with its own window -------------------

caps_strategy = st.lists(
    st.one_of(
        st.builds(Cap, st.integers(0, 3), st.integers(1, 9)),
        st.builds(
            Cap,
            st.integers(0, 3),
            st.integers(1, 9),
            channels=st.lists(st.sampled_from(["email", "phone"]), min_size=1, unique=True).map(
                tuple
            ),
        ),
        st.builds(
            Cap,
            st.integers(0, 3),
            st.integers(1, 9),
            actions=st.lists(st.sampled_from(CATALOG.names[1:]), min_size=1, unique=True).map(
                tuple
            ),
        ),
    ),
    max_size=4,
)


def _history_state(spec: FeatureSpec, history: np.ndarray) -> CustomerState:
    """The state after ``history`` (weeks, N) of action indices, folded in with ``advance``."""
    n_weeks, n = history.shape
    state = CustomerState.new(spec, 0, np.zeros(n, np.int64))
    channel_of = [spec.contact_channels.index(c) if c else -1 for c in CATALOG.channels]
    for t in range(n_weeks):
        activity = WeekActivity.quiet(n, len(spec.contact_channels), len(spec.rule_actions))
        for i, a in enumerate(history[t]):
            if a:
                activity.contacts[i, channel_of[a]] += 1
                if CATALOG.names[a] in spec.rule_actions:
                    assert activity.action_contacts is not None
                    activity.action_contacts[i, spec.rule_actions.index(CATALOG.names[a])] += 1
        state = advance(state, activity)
    return state


@settings(max_examples=150, deadline=None)
@given(
    caps=caps_strategy,
    history=st.lists(
        st.lists(st.integers(0, CATALOG.n_actions - 1), min_size=3, max_size=3),
        min_size=0,
        max_size=12,
    ),
)
def test_caps_with_own_windows_forbid_exactly_the_brute_force_count(
    caps: list[Cap], history: list[list[int]]
) -> None:
    """The one state code counts each cap's window; the masks equal a brute-force count over
    the history, and the guard decides as the masks."""
    hist = np.array(history, np.int64).reshape(len(history), 3)
    spec = rule_feature_spec(SPEC, tuple(caps))
    rules = ContactRules(CATALOG, spec, caps=tuple(caps))
    state = _history_state(spec, hist)
    f = state_features(state, spec)
    assert list(f) == list(spec.all_feature_names)
    masks = rules.masks(f)
    t = hist.shape[0]
    for i in range(3):
        for a in range(1, CATALOG.n_actions):
            allowed = True
            for cap in caps:
                if not cap.counted(CATALOG)[a]:
                    continue
                past = hist[max(0, t - cap.window_weeks + 1) : t, i]
                n = sum(bool(cap.counted(CATALOG)[b]) for b in past if b)
                allowed &= n < cap.max
            assert masks[i, a] == allowed, (i, a, caps, hist[:, i])
    for a in range(CATALOG.n_actions):
        chosen, overridden = rules.guard(np.full(3, a), f)
        np.testing.assert_array_equal(chosen, np.where(masks[:, a], a, 0))
        np.testing.assert_array_equal(overridden, ~masks[:, a])


def test_a_cap_on_one_action_leaves_the_other_actions_of_its_channel() -> None:
    """'At most 1 offer per 8 weeks': the offer is forbidden 7 weeks after an offer (8 weeks
    with this one), not 8 weeks after; the other actions of its channel stay allowed."""
    cap = Cap(1, 8, actions=("discount_offer",))
    spec = rule_feature_spec(SPEC, (cap,))
    rules = ContactRules(CATALOG, spec, caps=(cap,))
    hist = np.zeros((10, 2), np.int64)
    hist[3, 0] = 2  # the offer 7 weeks before week 10: still in the window
    hist[2, 1] = 2  # 8 weeks before: out of it
    codes = rules.reasons(state_features(_history_state(spec, hist), spec))
    assert codes[0].tolist() == [0, 0, FREQUENCY_CAP, 0]
    assert codes[1].tolist() == [0, 0, 0, 0]


def test_rules_the_state_cannot_evaluate_stop_with_one_line() -> None:
    with pytest.raises(ValueError, match=r"cannot evaluate a cap of 1 in 8 weeks"):
        ContactRules(CATALOG, SPEC, caps=(Cap(1, 8, actions=("personal_call",)),))
    with pytest.raises(ValueError, match="unknown actions"):
        ContactRules(CATALOG, SPEC, caps=(Cap(1, 8, actions=("fax",)),))
    with pytest.raises(ValueError, match="channels or actions, not both"):
        Cap(1, 2, channels=("email",), actions=("newsletter",))


# --- quiet weeks and eligibility -----------------------------------------------------------

targets = st.one_of(
    st.just({}),
    st.lists(st.sampled_from(["email", "phone"]), min_size=1, unique=True).map(
        lambda c: {"channels": tuple(c)}
    ),
    st.lists(st.sampled_from(CATALOG.names[1:]), min_size=1, unique=True).map(
        lambda a: {"actions": tuple(a)}
    ),
)
quiet_strategy = st.lists(
    st.builds(
        lambda weeks, target: QuietWeeks(tuple(weeks), **target),
        st.lists(st.integers(1, 53), min_size=1, max_size=3),
        targets,
    ),
    max_size=2,
)
eligibility_strategy = st.lists(
    st.builds(
        lambda segments, stages, target: Eligibility(tuple(segments), tuple(stages), **target),
        st.lists(st.integers(0, 2), max_size=2),
        st.lists(st.integers(0, 3), min_size=1, max_size=2),
        targets,
    )
    | st.builds(
        lambda segments, target: Eligibility(tuple(segments), (), **target),
        st.lists(st.integers(0, 2), min_size=1, max_size=2),
        targets,
    ),
    max_size=2,
)


def _targets(rule: QuietWeeks | Eligibility, a: int) -> bool:
    if rule.actions:
        return CATALOG.names[a] in rule.actions
    if rule.channels:
        return CATALOG.channels[a] in rule.channels
    return True


@settings(max_examples=200, deadline=None)
@given(
    quiet=quiet_strategy,
    eligibility=eligibility_strategy,
    caps=caps_strategy,
    segment=st.lists(st.integers(-1, 2), min_size=4, max_size=4),
    stage=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    week_of_year=st.integers(1, 53),
    history=st.lists(
        st.lists(st.integers(0, CATALOG.n_actions - 1), min_size=4, max_size=4), max_size=6
    ),
)
def test_random_rule_sets_masks_equal_the_rules_read_one_by_one(
    quiet: list[QuietWeeks],
    eligibility: list[Eligibility],
    caps: list[Cap],
    segment: list[int],
    stage: list[int],
    week_of_year: int,
    history: list[list[int]],
) -> None:
    """Random rule sets: an action is allowed exactly when no rule, read on its own, forbids
    it; the guard decides as the masks; the reason reported is a rule that applies."""
    hist = np.array(history, np.int64).reshape(len(history), 4)
    spec = rule_feature_spec(SPEC, tuple(caps))
    rules = ContactRules(
        CATALOG, spec, caps=tuple(caps), quiet=tuple(quiet), eligibility=tuple(eligibility)
    )
    f = state_features(_history_state(spec, hist), spec)
    f["lifecycle"] = np.array(stage, np.int8)
    seg = np.array(segment)
    codes = rules.reasons(f, segment=seg, week_of_year=week_of_year)
    masks = rules.masks(f, segment=seg, week_of_year=week_of_year)
    np.testing.assert_array_equal(masks, codes == 0)
    t = hist.shape[0]
    for i in range(4):
        for a in range(1, CATALOG.n_actions):
            quiet_hit = any(week_of_year in q.weeks and _targets(q, a) for q in quiet)
            not_eligible = any(
                _targets(e, a)
                and not (
                    (not e.segments or seg[i] in e.segments)
                    and (not e.lifecycle or stage[i] in e.lifecycle)
                )
                for e in eligibility
            )
            capped = any(
                cap.counted(CATALOG)[a]
                and sum(
                    bool(cap.counted(CATALOG)[b])
                    for b in hist[max(0, t - cap.window_weeks + 1) : t, i]
                    if b
                )
                >= cap.max
                for cap in caps
            )
            assert masks[i, a] == (not (quiet_hit or not_eligible or capped))
            if not_eligible:
                assert codes[i, a] == NOT_ELIGIBLE
            elif quiet_hit:
                assert codes[i, a] == QUIET_WEEK
            elif capped:
                assert codes[i, a] == FREQUENCY_CAP
    for a in range(CATALOG.n_actions):
        chosen, _ = rules.guard(np.full(4, a), f, segment=seg, week_of_year=week_of_year)
        np.testing.assert_array_equal(chosen, np.where(masks[:, a], a, 0))


def test_quiet_weeks_and_eligibility_need_the_week_and_the_customer_type() -> None:
    quiet = ContactRules(CATALOG, SPEC, quiet=(QuietWeeks((52, 1), channels=("phone",)),))
    with pytest.raises(ValueError, match="quiet weeks: give the week of year"):
        quiet.masks(features())
    codes = quiet.reasons(features(), week_of_year=np.array([52]))
    assert codes[0].tolist() == [0, 0, 0, QUIET_WEEK]
    assert quiet.masks(features(), week_of_year=2).all()
    only = ContactRules(CATALOG, SPEC, eligibility=(Eligibility((1,), actions=("personal_call",)),))
    with pytest.raises(ValueError, match="give segment"):
        only.masks(features())
    f = features(recency_weeks=[np.nan, np.nan, np.nan])
    f["lifecycle"] = np.zeros(3, np.int8)
    codes = only.reasons(f, segment=np.array([0, 1, -1]))
    assert codes[:, 3].tolist() == [NOT_ELIGIBLE, 0, NOT_ELIGIBLE]  # unknown type: not eligible
    assert (codes[:, :3] == 0).all()


def test_the_rules_summarise_in_one_line() -> None:
    assert ContactRules(CATALOG, SPEC).summary() == "opt-outs only"
    cap = Cap(1, 8, actions=("personal_call",))
    rules = ContactRules(
        CATALOG,
        rule_feature_spec(SPEC, (cap,)),
        {"email": 2},
        1,
        caps=(cap,),
        quiet=(QuietWeeks((52, 1), channels=("phone",)),),
        capacity={"personal_call": 300},
    )
    assert rules.summary() == (
        "email <= 2 in any 5 weeks; personal_call <= 1 in any 8 weeks; cool-down 1 weeks; "
        "no phone in weeks 52,1; personal_call <= 300 a week"
    )


def test_a_worlds_unsupported_actions_are_forbidden_by_every_mask_of_that_world() -> None:
    """A calibrated world's actions without logged support reach every mask through the one
    rules object: the world's own rules, any configured rules for the world, the guard and
    the DP's masks over summaries, each with the reason ``unsupported``."""
    from dataclasses import replace

    from journeyopt.sim.behaviour import contact_rules
    from journeyopt.sim.config import RulesConfig
    from journeyopt.sim.discrete import DiscreteLayout, allowed_actions
    from journeyopt.sim.rules import ALLOWED, UNSUPPORTED
    from journeyopt.sim.world import load_world

    world = load_world("coworking")
    action = world.actions.names[-1]
    a = world.actions.names.index(action)
    bare = replace(world, unsupported_actions=(action,))
    assert list(bare.supported_actions) == [k != a for k in range(world.actions.n_actions)]
    rng = np.random.default_rng(0)
    feats = {
        "recency_weeks": rng.integers(1, 30, 50).astype(float),
        "weeks_since_contact": np.full(50, np.nan),
        "lifecycle": np.ones(50, np.int64),
        **{f"contacts_4w_{c}": np.zeros(50) for c in world.channels},
        **{f"opted_out_{c}": rng.random(50) < 0.3 for c in world.channels},
    }
    for rules in (contact_rules(bare), RulesConfig().for_world(bare, "serve.rules")):
        codes = rules.reasons(feats)
        assert (codes[:, a] == UNSUPPORTED).all()
        others = np.delete(codes, a, axis=1)
        assert (
            others == contact_rules(world).reasons(feats)[:, np.arange(codes.shape[1]) != a]
        ).all()
        actions, overridden = rules.guard(np.full(50, a), feats)
        assert (actions == 0).all() and overridden.all()
    assert (contact_rules(world).reasons(feats)[:, a] != UNSUPPORTED).all()
    assert (contact_rules(world).reasons(feats)[:, 0] == ALLOWED).all()
    summaries = DiscreteLayout.of(world).all_states()
    assert allowed_actions(summaries, world)[:, a].any()
    masked = allowed_actions(summaries, bare)
    assert not masked[:, a].any()
    assert (masked[:, 0]).all()
    with pytest.raises(Exception, match="unknown actions"):
        replace(world, unsupported_actions=("no_such_action",))
