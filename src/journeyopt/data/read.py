"""Reading a source's raw files (CSV or Parquet) into string frames, with whole-file checks.

A table's files are found from ``data.path`` and the table's ``file`` (see :func:`resolve_files`).
Each file is read in C++ (pyarrow; every CSV column as a string) and gets two bookkeeping
columns: the file name relative to ``data.path`` and the 1-based data-row number. Problems with a
whole file raise :class:`~journeyopt.errors.InputFileError`; problems with single rows (wrong
field count, a repeated header line, a blank line, a stray quote, a field longer than
:data:`MAX_FIELD_CHARS`, a list value in a Parquet column) become rejects and reading continues.

Every physical line after the header starts a row (``\\n``, ``\\r\\n`` or ``\\r`` ends it).
When a file's Arrow records do not match its physical lines (a quote spans lines), the file is
read again line by line (:func:`_read_by_lines`): a quoted value may span lines only when the
row it ends is complete; otherwise the stray quote's line is rejected and the next line is read
on its own, so no row disappears into another.
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from journeyopt.data.rejects import FILE_COL, ROW_COL, empty_rejects, make_rejects, raw_text
from journeyopt.data.source import WHITESPACE, SourceConfig, TableMapping
from journeyopt.errors import ConfigError, InputFileError

PARQUET_SUFFIXES = (".parquet", ".pq")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_HEAD_BYTES = 1 << 16


@dataclass(frozen=True)
class RawTable:
    """One source table as read, before any parsing of values.

    Attributes:
        name: Canonical table name (``events``, ``contacts``, ``identities``, ``customers``).
        frame: Raw columns (strings for CSV, native types for Parquet) plus ``_source_file`` and
            ``_source_row``; one row per readable data row, shape ``(n, k + 2)``.
        rows_read: Data rows in the files, including the rows rejected while reading.
        rejects: Rows rejected while reading (see :mod:`journeyopt.data.rejects`).
    """

    name: str
    frame: pd.DataFrame
    rows_read: int
    rejects: pd.DataFrame


def resolve_files(source: SourceConfig, table: str) -> list[Path]:
    """The files of one table, sorted; empty when an optional table is absent.

    Rules: ``data.path`` a file -> it is the events table, other tables are looked up next to
    it; ``data.path`` a folder -> the table's ``file`` relative to it, which may be a file, a
    folder of parts (every visible file inside) or a glob pattern.
    """
    mapping: TableMapping = getattr(source, table)
    root = Path(source.path)
    if not source.path or not root.exists():
        raise InputFileError(source.path or "data.path", "no such file or directory")
    if root.is_file():
        if table == "events":
            return [root]
        root = root.parent
    if not mapping.file:
        if mapping.required:
            raise InputFileError(
                str(root), f"is a folder but data.{table}.file is empty; give the file"
            )
        return []
    target = root / mapping.file
    if target.is_file():
        return [target]
    if target.is_dir():
        files = sorted(
            p for p in target.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        )
    else:
        files = sorted(p for p in root.glob(mapping.file) if p.is_file())
    if not files and mapping.required:
        raise InputFileError(str(target), f"no such file (data.{table}.file={mapping.file!r})")
    return files


def read_table(
    source: SourceConfig, table: str, also_required: Sequence[str] = ()
) -> RawTable | None:
    """Read all files of ``table``; ``None`` when the table is optional and absent.
    ``also_required``: raw columns the files must have besides the table's mapped ones."""
    mapping: TableMapping = getattr(source, table)
    if not mapping.columns and table != "events":
        return None
    files = resolve_files(source, table)
    if not files:
        return None
    root = Path(source.path)
    root = root.parent if root.is_file() else root
    required = list(dict.fromkeys([*mapping.columns.values(), *also_required]))
    names = [p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name for p in files]
    frames, rejects, rows_read = [], [], 0
    for i, (path, rel) in enumerate(zip(files, names, strict=True)):
        if _is_parquet(path, source.format):
            frame, bad, n = _read_parquet(path, required)
        else:
            frame, bad, n = _read_csv(path, source, required)
        codes = np.full(len(frame), i, dtype=np.int64)
        frame[FILE_COL] = pd.Categorical.from_codes(codes, categories=pd.Index(names))
        if len(bad):
            bad = make_rejects(
                table, pd.Series(rel, index=bad.index), bad[ROW_COL], "", bad["reason"], bad["raw"]
            )
        frames.append(frame)
        rejects.append(bad)
        rows_read += n
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    all_rejects = pd.concat([r for r in rejects if len(r)] or [empty_rejects()], ignore_index=True)
    return RawTable(table, frame, rows_read, all_rejects)


