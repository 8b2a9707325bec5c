"""Caps with their own windows in serving: the scorer's state counts every window the rules
name (independent of the world's fatigue window), so a served decision never breaks a cap,
checked against a brute-force count over the raw contact log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.panel.weeks import WEEK, monday_on_or_before
from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.features import batch_from_logs
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import CapConfig, EligibilityConfig, QuietWeeksConfig, RulesConfig
from journeyopt.sim.rules import ALLOWED, FREQUENCY_CAP, NOT_ELIGIBLE, OPTED_OUT, QUIET_WEEK
from journeyopt.sim.world import WorldSpec
from tests.serving.conftest import AS_OF

CAPS = [
    CapConfig(max=1, window_weeks=3, over="all"),
    CapConfig(max=0, window_weeks=1, actions=["personal_call"]),
    CapConfig(max=1, window_weeks=9, actions=["discount_offer"]),
    CapConfig(max=2, window_weeks=6, channels=["email"]),
]


def test_served_decisions_keep_every_cap_of_its_own_window(
    world: WorldSpec, served: ServedModel, demo_source: SourceConfig
) -> None:
    settings = ServingConfig(rules=RulesConfig(caps=list(CAPS)))
    scorer = Scorer(served, settings, world)
    assert scorer.world.features.rule_windows == (2, 8, 5)
    logs, _ = ingest_to_logs(demo_source)
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    batch = batch_from_logs(logs, scorer.world, as_of)
    decisions = scorer.score(batch)
    monday = monday_on_or_before(as_of)
    contacts = logs.contacts[logs.contacts["action"] != "none"]
    names = np.asarray(world.actions.names)
    reached_somewhere = 0
    for cap in (c.cap() for c in CAPS):
        counted = cap.counted(world.actions)
        start = monday - cap.past_weeks * WEEK
        recent = contacts[(contacts["ts"] >= start) & (contacts["ts"] < monday)]
        if cap.actions:
            recent = recent[recent["action"].isin(cap.actions)]
        elif cap.channels:
            recent = recent[recent["channel"].isin(cap.channels)]
        seen = recent.groupby("customer_id").size()
        n = seen.reindex(batch.customer_ids).fillna(0).to_numpy()
        reached = n >= cap.max
        reached_somewhere += int(reached.sum())
        chosen = counted[decisions.actions]
        assert not (reached & chosen).any(), (cap, names[decisions.actions[reached & chosen]])
        # the reason code says why: a counted action of a reached cap is never allowed
        assert (decisions.reasons[np.ix_(reached, counted)] != ALLOWED).all()
    assert reached_somewhere > 0  # the logs do reach caps: the test can fail
    assert (decisions.reasons == FREQUENCY_CAP).any()


def test_a_cap_on_an_action_the_world_lacks_stops_the_start_up(
    world: WorldSpec, served: ServedModel
) -> None:
    settings = ServingConfig(rules=RulesConfig(caps=[CapConfig(1, 8, actions=["fax"])]))
    with pytest.raises(ConfigError, match=r"serve.rules.caps\[0\] names action\(s\) \['fax'\]"):
        Scorer(served, settings, world)
    with pytest.raises(ConfigError, match="counts exactly one of over: all, channels"):
        CapConfig(1, 8, over="all", channels=["email"])


def test_served_decisions_keep_quiet_weeks_and_eligibility(
    world: WorldSpec, served: ServedModel, demo_source: SourceConfig
) -> None:
    week = int(pd.Timestamp(AS_OF).isocalendar().week)
    rules = RulesConfig(
        quiet_weeks=[QuietWeeksConfig(weeks=[week], channels=["phone"])],
        eligibility=[
            EligibilityConfig(segments=["freelancer"], actions=["discount_offer"]),
            EligibilityConfig(lifecycle=["active"], actions=["personal_email"]),
        ],
    )
    scorer = Scorer(served, ServingConfig(rules=rules), world)
    logs, _ = ingest_to_logs(demo_source)
    batch = batch_from_logs(logs, scorer.world, pd.Timestamp(AS_OF, tz="UTC"))
    decisions = scorer.score(batch)
    names = np.asarray(world.actions.names)[decisions.actions]
    channels = np.asarray(world.actions.channels)[decisions.actions]
    assert not (channels == "phone").any()
    freelancer = batch.segment == world.segment_names.index("freelancer")
    assert not ((names == "discount_offer") & ~freelancer).any()
    active = batch.features["lifecycle"] == LIFECYCLE_STAGES.index("active")
    assert not ((names == "personal_email") & ~active).any()
    call = world.actions.names.index("personal_call")
    offer = world.actions.names.index("discount_offer")
    known = batch.known
    assert set(np.unique(decisions.reasons[known, call])) <= {QUIET_WEEK, OPTED_OUT}
    assert (decisions.reasons[known, call] == QUIET_WEEK).any()
    assert (decisions.reasons[known & ~freelancer, offer] != ALLOWED).all()
    assert (decisions.reasons[known & ~freelancer, offer] == NOT_ELIGIBLE).any()
    other = ServingConfig(rules=RulesConfig(quiet_weeks=[QuietWeeksConfig(weeks=[week + 1])]))
    assert (Scorer(served, other, world).score(batch).reasons[:, call] != QUIET_WEEK).all()


def test_eligibility_naming_a_type_the_world_lacks_stops_the_start_up(
    world: WorldSpec, served: ServedModel
) -> None:
    rules = RulesConfig(eligibility=[EligibilityConfig(segments=["Firma"], channels=["phone"])])
    with pytest.raises(
        ConfigError,
        match=r"serve.rules.eligibility\[0\].segments names customer type\(s\) \['Firma'\]",
    ):
        Scorer(served, ServingConfig(rules=rules), world)
    with pytest.raises(ConfigError, match="unknown lifecycle stage"):
        EligibilityConfig(lifecycle=["sleeping"])
    with pytest.raises(ConfigError, match=r"weeks must be ISO weeks 1\.\.53"):
        QuietWeeksConfig(weeks=[54])
    assert QuietWeeksConfig(dates=[["2026-12-28", "2027-01-04"]]).iso_weeks() == (1, 53)


def test_the_api_takes_the_rule_counts_and_answers_the_new_reasons(
    world: WorldSpec, served: ServedModel
) -> None:
    """A request's feature record carries the counts the rules name (they are in its schema);
    the answer's ``masked`` names ``frequency_cap``, ``quiet_week`` and ``not_eligible``."""
    week = int(pd.Timestamp(AS_OF).isocalendar().week)
    rules = RulesConfig(
        caps=[CapConfig(max=1, window_weeks=8, actions=["discount_offer"])],
        quiet_weeks=[QuietWeeksConfig(weeks=[week], channels=["phone"])],
        eligibility=[EligibilityConfig(segments=["freelancer"], actions=["personal_email"])],
    )
    app = create_app(ServingConfig(rules=rules), lambda: served, world, token="t")
    record = {
        "recency_weeks": 30.0, "frequency": 2, "monetary": 40.0, "n_conversions": 5,
        "tenure_weeks": 80, "lifecycle": "lapsed", "contacts_4w": 0, "contacts_4w_email": 0,
        "contacts_4w_phone": 0, "weeks_since_contact": None, "engagements_4w": 1,
        "weeks_since_engagement": 1.0, "n_cancellations": 0, "opted_out_email": False,
        "opted_out_phone": False, "contacts_7w": 1, "contacts_7w_email": 1,
        "contacts_7w_phone": 0, "action_contacts_7w_discount_offer": 1,
    }  # fmt: skip
    body = {"customer_id": "c1", "segment": "startup_team", "features": record, "as_of": AS_OF}
    with TestClient(app) as client:
        reply = client.post("/v1/score", json=body, headers={"Authorization": "Bearer t"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["masked"] == {
            "discount_offer": "frequency_cap",
            "personal_call": "quiet_week",
            "personal_email": "not_eligible",
        }
        missing = {k: v for k, v in record.items() if k != "action_contacts_7w_discount_offer"}
        reply = client.post(
            "/v1/score", json={**body, "features": missing}, headers={"Authorization": "Bearer t"}
        )
        assert reply.status_code == 422
        assert "action_contacts_7w_discount_offer" in reply.text
