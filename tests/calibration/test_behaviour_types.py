"""Customer types read from behaviour (``calibration.behaviour_types``): a Gaussian mixture over
each customer's log mean order value, engagement per contact received and conversions per week
of tenure, read from the state at the end of the calibration weeks only, and chosen over the
customers file's segments and the value tiers by held-out likelihood.

On a two-type world whose types differ only in how often they engage (no value or purchase
difference), with a customers file that records nothing, the types are kept and the value tiers
are not; when both types engage alike, the types are scored and not kept.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from journeyopt.calibration.config import CalibrationConfig, SummaryConfig
from journeyopt.calibration.segmentation import FILE, choose_segments, types_key
from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.panel.build import build_panel
from journeyopt.panel.segments import (
    BehaviourTypes,
    behaviour_scores,
    behaviour_types_before,
    fit_behaviour_types,
    row_types,
)
from journeyopt.panel.state import CustomerState, WeekActivity, advance, state_features
from journeyopt.serving.features import batch_from_columns, empty_record
from journeyopt.sim.config import GenerateConfig, StaffRulesConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import WORLDS_DIR, DiscreteSpec, WorldSpec, load_world, world_path
from tests.panel.windows import feature_windows, panel_config
from tests.sim.caps import PRACTICE_CYCLES, caps_config


def _scores(rng: np.random.Generator, n: int, engagement: float) -> np.ndarray:
    """(n, 3) scores: one value and purchase rate for all, the engagement rate given."""
    return np.column_stack(
        [
            rng.normal(3.3, 0.2, n),
            rng.normal(engagement, 0.03, n),
            rng.normal(0.15, 0.03, n),
        ]
    )


def test_the_types_are_seeded_and_ordered_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    scores = np.vstack([_scores(rng, 300, 0.05), _scores(rng, 200, 0.4), np.full((5, 3), np.nan)])
    first = fit_behaviour_types(scores, 2, seed=7)
    assert fit_behaviour_types(scores, 2, seed=7) == first
    assert BehaviourTypes.from_dict(first.as_dict()) == first
    codes = first.codes(scores)
    assert (codes[-5:] == int(np.argmax(first.weights))).all()  # no score: the largest type
    assert first.unknown == first.names[codes[-1]]
    engaged = np.array([[np.nan, 0.4, 0.0]])  # no purchase yet: read from what they have
    assert first.codes(engaged)[0] == codes[300]
    # the two engagement levels are the two types, whichever the order
    assert len(set(codes[:300])) == 1 and len(set(codes[300:500])) == 1
    assert codes[0] != codes[300]
    centres = sorted(c["engagement_rate"] for c in first.centres_in_units())
    np.testing.assert_allclose(centres, [0.05, 0.4], atol=0.01)
    with pytest.raises(ValueError, match="too few"):
        fit_behaviour_types(scores[:15], 2, seed=0)
    with pytest.raises(ValueError, match="n_types"):
        fit_behaviour_types(scores, 1, seed=0)


def test_the_scores_read_the_lifetime_counts_of_the_state() -> None:
    spec = feature_windows(contact_channels=("email",), lifetime_counts=True)
    state = CustomerState.new(spec, 0, np.zeros(3, np.int32))
    for _ in range(4):  # customer 0: 4 contacts, 2 engagements, 2 purchases of 30
        activity = WeekActivity.quiet(3, 1)
        activity.contacts[0, 0] = 1
        activity.engagements[0] = state.week % 2
        activity.conversions[0] = state.week % 2
        activity.revenue[0] = 30.0 * (state.week % 2)
        activity.engagements[1] = 1  # customer 1: engages, never buys
        state = advance(state, activity)
    features = state_features(state, spec)
    assert features["n_engagements"].tolist() == [2, 4, 0]
    assert features["n_contacts"].tolist() == [4, 0, 0]
    scores = behaviour_scores(features)
    np.testing.assert_allclose(scores[0], [np.log1p(30.0), 2 / 5, 2 / 5])
    np.testing.assert_allclose(scores[1:, 1:], [[4.0, 0.0], [0.0, 0.0]])
    assert np.isnan(scores[1:, 0]).all()  # no conversion: no order value
    assert "n_engagements" not in state_features(state, replace(spec, lifetime_counts=False))


def test_a_customers_type_reads_the_weeks_before_the_end_only() -> None:
    """Appending later weeks (the hold-out, events after the as-of) leaves the types as they
    were: they are fitted on each customer's last state before ``end_week``, and each row is
    typed from its own state."""
    rng = np.random.default_rng(1)
    n = 120
    scores = np.vstack([_scores(rng, n // 2, 0.05), _scores(rng, n // 2, 0.5)])
    rows = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "week": 3,
            "monetary": np.expm1(scores[:, 0]),
            "n_contacts": 9,
            "n_engagements": scores[:, 1] * 10,
            "tenure_weeks": 19,
            "n_conversions": scores[:, 2] * 20,
            "segment": "",
        }
    )
    later = rows.assign(week=5, n_engagements=0, monetary=500.0)
    types = behaviour_types_before(rows, 4, 2, seed=0)
    assert behaviour_types_before(pd.concat([rows, later]), 4, 2, seed=0) == types
    labels = row_types(rows, types)  # the two engagement levels are the two types
    assert len(set(labels[: n // 2])) == 1 and len(set(labels[n // 2 :])) == 1
    assert labels[0] != labels[-1]


@pytest.mark.parametrize("types", [[1], [2, 2], [0]])
def test_behaviour_types_must_be_distinct_and_at_least_two(types: list[int]) -> None:
    with pytest.raises(ConfigError, match="behaviour_types"):
        CalibrationConfig(caps=caps_config(), behaviour_types=types)


def test_behaviour_types_need_the_logs_segments() -> None:
    with pytest.raises(ConfigError, match="behaviour_types needs"):
        CalibrationConfig(caps=caps_config(), behaviour_types=[2], truth_world="coworking")


def test_a_world_of_behaviour_types_needs_the_lifetime_counts() -> None:
    world = load_world("coworking")
    types = fit_behaviour_types(_scores(np.random.default_rng(0), 100, 0.1), 2, seed=0)
    with pytest.raises(ConfigError, match="lifetime_counts"):
        replace(world, segment_types=types)
    counted = replace(world.features, lifetime_counts=True)
    kept = replace(world, features=counted, segment_types=types)
    labels = kept.segment_labels({"monetary": np.array([np.nan]), **_zero_counts()})
    assert labels is not None and labels.tolist() == [
        types.names[types.codes(np.zeros((1, 3)) * [np.nan, 0, 0])[0]]
    ]


def _zero_counts() -> dict[str, np.ndarray]:
    return {k: np.zeros(1) for k in ("n_engagements", "n_contacts", "n_conversions")} | {
        "tenure_weeks": np.zeros(1)
    }


def _untyped_practice() -> StaffRulesConfig:
    """The demo's practice without its rules for team types the two-type world lacks."""
    demo = shipped_practice("coworking")
    return replace(demo, rules=[r for r in demo.rules if not r.segments])