def shares_events_files(source: SourceConfig) -> bool:
    """Whether the contacts are mapped onto the very files of the events (one activity export
    holding both)."""
    if not source.contacts.columns:
        return False
    contacts = resolve_files(source, "contacts")
    return bool(contacts) and contacts == resolve_files(source, "events")


def split_activity(raw: RawTable, source: SourceConfig) -> tuple[RawTable, RawTable]:
    """One activity export (events and contacts in the same rows) -> ``(events, contacts)``.

    A row is a contact when its contacts' ``action`` column holds a catalogue action or a raw
    name of ``contact_actions``; every other row is an event (an unknown name is then rejected
    as an event). Rows rejected while reading stay with the events, so ``rows_read`` of the two
    tables adds up to the rows of the file.
    """
    column = source.contacts.columns.get("action")
    if column is None:
        raise ConfigError(
            "data.contacts.columns.action must be mapped: the contacts share the events' file, "
            "and the action column tells contacts from events"
        )
    names = {*source.actions, *source.contact_actions}
    both = sorted(names & set(source.event_roles))
    if both:
        raise ConfigError(
            f"{both} are both event kinds (data.event_roles) and actions (data.actions or "
            "data.contact_actions); in one activity export a name must be one or the other"
        )
    text = pc.utf8_trim_whitespace(pa.array(raw.frame[column].astype("str"), pa.large_string()))
    contact = pc.fill_null(pc.is_in(text, pa.array(sorted(names), pa.large_string())), False)
    contact = np.asarray(contact.to_numpy(zero_copy_only=False), dtype=bool)
    n_contacts = int(contact.sum())
    events = RawTable(
        "events",
        raw.frame.loc[~contact].reset_index(drop=True),
        raw.rows_read - n_contacts,
        raw.rejects,
    )
    contacts = RawTable(
        "contacts", raw.frame.loc[contact].reset_index(drop=True), n_contacts, empty_rejects()
    )
    return events, contacts


def read_activity(
    source: SourceConfig, with_contacts: bool = True
) -> tuple[RawTable, RawTable | None, bool]:
    """The raw events and contacts: ``(events, contacts or None, shared)``. ``shared``: both
    came from one activity export, read once and split by :func:`split_activity`.
    ``with_contacts=False``: contacts in files of their own are not read (None; the caller reads
    them with :func:`read_table`)."""
    if not shares_events_files(source):
        events = read_table(source, "events")
        if events is None:  # read_table only skips optional tables
            raise ConfigError("data.events: no events table")
        return events, read_table(source, "contacts") if with_contacts else None, False
    raw = read_table(source, "events", also_required=list(source.contacts.columns.values()))
    if raw is None:
        raise ConfigError("data.events: no events table")
    events, contacts = split_activity(raw, source)
    return events, contacts, True


def _is_parquet(path: Path, fmt: str) -> bool:
    return fmt == "parquet" or (fmt == "auto" and path.suffix.lower() in PARQUET_SUFFIXES)


