"""Ingestion: a source's raw files -> validated canonical tables, rejects, identity map, counts.

Pipeline (:func:`run_ingest`), per table: read (whole-file checks; events and contacts mapped
onto one activity export are read once and split by action name, see
:func:`~journeyopt.data.read.split_activity`) -> parse and check values
(bad rows to rejects) -> exact duplicates -> duplicate ``event_id`` -> identity resolution ->
near-duplicates -> same-day conversion merge (see :mod:`journeyopt.data.dedup`). Counts are
reconciled per table (:class:`~journeyopt.data.result.TableCounts`) and the canonical tables are
validated against the pandera schemas of :mod:`journeyopt.data.schema`.

Output folder written by :func:`ingest`: ``events.parquet``, ``contacts.parquet``,
``customers.parquet``, ``identity_map.parquet``, ``identity_links.parquet``, ``rejects.csv``
(always, possibly with no rows) and ``summary.json``. :func:`load_canonical` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pyarrow

from journeyopt.data.dedup import (
    drop_duplicate_ids,
    drop_exact,
    drop_near_duplicates,
    merge_same_day_conversions,
    split_oversized_days,
)
from journeyopt.data.identity import (
    IdentityResolution,
    apply_mapping,
    empty_resolution,
    merge_customer_records,
    resolve_identities,
)
from journeyopt.data.read import (
    RawTable,
    read_activity,
    read_table,
    resolve_files,
    shares_events_files,
)
from journeyopt.data.rejects import (
    FILE_COL,
    ROW_COL,
    concat_rejects,
    empty_rejects,
    make_rejects,
    raw_text,
)
from journeyopt.data.result import TABLES, IngestResult, TableCounts
from journeyopt.data.schema import (
    CONTACTS_SCHEMA,
    CUSTOMER_COLUMNS,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    ROLES,
    UTC_TS,
    CanonicalLogs,
    empty_contacts,
    empty_customers,
)
from journeyopt.data.source import SourceConfig
from journeyopt.data.tables import (
    parse_contacts,
    parse_customers,
    parse_events,
    parse_identities,
    resolve_as_of,
)
from journeyopt.errors import ConfigError, InputFileError, OutputExistsError
from journeyopt.outputs import check_output_dir, staged_output_dir
from journeyopt.parallel import start_task
from journeyopt.reuse import content_key, in_scope, reused
from journeyopt.tracking.tags import fingerprint_files

OUTPUT_FILES: tuple[str, ...] = (
    "events.parquet",
    "contacts.parquet",
    "customers.parquet",
    "identity_map.parquet",
    "identity_links.parquet",
    "rejects.csv",
    "summary.json",
)


@dataclass(frozen=True)
class IngestOutput:
    """Everything one ingestion run produces, in memory.

    Attributes:
        logs: The canonical events, contacts and customers.
        identity: The identity map and the explanation of every merge.
        rejects: Rejected rows (columns :data:`~journeyopt.data.rejects.REJECT_COLUMNS`).
        result: The counts.
    """

    logs: CanonicalLogs
    identity: IdentityResolution
    rejects: pd.DataFrame
    result: IngestResult


def _check_mapping(source: SourceConfig) -> None:
    for column in ("customer_id", "ts"):
        if column not in source.events.columns:
            raise ConfigError(f"data.events.columns must map the canonical column {column!r}")
    if "kind" not in source.events.columns and "kind" not in source.events.defaults:
        raise ConfigError("data.events needs columns.kind or defaults.kind")


def _events(
    source: SourceConfig,
    as_of: pd.Timestamp,
    identity: IdentityResolution,
    raw: RawTable,
    shared: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, TableCounts]:
    parsed = parse_events(raw, source, as_of, shared=shared)
    frame, n_exact = drop_exact(parsed.frame) if source.dedup.exact else (parsed.frame, 0)
    frame, n_id = drop_duplicate_ids(frame)
    frame["customer_id"] = apply_mapping(frame["customer_id"], identity.mapping)
    frame, n_near = drop_near_duplicates(
        frame, ["customer_id", "kind", "role", "value"], source.dedup.near_duplicate_seconds
    )
    n_merged, oversized = 0, empty_rejects()
    if source.dedup.merge_same_day_conversions:
        frame, too_big = split_oversized_days(frame, source.timezone, source.max_value)
        oversized = _rejects_of(raw, too_big, source, "value", _oversized_reason(source))
        frame, n_merged = merge_same_day_conversions(frame, source.timezone)
    counts = TableCounts(
        rows_read=raw.rows_read,
        accepted=len(frame),
        rejected=len(raw.rejects) + len(parsed.rejects) + len(oversized),
        duplicates_exact=n_exact,
        duplicates_event_id=n_id,
        duplicates_near=n_near,
        merged=n_merged,
    )
    return frame, concat_rejects([raw.rejects, parsed.rejects, oversized]), counts


def _oversized_reason(source: SourceConfig) -> str:
    return (
        f"same-day conversions of this customer sum above data.max_value={source.max_value:g} "
        "(dedup.merge_same_day_conversions would merge them into one absurd value)"
    )


def _rejects_of(
    raw: RawTable, rows: pd.DataFrame, source: SourceConfig, column: str, reason: str
) -> pd.DataFrame:
    """Rejects of canonical ``rows`` (found in ``raw`` by file and row) with one reason."""
    if not len(rows):
        return empty_rejects()
    where = pd.MultiIndex.from_arrays(
        [raw.frame[FILE_COL].astype("str"), raw.frame[ROW_COL].astype("int64")]
    )
    wanted = pd.MultiIndex.from_arrays(
        [rows["source_file"].astype("str"), rows["source_row"].astype("int64")]
    )
    picked = raw.frame.loc[where.isin(wanted)]
    return make_rejects(
        raw.name,
        picked[FILE_COL],
        picked[ROW_COL],
        column,
        reason,
        raw_text(picked, source.delimiter),
    )


def _contacts(
    source: SourceConfig, as_of: pd.Timestamp, identity: IdentityResolution, raw: RawTable | None
) -> tuple[pd.DataFrame, pd.DataFrame, TableCounts]:
    if raw is None:
        return empty_contacts(), concat_rejects([]), TableCounts()
    parsed = parse_contacts(raw, source, as_of)
    frame, n_exact = drop_exact(parsed.frame) if source.dedup.exact else (parsed.frame, 0)
    frame["customer_id"] = apply_mapping(frame["customer_id"], identity.mapping)
    frame, n_near = drop_near_duplicates(
        frame, ["customer_id", "action", "channel"], source.dedup.near_duplicate_seconds
    )
    counts = TableCounts(
        rows_read=raw.rows_read,
        accepted=len(frame),
        rejected=len(raw.rejects) + len(parsed.rejects),
        duplicates_exact=n_exact,
        duplicates_near=n_near,
    )
    return frame, concat_rejects([raw.rejects, parsed.rejects]), counts


def _read_contacts(
    source: SourceConfig, as_of: pd.Timestamp, identity: IdentityResolution
) -> tuple[pd.DataFrame, pd.DataFrame, TableCounts]:
    """:func:`_contacts` of the contacts' own files, read here."""
    return _contacts(source, as_of, identity, read_table(source, "contacts"))