def _panel(tmp_path: Path, engaged: float) -> tuple[pd.DataFrame, WorldSpec]:
    """The panel of a two-type coworking world whose types differ only in engagement
    (``engaged``: the second type's engagement per contact; the first's 0.05), the customers
    file's segment blanked (it records nothing)."""
    raw = yaml.safe_load(world_path("coworking").read_text())
    # one kind of purchase at an almost fixed price: the order value carries no type
    one = {
        **raw["segments"]["freelancer"],
        "kinds": {"day_pass": [1.0, 25.0]},
        "value_shape": 400.0,
    }
    two = {
        **one,
        "action_engagement": {a: engaged for a in one["action_engagement"]},
        "inquiry_rate": one["inquiry_rate"] * engaged / 0.05,
        "share": 0.5,
    }
    raw["segments"] = {"a": {**one, "share": 0.5}, "b": two}
    raw["name"] = "two_types"
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    world = load_world(path)
    out = tmp_path / "logs"
    cfg = GenerateConfig(
        output_dir=str(out),
        n_customers=900,
        weeks=30,
        seed=3,
        exploration=0.5,
        staff=_untyped_practice(),
    )
    write_logs(generate_logs(world, cfg, np.random.default_rng(cfg.seed)), out)
    source_raw = OmegaConf.load(WORLDS_DIR.parent / "configs" / "data" / "coworking.yaml")
    source = replace(to_object(source_raw, SourceConfig), path=str(out))
    logs, _ = ingest_to_logs(source)
    panel = build_panel(logs, panel_config(lifetime_counts=True), world.channels)
    return panel.assign(segment=""), world


