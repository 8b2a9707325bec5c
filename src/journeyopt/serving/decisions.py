"""The decision log: one CSV row per scoring decision, the input of uplift measurement.

Every decision is recorded, ``none`` decisions and control-group customers included. The batch
scorer writes ``decisions.csv`` beside its contact list; the API (when ``serve.decision_log``
names a folder) appends to ``<folder>/decisions-<YYYY-MM-DD>.csv``, one file per UTC day,
continued in ``decisions-<YYYY-MM-DD>.<k>.csv`` (k = 1, 2, ...) once a file holds
``serve.decision_log_file_bytes``; when the folder's log files pass
``serve.decision_log_max_bytes`` the oldest are deleted (see :class:`DecisionLog`).
Columns, in order (:data:`DECISION_COLUMNS`):

decision_id
    Unique id of the decision (str).
customer_id
    The customer (str).
as_of
    UTC instant the features were computed at (ISO 8601).
week
    Monday of the ISO week of ``as_of``, ``YYYY-MM-DD``.
group
    ``treatment`` (the policy) or ``control`` (today's staff rules).
action, channel
    The action carried out (a name of the world's catalogue) and its channel (empty for
    ``none``).
propensity
    Probability of ``action`` under the policy actually applied to the customer (the champion
    for treatment, the staff rules for control) after masks and guards, in (0, 1]: for
    treatment the exploration mixture ``(1 - eps)`` on the model's most probable allowed
    action plus ``eps`` spread uniformly over the allowed actions (``serve.exploration``; 1.0
    without exploration), for the deterministic staff rules and guard overrides 1.0.
expected_value
    This week's expected margin minus contact cost of the action under the world's response
    model, currency.
model_name, model_version
    The policy that decided (during a staged rollout's canary, the previous version for the
    ``previous`` arm; the control group's rows name the served champion).
probabilities
    JSON object action -> probability (the full distribution behind ``propensity``).
arm
    The staged rollout's arm (:mod:`journeyopt.serving.rollout`): ``control``, ``full`` (all
    of treatment on the champion), ``canary`` or ``previous`` (during a canary). Log files
    written before this column existed are read with ``control`` / ``full`` from ``group``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pandera.errors import SchemaErrors

from journeyopt.errors import InputFileError
from journeyopt.panel.weeks import monday_on_or_before
from journeyopt.serving.holdout import CONTROL, GROUPS
from journeyopt.serving.rollout import ARMS, CONTROL_ARM, FULL_ARM, PREVIOUS_ARM, arm_codes
from journeyopt.serving.scorer import Decisions

DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id",
    "customer_id",
    "as_of",
    "week",
    "group",
    "action",
    "channel",
    "propensity",
    "expected_value",
    "model_name",
    "model_version",
    "probabilities",
    "arm",
)
LEGACY_COLUMNS: tuple[str, ...] = DECISION_COLUMNS[:-1]
"""Columns of decision logs written before the ``arm`` column (still read)."""
LOG_FILE_PATTERN = "decisions-*.csv"
_LOG_FILE = re.compile(r"decisions-(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.csv")
_HEADER = (",".join(DECISION_COLUMNS) + "\n").encode()


def log_file_order(path: Path) -> tuple[str, int, str]:
    """Sort key of a decision log file: its day, then its part (``decisions-<day>.csv`` is
    part 0, ``decisions-<day>.<k>.csv`` part k); other names after, by name."""
    found = _LOG_FILE.fullmatch(path.name)
    if found is None:
        return ("~", 0, path.name)
    return (found.group(1), int(found.group(2) or 0), path.name)


DecisionColumns = dict[str, list[Any]]
"""Decision log rows column-wise: column name -> (N,) values, in :data:`DECISION_COLUMNS`."""

_CSV = pacsv.WriteOptions(include_header=True, quoting_style="needed")
_CSV_ROWS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def decision_ids(n: int) -> pa.Array:
    """(n,) unique decision ids: a random 16-hex prefix per call plus the row number."""
    prefix = uuid.uuid4().hex[:16] + "-"
    if n <= 64:  # Arrow's fixed cost per call is larger than the few ids of an API request
        return pa.array([f"{prefix}{i}" for i in range(n)], pa.string())
    numbers = pa.array(np.arange(n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, numbers, "")


def probabilities_json(probabilities: np.ndarray, action_names: Sequence[str]) -> pa.Array:
    """(N,) JSON objects action -> probability (6 decimals) of (N, A) ``probabilities``."""
    rounded = np.round(np.asarray(probabilities, np.float64), 6)
    parts: list[object] = []
    for a, name in enumerate(action_names):
        parts.append(("{" if a == 0 else ", ") + json.dumps(name) + ": ")
        parts.append(pa.array(rounded[:, a]).cast(pa.string()))
    return pc.binary_join_element_wise(*parts, "}", "")


def decision_table(
    decisions: Decisions,
    action_names: Sequence[str],
    channels: Sequence[str],
    model_name: str,
    model_version: str,
    ids: pa.Array | None = None,
) -> pa.Table:
    """The decision log rows of ``decisions`` as an Arrow table (columns
    :data:`DECISION_COLUMNS`); built column-wise in Arrow, so a million rows take about a
    second. ``ids``: the (N,) decision ids (default: fresh :func:`decision_ids`)."""
    n = decisions.batch.n
    as_of = decisions.batch.as_of
    actions = pa.array(decisions.actions)
    versions = pa.repeat(model_version, n)
    if decisions.previous_version:
        versions = pa.array(decision_versions(decisions, model_version), pa.string())
    columns = {
        "decision_id": decision_ids(n) if ids is None else ids,
        "customer_id": pa.array(decisions.batch.customer_ids, pa.string()),
        "as_of": pa.repeat(as_of.isoformat(), n),
        "week": pa.repeat(monday_on_or_before(as_of).strftime("%Y-%m-%d"), n),
        "group": pc.take(pa.array(GROUPS), pa.array(decisions.control.astype(np.int8))),
        "action": pc.take(pa.array(list(action_names)), actions),
        "channel": pc.take(pa.array(list(channels)), actions),
        "propensity": pa.array(decisions.propensity),
        "expected_value": pa.array(np.round(decisions.expected_value, 6)),
        "model_name": pa.repeat(model_name, n),
        "model_version": versions,
        "probabilities": probabilities_json(decisions.probabilities, action_names),
        "arm": pc.take(pa.array(ARMS), pa.array(decision_arms(decisions))),
    }
    return pa.table(columns)


def decision_versions(decisions: Decisions, model_version: str) -> list[str]:
    """(N,) the version that decided each decision: ``model_version`` (the champion), the
    previous version for the ``previous`` arm of a canary."""
    previous = decision_arms(decisions) == ARMS.index(PREVIOUS_ARM)
    return np.where(previous, decisions.previous_version, model_version).tolist()


def decision_arms(decisions: Decisions) -> np.ndarray:
    """(N,) arm codes of ``decisions`` (``control`` / ``full`` when the scorer gave none)."""
    if decisions.arm is not None:
        return decisions.arm
    return arm_codes(decisions.control, None)


RESPONSE_COLUMNS: tuple[str, ...] = tuple(
    c for c in DECISION_COLUMNS if c not in ("week", "probabilities", "arm")
)
"""The decision log columns an API response repeats."""


def response_columns(
    decisions: Decisions,
    action_names: Sequence[str],
    channels: Sequence[str],
    model_name: str,
    model_version: str,
    ids: Sequence[str],
) -> DecisionColumns:
    """:data:`RESPONSE_COLUMNS` of ``decisions`` with decision ids ``ids``: the same values as
    ``decision_table(..., ids).to_pydict()``, built in plain Python: for the few customers of
    an API request this is far cheaper than Arrow (tens of microseconds for one customer
    instead of about half a millisecond)."""
    n = decisions.batch.n
    actions = decisions.actions.tolist()
    return {
        "decision_id": list(ids),
        "customer_id": [str(c) for c in decisions.batch.customer_ids.tolist()],
        "as_of": [decisions.batch.as_of.isoformat()] * n,
        "group": [GROUPS[int(c)] for c in decisions.control.tolist()],
        "action": [action_names[a] for a in actions],
        "channel": [channels[a] for a in actions],
        "propensity": decisions.propensity.tolist(),
        "expected_value": np.round(decisions.expected_value, 6).tolist(),
        "model_name": [model_name] * n,
        "model_version": decision_versions(decisions, model_version)
        if decisions.previous_version
        else [model_version] * n,
    }


def decision_frame(
    decisions: Decisions,
    action_names: Sequence[str],
    channels: Sequence[str],
    model_name: str,
    model_version: str,
) -> pd.DataFrame:
    """:func:`decision_table` as a pandas DataFrame."""
    table = decision_table(decisions, action_names, channels, model_name, model_version)
    return table.to_pandas()


def write_decisions(rows: pa.Table | pd.DataFrame, path: Path) -> None:
    """Write a whole decision log file (header included)."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    pacsv.write_csv(table.select(list(DECISION_COLUMNS)), str(path), _CSV)