def _customers(
    source: SourceConfig, identity: IdentityResolution
) -> tuple[pd.DataFrame, pd.DataFrame, TableCounts]:
    raw = read_table(source, "customers")
    if raw is None:
        return empty_customers(), concat_rejects([]), TableCounts()
    parsed = parse_customers(raw, source)
    frame = parsed.frame.assign(
        customer_id=apply_mapping(parsed.frame["customer_id"], identity.mapping)
    )
    frame, n_merged = merge_customer_records(frame)
    counts = TableCounts(
        rows_read=raw.rows_read,
        accepted=len(frame),
        rejected=len(raw.rejects) + len(parsed.rejects),
        merged=n_merged,
    )
    return (
        frame.loc[:, list(CUSTOMER_COLUMNS)],
        concat_rejects([raw.rejects, parsed.rejects]),
        counts,
    )


def _identities(source: SourceConfig) -> tuple[IdentityResolution, pd.DataFrame, TableCounts]:
    raw = read_table(source, "identities")
    if raw is None:
        return empty_resolution(), concat_rejects([]), TableCounts()
    parsed = parse_identities(raw, source)
    resolution = resolve_identities(parsed.frame, source.identity)
    counts = TableCounts(
        rows_read=raw.rows_read,
        accepted=len(parsed.frame),
        rejected=len(raw.rejects) + len(parsed.rejects),
    )
    return resolution, concat_rejects([raw.rejects, parsed.rejects]), counts