@pytest.mark.parametrize(("engaged", "typed"), [(0.8, True), (0.05, False)])
def test_the_types_are_kept_only_when_they_differ(
    tmp_path: Path, engaged: float, typed: bool
) -> None:
    panel, world = _panel(tmp_path, engaged)
    cal = CalibrationConfig(
        caps=caps_config(),
        behaviour_types=[2],
        summary=SummaryConfig(forward_weeks=0),
        seasonal=False,
        c_grid=[0.3],
        practice_cycles_weeks=PRACTICE_CYCLES,
    )
    end = int(panel["week"].max()) - 3
    spec = DiscreteSpec(**asdict(cal.caps))
    out, choice = choose_segments(
        panel, (4, end), spec, cal, world.channels, world.actions.names, None, ()
    )
    assert list(choice.loglik) == [FILE, types_key(2)]
    if not typed:  # the types carry nothing the state does not: scored, not kept
        assert choice.kept == FILE and out is panel, choice.loglik
        return
    assert choice.kept == types_key(2), choice.loglik
    assert choice.types is not None and choice.tiers == 0 and choice.cuts == ()
    assert set(out["segment"]) == {"type 1/2", "type 2/2"}
    assert choice.loglik[types_key(2)] - choice.loglik[FILE] > choice.se[types_key(2)]
    rates = sorted(c["engagement_rate"] for c in choice.centres[types_key(2)])
    assert rates[1] > 2 * rates[0]  # the engaged type


def test_the_scorer_reads_a_customers_type_from_their_features() -> None:
    """A world of behaviour types: a request without a segment gets the type the panel reads
    from the same features (:func:`row_types`); a given segment is kept."""
    world = load_world("coworking")
    types = fit_behaviour_types(
        np.vstack([_scores(np.random.default_rng(2), 200, e) for e in (0.05, 0.5)]), 2, seed=0
    )
    world = replace(
        world,
        features=replace(world.features, lifetime_counts=True),
        segments=tuple(replace(world.segments[0], name=n, share=0.5) for n in types.names),
        segment_types=types,
    )
    record = empty_record(world.features)
    rows = pd.DataFrame(
        {
            "monetary": [26.0, 26.0],
            "n_engagements": [0, 6],
            "n_contacts": [9, 9],
            "n_conversions": [3, 3],
            "tenure_weeks": [19, 19],
        }
    )
    columns = {
        name: list(rows[name]) if name in rows else [record[name]] * 2
        for name in world.features.all_feature_names
    }
    batch = batch_from_columns(["a", "b"], columns, None, world, pd.Timestamp("2024-01-01"))
    want = [world.segment_names.index(t) for t in row_types(rows, types)]
    assert batch.segment.tolist() == want and want[0] != want[1]
    given = batch_from_columns(["a", "b"], columns, [types.names[1], None], world, pd.Timestamp(0))
    assert given.segment.tolist() == [1, want[1]]