def _read_parquet(path: Path, required: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise InputFileError(str(path), f"not a readable Parquet file ({err})") from err
    _check_columns(path, table.column_names, required, hint="")
    if table.num_rows == 0:
        raise InputFileError(str(path), "has no data rows")
    frame = table.to_pandas()
    frame[ROW_COL] = np.arange(1, len(frame) + 1, dtype=np.int64)
    bad = _nested_values(table, required)
    if not bad.any():
        return frame, _no_bad_rows(), len(frame)
    rows = frame.loc[bad.astype(bool)]
    rejects = pd.DataFrame(
        {
            ROW_COL: rows[ROW_COL].to_numpy(),
            "reason": bad[bad != ""],
            "raw": raw_text(rows, ",").map(_clip).to_numpy(),
        }
    )
    return frame.loc[bad == ""].reset_index(drop=True), rejects, len(frame)


def _nested_values(table: pa.Table, columns: list[str]) -> np.ndarray:
    """Per row, why a mapped Parquet column holds no single value there (``""`` when all do):
    a list, struct or map value (a list-typed id column) cannot be an id, a time or an
    amount. Shape ``(n,)``, object."""
    reason = np.full(table.num_rows, "", dtype=object)
    for name in columns:
        kind = table.schema.field(name).type
        if pa.types.is_nested(kind):
            present = np.asarray(table[name].is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            reason[present & (reason == "")] = (
                f"column '{name}' holds a {kind} value, expected a single value "
                "(text, a number or a timestamp)"
            )
    return reason


def _no_bad_rows() -> pd.DataFrame:
    return pd.DataFrame({ROW_COL: pd.Series([], dtype="int64"), "reason": "", "raw": ""})


def _first_line(path: Path, encoding: str) -> str:
    """The file's first non-blank line, BOM stripped; whole-file errors for empty files."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as err:
        raise InputFileError(str(path), f"cannot be read ({err.strerror})") from err
    if not head:
        raise InputFileError(str(path), "file is empty (0 bytes)")
    if head.startswith(b"PAR1"):
        raise InputFileError(str(path), "is a Parquet file; set data.format=parquet (or auto)")
    head = head.removeprefix(codecs.BOM_UTF8)
    if not head.strip():
        raise InputFileError(str(path), "file is empty (only blank lines)")
    line = _first_physical_line(head.lstrip(b"\r\n"))
    try:
        return line.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputFileError(str(path), _decode_problem(head, encoding, err)) from err
    except LookupError as err:
        raise InputFileError(str(path), f"unknown encoding data.encoding={encoding!r}") from err


def _first_physical_line(data: bytes) -> bytes:
    """``data`` up to its first line break: ``\\n``, ``\\r\\n`` or a lone ``\\r`` (classic Mac
    line endings, which Arrow's CSV reader also accepts)."""
    ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    return data[: min(ends)] if ends else data


def _file_text(path: Path, encoding: str) -> str:
    """The whole file decoded, a UTF-8 BOM stripped; an undecodable byte is one
    :class:`InputFileError` naming it."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputFileError(str(path), _decode_problem(data, encoding, err)) from err


def _decode_problem(data: bytes, encoding: str, err: UnicodeDecodeError) -> str:
    line = data[: err.start].count(b"\n") + 1
    byte = data[err.start : err.start + 1].hex()
    return (
        f"not valid {encoding} text: byte 0x{byte} at offset {err.start} (line {line}); "
        "set data.encoding to the file's encoding (e.g. 'latin-1')"
    )


def _find_decode_error(path: Path, encoding: str) -> str | None:
    """The first undecodable byte of the file, read in chunks; ``None`` if it decodes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                start = max(err.start, 0)
                pos = offset + start
                line = lines + chunk[:start].count(b"\n") + 1
                return (
                    f"not valid {encoding} text: byte 0x{chunk[start : start + 1].hex()} at "
                    f"offset {pos} (line {line}); set data.encoding to the file's encoding "
                    "(e.g. 'latin-1')"
                )
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return None


def _split_header(line: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return line.split()
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter), [])]
    except csv.Error:  # e.g. a multi-character delimiter; Arrow reports the file's problem
        return [line]


def _delimiter_hint(line: str, delimiter: str) -> str:
    """``"; looks semicolon-separated; set data.delimiter=';'"`` when another delimiter fits."""
    n_fields = len(_split_header(line, delimiter))
    for cand, name in _DELIMITER_NAMES.items():
        if cand != delimiter and len(_split_header(line, cand)) > max(n_fields, 1):
            shown = "\\t" if cand == "\t" else cand
            return f"; looks {name}-separated; set data.delimiter='{shown}'"
    return ""


def _check_columns(path: Path, present: list[str], required: list[str], hint: str) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise InputFileError(
            str(path),
            f"missing column(s) {missing}: the file has columns {present}, the source config "
            f"expects {required}{hint}",
        )
    dupes = sorted({c for c in present if present.count(c) > 1})
    if dupes:
        raise InputFileError(str(path), f"duplicate column name(s) {dupes} in the header")


def _read_csv(
    path: Path, source: SourceConfig, required: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Read one text file: ``(frame, bad_rows, rows_read)``; ``bad_rows`` has the row number,
    reason and raw text of each row rejected while reading."""
    encoding = codecs.lookup(source.encoding).name if _known(source.encoding) else source.encoding
    line = _first_line(path, encoding)
    names = _split_header(line, source.delimiter) if source.has_header else source.column_names
    hint = _delimiter_hint(line, source.delimiter)
    _check_columns(path, names, required, hint)
    if source.delimiter == WHITESPACE:
        frame, bad, n = _read_whitespace(path, source, names, encoding)
    else:
        frame, bad, n = _read_delimited(path, source, names, encoding)
    if n == 0 or (len(frame) == 0 and len(bad) == 0):
        raise InputFileError(str(path), "has a header but no data rows")
    if len(frame) == 0:
        raise InputFileError(
            str(path),
            f"no row has the {len(names)} fields of the header/column_names {names}{hint}",
        )
    frame, header_rows = _split_repeated_headers(frame, names, source)
    bad = pd.concat(
        [b for b in (bad, header_rows) if len(b)] or [_no_bad_rows()], ignore_index=True
    )
    return frame, bad, n


def _known(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True


MAX_FIELD_CHARS = 100_000
"""Longest field accepted, in bytes of UTF-8 text: a longer one is a broken export (a stray
quote that swallowed the following lines) or a blob, never a value; its row is rejected."""


def _long_field_reason(column: str, length: int) -> str:
    return (
        f"field of {length:,} characters in column '{column}' (longer than "
        f"{MAX_FIELD_CHARS:,}: a stray quote or a broken export?)"
    )


def _read_delimited(
    path: Path, source: SourceConfig, names: list[str], encoding: str
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Read a delimited file with Arrow; when its records do not match its physical lines (a
    quote spanning lines), read it again line by line (:func:`_read_by_lines`)."""
    header_lines = 1 if source.has_header else 0
    invalid: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    def read(threads: bool, block_size: int | None = None) -> pa.Table:
        invalid.clear()
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                use_threads=threads,
                block_size=block_size,
                column_names=names,
                skip_rows=header_lines,
                encoding="utf8" if encoding == "utf-8" else encoding,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=source.delimiter, invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.large_string()),  # pandas' str layout
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    block: int | None = None  # Arrow's default, 1 MB
    try:
        with _quiet_undecodable_rows():
            try:
                table = read(threads=True)
            except pa.ArrowInvalid as err:
                if "straddl" not in str(err):  # a row longer than a block
                    raise
                block = _whole_file_block(path)
                table = read(threads=True, block_size=block)
            if invalid:  # row numbers of invalid rows are only known when reading on one thread
                table = read(threads=False, block_size=block)
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        problem = _find_decode_error(path, encoding) if _known(encoding) else None
        raise InputFileError(str(path), problem or f"cannot be parsed as CSV ({err})") from err
    except OSError as err:
        raise InputFileError(str(path), f"cannot be read ({err})") from err
    n_total = table.num_rows + len(invalid)
    # Without a quote, every record is one physical line; with one, a value may span lines.
    if _contains(path, b'"') and n_total != count_lines(path) - header_lines:
        return _read_by_lines(path, source, names, encoding)
    bad_rows = np.array([(num or 0) - header_lines for num, _ in invalid], dtype=np.int64)
    numbers = _surviving_row_numbers(n_total, bad_rows)
    blank = np.ones(table.num_rows, dtype=bool)
    for name in names:
        blank &= pc.equal(table[name], "").to_numpy(zero_copy_only=False)
    long_reason, long_raw = _long_fields(table, names)
    frame = table.to_pandas()
    frame[ROW_COL] = numbers
    long = long_reason != ""
    bad = pd.DataFrame(
        {
            ROW_COL: np.concatenate(
                [bad_rows, frame.loc[blank, ROW_COL].to_numpy(), numbers[long]]
            ),
            "reason": [f"ragged row: expected {len(names)} fields"] * len(bad_rows)
            + ["blank row"] * int(blank.sum())
            + long_reason[long].tolist(),
            "raw": [_clip(text) for _, text in invalid]
            + [""] * int(blank.sum())
            + long_raw[long].tolist(),
        }
    )
    if blank.any() or long.any():
        frame = frame.loc[~(blank | long)].reset_index(drop=True)
    return frame, bad, n_total


@contextmanager
def _quiet_undecodable_rows() -> Iterator[None]:
    """Arrow decodes an invalid row's text before calling the handler; undecodable bytes make
    that decoding raise where nothing can catch it, and Python prints "Exception ignored" with
    a traceback. The read then fails and the file's decode error is reported in one line, so
    these reports are dropped (any other unraisable exception is passed on)."""
    previous = sys.unraisablehook

    def hook(report: sys.UnraisableHookArgs) -> None:
        if report.exc_type is not UnicodeDecodeError:
            previous(report)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _whole_file_block(path: Path) -> int:
    """An Arrow block size holding the whole file (at most Arrow's 2 GB limit)."""
    return int(min(max(path.stat().st_size + 1, 1 << 20), (1 << 31) - 1))


def _clip(text: str, limit: int = 1000) -> str:
    """``text`` cut to ``limit`` characters for the rejects file (with a marker when cut)."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def _long_fields(table: pa.Table, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the reason when a field is longer than :data:`MAX_FIELD_CHARS` (``""``
    otherwise) and the row's clipped raw text. Shapes ``(n,)``, object."""
    reason = np.full(table.num_rows, "", dtype=object)
    raw = np.full(table.num_rows, "", dtype=object)
    for name in names:
        lengths = pc.binary_length(table[name])
        if (pc.max(lengths).as_py() or 0) <= MAX_FIELD_CHARS:
            continue
        n = np.asarray(lengths.to_numpy(zero_copy_only=False))
        rows = np.flatnonzero((n > MAX_FIELD_CHARS) & (reason == ""))
        for row in rows:
            reason[row] = _long_field_reason(name, int(n[row]))
            raw[row] = _clip(",".join(str(table[c][int(row)].as_py()) for c in names))
    return reason, raw


def count_lines(path: Path) -> int:
    """Physical lines of a text file: ends of line (``\\n``, ``\\r\\n`` or a lone
    ``\\r``) plus an unterminated last line; read in chunks, counted in C."""
    lines, last, previous_cr = 0, b"", False
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            lines += chunk.count(b"\n")
            if b"\r" in chunk:  # count the lone ones (classic Mac line ends)
                at = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 13)
                followed = np.frombuffer(chunk + b"\0", dtype=np.uint8)[at + 1] == 10
                lines += int((~followed).sum())
            if previous_cr and chunk.startswith(b"\n"):
                lines -= 1  # a \r\n split between two chunks: counted as two
            previous_cr, last = chunk.endswith(b"\r"), chunk[-1:]
    return lines + (1 if last not in (b"", b"\n", b"\r") else 0)


