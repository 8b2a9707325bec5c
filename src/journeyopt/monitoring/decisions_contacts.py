"""The decision log read back: every scoring decision of the batch scorer and the API, and
the contacts it implies.

A decision log is one or more CSV files (``decisions.csv`` of a batch run, or the API's
``decisions-<YYYY-MM-DD>.csv``) with a header and the columns :data:`DECISION_LOG_COLUMNS`, in
order; one row per scored customer and week, ``none`` decisions and control-group customers
included. ``group`` says which policy decided: ``treatment`` (the champion) or ``control``
(today's staff rules, the A/B holdout).

:func:`read_decisions` reads and checks the files (a problem names the file, data row and
column); :func:`customer_groups` gives each customer's group and first scored week (the start
of their exposure); :func:`decisions_to_contacts` turns the non-``none`` decisions into
canonical contacts (``propensity`` as logged, ``campaign`` = the group) so that the panel,
calibration and off-policy evaluation read the served policy's own logs;
:func:`with_decision_contacts` puts them in place of a source's contacts from a given instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from journeyopt.data.schema import CONTACT_COLUMNS, CONTACTS_SCHEMA, UTC_TS, CanonicalLogs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import InputFileError, JourneyoptError
from journeyopt.reuse import content_key, in_scope, reused
from journeyopt.serving.decisions import DECISION_COLUMNS, read_decision_log
from journeyopt.tracking.tags import fingerprint_files

DECISION_LOG_COLUMNS: tuple[str, ...] = DECISION_COLUMNS
"""Columns of a decision-log CSV file, in order (the contract shared with serving)."""
GROUPS: tuple[str, ...] = ("treatment", "control")
"""Serving groups: the champion's customers and the A/B holdout under the staff rules."""
WEEK = pd.Timedelta(days=7)


