"""The service with an audit store that records nothing: the baseline of bench/audit_write_latency.py."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from cds_service.app import create_app
from cds_service.audit.store import FeedbackResult, SqlAuditStore
from cds_service.settings import Settings


class NullAuditStore(SqlAuditStore):
    """Keeps the real schema (for the auditor routes) but drops every record."""

    def record_invocation(self, record: Any) -> None:
        return None

    def submit_invocation(self, record: Any) -> Future[bool]:
        done: Future[bool] = Future()
        done.set_result(True)
        return done

    def record_feedback(self, service_id: str, items: Any) -> FeedbackResult:
        return FeedbackResult(0, 0, [])


def create() -> FastAPI:
    settings = Settings()
    return create_app(settings, audit=NullAuditStore(settings.audit_url, Path(settings.data_dir) / "spool.jsonl"))
