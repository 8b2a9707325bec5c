"""Counts of one ingestion run; they reconcile by construction and are checked on creation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

TABLES: tuple[str, ...] = ("events", "contacts", "customers", "identities")


@dataclass(frozen=True)
class TableCounts:
    """Where the rows of one table went.

    ``rows_read = accepted + rejected + duplicates_exact + duplicates_event_id
    + duplicates_near + merged`` always holds (checked in ``__post_init__``).

    Attributes:
        rows_read: Data rows in the source files (header lines and the final newline excluded).
        accepted: Rows written to the canonical table.
        rejected: Rows quarantined in ``rejects.csv``.
        duplicates_exact: Rows identical to an earlier row (``dedup.exact``).
        duplicates_event_id: Rows repeating an earlier ``event_id``.
        duplicates_near: Rows repeating an event of the same customer within
            ``dedup.near_duplicate_seconds``.
        merged: Rows folded into another row: same-day conversions (events, with
            ``dedup.merge_same_day_conversions``) or records of one resolved customer
            (customers).
    """

    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates_exact: int = 0
    duplicates_event_id: int = 0
    duplicates_near: int = 0
    merged: int = 0

    def __post_init__(self) -> None:
        parts = [getattr(self, f.name) for f in fields(self) if f.name != "rows_read"]
        if min([*parts, self.rows_read]) < 0 or sum(parts) != self.rows_read:
            raise RuntimeError(f"ingestion counts do not reconcile: {self}")


@dataclass(frozen=True)
class IngestResult:
    """Summary of one ingestion run (what ``summary.json`` holds).

    Attributes:
        source: Source name.
        as_of: The as-of instant used (ISO 8601, UTC).
        events, contacts, customers, identities: Row counts per table.
        resolved_customers: Distinct resolved ``customer_id`` values over events, contacts and
            customers.
        raw_ids: Distinct raw ids in the identities table.
        raw_ids_merged: Raw ids merged into another raw id's customer.
        overshared_identifiers: Identifiers ignored because too many raw ids share them.
        rejects_by_reason: Rejected rows per reason (``"<table>: <reason>"`` -> count), the 20
            most frequent.
        output_dir: Where the tables were written (empty for in-memory runs).
        contact_channels: The source's contact channels (``data.contact_channels``), recorded
            so that later steps (the panel) use the channels the source declares.
        events_by_role: Accepted events per role (``conversion``, ``refund``, …), the roles
            with at least one event; they add up to ``events.accepted``.
    """

    source: str
    as_of: str
    events: TableCounts
    contacts: TableCounts = field(default_factory=TableCounts)
    customers: TableCounts = field(default_factory=TableCounts)
    identities: TableCounts = field(default_factory=TableCounts)
    resolved_customers: int = 0
    raw_ids: int = 0
    raw_ids_merged: int = 0
    overshared_identifiers: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    output_dir: str = ""
    contact_channels: tuple[str, ...] = ()
    events_by_role: dict[str, int] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        """Rejected rows over all tables."""
        return sum(self.table(t).rejected for t in TABLES)

    def table(self, name: str) -> TableCounts:
        """Counts of table ``name`` (one of :data:`TABLES`)."""
        counts = getattr(self, name)
        assert isinstance(counts, TableCounts)
        return counts

    def summary_dict(self) -> dict[str, object]:
        """A JSON-serialisable dict of every count."""
        return asdict(self)
