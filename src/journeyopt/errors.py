"""User-facing errors.

Every problem a user can fix (a missing file, a wrong column, a bad config value) is raised as a
:class:`JourneyoptError` whose message names the file, row, column and what was expected. The
command-line entry points print the message and exit non-zero without a traceback (set
``JOURNEYOPT_DEBUG=1`` to see it).
"""

from __future__ import annotations


class JourneyoptError(Exception):
    """A problem the user can fix; the message says what and where."""

    exit_code: int = 2


class InputFileError(JourneyoptError):
    """A whole input file cannot be used (missing, unreadable, wrong encoding, no rows, ...)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[type[InputFileError], tuple[str, str]]:
        # pickled with its two arguments (not the message): a forked ingest task raises it
        return type(self), (self.path, self.problem)


class ConfigError(JourneyoptError):
    """A configuration value is invalid."""


class OutputExistsError(JourneyoptError):
    """An output would overwrite existing files."""


class OutputOverInputError(OutputExistsError):
    """An output path is, lies inside or contains one of the command's own inputs."""


class OutputWriteError(JourneyoptError):
    """An output cannot be written: no permission, a read-only or full file system, a path
    under a regular file, ... (the message names the path and the system's reason)."""


def format_mismatch(
    place: object, kind: str, found: object, expected: int, remedy: str, problem: str = ""
) -> str:
    """The one-line message of a file in another format than this journeyopt reads.

    Args:
        place: The file or folder.
        kind: What it holds (``world``, ``policy``).
        found: The format it was written in (0: before journeyopt recorded one).
        expected: The format this journeyopt reads.
        remedy: What to do.
        problem: What failed to read, if anything (in parentheses after the formats).
    """
    written = "0 (written before journeyopt recorded one)" if found == 0 else f"{found}"
    detail = f" ({problem})" if problem else ""
    return (
        f"{place}: {kind} format {written}, this journeyopt reads format {expected}{detail}; "
        f"{remedy}"
    )
