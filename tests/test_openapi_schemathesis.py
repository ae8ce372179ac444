"""schemathesis against the service's own OpenAPI description: generated requests to the CDS Hooks
endpoints never get a 500, and every answer matches what the description promises."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from cds_service.app import create_app
from cds_service.settings import Settings
from tests.support import REPO

_DATA = Path(tempfile.mkdtemp(prefix="cds-schemathesis-"))
APP = create_app(Settings(data_dir=_DATA, cards_dir=REPO / "cards", auth_required=False))
_CLIENT = TestClient(APP)
_CLIENT.__enter__()  # runs the lifespan once: the runtime the routes need
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(
    path_regex=r"^/(cds-services|healthz|readyz|version)"
)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_cds_hooks_endpoints_keep_their_contract(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, response.text
    case.validate_response(response)
