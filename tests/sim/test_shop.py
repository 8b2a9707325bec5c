"""The roastery shop world (a truth outside the calibrated family): dynamics, determinism, its
exact optimum against simulation, the all-channel contact rule, the raw-log writer against
ingestion, and that the calibrated family's summary cannot tell apart customers the truth
treats differently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from journeyopt.agents.baselines import NoContact, StaffPolicy, UniformRandom
from journeyopt.calibration.policy_fidelity import AlwaysAction
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.panel.state import CustomerState, WeekActivity, advance
from journeyopt.panel.state import state_features as panel_features
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.shop import (
    ShopSpec,
    ShopState,
    allowed_actions,
    draw_population,
    responses,
    step,
)
from journeyopt.sim.shop_eval import (
    evaluation_population,
    myopic_chooser,
    observable_world,
    product_chooser,
    run_truth,
    state_chooser,
)
from journeyopt.sim.shop_logs import render_shop_logs, simulate_shop_logs, write_shop_logs
from journeyopt.sim.shop_optimum import ShopLayout, evaluate_state_policy, solve_shop_optimum
from journeyopt.sim.world import WORLDS_DIR
from tests.panel.windows import feature_windows

GAMMA = 0.995


def _state(z: int, weeks: int, history: int, pending: int, n: int = 1) -> ShopState:
    full = np.full(n, 0, np.int64)
    return ShopState(full + z, full + weeks, full + history, full + pending, full.copy())


def test_responses_are_probabilities_of_the_right_shape(shop: ShopSpec) -> None:
    states = ShopLayout.of(shop).all_states()
    for a in range(shop.actions.n_actions):
        act = np.full(states.n, a)
        r = responses(shop, states, act, 50)
        for p in (r.purchase, r.optout, r.click):
            assert p.shape == (states.n,)
            assert np.all((p >= 0) & (p <= 1))
        assert np.all(r.value > 0)
        assert np.all(r.optout[:] == 0) == (a == 0)


def test_step_is_deterministic_with_a_seed(shop: ShopSpec) -> None:
    state, _ = draw_population(shop, 500, np.random.default_rng(0))
    actions = np.random.default_rng(1).integers(0, shop.actions.n_actions, 500)
    runs = [step(shop, state, actions, 10, np.random.default_rng(7), GAMMA) for _ in range(2)]
    (s1, o1), (s2, o2) = runs
    for name in ("type", "weeks", "history", "pending", "optout"):
        assert np.array_equal(getattr(s1, name), getattr(s2, name))
    assert np.array_equal(o1.reward, o2.reward) and np.array_equal(o1.paid, o2.paid)


def test_mechanisms_outside_the_calibrated_family(shop: ShopSpec) -> None:
    """Count-based fatigue and action-dependent delays: a voucher works less after two contacts
    in the last 4 weeks than after one; a call lifts purchases 2-3 weeks later, not at once."""
    one = responses(shop, _state(2, 4, 0b0001, 0), np.array([2]), 10).purchase
    two = responses(shop, _state(2, 4, 0b0101, 0), np.array([2]), 10).purchase
    assert two[0] < one[0]
    p = shop.params
    call = shop.actions.names.index("call")
    assert p.lift[1, call, 0] == 0 and p.lift[1, call, 2] > 0
    call_now = responses(shop, _state(1, 5, 0, 0), np.array([call]), 10).purchase
    none_now = responses(shop, _state(1, 5, 0, 0), np.array([0]), 10).purchase
    assert call_now[0] == pytest.approx(none_now[0])
    age2 = int(np.flatnonzero((p.pending_action == call) & (p.pending_age == 2))[0])
    later = responses(shop, _state(1, 5, 0b0010, age2), np.array([0]), 10).purchase
    assert later[0] > none_now[0]


def test_contact_rule_mask(shop: ShopSpec) -> None:
    # contacts 1 and 3 weeks ago: a third within any 4 weeks is forbidden; 4 weeks ago is out
    blocked = allowed_actions(shop, _state(0, 3, 0b0101, 0))
    free = allowed_actions(shop, _state(0, 3, 0b1001, 0))
    assert blocked[0, 0] and not blocked[0, 1:].any()
    assert free[0].all()


@pytest.fixture(scope="module")
def optimum(shop: ShopSpec):  # type: ignore[no-untyped-def]
    return solve_shop_optimum(shop, 26, GAMMA, 40)


def test_dp_value_equals_the_simulated_optimum(shop: ShopSpec, optimum) -> None:  # type: ignore[no-untyped-def]
    pop = evaluation_population(shop, 6000, 4, np.random.default_rng(3))
    run = run_truth(shop, pop, state_chooser(optimum.act), 26, GAMMA, np.random.default_rng(4), 40)
    exact = optimum.value(pop.true, 0)
    se = run.value.std(ddof=1) / np.sqrt(run.value.shape[0])
    assert abs(run.value.mean() - exact.mean()) < 4 * se
    assert run.violations == 0
    # the optimum beats every fixed action exactly
    x = ShopLayout.of(shop).encode(pop.true)
    for a in range(shop.actions.n_actions):
        fixed = evaluate_state_policy(
            shop, lambda s, t, a=a: np.full(s.n, a, np.int64), 26, GAMMA, 40
        )
        assert fixed[0, x].mean() <= exact.mean() + 1e-9
    own = evaluate_state_policy(shop, optimum.act, 26, GAMMA, 40)
    np.testing.assert_allclose(own, optimum.values, atol=1e-9)


def test_no_policy_breaks_the_all_channel_rule(shop: ShopSpec, optimum) -> None:  # type: ignore[no-untyped-def]
    obs = observable_world(shop)
    pop = evaluation_population(shop, 1500, 4, np.random.default_rng(5))
    practice = shipped_practice("roastery").practice_for(obs, "practice")
    rng = np.random.default_rng(6)
    choosers = [
        product_chooser(NoContact(), obs, pop.label, rng),
        product_chooser(UniformRandom(), obs, pop.label, rng),
        product_chooser(StaffPolicy(obs, practice), obs, pop.label, rng),
        state_chooser(optimum.act),
        myopic_chooser(shop, GAMMA),
        *(
            product_chooser(AlwaysAction(a, n), obs, pop.label, rng)
            for a, n in enumerate(shop.actions.names)
            if a
        ),
    ]
    contacted = 0
    for chooser in choosers:
        run = run_truth(shop, pop, chooser, 26, GAMMA, np.random.default_rng(7), 40)
        assert run.violations == 0
        contacted += int((run.contacts > 0).sum())
    assert contacted > 0


def test_same_calibrated_summary_different_truth(shop: ShopSpec) -> None:
    """Two customers whose panel features give the same discrete state of the calibrated
    family (same orders, recency, weeks since contact and engagement, opt-outs) but whose
    true contact histories differ (a newsletter last week; one of them also got a call 3 weeks
    ago) buy with different probabilities, and the contact rule treats them differently."""
    obs = observable_world(shop)
    features = feature_windows(contact_channels=shop.channels)
    panel = CustomerState.new(features, 0, np.zeros(2, np.int64))
    quiet = WeekActivity.quiet(2, len(shop.channels))

    def week(conversions: list[int], contacts: list[list[int]]) -> WeekActivity:
        return WeekActivity(
            conversions=np.array(conversions, np.int32),
            revenue=np.array(conversions, np.float64) * 30.0,
            engagements=quiet.engagements,
            cancellations=quiet.cancellations,
            contacts=np.array(contacts, np.int32),
            consent=quiet.consent,
        )

    email, phone = [1, 0, 0], [0, 1, 0]
    panel = advance(panel, week([1, 1], [[0, 0, 0], [0, 0, 0]]))  # both order
    panel = advance(panel, week([0, 0], [[0, 0, 0], phone]))  # B: a call
    panel = advance(panel, week([0, 0], [[0, 0, 0], [0, 0, 0]]))
    panel = advance(panel, week([0, 0], [email, email]))  # both: a newsletter
    f = panel_features(panel, features)
    x = discrete_state(f, np.zeros(2, np.int64), obs)
    assert x[0] == x[1]
    call = shop.actions.names.index("call")
    p = shop.params
    pending = int(np.flatnonzero((p.pending_action == call) & (p.pending_age == 3))[0])
    true = ShopState(
        type=np.array([0, 0]),
        weeks=np.array([4, 4]),
        history=np.array([0b0001, 0b0101]),
        pending=np.array([0, pending]),
        optout=np.array([0, 0]),
    )
    r = responses(shop, true, np.array([0, 0]), 10)
    assert r.purchase[1] - r.purchase[0] > 0.01
    allowed = allowed_actions(shop, true)
    assert allowed[0].all() and not allowed[1, 1:].any()


def test_writer_files_ingest_and_counts_reconcile(shop: ShopSpec, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    practice = shipped_practice("roastery").to_practice()
    records = simulate_shop_logs(shop, practice, 300, 30, 0.12, rng)
    export = render_shop_logs(shop, records, rng, duplicate_rate=0.01)
    write_shop_logs(export, tmp_path / "logs")
    cfg = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    cfg.path = str(tmp_path / "logs")
    cfg.as_of = "2030-01-01"
    source = to_object(cfg, SourceConfig)
    assert ActionCatalog.from_source(source) == shop.actions
    assert tuple(source.contact_channels) == shop.channels
    logs, result = ingest_to_logs(source)
    c = export.counts
    ev = result.events
    assert ev.rows_read == c["order_lines"] + c["duplicated_lines"] + c["refund_lines"] + (
        c["clicks"] + c["unsubscribes"]
    )
    assert ev.duplicates_exact + ev.duplicates_event_id == c["duplicated_lines"]
    assert ev.merged == c["order_lines"] - c["orders"]
    conversions = (logs.events["role"] == "conversion").sum()
    refunds = logs.events[logs.events["role"] == "refund"]
    assert conversions == c["orders"]
    assert len(refunds) == c["refund_lines"] and (refunds["kind"] == "refund").all()
    assert refunds["value"].sum() == pytest.approx(
        records.refunds["amount"].sum(), abs=0.01 * len(refunds)
    )
    assert ev.rejected == 0
    assert result.contacts.accepted == c["sends"] == len(records.sends)
    assert result.customers.accepted == c["customers"]
    assert set(logs.contacts["action"]) <= set(shop.actions.names[1:])
    assert logs.contacts["propensity"].between(0, 1, inclusive="right").all()
    assert (logs.events["role"] == "opt_out").sum() == c["unsubscribes"]


def test_load_world_refuses_a_shop_world_clearly() -> None:
    from journeyopt.errors import ConfigError
    from journeyopt.sim.world import load_world

    with pytest.raises(ConfigError, match="load_shop"):
        load_world("roastery")


def test_truth_and_calibrated_start_from_the_exports_own_customers(
    shop: ShopSpec, tmp_path: Path
) -> None:
    """The true states kept beside an export, at a calibrated base's as-of date, matched by
    customer id: each matched customer's true weeks since purchase, opt-out and contact bits
    are what the panel built from the export says about the same customer."""
    from journeyopt.calibration.base import starting_base
    from journeyopt.calibration.weeks import segment_names
    from journeyopt.panel.build import walk_panel
    from journeyopt.sim.shop import popcount
    from journeyopt.sim.shop_eval import matched_population
    from journeyopt.sim.shop_logs import TRUE_STATES_FILE, TrueStates
    from tests.panel.windows import panel_config

    rng = np.random.default_rng(12)
    practice = shipped_practice("roastery").to_practice()
    records = simulate_shop_logs(shop, practice, 400, 30, 0.12, rng)
    write_shop_logs(render_shop_logs(shop, records, rng), tmp_path / "logs", truth=records.truth)
    truth = TrueStates.load(tmp_path / "logs" / TRUE_STATES_FILE)
    assert truth.weeks.shape == (20 + 30 + 1, 400)  # burn-in, logged weeks, the week after
    assert (
        truth.at(records.history_start + pd.Timedelta(weeks=records.weeks)).weeks
        == (records.truth.weeks[-1])
    ).all()
    with pytest.raises(ValueError, match="no true state"):
        truth.at(records.history_start)

    cfg = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "roastery.yaml")
    cfg.path = str(tmp_path / "logs")
    source = to_object(cfg, SourceConfig)
    logs, _ = ingest_to_logs(source)
    features = feature_windows(contact_channels=shop.channels)
    panel, walk = walk_panel(logs, panel_config(), shop.channels)
    ids, end = walk.ids(), walk.state
    base, _ = starting_base(panel, ids, end, segment_names(panel))
    pop = matched_population(
        truth.at(base.as_of), truth.customer_no, base, features, 10_000, np.random.default_rng(0)
    )
    assert pop.true.n == base.n_customers > 350
    seen = panel_features(pop.panel, features)
    recency = seen["recency_weeks"]
    bought = np.isfinite(recency) & (recency < shop.recency_cap_weeks)
    assert bought.sum() > 100
    assert (pop.true.weeks[bought] == recency[bought]).all()
    assert (pop.true.optout == seen["opted_out_email"]).all()
    contacted = np.isfinite(seen["weeks_since_contact"]) & (seen["weeks_since_contact"] <= 1)
    assert ((pop.true.history & 1) == contacted).all()
    in_window = popcount(pop.true.history)
    assert in_window.sum() > 0
    # a customer matched to the wrong row would break these for some of 400 customers
    shuffled = matched_population(
        truth.at(base.as_of).take(np.roll(np.arange(400), 1)),
        truth.customer_no,
        base,
        features,
        10_000,
        np.random.default_rng(0),
    )
    assert not (shuffled.true.weeks[bought] == recency[bought]).all()