def decision_files(path: Path | str) -> list[Path]:
    """The decision-log files at ``path``: the file itself, or every ``*.csv`` in a folder
    (sorted by name).

    Raises:
        InputFileError: ``path`` does not exist, or a folder holds no CSV file.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputFileError(str(path), "no such decision-log file or folder")
    files = sorted(p for p in path.glob("*.csv") if p.is_file())
    if not files:
        raise InputFileError(str(path), "no decision-log CSV files (*.csv) in this folder")
    return files


def _read_file(path: Path) -> pd.DataFrame:
    """One decision-log file through the serving reader
    (:func:`journeyopt.serving.decisions.read_decision_log`: columns, types and values checked,
    errors naming file, row and column), with ``week`` as a UTC timestamp and the file name and
    1-based data row of every decision (``source_file``, ``source_row``)."""
    frame = read_decision_log(path)
    frame["as_of"] = frame["as_of"].astype(UTC_TS)
    frame["week"] = pd.to_datetime(frame["week"], format="%Y-%m-%d", utc=True).astype(UTC_TS)
    frame["source_file"] = path.name
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def read_decisions(paths: Sequence[Path | str] | Path | str) -> pd.DataFrame:
    """Read and check decision-log files (a folder reads every ``*.csv`` in it: a batch run's
    ``decisions.csv`` and the API's ``decisions-<day>.csv`` alike).

    Returns:
        The columns :data:`DECISION_LOG_COLUMNS` (``as_of`` and ``week`` UTC timestamps,
        ``propensity`` and ``expected_value`` floats, the rest strings) plus ``source_file``
        and ``source_row`` (1-based data row), every file's rows in file order.

    Raises:
        InputFileError: A missing file or column, or a bad value (naming file, row, column),
            or a ``decision_id`` that occurs twice.
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    files = [f for item in items for f in decision_files(item)]
    if not in_scope():
        return _read_files(files)
    # a weekly cycle's rollout and uplift steps read the same log: read once per content
    key = content_key(repr([str(f.resolve()) for f in files]), fingerprint_files(files))
    return reused("decisions", key, lambda: _read_files(files), lambda frame: frame.copy())


def _read_files(files: list[Path]) -> pd.DataFrame:
    """:func:`read_decisions` of the decision-log ``files``."""
    frame = pd.concat([_read_file(f) for f in files], ignore_index=True)
    if frame.empty:
        raise InputFileError(", ".join(str(f) for f in files), "the decision log has no rows")
    twice = frame["decision_id"].duplicated(keep="first")
    if twice.any():
        row = frame.loc[twice].iloc[0]
        raise InputFileError(
            str(row["source_file"]),
            f"row {row['source_row']}, column 'decision_id': {row['decision_id']!r} "
            "occurs more than once in the decision log",
        )
    return frame


def customer_groups(decisions: pd.DataFrame, since: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """Each customer's serving group, first scored week at or after ``since``, and first
    scored week of the whole decision log (when the assignment started to act on them).

    Customers scored in both groups (a change of the holdout assignment) cannot be
    attributed to one policy and are left out; their number is returned.

    Args:
        decisions: Output of :func:`read_decisions`.
        since: UTC instant; decisions of earlier weeks are ignored.

    Returns:
        ``(groups, n_in_both)``: columns ``customer_id``, ``group``, ``first_week`` (UTC
        Monday), ``first_scored`` (UTC Monday, at or before ``first_week``), one row per
        customer scored at or after ``since``.

    Raises:
        JourneyoptError: No decision of a week ending after ``since``.
    """
    recent = decisions[decisions["week"] + WEEK > since]
    if recent.empty:
        last = decisions["week"].max()
        raise JourneyoptError(
            f"since={since.date()} is after every decision in the decision log "
            f"(the last is of the week starting {last.date()})"
        )
    per = recent.groupby("customer_id", sort=True).agg(
        group=("group", "first"), n_groups=("group", "nunique"), first_week=("week", "min")
    )
    per["first_scored"] = decisions.groupby("customer_id")["week"].min().reindex(per.index)
    both = per["n_groups"] > 1
    kept = per.loc[~both, ["group", "first_week", "first_scored"]].reset_index()
    return kept, int(both.sum())


def decisions_to_contacts(decisions: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    """Canonical contacts of the non-``none`` decisions.

    ``ts`` is the decision's ``as_of`` when it lies in the decision's week, else the week's
    Monday 00:00 UTC (the contact belongs to the week it was decided for); ``channel`` as
    logged (the catalogue's when empty); ``cost`` from the source's action catalogue;
    ``propensity`` as logged; ``campaign`` the serving group.

    Raises:
        JourneyoptError: A decision's action is not in the source's catalogue.
    """
    contacted = decisions[decisions["action"] != "none"]
    unknown = sorted(set(contacted["action"]) - set(source.actions))
    if unknown:
        row = contacted[contacted["action"] == unknown[0]].iloc[0]
        raise JourneyoptError(
            f"{row['source_file']}: row {row['source_row']}, column 'action': {unknown[0]!r} "
            f"is not in the action catalogue of data={source.name} ({list(source.actions)})"
        )
    in_week = (contacted["as_of"] >= contacted["week"]) & (
        contacted["as_of"] < contacted["week"] + WEEK
    )
    catalogue_channel = contacted["action"].map({a: s.channel for a, s in source.actions.items()})
    channel = contacted["channel"].where(contacted["channel"] != "", catalogue_channel)
    frame = pd.DataFrame(
        {
            "customer_id": contacted["customer_id"].astype("str"),
            "ts": contacted["as_of"].where(in_week, contacted["week"]).astype(UTC_TS),
            "action": contacted["action"].astype("str"),
            "channel": channel.astype("str"),
            "cost": contacted["action"].map({a: s.cost for a, s in source.actions.items()}),
            "propensity": contacted["propensity"].astype(np.float64),
            "campaign": contacted["group"].astype("str"),
            "source_file": contacted["source_file"].astype("str"),
            "source_row": contacted["source_row"].astype(np.int64),
        }
    ).astype({"cost": np.float64})
    return CONTACTS_SCHEMA.validate(frame.loc[:, list(CONTACT_COLUMNS)].reset_index(drop=True))


def with_decision_contacts(
    logs: CanonicalLogs, contacts: pd.DataFrame, start: pd.Timestamp
) -> CanonicalLogs:
    """``logs`` whose contacts from ``start`` on are ``contacts`` (the decision log's) and
    before it the source's own: the served policy's record replaces whatever the source
    exported for the same period, so no contact is counted twice."""
    before = logs.contacts[logs.contacts["ts"] < start]
    after = contacts[contacts["ts"] >= start]
    merged = pd.concat([before, after], ignore_index=True).sort_values("ts", kind="stable")
    return CanonicalLogs(
        events=logs.events,
        contacts=CONTACTS_SCHEMA.validate(merged.reset_index(drop=True)),
        customers=logs.customers,
    )
