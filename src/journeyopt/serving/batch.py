"""Batch scoring: raw logs -> this week's contact list.

``ingest`` (the data layer's validation, with rejects) -> panel state at ``as_of``
(:func:`journeyopt.panel.build.state_at`) -> :class:`~journeyopt.serving.scorer.Scorer`
(policy, staff rules for the control group, guards) -> files beside ``out``:

- ``out`` (e.g. ``actions.csv``): the contact list for an e-mail tool or CRM, one row per
  customer to contact: :data:`CONTACT_LIST_COLUMNS`;
- ``decisions.csv``: every decision, ``none`` and control group included (the decision log,
  see :mod:`journeyopt.serving.decisions`);
- ``rejects.csv``: input rows the ingestion rejected, with file, row, column and reason;
- ``summary.json``: counts (ingestion, customers scored, decisions by group and action).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from journeyopt.data.ingest import run_ingest
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError, OutputExistsError
from journeyopt.outputs import staged_output_files
from journeyopt.panel.config import parse_as_of
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import decision_arms, decision_table, write_decisions
from journeyopt.serving.features import batch_from_logs
from journeyopt.serving.guards import arm_capacities
from journeyopt.serving.holdout import GROUPS
from journeyopt.serving.rollout import ARMS
from journeyopt.serving.scorer import CustomerBatch, Decisions, Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.rules import REASONS

CONTACT_LIST_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "action",
    "channel",
    "expected_value",
    "group",
    "model_version",
    "model_name",
)
SIDE_FILES: tuple[str, ...] = ("decisions.csv", "rejects.csv", "summary.json")


@dataclass(frozen=True)
class ScoreResult:
    """What one batch scoring run did.

    Attributes:
        out: The contact list written.
        customers: Customers scored: everyone known at ``as_of`` (activity before it, or
            listed in the customers table and signed up by then or without a sign-up date).
        unknown: Of them, customers given the safe default (unknown customer type).
        without_history: Of them, customers of the customers table with no activity yet,
            scored as customers without history.
        signed_up_later: Customers of the customers table not scored because their sign-up
            date is after ``as_of`` (not yet customers then).
        contacts: Rows of the contact list (decisions other than ``none``).
        by_group: Group -> customers.
        by_action: Action -> customers.
        by_arm: Staged-rollout arm (``control``, ``full``, ``canary``, ``previous``) ->
            customers (see :mod:`journeyopt.serving.rollout`).
        overridden: Decisions the guards changed (to ``none``, or to the next-best action
            when a weekly capacity was full).
        refused: Action -> reason (:data:`journeyopt.sim.rules.REASONS`: ``opted_out``,
            ``quiet_week``, ``not_eligible``, ``frequency_cap``, ``capacity``...) -> known
            customers the contact rules refused the action for, for that reason.
        capacity: Action with a weekly capacity -> arm -> ``{"share": its share of the
            capacity, "given": customers of the arm given the action}`` (every arm's share is
            in proportion to its customers, :func:`journeyopt.serving.guards.arm_capacities`).
        rows_rejected: Input rows the ingestion rejected.
        model_name, model_version, model_sha256: The policy served.
        as_of: The as-of instant (ISO 8601, UTC).
    """

    out: str
    customers: int
    unknown: int
    contacts: int
    without_history: int = 0
    signed_up_later: int = 0
    by_group: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)
    by_arm: dict[str, int] = field(default_factory=dict)
    overridden: int = 0
    refused: dict[str, dict[str, int]] = field(default_factory=dict)
    capacity: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    rows_rejected: int = 0
    model_name: str = ""
    model_version: str = ""
    model_sha256: str = ""
    as_of: str = ""


def refused_counts(decisions: Decisions, action_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Action -> reason -> known customers the contact rules refused the action for (reasons
    of :data:`journeyopt.sim.rules.REASONS`; unknown customers are counted in ``unknown``)."""
    known = decisions.reasons[decisions.batch.known].astype(np.int64)
    out: dict[str, dict[str, int]] = {}
    for a, name in enumerate(action_names[1:], start=1):
        counts = np.bincount(known[:, a], minlength=len(REASONS))
        out[name] = {REASONS[k]: int(c) for k, c in enumerate(counts) if k and c}
    return out


