"""The decision log read back: checks that name file, row and column; groups; contacts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from journeyopt.data.source import ActionSpec, SourceConfig
from journeyopt.errors import InputFileError, JourneyoptError
from journeyopt.monitoring.decisions_contacts import (
    DECISION_LOG_COLUMNS,
    customer_groups,
    decisions_to_contacts,
    read_decisions,
)

ROW = {
    "decision_id": "d1",
    "customer_id": "C1",
    "as_of": "2024-03-04T00:00:00Z",
    "week": "2024-03-04",
    "group": "treatment",
    "action": "newsletter",
    "channel": "email",
    "propensity": "0.8",
    "expected_value": "1.5",
    "model_name": "journey-policy",
    "model_version": "3",
    "probabilities": '{"none": 0.2, "newsletter": 0.8}',
    "arm": "full",
}


def write(tmp_path: Path, rows: list[dict[str, str]], name: str = "decisions.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def rows() -> list[dict[str, str]]:
    return [
        ROW,
        {**ROW, "decision_id": "d2", "customer_id": "C2", "group": "control", "action": "none",
         "channel": "", "propensity": "1.0"},
        {**ROW, "decision_id": "d3", "customer_id": "C1", "week": "2024-03-11",
         "as_of": "2024-03-11T09:30:00Z", "action": "personal_call", "channel": ""},
    ]  # fmt: skip


def source() -> SourceConfig:
    return SourceConfig(
        name="shop",
        path="x",
        contact_channels=["email", "phone"],
        actions={
            "none": ActionSpec(),
            "newsletter": ActionSpec("email", 0.05),
            "personal_call": ActionSpec("phone", 6.0),
        },
    )


def test_read_back_as_contacts(tmp_path: Path) -> None:
    decisions = read_decisions(write(tmp_path, rows()))
    assert list(decisions.columns[: len(DECISION_LOG_COLUMNS)]) == list(DECISION_LOG_COLUMNS)
    contacts = decisions_to_contacts(decisions, source())
    assert list(contacts["action"]) == ["newsletter", "personal_call"]  # none is no contact
    assert list(contacts["campaign"]) == ["treatment", "treatment"]
    assert list(contacts["propensity"]) == [0.8, 0.8]
    assert list(contacts["cost"]) == [0.05, 6.0]
    assert list(contacts["channel"]) == ["email", "phone"]  # empty channel: the catalogue's
    assert contacts["ts"].iloc[1] == pd.Timestamp("2024-03-11T09:30:00Z")
    assert list(contacts["source_row"]) == [1, 3]


def test_groups_and_first_weeks(tmp_path: Path) -> None:
    both = [*rows(), {**ROW, "decision_id": "d4", "customer_id": "C2", "week": "2024-03-11"}]
    decisions = read_decisions(write(tmp_path, both))
    groups, n_both = customer_groups(decisions, pd.Timestamp("2024-03-04", tz="UTC"))
    assert n_both == 1  # C2 was scored in control, then in treatment
    assert groups.to_dict("records") == [
        {
            "customer_id": "C1",
            "group": "treatment",
            "first_week": pd.Timestamp("2024-03-04", tz="UTC"),
            "first_scored": pd.Timestamp("2024-03-04", tz="UTC"),
        }
    ]
    later, _ = customer_groups(decisions, pd.Timestamp("2024-03-11", tz="UTC"))
    c1 = later.set_index("customer_id").loc["C1"]  # first scored before the window
    assert c1["first_week"] == pd.Timestamp("2024-03-11", tz="UTC")
    assert c1["first_scored"] == pd.Timestamp("2024-03-04", tz="UTC")
    with pytest.raises(JourneyoptError, match="since=2024-04-01 is after every decision"):
        customer_groups(decisions, pd.Timestamp("2024-04-01", tz="UTC"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"group": "holdout"}, r"row 2, column group: value 'holdout' fails isin"),
        ({"propensity": "0"}, r"row 2, column propensity: .*0\.0.* fails in_range"),
        ({"week": "2024-03-06"}, r"column week: value '2024-03-06' fails a Monday date"),
        ({"as_of": "yesterday"}, r"row 2, column as_of: cannot read 'yesterday'"),
        ({"probabilities": "[1]"}, r"column probabilities: value '\[1\]' fails a JSON object"),
        ({"customer_id": ""}, r"row 2, column customer_id: value '' fails str_length"),
        ({"decision_id": "d1"}, r"column decision_id: value 'd1' fails field_uniqueness"),
    ],
)
def test_bad_values_name_file_row_and_column(
    tmp_path: Path, change: dict[str, str], match: str
) -> None:
    bad = rows()
    bad[1] = {**bad[1], **change}
    path = write(tmp_path, bad)
    with pytest.raises(InputFileError, match=match) as info:
        read_decisions(path)
    assert str(path) in str(info.value) or "decisions.csv" in str(info.value)


def test_missing_columns_and_files(tmp_path: Path) -> None:
    path = write(tmp_path, [{k: v for k, v in ROW.items() if k != "group"}])
    with pytest.raises(InputFileError, match=r"columns are \[.*\], expected \[.*'group'.*\]"):
        read_decisions(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="no decision-log CSV files"):
        read_decisions(empty)


def test_unknown_action_is_refused(tmp_path: Path) -> None:
    decisions = read_decisions(write(tmp_path, [{**ROW, "action": "carrier_pigeon"}]))
    with pytest.raises(JourneyoptError, match=r"row 1, column 'action': 'carrier_pigeon' is not"):
        decisions_to_contacts(decisions, source())
