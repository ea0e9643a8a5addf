"""Errors the user can act on, and the exit codes they map to.

Exit codes follow DESIGN.md section 7: 0 ok, 1 a check or an operation
failed, 2 bad input or usage. Anything else that escapes is a bug and keeps
its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class AdaptoError(Exception):
    """An error the user can fix; printed as one line (or a few), no traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def lines(self) -> list[str]:
        """Every line to print: the details if there are several, else the message."""
        return self.details or [self.message]


class InventoryError(AdaptoError):
    """inventory.yaml is missing, malformed or inconsistent (exit code 2)."""


class SecretError(AdaptoError):
    """A secret the environment needs has no value (exit code 2)."""


class CheckFailed(AdaptoError):
    """A real tool rejected what we rendered, or a health check failed (exit code 1)."""

    exit_code = EXIT_FAILED


class OperationFailed(AdaptoError):
    """A remote operation failed (exit code 1)."""

    exit_code = EXIT_FAILED