def _contains(path: Path, byte: bytes) -> bool:
    """Whether the file holds ``byte`` (read in chunks; stops at the first)."""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            if byte in chunk:
                return True
    return False


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
UNBALANCED_QUOTE = (
    'unbalanced quote: a field opens a " that does not close on this line '
    "(the following lines are read on their own)"
)


def _read_by_lines(
    path: Path, source: SourceConfig, names: list[str], encoding: str
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Read a delimited file whose Arrow records do not match its physical lines.

    Every physical line starts a row (``source_row`` = its line after the header). A quoted
    value may span lines when the row it ends has the header's number of fields; otherwise
    the quote is a stray one: the line it opens on is rejected as :data:`UNBALANCED_QUOTE`
    and reading resumes on the next line, so one stray ``"`` costs one row, not the rest of
    the file. Python's ``csv`` module parses each row (this path is only taken for such files).
    """
    text = _file_text(path, encoding)
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":  # the final line break does not start a row
        lines.pop()
    lines = lines[1 if source.has_header else 0 :]
    feed = _LineFeed(lines)
    rows: list[list[str]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    reader = csv.reader(feed, delimiter=source.delimiter)
    while feed.pos < len(lines):
        start = feed.pos
        try:
            record = next(reader)
        except csv.Error as err:
            why = f"field longer than {MAX_FIELD_CHARS:,}" if "field limit" in str(err) else ""
            bad.append((start + 1, why or f"unreadable row ({err})", _clip(lines[start])))
            feed.pos, reader = start + 1, csv.reader(feed, delimiter=source.delimiter)
            continue
        unclosed = feed.pos == len(lines) and bool(record) and record[-1].endswith("\n")
        if unclosed or (feed.pos - start > 1 and len(record) != len(names)):
            bad.append((start + 1, UNBALANCED_QUOTE, _clip(lines[start])))
            feed.pos, reader = start + 1, csv.reader(feed, delimiter=source.delimiter)
        elif not any(record) and len(record) in (0, len(names)):  # every field ""
            bad.append((start + 1, "blank row", ""))
        elif len(record) != len(names):
            bad.append(
                (start + 1, f"ragged row: expected {len(names)} fields", _clip(lines[start]))
            )
        elif (longest := max(map(len, record))) > MAX_FIELD_CHARS:
            column = names[list(map(len, record)).index(longest)]
            bad.append((start + 1, _long_field_reason(column, longest), _clip(lines[start])))
        else:
            rows.append(record)
            numbers.append(start + 1)
    by_column = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    columns = {
        name: pa.array(values, pa.large_string())
        for name, values in zip(names, by_column, strict=True)
    }
    frame = pa.table(columns).to_pandas()
    frame[ROW_COL] = np.asarray(numbers, dtype=np.int64)
    rejects = pd.DataFrame(
        {
            ROW_COL: np.asarray([b[0] for b in bad], dtype=np.int64),
            "reason": [b[1] for b in bad],
            "raw": [b[2] for b in bad],
        }
    )
    return frame, rejects, len(rows) + len(bad)


class _LineFeed:
    """The physical lines from ``pos`` on, each with ``\\n`` (so that ``csv`` sees where a
    quoted value spans lines); ``pos`` is the next line to give."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.pos = 0

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1] + "\n"