def csv_rows(table: pa.Table) -> bytes:
    """CSV text (no header, UTF-8) of decision rows."""
    buffer = io.BytesIO()
    pacsv.write_csv(table.select(list(DECISION_COLUMNS)), buffer, _CSV_ROWS)
    return buffer.getvalue()


class DecisionLog:
    """Appends decisions to ``<folder>/decisions-<YYYY-MM-DD>.csv`` (UTC day of the write),
    rotated by size and bounded in total.

    A file that would pass ``file_bytes`` is continued in the day's next part,
    ``decisions-<YYYY-MM-DD>.<k>.csv`` (k = 1, 2, ...; a single write larger than
    ``file_bytes`` still goes whole into a fresh part). Whenever a new part is started, the
    oldest log files (by day, then part) are deleted until the folder's log files, the new
    part counted full, hold at most ``max_bytes`` (the file being written is kept). Both
    bounds are approximate with several processes writing at once (each may append one write
    past them).

    Safe across threads and processes (several API workers): a file is created with its
    header atomically (hard link of a complete file), rows are appended with one ``O_APPEND``
    write per call, and a full file is never renamed, only left for the next part.

    Args:
        folder: The log folder (created if missing).
        file_bytes: Size at which a file is continued in the next part.
        max_bytes: Most bytes of log files kept in the folder; 0: no bound.
    """

    def __init__(self, folder: Path, file_bytes: int = 100_000_000, max_bytes: int = 0) -> None:
        if file_bytes < 1 or max_bytes < 0:
            raise ValueError(
                f"file_bytes must be >= 1 and max_bytes >= 0, got {file_bytes}, {max_bytes}"
            )
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file_bytes = file_bytes
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._part: tuple[str, int] = ("", 0)  # the day and part written last

    def path_for(self, day: datetime, part: int = 0) -> Path:
        """The file of UTC day ``day`` (its ``part``-th continuation, 0: the first file)."""
        stem = f"decisions-{day.strftime('%Y-%m-%d')}"
        return self.folder / (f"{stem}.csv" if part == 0 else f"{stem}.{part}.csv")

    def _writable(self, day: datetime, size: int) -> tuple[Path, bool]:
        """The day's file ``size`` more bytes go to, and whether a new part was started."""
        key = day.strftime("%Y-%m-%d")
        part = self._part[1] if self._part[0] == key else 0
        started = False
        while True:
            path = self.path_for(day, part)
            started |= self._ensure_file(path)
            held = path.stat().st_size
            if held <= len(_HEADER) or held + size <= self.file_bytes:
                self._part = (key, part)
                return path, started
            part += 1

    def _prune(self, keep: Path) -> None:
        """Delete the oldest log files until those left, with room for ``keep`` (the new
        part) to fill up, hold at most ``max_bytes``."""
        files = sorted(self.folder.glob(LOG_FILE_PATTERN), key=log_file_order)
        sizes = {}
        for path in files:
            with contextlib.suppress(FileNotFoundError):  # another worker pruned it
                sizes[path] = path.stat().st_size
        total = sum(sizes.values()) - sizes.get(keep, 0) + self.file_bytes
        for path, size in sizes.items():
            if total <= self.max_bytes:
                return
            if path != keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                total -= size

    def _ensure_file(self, path: Path) -> bool:
        """Create ``path`` with its header unless it exists; whether this call created it."""
        if path.exists():
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(_HEADER)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def append(self, rows: pa.Table | pd.DataFrame, now: datetime | None = None) -> Path:
        """Append decision rows (columns :data:`DECISION_COLUMNS`); returns the file written."""
        table = (
            rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        )
        payload = csv_rows(table)
        with self._lock:
            path, started = self._writable(now or datetime.now(UTC), len(payload))
            if started and self.max_bytes:
                self._prune(keep=path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        return path


def _is_probability_object(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if not isinstance(value, dict) or not value:
        return False
    if not all(isinstance(p, int | float) and 0.0 <= p <= 1.0 for p in value.values()):
        return False
    return abs(sum(value.values()) - 1.0) < 1e-4


DECISION_LOG_SCHEMA = pandera.DataFrameSchema(
    {
        "decision_id": pandera.Column(str, pandera.Check.str_length(min_value=1), unique=True),
        "customer_id": pandera.Column(str, pandera.Check.str_length(min_value=1)),
        "as_of": pandera.Column(pd.DatetimeTZDtype(unit="ns", tz="UTC")),
        "week": pandera.Column(
            str,
            pandera.Check(
                lambda s: pd.Series(
                    pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
                ).dt.day_of_week.eq(0),
                element_wise=False,
                error="a Monday date YYYY-MM-DD",
            ),
        ),
        "group": pandera.Column(str, pandera.Check.isin(GROUPS)),
        "action": pandera.Column(str, pandera.Check.str_length(min_value=1)),
        "channel": pandera.Column(str),
        "propensity": pandera.Column(float, pandera.Check.in_range(0.0, 1.0, include_min=False)),
        "expected_value": pandera.Column(
            float, pandera.Check(lambda s: np.isfinite(s), error="finite")
        ),
        "model_name": pandera.Column(str, pandera.Check.str_length(min_value=1)),
        "model_version": pandera.Column(str, pandera.Check.str_length(min_value=1)),
        "probabilities": pandera.Column(
            str,
            pandera.Check(
                _is_probability_object,
                element_wise=True,
                error="a JSON object action -> probability summing to 1",
            ),
        ),
        "arm": pandera.Column(str, pandera.Check.isin(ARMS)),
    },
    strict=True,
    ordered=True,
    name="decisions",
)


def _read_one(path: Path) -> pd.DataFrame:
    """One decision log file, typed and validated (errors name file, row and column)."""
    if not path.is_file():
        raise InputFileError(str(path), "no such decision log file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputFileError(str(path), f"not a decision log CSV ({err})") from err
    if tuple(raw.columns) == LEGACY_COLUMNS:  # written before the rollout's arm column
        raw = raw.assign(arm=np.where(raw["group"] == CONTROL, CONTROL_ARM, FULL_ARM))
    if tuple(raw.columns) != DECISION_COLUMNS:
        raise InputFileError(
            str(path),
            f"columns are {list(raw.columns)}, expected {list(DECISION_COLUMNS)} in this order",
        )
    frame = raw.copy()
    frame["as_of"] = pd.to_datetime(
        raw["as_of"], utc=True, format="ISO8601", errors="coerce"
    ).dt.as_unit("ns")
    for column in ("propensity", "expected_value"):
        frame[column] = pd.to_numeric(raw[column], errors="coerce").astype(np.float64)
    for column in ("as_of", "propensity", "expected_value"):
        bad = frame[column].isna() & (raw[column] != "nan")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise InputFileError(
                str(path),
                f"row {row}, column {column}: cannot read {raw[column].iloc[row - 1]!r}",
            )
    try:
        return DECISION_LOG_SCHEMA.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        first = cases.iloc[0]
        index = first.get("index")
        where = f"row {int(index) + 1}, " if index is not None and not pd.isna(index) else ""
        column = first.get("column") or ""
        raise InputFileError(
            str(path),
            f"{where}column {column}: value {first.get('failure_case')!r} fails "
            f"{first.get('check')} ({len(cases)} problems in all)",
        ) from err


def read_decision_log(paths: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """Decision log files (a file, a folder of ``decisions-*.csv``, or several of either) as
    one validated DataFrame with :data:`DECISION_COLUMNS`.

    ``as_of`` is a UTC timestamp, ``propensity`` and ``expected_value`` float64, every other
    column str (``probabilities`` the JSON text). ``decision_id`` must be unique over all
    files.

    Raises:
        InputFileError: naming the file, the row (1-based over data rows) and the column.
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    files: list[Path] = []
    for item in map(Path, items):
        files += (
            sorted(item.glob(LOG_FILE_PATTERN), key=log_file_order) if item.is_dir() else [item]
        )
    if not files:
        raise InputFileError(", ".join(map(str, items)), "no decision log files found")
    frames = [_read_one(f) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    duplicated = frame["decision_id"].duplicated()
    if duplicated.any():
        dup = frame.loc[duplicated, "decision_id"].iloc[0]
        raise InputFileError(
            ", ".join(map(str, files)), f"decision_id {dup!r} appears more than once"
        )
    return frame
