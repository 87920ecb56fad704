"""Named exit codes and the one error type every command raises.

The codes follow sysexits(3) where one fits; `jobs/scripts/common.sh` defines the same numbers for
the in-container steps, so a script's exit code means the same thing when the CLI relays it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    VIOLATIONS = 1  # a check ran and found problems (policy violations, failed verification report)
    USAGE = 64  # bad command line or argument
    CORRUPT = 65  # backup set incomplete, unverified, or a checksum differs
    NOT_FOUND = 66  # no such backup / stack / database
    UNREACHABLE = 69  # PostgreSQL, S3 or the Kubernetes API cannot be reached
    STEP_FAILED = 70  # a step (pg_dump, pg_restore, upload) failed
    NO_SPACE = 73  # not enough room on the volume or the database server
    LOCKED = 75  # another run holds the lock; try again later
    DENIED = 77  # authentication or permission refused
    CONFIG = 78  # invalid stack configuration or missing secret
    ABORTED = 80  # the operator did not confirm a destructive action


class PgBackupError(Exception):
    """One clear line: what went wrong, and what to do about it."""

    def __init__(self, message: str, fix: str, code: ExitCode = ExitCode.STEP_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}"