def _validated(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """``frame`` with canonical dtypes, checked against ``schema`` (a failure is a bug here)."""
    frame = frame.reset_index(drop=True)
    for name, column in schema.columns.items():
        if "str" in str(column.dtype) and frame[name].dtype != "str":
            frame[name] = _as_str(frame[name])
    for name in ("ts", "signup_date"):
        if name in frame.columns:
            frame[name] = frame[name].astype(UTC_TS)
    try:
        return schema.validate(frame)
    except (pandera.errors.SchemaError, pandera.errors.SchemaErrors) as err:
        raise RuntimeError(f"ingestion produced an invalid {schema.name} table: {err}") from err


def _as_str(values: pd.Series) -> pd.Series:
    """``values`` as pandas strings; categoricals by an Arrow take of their categories."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.categories.dtype == "str":
        categories = pyarrow.array(values.cat.categories, type=pyarrow.large_string())
        codes = pyarrow.array(values.cat.codes.to_numpy(), mask=(values.cat.codes < 0).to_numpy())
        return pd.Series(categories.take(codes).to_pandas(), index=values.index, dtype="str")
    return values.astype("str")


def _n_distinct(columns: list[pd.Series]) -> int:
    """Distinct values over ``columns`` (categoricals count only the categories in use)."""
    parts = []
    for values in columns:
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            used = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)) > 0
            parts.append(pd.Series(values.cat.categories[used], dtype="str"))
            if (codes < 0).any():
                parts.append(pd.Series([None], dtype="str"))
        else:
            parts.append(values.astype("str"))
    return int(pd.concat(parts, ignore_index=True).nunique()) if parts else 0


def _by_role(events: pd.DataFrame) -> dict[str, int]:
    """Events per role, in the order of :data:`~journeyopt.data.schema.ROLES`."""
    counts = events["role"].value_counts()
    return {role: int(counts[role]) for role in ROLES if counts.get(role, 0) > 0}


def run_ingest(source: SourceConfig, workers: int = 1) -> IngestOutput:
    """Ingest ``source`` in memory (nothing is written). See the module docstring.

    With ``workers`` above 1 (0 = every core, :func:`journeyopt.parallel.resolve_workers`)
    the contacts (most rows of a CRM export) are read (unless they share the events' files),
    parsed and de-duplicated on a forked process (:func:`journeyopt.parallel.start_task`)
    beside the events and customers; their categorical columns travel back, cheaper than
    text, and are validated here. The same tables, counts and rejects as on one process."""
    _check_mapping(source)
    as_of = resolve_as_of(source.as_of)
    identity, id_rejects, id_counts = _identities(source)
    if shares_events_files(source):  # one activity export: read once, split by action
        raw_events, raw_contacts, shared = read_activity(source)
        pending = start_task(partial(_contacts, source, as_of, identity, raw_contacts), workers)
    else:
        pending = start_task(partial(_read_contacts, source, as_of, identity), workers)
        raw_events, _, shared = read_activity(source, with_contacts=False)
    events, ev_rejects, ev_counts = _events(source, as_of, identity, raw_events, shared)
    canonical_events = _validated(events, EVENTS_SCHEMA)
    customers, cu_rejects, cu_counts = _customers(source, identity)
    contacts, co_rejects, co_counts = pending.result()
    logs = CanonicalLogs(
        events=canonical_events,
        contacts=_validated(contacts, CONTACTS_SCHEMA),
        customers=_validated(customers, CUSTOMERS_SCHEMA),
    )
    rejects = concat_rejects([ev_rejects, co_rejects, cu_rejects, id_rejects])
    reasons = rejects["table"] + ": " + rejects["reason"].str.replace(r" '.*", "", regex=True)
    n_customers = _n_distinct(
        [events["customer_id"], contacts["customer_id"], customers["customer_id"]]
    )
    result = IngestResult(
        source=source.name,
        as_of=as_of.isoformat(),
        events=ev_counts,
        contacts=co_counts,
        customers=cu_counts,
        identities=id_counts,
        resolved_customers=n_customers,
        raw_ids=identity.n_raw_ids,
        raw_ids_merged=identity.n_merged,
        overshared_identifiers=identity.n_overshared,
        rejects_by_reason={str(k): int(v) for k, v in reasons.value_counts().head(20).items()},
        contact_channels=tuple(source.contact_channels),
        events_by_role=_by_role(logs.events),
    )
    return IngestOutput(logs, identity, rejects, result)


def ingest_to_logs(source: SourceConfig, workers: int = 1) -> tuple[CanonicalLogs, IngestResult]:
    """Ingest ``source`` in memory: the canonical tables and the counts (``workers``: see
    :func:`run_ingest`).

    Inside a :func:`~journeyopt.reuse.reuse_scope` (a weekly cycle) the source is ingested
    once per content of its config and input files (:func:`input_paths`) and every caller
    gets its own copy of the tables; with an empty ``as_of`` that is "now" at the scope's
    first ingest."""
    if not in_scope():
        output = run_ingest(source, workers)
        return output.logs, output.result
    key = content_key(repr(source), fingerprint_files(input_paths(source)))

    def compute() -> tuple[CanonicalLogs, IngestResult]:
        output = run_ingest(source, workers)
        return output.logs, output.result

    return reused("ingest", key, compute, lambda done: (copy_logs(done[0]), done[1]))


def copy_logs(logs: CanonicalLogs) -> CanonicalLogs:
    """A deep copy of the canonical tables."""
    return CanonicalLogs(
        events=logs.events.copy(), contacts=logs.contacts.copy(), customers=logs.customers.copy()
    )


def input_paths(source: SourceConfig) -> list[Path]:
    """Every path ingestion reads: each mapped table's files and folder of parts, and
    ``data.path``."""
    root = Path(source.path)
    folder = root.parent if root.is_file() else root
    paths = []
    for table in TABLES:
        mapping = getattr(source, table)
        if mapping.columns:
            paths.extend(resolve_files(source, table))
            if mapping.file and (folder / mapping.file).is_dir():
                paths.append(folder / mapping.file)
    return [*paths, root]


_OVERLAPS = ("is the input", "contains the input", "lies inside the input folder")


def overlap(output_dir: Path, path: Path) -> str:
    """How ``output_dir`` overlaps the input ``path`` (one of :data:`_OVERLAPS`, or ``""``
    when it does not): it is the input, contains it, or lies inside it (links resolved)."""
    out, inp = output_dir.resolve(), path.resolve()
    if out == inp:
        return _OVERLAPS[0]
    if out in inp.parents:
        return _OVERLAPS[1]
    if inp in out.parents:
        return _OVERLAPS[2]
    return ""


def _check_inputs_kept(output_dir: Path, source: SourceConfig) -> None:
    """Refuse an ``output_dir`` that is, contains or lies inside an input path, whatever
    ``overwrite`` says: the outputs must never mix with (or replace) what was read."""
    found = [(how, path) for path in input_paths(source) if (how := overlap(output_dir, path))]
    if found:
        how, path = min(found, key=lambda item: _OVERLAPS.index(item[0]))
        raise OutputExistsError(
            f"output_dir {output_dir} {how} {path}; choose a folder outside the input "
            "(overwrite=true does not change this)"
        )


def write_output(output: IngestOutput, output_dir: Path) -> None:
    """Write the tables of ``output`` into ``output_dir`` (created if needed)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    output.logs.events.to_parquet(output_dir / "events.parquet", index=False)
    output.logs.contacts.to_parquet(output_dir / "contacts.parquet", index=False)
    output.logs.customers.to_parquet(output_dir / "customers.parquet", index=False)
    output.identity.mapping.to_parquet(output_dir / "identity_map.parquet", index=False)
    output.identity.links.to_parquet(output_dir / "identity_links.parquet", index=False)
    output.rejects.to_csv(output_dir / "rejects.csv", index=False)
    summary = json.dumps(output.result.summary_dict(), indent=2)
    (output_dir / "summary.json").write_text(summary + "\n", encoding="utf-8")


def ingest(source: SourceConfig, output_dir: Path, overwrite: bool = False) -> IngestResult:
    """Ingest ``source`` and write the canonical tables into ``output_dir``.

    Args:
        source: The source config (``data.path`` points at the raw files).
        output_dir: Folder for the outputs (:data:`OUTPUT_FILES`); must be absent or empty
            unless ``overwrite``. Input files are never written.
        overwrite: Replace the outputs of an earlier run in ``output_dir``.

    Raises:
        InputFileError: A whole input file cannot be used.
        OutputExistsError: ``output_dir`` is not empty and ``overwrite`` is false.
    """
    output_dir = Path(output_dir)
    _check_inputs_kept(output_dir, source)
    check_output_dir(output_dir, overwrite)
    output = run_ingest(source)
    output = replace(output, result=replace(output.result, output_dir=str(output_dir)))
    with staged_output_dir(output_dir, overwrite) as staging:
        write_output(output, staging)
    return output.result


def load_canonical(output_dir: Path) -> CanonicalLogs:
    """Read the canonical tables written by :func:`ingest` (validated against the schemas)."""
    output_dir = Path(output_dir)
    tables = {}
    for name in ("events", "contacts", "customers"):
        path = output_dir / f"{name}.parquet"
        if not path.is_file():
            raise InputFileError(
                str(output_dir),
                f"no {path.name}: not an ingest output folder (run journeyopt-ingest)",
            )
        tables[name] = pd.read_parquet(path)
    return CanonicalLogs(
        events=_validated(tables["events"], EVENTS_SCHEMA),
        contacts=_validated(tables["contacts"], CONTACTS_SCHEMA),
        customers=_validated(tables["customers"], CUSTOMERS_SCHEMA),
    )


def recorded_contact_channels(output_dir: Path) -> tuple[str, ...] | None:
    """The source's contact channels recorded in an ingest output's ``summary.json``, or
    ``None`` when the folder has no summary or it predates this record."""
    path = Path(output_dir) / "summary.json"
    if not path.is_file():
        return None
    channels = json.loads(path.read_text()).get("contact_channels")
    return None if channels is None else tuple(str(c) for c in channels)
