"""What a call knows about the patient, key by key, and how each key was obtained."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

KeyState = Literal[
    "prefetched",  # the EHR sent it
    "null",  # the EHR said there is no data: not re-queried
    "fetched",  # absent from prefetch, read from the FHIR server
    "failed",  # the FHIR query failed, timed out or returned malformed JSON
    "operation-outcome",  # the EHR sent an OperationOutcome: its own fetch failed
    "no-fhir-server",  # absent from prefetch and no FHIR server to ask
]
AVAILABLE_STATES: frozenset[str] = frozenset({"prefetched", "null", "fetched"})


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    """One FHIR request of the fallback, as the audit log records it (no token, no response body)."""

    key: str
    url: str
    status: int | None
    outcome: Literal["ok", "http-error", "timeout", "network-error", "malformed", "refused"]
    elapsed_ms: float
    entries: int = 0


@dataclass(frozen=True, slots=True)
class KeyOutcome:
    key: str
    state: KeyState
    reason: str = ""
    """Why the key is unavailable, in words without patient data (``HTTP 503``, ``timed out``)."""
    queries: tuple[QueryOutcome, ...] = ()

    @property
    def available(self) -> bool:
        return self.state in AVAILABLE_STATES


@dataclass(frozen=True, slots=True)
class PatientData:
    resources: Mapping[str, tuple[dict[str, Any], ...]]
    """Resources per available prefetch key (empty for ``null`` keys)."""
    outcomes: Mapping[str, KeyOutcome] = field(default_factory=dict)

    @property
    def available(self) -> frozenset[str]:
        return frozenset(k for k, o in self.outcomes.items() if o.available)

    @property
    def unavailable(self) -> frozenset[str]:
        return frozenset(k for k, o in self.outcomes.items() if not o.available)

    def all_resources(self) -> list[dict[str, Any]]:
        return [r for key in self.resources for r in self.resources[key]]
