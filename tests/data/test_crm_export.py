"""A CRM's own export shapes: one activity file holding events and contacts, the export's own
action names, decimal commas, a table with its own date format; and the example export that
ships with journeyopt (``data=coworking_crm``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyopt.data.ingest import ingest_to_logs, run_ingest
from journeyopt.data.normalise import parse_amounts, parse_propensities
from journeyopt.data.source import ActionSpec, SourceConfig, TableMapping
from journeyopt.errors import ConfigError
from tests.data.conftest import LoadSource

HEADER = "Kunde;Zeit;Vorgang;Betrag;p"
ROWS = [
    "K1;02.05.2024 09:15;Besuch;;",
    "K1;03.05.2024 18:00;Kauf;1.049,90;",
    "K1;06.05.2024 08:00;Newsletter;;0,25",
    "K2;06.05.2024 08:00;newsletter;;",  # a catalogue name maps to itself
    "K2;07.05.2024 10:00;Anruf;;",
    "K2;08.05.2024 11:00;Kaffee;2,50;",  # neither an event kind nor an action
    "K2;09.05.2024 11:00;Kauf;49.90;",  # a decimal point in a decimal-comma export
    "K3;10.05.2024 12:00;Kauf;25;;extra",  # one field too many
]


def _activity_source(path: Path, **changes: object) -> SourceConfig:
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    fields: dict[str, object] = {
        "name": "crm",
        "path": str(path),
        "delimiter": ";",
        "decimal": ",",
        "timezone": "Europe/Berlin",
        "timestamp_format": "%d.%m.%Y %H:%M",
        "as_of": "2024-06-01",
        "events": TableMapping(
            file=path.name,
            columns={"customer_id": "Kunde", "ts": "Zeit", "kind": "Vorgang", "value": "Betrag"},
        ),
        "contacts": TableMapping(
            file=path.name,
            columns={"customer_id": "Kunde", "ts": "Zeit", "action": "Vorgang", "propensity": "p"},
        ),
        "event_roles": {"Besuch": "engagement", "Kauf": "conversion"},
        "contact_channels": ["email", "phone"],
        "actions": {
            "none": ActionSpec(),
            "newsletter": ActionSpec("email", 0.05),
            "personal_call": ActionSpec("phone", 6.0),
        },
        "contact_actions": {"Newsletter": "newsletter", "Anruf": "personal_call"},
    }
    fields.update(changes)
    return SourceConfig(**fields)  # type: ignore[arg-type]


def test_one_activity_file_is_split_into_events_and_contacts(tmp_path: Path) -> None:
    output = run_ingest(_activity_source(tmp_path / "export.csv"))
    result, logs = output.result, output.logs
    assert result.events.rows_read + result.contacts.rows_read == len(ROWS)
    assert (result.contacts.rows_read, result.contacts.accepted) == (3, 3)
    assert (result.events.rows_read, result.events.accepted, result.events.rejected) == (5, 2, 3)
    contacts = logs.contacts.sort_values("ts")
    assert contacts["action"].astype(str).tolist() == [
        "newsletter",
        "newsletter",
        "personal_call",
    ]
    assert contacts["channel"].astype(str).tolist() == ["email", "email", "phone"]
    assert contacts["cost"].tolist() == [0.05, 0.05, 6.0]
    np.testing.assert_allclose(contacts["propensity"], [0.25, np.nan, np.nan])
    events = logs.events.sort_values("ts")
    assert events["value"].tolist() == [0.0, 1049.9]  # 1.049,90
    assert str(events["ts"].iloc[0]) == "2024-05-02 07:15:00+00:00"  # Berlin summer time
    reasons = dict(zip(output.rejects["source_row"], output.rejects["reason"], strict=True))
    assert reasons[6].startswith("unknown kind 'Kaffee' (expected an event kind")
    assert "or an action" in reasons[6] and "Anruf" in reasons[6]
    assert reasons[7] == "not a number"  # 49.90 is ambiguous with decimal=","
    assert reasons[8].startswith("ragged row")


def test_one_activity_file_with_the_contacts_on_a_forked_process(tmp_path: Path) -> None:
    """The activity export is read once; its contacts are parsed on a forked process: the
    same output as on one process."""
    source = _activity_source(tmp_path / "export.csv")
    alone, beside = run_ingest(source), run_ingest(source, workers=2)
    for table in ("events", "contacts", "customers"):
        pd.testing.assert_frame_equal(getattr(alone.logs, table), getattr(beside.logs, table))
    pd.testing.assert_frame_equal(alone.rejects, beside.rejects)
    assert alone.result == beside.result


def test_separate_files_are_not_split(tmp_path: Path) -> None:
    """Contacts in a file of their own: every row is read as a contact, as before."""
    source = _activity_source(tmp_path / "export.csv")
    (tmp_path / "contacts.csv").write_text(
        "Kunde;Zeit;Aktion\nK1;06.05.2024 08:00;Newsletter\nK1;07.05.2024 08:00;Flyer\n",
        encoding="utf-8",
    )
    source.contacts = TableMapping(
        file="contacts.csv", columns={"customer_id": "Kunde", "ts": "Zeit", "action": "Aktion"}
    )
    output = run_ingest(source)
    assert output.result.events.rows_read == len(ROWS)
    assert (output.result.contacts.rows_read, output.result.contacts.rejected) == (2, 1)
    flyer = output.rejects[output.rejects["table"] == "contacts"]["reason"].iloc[0]
    assert flyer.startswith("unknown action 'Flyer'") and "Newsletter" in flyer


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"contact_actions": {"Anruf": "call"}}, r"contact_actions: \{'Anruf': 'call'\} map onto"),
        ({"decimal": ";"}, "data.decimal must be one of"),
    ],
)
def test_invalid_action_names_and_decimal(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _activity_source(tmp_path / "export.csv", **changes)


def test_a_name_that_is_both_an_event_and_an_action_is_refused(tmp_path: Path) -> None:
    source = _activity_source(
        tmp_path / "export.csv", event_roles={"Besuch": "engagement", "Anruf": "engagement"}
    )
    with pytest.raises(ConfigError, match=r"\['Anruf'\] are both event kinds"):
        run_ingest(source)


def test_shared_file_needs_the_action_column(tmp_path: Path) -> None:
    source = _activity_source(tmp_path / "export.csv")
    source.contacts = TableMapping(
        file="export.csv",
        columns={"customer_id": "Kunde", "ts": "Zeit"},
        defaults={"action": "newsletter"},
    )
    with pytest.raises(ConfigError, match=r"contacts\.columns\.action must be mapped"):
        run_ingest(source)


@pytest.mark.parametrize(
    ("raw", "amount"),
    [("49,90", 49.9), ("1.890,60", 1890.6), ("12.345.678,5", 12345678.5), ("7", 7.0), ("", 0.0)],
)
def test_decimal_comma_amounts(raw: str, amount: float) -> None:
    value, reason = parse_amounts(pd.Series([raw]), 1e9, decimal=",")
    assert reason.iloc[0] == "" and value.iloc[0] == pytest.approx(amount)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("49.90", "not a number"), ("1,2,3", "not a number"), ("-5,00", "negative"), ("nan", "NaN")],
)
def test_decimal_comma_refusals(raw: str, reason: str) -> None:
    assert parse_amounts(pd.Series([raw]), 1e9, decimal=",")[1].iloc[0] == reason


def test_decimal_comma_hint_with_the_default_separator() -> None:
    _, reason = parse_amounts(pd.Series(["49,90", "abc", "12.5"]), 1e9)
    assert reason.tolist() == [
        "not a number (a decimal comma? set data.decimal=',')",
        "not a number",
        "",
    ]
    assert parse_propensities(pd.Series(["0,3"]), ",")[0].iloc[0] == pytest.approx(0.3)


def test_a_table_with_its_own_date_format(tmp_path: Path) -> None:
    source = _activity_source(tmp_path / "export.csv")
    (tmp_path / "kunden.csv").write_text(
        "Kunde;Typ;Seit\nK1;Startup;24.03.2023\nK2;Firma;\n", encoding="utf-8"
    )
    source.customers = TableMapping(
        file="kunden.csv",
        timestamp_format="%d.%m.%Y",
        columns={"customer_id": "Kunde", "segment": "Typ", "signup_date": "Seit"},
    )
    logs, result = ingest_to_logs(source)
    assert result.customers.accepted == 2
    signup = logs.customers.set_index("customer_id")["signup_date"]
    assert str(signup["K1"]) == "2023-03-23 23:00:00+00:00" and pd.isna(signup["K2"])


def test_the_shipped_example_export(load_source: LoadSource) -> None:
    """``data=coworking_crm`` ingests the shipped export with the counts the README quotes."""
    logs, result = ingest_to_logs(load_source("coworking_crm"))
    assert result.events.rows_read + result.contacts.rows_read == 3369
    assert (result.events.accepted, result.events.rejected) == (1143, 10)
    assert result.events.duplicates_exact == 6
    assert (result.contacts.accepted, result.contacts.rejected) == (2210, 0)
    assert (result.resolved_customers, result.raw_ids_merged) == (130, 4)
    assert set(logs.customers["segment"]) == {"Freelancer", "Startup", "Firma"}
    assert logs.contacts["propensity"].notna().all()
    assert sorted(set(logs.contacts["action"].astype(str))) == [
        "discount_offer",
        "newsletter",
        "personal_call",
        "personal_email",
    ]
