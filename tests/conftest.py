"""Shared test fixtures: explicit settings, the app through its ASGI interface, scenarios and the schema."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.settings import Settings
from tests.support import REFERENCE_TIME, REPO

FHIR_BASE = "https://ehr.example.org/fhir"


def pytest_configure(config: pytest.Config) -> None:
    # Calls in most tests carry no JWT: authentication (on by default) is switched off for them here, and
    # also for the servers they start as subprocesses; tests/test_jwt.py switches it back on explicitly.
    os.environ.setdefault("CDS_AUTH_REQUIRED", "false")


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load_knowledge(REPO / "cards")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        cards_dir=REPO / "cards",
        fixtures_dir=REPO / "fhir_fixtures",
    )


def fixed_clock() -> datetime:
    return REFERENCE_TIME


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, clock=fixed_clock)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """Build a client with extra settings (site configuration, CORS, deadline ...)."""
    opened: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data-custom",
            "cards_dir": REPO / "cards",
            **overrides,
        }
        test_client = TestClient(create_app(Settings(**values), clock=fixed_clock), raise_server_exceptions=False)
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield build
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def utc_now() -> datetime:
    return datetime.now(UTC)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2)[:4000]