def _surviving_row_numbers(n_total: int, bad_rows: np.ndarray) -> np.ndarray:
    """Row numbers ``1..n_total`` without ``bad_rows`` (a mask, not a set difference: no sort)."""
    keep = np.ones(n_total + 1, dtype=bool)
    keep[0] = False
    keep[bad_rows[(bad_rows >= 1) & (bad_rows <= n_total)]] = False
    return np.flatnonzero(keep).astype(np.int64)


def _read_whitespace(
    path: Path, source: SourceConfig, names: list[str], encoding: str
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Fields separated by runs of blanks (CDNOW): split every line with an Arrow regex."""
    text = _file_text(path, encoding)
    if "\r" in text:  # Windows or classic Mac line endings
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = pc.list_flatten(pc.split_pattern(pa.array([text]), "\n"))
    lines = pc.utf8_trim_whitespace(lines)
    if source.has_header:
        lines = lines[1:]
    if len(lines) and lines[-1].as_py() == "":  # the final newline does not start a row
        lines = lines[:-1]
    numbers = np.arange(1, len(lines) + 1, dtype=np.int64)
    fields = pc.split_pattern_regex(lines, r"\s+")
    counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
    blank = pc.equal(lines, "").to_numpy(zero_copy_only=False)
    good = (counts == len(names)) & ~blank
    good_fields = fields.filter(pa.array(good))
    frame = pd.DataFrame(
        {name: pc.list_element(good_fields, i).to_pandas() for i, name in enumerate(names)}
        if len(good_fields)
        else {name: pd.Series([], dtype="str") for name in names}
    )
    frame[ROW_COL] = numbers[good]
    bad_lines = lines.filter(pa.array(~good)).to_pylist()
    bad_blank = blank[~good]
    bad = pd.DataFrame(
        {
            ROW_COL: numbers[~good],
            "reason": np.where(bad_blank, "blank row", f"ragged row: expected {len(names)} fields"),
            "raw": bad_lines,
        }
    )
    return frame, bad, len(lines)


def _split_repeated_headers(
    frame: pd.DataFrame, names: list[str], source: SourceConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows equal to the header line (concatenated exports) -> rejects."""
    if not source.has_header:
        return frame, _no_bad_rows()
    is_header = (frame[names[0]].astype("str").str.strip() == names[0]).to_numpy(copy=True)
    for name in names[1:]:
        if not is_header.any():
            break
        same = frame.loc[is_header, name].astype("str").str.strip() == name
        is_header[is_header] = same.to_numpy()
    if not is_header.any():
        return frame, _no_bad_rows()
    header_rows = frame.loc[is_header]
    delimiter = " " if source.delimiter == WHITESPACE else source.delimiter
    bad = pd.DataFrame(
        {
            ROW_COL: header_rows[ROW_COL].to_numpy(),
            "reason": "repeated header row",
            "raw": raw_text(header_rows, delimiter).to_numpy(),
        }
    )
    return frame.loc[~is_header].reset_index(drop=True), bad
