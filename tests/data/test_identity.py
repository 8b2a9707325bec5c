"""Identity resolution: transitive merges, no false merges, over-shared identifiers ignored."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyopt.data.identity import apply_mapping, merge_customer_records, resolve_identities
from journeyopt.data.source import IdentityConfig


def _identities(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["raw_id", "email", "phone", "external_id"]).astype("str")


def _customer_of(rows: list[tuple[str, str, str, str]], **config: int) -> dict[str, str]:
    # German-formatted numbers (030 ... and +49 30 ...): the country is the source's to set
    settings = IdentityConfig(phone_default_country_code="49", **config)  # type: ignore[arg-type]
    resolution = resolve_identities(_identities(rows), settings)
    return dict(zip(resolution.mapping["raw_id"], resolution.mapping["customer_id"], strict=True))


def test_transitive_merge_email_then_phone() -> None:
    rows = [
        ("A", "Anna@Example.com", "", ""),
        ("B", "anna+crm@example.com", "030 1234567", ""),
        ("C", "", "+49 30 1234567", ""),
        ("D", "dora@example.com", "030 7654321", "crm-9"),
    ]
    resolution = resolve_identities(
        _identities(rows), IdentityConfig(phone_default_country_code="49")
    )
    assert dict(
        zip(resolution.mapping["raw_id"], resolution.mapping["customer_id"], strict=True)
    ) == {
        "A": "A",
        "B": "A",
        "C": "A",
        "D": "D",
    }
    assert resolution.n_customers == 2 and resolution.n_merged == 2
    links = resolution.links
    assert set(links.loc[links["identifier_type"] == "email", "raw_id"]) == {"A", "B"}
    assert set(links.loc[links["identifier_type"] == "phone", "raw_id"]) == {"B", "C"}
    assert (links["status"] == "linked").all()


def test_overshared_identifier_links_nothing() -> None:
    rows = [(f"r{i}", "frontdesk@space.com", "", "") for i in range(4)] + [
        ("r0", "", "", "x1"),
        ("r9", "", "", "x1"),
    ]
    resolution = resolve_identities(_identities(rows), IdentityConfig(max_records_per_identifier=3))
    mapping = dict(
        zip(resolution.mapping["raw_id"], resolution.mapping["customer_id"], strict=True)
    )
    assert mapping == {"r0": "r0", "r1": "r1", "r2": "r2", "r3": "r3", "r9": "r0"}
    assert resolution.n_overshared == 1
    ignored = resolution.links[resolution.links["status"].str.startswith("ignored")]
    assert len(ignored) == 4
    assert (
        ignored["status"].iloc[0] == "ignored: shared by 4 raw ids > max_records_per_identifier=3"
    )


def test_apply_mapping_leaves_unknown_ids() -> None:
    mapping = pd.DataFrame({"raw_id": ["b", "c"], "customer_id": ["a", "a"]})
    got = apply_mapping(pd.Series(["c", "z", "b", "c"], dtype="str"), mapping)
    assert got.tolist() == ["a", "z", "a", "a"]


def test_merge_customer_records_earliest_signup_first_attributes() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "segment": ["", "freelancer", "startup"],
            "company_size": ["1", "5", ""],
            "signup_date": pd.to_datetime(["2024-02-01", "2024-01-01", None], utc=True),
            "acquisition_channel": ["web", "", "ads"],
        }
    )
    merged, n = merge_customer_records(customers)
    assert n == 1
    row = merged.set_index("customer_id").loc["a"]
    assert row["segment"] == "freelancer" and row["company_size"] == "1"
    assert row["signup_date"] == pd.Timestamp("2024-01-01", tz="UTC")


# A population of people, each with a distinct e-mail, phone and CRM id; every raw record
# carries a random non-empty subset of its person's identifiers, in random formatting.
RECORD = st.tuples(
    st.integers(0, 7),  # person
    st.booleans(),  # has e-mail
    st.booleans(),  # has phone
    st.booleans(),  # has CRM id
    st.integers(0, 2),  # formatting variant
)


def _record(person: int, email: bool, phone: bool, crm: bool, variant: int) -> tuple[str, str, str]:
    mail = [f"p{person}@mail.com", f" P{person}+x@Mail.COM", f"p{person}+news@mail.com"][variant]
    tel = [f"030 55{person:03d}", f"+49 30 55{person:03d}", f"0049-30-55{person:03d}"][variant]
    return (mail if email else "", tel if phone else "", f"crm{person}" if crm else "")


@settings(max_examples=60, deadline=None)
@given(records=st.lists(RECORD, min_size=1, max_size=40), shuffle_seed=st.integers(0, 2**16))
def test_resolution_recovers_people(
    records: list[tuple[int, bool, bool, bool, int]], shuffle_seed: int
) -> None:
    rows = [
        (f"raw{i:03d}", *_record(*rec)) if any(rec[1:4]) else (f"raw{i:03d}", "", "", "")
        for i, rec in enumerate(records)
    ]
    person = {f"raw{i:03d}": rec[0] for i, rec in enumerate(records)}
    customer = _customer_of(rows)
    # no false merges: one customer never spans two people
    by_customer: dict[str, set[int]] = {}
    for raw_id, cust in customer.items():
        by_customer.setdefault(cust, set()).add(person[raw_id])
    assert all(len(people) == 1 for people in by_customer.values())
    # records of one person sharing an identifier type are always merged
    for kind in (1, 2, 3):
        holders: dict[int, set[str]] = {}
        for i, rec in enumerate(records):
            if rec[kind]:
                holders.setdefault(rec[0], set()).add(customer[f"raw{i:03d}"])
        assert all(len(c) == 1 for c in holders.values())
    # the representative is the component's smallest raw id, and row order does not matter
    assert all(
        cust == min(r for r, c in customer.items() if c == cust) for cust in customer.values()
    )
    shuffled = pd.DataFrame(rows).sample(frac=1.0, random_state=shuffle_seed)
    assert _customer_of(list(shuffled.itertuples(index=False, name=None))) == customer
