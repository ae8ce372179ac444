"""Errors the service answers with, each mapped to an HTTP status and an OperationOutcome.

    CdsError
    ├── InvalidRequest        400  malformed JSON, not CDS Hooks, wrong hook, bad context
    ├── NotAuthenticated      401  no valid JWT from a trusted client (no detail in the answer)
    ├── UnknownService        404  no service with that id
    ├── PayloadTooLarge       413  a body beyond the configured size
    ├── PrefetchUnavailable   412  the patient's data can be had neither from prefetch nor from the FHIR server
    └── Overloaded            503  the worker is already evaluating as many calls as it may (retry later)

FHIR fallback failures are not errors of the call: they are collected per prefetch key (see
``prefetch.resolve``) and reported on a ``data-unavailable`` card.
"""

from __future__ import annotations

from typing import Any


class CdsError(Exception):
    status_code = 500
    issue_code = "exception"

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def operation_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.message, self.issue_code, self.details)


class InvalidRequest(CdsError):
    status_code = 400
    issue_code = "invalid"


class NotAuthenticated(CdsError):
    status_code = 401
    issue_code = "login"

    def __init__(self, reason: str) -> None:
        super().__init__("unauthorized")
        self.reason = reason
        """Why, for the audit log only."""


class UnknownService(CdsError):
    status_code = 404
    issue_code = "not-found"


class PayloadTooLarge(CdsError):
    status_code = 413
    issue_code = "too-costly"


class PrefetchUnavailable(CdsError):
    status_code = 412
    issue_code = "incomplete"


class Overloaded(CdsError):
    status_code = 503
    issue_code = "throttled"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def operation_outcome(message: str, code: str, details: list[str] | None = None) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome with one error issue for the message and one per detail."""
    issues: list[dict[str, Any]] = [{"severity": "error", "code": code, "diagnostics": message}]
    issues.extend({"severity": "error", "code": code, "diagnostics": d} for d in details or [])
    return {"resourceType": "OperationOutcome", "issue": issues}
