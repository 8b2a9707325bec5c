"""Batch scoring end to end on demo logs: contact list, decision log, rejects, summary;
refusal to overwrite; clear errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.data.ingest import run_ingest
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError, OutputExistsError
from journeyopt.serving.batch import CONTACT_LIST_COLUMNS, score_logs
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import read_decision_log
from journeyopt.serving.served_model import ServedModel
from tests.serving.conftest import AS_OF


def test_batch_scorer_writes_contact_list_and_decision_log(
    tmp_path: Path, demo_source: SourceConfig, served: ServedModel, settings: ServingConfig
) -> None:
    out = tmp_path / "week" / "actions.csv"
    result = score_logs(demo_source, AS_OF, served, settings, out)
    decisions = read_decision_log(out.with_name("decisions.csv"))
    assert len(decisions) == result.customers > 100
    assert set(decisions["group"]) == {"treatment", "control"}
    assert 0.15 < (decisions["group"] == "control").mean() < 0.45  # share 0.3
    assert (decisions["week"] == "2024-03-04").all()
    assert (decisions["model_version"] == served.version).all()
    contacts = pd.read_csv(out, dtype={"customer_id": str})
    assert tuple(contacts.columns) == CONTACT_LIST_COLUMNS
    assert len(contacts) == result.contacts == int((decisions["action"] != "none").sum())
    assert 0 < result.contacts < result.customers  # the policy contacts some, not everybody
    summary = json.loads(out.with_name("summary.json").read_text())
    assert summary["scoring"]["customers"] == result.customers
    assert summary["ingest"]["events"]["rows_read"] > 0
    assert out.with_name("rejects.csv").is_file()
    probabilities = decisions["probabilities"].map(json.loads)
    chosen = np.array([p[a] for p, a in zip(probabilities, decisions["action"], strict=True)])
    np.testing.assert_allclose(chosen, decisions["propensity"], atol=1e-6)


def test_batch_scorer_refuses_to_overwrite(
    tmp_path: Path, demo_source: SourceConfig, served: ServedModel, settings: ServingConfig
) -> None:
    out = tmp_path / "actions.csv"
    out.write_text("my own file\n")
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        score_logs(demo_source, AS_OF, served, settings, out)
    assert out.read_text() == "my own file\n"
    score_logs(demo_source, AS_OF, served, settings, out, overwrite=True)
    assert tuple(pd.read_csv(out).columns) == CONTACT_LIST_COLUMNS


def test_batch_scorer_refuses_bad_outputs(
    tmp_path: Path, demo_source: SourceConfig, served: ServedModel, settings: ServingConfig
) -> None:
    with pytest.raises(ConfigError, match="choose another name"):
        score_logs(demo_source, AS_OF, served, settings, tmp_path / "decisions.csv")
    with pytest.raises(OutputExistsError, match="is a folder"):
        score_logs(demo_source, AS_OF, served, settings, tmp_path)
    with pytest.raises(ConfigError, match="not an ISO 8601"):
        score_logs(demo_source, "next monday", served, settings, tmp_path / "a.csv")


def test_every_customer_the_business_knows_gets_a_decision_or_a_counted_reason(
    tmp_path: Path,
    demo_logs: Path,
    demo_source: SourceConfig,
    served: ServedModel,
    settings: ServingConfig,
) -> None:
    """Customers of the customers table without any activity yet (a new sign-up, a listed
    prospect without a sign-up date) are scored as customers without history; one who signs
    up after ``as_of`` is not a customer yet and is counted as such. Nobody vanishes."""
    logs = tmp_path / "raw"
    shutil.copytree(demo_logs, logs)
    customers = pd.read_csv(logs / "customers.csv", dtype=str, keep_default_na=False)
    template = customers.iloc[0].to_dict()
    extra = pd.DataFrame(
        [
            {**template, "customer_ref": "NEW-1", "signup_date": "2024-02-20"},
            {**template, "customer_ref": "NEW-2", "signup_date": ""},
            {**template, "customer_ref": "LATER-1", "signup_date": "2024-05-01"},
        ]
    )
    pd.concat([customers, extra]).to_csv(logs / "customers.csv", index=False)
    source = replace(demo_source, path=str(logs))
    out = tmp_path / "week" / "actions.csv"
    result = score_logs(source, AS_OF, served, settings, out)
    decisions = read_decision_log(out.with_name("decisions.csv")).set_index("customer_id")
    assert {"NEW-1", "NEW-2"} <= set(decisions.index)
    assert "LATER-1" not in decisions.index
    table = run_ingest(source).logs.customers  # the canonical customers (identities merged)
    when = pd.Timestamp(AS_OF, tz="UTC")
    later = set(table.loc[table["signup_date"] > when, "customer_id"])
    assert "LATER-1" in later and result.signed_up_later == len(later)
    assert result.without_history >= 2
    assert result.customers == len(decisions)
    summary = json.loads(out.with_name("summary.json").read_text())["scoring"]
    assert summary["without_history"] == result.without_history
    assert summary["signed_up_later"] == len(later)
    listed = set(table["customer_id"])
    assert len(listed & set(decisions.index)) + len(later) == len(listed)  # nobody vanishes