def capacity_use(
    decisions: Decisions, limits: NDArray[np.int64], action_names: Sequence[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """Action with a capacity (``limits[a] >= 0``) -> arm -> its share of the capacity and the
    customers of the arm given the action (see :attr:`ScoreResult.capacity`)."""
    arm = decision_arms(decisions)
    codes, sizes = np.unique(arm, return_counts=True)
    shares = arm_capacities(limits, sizes)
    return {
        name: {
            ARMS[int(c)]: {
                "share": int(shares[g, a]),
                "given": int(np.count_nonzero((arm == c) & (decisions.actions == a))),
            }
            for g, c in enumerate(codes)
        }
        for a, name in enumerate(action_names)
        if limits[a] >= 0
    }


def output_paths(out: Path) -> list[Path]:
    """The contact list and the files written beside it."""
    return [out, *(out.with_name(name) for name in SIDE_FILES)]


def check_outputs(out: Path, overwrite: bool) -> None:
    """Refuse to replace existing output files unless ``overwrite``, and an ``out`` that is a
    folder or whose name collides with a side file."""
    if out.name in SIDE_FILES:
        raise ConfigError(f"out={out}: choose another name than {', '.join(SIDE_FILES)}")
    if out.is_dir():
        raise OutputExistsError(f"out={out} is a folder; give the contact list's file name")
    existing = [p for p in output_paths(out) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{', '.join(map(str, existing))} already exist; choose another out or pass "
            "overwrite=true to replace them"
        )


def contact_list(decision_log: pa.Table) -> pa.Table:
    """The contact list: decisions other than ``none``, columns :data:`CONTACT_LIST_COLUMNS`."""
    rows = decision_log.filter(pc.not_equal(decision_log["action"], "none"))
    return rows.select(list(CONTACT_LIST_COLUMNS))


def _counts(names: Sequence[str], codes: NDArray[np.int64]) -> dict[str, int]:
    """Occurrences of each name of the (N,) name indices ``codes``."""
    counts = np.bincount(codes, minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts, strict=True)}


def without_history(batch: CustomerBatch) -> NDArray[np.bool_]:
    """(N,) customers with nothing before the as-of week: no conversion, contact or
    engagement (a new sign-up, a listed prospect)."""
    f = batch.features
    return (
        (np.asarray(f["n_conversions"]) == 0)
        & np.isnan(np.asarray(f["weeks_since_contact"], np.float64))
        & np.isnan(np.asarray(f["weeks_since_engagement"], np.float64))
    )


def score_logs(
    source: SourceConfig,
    as_of: str,
    model: ServedModel,
    settings: ServingConfig,
    out: Path,
    overwrite: bool = False,
) -> ScoreResult:
    """Score every customer of ``source``'s logs at ``as_of`` and write the outputs.

    Raises:
        ConfigError: The source's contact channels are not the world's.
        OutputExistsError: An output file exists and ``overwrite`` is false.
    """
    check_outputs(out, overwrite)
    when = parse_as_of(as_of)
    scorer = Scorer(model, settings)
    if set(source.contact_channels) != set(scorer.world.channels):
        raise ConfigError(
            f"data.contact_channels {list(source.contact_channels)} differ from the channels "
            f"{list(scorer.world.channels)} of world {scorer.world.name!r} the policy serves"
        )
    ingested = run_ingest(source)
    logs = ingested.logs
    batch = batch_from_logs(logs, scorer.world, when)
    listed = pd.Index(logs.customers["customer_id"].astype(str).unique())
    decisions = scorer.score(batch)
    table = decision_table(
        decisions, scorer.action_names, scorer.channels, model.name, model.version
    )
    contacts = contact_list(table)
    result = ScoreResult(
        out=str(out),
        customers=batch.n,
        unknown=int((~batch.known).sum()),
        contacts=contacts.num_rows,
        without_history=int(np.count_nonzero(without_history(batch))),
        signed_up_later=int((~listed.isin(pd.Index(batch.customer_ids))).sum()),
        by_group=_counts(GROUPS, decisions.control.astype(np.int64)),
        by_action=_counts(scorer.action_names, decisions.actions),
        by_arm={k: v for k, v in _counts(ARMS, decision_arms(decisions)).items() if v},
        overridden=int(np.count_nonzero(decisions.overridden)),
        refused=refused_counts(decisions, scorer.action_names),
        capacity=capacity_use(decisions, scorer.rules.capacity_limits, scorer.action_names),
        rows_rejected=ingested.result.rows_rejected,
        model_name=model.name,
        model_version=model.version,
        model_sha256=model.content_sha256,
        as_of=when.isoformat(),
    )
    summary = {"scoring": asdict(result), "ingest": ingested.result.summary_dict()}
    # all four files or none: written beside their places, renamed into them at the end
    with staged_output_files(output_paths(out)) as (contacts_csv, decisions_csv, rejects, info):
        pacsv.write_csv(contacts, str(contacts_csv), pacsv.WriteOptions(quoting_style="needed"))
        write_decisions(table, decisions_csv)
        ingested.rejects.to_csv(rejects, index=False)
        info.write_text(json.dumps(summary, indent=2) + "\n")
    return result
